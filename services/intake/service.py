"""IntakeService: submission, reception decisions and result return (tiếp nhận và trả kết quả)."""
from __future__ import annotations

import base64
import hashlib
from datetime import date, timedelta
from functools import partial

from nameko.dependency_providers import Config
from nameko.timer import timer

from motcua.bus import event_handler
from motcua.contracts.rpc import (
    ApplicantActionV1,
    CalendarDecisionV1,
    CalendarDueV1,
    CatalogImportPreviewV1,
    LogBookQueryV1,
    ConfirmPaymentV1,
    RateDossierV1,
    RefuseDossierV1,
    RequestSupplementV1,
    RescheduleDossierV1,
    ReturnResultV1,
    SearchDossiersV1,
    StepDocumentsV1,
    SubmitDossierV1,
    VerifySignatureV1,
)
from motcua.access import audit_refusals
from motcua.db import Database, utcnow
from motcua.errors import NotFound, Unauthorized, ValidationFailed, load_valid
from motcua.idempotency import Command, ForgetExpiredKeys, account_scope, applicant_scope, run_once, ttl_of
from motcua.identity import PORTAL_SYNC_ROLE
from motcua.logs import Tracing
from motcua.metrics import GroupCountGauge, Metrics
from motcua.revocation import Revocations
from motcua.rpc import TimedRpcProxy, rpc
from motcua.text import normalise_phone
from services.intake import calendar_decisions, catalog_import, dossiers, due, forms, online_payments, portal, postal, search
from services.intake.dependencies import Payments, PostalService, Rules, Signing
from services.intake.payments import Notice
from services.intake.models import Base, dossiers as dossier_table, shipments as shipment_table
from services.intake.repository import IntakeUnitOfWork


# Payload schemas, built once: they keep no state between loads, and building one costs more than a load.
APPLICANT_ACTION = ApplicantActionV1()
CALENDAR_DECISION = CalendarDecisionV1()
CALENDAR_DUE = CalendarDueV1()
CATALOG_IMPORT = CatalogImportPreviewV1()
CONFIRM_PAYMENT = ConfirmPaymentV1()
LOG_BOOK = LogBookQueryV1()
RATE_DOSSIER = RateDossierV1()
REFUSE_DOSSIER = RefuseDossierV1()
REQUEST_SUPPLEMENT = RequestSupplementV1()
RESCHEDULE_DOSSIER = RescheduleDossierV1()
RETURN_RESULT = ReturnResultV1()
SEARCH_DOSSIERS = SearchDossiersV1()
STEP_DOCUMENTS = StepDocumentsV1()
SUBMIT_DOSSIER = SubmitDossierV1()
VERIFY_SIGNATURE = VerifySignatureV1()


