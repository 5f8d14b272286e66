"""Events of dossiers' lives, built through the real contracts, and a reporting database."""
from __future__ import annotations

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import create_engine, select
from sqlalchemy.orm import sessionmaker
from sqlalchemy.pool import StaticPool

from motcua.contracts import Event, make_event, parse_event
from motcua.contracts.events import STATUS_CODES
from motcua.db import UnitOfWork
from motcua.privacy import mask_name, tracking_key
from services.reporting.models import Base, DossierFact

VN = ZoneInfo("Asia/Ho_Chi_Minh")
TRACKING_KEY = "test-secret"
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


KEEP = object()  # Story.intake: the status or appointment stays what it was


class Story:
    """One dossier's events as their owners publish them: intake's numbered by `dossier_version` and
    carrying the dossier's status and the appointment in force after each, workflow's numbered by
    `run_version`. `events` keeps them in the order they were told."""

    def __init__(self, code: str, agency: str = JUSTICE, channel: str = "online"):
        self.code = code
        self.facts = {"code": code, "procedure_code": "1.004873", "field_code": "HT", "agency_code": agency,
                      "procedure_name": "Thủ tục cấp Giấy xác nhận tình trạng hôn nhân", "channel": channel}
        self.events: list[Event] = []
        self.version = 0
        self.status = self.due = None

    def intake(self, event_type: str, at: datetime, status=KEEP, due=KEEP, **data) -> Event:
        self.version += 1
        self.status = self.status if status is KEEP else status
        self.due = self.due if due is KEEP else due
        return self._told(event("intake", event_type, {
            "code": self.code, **data, "dossier_version": self.version, "status": self.status,
            "status_code": STATUS_CODES[self.status], "due_at": self.due}, at))

    def run(self, event_type: str, at: datetime, **data) -> Event:
        evt = self._told(event("workflow", event_type, {"dossier_code": self.code, **data, "run_version": 1}, at))
        # workflow numbers its events in the order it did things, whatever order the story tells them in
        run = sorted((e for e in self.events if e.source == "workflow"), key=lambda e: e.occurred_at)
        for version, told in enumerate(run, 1):
            told.data["run_version"] = version
        return evt

    def task(self, event_type: str, index: int, agency: str, step: str, at: datetime, due: datetime,
             **data) -> Event:
        facts = {"task_id": f"{self.code}/{index}", "agency_code": agency, "step": step, "step_index": index}
        if event_type == "task_assigned":
            facts.update(assigned_at=at, due_at=due, role="specialist")
        elif event_type == "task_completed":
            facts.update(completed_at=at, completed_by=f"specialist@{agency}", outcome="approve", note="",
                         timeliness="early")
        return self.run(event_type, at, **facts, **data)

    def _told(self, evt: Event) -> Event:
        self.events.append(evt)
        return evt


