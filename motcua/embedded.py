"""An in-process message bus: every nameko service in ONE process, no broker.

A kombu transport, derived from kombu's ``memory://`` transport, for a
zero-install ``make run`` and for fast in-process tests. Select it with::

    AMQP_URI = "embedded://"          # nameko config, or
    nameko run --broker embedded:// services.a services.b

after this module has been imported (importing it calls :func:`install`,
which registers the ``embedded`` scheme in kombu's transport aliases). The
module only has to be imported once, anywhere, before the first connection
is made; ``nameko run`` imports the service modules before it connects, so
importing it from a service module (or a module those import) is enough.

Nothing else is needed in the nameko config: RPC (``RpcProxy``,
``ClusterRpcProxy``), events (all three handler types), ``@consume`` /
``Publisher`` and plain kombu producers and consumers work unchanged. Every
kombu ``Connection`` opened in the process with the same URI (same virtual
host) talks to the same broker, whichever code opened it (nameko's
containers, its standalone proxies, its ``Publisher``, kombu's pools, an
outbox relay): the broker state lives in this module, not in a connection.

Differences from ``memory://``, each making it behave like RabbitMQ where
nameko or the project relies on it:

* ``message.properties`` carries ``content_type`` and ``content_encoding``
  (nameko's RPC responder reads ``properties['content_type']``).
* No polling delay: an idle consumer connection waits on an eventlet event
  that a put to one of its queues sets, so an RPC hop costs well under a
  millisecond (memory polls every 1 s: up to a second per hop). As a safety
  net for puts from another OS thread it still polls, every
  :data:`DEFAULT_POLLING_INTERVAL` seconds, always sleeping cooperatively
  (kombu's loop calls a blocking ``time.sleep`` bound before monkey-patching).
* Each queue gets its own copy of a routed message (own delivery tag, own
  headers), as on a real broker; headers are copied at publish time, so
  neither side can change the other's dict.
* A rejected or requeued message goes back to the FRONT of the queue it came
  from, marked ``redelivered`` (memory re-routes it through the exchange, to
  the back of every bound queue, duplicating it for fanout/topic). Unacked
  messages of a closing channel are requeued the same way (memory drops them).
* Topic bindings follow AMQP: ``*`` is one word, ``#`` is zero or more words
  (so ``task.#`` matches ``task``); routing keys may contain any number of dots.
* Publishing to an exchange that was never declared raises ``ChannelError``
  404 (RabbitMQ closes the channel); a message no queue is bound for is
  dropped, or raises ``ChannelError`` ``NO_ROUTE`` when published
  ``mandatory`` (nameko's RPC proxy turns that into ``UnknownService``).
  Publishing to the default exchange (``exchange=''``) delivers to the queue
  named by the routing key only if that queue exists (memory creates it).
* Queue lifetime: ``auto_delete`` queues go with their last consumer,
  ``exclusive`` queues with their connection, ``x-expires`` queues once
  unused for that long (checked whenever a queue is declared). nameko's RPC
  reply queues carry ``x-expires`` (5 min), so standalone proxies do not leak.
* Dead-lettering: ``x-dead-letter-exchange`` (+ ``x-dead-letter-routing-key``)
  receives messages rejected without requeue, and messages requeued more than
  ``x-delivery-limit`` times (quorum-queue style, ``x-delivery-count`` header),
  with an ``x-death`` header.

* Per-queue message TTL (``x-message-ttl``): a message still in the queue
  that long is dead-lettered with reason ``expired`` (the kit's delay
  queues for retries rely on it).

Ignored, as in ``memory://``: durability (nothing survives the process),
``x-queue-type``, length limits, per-message TTLs (``expiration``),
priorities, publisher confirms (a publish is synchronous
anyway), heartbeats, ``headers`` exchanges (not supported: use topic).
Limits: one process; no client from outside the process can connect.
"""

from __future__ import annotations

import copy
import re
import socket
import sys
import threading
import time
from collections import deque
from queue import Empty

import kombu.transport
from amqp.protocol import queue_declare_ok_t
from kombu.exceptions import ChannelError
from kombu.transport import TRANSPORT_ALIASES, base, virtual
from kombu.transport.virtual.exchange import STANDARD_EXCHANGE_TYPES
from kombu.transport.virtual.exchange import TopicExchange as _TopicExchange
from kombu.utils.uuid import uuid

