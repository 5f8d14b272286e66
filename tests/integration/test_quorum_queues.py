"""Quorum queues on the real RabbitMQ (`MOTCUA_QUEUE_TYPE=quorum`, motcua/queues.py; issue 16).

Every durable queue a service or an agency's worker declares is a quorum queue: the service's inbox and
RPC queue, an agency's task queue, their dead-letter and delay queues; reply and broadcast queues stay
classic. A consumed one bounds redeliveries: a message whose consumer dies each time it takes it is
dead-lettered, at least once, into its `.dead` queue after `MOTCUA_QUEUE_DELIVERY_LIMIT` deliveries,
and a retry still waits in a (quorum) delay queue and comes back."""
import json
import time
from datetime import datetime, timezone

import pytest
from kombu import Connection
from nameko.amqp.publish import Publisher
from nameko.containers import ServiceContainer
from nameko.rpc import RPC_QUEUE_TEMPLATE
from nameko.standalone.rpc import ClusterRpcProxy

from motcua.bus import declare_parking, event_handler, inbox_queue_name
from motcua.contracts import make_event
from motcua.queues import DELIVERY_LIMIT, QUEUE_TYPE
from motcua.rpc import rpc
from motcua.worker import TASKS_EXCHANGE, task_handler, task_queue
from tests import infra

AGENCY = "000.00.77.H56"
TRIES: list[float] = []


class QuorumProbe:
    """A service with each kind of durable consumer: RPC, the event inbox, an agency's task queue."""

    name = "quorum_probe"

    @rpc
    def ping(self):
        return "pong"

    @event_handler("intake", "dossier_submitted")
    def on_submitted(self, event):
        pass

    @task_handler(AGENCY)
    def on_task(self, task):
        TRIES.append(time.monotonic())
        if len(TRIES) == 1:
            raise ConnectionRefusedError("the agency's system is away")  # transient: retried through a delay queue


@pytest.fixture
def quorum(monkeypatch):
    monkeypatch.setenv(QUEUE_TYPE, "quorum")
    monkeypatch.setenv(DELIVERY_LIMIT, "3")


def vhost_of(amqp_uri):
    return amqp_uri.rsplit("/", 1)[1]


def task(task_id):
    now = datetime.now(timezone.utc)
    return make_event("workflow", "task_assigned", {
        "task_id": task_id, "dossier_code": "D-QUORUM", "run_version": 1, "step_index": 0, "step": "Thuế",
        "agency_code": AGENCY, "role": "specialist", "assigned_at": now, "due_at": now})


def test_every_durable_queue_of_a_service_and_a_worker_is_a_quorum_queue(amqp_uri, quorum):
    TRIES.clear()
    config = {"AMQP_URI": amqp_uri, "max_workers": 2, "SERIALIZER": "json", "RETRY_BASE_SECONDS": 0.25,
              "RETRY_CAP_SECONDS": 1, "RETRY_FOR_SECONDS": 60}
    container = ServiceContainer(QuorumProbe, config)
    container.start()
    try:
        with ClusterRpcProxy(config) as cluster:
            assert cluster.quorum_probe.ping() == "pong"
        Publisher(amqp_uri).publish(task("T-1"), exchange=TASKS_EXCHANGE, routing_key=f"task.{AGENCY}",
                                    declare=[TASKS_EXCHANGE])
        assert infra.wait_for(lambda: len(TRIES) >= 2, timeout=20)  # failed once, waited, came back
        vhost = vhost_of(amqp_uri)
        consumed = [inbox_queue_name("quorum_probe"), RPC_QUEUE_TEMPLATE.format("quorum_probe"), f"tasks.{AGENCY}"]
        for name in consumed:
            arguments = infra.queue_info(vhost, name)["arguments"]
            assert arguments == {
                "x-queue-type": "quorum", "x-delivery-limit": 3, "x-dead-letter-exchange": f"{name}.parking",
                "x-dead-letter-routing-key": f"{name}.dead", "x-dead-letter-strategy": "at-least-once",
                "x-overflow": "reject-publish"}, name
            assert infra.queue_info(vhost, f"{name}.dead")["type"] == "quorum", name
        waiting = infra.queue_info(vhost, f"tasks.{AGENCY}.wait.0.25s")
        assert waiting["type"] == "quorum"
        assert waiting["arguments"]["x-dead-letter-strategy"] == "at-least-once"
        replies = [q for q in infra.vhost_queues(vhost) if q["name"].startswith("rpc.reply-")]
        assert replies and all(q["type"] == "classic" for q in replies)  # a connection's own: not replicated
        assert infra.queue_depth(vhost, f"tasks.{AGENCY}.dead") == 0
    finally:
        container.stop()


