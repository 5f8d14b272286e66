"""Event handling: one queue per service, events applied in batches, poison parked, nothing dropped.

`@event_handler(source, event_type)` declares what a service listens to, as nameko's does, and the
method receives a parsed, contract-checked `motcua.contracts.Event`. Underneath, every handler of a
service shares ONE durable queue (`inbox.<service>`, bound to each `(source, event_type)` it handles),
consumed by `EventInbox`:

* Messages are taken in batches: while one batch is being applied the next accumulates (up to
  `EVENT_BATCH_SIZE`), so an idle service applies an event at once and a busy one applies many per
  transaction. A batch runs in ONE nameko worker: each event's handler in delivery order, inside one
  unit of work (`UnitOfWork.apply_once` claims the inbox row with one `INSERT … ON CONFLICT DO
  NOTHING RETURNING` and does not commit), one commit, then the acks. Events of one dossier are thus
  applied in the order they arrived, and a redelivered event is skipped by the inbox.
* If a batch fails, it is rolled back and its events are applied one by one, each in its own
  transaction, so one bad message cannot hold the others back. A message that fails alone is sent
  back for another try after a growing delay, and after `EVENT_MAX_ATTEMPTS` it is parked with its
  error in `<queue>.dead` (never dropped, never looped). A malformed event, or one no handler of the
  service knows, is parked at once.

`ParkingConsumer` gives the same retry-then-park behaviour to single-message consumers (agencies'
task queues, `motcua.worker`).
"""
from __future__ import annotations

import logging
import traceback
from collections import deque
from dataclasses import dataclass
from functools import partial

import eventlet
from eventlet.event import Event as GreenEvent
from kombu import Exchange, Queue, binding
from marshmallow import ValidationError
from nameko.amqp.publish import Publisher, get_connection
from nameko.containers import ContainerBeingKilled
from nameko.extensions import Entrypoint, ProviderCollector, SharedExtension
from nameko.messaging import QueueConsumer
from nameko.standalone.events import get_event_exchange
from prometheus_client import Counter, Histogram

from motcua.backoff import backoff
from motcua.contracts import Event, parse_event
from motcua.metrics import metrics_for

log = logging.getLogger(__name__)

DEAD_LETTER_EXCHANGE = Exchange("motcua.dead-letter", type="direct", durable=True)
ATTEMPTS_HEADER = "x-motcua-attempts"
APPLY_BATCH = "apply_event_batch"  # the method a batch's worker runs (added to the service class)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128)


def dead_letter_queue(queue_name: str) -> Queue:
    return Queue(f"{queue_name}.dead", exchange=DEAD_LETTER_EXCHANGE, routing_key=queue_name, durable=True)


def inbox_queue_name(service: str) -> str:
    """The one queue of every event a service handles."""
    return f"inbox.{service}"


class Parking:
    """Sends a failed message back for another try, or parks it with its error (`<queue>.dead`)."""

    def __init__(self, container, queue_name: str, consumer_name: str, max_attempts: int):
        self.container = container
        self.queue_name = queue_name
        self.consumer_name = consumer_name
        self.max_attempts = max_attempts
        self.dead_letters = dead_letter_queue(queue_name)
        self.publisher = Publisher(container.config["AMQP_URI"], use_confirms=True)
        self.metrics = metrics_for(container)

    def declare(self) -> None:
        # Declared up front so parked messages always have somewhere to go.
        with get_connection(self.container.config["AMQP_URI"]) as connection:
            self.dead_letters(connection.default_channel).declare()

    def failed(self, message, exc_info, ack) -> None:
        """After a failure: retry later (the message stays unacked until it is sent back), or park."""
        attempts = int((message.headers or {}).get(ATTEMPTS_HEADER, 0)) + 1
        error = "".join(traceback.format_exception_only(exc_info[0], exc_info[1])).strip()
        if attempts >= self.max_attempts:
            self.park(message.payload, message, error, attempts)
            ack(message)
            return

        def retry():
            eventlet.sleep(backoff(attempts, base=0.4, cap=60.0))
            log.warning("event handler %s failed (attempt %d of %d); retrying", self.consumer_name,
                        attempts, self.max_attempts)
            headers = dict(message.headers or {}, **{ATTEMPTS_HEADER: attempts})
            try:
                self.publisher.publish(message.payload, exchange="", routing_key=self.queue_name,
                                       headers=headers)
            except Exception:  # the broker went away: the unacked message comes back when it returns
                log.warning("could not send a failed message of %s back for a retry", self.consumer_name,
                            exc_info=True)
                return
            self.metrics.redeliveries.labels(self.container.service_name, self.queue_name).inc()
            ack(message)

        self.container.spawn_managed_thread(retry, identifier=f"retry-{self.consumer_name}")

    def park(self, body, message, error: str, attempts: int = 1) -> None:
        log.error("event handler %s parked a message in %s after %d attempt(s): %s",
                  self.consumer_name, self.dead_letters.name, attempts, error)
        headers = dict(message.headers or {}, **{
            ATTEMPTS_HEADER: attempts, "x-motcua-error": error[:2000],
            "x-motcua-queue": self.queue_name, "x-motcua-consumer": self.consumer_name,
        })
        self.publisher.publish(body, exchange=DEAD_LETTER_EXCHANGE, routing_key=self.queue_name,
                               headers=headers, declare=[DEAD_LETTER_EXCHANGE, self.dead_letters])
        self.metrics.dead_letters.labels(self.container.service_name, self.queue_name).inc()


