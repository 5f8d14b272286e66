"""The outbox relay: publishes committed outbox rows with publisher confirms, then marks them sent.

Several instances of a service may relay at once: on PostgreSQL each batch is claimed with
FOR UPDATE SKIP LOCKED, so a row goes out through one relay (and at least once if one dies mid-batch;
consumers' inboxes absorb the repeat).
"""
from __future__ import annotations

import logging
import random
from datetime import timedelta

import eventlet
from eventlet.event import Event as GreenEvent
from kombu import Exchange
from nameko.amqp.publish import Publisher
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
        self.publisher = Publisher(container.config["AMQP_URI"], use_confirms=True)
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
            for row in rows:
                exchange = self._exchange(row.exchange)
                self.publisher.publish(
                    row.payload, exchange=exchange, routing_key=row.routing_key or row.event_type,
                    headers={"event_id": row.payload["event_id"], "event_type": row.event_type},
                    declare=[exchange], message_id=row.payload["event_id"],
                )
                self.metrics.published.labels(self.container.service_name, row.event_type).inc()
            if rows:
                session.execute(update(t).where(t.c.id.in_([r.id for r in rows]))
                                .values(published_at=utcnow(), attempts=t.c.attempts + 1))
            backlog = session.execute(select(func.count()).select_from(t).where(t.c.published_at.is_(None))).scalar_one()
            session.commit()
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
