"""The embedded bus (motcua.embedded): real nameko containers in one process.

No broker is needed. Each test uses its own virtual host (``embedded:///<name>``)
so tests cannot see each other's queues. Behaviour is asserted, never timing;
the RPC rate is printed for information only.
"""
import eventlet
import eventlet.tpool
from eventlet import patcher

if not patcher.is_monkey_patched("socket"):  # tests/conftest.py normally did it
    eventlet.monkey_patch()

import socket  # noqa: E402
import time  # noqa: E402
import uuid  # noqa: E402
from collections import Counter  # noqa: E402
from functools import partial  # noqa: E402

import pytest  # noqa: E402
from kombu import Connection, Consumer, Exchange, Producer, Queue  # noqa: E402
from kombu.exceptions import ChannelError  # noqa: E402
from kombu.transport import TRANSPORT_ALIASES  # noqa: E402
from nameko.amqp.publish import Publisher as AmqpPublisher  # noqa: E402
from nameko.containers import ServiceContainer  # noqa: E402
from nameko.events import BROADCAST, EventDispatcher, event_handler  # noqa: E402
from nameko.exceptions import RemoteError, UnknownService  # noqa: E402
from nameko.extensions import DependencyProvider  # noqa: E402
from nameko.messaging import consume  # noqa: E402
from nameko.rpc import RpcProxy, rpc  # noqa: E402
from nameko.runners import ServiceRunner  # noqa: E402
from nameko.standalone.rpc import ClusterRpcProxy  # noqa: E402

from motcua import embedded  # noqa: E402

WAIT = 10  # seconds before a wait for messages gives up (a liveness guard, not a timing assert)


# ---------------------------------------------------------------------------
# helpers


@pytest.fixture
def vhost():
    name = f"test-{uuid.uuid4().hex[:10]}"
    yield name
    embedded.reset(name)


@pytest.fixture
def config(vhost):
    return {"AMQP_URI": f"embedded:///{vhost}"}


@pytest.fixture
def started():
    """Start runners/containers; stop them gracefully (kill if that fails) afterwards."""
    items = []

    def start(item):
        item.start()
        items.append(item)
        return item

    yield start

    def stop(item):
        try:
            item.stop()
        except Exception:  # pragma: no cover
            item.kill()

    # each graceful stop waits up to nameko's 1 s consumer loop: stop them together
    list(eventlet.GreenPool().imap(stop, reversed(items)))


def wait_until(predicate, what):
    with eventlet.Timeout(WAIT, False):
        while not predicate():
            eventlet.sleep(0.005)
    assert predicate(), f"gave up waiting for {what}"


def drain_all(connection):
    """Deliver everything that is queued: drain until nothing comes for a short while."""
    with eventlet.Timeout(WAIT, False):
        while True:
            try:
                connection.drain_events(timeout=0.2)
            except socket.timeout:
                return


def settle():
    """Give stray duplicates a chance to show up before counting."""
    eventlet.sleep(0.2)


class WorkerCtx(DependencyProvider):
    def get_dependency(self, worker_ctx):
        return worker_ctx


# ---------------------------------------------------------------------------
# registration


def test_install_is_idempotent_and_registers_the_alias():
    assert embedded.install() == "embedded://"
    assert embedded.install() == "embedded://"
    assert TRANSPORT_ALIASES["embedded"] == "motcua.embedded:Transport"
    with Connection("embedded://") as a, Connection("embedded://localhost//") as b:
        assert isinstance(a.transport, embedded.Transport)
        assert a.transport.broker is b.transport.broker  # both vhost "/"
    with Connection("embedded:///other") as c:
        assert c.transport.broker.vhost == "other"


# ---------------------------------------------------------------------------
# RPC


class Greeter:
    name = "greeter"

    ctx = WorkerCtx()

    @rpc
    def hello(self, name):
        return f"hello {name}"

    @rpc
    def fail(self):
        raise ValueError("boom")

    @rpc
    def whoami(self):
        return {"user_id": self.ctx.data.get("user_id"), "stack": self.ctx.call_id_stack}


class Relay:
    name = "relay"

    greeter = RpcProxy("greeter")

    @rpc
    def relay_hello(self, name):
        return self.greeter.hello(name) + "!"

    @rpc
    def relay_whoami(self):
        return self.greeter.whoami()

    @rpc
    def many(self, n):
        started = time.perf_counter()
        for i in range(n):
            assert self.greeter.hello(str(i)) == f"hello {i}"
        return time.perf_counter() - started


