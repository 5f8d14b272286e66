"""`@rpc` as nameko's, with a leaner reply: serialized once, sent transient and without a publisher
confirm.

A reply is not state: what the call changed is committed before the reply is sent, and a reply lost
with a broker crash makes the caller time out and retry, as it would if the reply queue were gone.
So the reply needs neither the disk (persistent delivery) nor a confirm round trip, which nameko pays
on every call, nor nameko's second serialization of the result ("is it serializable?" before the
real one). Requests keep nameko's confirms: the caller learns at once that a service is unknown.
"""
from __future__ import annotations

import logging
import sys

import eventlet
import kombu.serialization
from kombu import Connection
from kombu.pools import connections, producers
from kombu.utils.collections import eqhash
from nameko.constants import (
    AMQP_SSL_CONFIG_KEY,
    AMQP_URI_CONFIG_KEY,
    DEFAULT_RETRY_POLICY,
    DEFAULT_SERIALIZER,
    DEFAULT_TRANSPORT_OPTIONS,
    LOGIN_METHOD_CONFIG_KEY,
    NON_PERSISTENT,
    SERIALIZER_CONFIG_KEY,
)
from nameko.amqp.publish import get_connection
from nameko.exceptions import UnserializableValueError, serialize
from nameko.rpc import ReplyListener, Rpc, RpcConsumer, RpcProxy as NamekoRpcProxy, get_rpc_exchange

from motcua.bus import Parking, ack
from motcua.faults import TransientFailure, is_transient
from motcua.queues import consumed_queue_arguments, dead_letter_queue

log = logging.getLogger(__name__)



def encode_reply(result, exc_info, serializer: str, service: str) -> tuple[object, tuple, str, str, bytes]:
    """(result, exc_info, content type, encoding, body) of `service`'s reply: the result, or the error
    it raised (as `reply_error` sends it), or an UnserializableValueError when the result cannot be
    serialized."""
    error = serialize(reply_error(exc_info[1], service)) if exc_info is not None else None
    try:
        content_type, encoding, body = kombu.serialization.dumps({"result": result, "error": error}, serializer)
    except Exception:
        exc_info = sys.exc_info()
        content_type, encoding, body = kombu.serialization.dumps(
            {"result": None, "error": serialize(UnserializableValueError(result))}, serializer)
        result = None
    return result, exc_info, content_type, encoding, body


def reply_error(exc: BaseException, service: str) -> BaseException:
    """The error a failed call sends its caller: one that will pass (the database or the broker away, a
    timeout, a service it called that could not answer) as a `TransientFailure`, so that the caller
    knows to try again (the gateway answers 503 with Retry-After) and learns nothing of the cause (a
    database error quotes its SQL)."""
    if is_transient(exc):
        return TransientFailure(f"{service} cannot answer just now: try again shortly")
    return exc


class LeanRpcConsumer(RpcConsumer):
    """nameko's RPC consumer (one queue per service), answering through `encode_reply`."""

    def setup(self):
        super().setup()
        self.queue.queue_arguments = consumed_queue_arguments(self.queue.name)  # quorum or not (motcua.queues)
        config = self.container.config
        self.amqp_uri = config[AMQP_URI_CONFIG_KEY]
        self.serializer = config.get(SERIALIZER_CONFIG_KEY, DEFAULT_SERIALIZER)
        self.exchange = get_rpc_exchange(config)
        # One Connection, the key of kombu's producer pool, made once (nameko makes and parses one per reply).
        self.connection = Connection(self.amqp_uri, ssl=config.get(AMQP_SSL_CONFIG_KEY),
                                     login_method=config.get(LOGIN_METHOD_CONFIG_KEY),
                                     transport_options={**DEFAULT_TRANSPORT_OPTIONS, "confirm_publish": False})
        # On a quorum queue, a request at its delivery limit is parked sealed (motcua.bus.Parking), not
        # dead-lettered by the broker with the applicant's data in clear.
        self.parking = (Parking(self.container, self.queue.name, f"{self.container.service_name}.rpc")
                        if self.queue.queue_arguments else None)

    def start(self):
        if self.queue.queue_arguments:  # a quorum queue: where a request past its delivery limit goes
            with get_connection(self.amqp_uri) as connection:
                dead_letter_queue(self.queue.name)(connection.default_channel).declare()
        super().start()

    def handle_message(self, body, message):
        # Sealed whole: a request's arguments are positional too, and it is never replayed (its caller is gone).
        if self.parking is not None and self.parking.at_the_delivery_limit(message, self.queue_consumer.ack_message,
                                                                           whole=True):
            return
        super().handle_message(body, message)

    def handle_result(self, message, result, exc_info):
        # Answer encoded as the request was.
        serializer = kombu.serialization.registry.type_to_name[message.properties["content_type"]]
        result, exc_info, content_type, encoding, body = encode_reply(result, exc_info, serializer,
                                                                      self.container.service_name)
        try:
            with producers[self.connection].acquire(block=True) as producer:
                producer.publish(body, exchange=self.exchange, routing_key=message.properties["reply_to"],
                                 correlation_id=message.properties.get("correlation_id"),
                                 content_type=content_type, content_encoding=encoding,
                                 delivery_mode=NON_PERSISTENT, retry=True, retry_policy=DEFAULT_RETRY_POLICY)
            self.queue_consumer.ack_message(message)
        except Exception as exc:
            if not is_transient(exc):
                raise
            # The broker went away (restarted, or the connection closed) between the call and its answer.
            # Raising here would end the worker's thread with an error, and nameko kills the whole
            # container for that: a broker restart took every service process that was answering a call
            # down with it. The caller times out and asks again; an unacked request is redelivered.
            log.warning("%s could not answer a call (%s); its caller will time out and retry",
                        self.container.service_name, type(exc).__name__)
        return result, exc_info


