"""Dossier rules (hồ sơ): submission, dossier codes, reception decisions, due dates, return.

Plain functions over a UnitOfWork; nameko never appears here.
"""
from __future__ import annotations

import base64
import hashlib
import hmac
import json
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import insert, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import IntegrityError

from motcua.calendar import WorkingCalendar, local_iso
from motcua.contracts.events import STATUS_CODES
from motcua.contracts.views import DossierViewV1
from motcua.db import UnitOfWork
from motcua.errors import Conflict, Forbidden, IllegalTransition, NotFound, Unauthorized, ValidationFailed, WrongKey
from motcua.access import AgencyTree, may_read
from motcua.identity import Caller
from motcua.privacy import mask_name, tracking_key
from services.intake import documents
from services.intake.blobs import BlobStore
from services.intake.catalog import Catalog, Procedure
from services.intake.models import (
    Dossier,
    DossierAction,
    DossierAgency,
    DossierCounter,
    DossierReschedule,
    DossierSupplement,
)
from services.intake.search import applicant_keys, normalise_phone

# action -> statuses it may start from, and the status it leads to
# (request_supplement and withdraw lead back or out; supplement resumes the status recorded at the request;
# reschedule keeps the status)
TRANSITIONS = {
    "receive": ({"submitted"}, "received"),
    "refuse": ({"submitted"}, "refused"),
    "request_supplement": ({"submitted", "received", "processing"}, "supplement_requested"),
    "supplement": ({"supplement_requested"}, None),
    "withdraw": ({"submitted", "received", "processing", "supplement_requested", "awaiting_payment"}, "withdrawn"),
    "start_processing": ({"received"}, "processing"),
    "require_payment": ({"processing"}, "awaiting_payment"),
    "confirm_payment": ({"awaiting_payment"}, "processing"),
    "stop": ({"received", "processing", "supplement_requested", "awaiting_payment"}, "stopped"),
    "result_ready": ({"received", "processing"}, "result_ready"),
    "return": ({"result_ready"}, "returned"),
    "reschedule": ({"received", "processing", "supplement_requested", "awaiting_payment"}, None),
}
STAFF_ACTIONS = ("receive", "refuse", "request_supplement", "supplement", "withdraw", "confirm_payment", "return",
                 "reschedule")
SYSTEM = "system"
APPLICANT = "applicant"


class Policy:
    """What intake needs besides the database: the catalogue, the calendars, the signing secret."""

    def __init__(self, catalog: Catalog, calendar: WorkingCalendar, secret: str, store: BlobStore):
        self.catalog = catalog
        self.calendar = calendar
        self.secret = secret
        self.store = store
        self.agency_calendars = catalog.calendars(calendar)
        self.tree = AgencyTree.from_agencies(catalog.agencies.values())  # who oversees whom (parent_code)

    def calendar_for(self, agency_code: str | None) -> WorkingCalendar:
        """The agency's own office hours where agencies.yaml sets them, else the province's."""
        return self.agency_calendars.get(agency_code, self.calendar)


def allowed_actions(status: str) -> list[str]:
    return [action for action, (sources, _) in TRANSITIONS.items() if status in sources and action in STAFF_ACTIONS]


def _transition(dossier: Dossier, action: str) -> str:
    sources, target = TRANSITIONS[action]
    if dossier.status not in sources:
        raise IllegalTransition(
            f"cannot {action} a dossier that is {dossier.status}", field="status",
            details={"status": dossier.status, "allowed": allowed_actions(dossier.status)})
    return target or (dossier.resume_status if action == "supplement" else dossier.status)


def _record(dossier: Dossier, action: str, status: str, at: datetime, actor: str, agency_code: str,
            note: str | None = None) -> None:
    dossier.status, dossier.status_code = status, STATUS_CODES[status]
    dossier.history.append(DossierAction(action=action, status=status, status_code=STATUS_CODES[status],
                                         at=at, actor=actor, agency_code=agency_code, note=note))


