"""Cổng dịch vụ công: the citizen's pages, no account needed. Find a procedure, submit a dossier with its
documents, track it (code + the phone's last 4 digits), supplement, withdraw or pay it, rate it once
returned, see each agency's public figures. No public page shows an ID number or a phone.

A citizen signed in with VNeID (the citizen cookie, api_vneid.py) does the same without retyping: the
submission takes name and ID number from the verified identity (shown read-only; posted values for them
are ignored), and their own dossier's page (`/ho-so/<code>`) and actions need no tracking key: intake
checks the identity against the dossier's applicant."""
from __future__ import annotations

from urllib.parse import quote

from motcua.catalog import PEOPLES_COMMITTEE
from motcua.contracts.events import POSTAL_KINDS
from motcua.contracts.rpc import MAX_DOCUMENT_BYTES
from motcua.contracts.lifecycle import FEE_PAYABLE, may
from motcua.errors import Unauthorized, load_valid
from motcua.identity import Caller
from motcua.text import fold
from services.gateway import routes
from services.gateway.api_vneid import CITIZEN_COOKIE, MY_DOSSIERS_PAGE, MyDossiersQuery
from services.gateway.http import https_only
from services.gateway.pages_http import (
    KEPT_FIELD_BYTES,
    FormRejected,
    Redirect,
    checked_uploads,
    document_names,
    form_again,
    form_data,
    form_key,
    key_for_form,
    keyed,
    page,
    province_today,
    query_data,
    redirect,
    render,
    signed_value,
    uploads,
    verified_value,
)
from services.gateway.schemas import SubmitDossierSchema

APPLICANT_FIELDS = ("full_name", "id_number", "phone", "email", "address")
TRACK_FORM = "portal/track.html"
PROCEDURES_SHOWN = 100  # on the procedures page: the best matches, the rest by typing more words
SUBMIT_FORM = "portal/submit.html"
# The last submission's receipt, signed (no personal data: the code, the state at submission, and the
# form's idempotency key). The receipt page after POST/redirect/GET reads it, and the form opened again
# by Back carries the same key: submitted again, it leads to the same dossier, never a second one.
RECEIPT_COOKIE = "motcua_receipt"
RECEIPT_SECONDS = 24 * 3600
# The dossiers this browser proved its own (it submitted them, or tracked them with the right key),
# signed: tracking them here is held to no guessing limit (throttle.proof_keys), so a stranger's wrong
# keys never lock the owner out.
OWNER_COOKIE = "motcua_owned"
OWNED_AT_MOST = 20
OWNER_SECONDS = 90 * 24 * 3600
RECEIPT_FIELDS = ("code", "procedure_code", "agency_code", "submitted_at", "status", "status_code", "due_at")


