"""Event handling: one queue per service, events applied in batches, failures retried later, poison parked.

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
  transaction, so one bad message cannot hold the others back. What a message that fails alone
  becomes is `RetryPolicy`'s answer (see there): tried again later, through a delay queue on the
  broker, or parked with its error in `<queue>.dead` (never dropped, never looped).
* A message that cannot be decoded (bad JSON, a content type the service does not accept), a malformed
  event, or one no handler of the service knows, is parked at once. Nothing of a message's body is
  ever logged.

A retry waits in `<queue>.wait.<seconds>s`, a queue nobody consumes whose messages expire after that
many seconds (`x-message-ttl`) and are dead-lettered back to `<queue>`: the wait survives a restart of
the service. Waiting, parking and coming back all go through the consumer's own exchange
`<queue>.parking` (direct, each queue bound by its own name), never the default exchange: a broker
user that may publish to the default exchange may put a message in ANY queue, so no service's user
may (`motcua.broker_permissions`). Headers carry the history: `x-motcua-attempts` (failures so
far), `x-motcua-unexplained-failures` (those neither transient nor poison: a bug's tries),
`x-motcua-first-failed-at` (epoch seconds) and, once replayed, `x-motcua-replays`. On a quorum queue,
a message on its last allowed delivery is parked before any handler runs it
(`Parking.at_the_delivery_limit`).

A parked copy keeps personal data sealed: the values of `motcua.privacy.PERSONAL_FIELDS` are encrypted
with the consuming service's dead-letter key (`DEAD_LETTER_KEYS[service]`), opened again only when the
service consumes a replayed copy; an undecodable body is sealed whole. `python -m motcua.cli
dead-letters` lists, shows (redacted), replays and purges parked messages.

`ParkingConsumer` gives the same policy to single-message consumers (agencies' task queues,
`motcua.worker`).
"""
from __future__ import annotations

import contextlib
import json
import logging
import time
from collections import deque
from dataclasses import dataclass
from functools import partial

import eventlet
from eventlet.event import Event as GreenEvent
from kombu import Queue, binding
from kombu.mixins import ConsumerMixin
from nameko.amqp.publish import Publisher, get_connection
from nameko.containers import ContainerBeingKilled
from nameko.extensions import Entrypoint, ProviderCollector, SharedExtension
from nameko.messaging import QueueConsumer
from nameko.standalone.events import get_event_exchange
from prometheus_client import Counter, Histogram

from motcua import logs
from motcua.backoff import backoff
from motcua.contracts import Event, parse_event
from motcua.faults import is_poison, is_transient
from motcua.metrics import metrics_for
from motcua.privacy import seal, seal_personal_fields, sealing_key, unseal_personal_fields
from motcua.queues import (
    QUORUM,
    consumed_queue_arguments,
    dead_letter_queue,
    delay_queue,
    delivery_limit,
    parking_exchange,
    queue_type,
)

log = logging.getLogger(__name__)

ATTEMPTS_HEADER = "x-motcua-attempts"
FIRST_FAILED_HEADER = "x-motcua-first-failed-at"
REPLAYS_HEADER = "x-motcua-replays"
ERROR_HEADER = "x-motcua-error"
BUGS_HEADER = "x-motcua-unexplained-failures"  # of the attempts, those neither transient nor poison
PARKED_AT_HEADER = "x-motcua-parked-at"
SEALED_HEADER = "x-motcua-sealed"  # "fields": personal fields sealed; "body": the whole body sealed
CONTENT_TYPE_HEADER = "x-motcua-content-type"  # an undecodable body's own content type
DELIVERY_COUNT_HEADER = "x-delivery-count"  # a quorum queue's count of a message's earlier deliveries
SEALED_CONTENT_TYPE = "application/x-motcua-sealed"
REQUEUE_AFTER_BROKER_FAILURE_SECONDS = 5.0  # a message that could be neither retried nor parked goes back
APPLY_BATCH = "apply_event_batch"  # the method a batch's worker runs (added to the service class)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128)


