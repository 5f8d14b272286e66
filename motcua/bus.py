"""Event handling that parks poison messages instead of dropping or looping on them.

nameko acks a message whose handler raised (the event is lost); requeueing instead loops forever.
`event_handler` here retries a failed delivery a few times with backoff, then publishes it, with its
error, to a dead-letter queue beside the handler's queue (`<queue>.dead`) and only then acks it.
The handler receives a parsed, contract-checked `motcua.contracts.Event`.
"""
from __future__ import annotations

import logging
import traceback
from functools import partial

import eventlet
from kombu import Exchange, Queue
from marshmallow import ValidationError
from nameko.amqp.publish import Publisher, get_connection
from nameko.containers import ContainerBeingKilled
from nameko.events import EventHandler

from motcua.contracts import parse_event
from motcua.metrics import metrics_for

log = logging.getLogger(__name__)

DEAD_LETTER_EXCHANGE = Exchange("motcua.dead-letter", type="direct", durable=True)
ATTEMPTS_HEADER = "x-motcua-attempts"


def dead_letter_queue(queue_name: str) -> Queue:
    return Queue(f"{queue_name}.dead", exchange=DEAD_LETTER_EXCHANGE, routing_key=queue_name, durable=True)


class ParkingConsumer:
    """Mixed into a nameko consumer: the handler gets a parsed Event; failures are retried, then parked."""

    max_attempts = 3
    backoff = 0.2  # seconds before the 2nd try, doubled for each further one

    def setup(self):
        super().setup()
        self.max_attempts = int(self.container.config.get("EVENT_MAX_ATTEMPTS", self.max_attempts))
        self.dead_letters = dead_letter_queue(self.queue.name)
        self.publisher = Publisher(self.container.config["AMQP_URI"], use_confirms=True)
        self.metrics = metrics_for(self.container)

    def start(self):
        # Declare the dead-letter queue up front so parked messages always have somewhere to go.
        with get_connection(self.container.config["AMQP_URI"]) as connection:
            self.dead_letters(connection.default_channel).declare()
        super().start()

    @property
    def consumer_name(self) -> str:
        return f"{self.container.service_name}.{self.method_name}"

    def handle_message(self, body, message):
        try:
            event = parse_event(body)
        except (ValidationError, ValueError, TypeError) as exc:
            # A malformed event will never succeed: park it at once.
            self._park(body, message, f"malformed event: {exc}")
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
            attempts = int((message.headers or {}).get(ATTEMPTS_HEADER, 0)) + 1
            error = "".join(traceback.format_exception_only(exc_info[0], exc_info[1])).strip()
            if attempts < self.max_attempts:
                eventlet.sleep(self.backoff * 2 ** (attempts - 1))
                self._retry(message, attempts)
            else:
                self._park(message.payload, message, error, attempts)
        self.queue_consumer.ack_message(message)

    def _retry(self, message, attempts: int) -> None:
        log.warning("event handler %s failed (attempt %d of %d); retrying", self.consumer_name,
                    attempts, self.max_attempts)
        headers = dict(message.headers or {}, **{ATTEMPTS_HEADER: attempts})
        self.publisher.publish(message.payload, exchange="", routing_key=self.queue.name, headers=headers)
        self.metrics.redeliveries.labels(self.container.service_name, self.queue.name).inc()

    def _park(self, body, message, error: str, attempts: int = 1) -> None:
        log.error("event handler %s parked a message in %s after %d attempt(s): %s",
                  self.consumer_name, self.dead_letters.name, attempts, error)
        headers = dict(message.headers or {}, **{
            ATTEMPTS_HEADER: attempts, "x-motcua-error": error[:2000],
            "x-motcua-queue": self.queue.name, "x-motcua-consumer": self.consumer_name,
        })
        self.publisher.publish(body, exchange=DEAD_LETTER_EXCHANGE, routing_key=self.queue.name,
                               headers=headers, declare=[DEAD_LETTER_EXCHANGE, self.dead_letters])
        self.metrics.dead_letters.labels(self.container.service_name, self.queue.name).inc()


class ReliableEventHandler(ParkingConsumer, EventHandler):
    """nameko's event handler (a queue per service and method), parking instead of dropping."""


event_handler = ReliableEventHandler.decorator


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
