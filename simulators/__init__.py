"""Local simulators of the national systems Motcua connects to (docs/connections.md): small HTTP servers
speaking the other side's real format, started by the tests and by `make run` when configured."""
from __future__ import annotations

import logging
from urllib.parse import urlsplit

log = logging.getLogger(__name__)
LOCAL_HOSTS = ("127.0.0.1", "localhost")


def start_configured() -> list:
    """The simulators the environment points a connection at (its URL on this machine), started in
    this process's threads; `make run` calls it. A connection pointed elsewhere is left to the real
    endpoint. Returns what it started (each has `stop()`)."""
    from motcua.config import env
    started = []
    if env("INTAKE_SIGNING", "off") == "csc":
        from simulators.signing import DEFAULT_PIN, DEFAULT_TOKEN, SigningSimulator
        url = urlsplit(env("INTAKE_SIGNING_URL", "http://127.0.0.1:8090/csc/v1"))
        if url.hostname in LOCAL_HOSTS:
            started.append(SigningSimulator(port=url.port or 80, token=env("INTAKE_SIGNING_TOKEN", DEFAULT_TOKEN),
                                            pin=env("INTAKE_SIGNING_PIN", DEFAULT_PIN)).start())
            log.info("signing simulator (CSC API) on %s", started[-1].url)
    for prefix in ("VNEID", "STAFF_OIDC"):
        url = urlsplit(env(f"{prefix}_ISSUER") or "")
        if url.hostname in LOCAL_HOSTS and not any(getattr(s, "issuer", None) == url.geturl() for s in started):
            from simulators.oidc import DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET, OidcSimulator
            started.append(OidcSimulator(client_id=env(f"{prefix}_CLIENT_ID", DEFAULT_CLIENT_ID),
                                         client_secret=env(f"{prefix}_CLIENT_SECRET", DEFAULT_CLIENT_SECRET),
                                         port=url.port or 80, host=url.hostname).start())
            log.info("OIDC provider simulator (%s) on %s", prefix, started[-1].issuer)
    payment = urlsplit(env("INTAKE_PAYMENT_URL") or "")
    if payment.hostname in LOCAL_HOSTS:
        from simulators.payment import DEFAULT_MERCHANT, DEFAULT_SECRET, PaymentSimulator
        gateway = env("GATEWAY_ADDRESS", "0.0.0.0:8000").replace("0.0.0.0", "localhost")
        started.append(PaymentSimulator(ipn_url=f"http://{gateway}/api/v1/payments/ipn",
                                        merchant=env("INTAKE_PAYMENT_MERCHANT", DEFAULT_MERCHANT),
                                        secret=env("INTAKE_PAYMENT_SECRET", DEFAULT_SECRET),
                                        port=payment.port or 80, host=payment.hostname).start())
        log.info("payment platform simulator on %s", started[-1].url)
    return started
