"""The outbox relay: publishes committed outbox rows with publisher confirms, then marks them sent.

The fast path needs no query: a unit of work hands its rows (with their ids) to the relay right after
its commit; the relay publishes what it was handed — from however many commits arrived meanwhile —
as one batch whose confirms it awaits together (waiting for each confirm in turn moves an order of
magnitude fewer messages), and marks what went out with one UPDATE every `mark_every` seconds.

Nothing depends on that path: a row that was never handed over (its process died after the commit),
or whose publish failed, or that was published but not yet marked when its process died, is still
unpublished in the table, and every relay looks for such rows older than `orphan_age` every
`idle_poll` seconds, claiming them with FOR UPDATE SKIP LOCKED on PostgreSQL so that of several
instances one takes each. A row may thus go out twice, never zero times; consumers' inboxes absorb
the repeat.
"""
from __future__ import annotations

import logging
import time
from collections import deque
from datetime import timedelta
from typing import NamedTuple

import eventlet
from eventlet.event import Event as GreenEvent
from kombu import Connection, Exchange, Producer
from nameko.standalone.events import get_event_exchange
from sqlalchemy import delete, func, select, update
from sqlalchemy.orm import Session

from motcua import logs
from motcua.backoff import backoff
from motcua.db import OutboxRow, utcnow
from motcua.metrics import metrics_for
from motcua.sql import write_alone

log = logging.getLogger(__name__)


