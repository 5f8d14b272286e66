"""The event store and the dossier projection (`dossier_facts`), rebuilt from a dossier's events.

Every event is stored once (without personal data), then the dossier's row is recomputed from ALL
its stored events, sorted by when they happened. So the projection does not care in which order or
how many times the bus delivers events, and a full replay (`rebuild_all`) is the same code.
"""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime
from zoneinfo import ZoneInfo

from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from motcua.calendar import timeliness
from motcua.contracts import Event
from motcua.contracts.events import STATUS_CODES, schema_for
from motcua.db import UnitOfWork, utcnow
from services.reporting import aggregates
from services.reporting.models import DossierFact, PortalPush, StoredEvent

# Keys of an event's data that are personal: the contact is for notify only, the form holds the
# applicant's declaration, a step's documents name files (a filename may carry a name or an ID
# number; intake keeps them). None is stored here.
PERSONAL_KEYS = ("contact", "form", "documents")

# The status each event moves a dossier to (None: the one the event names), and the statuses it may
# move it FROM. The fold goes through a dossier's events in the order they happened; a move that is
# not allowed from where the dossier stands is a stale event (another service's clock was behind,
# e.g. intake's "received" stamped after workflow's first task) and leaves the status alone.
# Statuses can move back: a supplement resumes a dossier at received or processing.
OPEN = (None, "submitted", "received", "processing")
ENDED = ("refused", "withdrawn", "returned")
MOVES: dict[str, tuple[str | None, tuple]] = {
    "dossier_submitted": ("submitted", (None,)),
    "dossier_received": ("received", (None, "submitted")),
    "dossier_refused": ("refused", (None, "submitted")),
    "task_assigned": ("processing", OPEN),
    "dossier_processing_started": ("processing", OPEN),
    "task_completed": ("processing", OPEN),
    "supplement_requested": ("supplement_requested", OPEN),
    "dossier_supplemented": (None, (None, "supplement_requested")),
    "result_ready": ("result_ready", tuple(s for s in STATUS_CODES if s not in ENDED) + (None,)),
    "dossier_result_ready": ("result_ready", tuple(s for s in STATUS_CODES if s not in ENDED) + (None,)),
    "result_returned": ("returned", tuple(s for s in STATUS_CODES if s not in ("refused", "withdrawn")) + (None,)),
    "dossier_withdrawn": ("withdrawn", tuple(s for s in STATUS_CODES if s not in ENDED + ("result_ready",))
                          + (None,)),
    # No move of their own: they only give a dossier heard of first through them (events delivered out
    # of order) the status they imply until its earlier events arrive and are folded before them.
    "payment_requested": ("awaiting_payment", OPEN),
    "payment_received": ("processing", (None, "awaiting_payment")),
    "dossier_stopped": ("stopped", OPEN + ("supplement_requested", "awaiting_payment")),
    "dossier_transferred": ("processing", OPEN),
    "dossier_rescheduled": ("received", (None,)),
    "task_overdue": ("processing", (None,)),
    "dossier_overdue": ("processing", (None,)),
}
# The causal order of the event types: breaks ties between events stamped with the same instant
# (a step completed, then the next one assigned; intake reacts to workflow's events).
EVENT_ORDER = ("dossier_submitted", "dossier_received", "dossier_refused", "task_completed",
               "task_assigned", "dossier_processing_started", "supplement_requested", "dossier_supplemented",
               "dossier_rescheduled", "task_overdue", "dossier_overdue",
               "payment_requested", "payment_received", "dossier_transferred", "dossier_stopped",
               "result_ready", "dossier_result_ready", "result_returned", "dossier_withdrawn")
_ORDER = {event_type: index for index, event_type in enumerate(EVENT_ORDER)}  # unknown types sort last
DOSSIER_FACTS = ("agency_code", "procedure_code", "procedure_name", "field_code", "channel")
FACT_COLUMNS = tuple(c.name for c in DossierFact.__table__.columns if c.name != "code")
REBUILD_BATCH = 500


@dataclass
class Projection:
    """What the events of one dossier say: its facts row and its public timeline."""

    code: str
    facts: dict = field(default_factory=dict)
    timeline: list[dict] = field(default_factory=list)

    def advance(self, event_type: str, at: datetime, agency_code: str | None, step: str | None,
                status: str | None = None) -> bool:
        """Apply the status move of `event_type` (if allowed from the current status; True if it was);
        the dossier is now with `agency_code`/`step`."""
        target, allowed_from = MOVES[event_type]
        moved = self.facts.get("status") in allowed_from
        if moved:
            self.facts["status"] = target or status
        if agency_code:
            self.facts["current_agency_code"] = agency_code
        self.facts["current_step"] = step
        entry = {"at": at, "status": self.facts["status"], "agency_code": self.facts.get("current_agency_code")}
        if step:
            entry["step"] = step
        # One timeline line per change of status or hands, not per event (e.g. task done + next step).
        if not self.timeline or _where(self.timeline[-1]) != _where(entry):
            self.timeline.append(entry)
        return moved