class PortalPages:
    """Pages mixed into GatewayService, which provides the RPC proxies and config."""

    @page("GET", "/")
    def portal_home(self, request):
        return render("portal/home.html", procedures=self.intake.list_procedures(limit=6), agencies=self._agencies(),
                      vneid="vneid" in self.oidc.clients)

    @page("GET", "/dang-nhap-vneid")
    def portal_vneid_login(self, request):
        """Đăng nhập bằng VNeID: to the provider; its callback lands on "my dossiers" (api_vneid.py)."""
        return self._oidc_login("vneid", request, portal=True)

    @page("GET", MY_DOSSIERS_PAGE)
    def portal_my_dossiers(self, request):
        """Hồ sơ của tôi: the signed-in citizen's dossiers, as intake finds them for the verified identity;
        without a citizen session, to the VNeID sign-in."""
        caller, token = self._citizen(request)
        if caller is None:
            raise Redirect("/dang-nhap-vneid")
        page_number = load_valid(MyDossiersQuery, query_data(request))["page"]
        found = self.intake.my_dossiers(token, page=page_number)
        return render("portal/my_dossiers.html", found=found, name=caller.citizen_name, agencies=self._agencies())

    @page("GET", "/ho-so/<code>")
    def portal_my_dossier(self, request, code):
        """A signed-in citizen's own dossier, from intake (another's is answered as unknown), with what
        they may do now: supplement, withdraw, pay online, rate; no tracking key asked. Without a citizen
        session, to public tracking."""
        caller, token = self._citizen(request)
        if caller is None:
            raise Redirect(f"/tra-cuu?code={quote(code, safe='')}")
        dossier = self.intake.get_dossier(code, token)
        procedure = self.intake.get_procedure(dossier["procedure_code"])
        paid_fee = any(entry["action"] == "pay_fee" for entry in dossier["history"])
        return render("portal/dossier.html", dossier=dossier, agencies=self._agencies(), citizen=caller,
                      actions=applicant_actions(dossier["status"], dossier.get("rating") is None),
                      pay=payment_offered(dossier["status"], procedure, fee_paid=paid_fee))

    @page("GET", "/thu-tuc")
    def portal_procedures(self, request):
        query = query_data(request).get("q", "")
        # a province lists 2,000: the page shows the best PROCEDURES_SHOWN and asks for more words past them
        found = self.intake.list_procedures(query=query or None, limit=PROCEDURES_SHOWN + 1)
        return render("portal/procedures.html", q=query, procedures=found[:PROCEDURES_SHOWN],
                      more=len(found) > PROCEDURES_SHOWN, agencies=self._agencies())

    @page("GET", "/thu-tuc/<code>")
    def portal_procedure(self, request, code):
        procedure = routes.procedure_with_steps(self.intake, self.workflow, code)
        return render("portal/procedure.html", procedure=procedure, agencies=self._agencies())

    @page("GET", "/thu-tuc/<code>/nop-ho-so")
    def portal_submit_form(self, request, code):
        """The form; opened again after this browser submitted it (Back), with that submission's key and
        a notice. `?moi`: a new submission (the receipt forgotten, then the plain form: Back to it after
        submitting finds that submission, as above)."""
        if "moi" in request.args:
            response = redirect(f"/thu-tuc/{quote(code, safe='')}/nop-ho-so")
            response.delete_cookie(RECEIPT_COOKIE, path="/", httponly=True, samesite="Lax")
            return response
        receipt = self._receipt(request)
        if receipt is None or receipt["procedure_code"] != code or not receipt["idempotency_key"]:
            receipt = None
        values = {"idempotency_key": receipt["idempotency_key"]} if receipt else {}
        return render(SUBMIT_FORM, **self._submit_context(code, values, citizen=self._citizen(request)[0]),
                      submitted=receipt)

    @page("POST", "/thu-tuc/<code>/nop-ho-so")
    def portal_submit(self, request, code):
        values = form_data(request, max_field_bytes=KEPT_FIELD_BYTES)
        citizen, token = self._citizen(request)
        applicant = {name: values.get(f"applicant.{name}") or None for name in APPLICANT_FIELDS}
        if citizen is not None:  # the verified identity, never what the form posted for it
            applicant.update(full_name=citizen.citizen_name or applicant["full_name"], id_number=citizen.citizen_id)
        receipt = self._receipt(request)
        key = form_key(values)
        applicant_digest = self._applicant_digest(applicant["id_number"] or "")
        if receipt is not None and key is not None and receipt["idempotency_key"] == key:
            if receipt["applicant"] == applicant_digest:
                return redirect(_receipt_path(receipt["code"]))  # submitted already from this form
            # The same form filled in for someone else: another dossier, under a key of its own
            # (derived, so a double submit of it is still one).
            key = values["idempotency_key"] = keyed(self.config["FORM_KEY"], "another", key)[:32]
        documents, refused = checked_uploads(request, values)

        def context() -> dict:
            return self._submit_context(code, values, documents, citizen)

        if refused:  # everything typed and every accepted file stay; each refused file is named
            raise FormRejected(render(SUBMIT_FORM, status=422, errors=refused, **context()))
        postal = {kind: values.get(f"postal.{kind}") == "1" for kind in POSTAL_KINDS}
        body = {"procedure_code": code, "channel": "online", "applicant": applicant, "form": {},
                "documents": documents, "receiving_agency_code": values.get("receiving_agency_code") or None,
                "postal": postal if any(postal.values()) else None}
        with form_again(SUBMIT_FORM, context):
            body = load_valid(SubmitDossierSchema, body)
            self.count_anonymous_submission(request, citizen)
            dossier = self.intake.submit_dossier(body, caller_token=token, idempotency_key=key)
        receipt = {**{name: dossier.get(name) for name in RECEIPT_FIELDS}, "idempotency_key": key,
                   "applicant": applicant_digest,
                   "documents": len(dossier.get("documents") or ()),
                   "missing": [d["key"] for d in dossier.get("documents_missing") or ()]}
        response = redirect(_receipt_path(dossier["code"]))
        response.set_cookie(RECEIPT_COOKIE, self._signed("receipt", receipt), max_age=RECEIPT_SECONDS,
                            httponly=True, samesite="Lax", secure=https_only(request), path="/")
        return self._owned_by_this_browser(response, request, dossier["code"])

    @page("GET", "/ho-so/<code>/bien-nhan")
    def portal_receipt(self, request, code):
        """Biên nhận after POST/redirect/GET, from this browser's receipt cookie; another browser (or an
        old link) is sent to tracking."""
        receipt = self._receipt(request)
        if receipt is None or receipt["code"] != code:
            return redirect(f"/tra-cuu?code={quote(code, safe='')}")
        procedure = self.intake.get_procedure(receipt["procedure_code"])
        names = document_names(procedure)
        dossier = {**receipt, "procedure_name": procedure["name"],
                   "documents_missing": [{"key": k, "name": names.get(k, k)} for k in receipt["missing"]]}
        return render("portal/receipt.html", dossier=dossier, agencies=self._agencies(),
                      citizen=self._citizen(request)[0], pay=payment_offered(receipt["status"], procedure))

    @page("GET", "/tra-cuu")
    def portal_track(self, request):
        values = query_data(request)
        if not values.get("code"):
            return render(TRACK_FORM, values=values)
        code = values["code"]
        with form_again(TRACK_FORM, lambda: {"values": values}):
            tracked = self.track_with_key(request, code, values.get("key", ""), self._owns(request, code)).payload
        status = tracked["status"]
        pay = payment_offered(status, self.intake.get_procedure(tracked["procedure_code"])
                              if status in FEE_PAYABLE else {})
        return self._owned_by_this_browser(render(TRACK_FORM, values=values, tracked=tracked, pay=pay,
                                                  actions=applicant_actions(status), agencies=self._agencies()),
                                           request, code)

    @page("GET", "/ho-so/<code>/bo-sung")
    def portal_supplement_form(self, request, code):
        return render("portal/supplement.html", **self._applicant_context(request, code, {}))

    @page("POST", "/ho-so/<code>/bo-sung")
    def portal_supplement(self, request, code):
        return self._applicant_action(
            request, code, "portal/supplement.html", lambda values, token: self.intake.supplement_dossier(
                code, {**_proof(values), "documents": uploads(request)}, caller_token=token,
                idempotency_key=form_key(values)),
            "Đã bổ sung hồ sơ", "Hồ sơ đã được bổ sung; thời hạn giải quyết tiếp tục được tính.")

    @page("GET", "/ho-so/<code>/danh-gia")
    def portal_rate_form(self, request, code):
        return render("portal/rate.html", **self._applicant_context(request, code, {}))

    @page("POST", "/ho-so/<code>/danh-gia")
    def portal_rate(self, request, code):
        return self._applicant_action(
            request, code, "portal/rate.html", lambda values, token: self.intake.rate_dossier(code, {
                **_proof(values), "rating": values.get("rating") or None,
                "comment": values.get("comment") or None}, caller_token=token, idempotency_key=form_key(values)),
            "Cảm ơn bạn đã đánh giá", "Ý kiến của bạn giúp cơ quan phục vụ tốt hơn.")

    @page("GET", "/ho-so/<code>/rut")
    def portal_withdraw_form(self, request, code):
        return render("portal/withdraw.html", **self._applicant_context(request, code, {}))

    @page("POST", "/ho-so/<code>/rut")
    def portal_withdraw(self, request, code):
        return self._applicant_action(
            request, code, "portal/withdraw.html", lambda values, token: self.intake.withdraw_dossier(
                code, {**_proof(values), "reason": values.get("reason") or None}, caller_token=token,
                idempotency_key=form_key(values)),
            "Đã rút hồ sơ", "Hồ sơ đã được rút theo đề nghị của bạn; cơ quan dừng giải quyết hồ sơ này.")

    @page("GET", "/thong-ke")
    def portal_statistics(self, request):
        today = province_today(self.config)
        values = {"from": today.replace(month=1, day=1).isoformat(), "to": today.isoformat(),
                  **{k: v for k, v in query_data(request).items() if v}}
        with form_again("portal/statistics.html", lambda: {"values": values, "statistics": None}):
            statistics = self.reporting.public_statistics(values["from"], values["to"])
        return render("portal/statistics.html", values=values, statistics=statistics)

    def _applicant_action(self, request, code: str, template: str, call, title: str, message: str):
        """The applicant's form posted: `call(values, citizen token or None)` (the RPC), then the
        confirmation; refused, the form again. A signed-in citizen's identity is their proof."""
        values = form_data(request)
        citizen, token = self._citizen(request)
        with form_again(template, lambda: self._applicant_context(request, code, values)), \
                self.proving(request, citizen, code):
            dossier = call(values, token)
        return render("portal/done.html", title=title, message=message, dossier=dossier, key=values.get("key"),
                      citizen=citizen)

    def _submit_context(self, code: str, values: dict, kept: list[dict] = (), citizen: Caller | None = None) -> dict:
        """The submission form; shown again, with the files it accepted (`kept`, as the RPC's documents);
        `citizen`: signed in with VNeID, whose name and ID number it shows instead of asking them."""
        procedure, agencies = self.intake.get_procedure(code), self._agencies()
        return {"procedure": procedure, "values": values, "agencies": agencies, "citizen": citizen,
                "vneid": "vneid" in self.oidc.clients,
                "communes": receiving_choices(procedure, agencies), "idempotency_key": key_for_form(values),
                "max_document_bytes": MAX_DOCUMENT_BYTES, "kept": {d["key"]: d for d in kept}}

    def _applicant_digest(self, id_number: str) -> str:
        """Who a submission is for (their ID number, keyed: the cookie holds no personal data)."""
        return keyed(self.config["FORM_KEY"], "receipt-applicant", id_number)[:16]

    def _citizen(self, request) -> tuple[Caller | None, str | None]:
        """The citizen signed in with VNeID in this browser (the portal's citizen cookie) and their token;
        (None, None) without one (no cookie, an expired or revoked token, an officer's token)."""
        token = request.cookies.get(CITIZEN_COOKIE)
        if not token:
            return None, None
        try:
            caller = self.caller_from_token(token)
        except Unauthorized:
            return None, None
        return (caller, token) if caller.is_citizen else (None, None)

    def _receipt(self, request) -> dict | None:
        """This browser's last receipt, if its signature holds."""
        return self._verified(request, RECEIPT_COOKIE, "receipt")

    def _owns(self, request, code: str) -> bool:
        return code in (self._verified(request, OWNER_COOKIE, "owned") or ())

    def _owned_by_this_browser(self, response, request, code: str):
        """`response`, telling this browser it proved dossier `code` its own (the most recent ones kept)."""
        owned = [c for c in self._verified(request, OWNER_COOKIE, "owned") or () if c != code]
        response.set_cookie(OWNER_COOKIE, self._signed("owned", [*owned, code][-OWNED_AT_MOST:]),
                            max_age=OWNER_SECONDS, httponly=True, samesite="Lax", secure=https_only(request),
                            path="/")
        return response

    def _signed(self, purpose: str, value) -> str:
        return signed_value(self.config["FORM_KEY"], purpose, value)

    def _verified(self, request, cookie: str, purpose: str):
        return verified_value(request, cookie, self.config["FORM_KEY"], purpose)

    def _applicant_context(self, request, code: str, values: dict) -> dict:
        """What a supplement, withdrawal, rating or payment form shows: the tracked dossier (the key
        proves the link was the applicant's; a signed-in citizen's own dossier needs none) and its
        procedure."""
        key = values.get("key") or request.args.get("key", "")
        citizen, token = self._citizen(request)
        if citizen is not None:
            tracked = as_tracked(self.intake.get_dossier(code, token))
        else:
            with form_again(TRACK_FORM, lambda: {"values": {"code": code, "key": key}}):
                tracked = self.track_with_key(request, code, key, self._owns(request, code)).payload
        return {"tracked": tracked, "key": key, "values": values, "citizen": citizen,
                "procedure": self.intake.get_procedure(tracked["procedure_code"]),
                "idempotency_key": key_for_form(values)}