def declare_parking(channel, queue: Queue) -> None:
    """The consumer's `queue`, its parking exchange and dead-letter queue, and the queue's binding back
    from that exchange (where waiting messages return)."""
    queue(channel).declare()
    dead_letter_queue(queue.name)(channel).declare()
    channel.queue_bind(queue.name, parking_exchange(queue.name).name, routing_key=queue.name)


def inbox_queue_name(service: str) -> str:
    """The one queue of every event a service handles."""
    return f"inbox.{service}"


def dead_letter_key(config: dict, service: str) -> bytes:
    """The key sealing personal data in `service`'s parked messages: its own `DEAD_LETTER_KEYS` entry,
    else its setting `<SERVICE>_DEAD_LETTER_KEY` (an agency worker's, e.g. TAX_OFFICE_WORKER_DEAD_LETTER_KEY:
    required in production like every key, motcua.keys)."""
    from motcua.keys import key_setting

    material = config.get("DEAD_LETTER_KEYS", {}).get(service) or \
        key_setting(f"{service.upper()}_DEAD_LETTER_KEY").decode()
    return sealing_key(material)


@dataclass(frozen=True)
class RetryPolicy:
    """What becomes of a message whose handler failed (pure: no broker, no clock of its own).

    * poison (`faults.is_poison`: a domain error, a contract violation) is parked at once;
    * a transient failure (`faults.is_transient`: database or broker away, a timeout) is tried again
      after `backoff(attempt, base, cap)` seconds until `retry_for` seconds have passed since its first
      failure, then parked;
    * anything else is a bug: tried until it failed so `bug_attempts` times, with the same growing delays
      (a race may pass), then parked; transient failures before it (the database away) do not count.

    A replayed message (an operator moved it back from `<queue>.dead`) gets a fresh window for
    transient failures, but poison and bugs park it at once: one more parked copy, never a loop."""

    retry_for: float = 3600.0
    base: float = 1.0
    cap: float = 300.0
    bug_attempts: int = 3

    @classmethod
    def from_config(cls, config: dict) -> "RetryPolicy":
        return cls(retry_for=float(config.get("RETRY_FOR_SECONDS", cls.retry_for)),
                   base=float(config.get("RETRY_BASE_SECONDS", cls.base)),
                   cap=float(config.get("RETRY_CAP_SECONDS", cls.cap)),
                   bug_attempts=int(config.get("EVENT_MAX_ATTEMPTS", cls.bug_attempts)))

    @property
    def delays(self) -> tuple[float, ...]:
        """The fixed delays of the delay queues: base, 2·base, 4·base … below cap, then cap."""
        steps, step = [], self.base
        while step < self.cap:
            steps.append(step)
            step *= 2
        return (*steps, self.cap)

    def next_delay(self, exc: BaseException, attempts: int, failing_for: float, replays: int,
                   jitter: float | None = None, bugs: int | None = None) -> float | None:
        """Seconds to wait before trying again after the `attempts`-th failure (`exc`), the first one
        `failing_for` seconds ago, `bugs` of them (this one included) unexplained (all if not said);
        None to park now."""
        if is_poison(exc):
            return None
        if is_transient(exc):
            if failing_for >= self.retry_for:
                return None
        elif replays or (attempts if bugs is None else bugs) >= self.bug_attempts:
            return None
        wanted = backoff(attempts, self.base, self.cap, jitter)
        return max((d for d in self.delays if d <= wanted), default=self.delays[0])


def error_summary(exc: BaseException) -> str:
    """`Type: first line of the message`: further lines (SQL parameters, a DETAIL) may hold values."""
    first_line = (str(exc).strip().splitlines() or [""])[0]
    return f"{type(exc).__name__}: {first_line}"[:500]


