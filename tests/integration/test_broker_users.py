"""Least privilege on the real RabbitMQ: every service and agency worker connects as its own user with
the permissions `motcua.broker_permissions` derives (a fresh vhost, users deleted after each test).

What each user's code does works (workflow and the tax office's worker complete tasks, a failing task is
retried through the worker's delay queues and parked; an event reaches a subscriber's inbox; a delay
queue returns its message), and what belongs to another is refused by the broker itself."""
import json
import time
import uuid

import pytest
import requests
from amqp.exceptions import AccessRefused
from kombu import Connection, Producer, Queue, binding
from nameko.containers import ServiceContainer
from nameko.rpc import RPC_QUEUE_TEMPLATE, get_rpc_exchange
from nameko.standalone.events import get_event_exchange

from motcua import broker_permissions
from motcua.bus import declare_parking, delay_queue, inbox_queue_name, parking_exchange
from motcua.config import ROOT, nameko_config
from motcua.worker import TASKS_EXCHANGE, task_queue
from services.workflow.service import WorkflowService
from tests import infra
from tests.integration.test_agency_workers import TAX, catalog, completions, received  # noqa: F401 (fixture)
from workers.tax_office import TaxOfficeWorker

OTHER_AGENCY = "000.00.99.H56"
WORKER = TaxOfficeWorker.name


def channel_of(broker, principal):
    """A connection as `principal`'s user whose publishes wait for the broker's answer (a refused publish
    raises at once instead of closing the channel later)."""
    return Connection(broker.uri(principal), transport_options={"confirm_publish": True})


def publish(broker, principal, exchange, routing_key, body=None):
    with channel_of(broker, principal) as connection:
        Producer(connection.channel()).publish(body or {"forged": True}, exchange=exchange, routing_key=routing_key,
                                               serializer="json")


def consume_one(broker, principal, queue_name):
    with channel_of(broker, principal) as connection:
        return connection.channel().basic_get(queue_name, no_ack=True)


def refused(action, *args) -> str:
    with pytest.raises(AccessRefused) as refusal:
        action(*args)
    return str(refusal.value)


def inbox(service, *subscriptions):
    return Queue(inbox_queue_name(service), durable=True, bindings=[
        binding(get_event_exchange(source, {}), routing_key=event_type) for source, event_type in subscriptions])


@pytest.fixture
def topology(least_privilege_broker):
    """The queues as their owners' code declares them, each under its owner's user."""
    broker = least_privilege_broker
    rpc = get_rpc_exchange({})
    declared = {
        "intake": lambda ch: Queue(RPC_QUEUE_TEMPLATE.format("intake"), rpc, routing_key="intake.*",
                                   durable=True)(ch).declare(),
        "workflow": lambda ch: (declare_parking(ch, inbox("workflow", ("intake", "dossier_received"))),
                                [task_queue(code)(ch).declare() for code in (TAX, OTHER_AGENCY)]),
        "notify": lambda ch: declare_parking(ch, inbox("notify", ("intake", "dossier_received"))),
    }
    for principal, declare in declared.items():
        with channel_of(broker, principal) as connection:
            declare(connection.channel())
    return broker


def test_what_each_user_owns_works(topology):
    broker = topology
    # intake publishes its events; workflow reads them from its inbox
    publish(broker, "intake", get_event_exchange("intake", {}), "dossier_received", {"code": "D-1"})
    assert infra.wait_for(lambda: consume_one(broker, "workflow", "inbox.workflow"), timeout=10)
    # workflow routes a task; the tax office's worker takes it from its own queue
    publish(broker, "workflow", TASKS_EXCHANGE, f"task.{TAX}", {"task_id": "T-1"})
    assert infra.wait_for(lambda: consume_one(broker, WORKER, task_queue(TAX).name), timeout=10)
    # notify's retry waits in its delay queue and comes back to its inbox through its parking exchange
    with channel_of(broker, "notify") as connection:
        waiting = delay_queue("inbox.notify", 0.2)
        Producer(connection.channel()).publish({"retry": 1}, exchange=waiting.exchange, routing_key=waiting.name,
                                               declare=[waiting], serializer="json")
    assert infra.wait_for(lambda: consume_one(broker, "notify", "inbox.notify"), timeout=10)


def test_a_service_cannot_read_or_forge_what_belongs_to_another(topology):
    broker = topology
    assert "rpc-intake" in refused(consume_one, broker, "notify", "rpc-intake")  # intake's requests
    assert "inbox.workflow" in refused(consume_one, broker, "notify", "inbox.workflow")
    assert "inbox.notify" in refused(consume_one, broker, "gateway", "inbox.notify")
    # forging intake's events: on its exchange, straight into a queue, or through workflow's parking
    assert "intake.events" in refused(publish, broker, "notify", get_event_exchange("intake", {}), "dossier_received")
    assert "amq.default" in refused(publish, broker, "notify", "", "inbox.workflow")
    assert "inbox.workflow.parking" in refused(publish, broker, "notify", parking_exchange("inbox.workflow"),
                                               "inbox.workflow")
    # calling a service it does not call, or listening to every call on the RPC exchange
    assert "intake.submit" in refused(publish, broker, "notify", get_rpc_exchange({}), "intake.submit")
    with channel_of(broker, "notify") as connection:
        assert "'#'" in refused(connection.channel().queue_bind, "inbox.notify", "nameko-rpc", "#")
    with channel_of(broker, "notify") as connection:  # nor every event of intake's
        assert "'#'" in refused(connection.channel().queue_bind, "inbox.notify", "intake.events", "#")


