"""The dossier (hồ sơ) as a plain object: its state and the rules of its lifecycle (vòng đời hồ sơ).

Each method checks one rule (who may act, `motcua.contracts.lifecycle`'s transition table), changes the
dossier and records the events to publish in `events`. Every event carries the status it leads to, the
dossier's version (one more per event: 1 for `dossier_submitted`) and the appointment in force after it.
No database, no bus, no clock, no files: the service layer loads the dossier, calls one method, saves
it, emits what it recorded and commits; due dates come from the `Schedule` it passes in.
"""
from __future__ import annotations

import hmac
from dataclasses import dataclass, field, replace
from datetime import date, datetime, timedelta
from typing import TYPE_CHECKING

from motcua.contracts.events import STATUS_CODES
from motcua.contracts.lifecycle import FEE_PAYABLE, TRANSITIONS, allowed_actions, may
from motcua.errors import Conflict, Forbidden, IllegalTransition, Unauthorized, ValidationFailed, WrongKey
from motcua.privacy import mask_name
from services.intake.documents import check as check_documents
from services.intake.documents import require_complete

if TYPE_CHECKING:
    from motcua.calendar import WorkingCalendar
    from motcua.identity import Caller
    from services.intake.catalog import Procedure
    from services.intake.documents import Upload

SYSTEM = "system"  # the actor of what workflow's events decide
APPLICANT = "applicant"  # the actor when the applicant acts without an account
POSTAL_SERVICE = "vnpost"  # the actor of what the postal service reports (bưu chính công ích)
# The event that makes a shipment asked for due, and its instant: the dossier picked up once submitted,
# the result delivered once ready.
OWED_ON = {"dossier_submitted": "pickup", "dossier_result_ready": "delivery"}
OWED_AT = {"dossier_submitted": "submitted_at", "dossier_result_ready": "finished_at"}
IMPORTED = "import"  # the actor of what `motcua history import` brought from the old system
PAYMENT_PLATFORM = "payment-platform"  # the actor of a payment the national payment platform confirmed
CERTIFIED_PREFIX = "certified:"  # a certified electronic copy (chứng thực điện tử) of one of the documents
STEP_DOCUMENT_PREFIX = "step:"  # a step's own documents (its minutes, the signed result), not the applicant's


@dataclass(frozen=True)
class Action:
    """A decision on the dossier (nhật ký xử lý): what, the status it led to, when, who, which agency."""

    action: str
    status: str
    status_code: int
    at: datetime
    actor: str
    agency_code: str
    note: str | None = None


@dataclass(frozen=True)
class SupplementRequest:
    """A supplement request (form 02, every missing item at once) and its answer."""

    requested_at: datetime
    requested_by: str
    agency_code: str
    items: tuple[str, ...]
    note: str | None
    due_before: datetime | None
    supplemented_at: datetime | None = None
    supplemented_by: str | None = None
    due_after: datetime | None = None


@dataclass(frozen=True)
class Reschedule:
    """An apology with a new appointment date (form 04)."""

    rescheduled_at: datetime
    rescheduled_by: str
    agency_code: str
    old_due_at: datetime
    new_due_at: datetime
    reason: str
    late_apology: bool  # issued after the old appointment had passed (the law asks for before)
    # the agency whose step made the dossier late, in whose name form 04 is issued (Circular 03/2025,
    # Annex I, form 04); the receiving agency when no late step was known (records before it: None)
    late_agency_code: str | None = None


@dataclass(frozen=True)
class Document:
    """A document on file; its bytes are in the blob store under `sha256`. `id` numbers it in its dossier."""

    id: int
    key: str
    filename: str
    content_type: str
    size: int
    sha256: str
    uploaded_at: datetime
    uploaded_by: str


@dataclass(frozen=True)
class ApplicantProof:
    """How an applicant without an account shows a dossier is theirs: the tracking key (the phone's
    last 4 digits, as for tracking), then the ID number on file."""

    key: str | None
    id_number: str | None


@dataclass(frozen=True)
class Schedule:
    """How a dossier's appointment (ngày hẹn trả) is computed: the terms of the procedure version it was
    received under, in the receiving agency's office hours."""

    procedure: Procedure
    calendar: WorkingCalendar

    def due(self, channel: str, start: datetime) -> datetime:
        """The channel's processing time from `start`. A time of 0 days means "within the day" (trong
        ngày): the close of the day of receipt, or of the next working day when received after the cut-off."""
        terms = self.procedure.terms(channel)
        if terms.unit == "working_days" and terms.days == 0:
            return self.calendar.close_of_day(start, cutoff=self.procedure.cutoff)
        return self.calendar.due(start, terms.days, terms.unit, cutoff=self.procedure.cutoff)

    def resumed(self, channel: str, due_at: datetime | None, paused_at: datetime, resumed_at: datetime
                ) -> datetime | None:
        """The due date once the clock runs again. Resume (the default): the old due date plus the time
        the clock stood still — working time, re-snapped to working time; for calendar-day procedures the
        days it stood still, the period's new last day rolled as the Civil Code rolls it (art. 148: a day
        off moves the end to the next working day's close). Restart (a per-procedure setting): the whole
        processing time again from now."""
        if due_at is None:
            return None  # paused before reception: the clock has not started yet
        if self.procedure.on_supplement == "restart":
            return self.due(channel, resumed_at)
        if self.procedure.terms(channel).unit == "calendar_days":
            tz = self.calendar.tz
            paused_days = (resumed_at.astimezone(tz).date() - paused_at.astimezone(tz).date()).days
            return self.calendar.add_calendar_days(due_at, paused_days)
        paused = self.calendar.working_time_between(paused_at, resumed_at)
        return due_at if paused == timedelta(0) else self.calendar.add_working_time(due_at, paused)