def test_rpc_between_services_and_from_a_standalone_proxy(config, started, capsys):
    runner = ServiceRunner(config)
    runner.add_service(Greeter)
    runner.add_service(Relay)
    started(runner)

    with ClusterRpcProxy(config, context_data={"user_id": "u-42"}) as cluster:
        assert cluster.greeter.hello("An") == "hello An"
        assert cluster.relay.relay_hello("Binh") == "hello Binh!"  # service -> service RpcProxy

        with pytest.raises(RemoteError) as raised:
            cluster.greeter.fail()
        assert raised.value.exc_type == "ValueError"

        with pytest.raises(UnknownService):  # mandatory publish without a route
            cluster.nosuchservice.method()

        # context data and the call-id stack travel in message headers
        direct = cluster.greeter.whoami()
        assert direct["user_id"] == "u-42"
        assert len(direct["stack"]) == 2
        relayed = cluster.relay.relay_whoami()
        assert relayed["user_id"] == "u-42"
        assert len(relayed["stack"]) == 3
        assert relayed["stack"][1].startswith("relay.relay_whoami.")
        assert relayed["stack"][2].startswith("greeter.whoami.")

        # informational: RPC rate, standalone proxy -> service, and service -> service
        n = 200
        t0 = time.perf_counter()
        replies = [cluster.greeter.hello(str(i)) for i in range(n)]
        standalone = time.perf_counter() - t0
        assert replies == [f"hello {i}" for i in range(n)]
        in_service = cluster.relay.many(n)

        # concurrent calls from 10 green threads
        pool = eventlet.GreenPool(10)
        t0 = time.perf_counter()
        results = list(pool.imap(lambda i: cluster_call(config, i), range(10)))
        concurrent = time.perf_counter() - t0
        assert results == [[f"hello {i}-{j}" for j in range(20)] for i in range(10)]

    with capsys.disabled():
        print(
            f"\n[embedded bus] {n} sequential RPC calls: ClusterRpcProxy {n / standalone:.0f}/s "
            f"({standalone / n * 1000:.2f} ms each), RpcProxy service->service "
            f"{n / in_service:.0f}/s; 10 proxies x 20 calls concurrently: {200 / concurrent:.0f}/s "
            f"(polling interval {embedded.Transport.polling_interval * 1000:g} ms)"
        )


def cluster_call(config, i):
    with ClusterRpcProxy(config) as cluster:
        return [cluster.greeter.hello(f"{i}-{j}") for j in range(20)]


def test_standalone_proxy_reply_queues_do_not_pile_up(config, vhost, started):
    runner = ServiceRunner(config)
    runner.add_service(Greeter)
    started(runner)
    before = set(embedded.queue_names(vhost))
    for _ in range(3):
        with ClusterRpcProxy(config) as cluster:
            assert cluster.greeter.hello("x") == "hello x"
    replies = [q for q in embedded.queue_names(vhost) if q not in before]
    assert len(replies) == 3 and all(q.startswith("rpc.reply-standalone_rpc_proxy-") for q in replies)
    # nameko's reply queues carry x-expires (5 min): shorten it to see them go
    for name in replies:
        embedded._get_broker(vhost).queues[name].arguments["x-expires"] = 1
    eventlet.sleep(0.01)
    with ClusterRpcProxy(config) as cluster:  # any queue declaration sweeps expired queues
        assert cluster.greeter.hello("y") == "hello y"
    assert not set(replies) & set(embedded.queue_names(vhost))


# ---------------------------------------------------------------------------
# events


received = Counter()


def record(key, payload):
    received[(key, payload["n"])] += 1


class Announcer:
    name = "announcer"

    dispatch = EventDispatcher()

    @rpc
    def announce(self, n):
        for i in range(n):
            self.dispatch("case.received", {"n": i})


class Listener:
    """Runs as two instances: SERVICE_POOL means each event reaches one of them."""

    name = "listener"

    ctx = WorkerCtx()

    @event_handler("announcer", "case.received")
    def on_case(self, payload):
        record("listener", payload)
        assert self.ctx.data.get("user_id") == "u-7"  # headers reach event handlers


class Auditor:
    name = "auditor"

    @event_handler("announcer", "case.received")
    def on_case(self, payload):
        record("auditor", payload)

    @event_handler("announcer", "case.received", handler_type=BROADCAST, reliable_delivery=False)
    def on_case_broadcast(self, payload):
        record("auditor-broadcast", payload)


class Flaky:
    """Fails each event once with requeue_on_error: the retry must reach only this queue."""

    name = "flaky"

    @event_handler("announcer", "case.received", requeue_on_error=True)
    def on_case(self, payload):
        record("flaky-attempt", payload)
        if received[("flaky-attempt", payload["n"])] == 1:
            raise RuntimeError("first attempt fails")
        record("flaky", payload)


