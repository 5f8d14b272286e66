"""HTTP API v1: dossiers (hồ sơ): submission and the counter's decisions, owned by intake."""
from __future__ import annotations

import base64
import mimetypes

from marshmallow import INCLUDE, Schema, fields
from werkzeug.wrappers import Response

from motcua.contracts.rpc import (ApplicantActionV1, ConfirmPaymentV1, LogBookQueryV1, RequestSupplementV1,
                                  RescheduleDossierV1, SearchDossiersV1)
from motcua.contracts.views import DossierViewV1, PublicDossierViewV1
from motcua.errors import ValidationFailed, load_valid
from services.gateway import routes
from services.gateway.dependencies import dossier_key
from services.gateway.api_notify import refusals_audited
from services.gateway.http import parse_json, query, read_json, route
from services.gateway.schemas import RefuseSchema, ReturnResultSchema, SubmitDossierSchema

# Uploads: 25 MB in all, multipart or base64 JSON (intake checks each document: 5 MB at most).
MAX_UPLOAD_BYTES = 25 * 1024 * 1024


def read_body(request):
    """JSON (documents as base64), or multipart/form-data: a `dossier` part holding the JSON fields
    and one file part per document, named by the document's key."""
    if request.mimetype != "multipart/form-data":
        return read_json(request, max_bytes=MAX_UPLOAD_BYTES)
    request.max_content_length = MAX_UPLOAD_BYTES
    request.max_form_memory_size = 1024 * 1024
    body = parse_json(request.form.get("dossier") or "{}", what="the dossier part")
    if not isinstance(body, dict) or not isinstance(body.get("documents", []), list):
        raise ValidationFailed("must be a JSON object (documents: a list)", field="dossier")
    uploads = [{"key": key, "filename": upload.filename or key,
                "content_base64": base64.b64encode(upload.read()).decode()}
               for key, upload in request.files.items(multi=True)]
    return {**body, "documents": [*body.get("documents", []), *uploads]}


POSTAL_SIGNATURE_HEADER = "X-Postal-Signature"


class PostalCallback(Schema):
    """What the postal service posts (services/intake/postal.py): its order id and the shipment's status."""

    class Meta:
        unknown = INCLUDE

    originalID = fields.Str(required=True)
    itemCode = fields.Str()
    saleOrderCode = fields.Str()
    status = fields.Raw(required=True)
    statusDate = fields.Str()


