"""Bàn làm việc của cán bộ: sign in, the one-stop counter's queue (tiếp nhận, từ chối, yêu cầu bổ sung,
trả kết quả, forms 01–06 as PDF), the agency's task inbox, a dossier's detail and the staff search.
Every action is the API's RPC with the session's token, audited the same way."""
from __future__ import annotations

import base64
import json
import mimetypes
from datetime import datetime, timezone
from zoneinfo import ZoneInfo

from werkzeug.exceptions import NotFound
from werkzeug.wrappers import Response

from motcua.contracts.rpc import CalendarDecisionV1, CatalogImportPreviewV1, SearchDossiersV1
from motcua.errors import Forbidden, ValidationFailed, load_valid
from motcua.privacy import mask_email
from services.gateway.pages_http import (
    RENEWED_TTL,
    SECURITY_HEADERS,
    FormRejected,
    back_after_login,
    check_login_csrf,
    clear_session,
    document_names,
    form_again,
    form_data,
    form_key,
    keyed,
    login_nonce,
    page,
    province_today,
    province_zone,
    query_data,
    redirect,
    remember_login_nonce,
    render,
    renew,
    safe_next,
    session_end,
    set_session,
    staff_session,
    uploads,
)
from services.gateway.schemas import TokenRequestSchema

LOGIN = "console/login.html"
CALENDAR = "console/calendar.html"
CATALOG_IMPORT = "console/catalog_import.html"
QUEUES = (("submitted", "Chờ tiếp nhận"), ("supplement_requested", "Chờ công dân bổ sung"),
          ("awaiting_payment", "Chờ nộp nghĩa vụ tài chính"), ("result_ready", "Chờ trả kết quả"))
# The counter's decisions: URL slug → (audit action, the RPC with the form's fields, what the page says).
DOSSIER_ACTIONS = {
    "tiep-nhan": ("dossier.receive", lambda intake, code, form, token: intake.receive_dossier(
        code, caller_token=token, idempotency_key=form_key(form)),
        "Đã tiếp nhận hồ sơ. In phiếu tiếp nhận và hẹn trả kết quả (mẫu 01)."),
    "tu-choi": ("dossier.refuse", lambda intake, code, form, token: intake.refuse_dossier(
        code, form.get("reason", ""), caller_token=token, idempotency_key=form_key(form)),
        "Đã từ chối tiếp nhận. In phiếu từ chối (mẫu 03)."),
    "yeu-cau-bo-sung": ("dossier.request_supplement", lambda intake, code, form, token: intake.request_supplement(
        code, {"items": [line.strip() for line in form.get("items", "").splitlines() if line.strip()],
               "note": form.get("note") or None}, caller_token=token, idempotency_key=form_key(form)),
        "Đã yêu cầu bổ sung; thời hạn tạm dừng. In phiếu yêu cầu bổ sung (mẫu 02)."),
    "tra-ket-qua": ("dossier.return", lambda intake, code, form, token: intake.return_result(
        code, form.get("method", ""), caller_token=token, idempotency_key=form_key(form)),
        "Đã trả kết quả cho công dân."),
    "xac-nhan-nop-tien": ("dossier.confirm_payment", lambda intake, code, form, token: intake.confirm_payment(
        code, {"receipt_number": form.get("receipt_number", "")}, caller_token=token,
        idempotency_key=form_key(form)),
        "Đã xác nhận hoàn thành nghĩa vụ tài chính; hồ sơ tiếp tục được giải quyết."),
}


def _lines(text: str) -> list[str] | None:
    return [line.strip() for line in (text or "").splitlines() if line.strip()] or None


def _amount(text: str) -> int | None:
    digits = (text or "").replace(".", "").replace(",", "").replace(" ", "")
    if not digits:
        return None
    if not digits.isdigit():
        raise ValidationFailed("số tiền là số nguyên (đồng)", field="amount_vnd")
    return int(digits)


