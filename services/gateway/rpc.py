"""RPC to the services with a deadline: a call to a service that is down would otherwise hang forever."""
from __future__ import annotations

import logging
import warnings

import eventlet
from kombu import Connection
from kombu.pools import connections, producers
from kombu.utils.collections import eqhash

from motcua.rpc import RpcProxy

from services.gateway.errors import ServiceUnavailable

log = logging.getLogger(__name__)
HEALTH_TIMEOUT = 3.0
TRANSIENT = 1  # AMQP delivery mode: kept in memory only
# nameko says so at a request's first publish without confirms: expected here (see TimedRpcProxy).
warnings.filterwarnings("ignore", message="Mandatory delivery was requested", category=UserWarning)


class TimedRpcProxy(RpcProxy):
    """An RpcProxy whose every call raises ServiceUnavailable after RPC_TIMEOUT seconds.

    Its requests are transient and published without publisher confirms: a request lives no longer
    than its caller waits, so the broker need not write it to disk nor confirm it (one round trip
    less per call); the call's deadline bounds a request the broker lost. (A call to a service that
    never declared its queue is then answered 503 at its deadline, not at once; a service that is
    down keeps its queue, and was answered at the deadline anyway.)"""

    def __init__(self, target_service: str, **options):
        super().__init__(target_service, **{"use_confirms": False, "delivery_mode": TRANSIENT, **options})

    def setup(self):
        self.timeout = float(self.container.config.get("RPC_TIMEOUT", 10))

    def get_dependency(self, worker_ctx):
        return TimedServiceProxy(super().get_dependency(worker_ctx), self.target_service, self.timeout)


class TimedServiceProxy:
    def __init__(self, proxy, service: str, timeout: float):
        self._proxy = proxy
        self._service = service
        self._timeout = timeout

    def __getattr__(self, method: str):
        remote = getattr(self._proxy, method)

        def call(*args, **kwargs):
            late = ServiceUnavailable(f"{self._service} did not answer in time")
            try:
                with eventlet.Timeout(self._timeout, late):
                    return remote(*args, **kwargs)
            except ServiceUnavailable as exc:
                if exc is late and hasattr(remote, "publisher"):  # a nameko MethodProxy (not a test's stub)
                    renew_connections(remote.publisher)
                raise

        return call


def renew_connections(publisher) -> None:
    """Close the pooled connections (and their producers) that `publisher`'s requests go out on, so that
    the next request opens a fresh one. Requests are sent without confirms: after a broker node's loss
    (the 3-node cluster test, under load) a pooled channel went on taking requests that never reached
    the queue, and every call to that service timed out for minutes while a new connection's calls were
    answered at once. A call that timed out is the one sign such a channel gives."""
    options = {**publisher.transport_options, "confirm_publish": publisher.use_confirms}
    key = eqhash(Connection(publisher.amqp_uri, transport_options=options, ssl=publisher.ssl,
                            login_method=publisher.login_method))
    for group in (producers, connections):
        pool = dict.pop(group, key, None)
        if pool is not None:
            pool.force_close_all()
    log.info("requests will go out on a new broker connection after a call timed out")


def ping_all(proxies: dict, timeout: float = HEALTH_TIMEOUT) -> dict[str, str]:
    """Call every service's `health()` at once; "ok" or why not, per service, within `timeout`."""
    pool = eventlet.GreenPool(len(proxies))
    answers = pool.imap(lambda name: (name, _ping(proxies[name], timeout)), proxies)
    return dict(answers)


def _ping(proxy, timeout: float) -> str:
    answer = None
    try:
        with eventlet.Timeout(timeout, False):  # False: leave the block quietly when time is up
            answer = proxy.health()
    except Exception as exc:  # health reports what is wrong instead of failing itself
        return f"error: {type(exc).__name__}"
    if answer is None:
        return "timeout"
    return "ok" if isinstance(answer, dict) and answer.get("status") == "ok" else "unhealthy"
