"""The gateway's nameko adapters beyond the kit's: one-statement reads, the token check with its cache,
the audit log's group commit, the change feed of long polls, public tracking's edge cache, and the
broadcast event handler that tells every gateway instance about sessions and changes. Each is one object per container, shared by
its workers (a worker gets the object itself: nothing to build per request)."""
from __future__ import annotations

import logging
import time
import uuid
from functools import partial
from collections.abc import Callable, Hashable
from datetime import datetime
from types import SimpleNamespace
from typing import TypeVar

from kombu import Queue
from kombu.entity import binding
from nameko.events import BROADCAST, EventHandler
from nameko.extensions import DependencyProvider
from nameko.messaging import QueueConsumer
from nameko.standalone.events import get_event_exchange
from prometheus_client import Counter, Histogram
from sqlalchemy import create_engine
from sqlalchemy.engine import Connection, Engine

from motcua.db import Database, once_more_if_dropped
from motcua.identity import Caller
from motcua.metrics import metrics_for
from motcua.revocation import DEFAULT_ACCESS_CACHE_SECONDS, AccessCache
from services.gateway import sessions, tracking, watch
from services.gateway.audit import AuditWriter
from services.gateway.users import agency_tree
from services.gateway.watch import MAX_WAIT_SECONDS, ChangeFeed

log = logging.getLogger(__name__)

T = TypeVar("T")



def engine_of(container) -> Engine:
    """The engine of the service's database (the kit's `Database` provider's; set up before any start)."""
    return next(d for d in container.dependencies if isinstance(d, Database)).engine


class OneStatementReads:
    """Reads of one statement each, autocommit: one round trip (no BEGIN, no ROLLBACK, no pre-ping),
    no transaction held. On PostgreSQL an engine of their own whose connections stay in autocommit
    (switching a pooled connection in and out of it costs more than the read); a connection found
    dead (the database restarted) is retried once on a fresh one."""

    def __init__(self, engine: Engine, max_workers: int):
        self.own = engine.dialect.name != "sqlite"  # SQLite: one connection for the whole service, shared
        # One connection per worker, no more: a read holds one for a round trip (the platform's
        # connection budget counts them: motcua.config.db_connections_at_most).
        self.engine = (create_engine(engine.url, isolation_level="AUTOCOMMIT", pool_size=max_workers,
                                     max_overflow=0, pool_recycle=3600, hide_parameters=True)
                       if self.own else engine.execution_options(isolation_level="AUTOCOMMIT"))

    def close(self) -> None:
        if self.own:
            self.engine.dispose()

    def run(self, read: Callable[[Connection], T]) -> T:
        def once() -> T:
            with self.engine.connect() as connection:
                return read(connection)

        return once_more_if_dropped(once)


def reads_of(container) -> OneStatementReads:
    """The container's one-statement reads (one pool for all its providers)."""
    reads = getattr(container, "_gateway_reads", None)
    if reads is None:
        max_workers = int(container.config.get("max_workers", 10))
        reads = container._gateway_reads = OneStatementReads(engine_of(container), max_workers)
    return reads


class Reads(DependencyProvider):
    """`self.reads.run(lambda connection: ...)`: one statement, autocommit."""

    def start(self):
        self.reads = reads_of(self.container)

    def stop(self):
        self.reads.close()

    def get_dependency(self, worker_ctx):
        return self.reads


class AccessGuard(DependencyProvider):
    """Is a verified token still honoured (not revoked, its account unchanged)? Answered from an
    `AccessCache` kept `ACCESS_CACHE_SECONDS` (default 5 s), else by one statement."""

    def setup(self):
        ttl = float(self.container.config.get("ACCESS_CACHE_SECONDS", DEFAULT_ACCESS_CACHE_SECONDS))
        self.cache = AccessCache(ttl)
        checks = Counter("motcua_token_checks", "Token checks by where their answer came from (cached, read)",
                         ["answer"], registry=metrics_for(self.container).registry)
        self.cached, self.read = checks.labels("cached"), checks.labels("read")

    def start(self):
        self.reads = reads_of(self.container)

    def get_dependency(self, worker_ctx):
        return self

    def check(self, caller: Caller) -> None:
        """Unauthorized unless the caller's token is current."""
        state = self.cache.known(caller)
        if state is None:
            state = self.cache.load(caller, lambda: self.reads.run(
                lambda connection: sessions.load_state(connection, caller)))
            self.read.inc()
        else:
            self.cached.inc()
        sessions.judge(caller, state)

    def revoked(self, token_id: str, expires_at: datetime | None) -> None:
        self.cache.revoked(token_id, expires_at)

    def account_changed(self, username: str) -> None:
        self.cache.forget_account(username)

    def apply(self, body: dict) -> None:
        """Another instance's (or this one's) `token_revoked` or `account_changed` event."""
        data = body.get("data") or {}
        if body.get("event_type") == "token_revoked" and data.get("token_id"):
            expires_at = data.get("expires_at")
            self.revoked(str(data["token_id"]), datetime.fromisoformat(expires_at) if expires_at else None)
        elif body.get("event_type") == "account_changed" and data.get("username"):
            self.account_changed(str(data["username"]))