def _where(entry: dict) -> tuple:
    return entry["status"], entry["agency_code"], entry.get("step")


def consumer_id(event_type: str) -> str:
    """The inbox consumer of one event handler (one per event type)."""
    return f"reporting.{event_type}"


def dossier_code(data: dict) -> str:
    """Intake's events name the dossier `code`, workflow's `dossier_code`."""
    return data["dossier_code"] if "dossier_code" in data else data["code"]


def record(uow: UnitOfWork, event: Event, zone: ZoneInfo) -> bool:
    """Store `event` and re-project its dossier, exactly once; False if it was applied before."""
    return uow.apply_once(event, consumer_id(event.event_type),
                          lambda unit, evt: _append_and_project(unit.session, evt, zone))


def _append_and_project(session: Session, event: Event, zone: ZoneInfo) -> None:
    code = dossier_code(event.data)
    # Lock the dossier's row first: two events of one dossier applied concurrently must not each
    # project without the other's event. (Two *first* events racing both insert the row: one fails
    # on the primary key and the bus retries it, then it sees the other's event.)
    fact = session.get(DossierFact, code, with_for_update=True) or DossierFact(code=code)
    _, schema = schema_for(event.event_type)
    wire = {k: v for k, v in schema.dump(event.data).items() if k not in PERSONAL_KEYS}
    session.add(StoredEvent(event_id=event.event_id, event_type=event.event_type, version=event.version,
                            source=event.source, occurred_at=event.occurred_at, dossier_code=code, data=wire))
    session.flush()
    events = session.scalars(select(StoredEvent).where(StoredEvent.dossier_code == code)).all()
    aggregates.apply(session, _write(session, fact, project(code, events, zone), zone))
    mark_for_portal(session, code, len(events), utcnow())


def mark_for_portal(session: Session, code: str, version: int, now: datetime) -> None:
    """Queue the dossier's `version` (its number of stored events) for the national portal, in the
    transaction that stored the event: a version is pushed once it is committed, whatever happens after."""
    row = session.get(PortalPush, code, with_for_update=True)
    if row is None:
        session.add(PortalPush(dossier_code=code, version=version, state="pending", attempts=0,
                               next_attempt_at=now))
    elif row.version != version:
        row.version, row.state, row.attempts, row.next_attempt_at, row.last_error = version, "pending", 0, now, None


def _write(session: Session, fact: DossierFact, projection: Projection, zone: ZoneInfo) -> Counter:
    """Write the projection into the dossier's row; returns the change to the report's counters."""
    before = aggregates.contributions(fact, zone)
    for column in FACT_COLUMNS:
        setattr(fact, column, projection.facts.get(column))
    session.add(fact)
    change = aggregates.contributions(fact, zone)
    change.subtract(before)
    return change


def project(code: str, events: list[StoredEvent], zone: ZoneInfo) -> Projection:
    """Fold a dossier's stored events, in the order they happened, into its projection."""
    projection = Projection(code)
    for _ in fold(projection, events):
        pass
    facts = projection.facts
    facts["status_code"] = STATUS_CODES[facts["status"]]
    facts.setdefault("supplements", 0)
    # When the dossier left the in-progress count: its result was ready, or it was withdrawn.
    facts["closed_at"] = facts.get("finished_at") or facts.get("withdrawn_at")
    finished_at, due_at = facts.get("finished_at"), facts.get("due_at")
    # Judged (on local dates) only once the result is ready and a due date is known.
    judged = finished_at is not None and due_at is not None
    facts["timeliness"] = timeliness(finished_at, due_at, zone) if judged else None
    return projection


def fold(projection: Projection, events: list[StoredEvent]):
    """Apply `events` to `projection` in the order they happened; yields each event (loaded) once applied."""
    for stored in sorted(events, key=lambda e: (e.occurred_at, _ORDER.get(e.event_type, len(_ORDER)), e.event_id)):
        _, schema = schema_for(stored.event_type)
        data = schema.load(stored.data, partial=PERSONAL_KEYS)
        _apply(projection, stored.event_type, data)
        yield stored, data