def submitter(agency_code: str, channel: str, caller: Caller | None) -> str | None:
    """Who may submit: anyone online (None: the applicant, without an account); at the counter or by
    post only a receptionist of the receiving agency (`agency_code`). Checked before anything else of a
    submission is written."""
    if caller is not None and caller.is_citizen:
        if channel != "online":
            raise Forbidden("a citizen submits online", field="channel")
        return None  # the applicant themself, as without an account
    if channel != "online":
        if caller is None:
            raise Forbidden("counter and postal submissions are made by a receptionist", field="channel")
        caller.require("receptionist", agency_code=agency_code)
    return caller.username if caller else None


def dossier_code(agency_code: str, day: date, number: int) -> str:
    """`{agency e-ID}-{yyMMdd}-{NNNN}`: the `number`-th dossier the agency received on that (local) day."""
    if number > 9999:
        raise Conflict(f"agency {agency_code} reached 9999 dossiers on {day:%d/%m/%Y}")
    return f"{agency_code}-{day:%y%m%d}-{number:04d}"


def unknown(code: str) -> str:
    """What an unknown code is answered (and a wrong tracking key, so that it tells nothing more)."""
    return f"no dossier {code}"


def last4(phone: str) -> str:
    return "".join(c for c in phone if c.isdigit())[-4:]