class DossierApi:
    """Routes mixed into GatewayService, which provides the RPC proxies, config and database."""

    @route("POST", "/api/v1/dossiers", body=SubmitDossierSchema, status=201, auth="optional", response=DossierViewV1,
           multipart=True, command=True, errors=(429,))
    def submit_dossier(self, request):
        """Nộp hồ sơ: anyone online; a citizen signed in with VNeID gives no name nor ID number (the
        identity's are taken, here to validate and again by intake, which trusts only the token).

        Online, every mandatory document of the procedure comes with it: otherwise 400 on field `documents`,
        `error.missing` listing each one by key and catalogue name, and nothing is stored."""
        body = routes.with_citizen_identity(read_body(request), self.optional_caller_of(request)[0])
        body = load_valid(SubmitDossierSchema, body)
        caller, token = routes.submitter(request, self.caller_from_token, body["channel"])
        self.count_anonymous_submission(request, caller)
        dossier = self.intake.submit_dossier(body, caller_token=token, idempotency_key=request.idempotency_key)
        if caller is not None:
            self.record_audit(caller, "dossier.submit", request.remote_addr, dossier_code=dossier["code"])
        return 201, dossier

    @route("POST", "/api/v1/postal/callbacks", body=PostalCallback, auth="public")
    def postal_callback(self, request):
        """The postal service's news of a shipment (picked up, delivered, returned…), signed with the key
        agreed with it (`X-Postal-Signature`: hex HMAC-SHA-256 of the body); intake checks the signature and
        applies it; a forged one is answered 401 and audited."""
        body = request.get_data(as_text=True)
        with refusals_audited(self, request, "carrier:postal", "postal.callback"):
            return self.intake.postal_callback(request.headers.get(POSTAL_SIGNATURE_HEADER), body)

    @route("POST", "/api/v1/dossiers/search", body=SearchDossiersV1)
    def search_dossiers(self, request):
        """Staff search, agency-scoped; a POST body so ID numbers and phones stay out of URLs and logs."""
        caller, token = self.caller_of(request)
        body = read_json(request)
        load_valid(SearchDossiersV1, body)  # 400 naming the field before any RPC
        with self.audited(request, caller, "dossier.search"):
            return self.intake.search_dossiers(body, caller_token=token)

    @route("GET", "/api/v1/dossiers/<code>", response=DossierViewV1, watch=True)
    def get_dossier(self, request, code):
        """A dossier, with its ETag: `If-None-Match` and `Prefer: wait=<s>` hold the request until it changes.

        A long poll (at most 30 s): answered 200 with the new dossier and ETag as soon as intake changes
        it, 304 when the wait ends unchanged; `Preference-Applied: wait` says the wait was honoured."""
        caller, token = self.caller_of(request)
        position = self.changes.feed.position()
        with self.audited(request, caller, "dossier.read", dossier_code=code):
            dossier = self.intake.get_dossier(code, caller_token=token)
        return self.changes.answer(request, dossier, (dossier_key(code),), position,
                                   version=dossier.get("dossier_version"))

    @route("POST", "/api/v1/dossiers/<code>/receive", response=DossierViewV1, command=True)
    def receive_dossier(self, request, code):
        caller, token = self.caller_of(request)
        with self.audited(request, caller, "dossier.receive", dossier_code=code):
            return self.intake.receive_dossier(code, caller_token=token, idempotency_key=request.idempotency_key)

    @route("POST", "/api/v1/dossiers/<code>/refuse", body=RefuseSchema, response=DossierViewV1, command=True)
    def refuse_dossier(self, request, code):
        caller, token = self.caller_of(request)
        body = load_valid(RefuseSchema, read_json(request))
        with self.audited(request, caller, "dossier.refuse", dossier_code=code):
            return self.intake.refuse_dossier(code, body["reason"], caller_token=token,
                                             idempotency_key=request.idempotency_key)

    @route("POST", "/api/v1/dossiers/<code>/return", body=ReturnResultSchema, response=DossierViewV1, command=True)
    def return_result(self, request, code):
        caller, token = self.caller_of(request)
        body = load_valid(ReturnResultSchema, read_json(request))
        with self.audited(request, caller, "dossier.return", dossier_code=code):
            return self.intake.return_result(code, body["method"], caller_token=token,
                                            idempotency_key=request.idempotency_key)

    @route("POST", "/api/v1/dossiers/<code>/request-supplement", body=RequestSupplementV1, response=DossierViewV1,
           command=True)
    def request_supplement(self, request, code):
        caller, token = self.caller_of(request)
        body = load_valid(RequestSupplementV1, read_json(request))
        with self.audited(request, caller, "dossier.request_supplement", dossier_code=code):
            return self.intake.request_supplement(code, body, caller_token=token,
                                                 idempotency_key=request.idempotency_key)

    @route("POST", "/api/v1/dossiers/<code>/supplement", body=ApplicantActionV1, auth="optional", errors=(429,),
           multipart=True, command=True)
    def supplement_dossier(self, request, code):
        caller, token = self.optional_caller_of(request)
        body = load_valid(ApplicantActionV1, read_body(request))
        with self.audited(request, caller, "dossier.supplement", dossier_code=code), \
                self.proving(request, caller, code):
            dossier = self.intake.supplement_dossier(code, body, caller_token=token,
                                                     idempotency_key=request.idempotency_key)
        return _public_if(caller, dossier)

    @route("POST", "/api/v1/dossiers/<code>/reschedule", body=RescheduleDossierV1, response=DossierViewV1, command=True)
    def reschedule_dossier(self, request, code):
        """Form 04: the apology with a new appointment date, by the receiving agency's counter."""
        caller, token = self.caller_of(request)
        body = read_json(request)
        load_valid(RescheduleDossierV1, body)  # 400 naming the field before any RPC
        with self.audited(request, caller, "dossier.reschedule", dossier_code=code):
            return self.intake.reschedule_dossier(code, body, caller_token=token,
                                                 idempotency_key=request.idempotency_key)

    @route("GET", "/api/v1/dossiers/<code>/documents/<int:document_id>", response="application/octet-stream")
    def get_document(self, request, code, document_id):
        """A document's file, for staff of an agency involved in the dossier."""
        caller, token = self.caller_of(request)
        with self.audited(request, caller, "dossier.document", dossier_code=code):
            document = self.intake.get_document(code, document_id, caller_token=token)
        return Response(base64.b64decode(document["content_base64"]), mimetype=document["content_type"],
                        headers={"Content-Disposition": f'attachment; filename="{document["key"]}'
                                                        f'{mimetypes.guess_extension(document["content_type"])}"',
                                 "Digest": f"sha-256={base64.b64encode(bytes.fromhex(document['sha256'])).decode()}"})

    @route("POST", "/api/v1/dossiers/<code>/documents/<int:document_id>/certify", response=DossierViewV1,
           command=True)
    def certify_copy(self, request, code, document_id):
        """Chứng thực điện tử: a PDF of the dossier signed by the certifying officer (receptionist or
        specialist of the receiving agency) joins it as its certified copy (`certified:<key>`)."""
        caller, token = self.caller_of(request)
        with self.audited(request, caller, "document.certify", dossier_code=code):
            return self.intake.certify_copy(code, document_id, caller_token=token,
                                            idempotency_key=request.idempotency_key)

    @route("GET", "/api/v1/dossiers/<code>/forms/<form>", response="application/pdf")
    def get_form(self, request, code, form):
        """Form 01 (receipt + appointment), 02 (supplement request), 03 (refusal), 04 (apology + new
        appointment), 05 (stop notice) or 06 (process control sheet) as PDF; 07 is an agency's log book."""
        caller, token = self.caller_of(request)
        with self.audited(request, caller, f"dossier.form.{form}"[:64], dossier_code=code):
            rendered = self.intake.render_form(code, form, caller_token=token)
        return Response(base64.b64decode(rendered["content_base64"]), mimetype="application/pdf",
                        headers={"Content-Disposition": f'inline; filename="mau-{form}-{code}.pdf"'})

    @route("GET", "/api/v1/agencies/<agency_code>/log-book", query=LogBookQueryV1,
           response="application/octet-stream")
    def get_log_book(self, request, agency_code):
        """Form 07, Sổ theo dõi hồ sơ: the dossiers the agency received in a period, as PDF or XLSX."""
        caller, token = self.caller_of(request)
        params = query(request)
        load_valid(LogBookQueryV1, params)  # 400 naming the field before any RPC
        return self.log_book_response(request, caller, token, agency_code, params)

    def log_book_response(self, request, caller, token, agency_code, params):
        """The log book as a download (the API's and the console's), audited."""
        with self.audited(request, caller, "agency.log_book"):
            rendered = self.intake.log_book(agency_code, params, caller_token=token)
        return Response(base64.b64decode(rendered["content_base64"]), content_type=rendered["content_type"],
                        headers={"Content-Disposition": f'attachment; filename="{rendered["filename"]}"'})

    @route("POST", "/api/v1/dossiers/<code>/withdraw", body=ApplicantActionV1, auth="optional", errors=(429,),
           command=True)
    def withdraw_dossier(self, request, code):
        caller, token = self.optional_caller_of(request)
        body = load_valid(ApplicantActionV1, read_json(request))
        with self.audited(request, caller, "dossier.withdraw", dossier_code=code), \
                self.proving(request, caller, code):
            dossier = self.intake.withdraw_dossier(code, body, caller_token=token,
                                                   idempotency_key=request.idempotency_key)
        return _public_if(caller, dossier)

    @route("POST", "/api/v1/dossiers/<code>/confirm-payment", body=ConfirmPaymentV1, response=DossierViewV1,
           command=True)
    def confirm_payment(self, request, code):
        """The counter confirms the fee or tax a step fixed was paid (status 6 → 4; the clock resumes)."""
        caller, token = self.caller_of(request)
        body = load_valid(ConfirmPaymentV1, read_json(request))
        with self.audited(request, caller, "dossier.confirm_payment", dossier_code=code):
            return self.intake.confirm_payment(code, body, caller_token=token,
                                              idempotency_key=request.idempotency_key)


_public_view = PublicDossierViewV1()


def _public_if(caller, dossier: dict) -> dict:
    """An applicant acting without an account gets the status, not the personal data on file."""
    return dossier if caller is not None else _public_view.dump(dossier)