__all__ = [
    "ALIAS", "URI", "DEFAULT_POLLING_INTERVAL", "Transport", "Channel",
    "install", "reset", "queue_names",
]

#: The URI scheme (kombu transport alias) this module registers.
ALIAS = "embedded"

#: The AMQP_URI that selects the embedded bus (virtual host "/").
#: ``embedded:///name`` selects an independent broker named ``name``
#: (one per test, for isolation).
URI = "embedded://"

#: Seconds an idle consumer connection waits before polling its queues again
#: when nothing woke it. Puts from the same OS thread (every green thread of
#: an eventlet process) wake it at once, so this only bounds the delay of a
#: message put from another OS thread (or of any process without eventlet);
#: 10 ms costs ~0.3 % of a core per idle service. Override per connection
#: with ``transport_options={"polling_interval": s}`` (nameko: the
#: ``TRANSPORT_OPTIONS`` config key, which reaches service consumers only),
#: or for the whole process with ``install(polling_interval=s)``.
DEFAULT_POLLING_INTERVAL = 0.01

_TARGET = f"{__name__}:Transport"

#: Top-level key of a raw (stored) message naming the queue holding it.
_QUEUE_KEY = "x-embedded-queue"


# --------------------------------------------------------------------------
# broker state (module level, shared by every connection in the process)

class _Queue:
    __slots__ = ("name", "messages", "auto_delete", "exclusive_owner",
                 "arguments", "consumers", "idle_since")

    def __init__(self, name, auto_delete=False, exclusive_owner=None,
                 arguments=None):
        self.name = name
        self.messages = deque()
        self.auto_delete = auto_delete
        self.exclusive_owner = exclusive_owner
        self.arguments = dict(arguments or {})
        self.consumers = 0
        self.idle_since = time.monotonic()


class _Broker:
    """One virtual host: exchanges and bindings (kombu's BrokerState) plus
    the queues, which kombu's memory transport keeps in a class attribute."""

    def __init__(self, vhost):
        self.vhost = vhost
        self.state = virtual.BrokerState()
        self.queues: dict[str, _Queue] = {}
        #: transports (connections) idle in drain_events, to wake on a put
        self.waiting: set = set()
        self._predeclare()

    def notify(self, queue):
        """Wake the idle connections that consume `queue`."""
        if self.waiting:
            for transport in tuple(self.waiting):
                if queue in transport._callbacks:
                    transport._wake()

    def _predeclare(self):
        # RabbitMQ's predeclared exchanges (kombu binds to amq.direct when a
        # binding names no exchange)
        for type_ in ("direct", "topic", "fanout"):
            self.state.exchanges[f"amq.{type_}"] = {
                "type": type_, "durable": True, "auto_delete": False,
                "arguments": {}, "table": [],
            }

    def clear(self):
        self.state.clear()
        self.queues.clear()
        self._predeclare()

    def remove_queue(self, name):
        """Delete a queue, its messages and its bindings."""
        self.queues.pop(name, None)
        state = self.state
        for exchange, _, _ in list(state.queue_bindings(name)):
            try:
                table = state.exchanges[exchange]["table"]
            except KeyError:
                continue
            table[:] = [meta for meta in table if meta[2] != name]
        state.queue_bindings_delete(name)


_brokers: dict[str, _Broker] = {}
_brokers_lock = threading.Lock()


def _normalise_vhost(vhost):
    return vhost or "/"


def _get_broker(vhost) -> _Broker:
    vhost = _normalise_vhost(vhost)
    try:
        return _brokers[vhost]
    except KeyError:
        with _brokers_lock:
            return _brokers.setdefault(vhost, _Broker(vhost))


def reset(vhost=None):
    """Forget all exchanges, bindings, queues and messages.

    Of one virtual host (``"/"`` is the one of ``embedded://``), or of all
    of them when `vhost` is None. For tests, after the containers using it
    have stopped: kombu caches declarations per connection (``maybe_declare``)
    and would not redeclare what a reset removed.
    """
    if vhost is None:
        for broker in list(_brokers.values()):
            broker.clear()
    else:
        _get_broker(vhost).clear()


def queue_names(vhost=None):
    """Names of the queues that exist in a virtual host (for tests/debug)."""
    return sorted(_get_broker(vhost).queues)


# --------------------------------------------------------------------------
# cooperative sleeping