class OutboxRelay:
    batch_size = 200
    idle_poll = 1.0  # seconds between looks for rows nobody handed over
    orphan_age = timedelta(seconds=10)  # how old an unpublished row is before any relay takes it from the table
    mark_every = 0.1  # seconds: published rows are marked sent by one UPDATE at most this often
    retention = timedelta(days=7)  # published rows kept this long, for audit and re-sends

    def __init__(self, container, engine, metadata):
        self.container = container
        self.engine = engine
        self.table = metadata.tables["outbox"]
        self.metrics = metrics_for(container)
        self.publisher = ConfirmedPublisher(container.config["AMQP_URI"])
        self._wakeup = GreenEvent()
        self._running = False
        self._exchanges: dict[str, Exchange] = {}
        self._handed: deque[OutboxRow] = deque()
        self._published: list[int] = []  # ids published, not yet marked

    def hand_over(self, rows: list[OutboxRow]) -> None:
        """Rows a transaction has just committed: publish them as soon as possible."""
        self._handed.extend(rows)
        self.wake()

    def wake(self) -> None:
        if not self._wakeup.ready():
            self._wakeup.send(True)

    def stop(self) -> None:
        self._running = False
        self.wake()

    def run(self) -> None:
        try:
            self._relay_until_stopped()
        finally:
            try:
                self.mark_published()
            except Exception:  # the rows stay unmarked: published again after orphan_age, absorbed by inboxes
                log.warning("could not mark published outbox rows at stop", exc_info=True)
            self.publisher.close()

    def _relay_until_stopped(self) -> None:
        self._running = True
        failures = 0
        last_poll = last_mark = time.monotonic()
        cycles = 0
        while self._running:
            now = time.monotonic()
            tried = False  # whether this turn asked the database or the broker anything
            try:
                if self._handed:
                    tried = True
                    self.publish_handed()
                elif now - last_poll >= self.idle_poll:
                    tried = True
                    last_poll = now
                    self.relay_orphans()
                    cycles += 1
                    if cycles % 600 == 0:
                        self.purge_published()
                if self._published and (len(self._published) >= self.batch_size or not self._handed
                                        and now - last_mark >= self.mark_every):
                    tried = True
                    last_mark = now
                    self.mark_published()
                if tried:  # a turn that only waited proves nothing: the delays keep growing through it
                    failures = 0
            except Exception:
                failures += 1
                self.metrics.publish_failures.labels(self.container.service_name).inc()
                delay = backoff(failures, base=0.5, cap=30.0)
                log.warning("outbox relay failed (attempt %d), retrying in %.1fs", failures, delay,
                            exc_info=failures == 1)
                # Woken early by a commit's hand-over: that commit shows the database is back, and
                # its rows should not wait out the rest of a delay grown during a long outage.
                self._wait(delay)
                continue
            if not self._handed:
                pending_mark = self._published and self.mark_every - (time.monotonic() - last_mark)
                self._wait(min(self.idle_poll, pending_mark) if pending_mark else self.idle_poll)

    def _wait(self, seconds: float) -> None:
        if seconds > 0:
            with eventlet.Timeout(seconds, False):
                self._wakeup.wait()
        self._wakeup = GreenEvent()

    def publish_handed(self) -> int:
        """Publish up to a batch of the rows handed over; on failure they are handed back, in order."""
        batch = [self._handed.popleft() for _ in range(min(self.batch_size, len(self._handed)))]
        try:
            self._publish(batch)
        except BaseException:
            self._handed.extendleft(reversed(batch))
            raise
        self._published.extend(row.id for row in batch)
        return len(batch)

    def mark_published(self) -> None:
        ids, self._published = self._published, []
        if not ids:
            return
        t = self.table
        try:
            write_alone(self.engine, marked_sent(t, ids))
        except BaseException:
            self._published = ids + self._published
            raise

    def relay_orphans(self) -> int:
        """Publish unpublished rows older than `orphan_age` that no relay has in hand; returns how many."""
        t = self.table
        with Session(self.engine) as session:
            rows = session.execute(
                select(t.c.id, t.c.event_type, t.c.exchange, t.c.routing_key, t.c.payload)
                .where(t.c.published_at.is_(None), t.c.created_at < utcnow() - self.orphan_age)
                .order_by(t.c.id).limit(self.batch_size).with_for_update(skip_locked=True)
            ).all()
            if not rows:
                session.rollback()
                self.metrics.outbox_backlog.labels(self.container.service_name).set(len(self._handed))
                return 0
            log.info("relaying %d outbox row(s) nobody had handed over", len(rows))
            self._publish([OutboxRow(*row) for row in rows])
            session.execute(marked_sent(t, [r.id for r in rows]))
            backlog = session.execute(select(func.count()).select_from(t).where(t.c.published_at.is_(None))).scalar_one()
            session.commit()
        self.metrics.outbox_backlog.labels(self.container.service_name).set(backlog)
        return len(rows)

    def _publish(self, rows: list[OutboxRow]) -> None:
        self.publisher.publish_all(outgoing(rows, self._exchange))
        for row in rows:
            self.metrics.published.labels(self.container.service_name, row.event_type).inc()

    def purge_published(self) -> None:
        with Session(self.engine) as session:
            session.execute(delete(self.table).where(self.table.c.published_at < utcnow() - self.retention))
            session.commit()

    def _exchange(self, name: str | None) -> Exchange:
        key = name or ""
        if key not in self._exchanges:
            self._exchanges[key] = (
                get_event_exchange(self.container.service_name, self.container.config) if name is None
                else Exchange(name, type="topic", durable=True)
            )
        return self._exchanges[key]


class Outgoing(NamedTuple):
    body: dict
    exchange: Exchange
    routing_key: str
    headers: dict


def outgoing(rows: list[OutboxRow], exchange_of) -> list[Outgoing]:
    """Outbox rows as the messages to publish (`exchange_of(row.exchange)`: None is the service's own):
    each event's envelope as the body; the trace of the work that emitted it (kept in the row's payload
    by the unit of work) as the `nameko.trace_id` header."""
    return [_outgoing(row, exchange_of) for row in rows]


def _outgoing(row: OutboxRow, exchange_of) -> Outgoing:
    body = dict(row.payload)
    headers = {"event_id": body["event_id"], "event_type": row.event_type}
    trace = body.pop(logs.TRACE_KEY, None)
    if trace:
        headers[logs.TRACE_HEADER] = trace
    return Outgoing(body, exchange_of(row.exchange), row.routing_key or row.event_type, headers)