def next_code(uow: UnitOfWork, agency_code: str, day: date) -> str:
    """`{agency e-ID}-{yyMMdd}-{NNNN}`: gap-free per agency per day, safe across instances.

    The counter row is incremented in the submitting transaction, so a rolled-back submission
    gives its number back and two instances serialize on the row lock."""
    session = uow.session
    dialect = session.get_bind().dialect.name
    table = DossierCounter.__table__
    values = {"agency_code": agency_code, "day": day, "last_value": 0}
    if dialect == "postgresql":
        session.execute(postgresql.insert(table).values(**values).on_conflict_do_nothing())
    elif dialect == "sqlite":
        session.execute(sqlite.insert(table).values(**values).on_conflict_do_nothing())
    else:
        if session.get(DossierCounter, (agency_code, day)) is None:
            session.execute(insert(table).values(**values))
    value = session.execute(
        update(table).where(table.c.agency_code == agency_code, table.c.day == day)
        .values(last_value=table.c.last_value + 1).returning(table.c.last_value)
    ).scalar_one()
    if value > 9999:
        raise Conflict(f"agency {agency_code} reached 9999 dossiers on {day:%d/%m/%Y}")
    return f"{agency_code}-{day:%y%m%d}-{value:04d}"


def submit(uow: UnitOfWork, policy: Policy, payload: dict, caller: Caller | None, now: datetime,
           idempotency_key: str | None = None) -> Dossier:
    """Nộp hồ sơ: online by anyone; at the counter or by post only through a receptionist."""
    local_day = now.astimezone(policy.calendar.tz).date()
    procedure = policy.catalog.procedure(payload["procedure_code"], on=local_day)
    channel = payload["channel"]
    if channel != "online":
        if caller is None:
            raise Forbidden("counter and postal submissions are made by a receptionist", field="channel")
        caller.require("receptionist", agency_code=procedure.agency_code)
    fingerprint = hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()
    uploads = documents.decode(payload.get("documents") or [])
    if idempotency_key:
        existing = _by_idempotency_key(uow, idempotency_key, fingerprint)
        if existing is not None:
            return existing
    applicant = payload["applicant"]
    dossier = Dossier(
        code=next_code(uow, procedure.agency_code, local_day), procedure_code=procedure.code,
        procedure_version=procedure.version, procedure_name=procedure.name, field_code=procedure.field_code,
        agency_code=procedure.agency_code, channel=channel, status="submitted", status_code=1,
        applicant_name=applicant["full_name"], applicant_id_number=applicant["id_number"],
        applicant_phone=normalise_phone(applicant["phone"]), applicant_email=applicant.get("email"),
        applicant_address=applicant.get("address"), applicant_type=applicant.get("type", "individual"),
        applicant_tax_code=applicant.get("tax_code"), **applicant_keys(policy.secret, applicant),
        form=payload.get("form") or {},
        submitted_at=now, submitted_by=caller.username if caller else None,
        idempotency_key=idempotency_key, request_fingerprint=fingerprint)
    dossier.agencies.append(DossierAgency(agency_code=procedure.agency_code))
    documents.attach(dossier, procedure, uploads, policy.store, caller.username if caller else APPLICANT, now)
    _record(dossier, "submit", "submitted", now, caller.username if caller else "applicant",
            procedure.agency_code, note=f"channel {channel}")
    uow.session.add(dossier)
    uow.emit("dossier_submitted", {
        **_facts(dossier), "submitted_at": now, "applicant_masked": mask_name(dossier.applicant_name),
        "tracking_key": tracking_key(policy.secret, dossier.code, _last4(dossier.applicant_phone))})
    try:
        uow.commit()
    except IntegrityError:
        uow.session.rollback()
        existing = _by_idempotency_key(uow, idempotency_key, fingerprint) if idempotency_key else None
        if existing is None:
            raise
        return existing
    return dossier


def _by_idempotency_key(uow: UnitOfWork, key: str, fingerprint: str) -> Dossier | None:
    existing = uow.session.scalars(select(Dossier).where(Dossier.idempotency_key == key)).first()
    if existing is not None and existing.request_fingerprint != fingerprint:
        raise Conflict("this Idempotency-Key was used for a different request", field="Idempotency-Key")
    return existing