class Parking:
    """Sends a failed message to wait in a delay queue, or parks it with its error (`<queue>.dead`)."""

    def __init__(self, container, queue_name: str, consumer_name: str):
        self.container = container
        self.queue_name = queue_name
        self.consumer_name = consumer_name
        self.policy = RetryPolicy.from_config(container.config)
        self.key = dead_letter_key(container.config, container.service_name)
        self.dead_letters = dead_letter_queue(queue_name)
        self.publisher = Publisher(container.config["AMQP_URI"], use_confirms=True)
        self.metrics = metrics_for(container)
        self.delivery_limit = delivery_limit() if queue_type() == QUORUM else None

    def declare(self, queue: Queue) -> None:
        # Declared up front so parked messages always have somewhere to go, and waiting ones a way back.
        with get_connection(self.container.config["AMQP_URI"]) as connection:
            declare_parking(connection.default_channel, queue)

    def opened(self, body, message):
        """The body as its producer sent it: a replayed copy's sealed personal fields opened."""
        if (message.headers or {}).get(SEALED_HEADER) == "fields":
            return unseal_personal_fields(body, self.key)
        return body

    def failed(self, message, exc: BaseException, ack) -> None:
        """After the handler failed: send the message to wait for another try, or park it; then ack."""
        headers = message.headers or {}
        attempts = int(headers.get(ATTEMPTS_HEADER, 0)) + 1
        bugs = int(headers.get(BUGS_HEADER, 0)) + (not (is_transient(exc) or is_poison(exc)))
        first_failed_at = float(headers.get(FIRST_FAILED_HEADER, time.time()))
        delay = self.policy.next_delay(exc, attempts, time.time() - first_failed_at,
                                       int(headers.get(REPLAYS_HEADER, 0)), bugs=bugs)
        with self._unless_the_broker_is_away(message):
            if delay is None:
                self.park(message, error_summary(exc), attempts)
            else:
                self.retry_later(message, delay, {ATTEMPTS_HEADER: attempts, BUGS_HEADER: bugs,
                                                  FIRST_FAILED_HEADER: first_failed_at})
                log.warning("%s failed (attempt %d, %s); retrying in %gs", self.consumer_name, attempts,
                            type(exc).__name__, delay)
            ack(message)

    def at_the_delivery_limit(self, message, ack, whole: bool = False) -> bool:
        """Whether `message` comes for the last time its quorum queue allows (`x-delivery-count` at
        `MOTCUA_QUEUE_DELIVERY_LIMIT`): every consumer that took it before died with it (a crash, a kill)
        before answering. It is then parked here, its personal data sealed (the whole body if `whole`),
        and acked, before any handler runs it again; past the limit the broker would dead-letter it
        itself, in clear."""
        count = (message.headers or {}).get(DELIVERY_COUNT_HEADER)
        if self.delivery_limit is None or count is None or int(count) < self.delivery_limit:
            return False
        with self._unless_the_broker_is_away(message):
            self.park(message, f"delivered {int(count) + 1} times, its consumer gone each time", whole=whole)
            ack(message)
        return True

    def reject(self, message, error: str, ack) -> None:
        """Park a message that can never succeed (undecodable, malformed, unknown), then ack."""
        with self._unless_the_broker_is_away(message):
            self.park(message, error)
            ack(message)

    @contextlib.contextmanager
    def _unless_the_broker_is_away(self, message):
        # A publish that fails must not kill the consumer (an exception in nameko's managed thread
        # would): the message goes back to its queue a few seconds later, to be tried (and retried or
        # parked) again; if the consumer's connection is gone too, the broker redelivers it anyway.
        try:
            yield
        except Exception as exc:
            delay = backoff(1, base=REQUEUE_AFTER_BROKER_FAILURE_SECONDS, cap=REQUEUE_AFTER_BROKER_FAILURE_SECONDS)
            log.warning("%s could not retry or park a message (%s); back to its queue in %.0fs",
                        self.consumer_name, error_summary(exc), delay)
            eventlet.spawn_after(delay, _requeue_if_connected, message)

    def retry_later(self, message, delay: float, history: dict) -> None:
        """The message as it came (same bytes, same content type), into the delay queue of `delay`."""
        waiting = delay_queue(self.queue_name, delay)
        self.publisher.publish(message.body, exchange=waiting.exchange, routing_key=waiting.name, declare=[waiting],
                               headers=dict(message.headers or {}, **history),
                               content_type=message.content_type, content_encoding=message.content_encoding)
        self.metrics.redeliveries.labels(self.container.service_name, self.queue_name).inc()

    def park(self, message, error: str, attempts: int = 1, whole: bool = False) -> None:
        """Park the message in `<queue>.dead` with its error, its personal data sealed (the whole body if
        `whole`, or if it cannot be decoded) (raises if the broker refuses)."""
        headers = dict(message.headers or {}, **{
            ATTEMPTS_HEADER: attempts, ERROR_HEADER: error, PARKED_AT_HEADER: time.time(),
            "x-motcua-queue": self.queue_name, "x-motcua-consumer": self.consumer_name})
        headers.pop(DELIVERY_COUNT_HEADER, None)  # the broker's, of this queue: a replayed copy starts afresh
        payload, content_type = self._sealed_copy(message, headers, whole)
        self.publisher.publish(payload, exchange=self.dead_letters.exchange, routing_key=self.dead_letters.name,
                               headers=headers, content_type=content_type, content_encoding="utf-8",
                               declare=[self.dead_letters])
        log.error("%s parked a message in %s after %d attempt(s): %s", self.consumer_name,
                  self.dead_letters.name, attempts, error)
        self.metrics.dead_letters.labels(self.container.service_name, self.queue_name).inc()

    def _sealed_copy(self, message, headers: dict, whole: bool = False) -> tuple[str | bytes, str]:
        """The body to park and its content type; sets `headers`' seal marks."""
        if headers.get(SEALED_HEADER) == "body":  # a replayed undecodable message: sealed whole already
            return message.body, SEALED_CONTENT_TYPE
        body = None
        if not whole:
            try:
                body = self.opened(message.payload, message)
            except Exception:  # undecodable, or sealed with a key this service does not hold
                pass
        if isinstance(body, dict):
            headers[SEALED_HEADER] = "fields"
            return json.dumps(seal_personal_fields(body, self.key)), "application/json"
        raw = message.body if isinstance(message.body, bytes) else str(message.body).encode()
        headers.update({SEALED_HEADER: "body", CONTENT_TYPE_HEADER: str(message.content_type)})
        return seal(self.key, raw), SEALED_CONTENT_TYPE


