"""RPC to the services with a deadline: a call to a service that is down would otherwise hang forever."""
from __future__ import annotations

import warnings

import eventlet

import motcua.rpc
from services.gateway.errors import ServiceUnavailable

HEALTH_TIMEOUT = 3.0
TRANSIENT = 1  # AMQP delivery mode: kept in memory only
# nameko says so at a request's first publish without confirms: expected here (see TimedRpcProxy).
warnings.filterwarnings("ignore", message="Mandatory delivery was requested", category=UserWarning)


class TimedRpcProxy(motcua.rpc.TimedRpcProxy):
    """The platform's timed proxy (`motcua.rpc.TimedRpcProxy`), a call past its deadline answered 503.

    Its requests are transient and published without publisher confirms: a request lives no longer
    than its caller waits, so the broker need not write it to disk nor confirm it (one round trip
    less per call); the call's deadline bounds a request the broker lost. (A call to a service that
    never declared its queue is then answered 503 at its deadline, not at once; a service that is
    down keeps its queue, and was answered at the deadline anyway.)"""

    def __init__(self, target_service: str, **options):
        super().__init__(target_service, late=ServiceUnavailable,
                         **{"use_confirms": False, "delivery_mode": TRANSIENT, **options})


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
