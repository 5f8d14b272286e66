"""The event store and the dossier projection (`dossier_facts`), kept event by event.

Each event is stored once (without personal data) and applied to its dossier's row (`facts.apply`) and
to the report's counters (the difference of the row's contributions), in a handful of statements: the
row read with its lock, the stored event, the row, the counters, the national portal's queue row. The
other events of the dossier are never read: the row holds what the next event needs. Several events may
be applied one after another in one transaction (the consumer batches them); nothing here commits.

A full replay (`rebuild_all`) applies the same function to every stored event, in the order they
happened; since `facts.apply` gives the same row in any order, live and replay agree.
"""
from __future__ import annotations

from collections import Counter
from datetime import datetime
from functools import cache
from typing import Iterator
from zoneinfo import ZoneInfo

from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from motcua.contracts import Event
from motcua.contracts.events import STATUS_CODES, schema_for
from motcua.db import UnitOfWork, utcnow
from services.reporting import aggregates, facts
from services.reporting.models import DossierFact, PortalPush, StoredEvent

# Keys of an event's data that are personal: the contact is for notify only, the form holds the
# applicant's declaration, a step's documents name files (a filename may carry a name or an ID
# number; intake keeps them). None is stored here.
PERSONAL_KEYS = ("contact", "form", "documents")
REBUILD_BATCH = 500
PUSHES = PortalPush.__table__


def consumer_id(event_type: str) -> str:
    """The inbox consumer of one event handler (one per event type)."""
    return f"reporting.{event_type}"


def dossier_code(data: dict) -> str:
    """Intake's events name the dossier `code`, workflow's `dossier_code`."""
    return data["dossier_code"] if "dossier_code" in data else data["code"]


def record(uow: UnitOfWork, event: Event, zone: ZoneInfo) -> bool:
    """Store `event` and apply it to its dossier's projection, exactly once; False if it was applied before."""
    return uow.apply_once(event, consumer_id(event.event_type), lambda unit, evt: project(unit.session, evt, zone))


def project(session: Session, event: Event, zone: ZoneInfo) -> None:
    """Store `event`, apply it to its dossier's row and to the report's counters, queue the dossier's new
    version for the national portal. Does not commit."""
    code = dossier_code(event.data)
    row = _locked_row(session, code)
    _, schema = schema_for(event.event_type)
    wire = {k: v for k, v in schema.dump(event.data).items() if k not in PERSONAL_KEYS}
    session.add(StoredEvent(event_id=event.event_id, event_type=event.event_type, version=event.version,
                            source=event.source, occurred_at=event.occurred_at, dossier_code=code, data=wire))
    before = aggregates.contributions(row, zone)
    facts.apply(row, event.event_type, event.data, zone)
    row.stored_events = (row.stored_events or 0) + 1
    change = aggregates.contributions(row, zone)
    change.subtract(before)
    aggregates.apply(session, change)
    mark_for_portal(session, code, row.stored_events, utcnow())


def _locked_row(session: Session, code: str) -> DossierFact:
    """The dossier's row, locked: two events of one dossier applied concurrently must not each miss the
    other's change. Read afresh (`populate_existing`) even when the session holds it from an earlier
    transaction. (Two *first* events racing both insert the row: one fails on the primary key and is
    retried, then it finds the other's row.)"""
    row = session.get(DossierFact, code, with_for_update=True, populate_existing=True)
    if row is None:
        row = DossierFact(code=code, stored_events=0)
        session.add(row)
    return row


def mark_for_portal(session: Session, code: str, version: int, now: datetime) -> None:
    """Queue the dossier's `version` (its number of stored events) for the national portal, in the
    transaction that stored the event: a version is pushed once it is committed, whatever happens after."""
    session.execute(_queue_version(session.get_bind().dialect.name), {
        "dossier_code": code, "version": version, "state": "pending", "attempts": 0, "next_attempt_at": now})


@cache
def _queue_version(dialect: str):
    """The portal queue's upsert (a new version is due now, its failures forgotten), built once: building
    it costs more than running it."""
    statement = aggregates.dialect_insert(dialect)(PUSHES)
    return statement.on_conflict_do_update(
        index_elements=[PUSHES.c.dossier_code], where=PUSHES.c.version != statement.excluded.version,
        set_={"version": statement.excluded.version, "state": "pending", "attempts": 0,
              "next_attempt_at": statement.excluded.next_attempt_at, "last_error": None})


def replay(row: DossierFact, events: list[StoredEvent], zone: ZoneInfo) -> Iterator[tuple[StoredEvent, dict]]:
    """Apply a dossier's stored events to `row` in the order they happened; yields each (with its loaded
    data) once applied, so a caller can read the row as it stood after it."""
    loaded = [(stored, schema_for(stored.event_type)[1].load(stored.data, partial=PERSONAL_KEYS))
              for stored in events]
    for stored, data in facts.happened(loaded, lambda pair: pair[0].event_type, lambda pair: pair[1]):
        facts.apply(row, stored.event_type, data, zone)
        yield stored, data


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
            row = DossierFact(code=code, stored_events=len(events))
            for _ in replay(row, events, zone):
                pass
            counts.update(aggregates.contributions(row, zone))
            session.add(row)
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
    counts.update(session.execute(select(DossierFact.status, func.count()).where(DossierFact.status.is_not(None))
                                  .group_by(DossierFact.status)).all())
    return counts