def marked_sent(table, ids: list[int]):
    return update(table).where(table.c.id.in_(ids)).values(published_at=utcnow(), attempts=table.c.attempts + 1)


class CommitRelay:
    """The relay of a process without a service container (`motcua history import`): the rows each
    commit hands it are published at once, their confirms awaited together, and marked sent. A publish
    that fails (the broker away) leaves its rows unpublished in the table, where the service's own
    relays take them as orphans: nothing is lost, the import goes on; `unpublished` counts them."""

    def __init__(self, amqp_uri: str, engine, metadata, exchange: Exchange):
        self.publisher = ConfirmedPublisher(amqp_uri)
        self.engine = engine
        self.table = metadata.tables["outbox"]
        self.exchange = exchange
        self.unpublished = 0

    def __call__(self, rows: list[OutboxRow]) -> None:
        try:
            self.publisher.publish_all(outgoing(rows, lambda name: self.exchange if name is None
                                                else Exchange(name, type="topic", durable=True)))
            write_alone(self.engine, marked_sent(self.table, [row.id for row in rows]))
        except Exception as exc:
            self.unpublished += len(rows)
            log.warning("%d outbox row(s) left to the service's relays: %s", len(rows), str(exc).split("\n")[0])

    def close(self) -> None:
        self.publisher.close()


class ConfirmedPublisher:
    """Publishes a batch of persistent messages on one channel in confirm mode and waits for the
    broker's confirms of the whole batch; raises (and reconnects next time) unless every message was
    confirmed. On the embedded bus, which has no confirms, a publish is synchronous anyway."""

    def __init__(self, amqp_uri: str, timeout: float = 30.0):
        self.amqp_uri = amqp_uri
        self.timeout = timeout
        self.connection: Connection | None = None
        self._unconfirmed: set[int] = set()
        self._refused = False
        self._declared: set[str] = set()

    def _open(self) -> None:
        self.connection = Connection(self.amqp_uri)
        self.connection.connect()
        self.channel = self.connection.channel()
        self.confirms = self.connection.transport.driver_type == "amqp"
        if self.confirms:
            self.channel.confirm_select()
            self.channel.events["basic_ack"].add(self._on_ack)
            self.channel.events["basic_nack"].add(self._on_nack)
        self.producer = Producer(self.channel, serializer="json")
        self._tag = 0
        self._declared = set()

    def _on_ack(self, delivery_tag: int, multiple: bool) -> None:
        if multiple:
            self._unconfirmed = {tag for tag in self._unconfirmed if tag > delivery_tag}
        else:
            self._unconfirmed.discard(delivery_tag)

    def _on_nack(self, delivery_tag: int, multiple: bool) -> None:
        self._refused = True
        self._on_ack(delivery_tag, multiple)

    def publish_all(self, messages: list[Outgoing]) -> None:
        try:
            if self.connection is None:
                self._open()
            self._refused = False
            for message in messages:
                if message.exchange.name not in self._declared:
                    message.exchange(self.channel).declare()
                    self._declared.add(message.exchange.name)
                self.producer.publish(message.body, exchange=message.exchange, routing_key=message.routing_key,
                                      headers=message.headers, delivery_mode=2,
                                      message_id=message.body.get("event_id"))
                self._tag += 1
                if self.confirms:
                    self._unconfirmed.add(self._tag)
            deadline = time.monotonic() + self.timeout
            while self._unconfirmed:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise TimeoutError(f"{len(self._unconfirmed)} publishes not confirmed in {self.timeout}s")
                self.connection.drain_events(timeout=remaining)
            if self._refused:
                raise ConnectionError("the broker refused (nacked) a publish of the batch")
        except BaseException:
            self.close()
            raise

    def close(self) -> None:
        connection, self.connection = self.connection, None
        self._unconfirmed = set()
        if connection is not None:
            try:
                connection.release()
            except Exception:  # already broken: nothing left to close cleanly
                pass