def ack(queue_consumer, message) -> None:
    """Acknowledge `message`, or, if its connection is gone (the broker restarted, the connection was
    closed), leave it: the broker delivers it again and the inbox or the handler's idempotence absorbs
    the second delivery. nameko's own ack lets a reset socket's error escape into the worker's or the
    consumer's thread, and nameko kills the whole container for that (seen under `make chaos`)."""
    try:
        queue_consumer.ack_message(message)
    except Exception as exc:
        if not is_transient(exc):
            raise
        log.warning("could not acknowledge a message (%s); the broker will deliver it again", type(exc).__name__)


def _requeue_if_connected(message) -> None:
    with contextlib.suppress(Exception):  # a closed channel: the broker requeued it already
        if message.channel.connection and not message.acknowledged:
            message.requeue()


def _drop_undecodable_unlogged(queue_consumer, message, exc):
    """kombu's default for a message nobody can decode logs its raw body (a name, a phone) and acks it.
    nameko's other consumers (RPC, broadcast handlers) keep the drop, not the body; the event inbox and
    the task queues park it instead (`ParkingQueueConsumer`)."""
    log.error("dropped an undecodable message (%s, content type %s, %d bytes)", error_summary(exc),
              message.content_type, len(message.body or b""))
    message.ack()


QueueConsumer.on_decode_error = _drop_undecodable_unlogged