def get(uow: UnitOfWork, code: str, for_update: bool = False) -> Dossier:
    """The dossier; `for_update` locks its row until commit, so two decisions (two receptionists,
    or two workflow events handled at once) never both pass the status check."""
    query = select(Dossier).where(Dossier.code == code)
    dossier = uow.session.scalars(query.with_for_update() if for_update else query).first()
    if dossier is None:
        raise NotFound(_unknown(code), field="code")
    return dossier


def _unknown(code: str) -> str:
    return f"no dossier {code}"


def get_for_staff(uow: UnitOfWork, code: str, caller: Caller, tree: AgencyTree) -> Dossier:
    """Staff of an agency involved in the dossier; leaders and agency admins of an agency above one
    (cơ quan cấp trên, `tree`); a platform admin."""
    dossier = get(uow, code)
    involved = {a.agency_code for a in dossier.agencies}
    if not may_read(caller, involved, tree):
        raise Forbidden("this dossier is not handled by your agency")
    return dossier


def receive(uow: UnitOfWork, policy: Policy, code: str, caller: Caller, now: datetime) -> Dossier:
    """Tiếp nhận: fixes the due date (ngày hẹn trả) in working time from the moment of receipt."""
    dossier = get(uow, code, for_update=True)
    caller.require("receptionist", agency_code=dossier.agency_code)
    status = _transition(dossier, "receive")
    dossier.received_at = now
    dossier.due_at = due_date(policy, _procedure_of(policy, dossier), dossier.channel, dossier.agency_code, now)
    _record(dossier, "receive", status, now, caller.username, dossier.agency_code)
    uow.emit("dossier_received", {**_facts(dossier), "received_at": now, "due_at": dossier.due_at,
                                  "received_by": caller.username, "form": dossier.form,
                                  "contact": _contact(dossier)})
    uow.commit()
    return dossier


def _procedure_of(policy: Policy, dossier: Dossier) -> Procedure:
    """The procedure version the dossier was received under, whatever is in force today."""
    return policy.catalog.procedure(dossier.procedure_code, version=dossier.procedure_version)


def due_date(policy: Policy, procedure: Procedure, channel: str, agency_code: str, start: datetime) -> datetime:
    """Ngày hẹn trả, with the channel's processing time and the receiving agency's office hours.
    A time of 0 days means "within the day" (trong ngày): the close of the day of receipt, or of
    the next working day when received after the cut-off."""
    calendar = policy.calendar_for(agency_code)
    terms = procedure.terms(channel)
    if terms.unit == "calendar_days":
        return calendar.add_calendar_days(start, int(terms.days))
    if terms.days == 0:
        return calendar.close_of_day(start, cutoff=procedure.cutoff)
    return calendar.due_at(start, terms.days, cutoff=procedure.cutoff)


def resumed_due_date(policy: Policy, dossier: Dossier, paused_at: datetime, resumed_at: datetime) -> datetime | None:
    """The due date once a supplement arrives. Resume (the default): the old due date plus the time
    the clock stood still — working time, re-snapped to working time; wall-clock time for calendar-day
    procedures. Restart (a per-procedure setting): the whole processing time again from now."""
    if dossier.due_at is None:
        return None  # asked before reception: the clock has not started yet
    procedure = _procedure_of(policy, dossier)
    if procedure.on_supplement == "restart":
        return due_date(policy, procedure, dossier.channel, dossier.agency_code, resumed_at)
    calendar = policy.calendar_for(dossier.agency_code)
    if procedure.terms(dossier.channel).unit == "calendar_days":
        return (dossier.due_at + (resumed_at - paused_at)).astimezone(calendar.tz)
    paused = calendar.working_time_between(paused_at, resumed_at)
    if paused == timedelta(0):
        return dossier.due_at
    return calendar.add_working_time(dossier.due_at, paused)


