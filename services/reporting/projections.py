"""The event store and the dossier projection (`dossier_facts`), kept a batch of events at a time.

The kit's consumer hands reporting a batch of new events (in delivery order, their inbox rows claimed).
`project` applies the whole batch in a constant number of statements, whatever its size: every affected
dossier's row read with its lock in one statement, the events applied to the rows in memory in delivery
order (`facts.apply`, plain Python: two events of one dossier in a batch both land, in order), then one
statement each for the stored events (without personal data), the rows read (UPDATE), the new rows
(INSERT), the report's counters (the summed difference of the rows' contributions) and the national
portal's queue. The other events of a dossier are never read: the row holds what the next event needs.
Nothing here commits.

A full replay (`rebuild_all`) applies the same function to every stored event, in the order they
happened, and writes through the same code; since `facts.apply` gives the same row in any order, live
and replay agree.

The statements are SQLAlchemy Core built once (their compiled form is cached) and take many rows
(`motcua.sql.insert_rows`): on PostgreSQL past `motcua.sql.FEW_ROWS` rows one array per column,
whatever the number of rows (a multi-VALUES statement would be compiled again for every distinct
number); a live batch's few rows, and SQLite, executemany.
"""
from __future__ import annotations

from collections import Counter
from datetime import datetime
from functools import cache
from types import SimpleNamespace
from typing import Iterator
from zoneinfo import ZoneInfo

from sqlalchemy import Connection, bindparam, delete, func, select
from sqlalchemy.orm import Session

from motcua.contracts import Event
from motcua.contracts.events import STATUS_CODES, schema_for
from motcua.db import UnitOfWork, utcnow
from motcua.faults import TransientFailure
from motcua.sql import execute_rows, insert_rows, update_rows
from services.reporting import aggregates, facts
from services.reporting.models import DossierFact, PortalPush, StoredEvent

# Keys of an event's data that are personal: the contact is for notify only, the form holds the
# applicant's declaration, a step's documents name files (a filename may carry a name or an ID
# number; intake keeps them). None is stored here.
PERSONAL_KEYS = ("contact", "form", "documents")
REBUILD_BATCH = 500
FACTS, EVENTS, PUSHES = DossierFact.__table__, StoredEvent.__table__, PortalPush.__table__
COLUMNS = tuple(column.name for column in FACTS.columns)
CHANGING = tuple(name for name in COLUMNS if name != "code")
# Locked in code order, so two instances applying batches that share dossiers cannot deadlock.
LOCKED_ROWS = (select(FACTS).where(FACTS.c.code.in_(bindparam("codes", expanding=True)))
               .order_by(FACTS.c.code).with_for_update())
EVENT_COLUMNS = tuple(column.name for column in EVENTS.columns)
STORED_EVENTS = select(EVENTS).where(EVENTS.c.dossier_code.in_(bindparam("codes", expanding=True)))


def consumer_id(event_type: str) -> str:
    """The inbox consumer of one event type (the kit's batch handler claims `<service>.<event_type>`)."""
    return f"reporting.{event_type}"


def dossier_code(data: dict) -> str:
    """Intake's events name the dossier `code`, workflow's `dossier_code`."""
    return data["dossier_code"] if "dossier_code" in data else data["code"]


def record(uow: UnitOfWork, events: list[Event], zone: ZoneInfo) -> int:
    """Apply `events` as the kit's consumer applies a batch, for callers outside it (tests, tools): their
    inbox rows claimed with one statement, the new ones projected, one commit (left to the batch inside
    one). Returns how many were new."""
    deliveries = [(event, consumer_id(event.event_type)) for event in events]
    uow.claim_all(deliveries)
    new = []
    for event, consumer in deliveries:
        if uow.claim(event, consumer):
            new.append(event)
        else:
            uow.duplicate(event, consumer)
    project(uow.session, new, zone)
    if not uow.in_batch:
        uow.commit()
    return len(new)


def project(session: Session, events: list[Event], zone: ZoneInfo) -> None:
    """Store `events` (new ones, in delivery order), apply them to their dossiers' rows and to the report's
    counters, queue the dossiers' new versions for the national portal. Does not commit.

    Written beside the ORM: a DossierFact the session holds is not refreshed (read rows afresh)."""
    if not events:
        return
    session.flush()  # whatever the session has pending is seen by the locked read
    connection = session.connection()
    rows = {row.code: SimpleNamespace(**row._mapping) for row in connection.execute(
        LOCKED_ROWS, {"codes": sorted({dossier_code(event.data) for event in events})})}
    before = {code: aggregates.contributions(row, zone) for code, row in rows.items()}
    stored = []
    for event in events:
        code = dossier_code(event.data)
        row = rows.get(code)
        if row is None:  # the dossier's first event (two instances racing: see `write`)
            row = rows[code] = new_row(code)
        _, schema = schema_for(event.event_type)
        stored.append({"event_id": event.event_id, "event_type": event.event_type, "version": event.version,
                       "source": event.source, "occurred_at": event.occurred_at, "dossier_code": code,
                       "data": {k: v for k, v in schema.dump(event.data).items() if k not in PERSONAL_KEYS}})
        facts.apply(row, event.event_type, event.data, zone)
        row.stored_events += 1
    execute_rows(connection, _store_events, stored)
    write(connection, rows, before, zone)
    mark_for_portal(connection, {code: row.stored_events for code, row in rows.items()}, utcnow())