class ParkingConsumer:
    """Mixed into a nameko consumer of single messages: the handler gets a parsed Event; a failure is
    retried after a growing delay, then parked."""

    max_attempts = 3

    def setup(self):
        super().setup()
        attempts = int(self.container.config.get("EVENT_MAX_ATTEMPTS", self.max_attempts))
        self.parking = Parking(self.container, self.queue.name, self.consumer_name, attempts)

    def start(self):
        self.parking.declare()
        super().start()

    @property
    def consumer_name(self) -> str:
        return f"{self.container.service_name}.{self.method_name}"

    def handle_message(self, body, message):
        try:
            event = parse_event(body)
        except (ValidationError, ValueError, TypeError) as exc:
            # A malformed event will never succeed: park it at once.
            self.parking.park(body, message, f"malformed event: {exc}")
            self.queue_consumer.ack_message(message)
            return
        context_data = self.unpack_message_headers(message)
        handle_result = partial(self.handle_result, message)
        try:
            self.container.spawn_worker(self, (event,), {}, context_data=context_data,
                                        handle_result=handle_result)
        except ContainerBeingKilled:
            self.queue_consumer.requeue_message(message)

    def handle_message_processed(self, message, result=None, exc_info=None):
        if exc_info is not None:
            self.parking.failed(message, exc_info, self.queue_consumer.ack_message)
        else:
            self.queue_consumer.ack_message(message)


# -- the batched inbox of a service's events -------------------------------------------------------

@dataclass
class Delivery:
    """One message of a batch: the parsed event and the handler method that applies it."""

    event: Event
    message: object
    handler: "ReliableEventHandler"


class EventBatch(list):
    """The deliveries a batch worker applies in one transaction (a list of `Delivery`)."""


def apply_event_batch(service, batch: EventBatch):
    """Run by a batch's worker (added to the service class as `APPLY_BATCH`): the inbox rows of every
    delivery claimed with one statement, every event's handler in order (a batch handler once, with
    its new events), in one unit of work, then one commit."""
    unit = _unit_of_work(service, batch)
    if unit is None:  # a service without a database: nothing to claim or commit
        for delivery in batch:
            delivery.handler.apply(service, [delivery.event])
        return
    unit.in_batch = True
    unit.claim_all([(d.event, d.handler.consumer_of(d.event)) for d in batch])
    per_batch: dict[BatchHandler, list[Event]] = {}
    for delivery in batch:
        if isinstance(delivery.handler, BatchHandler):
            if unit.claim(delivery.event, delivery.handler.consumer_of(delivery.event)):
                per_batch.setdefault(delivery.handler, []).append(delivery.event)
            else:
                unit.duplicate(delivery.event, delivery.handler.consumer_of(delivery.event))
        else:
            delivery.handler.apply(service, [delivery.event])
    for handler, events in per_batch.items():
        handler.apply(service, events)
    unit.commit()


def _unit_of_work(service, batch: EventBatch):
    from motcua.db import Database
    container = batch[0].handler.container
    for dependency in container.dependencies:
        if isinstance(dependency, Database):
            return getattr(service, dependency.attr_name)
    return None