def test_a_message_whose_consumer_dies_each_time_is_dead_lettered_after_the_delivery_limit(amqp_uri, quorum):
    queue = task_queue(AGENCY)
    with Connection(amqp_uri) as connection:
        declare_parking(connection.default_channel, queue)
        TASKS_EXCHANGE(connection.default_channel).declare()
        queue(connection.default_channel).declare()
        Publisher(amqp_uri, use_confirms=True).publish(task("T-POISON"), exchange=TASKS_EXCHANGE,
                                                       routing_key=queue.routing_key)
    deliveries = 0
    for _ in range(10):  # a consumer that takes the message and dies before its ack, again and again
        with Connection(amqp_uri) as connection:
            channel = connection.channel()
            message = infra.wait_for(lambda: channel.basic_get(queue.name, no_ack=False), timeout=3)
        if message is None:
            break
        deliveries += 1
    vhost = vhost_of(amqp_uri)
    assert deliveries == 4  # the first delivery and 3 redeliveries: x-delivery-limit 3
    assert infra.wait_for(lambda: infra.queue_depth(vhost, f"{queue.name}.dead") == 1, timeout=10)
    assert infra.queue_depth(vhost, queue.name) == 0
    [parked] = infra.get_messages(vhost, f"{queue.name}.dead")
    assert parked["properties"]["headers"]["x-first-death-reason"] == "delivery_limit"
    assert '"T-POISON"' in parked["payload"]


@pytest.mark.parametrize("kind", ["events", "rpc", "tasks"])
def test_a_message_at_its_delivery_limit_is_parked_sealed_not_dead_lettered_in_clear(amqp_uri, quorum, kind):
    """Its consumers died with it each time (taken, never acked): on its last delivery the service parks
    it with the bus's headers, its personal data sealed (an RPC request whole), and no handler runs it
    again; the broker would have dead-lettered it in clear."""
    TRIES.clear()
    queue = {"events": inbox_queue_name("quorum_probe"), "rpc": RPC_QUEUE_TEMPLATE.format("quorum_probe"),
             "tasks": f"tasks.{AGENCY}"}[kind]
    config = {"AMQP_URI": amqp_uri, "max_workers": 2, "SERIALIZER": "json"}
    container = ServiceContainer(QuorumProbe, config)
    container.start()  # declares the queues
    container.stop()
    body = json.dumps({"task_id": "T-DYING", "contact": {"phone": "0912345678"}})
    with Connection(amqp_uri) as connection:
        Publisher(amqp_uri, use_confirms=True).publish(body, exchange="", routing_key=queue,
                                                       content_type="application/json")
        for _ in range(3):  # MOTCUA_QUEUE_DELIVERY_LIMIT: taken and lost 3 times
            channel = connection.channel()
            assert infra.wait_for(lambda: channel.basic_get(queue, no_ack=False), timeout=5)
            channel.close()
    vhost = vhost_of(amqp_uri)
    container = ServiceContainer(QuorumProbe, config)
    container.start()
    try:
        assert infra.wait_for(lambda: infra.queue_depth(vhost, f"{queue}.dead") == 1, timeout=15)
        assert infra.queue_depth(vhost, queue) == 0 and not TRIES
        [parked] = infra.get_messages(vhost, f"{queue}.dead")
        headers = parked["properties"]["headers"]
        assert "x-first-death-reason" not in headers  # not the broker's dead-lettering
        assert headers["x-motcua-error"] == "delivered 4 times, its consumer gone each time"
        assert headers["x-motcua-sealed"] == ("body" if kind == "rpc" else "fields")
        assert "0912345678" not in parked["payload"]
        assert ("T-DYING" in parked["payload"]) == (kind != "rpc")
    finally:
        container.stop()
