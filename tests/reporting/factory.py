"""Events of dossiers' lives, built through the real contracts, and a reporting database."""
from __future__ import annotations

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import create_engine, select
from sqlalchemy.orm import sessionmaker
from sqlalchemy.pool import StaticPool

from motcua.contracts import Event, make_event, parse_event
from motcua.db import UnitOfWork
from motcua.privacy import mask_name, tracking_key
from services.reporting.models import Base, DossierFact

VN = ZoneInfo("Asia/Ho_Chi_Minh")
SECRET = "test-secret"
JUSTICE = "000.00.06.H56"      # Sở Tư pháp: receives
LAND_OFFICE = "000.12.01.H56"  # Văn phòng Đăng ký đất đai: second step
NAME, PHONE, EMAIL = "Nguyễn Văn An", "0912345678", "an.nguyen@example.vn"
CONTACT = {"full_name": NAME, "email": EMAIL, "phone": PHONE}
AGENCY_NAMES = {JUSTICE: "Sở Tư pháp", LAND_OFFICE: "Văn phòng Đăng ký đất đai"}


def vn(*args) -> datetime:
    return datetime(*args, tzinfo=VN)


def event(source: str, event_type: str, data: dict, at: datetime) -> Event:
    """An event as a consumer receives it: serialized by the producer, parsed by the bus."""
    return parse_event(make_event(source, event_type, data, occurred_at=at))


def lifecycle(code: str, *, submitted: datetime, agency: str = JUSTICE, channel: str = "online",
              received: datetime | None = None, due: datetime | None = None,
              finished: datetime | None = None, returned: datetime | None = None,
              refused: datetime | None = None, supplement: tuple | None = None,
              withdrawn: datetime | None = None, rescheduled: tuple | None = None,
              overdue: datetime | None = None) -> list[Event]:
    """The events of one dossier, in the order they happen: two steps in two agencies.

    `supplement` = (requested, supplemented or None, new due): a supplement asked during the first
    step; `withdrawn`: the applicant withdraws it then (after the supplement, if any) and it ends;
    `rescheduled` = (when, new due): the apology with a new appointment (form 04), after the supplement;
    `overdue`: when workflow found the first step and the dossier overdue."""
    facts = {"code": code, "procedure_code": "1.004873", "field_code": "HT", "agency_code": agency,
             "procedure_name": "Thủ tục cấp Giấy xác nhận tình trạng hôn nhân", "channel": channel}
    events = [event("intake", "dossier_submitted", {
        **facts, "submitted_at": submitted, "applicant_masked": mask_name(NAME),
        "tracking_key": tracking_key(SECRET, code, PHONE[-4:])}, submitted)]
    if refused:
        events.append(event("intake", "dossier_refused", {
            **facts, "refused_at": refused, "refused_by": f"receptionist@{agency}", "reason": "thiếu giấy tờ",
            "contact": CONTACT}, refused))
        return events
    if not received:
        return events
    events.append(event("intake", "dossier_received", {
        **facts, "received_at": received, "due_at": due, "received_by": f"receptionist@{agency}",
        "form": {"ho_ten": NAME, "dia_chi": "12 Lê Lợi"}, "contact": CONTACT}, received))
    first = received + timedelta(minutes=1)
    events += [_task("task_assigned", code, agency, "Thẩm định", 0, first, due),
               event("intake", "dossier_processing_started", {"code": code, "started_at": first}, first)]
    if supplement:
        requested, supplemented, due = supplement
        events.append(event("intake", "supplement_requested", {
            "code": code, "agency_code": agency, "requested_at": requested, "requested_by": f"specialist@{agency}",
            "items": ["Bản sao giấy khai sinh"], "note": "", "contact": CONTACT}, requested))
        if supplemented:
            events.append(event("intake", "dossier_supplemented", {
                "code": code, "supplemented_at": supplemented, "status": "processing", "due_at": due}, supplemented))
    if rescheduled:
        at, new_due = rescheduled
        events.append(event("intake", "dossier_rescheduled", {
            "code": code, "agency_code": agency, "rescheduled_at": at, "rescheduled_by": f"receptionist@{agency}",
            "old_due_at": due, "new_due_at": new_due, "reason": "chờ xác minh thực địa", "contact": CONTACT}, at))
        due = new_due
    if overdue:
        events += [event("workflow", "task_overdue", {
            "task_id": f"{code}/0", "dossier_code": code, "agency_code": agency, "step": "Thẩm định",
            "step_index": 0, "due_at": due, "detected_at": overdue, "escalated_to_role": "leader"}, overdue),
                   event("workflow", "dossier_overdue", {
                       "dossier_code": code, "agency_code": agency, "current_agency_code": agency, "due_at": due,
                       "detected_at": overdue}, overdue)]
    if withdrawn:
        events.append(event("intake", "dossier_withdrawn", {
            "code": code, "withdrawn_at": withdrawn, "withdrawn_by": f"receptionist@{agency}",
            "reason": "công dân xin rút"}, withdrawn))
        return events
    if not finished:
        return events
    handover = first + (finished - first) / 2
    events += [_task("task_completed", code, agency, "Thẩm định", 0, handover, due),
               _task("task_assigned", code, LAND_OFFICE, "Ký duyệt", 1, handover, due),
               _task("task_completed", code, LAND_OFFICE, "Ký duyệt", 1, finished, due),
               event("workflow", "result_ready", {"dossier_code": code, "agency_code": LAND_OFFICE,
                                                  "finished_at": finished}, finished),
               event("intake", "dossier_result_ready", {
                   "code": code, "procedure_name": facts["procedure_name"], "agency_code": agency,
                   "finished_at": finished, "due_at": due, "contact": CONTACT}, finished)]
    if returned:
        events.append(event("intake", "result_returned", {
            "code": code, "returned_at": returned, "method": "counter",
            "returned_by": f"receptionist@{agency}"}, returned))
    return events