class LeanRpc(Rpc):
    rpc_consumer = LeanRpcConsumer()


rpc = LeanRpc.decorator


class TransientReplyListener(ReplyListener):
    """nameko's reply queue, but not durable. nameko declares `rpc.reply-<service>-<uuid>` durable (with an
    expiry): on a RabbitMQ cluster a durable classic queue lives on one node, and once that node is lost
    it can be declared nowhere else until it returns (NOT_FOUND, "home node … is down"), so every caller
    connected there stayed cut off from its answers through a node's outage. A transient one goes with
    its node and is declared afresh on the node the caller reconnects to; the calls in flight time out
    and are asked again (they are idempotent)."""

    def setup(self):
        super().setup()
        self.queue.durable = False

    def handle_message(self, body, message):
        """nameko's, but the answer reaches its caller before the ack, and an ack on a connection the
        broker reset is left (`motcua.bus.ack`): nameko's raised in the consumer's thread and lost the
        answer with it."""
        client_event = self._reply_events.pop(message.properties.get("correlation_id"), None)
        if client_event is not None:
            client_event.send(body)
        ack(self.queue_consumer, message)


class RpcProxy(NamekoRpcProxy):
    """nameko's RpcProxy answering through a `TransientReplyListener` (every caller of the platform uses it)."""

    rpc_reply_listener = TransientReplyListener()


class TimedRpcProxy(RpcProxy):
    """An RpcProxy whose every call gives up after `RPC_TIMEOUT` seconds (10) with `late(message)`: a
    call to a service that is down (or a request the broker lost) must not hold the caller's worker until
    it is back. By default the caller's failure is a `TransientFailure`: an event handler tries again
    later, an RPC's own caller is told to (the gateway answers 503)."""

    def __init__(self, target_service: str, late: type[Exception] = TransientFailure, **options):
        super().__init__(target_service, **options)
        self.late = late

    def setup(self):
        super().setup()
        self.timeout = float(self.container.config.get("RPC_TIMEOUT", 10))

    def get_dependency(self, worker_ctx):
        return TimedServiceProxy(super().get_dependency(worker_ctx), self.target_service, self.timeout, self.late)


class TimedServiceProxy:
    """A service's proxy whose calls end by `timeout` seconds (see `TimedRpcProxy`)."""

    def __init__(self, proxy, service: str, timeout: float, late: type[Exception] = TransientFailure):
        self._proxy = proxy
        self._service = service
        self._timeout = timeout
        self._late = late

    def __getattr__(self, method: str):
        remote = getattr(self._proxy, method)

        def call(*args, **kwargs):
            late = self._late(f"{self._service} did not answer in time")
            try:
                with eventlet.Timeout(self._timeout, late):
                    return remote(*args, **kwargs)
            except self._late as exc:
                if exc is late and hasattr(remote, "publisher"):  # a nameko MethodProxy (not a test's stub)
                    renew_connections(remote.publisher)
                raise

        return call


def renew_connections(publisher) -> None:
    """Close the pooled connections (and their producers) that `publisher`'s requests go out on, so that
    the next request opens a fresh one. After a broker node's loss (the 3-node cluster test, under load)
    a pooled channel of the gateway, which sends requests without confirms, went on taking requests that
    never reached the queue, and every call to that service timed out for minutes while a new
    connection's calls were answered at once. A call that timed out is the one sign such a channel gives."""
    options = {**publisher.transport_options, "confirm_publish": publisher.use_confirms}
    key = eqhash(Connection(publisher.amqp_uri, transport_options=options, ssl=publisher.ssl,
                            login_method=publisher.login_method))
    for group in (producers, connections):
        pool = dict.pop(group, key, None)
        if pool is not None:
            pool.force_close_all()
    log.info("requests will go out on a new broker connection after a call timed out")