def _complete(outcome: str):
    """A step's outcome with what the form carries (items one per line, the amount in đồng)."""
    def call(workflow, task_id, form, token):
        details = {"items": _lines(form.get("items")), "amount_vnd": _amount(form.get("amount_vnd"))}
        return workflow.complete_task(task_id, outcome, form.get("note", ""), caller_token=token,
                                      details={k: v for k, v in details.items() if v is not None} or None,
                                      idempotency_key=form_key(form))
    return call


# The buttons of a task, by the names of workflow's `task["actions"]` (approve only when a task has none):
# name → (audit action, label, the RPC with the form's fields); TASK_FIELDS: the inputs each one shows.
TASK_ACTIONS = {
    "claim": ("task.claim", "Nhận xử lý", lambda workflow, task_id, form, token: workflow.claim_task(
        task_id, caller_token=token, idempotency_key=form_key(form))),
    "approve": ("task.complete", "Hoàn thành, chuyển bước tiếp", _complete("approve")),
    "send_back": ("task.send_back", "Trả lại bước trước", _complete("send_back")),
    "request_supplement": ("task.request_supplement", "Đề nghị bổ sung hồ sơ", _complete("request_supplement")),
    "require_payment": ("task.require_payment", "Yêu cầu nộp nghĩa vụ tài chính", _complete("require_payment")),
    "transfer": ("task.transfer", "Chuyển cơ quan khác", lambda workflow, task_id, form, token: workflow.transfer_task(
        task_id, form.get("agency_code", ""), form.get("note", ""), caller_token=token,
        idempotency_key=form_key(form))),
    "refuse": ("task.refuse", "Từ chối giải quyết", _complete("refuse")),
    "stop": ("task.stop", "Dừng xử lý", _complete("stop")),
}
# The last step's approval hands the dossier back to the one-stop counter: its button says so.
LAST_STEP_APPROVE = "Hoàn thành, chuyển Bộ phận Một cửa trả kết quả"
PRIMARY_TASK_ACTIONS = ("claim", "approve", "send_back")  # shown at once; the others behind "Thao tác khác"
TASK_FIELDS = {"approve": ("note",), "send_back": ("note",), "request_supplement": ("items", "note"),
               "require_payment": ("amount_vnd", "note"), "transfer": ("agency_code", "note"),
               "refuse": ("note",), "stop": ("note",)}
# as Annex I of Circular 03/2025/TT-VPCP names them (07, the log book, is an agency's, not a dossier's)
FORMS = {"01": "Mẫu 01 — Giấy tiếp nhận hồ sơ và hẹn trả kết quả", "02": "Mẫu 02 — Phiếu yêu cầu bổ sung, hoàn thiện hồ sơ",
         "03": "Mẫu 03 — Phiếu từ chối tiếp nhận giải quyết hồ sơ",
         "04": "Mẫu 04 — Văn bản xin lỗi và đề nghị gia hạn thời gian giải quyết",
         "05": "Mẫu 05 — Thông báo dừng giải quyết hồ sơ", "06": "Mẫu 06 — Phiếu kiểm soát quá trình giải quyết hồ sơ"}


def task_buttons(task: dict, last_step: bool) -> list[tuple[str, str, tuple]]:
    """The task's actions (workflow's `actions`; approve when it names none) as (name, label, fields)."""
    labels = {name: action[1] for name, action in TASK_ACTIONS.items()}
    if last_step:
        labels["approve"] = LAST_STEP_APPROVE
    return [(name, labels[name], TASK_FIELDS.get(name, ()))
            for name in task.get("actions") or ["approve"] if name in TASK_ACTIONS]