class AuditLog(DependencyProvider):
    """The audit log's writer (`AuditWriter`), its flusher a managed thread of the container."""

    def setup(self):
        registry = metrics_for(self.container).registry
        self.rows = Histogram("motcua_audit_batch_rows", "Audit rows per committed batch (group commit)",
                              buckets=(1, 2, 4, 8, 16, 32, 64), registry=registry)
        self.failures = Counter("motcua_audit_batch_failures", "Audit batches that could not be written "
                                "(their requests answered 503)", registry=registry)

    def start(self):
        config = self.container.config
        self.writer = AuditWriter(engine_of(self.container), max_batch=int(config.get("AUDIT_MAX_BATCH", 64)),
                                  linger=float(config.get("AUDIT_LINGER_SECONDS", 0.005)), observe=self._observe)
        self.container.spawn_managed_thread(self.writer.run, identifier="audit-flusher")

    def _observe(self, rows: int, stored: bool) -> None:
        if stored:
            self.rows.observe(rows)
        else:
            self.failures.inc()

    def stop(self):
        self.writer.stop()

    def kill(self):
        self.writer.stop()

    def get_dependency(self, worker_ctx):
        return self.writer


class Changes(DependencyProvider):
    """The change feed held requests wait on (`watch.ChangeFeed`), fed by the broadcast handlers."""

    def setup(self):
        self.feed = ChangeFeed()
        self.max_wait = float(self.container.config.get("LONG_POLL_MAX_SECONDS", MAX_WAIT_SECONDS))
        self.tree = agency_tree(str(self.container.config["CATALOG_DIR"]))

    def get_dependency(self, worker_ctx):
        return self

    def answer(self, request, payload, keys: tuple[Hashable, ...], position: int, version: int | None = None):
        """The route's answer with its ETag, or the request held for a change (watch.answer)."""
        return watch.answer(request, payload, self.feed, keys, position, version, cap=self.max_wait)

    def dossier_changed(self, body: dict) -> None:
        """Intake's event about a dossier: its view changed (to `dossier_version`)."""
        data = body.get("data") or {}
        if isinstance(data.get("code"), str):
            version = data.get("dossier_version")
            self.feed.notice(dossier_key(data["code"]), version if isinstance(version, int) else None)

    def tasks_changed(self, body: dict) -> None:
        """Workflow's event about a task: the inboxes of its agencies changed (and those above them,
        whose leaders oversee them; a platform admin's sees every agency)."""
        data = body.get("data") or {}
        agencies = {data.get(name) for name in ("agency_code", "from_agency_code", "to_agency_code")}
        keys = {tasks_key(None)}
        for agency in agencies:
            if isinstance(agency, str):
                keys |= {tasks_key(agency), *(tasks_key(parent) for parent in self.tree.ancestors(agency))}
        for key in keys:
            self.feed.notice(key)


class TrackingAnswers(DependencyProvider):
    """Public tracking's edge cache (`tracking.TrackingCache`), fed by the broadcast handlers and told
    by the broadcast consumer when it (re)connects or loses its connection. `TRACKING_CACHE_SIZE`
    answers (4096), each at most `TRACKING_CACHE_MAX_AGE_SECONDS` old (300)."""

    def setup(self):
        config = self.container.config
        outcomes = Counter("motcua_tracking_answers", "Public tracking requests by where their answer came "
                           "from: hit (the edge cache), miss (reporting), stale (cached, but a newer version "
                           "was announced or it aged: reporting)", ["outcome"],
                           registry=metrics_for(self.container).registry)
        counters = {outcome: outcomes.labels(outcome).inc for outcome in tracking.OUTCOMES}
        self.cache = tracking.TrackingCache(
            config["TRACKING_KEY"], size=int(config.get("TRACKING_CACHE_SIZE", tracking.DEFAULT_SIZE)),
            max_age=float(config.get("TRACKING_CACHE_MAX_AGE_SECONDS", tracking.DEFAULT_MAX_AGE_SECONDS)),
            count=lambda outcome: counters[outcome]())
        broadcast_listeners(self.container).append(self.cache)

    def get_dependency(self, worker_ctx):
        return self.cache


def dossier_key(code: str) -> Hashable:
    return ("dossier", code)


def tasks_key(agency_code: str | None) -> Hashable:
    return ("tasks", agency_code)