class InboxConsumer(QueueConsumer):
    """nameko's queue consumer on a connection of its own, with room for a batch being applied and the
    next one accumulating."""

    @property
    def prefetch_count(self):
        return 2 * int(self.container.config.get("EVENT_BATCH_SIZE", 64))


class BatchEntrypoint(Entrypoint):
    """Names the batch worker's method (not an entrypoint of its own: `EventInbox` spawns it)."""


class EventInbox(SharedExtension, ProviderCollector):
    """The service's one event queue, applied in batches (see the module docstring)."""

    queue_consumer = InboxConsumer()

    def setup(self):
        config = self.container.config
        self.batch_size = int(config.get("EVENT_BATCH_SIZE", 64))
        # A service's own linger (`EVENT_BATCH_LINGERS[service]`) over the platform's.
        self.linger = float(config.get("EVENT_BATCH_LINGERS", {}).get(
            self.container.service_name, config.get("EVENT_BATCH_LINGER_SECONDS", 0)))
        self.queue_name = inbox_queue_name(self.container.service_name)
        self.parking = Parking(self.container, self.queue_name, f"{self.container.service_name}.events",
                               int(config.get("EVENT_MAX_ATTEMPTS", ParkingConsumer.max_attempts)))
        self.metrics = metrics_for(self.container)
        self.handled, self.batch_sizes = _inbox_metrics(self.metrics)
        if not hasattr(self.container.service_cls, APPLY_BATCH):
            setattr(self.container.service_cls, APPLY_BATCH, apply_event_batch)
        self.entrypoint = BatchEntrypoint()
        self.entrypoint.container, self.entrypoint.method_name = self.container, APPLY_BATCH
        self.pending: deque[Delivery] = deque()
        self.draining = False
        self.accepting = True
        self._queue = None
        self.queue_consumer.register_provider(self)

    @property
    def queue(self) -> Queue:
        """Built once every handler registered (the queue consumer asks for it when it connects)."""
        if self._queue is None:
            bindings = [binding(get_event_exchange(source, self.container.config), routing_key=event_type)
                        for source, event_type in sorted(set().union(*(h.subscriptions
                                                                       for h in self._providers)))]
            self._queue = Queue(self.queue_name, bindings=bindings, durable=True)
        return self._queue

    def start(self):
        self.parking.declare()

    def stop(self):
        self.accepting = False
        self.wait_for_providers()
        self.queue_consumer.unregister_provider(self)

    def kill(self):
        self.accepting = False  # the queue consumer is killed on its own; unacked messages go back

    def unregister_provider(self, provider):
        super().unregister_provider(provider)
        if not self._providers:  # the handlers stopped: start no new batch, leave the rest unacked
            self.accepting = False

    def _handler_for(self, event: Event):
        return next((h for h in self._providers if (event.source, event.event_type) in h.subscriptions), None)

    def handle_message(self, body, message):
        try:
            event = parse_event(body)
        except (ValidationError, ValueError, TypeError) as exc:
            self.parking.park(body, message, f"malformed event: {exc}")  # it will never succeed
            self.queue_consumer.ack_message(message)
            return
        handler = self._handler_for(event)
        if handler is None:
            self.parking.park(body, message, f"no handler for {event.source}.{event.event_type}")
            self.queue_consumer.ack_message(message)
            return
        self.pending.append(Delivery(event, message, handler))
        if not self.draining:
            self.draining = True
            self.container.spawn_managed_thread(self._drain, identifier=f"{self.queue_name}-batches")

    def _drain(self):
        """Apply what is pending, a batch at a time, until nothing is (one batch in flight: events are
        applied in the order they arrived)."""
        try:
            while self.pending and self.accepting:
                if self.linger and len(self.pending) < self.batch_size:
                    eventlet.sleep(self.linger)  # let the events of the last few milliseconds join the batch
                batch = EventBatch(self.pending.popleft() for _ in range(min(self.batch_size, len(self.pending))))
                self.batch_sizes.labels(self.container.service_name).observe(len(batch))
                exc_info = self._run(batch)
                if exc_info is None:
                    self._done(batch, "success")
                elif len(batch) == 1:
                    self._failed(batch[0], exc_info)
                else:  # one of them failed: each on its own, so the bad one is retried or parked alone
                    for delivery in batch:
                        single = self._run(EventBatch([delivery]))
                        if single is None:
                            self._done([delivery], "success")
                        else:
                            self._failed(delivery, single)
        finally:
            self.draining = False

    def _run(self, batch: EventBatch):
        """Apply `batch` in one worker; None on success, else the failure's exc_info."""
        finished = GreenEvent()

        def handle_result(worker_ctx, result, exc_info):
            finished.send(exc_info)
            return result, exc_info

        try:
            self.container.spawn_worker(self.entrypoint, (batch,), {}, handle_result=handle_result)
        except ContainerBeingKilled:
            for delivery in batch:
                self.queue_consumer.requeue_message(delivery.message)
            self.accepting = False
            return None
        return finished.wait()

    def _done(self, deliveries, outcome: str) -> None:
        for delivery in deliveries:
            self.handled.labels(self.container.service_name, delivery.event.event_type, outcome).inc()
            self.queue_consumer.ack_message(delivery.message)

    def _failed(self, delivery: Delivery, exc_info) -> None:
        self.handled.labels(self.container.service_name, delivery.event.event_type, "error").inc()
        try:
            self.parking.failed(delivery.message, exc_info, self.queue_consumer.ack_message)
        except Exception:  # the broker went away: the unacked message comes back when it returns
            log.warning("could not retry or park a failed %s event; the broker will redeliver it",
                        delivery.event.event_type, exc_info=True)