def request_supplement(uow: UnitOfWork, code: str, items: list[str], note: str | None, caller: Caller,
                       now: datetime) -> Dossier:
    """Yêu cầu bổ sung (form 02): every missing item listed at once; the clock stops (status 5)
    until the applicant supplies them. The counter asks, before or after reception."""
    items = [item.strip() for item in items if item and item.strip()]
    if not items:
        raise ValidationFailed("list every missing item", field="items")
    dossier = get(uow, code, for_update=True)
    caller.require("receptionist", agency_code=dossier.agency_code)
    _ask_supplement(uow, dossier, items, note, caller.username, now)
    uow.commit()
    return dossier


def _ask_supplement(uow: UnitOfWork, dossier: Dossier, items: list[str], note: str | None, actor: str,
                    now: datetime) -> None:
    resume = dossier.status
    status = _transition(dossier, "request_supplement")
    dossier.paused_at, dossier.resume_status = now, resume
    dossier.supplements.append(DossierSupplement(
        requested_at=now, requested_by=actor, agency_code=dossier.agency_code, items=items,
        note=note, due_before=dossier.due_at))
    _record(dossier, "request_supplement", status, now, actor, dossier.agency_code, note="; ".join(items))
    uow.emit("supplement_requested", {"code": dossier.code, "agency_code": dossier.agency_code,
                                      "requested_at": now, "requested_by": actor, "items": items,
                                      "note": note or "", "contact": _contact(dossier)})


def supplement_needed(uow: UnitOfWork, data: dict) -> None:
    """A processing step asks for missing documents: the counter's form 02 goes out on its behalf
    (the clock stops); a dossier no longer in processing ignores a late request."""
    dossier = get(uow, data["dossier_code"], for_update=True)
    if dossier.status != "processing":
        return
    actor = f"{data['requested_by']} ({data['agency_code']})"
    _ask_supplement(uow, dossier, data["items"], data.get("note"), actor, data["requested_at"])


def payment_required(uow: UnitOfWork, data: dict) -> None:
    """A step fixed the applicant's financial obligation: status 6, the clock stops until it is paid."""
    dossier = get(uow, data["dossier_code"], for_update=True)
    if dossier.status != "processing":
        return  # redelivered, or the dossier was withdrawn meanwhile
    at = data["required_at"]
    status = _transition(dossier, "require_payment")
    dossier.paused_at, dossier.resume_status = at, "processing"
    dossier.payment_amount_vnd, dossier.payment_note = data["amount_vnd"], data.get("note") or None
    _record(dossier, "require_payment", status, at, SYSTEM, data["agency_code"], note=data.get("note"))
    uow.emit("payment_requested", {"code": dossier.code, "agency_code": dossier.agency_code, "requested_at": at,
                                   "amount_vnd": data["amount_vnd"], "note": data.get("note") or "",
                                   "contact": _contact(dossier)})


def confirm_payment(uow: UnitOfWork, policy: Policy, code: str, receipt_number: str, caller: Caller,
                    now: datetime) -> Dossier:
    """Xác nhận hoàn thành nghĩa vụ tài chính: the counter confirms the receipt; the clock resumes
    with the due date moved by the time it stood still, and processing goes on."""
    dossier = get(uow, code, for_update=True)
    caller.require("receptionist", agency_code=dossier.agency_code)
    status = _transition(dossier, "confirm_payment")
    dossier.due_at = resumed_due_date(policy, dossier, dossier.paused_at, now)
    dossier.paid_at, dossier.payment_receipt = now, receipt_number
    dossier.paused_at = dossier.resume_status = None
    _record(dossier, "confirm_payment", status, now, caller.username, dossier.agency_code,
            note=f"receipt {receipt_number}")
    uow.emit("payment_received", {"code": dossier.code, "paid_at": now, "confirmed_by": caller.username,
                                  "receipt_number": receipt_number, "due_at": dossier.due_at})
    uow.commit()
    return dossier


