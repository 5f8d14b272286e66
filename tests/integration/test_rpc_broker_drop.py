"""A service outlives its broker: a call whose answer cannot be sent (the broker stopped meanwhile, as in
a restart) leaves the service running. The chaos suite saw a broker restart take down every service
process that was answering a call: nameko kills the container when a worker's reply raises."""
import contextlib

import pytest
from nameko.containers import ServiceContainer
from nameko.standalone.rpc import ServiceRpcProxy

from chaos.broker import Broker
from motcua.rpc import rpc
from tests import infra


class Answering:
    name = "answering"
    broker: Broker
    stopped = False

    @rpc
    def answer_after_the_broker_stopped(self):
        # Once: the request, never acked (its answer could not be sent), comes back when the broker is up
        # again, and stopping the broker at each delivery would stop it for good (the test then hung,
        # now and then, on a busy machine).
        if not Answering.stopped:
            Answering.stopped = True
            self.broker.ctl("stop_app")
        return "done"

    @rpc
    def ping(self):
        return "pong"


@pytest.mark.timeout(180)
def test_a_call_answered_while_the_broker_is_down_leaves_the_service_running(tmp_path):
    broker = Answering.broker = Broker(tmp_path)  # a node of the test's own: stopping it disturbs nobody
    Answering.stopped = False
    broker.start()
    config = {"AMQP_URI": broker.amqp_uri}
    container = ServiceContainer(Answering, config)
    try:
        container.start()
        with contextlib.suppress(Exception):  # the caller loses its connection too: it would ask again
            with ServiceRpcProxy("answering", config, timeout=20) as proxy:
                proxy.answer_after_the_broker_stopped()
        # The caller gives up when its connection drops, while the worker is still stopping the broker
        # and then answering: start the broker again only once that worker has ended (a start_app racing
        # the stop_app fails, and the test would then wait on a half-stopped node).
        assert infra.wait_for(lambda: not container._worker_threads, timeout=90, interval=0.5)
        broker.ctl("start_app")
        broker.ctl("await_startup")
        assert not container._died.ready(), "the container was killed"
        assert infra.wait_for(lambda: _ping(config), timeout=90, interval=1) == "pong"
        assert not container._died.ready()
    finally:
        with contextlib.suppress(Exception):
            container.kill()
        broker.stop()


def _ping(config):
    try:
        with ServiceRpcProxy("answering", config, timeout=5) as proxy:
            return proxy.ping()
    except Exception:
        return None