def _sleep(seconds):
    """Sleep without blocking other green threads.

    kombu's virtual transport does ``from time import sleep`` at import time,
    so when kombu is imported before ``eventlet.monkey_patch()`` its polling
    loop blocks the whole process. Look the function up at call time, and use
    eventlet's sleep when eventlet is loaded but ``time`` is not patched.
    """
    eventlet = sys.modules.get("eventlet")
    if eventlet is not None:
        patcher = sys.modules.get("eventlet.patcher")
        if patcher is None or not patcher.is_monkey_patched("time"):
            eventlet.sleep(seconds)
            return
    time.sleep(seconds)


_real_get_ident = None


def _os_thread_id():
    global _real_get_ident
    if _real_get_ident is None:
        from eventlet import patcher
        _real_get_ident = patcher.original("_thread").get_ident
    return _real_get_ident()


class _GreenWaiter:
    """An idle consumer waiting for a put (or its polling interval).

    Woken only from the OS thread it waits in: an eventlet Event cannot be
    sent across threads, and a put from another thread is seen at the next
    poll anyway.
    """

    __slots__ = ("event", "thread")

    def __init__(self):
        from eventlet.event import Event
        self.event = Event()
        self.thread = _os_thread_id()

    def wait(self, seconds):
        self.event.wait(seconds)

    def wake(self):
        if not self.event.ready() and self.thread == _os_thread_id():
            self.event.send(True)


def _new_waiter():
    """A waiter when eventlet is in use, else None (plain polling)."""
    if "eventlet" not in sys.modules:
        return None
    return _GreenWaiter()


# --------------------------------------------------------------------------
# exchanges

class TopicExchange(_TopicExchange):
    """Topic exchange with AMQP semantics: ``*`` is exactly one word, ``#``
    zero or more words (kombu's needs at least one for ``#``)."""

    _compiled_topics: dict = {}

    def prepare_bind(self, queue, exchange, routing_key, arguments):
        return routing_key, self.key_to_pattern(routing_key), queue

    def key_to_pattern(self, rkey):
        # Match "." + routing_key; every binding word consumes "\.word".
        parts = []
        for word in (rkey or "").split("."):
            if word == "#":
                parts.append(r"(?:\.[^.]*)*")
            elif word == "*":
                parts.append(r"\.[^.]*")
            else:
                parts.append(r"\." + re.escape(word))
        return "^" + "".join(parts) + "$"

    def lookup(self, table, exchange, routing_key, default):
        key = "." + (routing_key or "")
        return {
            queue for _, pattern, queue in table
            if self._match(pattern, key)
        }

    def _match(self, pattern, string):
        try:
            compiled = self._compiled_topics[pattern]
        except KeyError:
            compiled = self._compiled_topics[pattern] = re.compile(pattern)
        return compiled.match(string)


# --------------------------------------------------------------------------
# messages and QoS

class Message(virtual.Message):
    """Virtual message whose ``properties`` also carry the content type and
    encoding, as py-amqp's messages do."""

    def __init__(self, payload, channel=None, **kwargs):
        super().__init__(payload, channel=channel, **kwargs)
        props = self.properties
        if "content_type" not in props:
            props["content_type"] = self.content_type
        if "content_encoding" not in props:
            props["content_encoding"] = self.content_encoding


class QoS(virtual.QoS):
    """Requeue to the front of the message's own queue, like RabbitMQ."""

    def reject(self, delivery_tag, requeue=False):
        message = self._delivered.get(delivery_tag)
        if message is not None and delivery_tag not in self._dirty:
            if requeue:
                self.channel._requeue(message)
            else:
                self.channel._dead_letter(message._raw, "rejected")
        self._quick_ack(delivery_tag)

    def restore_unacked(self):
        self._flush()
        messages = list(self._delivered.values())
        self._delivered.clear()
        # back to the front, keeping their original order
        for message in reversed(messages):
            try:
                self.channel._requeue(message)
            except Exception:  # pragma: no cover - channel already gone
                pass
        return []


# --------------------------------------------------------------------------
# channel

