"""A three-node RabbitMQ cluster on one machine (issue 16; chaos.broker.BrokerCluster: three nodes on
their own ports, data directories and one Erlang cookie), the five services on it with quorum queues
(MOTCUA_QUEUE_TYPE=quorum, as deploy/k8s runs them) and every node's URI (kombu fails over, as a
Kubernetes Service spreads clients). Dossiers go through their whole life while the node every client
first connected to, and where every queue's leader was declared, is SIGKILLed and restarted: every
dossier returned, nothing lost, nothing done twice, nothing parked (chaos.run's figures)."""
import threading
import time

import pytest

from chaos.broker import BrokerCluster
from chaos.load import Load, PatientApi
from chaos.run import figures, wait_quiet, zeros
from chaos.stack import Stack

DOSSIERS = 12


@pytest.mark.timeout(600)
def test_dossiers_keep_flowing_while_a_broker_node_is_killed_and_restarted(postgres, tmp_path):
    broker = BrokerCluster(tmp_path)
    with Stack(tmp_path, instances=1, broker=broker, extra_env={"MOTCUA_QUEUE_TYPE": "quorum"}) as stack:
        load = Load(PatientApi(stack.services.base_urls, patience=120), DOSSIERS, concurrency=6, timeout=120)
        flowing = threading.Thread(target=load.run, daemon=True)
        flowing.start()
        assert _wait(lambda: load.submitted >= DOSSIERS // 3, 120), "no dossier went in before the fault"
        first = broker.nodes[0].node
        assert broker.leaders()["inbox.workflow"] == first  # declared by a client of the first node: led there
        broker.kill(0)
        killed_at = time.monotonic()
        submitted_at_kill = load.submitted
        # the cluster serves on: dossiers go on being submitted and processed while the node is away (the
        # clients' reconnection backoff after a node's loss can reach a minute or more on a busy machine)
        assert _wait(lambda: load.submitted > submitted_at_kill and any(t > killed_at for t in load.steps), 240), \
            "nothing progressed with one node down"
        assert _wait(lambda: broker.leaders().get("inbox.workflow") not in (None, first), 30)  # a new leader
        broker.restart(0)
        flowing.join(timeout=300)
        assert not flowing.is_alive(), "the load did not finish"
        quiet = wait_quiet(stack, load, timeout=120)
        assert quiet["reached"], quiet
        types = broker.queue_types()
        assert {types[f"inbox.{s}"] for s in ("intake", "workflow", "notify", "reporting", "gateway")} == {"quorum"}
        assert types["rpc-intake"] == "quorum"
        results = figures(stack, load, fired=[])
        results.update(logs={"counts": {"poison_bodies_logged": 0}}, stop={"did_not_stop_in_grace": {}})
        assert results["dossiers"]["returned"] == DOSSIERS, results["dossiers"]
        assert not {name: value for name, value in zeros(results).items() if value}, results


def _wait(predicate, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.2)
    return predicate()