def test_an_agency_worker_reaches_only_its_own_task_queue(topology):
    broker = topology
    assert OTHER_AGENCY in refused(consume_one, broker, WORKER, task_queue(OTHER_AGENCY).name)
    assert "motcua.tasks" in refused(publish, broker, WORKER, TASKS_EXCHANGE, f"task.{TAX}")  # no task forging
    with channel_of(broker, WORKER) as connection:  # nor another agency's tasks bound to its own queue
        assert OTHER_AGENCY in refused(connection.channel().queue_bind, task_queue(TAX).name, TASKS_EXCHANGE.name,
                                       f"task.{OTHER_AGENCY}")
    assert "workflow.events" in refused(publish, broker, WORKER, get_event_exchange("workflow", {}), "task_completed")
    assert "intake.submit" in refused(publish, broker, WORKER, get_rpc_exchange({}), "intake.submit")


def test_workflow_and_the_tax_office_worker_complete_tasks_under_their_own_users(least_privilege_broker, pg_urls,
                                                                                  catalog):  # noqa: F811
    broker = least_privilege_broker
    config = {**nameko_config(broker.uri("workflow")), "DB_URLS": pg_urls, "CATALOG_DIR": str(catalog),
              "METRICS_PORTS": {}, "RETRY_BASE_SECONDS": 0.5}
    workflow = ServiceContainer(WorkflowService, config)
    workflow.start()
    token = infra.gateway_token(f"system@{TAX}", TAX, "system", ttl=3600)
    worker = ServiceContainer(TaxOfficeWorker, {**config, "AMQP_URI": broker.uri(WORKER), "WORKER_TOKEN": token})
    worker.start()
    try:
        incomplete = received("000.20.01.H56-261205-0099")
        incomplete["data"]["form"] = {}  # the worker cannot compute the fee: retried, then parked
        for event in [received(f"000.20.01.H56-261205-{i:04d}") for i in range(3)] + [incomplete]:
            publish(broker, "intake", get_event_exchange("intake", {}), "dossier_received", event)
        assert infra.wait_for(lambda: len(completions(pg_urls["workflow"])[0]) == 3)
        assert infra.wait_for(lambda: infra.queue_depth(broker.vhost, f"tasks.{TAX}.dead") == 1, timeout=30)
        time.sleep(0.5)
        assert len(completions(pg_urls["workflow"])[0]) == 3
        assert any(q["name"].startswith(f"tasks.{TAX}.wait.") for q in _queues(broker.vhost))  # it was retried
    finally:
        worker.stop()
        workflow.stop()


def _queues(vhost):
    response = requests.get(f"{infra.RABBIT_MGMT}/queues/{vhost}", auth=infra.RABBIT_AUTH, timeout=10)
    response.raise_for_status()
    return response.json()



def test_compose_s_definitions_load_into_rabbitmq_and_their_users_sign_in(amqp_uri):
    """deploy/rabbitmq/definitions.json as the broker imports it at boot (its names moved to this test's
    vhost and users, deleted after): the password hashes are RabbitMQ's, the permissions hold."""
    vhost, prefix = amqp_uri.rsplit("/", 1)[1], f"test-{uuid.uuid4().hex[:8]}-"
    definitions = json.loads((ROOT / "deploy" / "rabbitmq" / "definitions.json").read_text())
    for user in definitions["users"]:
        user["name"] = prefix + user["name"]
    definitions["vhosts"] = [{"name": vhost}]
    for entry in definitions["permissions"] + definitions["topic_permissions"]:
        entry.update(user=prefix + entry["user"], vhost=vhost)
    requests.post(f"{infra.RABBIT_MGMT}/definitions", json=definitions, auth=infra.RABBIT_AUTH,
                  timeout=30).raise_for_status()
    try:
        notify = f"amqp://{prefix}motcua-notify:motcua-notify@{infra.RABBIT_HOST}:5672/{vhost}"  # demo password
        with Connection(notify, transport_options={"confirm_publish": True}) as connection:
            declare_parking(connection.channel(), inbox("notify", ("intake", "dossier_received")))
        with Connection(notify, transport_options={"confirm_publish": True}) as connection:
            with pytest.raises(AccessRefused):
                Producer(connection.channel()).publish({}, exchange=get_event_exchange("intake", {}),
                                                       routing_key="dossier_received")
    finally:
        for user in definitions["users"]:
            requests.delete(f"{infra.RABBIT_MGMT}/users/{user['name']}", auth=infra.RABBIT_AUTH, timeout=10)


def test_the_autoscalers_user_reads_queue_depths_and_nothing_else(topology):
    """KEDA's rabbitmq trigger (deploy/k8s) asks a queue's depth with a passive declare."""
    broker = topology
    reader = broker_permissions.QUEUE_DEPTH_READER
    with channel_of(broker, reader) as connection:
        assert connection.channel().queue_declare(task_queue(TAX).name, passive=True).queue == task_queue(TAX).name
    assert TAX in refused(consume_one, broker, reader, task_queue(TAX).name)
    assert "intake.events" in refused(publish, broker, reader, get_event_exchange("intake", {}), "dossier_submitted")
    with channel_of(broker, reader) as connection:
        assert "inbox.keda" in str(pytest.raises(AccessRefused, connection.channel().queue_declare, "inbox.keda",
                                                 durable=True).value)