def _apply(p: Projection, event_type: str, d: dict) -> None:
    f = p.facts
    if event_type in ("dossier_submitted", "dossier_received", "dossier_refused"):
        f.update({key: d[key] for key in DOSSIER_FACTS})
    if event_type == "dossier_submitted":
        f.update(submitted_at=d["submitted_at"], applicant_masked=d["applicant_masked"],
                 tracking_key=d["tracking_key"])
        p.advance(event_type, d["submitted_at"], d["agency_code"], None)
    elif event_type == "dossier_received":
        f.update(received_at=d["received_at"], due_at=d["due_at"])
        p.advance(event_type, d["received_at"], d["agency_code"], None)
    elif event_type == "dossier_refused":
        f["refused_at"] = d["refused_at"]
        p.advance(event_type, d["refused_at"], d["agency_code"], None)
    elif event_type in ("task_assigned", "task_completed"):
        at = d["assigned_at"] if event_type == "task_assigned" else d["completed_at"]
        p.advance(event_type, at, d["agency_code"], d["step"])
    elif event_type == "dossier_processing_started":
        f["processing_started_at"] = f.get("processing_started_at") or d["started_at"]
        p.advance(event_type, d["started_at"], f.get("current_agency_code"), f.get("current_step"))
    elif event_type == "supplement_requested":
        if p.advance(event_type, d["requested_at"], d["agency_code"], f.get("current_step")):
            f["paused_at"], f["pause_ended_at"] = d["requested_at"], None
            f["supplements"] = f.get("supplements", 0) + 1
    elif event_type == "dossier_supplemented":
        if p.advance(event_type, d["supplemented_at"], f.get("current_agency_code"), f.get("current_step"),
                     status=d["status"]):
            f["pause_ended_at"] = d["supplemented_at"]
            if d.get("due_at"):
                f["due_at"] = d["due_at"]  # the clock resumes: the due date moved by the paused time
    elif event_type == "dossier_rescheduled":
        # The apology's new appointment (form 04): the dossier is judged against it from now on.
        f["due_at"] = d["new_due_at"]
        p.advance(event_type, d["rescheduled_at"], f.get("current_agency_code") or d["agency_code"],
                  f.get("current_step"))
    elif event_type in ("task_overdue", "dossier_overdue"):
        # Workflow's notice: kept in the event store (the national portal's history) and its first time on
        # the row; the status does not move, and "overdue" in the report stays what the dates say.
        f["overdue_noticed_at"] = f.get("overdue_noticed_at") or d["detected_at"]
        p.advance(event_type, d["detected_at"], f.get("current_agency_code") or d["agency_code"],
                  f.get("current_step"))
    elif event_type in ("result_ready", "dossier_result_ready"):
        if p.advance(event_type, d["finished_at"], d["agency_code"], None):
            f["finished_at"] = d["finished_at"]
            if d.get("due_at"):  # intake repeats the due date, possibly moved by a supplement
                f["due_at"] = d["due_at"]
    elif event_type == "payment_requested":
        p.advance(event_type, d["requested_at"], f.get("current_agency_code") or d["agency_code"],
                  f.get("current_step"))
    elif event_type == "payment_received":
        if p.advance(event_type, d["paid_at"], f.get("current_agency_code"), f.get("current_step")) and d.get("due_at"):
            f["due_at"] = d["due_at"]  # the clock resumes: the due date moved by the unpaid time
    elif event_type == "dossier_transferred":
        p.advance(event_type, d["transferred_at"], d["to_agency_code"], d["step"])
    elif event_type == "dossier_stopped":
        p.advance(event_type, d["stopped_at"], f.get("current_agency_code") or d["agency_code"], None)
    elif event_type == "result_returned":
        f["returned_at"] = d["returned_at"]
        p.advance(event_type, d["returned_at"], f.get("current_agency_code"), None)
    elif event_type == "dossier_withdrawn":
        paused = f.get("status") == "supplement_requested"
        if p.advance(event_type, d["withdrawn_at"], f.get("current_agency_code"), None):
            f["withdrawn_at"] = d["withdrawn_at"]
            if paused:
                f["pause_ended_at"] = d["withdrawn_at"]


def dossier_events(session: Session, code: str) -> list[StoredEvent]:
    return list(session.scalars(select(StoredEvent).where(StoredEvent.dossier_code == code)))


def rebuild_all(uow: UnitOfWork, zone: ZoneInfo, on_progress=None) -> dict:
    """Replay: recompute every projection row from the event store; returns what it replayed.
    `on_progress(done, total)` hears, in dossiers, how far it got after each batch."""
    session = uow.session
    session.execute(delete(DossierFact))
    aggregates.clear(session)
    codes = list(session.scalars(select(StoredEvent.dossier_code).distinct().order_by(StoredEvent.dossier_code)))
    replayed = 0
    for start in range(0, len(codes), REBUILD_BATCH):
        batch = codes[start:start + REBUILD_BATCH]
        by_code: dict[str, list[StoredEvent]] = {code: [] for code in batch}
        for stored in session.scalars(select(StoredEvent).where(StoredEvent.dossier_code.in_(batch))):
            by_code[stored.dossier_code].append(stored)
            replayed += 1
        counts = Counter()
        for code, events in by_code.items():
            counts.update(_write(session, DossierFact(code=code), project(code, events, zone), zone))
        aggregates.apply(session, counts)
        session.flush()
        session.expunge_all()  # keep memory flat on a replay of millions of events
        if on_progress:
            on_progress(start + len(batch), len(codes))
    uow.commit()
    return {"dossiers": len(codes), "events": replayed}


def counts_by_status(session: Session) -> dict[str, int]:
    """Dossiers per status, every projected status present (zero included) for steady dashboards."""
    counts = dict.fromkeys(STATUS_CODES, 0)
    counts.update(session.execute(select(DossierFact.status, func.count()).group_by(DossierFact.status)).all())
    return counts