def processing_stopped(uow: UnitOfWork, data: dict) -> None:
    """A step stopped the processing (dừng xử lý, status 8) with its reason, which the applicant is told."""
    dossier = get(uow, data["dossier_code"], for_update=True)
    if dossier.status not in TRANSITIONS["stop"][0]:
        return
    status = _transition(dossier, "stop")
    dossier.stopped_at, dossier.stop_reason = data["stopped_at"], data["reason"]
    dossier.paused_at = dossier.resume_status = None
    _record(dossier, "stop", status, data["stopped_at"], data["stopped_by"], data["agency_code"], note=data["reason"])
    uow.emit("dossier_stopped", {"code": dossier.code, "agency_code": dossier.agency_code,
                                 "stopped_at": data["stopped_at"], "reason": data["reason"],
                                 "contact": _contact(dossier)})


STEP_DOCUMENT_PREFIX = "step:"  # a step's own documents (its minutes, the signed result), not the applicant's


def store_step_documents(uow: UnitOfWork, policy: Policy, code: str, uploads: list[dict], caller: Caller) -> list[dict]:
    """Kept for a step's completion: checked and stored, recorded on the dossier only once workflow
    accepted the completion (`task_completed` names them), so a refused completion records nothing."""
    get_for_staff(uow, code, caller, policy.tree)
    return documents.store_checked(documents.decode(uploads), policy.store)


def task_completed(uow: UnitOfWork, data: dict) -> None:
    """A step finished with documents: they join the dossier's list, in the step's name."""
    if not data.get("documents"):
        return
    dossier = get(uow, data["dossier_code"], for_update=True)
    for ref in data["documents"]:
        documents.record(dossier, {**ref, "key": STEP_DOCUMENT_PREFIX + ref["key"]},
                         f"{data['completed_by']} ({data['agency_code']})", data["completed_at"])


def delay_predicted(uow: UnitOfWork, data: dict) -> None:
    """Workflow foresees a late result: the counter sees the appointment form 04 should propose."""
    dossier = get(uow, data["dossier_code"], for_update=True)
    if dossier.status in TRANSITIONS["reschedule"][0]:
        dossier.proposed_due_at = data["proposed_due_at"]


def supplement(uow: UnitOfWork, policy: Policy, code: str, caller: Caller | None, proof: ApplicantProof | None,
               now: datetime, uploads: list[dict] = ()) -> Dossier:
    """Bổ sung hồ sơ: the applicant (online, with their proof) or the counter on their behalf, with
    the documents asked for; the clock resumes with a new due date."""
    decoded = documents.decode(list(uploads))
    dossier = get(uow, code, for_update=True)
    actor = _applicant_or_receptionist(dossier, caller, proof)
    status = _transition(dossier, "supplement")
    documents.attach(dossier, _procedure_of(policy, dossier), decoded, policy.store, actor, now)
    paused_at = dossier.paused_at
    dossier.due_at = resumed_due_date(policy, dossier, paused_at, now)
    request = dossier.supplements[-1]
    request.supplemented_at, request.supplemented_by, request.due_after = now, actor, dossier.due_at
    dossier.paused_at = dossier.resume_status = None
    _record(dossier, "supplement", status, now, actor, dossier.agency_code)
    uow.emit("dossier_supplemented", {"code": dossier.code, "supplemented_at": now, "status": status,
                                      "due_at": dossier.due_at})
    uow.commit()
    return dossier


def withdraw(uow: UnitOfWork, code: str, reason: str | None, caller: Caller | None, proof: ApplicantProof | None,
             now: datetime) -> Dossier:
    """Rút hồ sơ on the applicant's request (status 7): online with their proof, or at the counter."""
    dossier = get(uow, code, for_update=True)
    actor = _applicant_or_receptionist(dossier, caller, proof)
    status = _transition(dossier, "withdraw")
    dossier.withdrawn_at, dossier.withdrawal_reason = now, (reason or "").strip() or None
    dossier.paused_at = dossier.resume_status = None
    _record(dossier, "withdraw", status, now, actor, dossier.agency_code, note=dossier.withdrawal_reason)
    uow.emit("dossier_withdrawn", {"code": dossier.code, "withdrawn_at": now, "withdrawn_by": actor,
                                   "reason": dossier.withdrawal_reason or ""})
    uow.commit()
    return dossier