def _task(event_type: str, code: str, agency: str, step: str, index: int, at: datetime, due: datetime) -> Event:
    data = {"task_id": f"{code}/{index}", "dossier_code": code, "agency_code": agency, "step": step,
            "step_index": index}
    if event_type == "task_assigned":
        data.update(assigned_at=at, due_at=due, role="specialist")
    else:
        data.update(completed_at=at, completed_by=f"specialist@{agency}", outcome="approve", note="",
                    timeliness="early")
    return event("workflow", event_type, data, at)


def memory_database():
    """A reporting schema in an in-memory SQLite database; returns a maker of units of work."""
    engine = create_engine("sqlite://", poolclass=StaticPool)
    Base.metadata.create_all(engine)
    sessions = sessionmaker(bind=engine, expire_on_commit=False)
    return lambda: UnitOfWork(sessions(), "reporting", Base.metadata)


def all_facts(session) -> dict[str, dict]:
    """Every projection row as plain values, for comparing two projections."""
    columns = DossierFact.__table__.columns
    return {row.code: {c.name: getattr(row, c.name) for c in columns}
            for row in session.scalars(select(DossierFact))}


def random_lives(rng, count: int, start: datetime, days: int, agencies=(JUSTICE, LAND_OFFICE),
                 reschedules: bool = False) -> list[list[Event]]:
    """`count` dossiers of random fates (open, finished, returned, refused, never received, paused for a
    supplement, resumed, withdrawn), received within `days` of `start`; with `reschedules`, some of the
    open or finished ones also get a new appointment (form 04) and overdue notices."""
    lives = []
    for n in range(count):
        received = start + timedelta(hours=rng.randrange(0, 24 * days))
        due = received + timedelta(days=rng.randrange(0, 20))
        fate = rng.random()
        kwargs = {"submitted": received - timedelta(minutes=30), "agency": rng.choice(agencies),
                  "channel": rng.choice(("online", "counter", "postal"))}
        if fate < 0.05:
            lives.append(lifecycle(f"X-{n:05d}", **kwargs))
            continue
        if fate < 0.1:
            lives.append(lifecycle(f"X-{n:05d}", **kwargs, refused=received))
            continue
        if rng.random() < 0.3:  # a supplement during the first step: awaited, or supplied with a new due date
            requested = received + timedelta(hours=rng.randrange(2, 48))
            supplied = requested + timedelta(hours=rng.randrange(1, 24 * 10)) if rng.random() < 0.6 else None
            kwargs["supplement"] = (requested, supplied, due + (supplied - requested) if supplied else None)
            if supplied:
                due += supplied - requested
            if not supplied or rng.random() < 0.2:
                kwargs["withdrawn"] = (supplied or requested) + timedelta(hours=rng.randrange(1, 24 * 5)) \
                    if rng.random() < 0.3 else None
                lives.append(lifecycle(f"X-{n:05d}", **kwargs, received=received, due=due))
                continue
        base = received + (kwargs["supplement"][1] - kwargs["supplement"][0] if kwargs.get("supplement") else timedelta())
        finished = base + timedelta(hours=rng.randrange(3, 24 * 30)) if rng.random() < 0.7 else None
        returned = finished + timedelta(hours=rng.randrange(1, 72)) if finished and rng.random() < 0.5 else None
        if reschedules and "supplement" not in kwargs and rng.random() < 0.4:
            # apologised an hour into the work, with a later appointment
            new_due = due + timedelta(days=rng.randrange(1, 10))
            kwargs["rescheduled"] = (base + timedelta(hours=1), new_due)
            if finished is None or finished > new_due + timedelta(hours=1):
                kwargs["overdue"] = new_due + timedelta(hours=1)
        lives.append(lifecycle(f"X-{n:05d}", **kwargs, received=received, due=due, finished=finished,
                               returned=returned))
    return lives