def lifecycle(code: str, *, submitted: datetime, agency: str = JUSTICE, channel: str = "online",
              received: datetime | None = None, due: datetime | None = None,
              finished: datetime | None = None, returned: datetime | None = None,
              refused: datetime | None = None, supplement: tuple | None = None,
              withdrawn: datetime | None = None, rescheduled: tuple | None = None,
              overdue: datetime | None = None, stopped: datetime | None = None,
              step_moved: tuple | None = None) -> list[Event]:
    """The events of one dossier, in the order they happen: two steps in two agencies.

    `supplement` = (requested, supplemented or None, new due): a supplement asked during the first
    step; `withdrawn`: the applicant withdraws it then (after the supplement, if any) and it ends;
    `rescheduled` = (when, new due): the apology with a new appointment (form 04), after the supplement;
    `overdue`: when workflow found the first step and the dossier overdue; `stopped`: processing is
    stopped then (status 8) and it ends; `step_moved` = (when, new due): a calendar decision moves the
    first step's deadline."""
    story = Story(code, agency, channel)
    story.intake("dossier_submitted", submitted, status="submitted", **story.facts, submitted_at=submitted,
                 applicant_masked=mask_name(NAME), tracking_key=tracking_key(TRACKING_KEY, code, PHONE[-4:]))
    if refused:
        story.intake("dossier_refused", refused, status="refused", **story.facts, refused_at=refused,
                     refused_by=f"receptionist@{agency}", reason="thiếu giấy tờ", contact=CONTACT)
        return story.events
    if not received:
        return story.events
    story.intake("dossier_received", received, status="received", due=due, **story.facts, received_at=received,
                 received_by=f"receptionist@{agency}", form={"ho_ten": NAME, "dia_chi": "12 Lê Lợi"},
                 contact=CONTACT)
    first = received + timedelta(minutes=1)
    story.task("task_assigned", 0, agency, "Thẩm định", first, due)
    story.intake("dossier_processing_started", first, status="processing", started_at=first)
    if step_moved:
        at, step_due = step_moved
        story.task("task_rescheduled", 0, agency, "Thẩm định", at, due, old_due_at=due, due_at=step_due,
                   rescheduled_at=at, reason="calendar")
    if supplement:
        requested, supplemented, due = supplement
        story.intake("supplement_requested", requested, status="supplement_requested", agency_code=agency,
                     requested_at=requested, requested_by=f"specialist@{agency}", items=["Bản sao giấy khai sinh"],
                     note="", contact=CONTACT)
        if supplemented:
            story.intake("dossier_supplemented", supplemented, status="processing", due=due,
                         supplemented_at=supplemented)
    if rescheduled:
        at, new_due = rescheduled
        story.intake("dossier_rescheduled", at, due=new_due, agency_code=agency, rescheduled_at=at,
                     rescheduled_by=f"receptionist@{agency}", old_due_at=due, new_due_at=new_due,
                     reason="chờ xác minh thực địa", contact=CONTACT)
        due = new_due
    if overdue:
        story.task("task_overdue", 0, agency, "Thẩm định", overdue, due, due_at=due, detected_at=overdue,
                   escalated_to_role="leader")
        story.run("dossier_overdue", overdue, agency_code=agency, current_agency_code=agency, due_at=due,
                  detected_at=overdue)
    if withdrawn:
        story.intake("dossier_withdrawn", withdrawn, status="withdrawn", withdrawn_at=withdrawn,
                     withdrawn_by=f"receptionist@{agency}", reason="công dân xin rút")
        return story.events
    if stopped:
        story.intake("dossier_stopped", stopped, status="stopped", agency_code=agency, stopped_at=stopped,
                     reason="tranh chấp đất", contact=CONTACT)
        return story.events
    if not finished:
        return story.events
    handover = first + (finished - first) / 2
    story.task("task_completed", 0, agency, "Thẩm định", handover, due)
    story.task("task_assigned", 1, LAND_OFFICE, "Ký duyệt", handover, due)
    story.task("task_completed", 1, LAND_OFFICE, "Ký duyệt", finished, due)
    story.run("result_ready", finished, agency_code=LAND_OFFICE, finished_at=finished)
    story.intake("dossier_result_ready", finished, status="result_ready", procedure_name=story.facts["procedure_name"],
                 agency_code=agency, finished_at=finished, contact=CONTACT)
    if returned:
        story.intake("result_returned", returned, status="returned", returned_at=returned, method="counter",
                     returned_by=f"receptionist@{agency}")
    return story.events


SURVEY_OFFICE, TAX_OFFICE = "000.12.02.H56", "000.13.01.H56"  # a transfer's target; a parallel step's agency
ENDINGS = ("returned", "withdrawn", "stopped")