def reschedule(uow: UnitOfWork, code: str, new_due_at: datetime, reason: str, caller: Caller,
               now: datetime) -> Dossier:
    """Xin lỗi và hẹn lại ngày trả kết quả (form 04): the receiving agency apologises and fixes a later
    appointment; from now on the dossier is judged against it. The law asks for the apology before the
    appointment passes; one issued after it is still accepted (a late apology beats none) and recorded
    as `late_apology`, so leaders can see it."""
    reason = (reason or "").strip()
    if not reason:
        raise ValidationFailed("an apology needs its reason", field="reason")
    dossier = get(uow, code, for_update=True)
    caller.require("receptionist", agency_code=dossier.agency_code)
    status = _transition(dossier, "reschedule")
    old_due_at = dossier.due_at
    if old_due_at is None:
        raise Conflict("the dossier has no appointment yet: it was paused before reception", field="status")
    if new_due_at <= max(old_due_at, now):
        raise ValidationFailed("the new appointment must be later than the current one and than now",
                               field="new_due_at")
    dossier.reschedules.append(DossierReschedule(
        rescheduled_at=now, rescheduled_by=caller.username, agency_code=dossier.agency_code, old_due_at=old_due_at,
        new_due_at=new_due_at, reason=reason, late_apology=now > old_due_at))
    dossier.due_at, dossier.proposed_due_at = new_due_at, None
    _record(dossier, "reschedule", status, now, caller.username, dossier.agency_code, note=reason)
    uow.emit("dossier_rescheduled", {"code": dossier.code, "agency_code": dossier.agency_code, "rescheduled_at": now,
                                     "rescheduled_by": caller.username, "old_due_at": old_due_at,
                                     "new_due_at": new_due_at, "reason": reason, "contact": _contact(dossier)})
    uow.commit()
    return dossier


def rate(uow: UnitOfWork, code: str, rating: int, comment: str | None, caller: Caller | None,
         proof: ApplicantProof | None, now: datetime) -> Dossier:
    """Đánh giá mức độ hài lòng: once per dossier, after its result was returned (status 10)."""
    dossier = get(uow, code, for_update=True)
    actor = _applicant_or_receptionist(dossier, caller, proof)
    if dossier.status != "returned":
        raise Conflict("a dossier is rated once its result was returned", field="status")
    if dossier.rated_at is not None:
        raise Conflict("this dossier was already rated", field="rating")
    dossier.rating, dossier.rating_comment, dossier.rated_at = rating, (comment or "").strip() or None, now
    _record(dossier, "rate", dossier.status, now, actor, dossier.agency_code, note=f"rating {rating}")
    uow.emit("dossier_rated", {"code": dossier.code, "agency_code": dossier.agency_code,
                               "procedure_code": dossier.procedure_code, "field_code": dossier.field_code,
                               "rating": rating, "rated_at": now})
    uow.commit()
    return dossier


@dataclass(frozen=True)
class ApplicantProof:
    """How an applicant without an account shows a dossier is theirs: the tracking key (the phone's
    last 4 digits, as for tracking), then the ID number on file."""

    key: str | None
    id_number: str | None


def _applicant_or_receptionist(dossier: Dossier, caller: Caller | None, proof: ApplicantProof | None) -> str:
    """Who acts for the applicant: a receptionist of the receiving agency, or the applicant with their
    proof. A wrong key is answered as an unknown code (the answer tells nothing of the dossier, so an
    ID number cannot be tried across codes); a wrong ID number then is a 403. Returns the actor
    recorded in the history."""
    if caller is not None:
        caller.require("receptionist", agency_code=dossier.agency_code)
        return caller.username
    if proof is None or not proof.key:
        raise Unauthorized("sign in as the counter, or give the tracking key and the applicant's ID number",
                           field="key")
    if not dossier.applicant_phone or not hmac.compare_digest(proof.key.encode(),
                                                              _last4(dossier.applicant_phone).encode()):
        raise WrongKey(_unknown(dossier.code), field="code")
    if not proof.id_number:
        raise Unauthorized("give the applicant's ID number", field="id_number")
    if not hmac.compare_digest(proof.id_number.encode(), dossier.applicant_id_number.encode()):
        raise Forbidden("the ID number does not match this dossier", field="id_number")
    return APPLICANT