def _inbox_metrics(metrics):
    """Per-event-type outcomes and batch sizes, registered once per service registry."""
    existing = getattr(metrics, "_inbox", None)
    if existing is None:
        existing = metrics._inbox = (
            Counter("motcua_events_handled", "Events applied by a service, by type and outcome",
                    ["service", "event_type", "outcome"], registry=metrics.registry),
            Histogram("motcua_event_batch_size", "Events applied per transaction", ["service"],
                      buckets=BATCH_BUCKETS, registry=metrics.registry),
        )
    return existing


class ReliableEventHandler(Entrypoint):
    """`@event_handler(source, event_type)`: the method applies one event inside the batch's unit of
    work; it calls `self.db.apply_once(event, self_consumer, fn)`, whose inbox row the batch claimed
    already when `consumer` is the handler's (by default `<service>.<method>`)."""

    inbox = EventInbox()

    def __init__(self, source_service: str, event_type: str, consumer: str | None = None, **kwargs):
        self.source_service = source_service
        self.event_type = event_type
        self.subscriptions = frozenset({(source_service, event_type)})
        self._consumer = consumer
        super().__init__(**kwargs)

    def setup(self):
        self.consumer = self._consumer or f"{self.container.service_name}.{self.method_name}"
        self.inbox.register_provider(self)

    def stop(self):
        self.inbox.unregister_provider(self)

    def consumer_of(self, event: Event) -> str:
        return self.consumer

    def apply(self, service, events: list[Event]) -> None:
        method = getattr(service, self.method_name)
        for event in events:
            method(event)


class BatchHandler(ReliableEventHandler):
    """`@batch_handler((source, event_type), …)`: the method receives the batch's events of those types
    that are new to it (a list, in delivery order; the kit claimed their inbox rows, consumer
    `<service>.<event_type>`), to apply with batched reads and writes, without committing."""

    def __init__(self, *subscriptions: tuple[str, str], **kwargs):
        super().__init__(*subscriptions[0], **kwargs)
        self.subscriptions = frozenset(subscriptions)

    def consumer_of(self, event: Event) -> str:
        return f"{self.container.service_name}.{event.event_type}"

    def apply(self, service, events: list[Event]) -> None:
        getattr(service, self.method_name)(events)


event_handler = ReliableEventHandler.decorator
batch_handler = BatchHandler.decorator


def replay_dead_letters(amqp_uri: str, queue_name: str, limit: int | None = None) -> int:
    """Move parked messages of `queue_name` back to it (after the cause is fixed); returns how many."""
    moved = 0
    publisher = Publisher(amqp_uri, use_confirms=True)
    with get_connection(amqp_uri) as connection:
        dead = dead_letter_queue(queue_name)(connection.default_channel)
        dead.declare()
        while limit is None or moved < limit:
            message = dead.get(no_ack=False)
            if message is None:
                break
            headers = {k: v for k, v in (message.headers or {}).items() if not k.startswith("x-motcua-")}
            publisher.publish(message.payload, exchange="", routing_key=queue_name, headers=headers)
            message.ack()
            moved += 1
    return moved