def shown_applicant(applicant: dict, caller) -> dict:
    """The applicant as an officer's role needs them: the counter (who calls and hands over) in full;
    the steps behind it the name and address to decide on, the ID number and phone masked to their last
    digits (enough to tell two applicants apart), the e-mail masked."""
    if caller.has_role("receptionist"):
        return applicant
    def last(value, shown):
        return "•" * max(len(value) - shown, 0) + value[-shown:] if value else None
    return {**applicant, "id_number": last(applicant.get("id_number"), 3), "phone": last(applicant.get("phone"), 3),
            "email": mask_email(applicant["email"]) if applicant.get("email") else None}


def time_left(due_at: str | None, tz: ZoneInfo, now: datetime) -> tuple[str, bool] | None:
    """How long until `due_at` (ISO, in the province's time `tz` when it names no offset) as the page
    says it, and whether it is past."""
    if not due_at:
        return None
    due = datetime.fromisoformat(due_at)
    seconds = ((due if due.tzinfo else due.replace(tzinfo=tz)) - now).total_seconds()
    hours = int(abs(seconds) // 3600)
    words = f"{hours // 24} ngày {hours % 24} giờ" if hours >= 24 else (
        f"{hours} giờ {int(abs(seconds) % 3600 // 60)} phút")
    return (f"quá hạn {words}", True) if seconds < 0 else (f"còn {words}", False)


def home_of(caller) -> str:
    """Where an officer lands after signing in: leaders the dashboard, specialists the inbox."""
    if caller.has_role("receptionist"):
        return "/can-bo"
    return "/lanh-dao" if caller.has_role("leader") else "/can-bo/viec"


def forms_of(dossier: dict, hand_overs: list) -> list[str]:
    """The forms a dossier has material for."""
    present = {"01": dossier["received_at"], "02": dossier["supplements"], "03": dossier["refused_at"],
               "04": dossier["reschedules"] or dossier["proposed_due_at"], "05": dossier["stopped_at"],
               "06": hand_overs}
    return [form for form, material in present.items() if material]


class ConsolePages:
    """Pages mixed into GatewayService, which provides the RPC proxies, config, database,
    `caller_from_token`, `sign_in` (throttled, audited) and `audited`."""

    @page("GET", "/can-bo/dang-nhap")
    def console_login_form(self, request):
        nonce = login_nonce(request)
        values = {"tiep": query_data(request).get("tiep", "")}
        return remember_login_nonce(render(LOGIN, csrf=keyed(self.config["FORM_KEY"], "login", nonce), values=values),
                                    request, nonce)

    @page("POST", "/can-bo/dang-nhap")
    def console_login(self, request):
        values, secret, nonce = form_data(request), self.config["FORM_KEY"], login_nonce(request)
        shown = {"username": values.get("username", ""), "tiep": values.get("tiep", "")}
        try:
            with form_again(LOGIN, lambda: {"csrf": keyed(secret, "login", nonce), "values": shown}):
                check_login_csrf(request, values, secret)
                body = load_valid(TokenRequestSchema, {"username": values.get("username") or None,
                                                         "password": values.get("password") or None})
                signed_in = self.sign_in(body["username"], body["password"], request.remote_addr, action="auth.login")
        except FormRejected as rejected:
            raise FormRejected(remember_login_nonce(rejected.response, request, nonce)) from None
        token = signed_in["access_token"]
        landing = safe_next(values.get("tiep"), home_of(self.caller_from_token(token)))
        return set_session(redirect(landing), request, token, signed_in["expires_in"])

    @page("POST", "/can-bo/dang-xuat")
    def console_logout(self, request):
        session = staff_session(self, request)
        session.check(form_data(request))
        self.end_session(session.caller, request.remote_addr)
        return clear_session(redirect("/can-bo/dang-nhap"))

    @page("POST", "/can-bo/phien")
    def console_session_renew(self, request):
        """Tiếp tục làm việc (the warning before the session ends): a new token now, the old one revoked,
        audited `auth.renew`. The page's script asks for JSON (its typing stays on the page); without
        it, back to the page the button was on."""
        session = staff_session(self, request)
        session.check(form_data(request))
        caller, _token = renew(self, request, session.caller)
        if request.accept_mimetypes.best == "application/json":
            return Response(json.dumps({"ends_at": session_end(caller, province_zone(self.config)),
                                        "expires_in": request.environ[RENEWED_TTL]}),
                            mimetype="application/json", headers=SECURITY_HEADERS)
        return redirect(back_after_login(request))

    @page("GET", "/can-bo")
    def console_queue(self, request):
        """Quầy một cửa: the agency's dossiers awaiting reception, a supplement, or their return; each
        lacking a mandatory document flagged. `?thieu=1`: only those, in the reception queue."""
        session = staff_session(self, request)
        lacking = query_data(request).get("thieu") == "1"
        queues = [(status, title, self.intake.search_dossiers(
            {"status": status, "page_size": 50, **({"documents_missing": True} if lacking and status == "submitted" else {})},
            caller_token=session.token)) for status, title in QUEUES]
        return render("console/queue.html", session=session, queues=queues, agencies=self._agencies(), lacking=lacking)

    @page("GET", "/can-bo/ho-so/<code>")
    def console_dossier(self, request, code):
        session = staff_session(self, request)
        done = DOSSIER_ACTIONS.get(query_data(request).get("da", ""))
        return render("console/dossier.html", **self._dossier_context(request, session, code),
                      done=done[2] if done else None)

    @page("POST", "/can-bo/ho-so/<code>/<action>")
    def console_dossier_action(self, request, code, action):
        session, values, (audit_action, call, _said) = self._posted(request, DOSSIER_ACTIONS, action)
        with form_again("console/dossier.html", lambda: self._dossier_context(request, session, code, values)):
            with self.audited(request, session.caller, audit_action, dossier_code=code):
                call(self.intake, code, values, session.token)
        return redirect(f"/can-bo/ho-so/{code}?da={action}")

    @page("GET", "/can-bo/ho-so/<code>/mau/<form>")
    def console_form(self, request, code, form):
        session = staff_session(self, request)
        with self.audited(request, session.caller, f"dossier.form.{form}"[:64], dossier_code=code):
            rendered = self.intake.render_form(code, form, caller_token=session.token)
        return Response(base64.b64decode(rendered["content_base64"]), mimetype="application/pdf",
                        headers={"Content-Disposition": f'inline; filename="mau-{form}-{code}.pdf"'})

    @page("GET", "/can-bo/so-theo-doi")
    def console_log_book(self, request):
        """Sổ theo dõi hồ sơ (mẫu 07) of the officer's agency: `tu` to `den` (by default this month so
        far), `dang` pdf or xlsx."""
        session = staff_session(self, request)
        values, today = query_data(request), province_today(self.config)
        params = {"from": values.get("tu") or today.replace(day=1).isoformat(), "to": values.get("den") or today.isoformat(),
                  "format": values.get("dang") or "pdf"}
        return self.log_book_response(request, session.caller, session.token, session.caller.agency_code, params)

    @page("GET", "/can-bo/ho-so/<code>/tai-lieu/<int:document_id>")
    def console_document(self, request, code, document_id):
        session = staff_session(self, request)
        with self.audited(request, session.caller, "dossier.document", dossier_code=code):
            document = self.intake.get_document(code, document_id, caller_token=session.token)
        extension = mimetypes.guess_extension(document["content_type"]) or ""
        disposition = "inline" if "xem" in request.args else "attachment"  # `?xem`: previewed in the browser
        return Response(base64.b64decode(document["content_base64"]), mimetype=document["content_type"],
                        headers={"Content-Disposition": f'{disposition}; filename="{document["key"]}{extension}"'})

    @page("GET", "/can-bo/viec")
    def console_inbox(self, request):
        """Việc cần xử lý: the agency's open tasks, overdue first (workflow's order)."""
        session = staff_session(self, request)
        done = query_data(request).get("da", "")
        return render("console/inbox.html", **self._inbox_context(session),
                      done=TASK_ACTIONS[done][1] if done in TASK_ACTIONS else None)

    @page("GET", "/can-bo/viec/<task_id>")
    def console_task(self, request, task_id):
        """Hồ sơ công việc: the task with its dossier on one page, and its actions."""
        session = staff_session(self, request)
        return render("console/task.html", **self._task_context(request, session, task_id))

    @page("POST", "/can-bo/viec/<task_id>/<action>")
    def console_task_action(self, request, task_id, action):
        session, values, (audit_action, _label, call) = self._posted(request, TASK_ACTIONS, action)
        if values.get("from") == "task":  # posted from the task page: refused, that page again
            template, context = "console/task.html", lambda: self._task_context(request, session, task_id, values)
        else:
            template, context = "console/inbox.html", lambda: self._inbox_context(session)
        with form_again(template, context):
            with self.audited(request, session.caller, audit_action, task_id=task_id):
                call(self.workflow, task_id, values, session.token)
        return redirect(f"/can-bo/viec?da={action}")

    @page("GET", "/can-bo/tim-kiem")
    def console_search_form(self, request):
        session = staff_session(self, request)
        return render("console/search.html", session=session, values={}, results=None)

    @page("POST", "/can-bo/tim-kiem")
    def console_search(self, request):
        """A POST, so ID numbers and phones searched for stay out of URLs and access logs."""
        session = staff_session(self, request)
        values = form_data(request)
        session.check(values)
        flags = ("overdue", "documents_missing")  # checkboxes: ticked is true, unticked no filter
        filters = {name: value for name, value in values.items()
                   if value and name in SearchDossiersV1().fields and name not in flags}
        filters.update({flag: True for flag in flags if values.get(flag)})
        filters["page_size"] = 50
        with form_again("console/search.html", lambda: {"session": session, "values": values, "results": None}):
            load_valid(SearchDossiersV1, filters)
            with self.audited(request, session.caller, "dossier.search"):
                results = self.intake.search_dossiers(filters, caller_token=session.token)
        return render("console/search.html", session=session, values=values, results=results)

    @page("GET", "/can-bo/lich")
    def console_calendar(self, request):
        """Lịch làm việc: the province's admin records an official decision (docs/rules.md)."""
        session = staff_session(self, request)
        return render(CALENDAR, session=session, values={}, done=None)

    @page("POST", "/can-bo/lich")
    def console_calendar_decision(self, request):
        session = staff_session(self, request)
        values = form_data(request)
        session.check(values)
        body = {"date": values.get("date") or None, "kind": values.get("kind") or None,
                "source": values.get("source") or None, "decided_year": bool(values.get("decided_year"))}
        with form_again(CALENDAR, lambda: {"session": session, "values": values, "done": None}):
            load_valid(CalendarDecisionV1, body)
            with self.audited(request, session.caller, "calendar.decide", detail=f"{body['date']} {body['kind']}"):
                done = self.intake.record_calendar_decision(body, caller_token=session.token)
        return render(CALENDAR, session=session, values={}, done=done)

    @page("GET", "/can-bo/danh-muc")
    def console_catalog_import(self, request):
        """Nhập danh mục TTHC: the province's admin uploads the national database's lists (docs/adopting.md)."""
        return render(CATALOG_IMPORT, session=self._admin_session(request), values={}, plan=None)

    @page("POST", "/can-bo/danh-muc")
    def console_catalog_import_preview(self, request):
        """The difference the upload would make (new, changed, retired, unreadable rows), audited; the
        catalogue itself changes by `motcua catalog import --apply`, reviewed in git and read at start."""
        session = self._admin_session(request)
        values = form_data(request)
        session.check(values)
        body = {upload["key"]: {"filename": upload["filename"], "content_base64": upload["content_base64"]}
                for upload in uploads(request) if upload["key"] in ("procedures", "agencies")}
        body["effective_from"] = values.get("effective_from") or None
        with form_again(CATALOG_IMPORT, lambda: {"session": session, "values": values, "plan": None}):
            load_valid(CatalogImportPreviewV1, body)
            names = ", ".join(body[k]["filename"] for k in ("procedures", "agencies") if k in body)
            with self.audited(request, session.caller, "catalog.import_preview",
                              detail=f"{names} from {body['effective_from']}"):
                plan = self.intake.preview_catalog_import(body, caller_token=session.token)
        return render(CATALOG_IMPORT, session=session, values=values, plan=plan)

    def _admin_session(self, request):
        session = staff_session(self, request)
        if not session.caller.is_admin:
            raise Forbidden("the province's admin imports the catalogue")
        return session

    def _posted(self, request, actions: dict, action: str):
        """The session, the posted fields (their CSRF token checked) and the action's entry; 404 if unknown."""
        session = staff_session(self, request)
        if action not in actions:
            raise NotFound()
        values = form_data(request)
        session.check(values)
        return session, values, actions[action]

    def _dossier_context(self, request, session, code: str, values: dict | None = None) -> dict:
        with self.audited(request, session.caller, "dossier.read", dossier_code=code):
            dossier = self.intake.get_dossier(code, caller_token=session.token)
        hand_overs = self.workflow.dossier_history(code, caller_token=session.token)
        return {"session": session, "dossier": dossier, "hand_overs": hand_overs, "values": values or {},
                "document_names": self._document_names(dossier),
                "forms": forms_of(dossier, hand_overs), "form_names": FORMS, "agencies": self._agencies()}

    def _document_names(self, dossier: dict) -> dict[str, str]:
        """The catalogue's name of each document key of the dossier's procedure version."""
        return document_names(self.intake.get_procedure(dossier["procedure_code"], dossier["procedure_version"]))

    def _last_step(self, procedure_code: str) -> int:
        return len(self.workflow.get_process(procedure_code)["steps"]) - 1

    def _task_context(self, request, session, task_id: str, values: dict | None = None) -> dict:
        """Everything an officer decides a task on, from the services that own it (each checks the
        officer's agency): workflow's task and earlier steps, intake's dossier and its catalogue names."""
        task = self.workflow.get_task(task_id, caller_token=session.token)
        code = task["dossier_code"]
        with self.audited(request, session.caller, "dossier.read", dossier_code=code):
            dossier = self.intake.get_dossier(code, caller_token=session.token)
        procedure = self.intake.get_procedure(dossier["procedure_code"], dossier["procedure_version"])
        task["buttons"] = task_buttons(task, task["step_index"] == self._last_step(task["procedure_code"]))
        by_digest = {d["sha256"]: d for d in dossier["documents"]}
        return {"session": session, "task": task, "dossier": dossier, "values": values or {},
                "applicant": shown_applicant(dossier["applicant"], session.caller),
                "document_names": document_names(procedure),
                "declaration": [(f["name"], dossier["form"][f["key"]]) for f in procedure["form"]
                                if dossier["form"].get(f["key"]) not in (None, "")],
                "earlier": [{**step, "documents": [by_digest.get(d["sha256"], d) for d in step["documents"] or ()]}
                            for step in task["history"] if step["id"] != task["id"]],
                "left": time_left(task["due_at"], province_zone(self.config), datetime.now(timezone.utc)),
                "agencies": self._agencies(),
                "PRIMARY_TASK_ACTIONS": PRIMARY_TASK_ACTIONS}

    def _inbox_context(self, session) -> dict:
        tasks = self.workflow.list_tasks(caller_token=session.token, status="open")
        last_steps = {code: self._last_step(code) for code in {task["procedure_code"] for task in tasks}}
        for task in tasks:
            task["buttons"] = task_buttons(task, task["step_index"] == last_steps[task["procedure_code"]])
        return {"session": session, "tasks": tasks, "agencies": self._agencies(),
                "PRIMARY_TASK_ACTIONS": PRIMARY_TASK_ACTIONS}