def refuse(uow: UnitOfWork, code: str, reason: str, caller: Caller, now: datetime) -> Dossier:
    """Từ chối tiếp nhận, with the reason the applicant will read (form 03)."""
    if not reason or not reason.strip():
        raise ValidationFailed("a refusal needs a reason", field="reason")
    dossier = get(uow, code, for_update=True)
    caller.require("receptionist", agency_code=dossier.agency_code)
    status = _transition(dossier, "refuse")
    dossier.refused_at, dossier.refusal_reason = now, reason.strip()
    _record(dossier, "refuse", status, now, caller.username, dossier.agency_code, note=dossier.refusal_reason)
    uow.emit("dossier_refused", {**_facts(dossier), "refused_at": now, "refused_by": caller.username,
                                 "reason": dossier.refusal_reason, "contact": _contact(dossier)})
    uow.commit()
    return dossier


def return_result(uow: UnitOfWork, code: str, method: str, caller: Caller, now: datetime) -> Dossier:
    """Trả kết quả at the counter, by post or online."""
    dossier = get(uow, code, for_update=True)
    caller.require("receptionist", agency_code=dossier.agency_code)
    status = _transition(dossier, "return")
    dossier.returned_at, dossier.return_method = now, method
    _record(dossier, "return", status, now, caller.username, dossier.agency_code, note=f"method {method}")
    uow.emit("result_returned", {"code": dossier.code, "returned_at": now, "method": method,
                                 "returned_by": caller.username, "contact": _contact(dossier)})
    uow.commit()
    return dossier


def task_assigned(uow: UnitOfWork, data: dict) -> None:
    """A step was routed to an agency: it may now see the dossier; the first one starts processing."""
    dossier = get(uow, data["dossier_code"], for_update=True)
    if all(a.agency_code != data["agency_code"] for a in dossier.agencies):
        dossier.agencies.append(DossierAgency(agency_code=data["agency_code"]))
    if dossier.status == "received":  # later steps, or a task arriving after result_ready, change nothing
        _record(dossier, "start_processing", "processing", data["assigned_at"], SYSTEM, data["agency_code"],
                note=data["step"])
        uow.emit("dossier_processing_started", {"code": dossier.code, "started_at": data["assigned_at"]})
    elif dossier.status == "supplement_requested" and dossier.resume_status == "received":
        dossier.resume_status = "processing"  # routed while paused: the supplement resumes processing


def result_ready(uow: UnitOfWork, data: dict) -> None:
    """The last step finished: the result waits for the applicant (status 9)."""
    dossier = get(uow, data["dossier_code"], for_update=True)
    if dossier.status not in TRANSITIONS["result_ready"][0]:
        return  # already past it: a redelivered or late event
    dossier.result_ready_at = data["finished_at"]
    dossier.result_outcome, dossier.result_note = data.get("outcome", "approved"), data.get("reason") or None
    _record(dossier, "result_ready", "result_ready", data["finished_at"], SYSTEM, data["agency_code"],
            note=dossier.result_note)
    uow.emit("dossier_result_ready", {"code": dossier.code, "procedure_name": dossier.procedure_name,
                                      "agency_code": dossier.agency_code, "finished_at": data["finished_at"],
                                      "due_at": dossier.due_at, "contact": _contact(dossier)})


def _facts(dossier: Dossier) -> dict:
    return {"code": dossier.code, "procedure_code": dossier.procedure_code,
            "procedure_name": dossier.procedure_name, "field_code": dossier.field_code,
            "agency_code": dossier.agency_code, "channel": dossier.channel}


def _contact(dossier: Dossier) -> dict:
    return {"full_name": dossier.applicant_name, "email": dossier.applicant_email, "phone": dossier.applicant_phone}


def _last4(phone: str) -> str:
    return "".join(c for c in phone if c.isdigit())[-4:]