@dataclass(kw_only=True, eq=False)
class Dossier:
    """A dossier and the rules that change it. The fields are what intake stores (one row); `agencies`
    every agency involved (the receiving one, and each a step was routed to); `events` what the last
    calls recorded and the service layer has not emitted yet."""

    id: int | None = None
    code: str
    version: int = 0  # one more per event published about the dossier
    procedure_code: str
    procedure_version: int
    procedure_name: str
    field_code: str
    agency_code: str
    channel: str
    status: str | None = None
    status_code: int | None = None
    # Personal data stays in intake; events carry it only toward notify (`contact`).
    applicant_name: str
    applicant_id_number: str
    applicant_phone: str
    applicant_email: str | None = None
    applicant_address: str | None = None
    applicant_type: str = "individual"
    applicant_tax_code: str | None = None
    # the applicant signed in with VNeID to submit: name and ID number are the identity provider's
    # (tài khoản được xác thực với VNeID, a flag the national portal receives)
    vneid_verified: bool = False
    # for staff search without reading personal data in clear: keyed hashes and the folded name
    applicant_id_hash: str | None = None
    applicant_phone_hash: str | None = None
    applicant_name_folded: str | None = None
    form: dict = field(default_factory=dict)
    submitted_at: datetime
    submitted_by: str | None = None
    received_at: datetime | None = None
    due_at: datetime | None = None
    # the appointment written on form 01 at reception; later moves of `due_at` (pauses, form 04) leave it
    appointed_at: datetime | None = None
    refused_at: datetime | None = None
    refusal_reason: str | None = None
    result_ready_at: datetime | None = None
    returned_at: datetime | None = None
    return_method: str | None = None
    # while the clock stands still (supplement asked, status 5; payment due, status 6): since when, and
    # the status the dossier resumes
    paused_at: datetime | None = None
    resume_status: str | None = None
    withdrawn_at: datetime | None = None
    withdrawal_reason: str | None = None
    # a step's financial obligation (nghĩa vụ tài chính, status 6): the amount, and the payment confirmed
    payment_amount_vnd: int | None = None
    payment_note: str | None = None
    paid_at: datetime | None = None
    payment_receipt: str | None = None
    # the result: "approved" (the document asked for) or "refused" by a step, with its reason
    result_outcome: str | None = None
    result_note: str | None = None
    # processing stopped by a step (dừng xử lý, status 8, form 05)
    stopped_at: datetime | None = None
    stop_reason: str | None = None
    # workflow predicted a late result: the appointment form 04 should propose, before the due date
    proposed_due_at: datetime | None = None
    delaying_agency_code: str | None = None  # the late step's agency, with `proposed_due_at`
    # satisfaction (đánh giá mức độ hài lòng), once, after the result was returned
    rating: int | None = None
    rating_comment: str | None = None
    rated_at: datetime | None = None
    # the public postal service (bưu chính công ích) the applicant asked for: "pickup" of the dossier,
    # "delivery" of the result
    postal_services: tuple[str, ...] = ()
    history: tuple[Action, ...] = ()
    supplements: tuple[SupplementRequest, ...] = ()
    reschedules: tuple[Reschedule, ...] = ()
    documents: tuple[Document, ...] = ()
    agencies: tuple[str, ...] = ()
    events: list[tuple[str, dict]] = field(default_factory=list, repr=False)

    # -- submission ---------------------------------------------------------------------------------

    @classmethod
    def submit(cls, *, code: str, procedure: Procedure, agency_code: str, channel: str, submitted_by: str | None,
               applicant: dict, search_keys: dict, form: dict, uploads: list[Upload], now: datetime,
               tracking_key: str, postal_services: tuple[str, ...] = (), vneid_verified: bool = False) -> Dossier:
        """Nộp hồ sơ by `submitted_by` (see `submitter`) at the receiving agency `agency_code` (the
        procedure's own, or the commune chosen for one received anywhere: `Catalog.receiving_agency`).
        `applicant` as validated (phone normalised); `tracking_key` the public key of this code;
        `vneid_verified`: name and ID number come from the applicant's VNeID sign-in."""
        actor = submitted_by or APPLICANT
        dossier = cls(
            code=code, procedure_code=procedure.code, procedure_version=procedure.version,
            procedure_name=procedure.name, field_code=procedure.field_code, agency_code=agency_code,
            channel=channel, applicant_name=applicant["full_name"], applicant_id_number=applicant["id_number"],
            applicant_phone=applicant["phone"], applicant_email=applicant.get("email"),
            applicant_address=applicant.get("address"), applicant_type=applicant.get("type", "individual"),
            applicant_tax_code=applicant.get("tax_code"), **search_keys, form=form, submitted_at=now,
            submitted_by=submitted_by, agencies=(agency_code,), postal_services=tuple(postal_services),
            vneid_verified=vneid_verified)
        if postal_services and not dossier.applicant_address:
            raise ValidationFailed("the postal service needs the applicant's address", field="applicant.address")
        refs = check_documents(uploads, procedure)
        if channel == "online":  # the counter may receive an incomplete one and ask for a supplement
            require_complete(uploads, procedure)
        dossier._attach(refs, actor, now)
        dossier._record("submit", dossier._transition("submit"), "dossier_submitted", {
            **dossier._facts(), "submitted_at": now, "applicant_masked": mask_name(dossier.applicant_name),
            "tracking_key": tracking_key, "contact": dossier._contact() if channel == "online" else None},
            at=now, actor=actor, note=f"channel {channel}")
        return dossier

    @classmethod
    def imported(cls, *, record: dict, procedure: Procedure, applicant: dict, search_keys: dict,
                 tracking_key: str) -> Dossier:
        """Hồ sơ của hệ thống cũ: a dossier as the old system's export left it (`record`, validated as
        docs/history-format.md says), brought in as the events its life implies, each stamped with its
        own time and marked `imported`: submitted, then received (the appointment as the old system fixed
        it) or refused, processing from the first step, paused, stopped, withdrawn, result ready,
        returned, as far as its final status goes. Its steps make their agencies involved and join the
        history (no process run: workflow owns those, and nothing of it is replayed). The contact on the
        events is the masked name only: nobody is messaged about the past."""
        status, at = record["status"], record.get("finished_at")
        dossier = cls(
            code=record["code"], procedure_code=procedure.code, procedure_version=procedure.version,
            procedure_name=procedure.name, field_code=procedure.field_code, agency_code=record["agency_code"],
            channel=record["channel"], applicant_name=applicant["full_name"],
            applicant_id_number=applicant["id_number"], applicant_phone=applicant["phone"],
            applicant_email=applicant.get("email"), applicant_address=applicant.get("address"),
            applicant_type=applicant.get("type", "individual"), applicant_tax_code=applicant.get("tax_code"),
            **search_keys, form={}, submitted_at=record["submitted_at"], submitted_by=IMPORTED,
            agencies=tuple(dict.fromkeys((record["agency_code"], *(s["agency_code"] for s in record["steps"])))))
        note = record.get("note") or "imported"
        contact = {"full_name": mask_name(dossier.applicant_name), "email": None, "phone": None}

        def record_(action: str, event_type: str, data: dict, when: datetime, agency_code: str | None = None):
            dossier._record(action, dossier._transition(action), event_type, {**data, "imported": True},
                            at=when, actor=IMPORTED, agency_code=agency_code, note=record.get("note"))

        record_("submit", "dossier_submitted", {
            **dossier._facts(), "submitted_at": dossier.submitted_at,
            "applicant_masked": contact["full_name"], "tracking_key": tracking_key}, dossier.submitted_at)
        if status == "refused":
            dossier.refused_at, dossier.refusal_reason = at, note
            record_("refuse", "dossier_refused", {**dossier._facts(), "refused_at": at, "refused_by": IMPORTED,
                                                  "reason": note, "contact": contact}, at)
            return dossier
        if record.get("received_at") is not None:
            dossier.received_at = record["received_at"]
            dossier.due_at = dossier.appointed_at = record["due_at"]
            record_("receive", "dossier_received", {
                **dossier._facts(), "received_at": dossier.received_at, "received_by": IMPORTED, "form": {},
                "contact": contact}, dossier.received_at)
        steps = record["steps"]
        for step in steps:
            dossier.history = (*dossier.history, Action(
                "step", dossier.status, dossier.status_code, step["finished_at"] or step["started_at"], IMPORTED,
                step["agency_code"], " · ".join(filter(None, (step.get("step"), step.get("outcome"))))))
        started = status in ("processing", "awaiting_payment", "result_ready", "returned") or (
            steps and status in ("supplement_requested", "stopped", "withdrawn"))
        if started and dossier.received_at is not None:
            first = steps[0] if steps else None
            when = first["started_at"] if first else dossier.received_at
            record_("start_processing", "dossier_processing_started", {"started_at": when}, when,
                    agency_code=first["agency_code"] if first else None)
        if status == "supplement_requested":
            dossier._ask_supplement([note], None, IMPORTED, record["paused_at"],
                                    imported={"imported": True, "contact": contact})
        elif status == "awaiting_payment":
            dossier.paused_at, dossier.resume_status = record["paused_at"], "processing"
            dossier.payment_amount_vnd = record.get("amount_vnd") or 0
            record_("require_payment", "payment_requested", {
                "agency_code": dossier.agency_code, "requested_at": record["paused_at"],
                "amount_vnd": dossier.payment_amount_vnd, "note": "", "contact": contact}, record["paused_at"])
        elif status == "stopped":
            dossier.stopped_at, dossier.stop_reason = at, note
            record_("stop", "dossier_stopped", {"agency_code": dossier.agency_code, "stopped_at": at, "reason": note,
                                                "contact": contact}, at)
        elif status == "withdrawn":
            dossier.withdrawn_at, dossier.withdrawal_reason = at, record.get("note")
            record_("withdraw", "dossier_withdrawn", {"withdrawn_at": at, "withdrawn_by": IMPORTED,
                                                      "reason": record.get("note") or ""}, at)
        elif status in ("result_ready", "returned"):
            dossier.result_ready_at, dossier.result_outcome = at, record.get("outcome") or "approved"
            record_("result_ready", "dossier_result_ready", {
                "procedure_name": dossier.procedure_name, "agency_code": dossier.agency_code, "finished_at": at,
                "contact": contact}, at)
            if status == "returned":
                dossier.returned_at = record.get("returned_at") or at
                dossier.return_method = record.get("return_method") or "counter"
                record_("return", "result_returned", {
                    "returned_at": dossier.returned_at, "method": dossier.return_method, "returned_by": IMPORTED,
                    "contact": contact}, dossier.returned_at)
        return dossier

    # -- the counter's decisions (tiếp nhận, từ chối, bổ sung, rút, hẹn lại, trả kết quả) -----------

    def receive(self, caller: Caller, schedule: Schedule, now: datetime) -> None:
        """Tiếp nhận: fixes the due date (ngày hẹn trả) in working time from the moment of receipt."""
        caller.require("receptionist", agency_code=self.agency_code)
        status = self._transition("receive")
        self.received_at, self.due_at = now, schedule.due(self.channel, now)
        self.appointed_at = self.due_at
        self._record("receive", status, "dossier_received", {
            **self._facts(), "received_at": now, "received_by": caller.username, "form": self.form,
            "contact": self._contact()}, at=now, actor=caller.username)

    def refuse(self, caller: Caller, reason: str, now: datetime) -> None:
        """Từ chối tiếp nhận, with the reason the applicant will read (form 03)."""
        if not reason or not reason.strip():
            raise ValidationFailed("a refusal needs a reason", field="reason")
        caller.require("receptionist", agency_code=self.agency_code)
        status = self._transition("refuse")
        self.refused_at, self.refusal_reason = now, reason.strip()
        self._record("refuse", status, "dossier_refused", {
            **self._facts(), "refused_at": now, "refused_by": caller.username, "reason": self.refusal_reason,
            "contact": self._contact()}, at=now, actor=caller.username, note=self.refusal_reason)

    def request_supplement(self, caller: Caller, items: list[str], note: str | None, now: datetime) -> None:
        """Yêu cầu bổ sung (form 02): every missing item listed at once; the clock stops (status 5)
        until the applicant supplies them. The counter asks, before or after reception."""
        items = [item.strip() for item in items if item and item.strip()]
        if not items:
            raise ValidationFailed("list every missing item", field="items")
        caller.require("receptionist", agency_code=self.agency_code)
        self._ask_supplement(items, note, caller.username, now)

    def supplement(self, caller: Caller | None, proof: ApplicantProof | None, uploads: list[Upload],
                   schedule: Schedule, now: datetime) -> None:
        """Bổ sung hồ sơ: the applicant (online, with their proof) or the counter on their behalf, with
        the documents asked for; the clock resumes with a new due date."""
        actor = self._applicant_or_receptionist(caller, proof)
        status = self._transition("supplement")
        self._attach(check_documents(uploads, schedule.procedure), actor, now)
        self.due_at = schedule.resumed(self.channel, self.due_at, self.paused_at, now)
        self.supplements = (*self.supplements[:-1], replace(
            self.supplements[-1], supplemented_at=now, supplemented_by=actor, due_after=self.due_at))
        self.paused_at = self.resume_status = None
        self._record("supplement", status, "dossier_supplemented", {"supplemented_at": now}, at=now, actor=actor)

    def withdraw(self, caller: Caller | None, proof: ApplicantProof | None, reason: str | None,
                 now: datetime) -> None:
        """Rút hồ sơ on the applicant's request (status 7): online with their proof, or at the counter."""
        actor = self._applicant_or_receptionist(caller, proof)
        status = self._transition("withdraw")
        self.withdrawn_at, self.withdrawal_reason = now, (reason or "").strip() or None
        self.paused_at = self.resume_status = None
        self._record("withdraw", status, "dossier_withdrawn", {
            "withdrawn_at": now, "withdrawn_by": actor, "reason": self.withdrawal_reason or ""},
            at=now, actor=actor, note=self.withdrawal_reason)

    def reschedule(self, caller: Caller, new_due_at: datetime, reason: str, now: datetime) -> None:
        """Xin lỗi và hẹn lại ngày trả kết quả (form 04): the receiving agency apologises and fixes a later
        appointment; from now on the dossier is judged against it. The law asks for the apology before the
        appointment passes; one issued after it is still accepted (a late apology beats none) and recorded
        as `late_apology`, so leaders can see it."""
        reason = (reason or "").strip()
        if not reason:
            raise ValidationFailed("an apology needs its reason", field="reason")
        caller.require("receptionist", agency_code=self.agency_code)
        status = self._transition("reschedule")
        old_due_at = self.due_at
        if old_due_at is None:
            raise Conflict("the dossier has no appointment yet: it was paused before reception", field="status")
        if new_due_at <= max(old_due_at, now):
            raise ValidationFailed("the new appointment must be later than the current one and than now",
                                   field="new_due_at")
        self.reschedules = (*self.reschedules, Reschedule(
            rescheduled_at=now, rescheduled_by=caller.username, agency_code=self.agency_code,
            old_due_at=old_due_at, new_due_at=new_due_at, reason=reason, late_apology=now > old_due_at,
            late_agency_code=self.delaying_agency_code or self.agency_code))
        self.due_at, self.proposed_due_at, self.delaying_agency_code = new_due_at, None, None
        self._record("reschedule", status, "dossier_rescheduled", {
            "agency_code": self.agency_code, "rescheduled_at": now, "rescheduled_by": caller.username,
            "old_due_at": old_due_at, "new_due_at": new_due_at, "reason": reason, "contact": self._contact()},
            at=now, actor=caller.username, note=reason)

    def recalendar(self, new_due_at: datetime, decided_by: str, source: str, now: datetime) -> None:
        """An official calendar decision recorded after reception made a day of the dossier's span a day
        off: the appointment moves to what the decision gives (never earlier: the applicant keeps the
        date handed out). Not an apology (form 04 is the agency's, for its own delay): no `reschedules`
        entry, but the same event, `dossier_rescheduled`, with the reason "calendar"."""
        status = self._transition("reschedule")
        old_due_at = self.due_at
        self.due_at = new_due_at
        self._record("reschedule", status, "dossier_rescheduled", {
            "agency_code": self.agency_code, "rescheduled_at": now, "rescheduled_by": decided_by,
            "old_due_at": old_due_at, "new_due_at": new_due_at, "reason": "calendar", "contact": self._contact()},
            at=now, actor=decided_by, note=f"calendar: {source}")

    def confirm_payment(self, caller: Caller, receipt_number: str, schedule: Schedule, now: datetime) -> None:
        """Xác nhận hoàn thành nghĩa vụ tài chính: the counter confirms the receipt; the clock resumes
        with the due date moved by the time it stood still, and processing goes on."""
        caller.require("receptionist", agency_code=self.agency_code)
        self._paid(caller.username, receipt_number, schedule, now)

    def paid_online(self, receipt_number: str, receipt: dict, schedule: Schedule, now: datetime) -> None:
        """Thanh toán trực tuyến: the payment platform's signed notification confirmed the payment, as
        the counter's confirmation does, in the platform's name; the electronic receipt (biên lai điện
        tử, already stored) joins the documents."""
        self._paid(PAYMENT_PLATFORM, receipt_number, schedule, now)
        self._attach([receipt], PAYMENT_PLATFORM, now)

    def awaits_payment_of(self) -> int:
        """The amount an online payment is for, or IllegalTransition when nothing is due."""
        self._transition("confirm_payment")  # status 6 only: refused otherwise, naming what is allowed
        return self.payment_amount_vnd

    def check_applicant(self, caller: Caller | None, proof: ApplicantProof | None) -> None:
        """The applicant (signed in with VNeID, or with their proof) or the counter acts on this dossier."""
        self._applicant_or_receptionist(caller, proof)

    def _paid(self, actor: str, receipt_number: str, schedule: Schedule, now: datetime) -> None:
        status = self._transition("confirm_payment")
        self.due_at = schedule.resumed(self.channel, self.due_at, self.paused_at, now)
        self.paid_at, self.payment_receipt = now, receipt_number
        self.paused_at = self.resume_status = None
        self._record("confirm_payment", status, "payment_received", {
            "paid_at": now, "confirmed_by": actor, "receipt_number": receipt_number},
            at=now, actor=actor, note=f"receipt {receipt_number}")

    def return_result(self, caller: Caller, method: str, now: datetime) -> None:
        """Trả kết quả at the counter, by post or online."""
        caller.require("receptionist", agency_code=self.agency_code)
        status = self._transition("return")
        self.returned_at, self.return_method = now, method
        self._record("return", status, "result_returned", {
            "returned_at": now, "method": method, "returned_by": caller.username, "contact": self._contact()},
            at=now, actor=caller.username, note=f"method {method}")

    def rate(self, caller: Caller | None, proof: ApplicantProof | None, rating: int, comment: str | None,
             now: datetime) -> None:
        """Đánh giá mức độ hài lòng: once per dossier, after its result was returned (status 10)."""
        actor = self._applicant_or_receptionist(caller, proof)
        if not may("rate", self.status):
            raise Conflict("a dossier is rated once its result was returned", field="status")
        if self.rated_at is not None:
            raise Conflict("this dossier was already rated", field="rating")
        self.rating, self.rating_comment, self.rated_at = rating, (comment or "").strip() or None, now
        self._record("rate", self.status, "dossier_rated", {
            "agency_code": self.agency_code, "procedure_code": self.procedure_code, "field_code": self.field_code,
            "rating": rating, "rated_at": now}, at=now, actor=actor, note=f"rating {rating}")

    # -- what workflow's steps decide (each ignored once the dossier is past it: late or redelivered) --

    def task_assigned(self, agency_code: str, step: str, at: datetime) -> None:
        """A step was routed to an agency: it may now see the dossier; the first one starts processing."""
        if agency_code not in self.agencies:
            self.agencies = (*self.agencies, agency_code)
        if may("start_processing", self.status):
            self._record("start_processing", "processing", "dossier_processing_started", {"started_at": at},
                         at=at, actor=SYSTEM, agency_code=agency_code, note=step)
        elif self.status == "supplement_requested" and self.resume_status == "received":
            self.resume_status = "processing"  # routed while paused: the supplement resumes processing

    def supplement_needed(self, agency_code: str, items: list[str], note: str | None, requested_by: str,
                          requested_at: datetime) -> None:
        """A processing step asks for missing documents: the counter's form 02 goes out on its behalf
        (the clock stops); a dossier no longer in processing ignores a late request."""
        if self.status == "processing":
            self._ask_supplement(items, note, f"{requested_by} ({agency_code})", requested_at)

    def payment_required(self, agency_code: str, amount_vnd: int, note: str | None, at: datetime) -> None:
        """A step fixed the applicant's financial obligation: status 6, the clock stops until it is paid."""
        if not may("require_payment", self.status):
            return  # redelivered, or the dossier was withdrawn meanwhile
        status = self._transition("require_payment")
        self.paused_at, self.resume_status = at, "processing"
        self.payment_amount_vnd, self.payment_note = amount_vnd, note or None
        self._record("require_payment", status, "payment_requested", {
            "agency_code": self.agency_code, "requested_at": at, "amount_vnd": amount_vnd, "note": note or "",
            "contact": self._contact()}, at=at, actor=SYSTEM, agency_code=agency_code, note=note)

    def processing_stopped(self, agency_code: str, stopped_by: str, reason: str, at: datetime) -> None:
        """A step stopped the processing (dừng xử lý, status 8) with its reason, which the applicant is told."""
        if not may("stop", self.status):
            return
        status = self._transition("stop")
        self.stopped_at, self.stop_reason = at, reason
        self.paused_at = self.resume_status = None
        self._record("stop", status, "dossier_stopped", {
            "agency_code": self.agency_code, "stopped_at": at, "reason": reason, "contact": self._contact()},
            at=at, actor=stopped_by, agency_code=agency_code, note=reason)

    def result_ready(self, agency_code: str, finished_at: datetime, outcome: str, reason: str | None) -> None:
        """The last step finished: the result waits for the applicant (status 9)."""
        if not may("result_ready", self.status):
            return
        status = self._transition("result_ready")
        self.result_ready_at, self.result_outcome, self.result_note = finished_at, outcome, reason or None
        self._record("result_ready", status, "dossier_result_ready", {
            "procedure_name": self.procedure_name, "agency_code": self.agency_code, "finished_at": finished_at,
            "contact": self._contact()}, at=finished_at, actor=SYSTEM, agency_code=agency_code,
            note=self.result_note)

    def delay_predicted(self, proposed_due_at: datetime, late_agency_code: str) -> None:
        """Workflow foresees a late result: the counter sees the appointment form 04 should propose, and
        the agency of the late step, in whose name it is issued."""
        if may("reschedule", self.status):
            self.proposed_due_at, self.delaying_agency_code = proposed_due_at, late_agency_code

    def step_documents(self, refs: list[dict], actor: str, at: datetime) -> None:
        """A step finished with documents (already stored): they join the list, in the step's name."""
        self._attach([{**ref, "key": STEP_DOCUMENT_PREFIX + ref["key"]} for ref in refs], actor, at)

    def shipment_updated(self, kind: str, shipment_status: str, item_code: str | None, carrier_status: str,
                         at: datetime) -> None:
        """The postal service's news of a shipment (bưu chính công ích): a line of the history, and a result
        delivered by post is the result returned (status 10, method "postal"); a repeat records nothing."""
        if kind not in self.postal_services:
            raise Conflict(f"no {kind} by post was asked for this dossier", field="kind")
        note = f"{kind} {shipment_status}" + (f" {item_code}" if item_code else "")
        if any(entry.action == "postal" and entry.note == note for entry in self.history):
            return
        data = {"kind": kind, "shipment_status": shipment_status, "item_code": item_code,
                "carrier_status": carrier_status, "updated_at": at}
        self._record("postal", self.status, "postal_shipment_updated", data, at=at, actor=POSTAL_SERVICE, note=note)
        if kind == "delivery" and shipment_status == "delivered" and may("return", self.status):
            status = self._transition("return")
            self.returned_at, self.return_method = at, "postal"
            self._record("return", status, "result_returned", {
                "returned_at": at, "method": "postal", "returned_by": POSTAL_SERVICE, "contact": self._contact()},
                at=at, actor=POSTAL_SERVICE, note="method postal")
    def fee_due_online(self, fee: int) -> int:
        """Lệ phí nộp khi nộp hồ sơ: the fee of a level-4 procedure on the dossier's channel (`fee`, 0 for
        none), payable online from submission while the dossier is open and the fee not paid yet; else
        Conflict naming the status."""
        if fee <= 0 or self.fee_paid_online:
            raise Conflict("no fee of this dossier is due online", field="status")
        if self.status not in FEE_PAYABLE:
            raise Conflict(f"a fee is not paid online for a dossier {self.status}", field="status")
        return fee

    @property
    def fee_paid_online(self) -> bool:
        return any(entry.action == "pay_fee" for entry in self.history)

    def fee_paid(self, amount_vnd: int, receipt_number: str, receipt: dict, now: datetime) -> None:
        """The platform's signed notification confirmed the fee: a line of the history in its name, the
        electronic receipt (already stored) among the documents; the status unchanged."""
        self._record("pay_fee", self.status, "fee_paid", {
            "paid_at": now, "amount_vnd": amount_vnd, "receipt_number": receipt_number},
            at=now, actor=PAYMENT_PLATFORM, note=f"receipt {receipt_number}")
        self._attach([receipt], PAYMENT_PLATFORM, now)

    def payment_refunded(self, order_id: str, amount_vnd: int, refund_number: str | None, at: datetime) -> None:
        """Hoàn phí: the payment platform returned an order's amount to the payer; a line of the history in
        the platform's name, the status unchanged; the same order's refund again records nothing."""
        if any(entry.action == "refund" and entry.note.startswith(f"{order_id} ") for entry in self.history):
            return
        self._record("refund", self.status, "payment_refunded", {
            "order_id": order_id, "amount_vnd": amount_vnd, "refund_number": refund_number, "refunded_at": at},
            at=at, actor=PAYMENT_PLATFORM, note=f"{order_id} {amount_vnd} VND")

    def certified_copy(self, of: Document, ref: dict, caller: Caller, at: datetime) -> None:
        """Chứng thực bản sao điện tử từ bản chính: an officer of the receiving agency certifies that the
        copy (`ref`, signed with their own certificate, already stored) matches the original they saw."""
        caller.require("receptionist", "specialist", agency_code=self.agency_code)
        self._attach([{**ref, "key": CERTIFIED_PREFIX + of.key.removeprefix(CERTIFIED_PREFIX),
                       "filename": ref["filename"]}], caller.username, at)

    # -- for the service layer ----------------------------------------------------------------------

    def collect_events(self) -> list[tuple[str, dict]]:
        """The events recorded since the last call, in order, as `(event_type, data)`; forgets them."""
        events, self.events = self.events, []
        return events

    def document(self, document_id: int) -> Document | None:
        return next((d for d in self.documents if d.id == document_id), None)

    # -- the rules' own steps -----------------------------------------------------------------------

    def _transition(self, action: str) -> str:
        """The status `action` leads to, or IllegalTransition naming the actions open now."""
        if not may(action, self.status):
            raise IllegalTransition(
                f"cannot {action} a dossier that is {self.status}", field="status",
                details={"status": self.status, "allowed": allowed_actions(self.status)})
        return TRANSITIONS[action][1] or (self.resume_status if action == "supplement" else self.status)

    def _record(self, action: str, status: str, event_type: str, data: dict, *, at: datetime, actor: str,
                agency_code: str | None = None, note: str | None = None) -> None:
        """The dossier moves to `status`: one history entry, one version more, one event carrying both."""
        self.status, self.status_code = status, STATUS_CODES[status]
        self.version += 1
        self.history = (*self.history, Action(action, status, self.status_code, at, actor,
                                              agency_code or self.agency_code, note))
        self.events.append((event_type, {**data, "code": self.code, "status": status,
                                         "status_code": self.status_code, "dossier_version": self.version,
                                         "due_at": self.due_at}))

    def _ask_supplement(self, items: list[str], note: str | None, actor: str, now: datetime,
                        imported: dict | None = None) -> None:
        """Form 02 on the counter's behalf; `imported`: what an imported dossier's event says instead
        (the mark, the masked contact)."""
        resume = self.status
        status = self._transition("request_supplement")
        self.paused_at, self.resume_status = now, resume
        self.supplements = (*self.supplements, SupplementRequest(
            requested_at=now, requested_by=actor, agency_code=self.agency_code, items=tuple(items), note=note,
            due_before=self.due_at))
        self._record("request_supplement", status, "supplement_requested", {
            "agency_code": self.agency_code, "requested_at": now, "requested_by": actor, "items": list(items),
            "note": note or "", "contact": self._contact(), **(imported or {})}, at=now, actor=actor,
            note="; ".join(items))

    def _attach(self, refs: list[dict], actor: str, at: datetime) -> None:
        """Documents on the list, each once (a redelivered event records nothing more)."""
        for ref in refs:
            if any(d.sha256 == ref["sha256"] and d.key == ref["key"] for d in self.documents):
                continue
            number = max((d.id for d in self.documents), default=0) + 1
            self.documents = (*self.documents, Document(
                id=number, key=ref["key"], filename=ref["filename"], content_type=ref["content_type"],
                size=ref["size"], sha256=ref["sha256"], uploaded_at=at, uploaded_by=actor))

    def _applicant_or_receptionist(self, caller: Caller | None, proof: ApplicantProof | None) -> str:
        """Who acts for the applicant: a receptionist of the receiving agency, or the applicant with their
        proof. A wrong key is answered as an unknown code (the answer tells nothing of the dossier, so an
        ID number cannot be tried across codes); a wrong ID number then is a 403. Returns the actor
        recorded in the history."""
        if caller is not None and caller.is_citizen:
            # Signed in through VNeID: the verified identity is the proof. Another's dossier is answered
            # as an unknown code, as a wrong key is.
            if not hmac.compare_digest(caller.citizen_id.encode(), self.applicant_id_number.encode()):
                raise WrongKey(unknown(self.code), field="code")
            return APPLICANT
        if caller is not None:
            caller.require("receptionist", agency_code=self.agency_code)
            return caller.username
        if proof is None or not proof.key:
            raise Unauthorized("sign in as the counter, or give the tracking key and the applicant's ID number",
                               field="key")
        if not self.applicant_phone or not hmac.compare_digest(proof.key.encode(),
                                                               last4(self.applicant_phone).encode()):
            raise WrongKey(unknown(self.code), field="code")
        if not proof.id_number:
            raise Unauthorized("give the applicant's ID number", field="id_number")
        if not hmac.compare_digest(proof.id_number.encode(), self.applicant_id_number.encode()):
            raise Forbidden("the ID number does not match this dossier", field="id_number")
        return APPLICANT

    def _facts(self) -> dict:
        return {"procedure_code": self.procedure_code, "procedure_name": self.procedure_name,
                "field_code": self.field_code, "agency_code": self.agency_code, "channel": self.channel}

    def _contact(self) -> dict:
        return {"full_name": self.applicant_name, "email": self.applicant_email, "phone": self.applicant_phone}