def rich_life(code: str, ending: str = "returned", start: datetime = vn(2026, 3, 2, 8)) -> list[Event]:
    """A dossier through every kind of move, in the order they happen: a supplement asked by a step and
    supplied; parallel steps, one transferred to another agency, the other fixing a fee paid later; a
    second supplement; a new appointment (form 04) and overdue notices; then `ending`: the result returned
    and rated, a withdrawal while the second supplement is awaited, or a stop."""
    story = Story(code)
    day = timedelta(days=1)
    due = vn(2026, 3, 20, 17)
    story.intake("dossier_submitted", start, status="submitted", **story.facts, submitted_at=start,
                 applicant_masked=mask_name(NAME), tracking_key=tracking_key(TRACKING_KEY, code, PHONE[-4:]))
    received = start + timedelta(hours=1)
    story.intake("dossier_received", received, status="received", due=due, **story.facts, received_at=received,
                 received_by="receptionist", form={}, contact=CONTACT)
    first = received + timedelta(minutes=1)
    story.task("task_assigned", 0, JUSTICE, "Thẩm định", first, due)
    story.intake("dossier_processing_started", first, status="processing", started_at=first)
    asked = start + day
    story.run("supplement_needed", asked, agency_code=JUSTICE, task_id=f"{code}/0", items=["Bản sao sổ đỏ"],
              requested_by="specialist", requested_at=asked)
    story.intake("supplement_requested", asked + timedelta(hours=1), status="supplement_requested",
                 agency_code=JUSTICE, requested_at=asked + timedelta(hours=1), requested_by="specialist",
                 items=["Bản sao sổ đỏ"], contact=CONTACT)
    due += 2 * day
    story.intake("dossier_supplemented", start + 3 * day, status="processing", due=due,
                 supplemented_at=start + 3 * day)
    fork = start + 4 * day
    story.task("task_completed", 0, JUSTICE, "Thẩm định", fork, due)
    story.task("task_assigned", 1, LAND_OFFICE, "Đo đạc", fork, due)
    story.task("task_assigned", 2, TAX_OFFICE, "Xác định nghĩa vụ thuế", fork, due)
    moved = start + 5 * day
    story.task("dossier_transferred", 1, SURVEY_OFFICE, "Đo đạc", moved, due, from_agency_code=LAND_OFFICE,
               to_agency_code=SURVEY_OFFICE, transferred_at=moved, transferred_by="leader", new_task_id=f"{code}/1b")
    fee = start + 6 * day
    story.run("payment_required", fee, agency_code=TAX_OFFICE, task_id=f"{code}/2", amount_vnd=500_000,
              required_at=fee)
    story.intake("payment_requested", fee + timedelta(hours=1), status="awaiting_payment", agency_code=JUSTICE,
                 requested_at=fee + timedelta(hours=1), amount_vnd=500_000, contact=CONTACT)
    due += 2 * day
    story.intake("payment_received", start + 8 * day, status="processing", due=due, paid_at=start + 8 * day,
                 confirmed_by="receptionist", receipt_number="BL-1")
    story.task("task_completed", 2, TAX_OFFICE, "Xác định nghĩa vụ thuế", start + 9 * day, due)
    again = start + 9 * day + timedelta(hours=2)
    story.intake("supplement_requested", again, status="supplement_requested", agency_code=JUSTICE,
                 requested_at=again, requested_by="specialist", items=["Bản đồ địa chính", "Tờ khai thuế"],
                 contact=CONTACT)
    if ending == "withdrawn":  # while the second supplement is awaited: the pause ends with it
        story.intake("dossier_withdrawn", start + 10 * day, status="withdrawn", withdrawn_at=start + 10 * day,
                     withdrawn_by="receptionist")
        return story.events
    due += day
    story.intake("dossier_supplemented", again + timedelta(hours=3), status="processing", due=due,
                 supplemented_at=again + timedelta(hours=3))
    new_due = due + 5 * day
    story.intake("dossier_rescheduled", start + 10 * day, due=new_due, agency_code=JUSTICE,
                 rescheduled_at=start + 10 * day, rescheduled_by="receptionist", old_due_at=due, new_due_at=new_due,
                 reason="chờ đo đạc", contact=CONTACT)
    late = new_due + timedelta(minutes=5)
    story.task("task_overdue", 1, SURVEY_OFFICE, "Đo đạc", late, new_due, due_at=new_due, detected_at=late,
               escalated_to_role="leader")
    story.run("dossier_overdue", late, agency_code=JUSTICE, current_agency_code=SURVEY_OFFICE, due_at=new_due,
              detected_at=late)
    if ending == "stopped":
        stop = late + day
        story.run("processing_stopped", stop, agency_code=SURVEY_OFFICE, stopped_at=stop, stopped_by="leader",
                  reason="tranh chấp đất")
        story.intake("dossier_stopped", stop, status="stopped", agency_code=JUSTICE, stopped_at=stop,
                     reason="tranh chấp đất", contact=CONTACT)
        return story.events
    join = late + day
    story.task("task_completed", 1, SURVEY_OFFICE, "Đo đạc", join, new_due)
    story.task("task_assigned", 3, JUSTICE, "Ký duyệt", join, new_due)
    finished = join + timedelta(hours=3)
    story.task("task_completed", 3, JUSTICE, "Ký duyệt", finished, new_due)
    story.run("result_ready", finished, agency_code=JUSTICE, finished_at=finished)
    story.intake("dossier_result_ready", finished, status="result_ready", procedure_name=story.facts["procedure_name"],
                 agency_code=JUSTICE, finished_at=finished, contact=CONTACT)
    story.intake("result_returned", finished + day, status="returned", returned_at=finished + day, method="counter",
                 returned_by="receptionist")
    story.intake("dossier_rated", finished + 2 * day, agency_code=JUSTICE, procedure_code="1.004873", field_code="HT",
                 rating=5, rated_at=finished + 2 * day)
    return story.events


def memory_database():
    """A reporting schema in an in-memory SQLite database; returns a maker of units of work."""
    engine = create_engine("sqlite://", poolclass=StaticPool)
    Base.metadata.create_all(engine)
    sessions = sessionmaker(bind=engine, expire_on_commit=False)
    return lambda: UnitOfWork(sessions(), "reporting", Base.metadata)


def all_facts(session) -> dict[str, dict]:
    """Every projection row as plain values, for comparing two projections (read afresh: the projection
    writes them beside the ORM)."""
    columns = DossierFact.__table__.columns
    return {row.code: {c.name: getattr(row, c.name) for c in columns}
            for row in session.scalars(select(DossierFact).execution_options(populate_existing=True))}


def random_lives(rng, count: int, start: datetime, days: int, agencies=(JUSTICE, LAND_OFFICE),
                 reschedules: bool = False) -> list[list[Event]]:
    """`count` dossiers of random fates (open, finished, returned, refused, never received, paused for a
    supplement, resumed, withdrawn, stopped: every 7th that would stay open), received within `days` of
    `start`; with `reschedules`, some of the open or finished ones also get a new appointment (form 04)
    and overdue notices."""
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
        if finished is None and "overdue" not in kwargs and n % 7 == 0:  # no new draw: the fates stay as they were
            kwargs["stopped"] = base + timedelta(hours=24 + n % 300)
        lives.append(lifecycle(f"X-{n:05d}", **kwargs, received=received, due=due, finished=finished,
                               returned=returned))
    return lives