def broadcast_listeners(container) -> list:
    """What hears when the container's broadcast consumer starts hearing (`hearing()`, after every
    (re)connection) and when it stops (`deaf()`)."""
    listeners = getattr(container, "_gateway_broadcast_listeners", None)
    if listeners is None:
        listeners = container._gateway_broadcast_listeners = []
    return listeners


class BroadcastConsumer(QueueConsumer):
    """nameko's queue consumer, on a connection of its own for the broadcast handlers, telling the
    container's `broadcast_listeners` when it hears: from the moment its queues are declared and
    consumed after each (re)connection, until the connection is lost (its auto-delete queues go with
    it, and whatever was published meanwhile).

    Its consumers take messages unacknowledged (`no_ack`: the broker forgets a message once sent, as
    the queue itself does everything when the connection goes), and each handler runs in the
    consumer's own greenthread: no thread spawned and no ack sent for the ~20 events of every dossier.
    So the broker sends without waiting (no prefetch bound): every handler must be quick and never
    block (the gateway's in-memory caches and feeds). With no ack going back, the connection carries
    nothing from the gateway while events keep coming, and kombu's loop sends heartbeats only after a
    second with no message: AMQP lets a broker close such a connection as dead (RabbitMQ 3.10 was seen
    not to: 40 s of events every 0.2 s at a 1 s heartbeat, this check disabled). So each turn of the
    loop lets the connection send its heartbeat when one is due (it looks at most once a second).
    """

    HEARTBEAT_CHECK_SECONDS = 1.0
    _connection = None
    _heartbeat_checked = 0.0

    def get_consumers(self, consumer_cls, channel):
        return super().get_consumers(partial(consumer_cls, no_ack=True), channel)

    def handle_message(self, provider, body, message):
        provider.handle_message(body, message)

    def on_consume_ready(self, connection, channel, consumers, **kwargs):
        super().on_consume_ready(connection, channel, consumers, **kwargs)
        self._connection = connection
        for listener in broadcast_listeners(self.container):
            listener.hearing()

    def on_iteration(self):
        super().on_iteration()
        now = time.monotonic()
        if self._connection is not None and now - self._heartbeat_checked >= self.HEARTBEAT_CHECK_SECONDS:
            self._heartbeat_checked = now
            self._connection.heartbeat_check()

    def consume(self, *args, **kwargs):
        try:
            yield from super().consume(*args, **kwargs)
        finally:  # the connection failed (kombu's loop connects again), or the consumer stops
            for listener in broadcast_listeners(self.container):
                listener.deaf()


class BroadcastHandler(EventHandler):
    """nameko's broadcast event handler (one queue per gateway instance, gone with it) on several
    event types of one source at once: one queue, one consumer. Unreliable by design: what it tells
    (a change, a revocation) is also found within a few seconds without it, and what relies on
    hearing all of it (tracking's edge cache) forgets when its connection is lost.

    Its method runs in the consumer's greenthread, without a nameko worker (no context, no injection
    of every dependency, no metrics of its own: a gateway hears every dossier's events, ~20 a
    dossier), on a stand-in `self` holding only the dependencies it names in `uses`, each of which
    must answer `get_dependency` the same for every worker (the gateway's in-memory caches and feeds).
    """

    queue_consumer = BroadcastConsumer()

    def __init__(self, source_service: str, *event_types: str, uses: tuple[str, ...] = (), **kwargs):
        super().__init__(source_service, event_types[0], handler_type=BROADCAST, reliable_delivery=False,
                         **kwargs)
        self.event_types = event_types
        self.uses = uses

    def queue_prefix(self, service_name: str) -> str:
        """How every queue of `service_name`'s broadcast handlers of this source begins (its broker user
        may use those only: motcua.broker_permissions)."""
        return f"evt-{self.source_service}-broadcast--{service_name}."

    def setup(self):
        super().setup()
        exchange = get_event_exchange(self.source_service, self.container.config)
        name = f"{self.queue_prefix(self.container.service_name)}{self.method_name}-{uuid.uuid4().hex}"
        self.queue = Queue(name, bindings=[binding(exchange, routing_key=event_type) for event_type in self.event_types],
                           durable=False, auto_delete=True, exclusive=True)

    def start(self):
        super().start()
        providers = {d.attr_name: d for d in self.container.dependencies}
        self.stand_in = SimpleNamespace(**{name: providers[name].get_dependency(None) for name in self.uses})
        self.method = getattr(self.container.service_cls, self.method_name)

    def handle_message(self, body, message):
        try:
            self.method(self.stand_in, body)
        except Exception:  # what it tells is found again without it (see above): never stop hearing
            log.warning("broadcast handler %s failed on %s", self.method_name,
                        body.get("event_type") if isinstance(body, dict) else type(body).__name__, exc_info=True)


broadcast_handler = BroadcastHandler.decorator