class Channel(virtual.Channel):
    """Channel of the embedded transport; storage lives in the broker."""

    Message = Message
    QoS = QoS
    do_restore = True
    supports_fanout = True
    exchange_types = dict(STANDARD_EXCHANGE_TYPES, topic=TopicExchange)
    # bodies stay in memory: no base64 round trip
    body_encoding = None

    @property
    def broker(self) -> _Broker:
        return self.connection.broker

    # -- storage primitives used by kombu's virtual channel --------------

    def _has_queue(self, queue, **kwargs):
        return queue in self.broker.queues

    def _new_queue(self, queue, **kwargs):
        queues = self.broker.queues
        q = queues.get(queue)
        if q is None:
            owner = self.connection if kwargs.get("exclusive") else None
            queues[queue] = _Queue(
                queue,
                auto_delete=bool(kwargs.get("auto_delete")),
                exclusive_owner=owner,
                arguments=kwargs.get("arguments"),
            )
        elif not q.consumers:
            q.idle_since = time.monotonic()  # a declare counts as use

    def _get(self, queue, timeout=None):
        q = self.broker.queues.get(queue)
        if q is None:
            raise Empty()
        try:
            return q.messages.popleft()
        except IndexError:
            raise Empty() from None

    def _put(self, queue, message, **kwargs):
        q = self.broker.queues.get(queue)
        if q is not None:  # no such queue: dropped, as by a broker
            stored = _copy_for_queue(message, queue)
            q.messages.append(stored)
            ttl = q.arguments.get("x-message-ttl")
            if ttl is not None:
                self._expire_later(q, stored, float(ttl) / 1000.0)
            self.broker.notify(queue)

    def _expire_later(self, q, stored, seconds):
        """`x-message-ttl`: a message still in its queue after `seconds` is dead-lettered ("expired")."""
        import eventlet  # here, not at the top: only TTL queues need a timer, the rest runs without eventlet

        def expire():
            try:
                q.messages.remove(stored)
            except ValueError:  # consumed (or purged) in time
                return
            self._dead_letter(stored, "expired")

        eventlet.spawn_after(seconds, expire)

    def _put_fanout(self, exchange, message, routing_key=None, **kwargs):
        for queue in self._lookup(exchange, routing_key):
            self._put(queue, message)

    def _queue_bind(self, *args):
        pass

    def _size(self, queue):
        q = self.broker.queues.get(queue)
        return len(q.messages) if q is not None else 0

    def _purge(self, queue):
        q = self.broker.queues.get(queue)
        if q is None:
            return 0
        size = len(q.messages)
        q.messages.clear()
        return size

    def _delete(self, queue, *args, **kwargs):
        self._remove_queue(queue)

    def _remove_queue(self, queue):
        self.broker.remove_queue(queue)

    def _sweep_expired(self):
        now = time.monotonic()
        for q in list(self.broker.queues.values()):
            expires = q.arguments.get("x-expires")
            if expires and not q.consumers and \
                    now - q.idle_since >= float(expires) / 1000.0:
                self._remove_queue(q.name)

    # -- AMQP methods -----------------------------------------------------

    def queue_declare(self, queue=None, passive=False, **kwargs):
        self._sweep_expired()
        ok = super().queue_declare(queue=queue, passive=passive, **kwargs)
        q = self.broker.queues.get(ok.queue)
        return queue_declare_ok_t(
            ok.queue, ok.message_count, q.consumers if q else 0)

    def queue_delete(self, queue, if_unused=False, if_empty=False, **kwargs):
        q = self.broker.queues.get(queue)
        if q is None:
            return 0
        if (if_empty and q.messages) or (if_unused and q.consumers):
            return None
        size = len(q.messages)
        self._remove_queue(queue)
        return size

    def queue_bind(self, queue, exchange=None, routing_key='',
                   arguments=None, **kwargs):
        exchange = exchange or 'amq.direct'
        if exchange not in self.state.exchanges:
            raise _not_found('exchange', exchange, self, 'Queue.bind')
        if queue not in self.broker.queues:
            raise _not_found('queue', queue, self, 'Queue.bind')
        return super().queue_bind(queue, exchange, routing_key,
                                  arguments, **kwargs)

    def exchange_delete(self, exchange, if_unused=False, nowait=False):
        state = self.state
        ex = state.exchanges.get(exchange)
        if ex is None:
            return
        if if_unused and ex["table"]:
            return
        for rkey, _, queue in list(ex["table"]):
            state.binding_delete(queue, exchange, rkey)
        state.exchanges.pop(exchange, None)

    def basic_publish(self, message, exchange, routing_key, mandatory=False,
                      **kwargs):
        """Route `message` now; a broker would do the same on receipt."""
        self._inplace_augment_message(message, exchange, routing_key)
        if message.get("headers"):
            message["headers"] = copy.deepcopy(message["headers"])
        if exchange:
            if exchange not in self.state.exchanges:
                raise _not_found('exchange', exchange, self, 'Basic.publish')
            queues = self._lookup(exchange, routing_key)
        else:  # default exchange: the routing key names the queue
            queues = [routing_key] if routing_key in self.broker.queues else []
        if not queues:
            if mandatory:
                raise ChannelError(
                    f"NO_ROUTE - message to exchange {exchange!r} with "
                    f"routing key {routing_key!r} was not routed to any queue",
                    (312, 'NO_ROUTE'), 'Basic.return', '312',
                )
            return None
        for queue in queues:
            self._put(queue, message)
        return None

    def _lookup(self, exchange, routing_key, default=None):
        if not exchange:
            return [routing_key]
        try:
            return self.typeof(exchange).lookup(
                self.get_table(exchange), exchange, routing_key, None)
        except KeyError:
            return []

    def basic_ack(self, delivery_tag, multiple=False):
        blocked = not self.qos.can_consume()
        super().basic_ack(delivery_tag, multiple=multiple)
        if blocked and self.connection is not None:
            self.connection._wake()  # a prefetch slot is free again

    def basic_consume(self, queue, no_ack, callback, consumer_tag, **kwargs):
        q = self.broker.queues.get(queue)
        if q is None:
            raise _not_found('queue', queue, self, 'Basic.consume')
        result = super().basic_consume(
            queue, no_ack, callback, consumer_tag, **kwargs)
        q.consumers += 1
        return result

    def basic_cancel(self, consumer_tag):
        queue = self._tag_to_queue.get(consumer_tag)
        had = consumer_tag in self._consumers
        super().basic_cancel(consumer_tag)
        if not had or queue is None or self.connection is None:
            return
        q = self.broker.queues.get(queue)
        if q is None:
            return
        q.consumers = max(0, q.consumers - 1)
        if not q.consumers:
            q.idle_since = time.monotonic()
            if q.auto_delete:
                self._remove_queue(queue)

    def after_reply_message_received(self, queue):
        pass

    # -- requeue and dead-lettering ----------------------------------------

    def _requeue(self, message):
        """Put a delivered message back at the front of its own queue."""
        raw = message._raw
        queue = raw.get(_QUEUE_KEY)
        if queue is None:  # pragma: no cover - not one of ours
            return self._restore(message)
        q = self.broker.queues.get(queue)
        if q is None:
            return None
        limit = q.arguments.get("x-delivery-limit")
        headers = dict(raw.get("headers") or {})
        if limit is not None:
            count = int(headers.get("x-delivery-count", 0)) + 1
            if count > int(limit):
                return self._dead_letter(raw, "delivery_limit")
            headers["x-delivery-count"] = count
        again = _copy_for_queue(raw, queue)
        again["headers"] = headers
        again["redelivered"] = True
        again["properties"]["delivery_info"]["redelivered"] = True
        q.messages.appendleft(again)
        self.broker.notify(queue)
        return None

    def _dead_letter(self, raw, reason):
        """Route a rejected/over-delivered message to its queue's DLX."""
        queue = raw.get(_QUEUE_KEY)
        q = self.broker.queues.get(queue) if queue else None
        if q is None:
            return
        dlx = q.arguments.get("x-dead-letter-exchange")
        if dlx is None:
            return  # dropped, as by a broker when there is no DLX
        info = raw["properties"]["delivery_info"]
        exchange = info.get("exchange") or ""
        routing_key = q.arguments.get(
            "x-dead-letter-routing-key", info.get("routing_key"))
        headers = copy.deepcopy(raw.get("headers") or {})
        headers.pop("x-delivery-count", None)
        deaths = headers["x-death"] = list(headers.get("x-death") or [])
        for death in deaths:
            if death.get("queue") == queue and death.get("reason") == reason:
                death["count"] = death.get("count", 1) + 1
                break
        else:
            deaths.insert(0, {
                "count": 1, "reason": reason, "queue": queue,
                "exchange": exchange, "routing-keys": [info.get("routing_key")],
                "time": int(time.time()),
            })
        headers.setdefault("x-first-death-reason", reason)
        headers.setdefault("x-first-death-queue", queue)
        headers.setdefault("x-first-death-exchange", exchange)

        dead = dict(raw, headers=headers)
        dead.pop(_QUEUE_KEY, None)
        dead.pop("redelivered", None)
        dead["properties"] = dict(raw["properties"], delivery_info={
            "exchange": dlx, "routing_key": routing_key})
        if dlx:
            if dlx not in self.state.exchanges:
                return  # a broker drops it too
            targets = self._lookup(dlx, routing_key)
        else:
            targets = [routing_key]
        for target in targets:
            self._put(target, dead)