def payment_offered(status: str, procedure: dict, fee_paid: bool = False) -> bool:
    """Whether the portal offers "Thanh toán trực tuyến": a dossier awaiting payment (status 6), or a
    level-4 procedure's fee on the online channel while the dossier is open and (`fee_paid`, as far as
    the page knows) unpaid. Intake decides at the order (a fee already paid is refused there)."""
    if may("confirm_payment", status):
        return True
    fee = ((procedure.get("channels") or {}).get("online") or {}).get("fee") or 0
    return procedure.get("online_level") == "full" and fee > 0 and status in FEE_PAYABLE and not fee_paid


def applicant_actions(status: str, unrated: bool = True) -> set[str]:
    """What the applicant may do from the dossier's page now: supplement it, withdraw it, rate it."""
    return {action for action, open_ in (("supplement", may("supplement", status)),
                                         ("withdraw", may("withdraw", status)),
                                         ("rate", may("rate", status) and unrated)) if open_}


def as_tracked(dossier: dict) -> dict:
    """A citizen's own dossier (intake's view) in the shape of public tracking's answer, for the
    applicant's forms: the name in full (it is theirs), the items of the open supplement request."""
    asked = dossier["supplements"][-1]["items"] if dossier["supplements"] else []
    return {"code": dossier["code"], "procedure_code": dossier["procedure_code"],
            "procedure_name": dossier["procedure_name"], "applicant_name": dossier["applicant"]["full_name"],
            "status": dossier["status"], "status_code": dossier["status_code"], "due_at": dossier["due_at"],
            "supplement_items": asked if dossier["status"] == "supplement_requested" else []}


def receiving_choices(procedure: dict, agencies: dict[str, str]) -> list[tuple[str, str]]:
    """The communes an online applicant may choose to receive a dossier received anywhere (Decree
    118/2025), as (code, label) sorted by the area's own name ("Hạc Thành (phường)"), so that typing its
    first letters in the select finds it; empty for a procedure received at its own agency only."""
    if procedure.get("reception") != "anywhere":
        return []
    labels = {code: _area_label(agencies.get(code, code)) for code in procedure.get("receiving_agencies", [])}
    return sorted(labels.items(), key=lambda item: fold(item[1]))


def _area_label(name: str) -> str:
    """"Ủy ban nhân dân xã Quảng Phú" → "Quảng Phú (xã)"; any other name as it is."""
    kind, _, area = name.removeprefix(PEOPLES_COMMITTEE).partition(" ")
    return f"{area} ({kind})" if name.startswith(PEOPLES_COMMITTEE) and area else name


def _receipt_path(code: str) -> str:
    return f"/ho-so/{code}/bien-nhan"


def _proof(values: dict) -> dict:
    """The applicant's proof posted with their form: the tracking key it was opened with, and the ID number."""
    return {"key": values.get("key") or None, "id_number": values.get("id_number") or None}