def test_events_reach_each_service_pool_once(config, vhost, started):
    received.clear()
    started(ServiceContainer(Listener, config))
    started(ServiceContainer(Listener, config))  # a second instance of the same service
    started(ServiceContainer(Auditor, config))
    started(ServiceContainer(Flaky, config))
    started(ServiceContainer(Announcer, config))
    broadcast_queues = [q for q in embedded.queue_names(vhost) if "on_case_broadcast" in q]
    assert len(broadcast_queues) == 1

    n = 50
    with ClusterRpcProxy(config, context_data={"user_id": "u-7"}) as cluster:
        cluster.announcer.announce(n)

    keys = ["listener", "auditor", "auditor-broadcast", "flaky"]
    wait_until(lambda: all(received[(k, i)] for k in keys for i in range(n)), "all events")
    settle()
    for key in keys:
        assert [received[(key, i)] for i in range(n)] == [1] * n, key
    assert [received[("flaky-attempt", i)] for i in range(n)] == [2] * n

    # the pool queue is shared by both listener instances, and it is durable
    assert "evt-announcer-case.received--listener.on_case" in embedded.queue_names(vhost)


def test_non_reliable_broadcast_queue_goes_with_its_consumer(config, vhost):
    container = ServiceContainer(Auditor, config)
    container.start()
    try:
        assert any("on_case_broadcast" in q for q in embedded.queue_names(vhost))
    finally:
        container.stop()
    names = embedded.queue_names(vhost)
    assert not any("on_case_broadcast" in q for q in names)  # exclusive, auto-delete
    assert "evt-announcer-case.received--auditor.on_case" in names  # durable, reliable


# ---------------------------------------------------------------------------
# plain kombu / nameko Publisher on their own connections, topic routing keys with dots

TASKS = Exchange("motcua.tasks", type="topic", durable=True)
ROUTING_KEY = "task.000.00.06.H56"

consumed = []


class TaskWorker:
    name = "taskworker"

    @consume(
        Queue(
            "tasks-H56",
            exchange=TASKS,
            routing_key=ROUTING_KEY,
            durable=True,
            queue_arguments={"x-dead-letter-exchange": "motcua.dlx", "x-queue-type": "quorum"},
        )
    )
    def handle(self, payload):
        consumed.append(payload)


def test_separate_connections_share_the_bus_with_containers(config, vhost, started):
    consumed.clear()
    started(ServiceContainer(TaskWorker, config))  # declares exchange, queue, binding

    # an outbox relay publishes with nameko's Publisher, on its own pooled connection
    AmqpPublisher(config["AMQP_URI"]).publish(
        {"id": 1}, exchange=TASKS, routing_key=ROUTING_KEY, declare=[TASKS],
        headers={"x-outbox-id": "1"},
    )
    # and a plain kombu producer on yet another connection
    with Connection(config["AMQP_URI"]) as conn:
        producer = Producer(conn)
        producer.publish({"id": 2}, exchange=TASKS, routing_key=ROUTING_KEY, declare=[TASKS])
        producer.publish({"id": 3}, exchange=TASKS, routing_key="task.000.00.06.H57", declare=[TASKS])
        producer.publish({"id": 4}, exchange=TASKS, routing_key="task.000.00.06", declare=[TASKS])

    wait_until(lambda: len(consumed) >= 2, "the two matching messages")
    settle()
    assert sorted(p["id"] for p in consumed) == [1, 2]


def test_a_publish_from_another_os_thread_is_delivered(config, started):
    """Such a put cannot wake the green consumer; its fallback poll finds it."""
    consumed.clear()
    started(ServiceContainer(TaskWorker, config))

    def publish_in_real_thread():
        with Connection(config["AMQP_URI"]) as conn:
            Producer(conn).publish({"id": "thread"}, exchange=TASKS, routing_key=ROUTING_KEY)

    eventlet.tpool.execute(publish_in_real_thread)
    wait_until(lambda: consumed, "the message from the other thread")
    assert consumed == [{"id": "thread"}]