def _copy_for_queue(message, queue):
    """The copy of a routed message that `queue` stores."""
    props = message["properties"]
    stored = dict(message)
    stored["properties"] = new_props = dict(props)
    new_props["delivery_info"] = info = dict(props.get("delivery_info") or {})
    info.setdefault("redelivered", False)
    new_props["delivery_tag"] = uuid()
    if stored.get("headers"):
        stored["headers"] = dict(stored["headers"])
    stored[_QUEUE_KEY] = queue
    return stored


def _not_found(kind, name, channel, method):
    vhost = channel.connection.client.virtual_host or "/"
    return ChannelError(
        f"NOT_FOUND - no {kind} {name!r} in vhost {vhost!r}",
        (50, 10), f"Channel.{method}", "404",
    )


# --------------------------------------------------------------------------
# transport

class Transport(virtual.Transport):
    """The embedded (in-process) transport. Select with ``embedded://``."""

    Channel = Channel

    implements = base.Transport.implements

    driver_type = ALIAS
    driver_name = ALIAS

    polling_interval = DEFAULT_POLLING_INTERVAL

    # Nothing is recoverable by reconnecting, and kombu would otherwise treat
    # every ChannelError (NOT_FOUND, NO_ROUTE) as a connection error: retry
    # it and re-raise it as OperationalError, so nameko would never see the
    # NO_ROUTE that it turns into UnknownService.
    recoverable_connection_errors = ()
    recoverable_channel_errors = ()

    def __init__(self, client, **kwargs):
        super().__init__(client, **kwargs)
        self.broker = _get_broker(client.virtual_host)
        self.state = self.broker.state
        self._waiter = None

    def driver_version(self):
        return "N/A"

    @property
    def default_connection_params(self):
        # no host: stops kombu warning "No hostname was supplied" per connection
        return {"port": None, "hostname": None}

    def close_connection(self, connection):
        super().close_connection(connection)
        # exclusive queues die with the connection that declared them
        for q in list(self.broker.queues.values()):
            if q.exclusive_owner is self:
                self.broker.remove_queue(q.name)

    def _wake(self):
        waiter = self._waiter
        if waiter is not None:
            waiter.wake()

    def drain_events(self, connection, timeout=None):
        """Deliver one message, waiting at most `timeout` seconds for it.

        kombu's loop sleeps `polling_interval` between empty polls (with a
        blocking ``time.sleep`` bound at import). Here an idle connection
        waits on an eventlet event that a put to one of its queues (or an
        ack freeing a prefetch slot) sets, and polls anyway every
        `polling_interval`.
        """
        time_start = time.monotonic()
        get = self.cycle.get
        polling_interval = self.polling_interval or 0
        while True:
            try:
                get(self._deliver, timeout=timeout)
                return
            except Empty:
                pass
            interval = polling_interval
            if timeout is not None:
                remaining = timeout - (time.monotonic() - time_start)
                if remaining <= 0:
                    raise socket.timeout()
                interval = min(interval, remaining)
            self._idle(interval)

    def _idle(self, seconds):
        waiter = _new_waiter()
        if waiter is None:
            _sleep(seconds)
            return
        self._waiter = waiter
        waiting = self.broker.waiting
        waiting.add(self)
        try:
            waiter.wait(seconds)
        finally:
            self._waiter = None
            waiting.discard(self)


# --------------------------------------------------------------------------
# registration

def install(polling_interval=None):
    """Register the ``embedded`` transport alias with kombu (idempotent).

    After this, ``kombu.Connection("embedded://")`` and nameko's
    ``AMQP_URI = "embedded://"`` use :class:`Transport`. Importing this
    module already calls it; calling it again is harmless, and is the place
    to change the process-wide `polling_interval` (seconds an idle consumer
    connection waits before re-polling when no put woke it).
    Returns the URI to use (``"embedded://"``).
    """
    if polling_interval is not None:
        Transport.polling_interval = float(polling_interval)
    if TRANSPORT_ALIASES.get(ALIAS) != _TARGET:
        TRANSPORT_ALIASES[ALIAS] = _TARGET
        # kombu >= 5.3 caches resolved aliases (a private dict)
        getattr(kombu.transport, "_transport_cache", {}).pop(ALIAS, None)
    return URI


install()