class IntakeService(Revocations):
    name = "intake"

    db = Database(Base, unit_of_work=IntakeUnitOfWork)
    expired_keys = ForgetExpiredKeys()
    metrics = Metrics()
    tracing = Tracing()  # each call's trace id, in its log lines and passed on (motcua.logs)
    rules = Rules()
    signing = Signing()
    payments = Payments()
    config = Config()
    # Within the RPC deadline: a service that is down must not hold one of intake's workers until it is back.
    workflow = TimedRpcProxy("workflow")  # the hand-overs of form 06
    gateway = TimedRpcProxy("gateway")  # the officers' full names and titles the forms sign with
    postal_service = PostalService()  # bưu chính công ích: None while POSTAL_URL is unset
    dossiers_by_status = GroupCountGauge("motcua_dossiers_by_status", "Dossiers by status",
                                         dossier_table.c.status)
    shipments_by_state = GroupCountGauge("motcua_postal_shipments",
                                         "Shipments by kind and state (owed, ordered, rejected)",
                                         shipment_table.c.kind, shipment_table.c.state)

    def _view(self, dossier):
        return dossiers.view(dossier, self.rules.calendar.tz, self.rules.catalog)

    def _apply_once(self, event, apply):
        """Workflow's event applied by `apply(uow, data)` once (inbox consumer `intake.on_<event type>`)."""
        self.db.apply_once(event, f"intake.on_{event.event_type}", lambda uow, e: apply(uow, e.data))

    @rpc
    def health(self):
        return self.db.health()

    def _today(self):
        return utcnow().astimezone(self.rules.calendar.tz).date()

    @rpc
    def list_agencies(self):
        return [self.rules.catalog.agency_view(code) for code in self.rules.catalog.agencies]

    @rpc
    def list_procedures(self, query=None, limit=None):
        """The procedures in force matching `query`, best first; the first `limit` of them (a province
        has 2,000: a page asks for the few it shows)."""
        return [p.summary() for p in self.rules.catalog.search(query, on=self._today())[:limit]]

    @rpc
    def get_procedure(self, code, version=None):
        """The procedure's detail and where a dossier of it may be received today (`receiving_agencies`:
        its agency, or every commune for one received anywhere)."""
        catalog, today = self.rules.catalog, self._today()
        procedure = catalog.procedure(code, version=version, on=today)
        return {**procedure.detail(), "receiving_agencies": catalog.receiving_agencies(procedure, today)}

    @rpc
    def calendar_due(self, params):
        data = load_valid(CALENDAR_DUE, params)
        return due.due(self.rules, data["start"], data["days"], data["unit"], data["agency"], data["cutoff"])

    @rpc
    @audit_refusals
    def record_calendar_decision(self, payload, caller_token, idempotency_key=None):
        """The province's admin's official calendar decision: counted at once, appointments it touches moved."""
        data = load_valid(CALENDAR_DECISION, payload)
        caller = self.authorised(caller_token, "admin")
        command = Command.of(idempotency_key, "intake.record_calendar_decision", account_scope(caller.username),
                             payload)
        return run_once(self.db, command, lambda: calendar_decisions.decide(self.db, self.rules, data, caller,
                                                                            utcnow()), utcnow(), ttl_of(self.config))

    @rpc
    @audit_refusals
    def preview_catalog_import(self, payload, caller_token):
        """The province's admin's upload of the national database's lists: what importing them would
        change in the catalogue in force (new, changed, retired, unreadable rows). Read only."""
        caller = self.authorised(caller_token, "admin")
        data = load_valid(CATALOG_IMPORT, payload)
        return catalog_import.preview(self.rules.catalog_dir, data) | {"previewed_by": caller.username}

    @timer(interval=calendar_decisions.REFRESH_SECONDS)
    def refresh_calendar(self):
        """The decisions another instance recorded, counted here too within seconds (no restart)."""
        calendar_decisions.refresh(self.db.session, self.rules)

    def _once(self, idempotency_key, name, scope, request, run):
        """A command once per key (motcua.idempotency): its view, or the first one's for a repeat."""
        command = Command.of(idempotency_key, f"intake.{name}", scope, request)
        return dossiers.once(self.db, command, lambda: self._view(run()), utcnow(), ttl_of(self.config))

    def _applicant_scope(self, caller, identity: str) -> str:
        """The caller's account, or an applicant without one by who they say they are."""
        return account_scope(caller.username) if caller else applicant_scope(self.rules.search_key, identity)

    @rpc
    @audit_refusals
    def submit_dossier(self, payload, caller_token=None, idempotency_key=None):
        data = load_valid(SUBMIT_DOSSIER, payload)
        caller = self.verified_caller(caller_token) if caller_token else None
        scope = self._applicant_scope(caller, normalise_phone(data["applicant"]["phone"]))
        return self._once(idempotency_key, "submit_dossier", scope, payload,
                          lambda: dossiers.submit(self.db, self.rules, data, caller, utcnow()))

    @rpc
    @audit_refusals
    def get_dossier(self, code, caller_token):
        return self._view(dossiers.get_for_reader(self.db, code, self.verified_caller(caller_token), self.rules.tree))

    @rpc
    @audit_refusals
    def my_dossiers(self, caller_token, page=1):
        """Hồ sơ của tôi: authorised here, against the identity VNeID verified (the token's), not the gateway's say."""
        data = load_valid(SEARCH_DOSSIERS, {"page": page})
        return search.my_dossiers(self.db, self.rules.search_key, self.rules.calendar.tz,
                                  self.verified_caller(caller_token), utcnow(), self.rules.catalog, page=data["page"])

    @rpc
    @audit_refusals
    def search_dossiers(self, filters, caller_token):
        data = load_valid(SEARCH_DOSSIERS, filters)
        return search.search(self.db, self.rules.search_key, self.rules.calendar.tz, data,
                             self.verified_caller(caller_token), utcnow(), self.rules.catalog, self.rules.tree)

    @rpc
    @audit_refusals
    def get_document(self, code, document_id, caller_token):
        return dossiers.document_for_staff(self.db, self.rules.store, code, int(document_id),
                                           self.verified_caller(caller_token), self.rules.tree)

    @rpc
    @audit_refusals
    def render_form(self, code, form, caller_token):
        """A form (01–06) of the dossier as PDF, base64 (staff of an involved agency)."""
        dossier = dossiers.get_for_staff(self.db, code, self.verified_caller(caller_token), self.rules.tree)
        tz = self.rules.calendar.tz
        pdf = forms.render(form, dossier, self.rules.catalog, tz, partial(self._hand_overs, caller_token=caller_token),
                           partial(self._officers, caller_token=caller_token),
                           partial(dossiers.register_entry, self.db, dossier, tz))
        return {"content_base64": base64.b64encode(pdf).decode()}

    @rpc
    @audit_refusals
    def log_book(self, agency_code, query, caller_token):
        """Sổ theo dõi hồ sơ (form 07) of an agency for a period (`query`: from, to, format), as PDF or
        XLSX, base64 (its staff and those of the agencies above it)."""
        data = load_valid(LOG_BOOK, query)
        caller, tz, catalog = self.verified_caller(caller_token), self.rules.calendar.tz, self.rules.catalog
        if agency_code not in catalog.agencies:
            raise NotFound(f"no agency {agency_code}", field="agency_code")
        entries = dossiers.log_book(self.db, agency_code, data["date_from"], data["date_to"], caller,
                                    self.rules.tree, tz)
        rows = forms.log_rows(entries, catalog, tz)
        first, last, kind = data["date_from"], data["date_to"], data["format"]
        content = (forms.log_book_xlsx(catalog, agency_code, first, last, rows) if kind == "xlsx"
                   else forms.log_book_pdf(catalog, agency_code, first, last, rows, tz, utcnow()))
        return {"content_base64": base64.b64encode(content).decode(), "content_type": forms.LOG_BOOK_TYPES[kind],
                "filename": f"so-theo-doi-{agency_code}-{first:%Y%m%d}-{last:%Y%m%d}.{kind}"}

    def _hand_overs(self, dossier_code, caller_token):
        """workflow's hand-overs (form 06), asked with the officer's own token."""
        return self.workflow.dossier_history(dossier_code, caller_token=caller_token)

    def _officers(self, usernames, caller_token):
        """The gateway's accounts behind the usernames a form names (full name and title), asked with the
        officer's own token."""
        found = self.gateway.officers(sorted(usernames), caller_token=caller_token)
        return {name: forms.Officer(o["full_name"], o["title"]) for name, o in found.items()}

    @rpc
    @audit_refusals
    def national_portal_records(self, codes, caller_token):
        """{code: the portal's part of the dossier} (services/intake/portal.py) for reporting's push to the
        national portal (DVCQG), which sends it on and stores none of it; unknown codes are left out. Only
        reporting's own token (`motcua tokens reporting`) or a platform admin's is answered, checked here:
        the broker's permissions (motcua/broker_permissions.py) and the gateway having no route to it are
        a second line, not the only one."""
        self.authorised(caller_token, PORTAL_SYNC_ROLE)
        if not isinstance(codes, list) or len(codes) > portal.MAX_CODES or not all(
                isinstance(code, str) and 0 < len(code) <= 40 for code in codes):
            raise ValidationFailed(f"a list of at most {portal.MAX_CODES} dossier codes", field="codes")
        found = {}
        for code in dict.fromkeys(codes):
            dossier = self.db.dossiers.get(code, for_update=False)
            if dossier is not None:
                try:
                    procedure = self.rules.catalog.procedure(dossier.procedure_code, version=dossier.procedure_version)
                except NotFound:
                    procedure = None
                found[code] = portal.record(dossier, procedure)
        return found

    @timer(interval=postal.PUSH_INTERVAL)
    def send_postal_orders(self):
        """The carrier's orders for the shipments due (idle while the connector is off)."""
        if self.postal_service is not None:
            names = {code: agency["name"] for code, agency in self.rules.catalog.agencies.items()}
            return postal.send_due(self.db, self.postal_service, names, utcnow())

    @rpc
    def postal_callback(self, signature, body):
        """The postal service's news of a shipment, as the gateway received it (raw body, signature)."""
        if self.postal_service is None:
            raise NotFound("the postal service is not connected", field="carrier")
        if not isinstance(body, str) or not isinstance(signature, (str, type(None))):
            raise ValidationFailed("the raw body and its signature", field="body")
        return postal.apply_callback(self.db, self.postal_service.settings, self.postal_service.metrics, signature,
                                     body, utcnow())

    @rpc
    @audit_refusals
    def receive_dossier(self, code, caller_token, idempotency_key=None):
        caller = self.verified_caller(caller_token)
        return self._once(idempotency_key, "receive_dossier", account_scope(caller.username), [code],
                          lambda: dossiers.receive(self.db, self.rules, code, caller, utcnow()))

    @rpc
    @audit_refusals
    def refuse_dossier(self, code, reason, caller_token, idempotency_key=None):
        data = load_valid(REFUSE_DOSSIER, {"reason": reason})
        caller = self.verified_caller(caller_token)
        return self._once(idempotency_key, "refuse_dossier", account_scope(caller.username), [code, reason],
                          lambda: dossiers.refuse(self.db, code, data["reason"], caller, utcnow()))

    @rpc
    @audit_refusals
    def request_supplement(self, code, payload, caller_token, idempotency_key=None):
        data = load_valid(REQUEST_SUPPLEMENT, payload)
        caller = self.verified_caller(caller_token)
        return self._once(idempotency_key, "request_supplement", account_scope(caller.username), [code, payload],
                          lambda: dossiers.request_supplement(self.db, code, data["items"], data["note"], caller,
                                                             utcnow()))

    @rpc
    @audit_refusals
    def supplement_dossier(self, code, payload, caller_token=None, idempotency_key=None):
        data = load_valid(APPLICANT_ACTION, payload)
        caller = self.verified_caller(caller_token) if caller_token else None
        return self._once(idempotency_key, "supplement_dossier", self._applicant_scope(caller, _identity(data)),
                          [code, payload], lambda: dossiers.supplement(self.db, self.rules, code, caller, _proof(data),
                                                                       utcnow(), data["documents"]))

    @rpc
    @audit_refusals
    def withdraw_dossier(self, code, payload, caller_token=None, idempotency_key=None):
        data = load_valid(APPLICANT_ACTION, payload)
        caller = self.verified_caller(caller_token) if caller_token else None
        return self._once(idempotency_key, "withdraw_dossier", self._applicant_scope(caller, _identity(data)),
                          [code, payload],
                          lambda: dossiers.withdraw(self.db, code, data["reason"], caller, _proof(data), utcnow()))

    @rpc
    @audit_refusals
    def rate_dossier(self, code, payload, caller_token=None, idempotency_key=None):
        data = load_valid(RATE_DOSSIER, payload)
        caller = self.verified_caller(caller_token) if caller_token else None
        return self._once(idempotency_key, "rate_dossier", self._applicant_scope(caller, _identity(data)),
                          [code, payload], lambda: dossiers.rate(self.db, code, data["rating"], data["comment"],
                                                                 caller, _proof(data), utcnow()))

    @rpc
    @audit_refusals
    def reschedule_dossier(self, code, payload, caller_token, idempotency_key=None):
        data = load_valid(RESCHEDULE_DOSSIER, payload)
        caller = self.verified_caller(caller_token)
        return self._once(idempotency_key, "reschedule_dossier", account_scope(caller.username), [code, payload],
                          lambda: dossiers.reschedule(self.db, code, data["new_due_at"], data["reason"], caller,
                                                      utcnow()))

    @rpc
    @audit_refusals
    def return_result(self, code, method, caller_token, idempotency_key=None):
        data = load_valid(RETURN_RESULT, {"method": method})
        caller = self.verified_caller(caller_token)
        return self._once(idempotency_key, "return_result", account_scope(caller.username), [code, method],
                          lambda: dossiers.return_result(self.db, code, data["method"], caller, utcnow()))

    @event_handler("workflow", "task_assigned")
    def on_task_assigned(self, event):
        self._apply_once(event, dossiers.task_assigned)

    @event_handler("workflow", "result_ready")
    def on_result_ready(self, event):
        self._apply_once(event, partial(online_payments.result_ready, refund_on=self.payments.refund_on))

    @event_handler("workflow", "supplement_needed")
    def on_supplement_needed(self, event):
        self._apply_once(event, dossiers.supplement_needed)

    @event_handler("workflow", "payment_required")
    def on_payment_required(self, event):
        self._apply_once(event, dossiers.payment_required)

    @event_handler("workflow", "processing_stopped")
    def on_processing_stopped(self, event):
        self._apply_once(event, partial(online_payments.processing_stopped, refund_on=self.payments.refund_on))

    @event_handler("workflow", "delay_predicted")
    def on_delay_predicted(self, event):
        self._apply_once(event, dossiers.delay_predicted)

    @event_handler("workflow", "task_completed")
    def on_task_completed(self, event):
        if event.data["documents"]:  # a completion without documents changes nothing here: not even the inbox
            self._apply_once(event, dossiers.task_completed)

    @rpc
    @audit_refusals
    def store_step_documents(self, code, uploads, caller_token):
        data = load_valid(STEP_DOCUMENTS, {"documents": uploads})
        caller = self.verified_caller(caller_token)
        return dossiers.store_step_documents(self.db, self.rules, code, data["documents"], caller,
                                             self.signing.signer)

    @rpc
    @audit_refusals
    def start_payment(self, code, payload, caller_token=None, idempotency_key=None):
        """Thanh toán trực tuyến: an order for what a dossier awaiting payment owes, and the platform's URL."""
        data = load_valid(APPLICANT_ACTION, payload)
        caller = self.verified_caller(caller_token) if caller_token else None
        platform = self._platform()
        return online_payments.start(self.db, self.rules, platform, self.payments.settings, self.payments.metrics,
                                     code, caller, _proof(data), utcnow())

    @rpc
    @audit_refusals
    def payment_notification(self, params):
        """The platform's signed server-to-server notification (IPN): its answer (`RspCode`); a forged
        one is refused (Unauthorized, recorded as access_denied) and never applied."""
        notice = self._notice(params)
        return online_payments.settle(self.db, self.rules, notice, utcnow(), self.payments.metrics)

    @rpc
    @audit_refusals
    def payment_return(self, params):
        """The browser's signed return from the platform: what we know of the order (no state change)."""
        return online_payments.order_status(self.db, self._notice(params))

    @rpc
    @audit_refusals
    def reconcile_payments(self, day, caller_token):
        """Đối soát one day's statement of the platform (a platform admin; the timer does yesterday's)."""
        self.authorised(caller_token, "admin")
        return online_payments.reconcile(self.db, self.rules, self._platform(), _day(day), utcnow(),
                                         self.payments.metrics)

    @timer(interval=3600)
    def reconcile_yesterday(self):
        """Every hour, yesterday's statement once more: cheap, idempotent, and a day's lost notification
        is applied within the next day wherever the platform's statement lags."""
        if self.payments.platform is None:
            return
        yesterday = (utcnow().astimezone(self.rules.calendar.tz) - timedelta(days=1)).date()
        online_payments.reconcile(self.db, self.rules, self.payments.platform, yesterday, utcnow(),
                                  self.payments.metrics)

    @timer(interval=30)
    def send_refunds(self):
        """Refunds due (marked with the outcome that calls for one) sent to the platform, each claimed by
        one instance; the platform away: tried again after a growing delay (online_payments.send_refunds)."""
        if self.payments.platform is not None:
            online_payments.send_refunds(self.db, self.payments.platform, utcnow(), self.payments.metrics)

    def _platform(self):
        if self.payments.platform is None:
            raise NotFound("online payment is not configured here: pay at the counter", field="payment")
        return self.payments.platform

    def _notice(self, params) -> Notice:
        if not isinstance(params, dict) or not all(isinstance(v, str) for v in params.values()):
            raise ValidationFailed("the platform's parameters are text", field="params")
        try:
            return self._platform().notification(params)
        except Unauthorized:
            self.payments.metrics.notifications.labels("forged").inc()
            raise

    @rpc
    @audit_refusals
    def certify_copy(self, code, document_id, caller_token, idempotency_key=None):
        """Chứng thực điện tử: the document's copy signed by the certifying officer (receptionist or specialist)."""
        caller = self.verified_caller(caller_token)
        if not isinstance(document_id, int):
            raise ValidationFailed("a document's number", field="document_id")
        return self._once(idempotency_key, "certify_copy", account_scope(caller.username), [code, document_id],
                          lambda: dossiers.certify_copy(self.db, self.rules, code, document_id, caller,
                                                        self.signing.signer, utcnow()))

    @rpc
    def verify_signature(self, payload):
        """Public (no caller): who signed a PDF, when, and whether the signature holds (tra cứu ký số)."""
        data = load_valid(VERIFY_SIGNATURE, payload)
        try:
            pdf = base64.b64decode(data["content_base64"], validate=True)
        except ValueError:
            raise ValidationFailed("not base64", field="content_base64") from None
        if not pdf.startswith(b"%PDF-"):
            raise ValidationFailed("not a PDF", field="content_base64")
        return {**self.signing.verify(pdf), "sha256": hashlib.sha256(pdf).hexdigest()}

    @rpc
    @audit_refusals
    def confirm_payment(self, code, payload, caller_token, idempotency_key=None):
        data = load_valid(CONFIRM_PAYMENT, payload)
        caller = self.verified_caller(caller_token)
        return self._once(idempotency_key, "confirm_payment", account_scope(caller.username), [code, payload],
                          lambda: dossiers.confirm_payment(self.db, self.rules, code, data["receipt_number"], caller,
                                                           utcnow()))


def _day(value) -> date:
    try:
        return date.fromisoformat(str(value))
    except ValueError:
        raise ValidationFailed("a date as YYYY-MM-DD", field="date") from None


def _proof(data: dict) -> dossiers.ApplicantProof:
    return dossiers.ApplicantProof(data["key"], data["id_number"])


def _identity(data: dict) -> str:
    """Who an applicant acting without an account says they are: their proof."""
    return f"{data['id_number']}:{data['key']}"