def test_topic_routing_default_exchange_and_headers(vhost):
    uri = f"embedded:///{vhost}"
    exact = Queue("exact", TASKS, routing_key=ROUTING_KEY, durable=True)
    hashed = Queue("all-tasks", TASKS, routing_key="task.#", durable=True)
    star = Queue("h56-anywhere", TASKS, routing_key="task.*.*.*.H56")
    direct = Queue("plain-queue", durable=True, queue_arguments={"x-message-ttl": 1000})
    with Connection(uri) as consumer_conn, Connection(uri) as producer_conn:
        channel = consumer_conn.channel()
        for queue in (exact, hashed, star, direct):
            queue(channel).declare()

        producer = Producer(producer_conn)
        headers = {"nameko.call_id_stack": ["a.b.1"], "x-trace": "t1"}
        for key in (ROUTING_KEY, "task.000.00.06.H57", "task", "other.000.00.06.H56"):
            producer.publish({"key": key}, exchange=TASKS, routing_key=key, headers=headers)
        producer.publish({"key": "direct"}, exchange="", routing_key="plain-queue")
        producer.publish({"key": "nowhere"}, exchange="", routing_key="no-such-queue")
        headers["x-trace"] = "changed after publishing"

        seen = {}

        def on_message(queue_name, body, message):
            seen.setdefault(queue_name, []).append(body["key"])
            assert message.properties["content_type"] == "application/json"
            assert message.properties["content_encoding"] == "utf-8"
            if body["key"] != "direct":
                assert message.headers == {"nameko.call_id_stack": ["a.b.1"], "x-trace": "t1"}
            message.ack()

        consumers = [
            Consumer(channel, [queue(channel)], callbacks=[partial(on_message, queue.name)])
            for queue in (exact, hashed, star, direct)
        ]
        for consumer in consumers:
            consumer.consume()
        drain_all(consumer_conn)
        for consumer in consumers:
            consumer.cancel()

        assert seen == {
            "exact": [ROUTING_KEY],
            "all-tasks": [ROUTING_KEY, "task.000.00.06.H57", "task"],  # '#' is zero or more words
            "h56-anywhere": [ROUTING_KEY],
            "plain-queue": ["direct"],  # default exchange: routing key = queue name
        }
        assert "no-such-queue" not in embedded.queue_names(vhost)  # dropped, not created

        with pytest.raises(ChannelError):
            producer.publish({}, exchange="never-declared", routing_key="x")


# ---------------------------------------------------------------------------
# reject, requeue, dead-lettering


def test_requeue_goes_to_the_front_of_the_same_queue_and_reject_dead_letters(vhost):
    uri = f"embedded:///{vhost}"
    events = Exchange("svc.events", type="topic", durable=True)
    dlx = Exchange("motcua.dlx", type="topic", durable=True)
    dead = Queue("parked", dlx, routing_key="#", durable=True)
    args = {"x-dead-letter-exchange": "motcua.dlx"}
    first = Queue("first", events, routing_key="case.*", durable=True, queue_arguments=args)
    second = Queue("second", events, routing_key="case.*", durable=True, queue_arguments=args)
    limited = Queue("limited", events, routing_key="case.*", durable=True,
                    queue_arguments=dict(args, **{"x-delivery-limit": 2, "x-queue-type": "quorum"}))
    with Connection(uri) as conn:
        channel = conn.channel()
        for queue in (dead, first, second, limited):
            queue(channel).declare()
        producer = Producer(channel)
        for i in range(3):
            producer.publish({"n": i}, exchange=events, routing_key="case.received")

        q1 = first(channel)
        m0 = q1.get()
        assert m0.payload == {"n": 0} and not m0.delivery_info["redelivered"]
        m0.requeue()
        again = q1.get()
        assert again.payload == {"n": 0} and again.delivery_info["redelivered"]
        again.reject()  # no requeue: to the dead-letter exchange
        parked = dead(channel).get()
        assert parked.payload == {"n": 0}
        assert parked.headers["x-death"][0]["reason"] == "rejected"
        assert parked.headers["x-death"][0]["queue"] == "first"
        assert parked.delivery_info["routing_key"] == "case.received"
        parked.ack()

        # the requeue touched only "first": "second" still has exactly 3 messages
        assert second(channel).queue_declare(passive=True).message_count == 3

        # an unacked message returns to its queue when its channel closes
        other = conn.channel()
        taken = first.bind(other).get()
        assert taken.payload == {"n": 1}
        other.close()
        back = q1.get()
        assert back.payload == {"n": 1} and back.delivery_info["redelivered"]
        back.ack()

        # quorum-style delivery limit: requeued more than twice -> dead-lettered
        ql = limited(channel)
        for attempt in range(3):
            message = ql.get()
            assert message.payload == {"n": 0}
            message.requeue()
        assert ql.get().payload == {"n": 1}  # n=0 is gone from the queue ...
        parked = dead(channel).get()
        assert parked.payload == {"n": 0}
        assert parked.headers["x-death"][0]["reason"] == "delivery_limit"
        assert dead(channel).get() is None