def _consume_stopping_promptly(queue_consumer, limit=None, timeout=None, **kwargs):
    """kombu looks at `should_stop` only when a drain returns, by default after an idle second: every
    consumer then holds a container's stop (a rolling restart, each test's teardown) for up to 1 s.
    A fifth of a second costs an idle service a few wake-ups a second."""
    return ConsumerMixin.consume(queue_consumer, limit=limit, timeout=timeout,
                                 safety_interval=STOP_POLL_SECONDS, **kwargs)


#: How long an idle consumer waits on its socket before it looks whether it should stop.
STOP_POLL_SECONDS = 0.2
QueueConsumer.consume = _consume_stopping_promptly


class ParkingQueueConsumer(QueueConsumer):
    """nameko's queue consumer, but a message its providers cannot decode is parked (kombu's default
    logs the raw body and drops the message)."""

    def get_consumers(self, consumer_cls, channel):
        consumers = super().get_consumers(consumer_cls, channel)
        for provider, consumer in self._consumers.items():
            consumer.on_decode_error = partial(self._undecodable, provider)
        return consumers

    def _undecodable(self, provider, message, exc):
        self.container.spawn_managed_thread(
            partial(provider.parking.reject, message, f"undecodable message: {error_summary(exc)}", self.ack_message),
            identifier=f"park-undecodable-{provider.parking.queue_name}")


class ParkingConsumer:
    """Mixed into a nameko consumer of single messages: the handler gets a parsed Event; a failure is
    retried later or parked as `RetryPolicy` says."""

    queue_consumer = ParkingQueueConsumer()

    def setup(self):
        super().setup()
        self.parking = Parking(self.container, self.queue.name, self.consumer_name)

    def start(self):
        self.parking.declare(self.queue)
        super().start()

    @property
    def consumer_name(self) -> str:
        return f"{self.container.service_name}.{self.method_name}"

    def handle_message(self, body, message):
        if self.parking.at_the_delivery_limit(message, self.queue_consumer.ack_message):
            return
        try:
            event = parse_event(self.parking.opened(body, message))
        except Exception as exc:  # malformed, or sealed with another key: it will never succeed
            self.parking.reject(message, f"malformed event: {error_summary(exc)}", self.queue_consumer.ack_message)
            return
        context_data = self.unpack_message_headers(message)
        handle_result = partial(self.handle_result, message)
        try:
            self.container.spawn_worker(self, (event,), {}, context_data=context_data,
                                        handle_result=handle_result)
        except ContainerBeingKilled:
            self.queue_consumer.requeue_message(message)

    def handle_message_processed(self, message, result=None, exc_info=None):
        if exc_info is None:
            ack(self.queue_consumer, message)
            return
        self.parking.failed(message, exc_info[1], self.queue_consumer.ack_message)


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
    own = logs.current_trace()  # the batch worker's
    unit = _unit_of_work(service, batch)
    if unit is None:  # a service without a database: nothing to claim or commit
        for delivery in batch:
            _under_trace_of(delivery, own)
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
            _under_trace_of(delivery, own)
            delivery.handler.apply(service, [delivery.event])
    logs.set_trace(own)
    for handler, events in per_batch.items():
        handler.apply(service, events)  # many events at once: under the batch worker's own trace
    unit.commit()


def _under_trace_of(delivery, own: str | None) -> None:
    """Log (and emit) what applying this event does under the trace its message carries, else under the
    batch worker's own (`own`), never under the previous delivery's."""
    logs.set_trace(logs.trace_of_headers(delivery.message.headers) or own)


def _unit_of_work(service, batch: EventBatch):
    from motcua.db import Database
    container = batch[0].handler.container
    for dependency in container.dependencies:
        if isinstance(dependency, Database):
            return getattr(service, dependency.attr_name)
    return None