def new_row(code: str) -> SimpleNamespace:
    """A dossier's row before any event: what `facts.apply` works on (plain attributes, no ORM)."""
    return SimpleNamespace(**{**dict.fromkeys(COLUMNS), "code": code, "stored_events": 0, "supplements": 0})


def write(connection: Connection, rows: dict[str, SimpleNamespace], before: dict[str, Counter],
          zone: ZoneInfo) -> None:
    """Write `rows`: those read (their contributions `before` the change) in one UPDATE, the others in one
    INSERT; and the counters' summed change in one upsert.

    Two instances may each apply a first event of one dossier at once: neither read a row, the second's
    INSERT waits for the first's commit and then inserts nothing. The second's work rests on a row that
    was not there, so its transaction fails as transient and its retry reads the row the first wrote."""
    change: Counter = Counter()
    updated, inserted = [], []
    for code, row in rows.items():
        change.update(aggregates.contributions(row, zone))
        if code in before:
            change.subtract(before[code])
            updated.append({"key": code, **{name: getattr(row, name) for name in CHANGING}})
        else:
            inserted.append({name: getattr(row, name) for name in COLUMNS})
    if updated:
        execute_rows(connection, _update_rows, updated)
    if inserted:
        written = execute_rows(connection, _insert_new_rows, inserted).all()
        if len(written) != len(inserted):
            raise TransientFailure("a dossier's row was created by another instance meanwhile")
    aggregates.apply(connection, change)


def mark_for_portal(connection: Connection, versions: dict[str, int], now: datetime) -> None:
    """Queue each dossier's version (its number of stored events) for the national portal, in the
    transaction that stored the events: a version is pushed once it is committed, whatever happens after."""
    execute_rows(connection, _queue_version, [
        {"dossier_code": code, "version": version, "state": "pending", "attempts": 0, "next_attempt_at": now}
        for code, version in sorted(versions.items())])


@cache
def _store_events(dialect: str, many: bool):
    return insert_rows(EVENTS, dialect, EVENT_COLUMNS, many=many)


@cache
def _update_rows(dialect: str, many: bool):
    return update_rows(FACTS, dialect, "code", CHANGING, many=many)


@cache
def _insert_new_rows(dialect: str, many: bool):
    """INSERT of new dossiers' rows that skips one another instance committed first, returning those
    written."""
    return insert_rows(FACTS, dialect, COLUMNS, many=many).on_conflict_do_nothing(
        index_elements=[FACTS.c.code]).returning(FACTS.c.code)


@cache
def _queue_version(dialect: str, many: bool):
    """The portal queue's upsert (a new version is due now, its failures forgotten), built once: building
    it costs more than running it."""
    statement = insert_rows(PUSHES, dialect, ("dossier_code", "version", "state", "attempts", "next_attempt_at"),
                            order_by=("dossier_code",), many=many)
    return statement.on_conflict_do_update(
        index_elements=[PUSHES.c.dossier_code], where=PUSHES.c.version != statement.excluded.version,
        set_={"version": statement.excluded.version, "state": "pending", "attempts": 0,
              "next_attempt_at": statement.excluded.next_attempt_at, "last_error": None})


def replay(row, events: list, zone: ZoneInfo) -> Iterator[tuple[StoredEvent, dict]]:
    """Apply a dossier's stored events (StoredEvents or `events` rows) to `row` in the order they
    happened; yields each (with its loaded data) once applied, so a caller can read the row as it stood
    after it."""
    loaded = [(stored, schema_for(stored.event_type)[1].load(stored.data, partial=PERSONAL_KEYS))
              for stored in events]
    for stored, data in facts.happened(loaded, lambda pair: pair[0].event_type, lambda pair: pair[1]):
        facts.apply(row, stored.event_type, data, zone)
        yield stored, data


def dossier_events(session: Session, code: str) -> list[StoredEvent]:
    return list(session.scalars(select(StoredEvent).where(StoredEvent.dossier_code == code)))


def rebuild_all(uow: UnitOfWork, zone: ZoneInfo, on_progress=None) -> dict:
    """Replay: recompute every projection row from the event store, `REBUILD_BATCH` dossiers at a time
    written as a live batch is (`write`); returns what it replayed. `on_progress(done, total)` hears, in
    dossiers, how far it got after each batch."""
    session = uow.session
    session.execute(delete(DossierFact))  # through the ORM: rows the session holds go with them
    aggregates.clear(session)
    connection = session.connection()
    codes = list(connection.scalars(select(EVENTS.c.dossier_code).distinct().order_by(EVENTS.c.dossier_code)))
    replayed = 0
    for start in range(0, len(codes), REBUILD_BATCH):
        batch = codes[start:start + REBUILD_BATCH]
        by_code: dict[str, list] = {code: [] for code in batch}
        for stored in connection.execute(STORED_EVENTS, {"codes": batch}):
            by_code[stored.dossier_code].append(stored)
            replayed += 1
        rows = {}
        for code, events in by_code.items():
            row = rows[code] = new_row(code)
            row.stored_events = len(events)
            for _ in replay(row, events, zone):
                pass
        write(connection, rows, {}, zone)
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