def document_for_staff(uow: UnitOfWork, store: BlobStore, code: str, document_id: int, caller: Caller,
                       tree: AgencyTree) -> dict:
    """A document's bytes (base64) for staff of an agency involved in the dossier."""
    dossier = get_for_staff(uow, code, caller, tree)
    found = next((d for d in dossier.documents if d.id == document_id), None)
    if found is None:
        raise NotFound(f"no document {document_id} in dossier {code}", field="document_id")
    return {"key": found.doc_key, "filename": found.filename, "content_type": found.content_type,
            "sha256": found.sha256,
            "content_base64": base64.b64encode(store.get(found.sha256)).decode()}


_dossier_view = DossierViewV1()


def view(dossier: Dossier, tz: ZoneInfo, catalog: Catalog) -> dict:
    """The staff view of a dossier (GET /api/v1/dossiers/{code}), in the contract's shape."""
    return _dossier_view.dump(view_fields(dossier, tz, catalog))


def view_fields(dossier: Dossier, tz: ZoneInfo, catalog: Catalog) -> dict:
    """What the view is made of; every key is a field of DossierViewV1 (a test holds them equal)."""
    def at(value):
        return local_iso(value, tz)

    return {
        "code": dossier.code, "procedure_code": dossier.procedure_code,
        "procedure_version": dossier.procedure_version, "procedure_name": dossier.procedure_name,
        "field": dossier.field_code, "agency_code": dossier.agency_code, "channel": dossier.channel,
        "status": dossier.status, "status_code": dossier.status_code,
        "allowed_actions": allowed_actions(dossier.status),
        "applicant": {"type": dossier.applicant_type, "tax_code": dossier.applicant_tax_code,
                      "full_name": dossier.applicant_name, "id_number": dossier.applicant_id_number,
                      "phone": dossier.applicant_phone, "email": dossier.applicant_email,
                      "address": dossier.applicant_address},
        "form": dossier.form,
        "submitted_at": at(dossier.submitted_at), "received_at": at(dossier.received_at),
        "due_at": at(dossier.due_at), "refused_at": at(dossier.refused_at),
        "refusal_reason": dossier.refusal_reason, "result_ready_at": at(dossier.result_ready_at),
        "returned_at": at(dossier.returned_at), "return_method": dossier.return_method,
        "paused_at": at(dossier.paused_at), "withdrawn_at": at(dossier.withdrawn_at),
        "withdrawal_reason": dossier.withdrawal_reason,
        "payment": ({"amount_vnd": dossier.payment_amount_vnd, "note": dossier.payment_note,
                     "paid_at": at(dossier.paid_at), "receipt_number": dossier.payment_receipt}
                    if dossier.payment_amount_vnd is not None else None),
        "result_outcome": dossier.result_outcome, "result_note": dossier.result_note,
        "stopped_at": at(dossier.stopped_at), "stop_reason": dossier.stop_reason,
        "proposed_due_at": at(dossier.proposed_due_at),
        "rating": dossier.rating, "rating_comment": dossier.rating_comment, "rated_at": at(dossier.rated_at),
        "supplements": [{"requested_at": at(r.requested_at), "requested_by": r.requested_by,
                         "agency_code": r.agency_code, "items": list(r.items), "note": r.note,
                         "due_before": at(r.due_before), "supplemented_at": at(r.supplemented_at),
                         "supplemented_by": r.supplemented_by, "due_after": at(r.due_after)}
                        for r in dossier.supplements],
        "reschedules": [{"rescheduled_at": at(r.rescheduled_at), "rescheduled_by": r.rescheduled_by,
                         "old_due_at": at(r.old_due_at), "new_due_at": at(r.new_due_at), "reason": r.reason,
                         "late_apology": r.late_apology} for r in dossier.reschedules],
        "documents": [documents.view(d, at) for d in dossier.documents],
        "documents_missing": documents.missing(
            dossier, catalog.procedure(dossier.procedure_code, version=dossier.procedure_version)),
        "agencies": sorted(a.agency_code for a in dossier.agencies),
        "history": [{"at": at(h.at), "action": h.action, "status": h.status, "status_code": h.status_code,
                     "agency_code": h.agency_code, "actor": h.actor, "note": h.note} for h in dossier.history],
    }
