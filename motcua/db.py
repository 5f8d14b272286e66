"""The database dependency: one engine per service, a unit of work per worker.

Domain code receives a `UnitOfWork`: its SQLAlchemy session, `emit()` to record an event in the
transactional outbox, `apply_once()` to apply an incoming event exactly once (inbox). Commit happens
inside the entrypoint, so a message is acknowledged only after its effects are committed.
"""
from __future__ import annotations

import logging
from datetime import datetime, timezone
from functools import cache
from typing import Callable, NamedTuple, TypeVar
from weakref import WeakKeyDictionary

from nameko.extensions import DependencyProvider
from sqlalchemy import (
    JSON,
    BigInteger,
    Column,
    DateTime,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    TypeDecorator,
    create_engine,
    event,
    insert,
    select,
    text,
)
from sqlalchemy.engine import Engine
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import DeclarativeBase, Session, sessionmaker

from motcua import logs
from motcua.config import PoolSize, db_pool
from motcua.contracts import Event, make_event
from motcua.sql import execute_rows, has_upsert, insert_numbered, insert_rows

log = logging.getLogger(__name__)
T = TypeVar("T")


class UTCDateTime(TypeDecorator):
    """Aware datetimes stored as UTC on every backend (SQLite keeps no offset)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value, dialect):
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTCDateTime column")
        value = value.astimezone(timezone.utc)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value, dialect):
        if value is None:
            return None
        return value.replace(tzinfo=timezone.utc) if value.tzinfo is None else value.astimezone(timezone.utc)


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


@cache
def _claim(inbox: Table, dialect: str, many: bool):
    """The inbox rows of a batch's deliveries, those new returned: a cached statement (a .values([...])
    statement is compiled again for every distinct row count), given the rows in key order (two instances
    claiming the same events lock them in one order)."""
    return insert_rows(inbox, dialect, ("event_id", "consumer", "event_type", "applied_at"),
                       order_by=("event_id", "consumer"), many=many).on_conflict_do_nothing().returning(
        inbox.c.event_id, inbox.c.consumer)


class ServiceBase:
    """Mixin of each service's declarative base: aware datetimes and JSON dicts by annotation.

    Each service declares its own `class Base(ServiceBase, DeclarativeBase)`, hence its own metadata."""

    type_annotation_map = {datetime: UTCDateTime(), dict: JSON()}


def reliability_tables(metadata: MetaData) -> tuple[Table, Table]:
    """The outbox (events to publish) and inbox (events applied) tables of one service database."""
    outbox = Table(
        "outbox", metadata,
        Column("id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True),
        Column("event_id", String(36), nullable=False),
        Column("event_type", String(64), nullable=False),
        Column("exchange", String(128), nullable=True),
        Column("routing_key", String(255), nullable=True),
        Column("payload", JSON, nullable=False),
        Column("created_at", UTCDateTime(), nullable=False),
        Column("published_at", UTCDateTime(), nullable=True),
        Column("attempts", Integer, nullable=False, default=0),
        Index("ix_outbox_pending", "published_at", "id"),
    )
    inbox = Table(
        "inbox", metadata,
        Column("event_id", String(36), primary_key=True),
        Column("consumer", String(128), primary_key=True),
        Column("event_type", String(64), nullable=False),
        Column("applied_at", UTCDateTime(), nullable=False),
    )
    return outbox, inbox


def make_engine(url: str, pool: PoolSize = PoolSize(10, 10)) -> Engine:
    """An engine on `url`; `pool`: a service's share of the connection budget (`Database` passes it),
    or a tool's or a test's default."""
    if url.startswith("sqlite"):
        # One connection: SQLite serializes writers, and a second greenthread blocking in C on the
        # file lock would stall the whole eventlet hub. Greenthreads queue on the pool instead.
        engine = create_engine(url, pool_size=1, max_overflow=0, pool_timeout=60, hide_parameters=True)

        @event.listens_for(engine, "connect")
        def _pragmas(dbapi_connection, _record):
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.close()

        return engine
    # hide_parameters: a failed statement's message would otherwise carry the applicant's data into logs.
    # No pre-ping (a round trip before every checkout): a connection the server dropped fails its call,
    # SQLAlchemy then discards the pool's connections, and the next call connects afresh; connections
    # are also recycled before a server or a proxy would time them out. The pool's size is the
    # service's share of the platform's connection budget (motcua.config.db_pool).
    return create_engine(url, pool_size=pool.size, max_overflow=pool.overflow, pool_recycle=1800,
                         hide_parameters=True)


class OutboxRow(NamedTuple):
    """An outbox row as the relay publishes it."""

    id: int
    event_type: str
    exchange: str | None
    routing_key: str | None
    payload: dict


class UnitOfWork:
    """One business transaction: the session, the events it emits, and the events it applies."""

    def __init__(self, session: Session | Callable[[], Session], source: str, metadata: MetaData,
                 on_commit: Callable[[list[OutboxRow]], None] | None = None,
                 on_duplicate: Callable[[str], None] | None = None):
        """`session`: a Session, or what makes one when the work first needs it (a worker that never
        touches the database — a cached read, an answer from memory — then makes none, and leaves no
        Session for the garbage collector)."""
        self._session = session if isinstance(session, Session) else None
        self._make_session = None if isinstance(session, Session) else session
        self.source = source
        self.metadata = metadata
        self._outbox = metadata.tables["outbox"]
        self._inbox = metadata.tables["inbox"]
        self._on_commit = on_commit
        self._on_duplicate = on_duplicate or (lambda consumer: None)
        self._outgoing: list[dict] = []  # outbox rows of this transaction, written at commit
        self._written: list[OutboxRow] = []  # … and once written, handed to the relay after the commit
        self._after_commit: list[Callable[[], None]] = []
        # Set by the kit's batched event consumer: apply_once leaves the commit to the batch.
        self.in_batch = False
        self._claimed: dict[tuple[str, str], bool] = {}  # claim_all's answers not yet asked for

    @property
    def session(self) -> Session:
        if self._session is None:
            self._session = self._make_session()
        return self._session

    def after_commit(self, callback: Callable[[], None]) -> None:
        """Run `callback` once this transaction has committed (never if it rolls back): e.g. wake a
        scheduler that will read what the transaction wrote."""
        self._after_commit.append(callback)

    def emit(self, event_type: str, data: dict, exchange: str | None = None,
             routing_key: str | None = None, event_id: str | None = None) -> str:
        """Record an event to publish after commit; returns its event id. The outbox rows of a
        transaction are written together, in emit order, by one INSERT just before it commits."""
        payload = make_event(self.source, event_type, data)
        if event_id:
            payload["event_id"] = event_id
        trace = logs.current_trace()
        if trace:  # kept with the row, published as a header (motcua.outbox), never in the event's body
            payload[logs.TRACE_KEY] = trace
        self._outgoing.append({"event_id": payload["event_id"], "event_type": event_type, "exchange": exchange,
                               "routing_key": routing_key, "payload": payload, "created_at": utcnow(),
                               "attempts": 0})
        return payload["event_id"]

    def claim(self, event: Event, consumer: str) -> bool:
        """Mark `event` applied by `consumer` in this transaction: True if it is new to the consumer,
        False if it was applied before. Inside a batch the kit claimed every delivery at once
        (`claim_all`); otherwise one INSERT … ON CONFLICT DO NOTHING RETURNING (a concurrent delivery
        of the same event waits on the first one's row and then finds it)."""
        key = (event.event_id, consumer)
        if key not in self._claimed:
            self.claim_all([(event, consumer)])
        return self._claimed.pop(key)

    def claim_all(self, deliveries: list[tuple[Event, str]]) -> None:
        """Claim many (event, consumer) pairs with one statement; `claim` then answers for each of them
        once (a second delivery of an event in the same batch claims again, and finds the first)."""
        rows, seen = [], set()
        for event, consumer in deliveries:
            if (event.event_id, consumer) not in seen:
                seen.add((event.event_id, consumer))
                rows.append({"event_id": event.event_id, "consumer": consumer, "event_type": event.event_type,
                             "applied_at": utcnow()})
        rows.sort(key=lambda row: (row["event_id"], row["consumer"]))  # locked in one order by every instance
        dialect = self.session.get_bind().dialect.name
        if has_upsert(dialect):
            new = {tuple(row) for row in execute_rows(
                self.session.connection(), lambda dialect, many: _claim(self._inbox, dialect, many), rows)}
        else:
            t = self._inbox
            new = set()
            for row in rows:
                if self.session.execute(select(t.c.event_id).where(
                        t.c.event_id == row["event_id"], t.c.consumer == row["consumer"])).first() is None:
                    self.session.execute(insert(t).values(**row))
                    new.add((row["event_id"], row["consumer"]))
        for event, consumer in deliveries:
            self._claimed[(event.event_id, consumer)] = (event.event_id, consumer) in new

    def duplicate(self, event: Event, consumer: str) -> None:
        """`event` was applied by `consumer` before: counted and skipped."""
        log.info("skipped duplicate event %s (%s) for %s", event.event_id, event.event_type, consumer)
        self._on_duplicate(consumer)

    def apply_once(self, event: Event, consumer: str, apply: Callable[["UnitOfWork", Event], None]) -> bool:
        """Apply `event` unless this consumer applied it already; True if applied now. Inside a batch
        of the kit's event consumer the batch commits; called on its own, this commits."""
        if not self.claim(event, consumer):
            self.duplicate(event, consumer)
            if not self.in_batch:
                self.rollback()
            return False
        apply(self, event)
        if not self.in_batch:
            self.commit()
        return True

    def health(self) -> dict:
        """The service's answer to the gateway's `health()` RPC: its own database answers."""
        ping(self.session)
        return {"status": "ok", "service": self.source, "checks": {"database": "ok"}}

    def flush_events(self) -> None:
        """Write the emitted events' outbox rows now (commit does it anyway)."""
        if self._outgoing:
            ids = insert_numbered(self.session.connection(), self._outbox, self._outgoing)
            self._written.extend(OutboxRow(id, row["event_type"], row["exchange"], row["routing_key"], row["payload"])
                                 for id, row in zip(ids, self._outgoing))
            self._outgoing = []

    def commit(self) -> None:
        self.flush_events()
        if self._session is not None:
            self._session.commit()
        self._claimed = {}
        written, self._written = self._written, []
        if written and self._on_commit:
            self._on_commit(written)
        callbacks, self._after_commit = self._after_commit, []
        for callback in callbacks:
            callback()

    def rollback(self) -> None:
        if self._session is not None:
            self._session.rollback()
        self._outgoing, self._written = [], []
        self._after_commit = []
        self._claimed = {}

    def close(self) -> None:
        """End the work (what was not committed is rolled back); never raises. It runs in the worker's
        teardown, where an exception would kill the whole service container: a connection the server
        dropped mid-transaction fails its rollback, so it is discarded instead and the pool connects
        afresh for the next worker."""
        if self._session is None:
            return
        try:
            self.rollback()
            self._session.close()
        except Exception as exc:
            log.warning("discarding a database connection that could not roll back (%s)", type(exc).__name__)
            self._session.invalidate()


class Database(DependencyProvider):
    """Injects a UnitOfWork per worker; runs the service's outbox relay while the container runs."""

    def __init__(self, base: type[DeclarativeBase], relay: bool = True,
                 unit_of_work: type[UnitOfWork] = UnitOfWork):
        """`unit_of_work`: the service's own UnitOfWork subclass (its repositories over the session)."""
        self.base = base
        self.unit_class = unit_of_work
        self.with_relay = relay
        self.engine: Engine | None = None
        self.sessionmaker = None
        self.relay = None
        self.units: WeakKeyDictionary = WeakKeyDictionary()

    def setup(self):
        service = self.container.service_name
        url = self.container.config["DB_URLS"][service]
        self.engine = make_engine(url, db_pool(service, self.container.config.get("max_workers", 10)))
        self.sessionmaker = sessionmaker(bind=self.engine, expire_on_commit=False)
        if self.with_relay:
            from motcua.outbox import OutboxRelay  # the relay needs the broker; keep db importable alone
            self.relay = OutboxRelay(self.container, self.engine, self.base.metadata)

    def start(self):
        if self.relay:
            self.container.spawn_managed_thread(self.relay.run, identifier="outbox-relay")

    def stop(self):
        if self.relay:
            self.relay.stop()

    def kill(self):
        self.stop()

    def unit_of_work(self) -> UnitOfWork:
        from motcua.metrics import metrics_for

        service = self.container.service_name
        duplicates = metrics_for(self.container).duplicates
        return self.unit_class(self.sessionmaker, service, self.base.metadata,
                          on_commit=self.relay.hand_over if self.relay else None,
                          on_duplicate=lambda consumer: duplicates.labels(service, consumer).inc())

    def get_dependency(self, worker_ctx):
        unit = self.unit_of_work()
        self.units[worker_ctx] = unit
        return unit

    def worker_teardown(self, worker_ctx):
        unit = self.units.pop(worker_ctx, None)
        if unit is not None:
            unit.close()

    def ping(self) -> None:
        with Session(self.engine) as session:
            ping(session)


def once_more_if_dropped(work: Callable[[], T], before_again: Callable[[], None] = lambda: None) -> T:
    """`work()`, done once more if it met a pooled connection the server had dropped (the database
    restarted, a proxy cut it): SQLAlchemy discarded that connection, so the second try connects
    afresh, and one stale connection says nothing of the database now. `before_again`: what makes the
    second try possible (a Session's rollback)."""
    try:
        return work()
    except DBAPIError as exc:
        if not exc.connection_invalidated:
            raise
    before_again()
    return work()


def ping(session: Session) -> None:
    """Raise unless the database answers now."""
    once_more_if_dropped(lambda: session.execute(text("SELECT 1")), session.rollback)
