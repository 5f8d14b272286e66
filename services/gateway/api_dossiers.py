"""HTTP API v1: dossiers (hồ sơ): submission and the counter's decisions, owned by intake."""
from __future__ import annotations

import base64
import mimetypes

from werkzeug.wrappers import Response

from motcua.contracts.rpc import ApplicantActionV1, RequestSupplementV1, RescheduleDossierV1, SearchDossiersV1
from motcua.errors import ValidationFailed, load_valid
from motcua.identity import verify_token
from services.gateway import audit, routes
from services.gateway.http import authenticated, bearer_token, parse_json, read_json, route
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


def _staff_or_applicant(request, secret: str):
    """The counter acting for the applicant (a valid token), or the applicant (no token)."""
    token = bearer_token(request)
    return (verify_token(token, secret), token) if token else (None, None)


class DossierApi:
    """Routes mixed into GatewayService, which provides the RPC proxies, config and database."""

    @route("POST", "/api/v1/dossiers")
    def submit_dossier(self, request):
        body = load_valid(SubmitDossierSchema(), read_body(request))
        caller, token = routes.submitter(request, self.config["SECRET"], body["channel"])
        dossier = self.intake.submit_dossier(body, caller_token=token,
                                             idempotency_key=routes.idempotency_key(request))
        if caller is not None:
            audit.record(self.db, caller, "dossier.submit", request.remote_addr, dossier_code=dossier["code"])
        return 201, dossier

    @route("POST", "/api/v1/dossiers/search")
    def search_dossiers(self, request):
        """Staff search, agency-scoped; a POST body so ID numbers and phones stay out of URLs and logs."""
        _caller, token = authenticated(request, self.config["SECRET"])
        body = read_json(request)
        load_valid(SearchDossiersV1(), body)  # 400 naming the field before any RPC
        return self.intake.search_dossiers(body, caller_token=token)

    @route("GET", "/api/v1/dossiers/<code>")
    def get_dossier(self, request, code):
        _caller, token = authenticated(request, self.config["SECRET"])
        return self.intake.get_dossier(code, caller_token=token)

    @route("POST", "/api/v1/dossiers/<code>/receive")
    def receive_dossier(self, request, code):
        caller, token = authenticated(request, self.config["SECRET"])
        dossier = self.intake.receive_dossier(code, caller_token=token)
        audit.record(self.db, caller, "dossier.receive", request.remote_addr, dossier_code=code)
        return dossier

    @route("POST", "/api/v1/dossiers/<code>/refuse")
    def refuse_dossier(self, request, code):
        caller, token = authenticated(request, self.config["SECRET"])
        body = load_valid(RefuseSchema(), read_json(request))
        dossier = self.intake.refuse_dossier(code, body["reason"], caller_token=token)
        audit.record(self.db, caller, "dossier.refuse", request.remote_addr, dossier_code=code)
        return dossier

    @route("POST", "/api/v1/dossiers/<code>/return")
    def return_result(self, request, code):
        caller, token = authenticated(request, self.config["SECRET"])
        body = load_valid(ReturnResultSchema(), read_json(request))
        dossier = self.intake.return_result(code, body["method"], caller_token=token)
        audit.record(self.db, caller, "dossier.return", request.remote_addr, dossier_code=code)
        return dossier

    @route("POST", "/api/v1/dossiers/<code>/request-supplement")
    def request_supplement(self, request, code):
        caller, token = authenticated(request, self.config["SECRET"])
        body = load_valid(RequestSupplementV1(), read_json(request))
        dossier = self.intake.request_supplement(code, body, caller_token=token)
        audit.record(self.db, caller, "dossier.request_supplement", request.remote_addr, dossier_code=code)
        return dossier

    @route("POST", "/api/v1/dossiers/<code>/supplement")
    def supplement_dossier(self, request, code):
        caller, token = _staff_or_applicant(request, self.config["SECRET"])
        body = load_valid(ApplicantActionV1(), read_body(request))
        dossier = self.intake.supplement_dossier(code, body, caller_token=token)
        if caller is not None:
            audit.record(self.db, caller, "dossier.supplement", request.remote_addr, dossier_code=code)
        return _public_if(caller, dossier)

    @route("POST", "/api/v1/dossiers/<code>/reschedule")
    def reschedule_dossier(self, request, code):
        """Form 04: the apology with a new appointment date, by the receiving agency's counter."""
        caller, token = authenticated(request, self.config["SECRET"])
        body = read_json(request)
        load_valid(RescheduleDossierV1(), body)  # 400 naming the field before any RPC
        dossier = self.intake.reschedule_dossier(code, body, caller_token=token)
        audit.record(self.db, caller, "dossier.reschedule", request.remote_addr, dossier_code=code)
        return dossier

    @route("GET", "/api/v1/dossiers/<code>/documents/<int:document_id>")
    def get_document(self, request, code, document_id):
        """A document's file, for staff of an agency involved in the dossier."""
        caller, token = authenticated(request, self.config["SECRET"])
        document = self.intake.get_document(code, document_id, caller_token=token)
        audit.record(self.db, caller, "dossier.document", request.remote_addr, dossier_code=code)
        return Response(base64.b64decode(document["content_base64"]), mimetype=document["content_type"],
                        headers={"Content-Disposition": f'attachment; filename="{document["key"]}'
                                                        f'{mimetypes.guess_extension(document["content_type"])}"',
                                 "Digest": f"sha-256={base64.b64encode(bytes.fromhex(document['sha256'])).decode()}"})

    @route("GET", "/api/v1/dossiers/<code>/forms/<form>")
    def get_form(self, request, code, form):
        """Form 01 (receipt + appointment), 02 (supplement request), 03 (refusal), 04 (apology + new
        appointment) or 06 (process control sheet) as PDF."""
        _caller, token = authenticated(request, self.config["SECRET"])
        rendered = self.intake.render_form(code, form, caller_token=token)
        return Response(base64.b64decode(rendered["content_base64"]), mimetype="application/pdf",
                        headers={"Content-Disposition": f'inline; filename="mau-{form}-{code}.pdf"'})

    @route("POST", "/api/v1/dossiers/<code>/withdraw")
    def withdraw_dossier(self, request, code):
        caller, token = _staff_or_applicant(request, self.config["SECRET"])
        body = load_valid(ApplicantActionV1(), read_json(request))
        dossier = self.intake.withdraw_dossier(code, body, caller_token=token)
        if caller is not None:
            audit.record(self.db, caller, "dossier.withdraw", request.remote_addr, dossier_code=code)
        return _public_if(caller, dossier)


def _public_if(caller, dossier: dict) -> dict:
    """An applicant acting without an account gets the status, not the personal data on file."""
    if caller is not None:
        return dossier
    return {key: dossier[key] for key in ("code", "status", "status_code", "due_at", "allowed_actions")}
