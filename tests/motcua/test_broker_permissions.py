"""The broker users' permissions, derived from the code (`motcua.broker_permissions`): compose's
definitions file is current, and the patterns say what the integration test proves on the broker."""
import json
import re

from motcua import broker_permissions
from motcua.cli import main
from motcua.config import ROOT

DEFINITIONS = ROOT / "deploy" / "rabbitmq" / "definitions.json"


def grant(principal):
    return next(g for g in broker_permissions.grants() if g.user == f"motcua-{principal}")


def allows(pattern, name):
    return re.fullmatch(pattern, name) is not None


def test_the_definitions_file_is_current():
    assert json.loads(DEFINITIONS.read_text()) == broker_permissions.definitions(broker_permissions.grants()), \
        "regenerate it: python -m motcua.cli broker definitions > deploy/rabbitmq/definitions.json"


def test_nobody_writes_to_the_default_exchange_and_each_publishes_only_its_own_events():
    for g in broker_permissions.grants():
        assert not allows(g.permissions()["write"], "amq.default"), g.user
    publishers = {g.user for g in broker_permissions.grants() for s in ("intake", "workflow", "gateway", "notify")
                  if allows(g.permissions()["write"], f"{s}.events") and g.user != f"motcua-{s}"}
    assert publishers == set()
    assert allows(grant("intake").permissions()["write"], "intake.events")
    assert not allows(grant("notify").permissions()["write"], "notify.events")  # nobody listens to notify


def test_the_permissions_follow_the_services_entrypoints():
    notify = grant("notify").permissions()
    assert allows(notify["read"], "inbox.notify") and allows(notify["read"], "rpc-notify")
    assert not allows(notify["read"], "inbox.intake") and not allows(notify["read"], "rpc-intake")
    reporting_topics = {t["exchange"]: t for t in grant("reporting").topic_permissions()}
    assert allows(reporting_topics["intake.events"]["read"], "dossier_submitted")  # its batch handler's
    assert not allows(reporting_topics["intake.events"]["read"], "#")
    rpc = {t["exchange"]: t for t in grant("gateway").topic_permissions()}["nameko-rpc"]
    assert allows(rpc["write"], "intake.submit") and allows(rpc["read"], "gateway.*")
    assert not allows(rpc["read"], "intake.*") and not allows(rpc["read"], "#")


def test_a_worker_may_take_only_its_agencys_tasks():
    worker = grant("tax_office_worker")
    assert allows(worker.permissions()["read"], "tasks.000.00.18.H56")
    assert not allows(worker.permissions()["read"], "tasks.000.00.99.H56")
    topics = {t["exchange"]: t for t in worker.topic_permissions()}
    assert topics["motcua.tasks"] == {"exchange": "motcua.tasks", "write": "^$", "read": r"^(task\.000\.00\.18\.H56)$"}
    assert allows(topics["nameko-rpc"]["write"], "workflow.complete_task")
    assert not allows(topics["nameko-rpc"]["write"], "intake.submit")


def test_the_command_prints_rabbitmqctl_lines_with_passwords_from_the_environment(capsys):
    assert main(["broker", "users", "--vhost", "motcua"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "rabbitmqctl add_vhost 'motcua'"
    assert 'rabbitmqctl add_user motcua-notify "${MOTCUA_NOTIFY_BROKER_PASSWORD:?}"' in lines
    assert any(line.startswith("rabbitmqctl set_topic_permissions -p 'motcua' motcua-tax_office_worker motcua.tasks")
               for line in lines)


def test_quorum_queues_add_only_what_declaring_them_needs(monkeypatch):
    """A quorum queue names its dead-letter exchange, and RabbitMQ lets only a user who may read the queue
    and write to that exchange declare it (the integration test runs under MOTCUA_QUEUE_TYPE=quorum too)."""
    classic = {g.user: g.permissions() for g in broker_permissions.grants()}
    monkeypatch.setenv("MOTCUA_QUEUE_TYPE", "quorum")
    quorum = {g.user: g.permissions() for g in broker_permissions.grants()}
    workflow, notify = quorum["motcua-workflow"], quorum["motcua-notify"]
    assert allows(workflow["read"], "tasks.000.00.18.H56") and not allows(classic["motcua-workflow"]["read"],
                                                                           "tasks.000.00.18.H56")
    assert allows(workflow["write"], "tasks.000.00.18.H56.parking")
    for kind in ("configure", "write", "read"):
        assert allows(notify[kind], "rpc-notify.parking") and allows(notify[kind], "rpc-notify.dead")
        assert not allows(notify[kind], "rpc-intake.dead") and not allows(classic["motcua-notify"][kind], "rpc-notify.dead")
    assert quorum["motcua-tax_office_worker"] == classic["motcua-tax_office_worker"]  # a worker serves no RPC