class InboxConsumer(ParkingQueueConsumer):
    """The parking queue consumer on a connection of its own, with room for a batch being applied and the
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
        self.parking = Parking(self.container, self.queue_name, f"{self.container.service_name}.events")
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
            self._queue = Queue(self.queue_name, bindings=bindings, durable=True,
                                queue_arguments=consumed_queue_arguments(self.queue_name))
        return self._queue

    def start(self):
        self.parking.declare(self.queue)

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
        if self.parking.at_the_delivery_limit(message, self.queue_consumer.ack_message):
            return
        try:
            event = parse_event(self.parking.opened(body, message))
        except Exception as exc:  # malformed, or sealed with another key: it will never succeed
            self.parking.reject(message, f"malformed event: {error_summary(exc)}", self.queue_consumer.ack_message)
            return
        handler = self._handler_for(event)
        if handler is None:
            self.parking.reject(message, f"no handler for {event.source}.{event.event_type}",
                                self.queue_consumer.ack_message)
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
            ack(self.queue_consumer, delivery.message)

    def _failed(self, delivery: Delivery, exc_info) -> None:
        self.handled.labels(self.container.service_name, delivery.event.event_type, "error").inc()
        self.parking.failed(delivery.message, exc_info[1], self.queue_consumer.ack_message)


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
    `<service>.<event_type>`, or `consumer` for every type), to apply with batched reads and writes,
    without committing."""

    def __init__(self, *subscriptions: tuple[str, str], **kwargs):
        super().__init__(*subscriptions[0], **kwargs)
        self.subscriptions = frozenset(subscriptions)

    def consumer_of(self, event: Event) -> str:
        return self._consumer or f"{self.container.service_name}.{event.event_type}"

    def apply(self, service, events: list[Event]) -> None:
        getattr(service, self.method_name)(events)


event_handler = ReliableEventHandler.decorator
batch_handler = BatchHandler.decorator


# -- parked messages, for operators (`python -m motcua.cli dead-letters`) ------------------------------

def replay_dead_letters(amqp_uri: str, queue_name: str, limit: int | None = None) -> int:
    """Move parked messages of `queue_name` back to it (after the cause is fixed); returns how many.

    Each goes back as it was parked (sealed; the service opens it), with `x-motcua-replays` one more and
    without the last round's attempts and first-failure time: a transient cause gets a fresh retry
    window, while poison or a bug parks it again at once (`RetryPolicy`), once."""
    moved = 0
    publisher = Publisher(amqp_uri, use_confirms=True)
    with get_connection(amqp_uri) as connection:
        dead = dead_letter_queue(queue_name)(connection.default_channel)
        dead.declare()
        while limit is None or moved < limit:
            message = dead.get(no_ack=False)
            if message is None:
                break
            headers = {k: v for k, v in (message.headers or {}).items()
                       if k not in (ATTEMPTS_HEADER, BUGS_HEADER, FIRST_FAILED_HEADER, DELIVERY_COUNT_HEADER)}
            headers[REPLAYS_HEADER] = int(headers.get(REPLAYS_HEADER, 0)) + 1
            publisher.publish(message.body, exchange="", routing_key=queue_name, headers=headers,
                              content_type=message.content_type, content_encoding=message.content_encoding)
            message.ack()
            moved += 1
    return moved


def peek_dead_letters(amqp_uri: str, queue_name: str, limit: int = 100) -> list:
    """Up to `limit` parked messages of `queue_name` (kombu messages), left parked."""
    with get_connection(amqp_uri) as connection:
        channel = connection.channel()
        dead = dead_letter_queue(queue_name)(channel)
        dead.declare()
        messages = []
        while len(messages) < limit:
            message = dead.get(no_ack=False)
            if message is None:
                break
            messages.append(message)
        channel.close()  # unacked: every one goes back to its place in the queue
    return messages


def purge_dead_letters(amqp_uri: str, queue_name: str) -> int:
    """Delete every parked message of `queue_name`; returns how many."""
    with get_connection(amqp_uri) as connection:
        dead = dead_letter_queue(queue_name)(connection.default_channel)
        dead.declare()
        return dead.purge() or 0
