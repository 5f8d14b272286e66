"""The outbox relay: publishes committed outbox rows with publisher confirms, then marks them sent.

A batch of rows is published at once and the broker's confirms of all of it are awaited together
(waiting for each confirm in turn moves an order of magnitude fewer messages). Several instances of a
service may relay at once: on PostgreSQL each batch is claimed with FOR UPDATE SKIP LOCKED, so a row
goes out through one relay (and at least once if one dies mid-batch, or if a confirm is lost:
consumers' inboxes absorb the repeat).
"""
from __future__ import annotations

import logging
import random
import time
from datetime import timedelta
from typing import NamedTuple

import eventlet
from eventlet.event import Event as GreenEvent
from kombu import Connection, Exchange, Producer
from nameko.standalone.events import get_event_exchange
from sqlalchemy import delete, func, select, update
from sqlalchemy.orm import Session

from motcua.db import utcnow
from motcua.metrics import metrics_for

log = logging.getLogger(__name__)


class OutboxRelay:
    batch_size = 200
    idle_poll = 1.0  # seconds between polls when nobody wakes the relay
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
            self.publisher.close()

    def _relay_until_stopped(self) -> None:
        self._running = True
        failures = 0
        cycles = 0
        while self._running:
            try:
                published = self.relay_batch()
                failures = 0
            except Exception:
                failures += 1
                self.metrics.publish_failures.labels(self.container.service_name).inc()
                delay = min(30.0, 0.5 * 2 ** min(failures, 6)) * (0.5 + random.random())
                log.warning("outbox relay failed (attempt %d), retrying in %.1fs", failures, delay,
                            exc_info=failures == 1)
                eventlet.sleep(delay)
                continue
            cycles += 1
            if cycles % 600 == 0:
                self.purge_published()
            if published < self.batch_size:
                self._wait()

    def _wait(self) -> None:
        with eventlet.Timeout(self.idle_poll, False):
            self._wakeup.wait()
        self._wakeup = GreenEvent()

    def relay_batch(self) -> int:
        """Publish one batch of pending rows; returns how many went out."""
        t = self.table
        with Session(self.engine) as session:
            rows = session.execute(
                select(t.c.id, t.c.event_type, t.c.exchange, t.c.routing_key, t.c.payload)
                .where(t.c.published_at.is_(None)).order_by(t.c.id).limit(self.batch_size)
                .with_for_update(skip_locked=True)
            ).all()
            if not rows:
                session.rollback()
                self.metrics.outbox_backlog.labels(self.container.service_name).set(0)
                return 0
            self.publisher.publish_all([
                Outgoing(row.payload, self._exchange(row.exchange), row.routing_key or row.event_type,
                         {"event_id": row.payload["event_id"], "event_type": row.event_type})
                for row in rows])
            session.execute(update(t).where(t.c.id.in_([r.id for r in rows]))
                            .values(published_at=utcnow(), attempts=t.c.attempts + 1))
            # Counted only when a full batch suggests more is waiting (one statement less per batch).
            backlog = (session.execute(select(func.count()).select_from(t).where(t.c.published_at.is_(None)))
                       .scalar_one() if len(rows) == self.batch_size else 0)
            session.commit()
        for row in rows:
            self.metrics.published.labels(self.container.service_name, row.event_type).inc()
        self.metrics.outbox_backlog.labels(self.container.service_name).set(backlog)
        return len(rows)

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
