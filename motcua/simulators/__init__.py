"""Local simulators of the national systems Motcua connects to (docs/connections.md): small HTTP servers
(one base, `http.py`) speaking each system's own format, started by the tests and, when configured, by
`make run`. Each keeps what it received in memory and can be told to fail (down, slow, garbage,
outages, refusals) so that the failure paths are tested here without the internet."""
from __future__ import annotations

import os
from urllib.parse import urlsplit

from motcua.config import env, is_production

LOCAL_HOSTS = ("127.0.0.1", "localhost")


def start_configured() -> list:
    """`make run`'s simulators, in this process's threads, configured either way:

    - named in MOTCUA_SIMULATORS (comma-separated: `dvcqg`, `sms`, `postal`): each started on a free
      local port, and the connector's settings pointed at it unless they are set already;
    - a connection whose URL points at this machine (INTAKE_SIGNING=csc with INTAKE_SIGNING_URL,
      VNEID_ISSUER, STAFF_OIDC_ISSUER, INTAKE_PAYMENT_URL): its simulator started on that port. A
      connection pointed elsewhere is left to the real endpoint.

    Production starts none: MOTCUA_SIMULATORS is refused (a simulator is no national system), and a
    local URL there is the operator's own endpoint. Returns what it started (each has `stop()`)."""
    names = [name.strip() for name in (env("MOTCUA_SIMULATORS") or "").split(",") if name.strip()]
    if names and is_production():
        raise SystemExit("MOTCUA_SIMULATORS is for development: production connects to the real systems")
    started = []
    for name in names:
        if name not in STARTERS:
            raise SystemExit(f"MOTCUA_SIMULATORS: no simulator {name!r} (known: {', '.join(sorted(STARTERS))})")
        simulator, settings = STARTERS[name]()
        for key, value in settings.items():
            os.environ.setdefault(key, value)
        print(f"simulator {name} on {simulator.url}", flush=True)
        started.append(simulator)
    if not is_production():
        started += _pointed_at()
    return started


def _pointed_at() -> list:
    """The simulators of the connections whose URL is on this machine, on that URL's port."""
    started = []
    if env("INTAKE_SIGNING", "off") == "csc":
        url = urlsplit(env("INTAKE_SIGNING_URL", "http://127.0.0.1:8090/csc/v1"))
        if url.hostname in LOCAL_HOSTS:
            from motcua.simulators.signing import DEFAULT_PIN, DEFAULT_TOKEN, SigningSimulator
            started.append(SigningSimulator(port=url.port or 80, token=env("INTAKE_SIGNING_TOKEN", DEFAULT_TOKEN),
                                            pin=env("INTAKE_SIGNING_PIN", DEFAULT_PIN)).start())
            print(f"simulator signing (CSC API) on {started[-1].url}", flush=True)
    for prefix in ("VNEID", "STAFF_OIDC"):
        url = urlsplit(env(f"{prefix}_ISSUER") or "")
        if url.hostname in LOCAL_HOSTS and not any(getattr(s, "issuer", None) == url.geturl() for s in started):
            from motcua.simulators.oidc import DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET, OidcSimulator
            started.append(OidcSimulator(client_id=env(f"{prefix}_CLIENT_ID", DEFAULT_CLIENT_ID),
                                         client_secret=env(f"{prefix}_CLIENT_SECRET", DEFAULT_CLIENT_SECRET),
                                         port=url.port or 80, host=url.hostname).start())
            print(f"simulator OIDC provider ({prefix}) on {started[-1].issuer}", flush=True)
    payment = urlsplit(env("INTAKE_PAYMENT_URL") or "")
    if payment.hostname in LOCAL_HOSTS:
        from motcua.simulators.payment import DEFAULT_MERCHANT, DEFAULT_SECRET, PaymentSimulator
        started.append(PaymentSimulator(ipn_url=f"http://{_gateway_address()}/api/v1/payments/ipn",
                                        merchant=env("INTAKE_PAYMENT_MERCHANT", DEFAULT_MERCHANT),
                                        secret=env("INTAKE_PAYMENT_SECRET", DEFAULT_SECRET),
                                        port=payment.port or 80, host=payment.hostname).start())
        print(f"simulator payment platform on {started[-1].url}", flush=True)
    return started


def _dvcqg():
    from motcua.simulators.dvcqg import DvcqgSimulator

    simulator = DvcqgSimulator().start()
    return simulator, {"DVCQG_URL": simulator.url, "DVCQG_USERNAME": simulator.username,
                       "DVCQG_PASSWORD": simulator.password, "DVCQG_AGENCY_CODE": simulator.agency_code}


def _sms():
    """The brandname gateway, reporting each message delivered a second later to the gateway's receipt
    URL; notify's settings file (NOTIFY_CONFIG) written under var/ to use it."""
    import json

    from motcua.config import var_dir
    from motcua.simulators.sms import SmsGatewaySimulator

    simulator = SmsGatewaySimulator(auto_report=1.0).start()
    address = _gateway_address()
    settings = {"brandname": {"url": simulator.url, "api_key_env": "MOTCUA_SIM_SMS_API_KEY",
                              "secret_key_env": "MOTCUA_SIM_SMS_SECRET_KEY", "brandname": "MOTCUA",
                              "callback_url": f"http://{address}/api/v1/notifications/receipts/brandname",
                              "receipt_token_env": "MOTCUA_SIM_SMS_REPORT_TOKEN"}}
    path = var_dir() / "notify-simulated-sms.json"  # JSON is YAML: the settings loader reads it
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(settings, indent=1))
    return simulator, {"NOTIFY_CONFIG": str(path), "MOTCUA_SIM_SMS_API_KEY": simulator.api_key,
                       "MOTCUA_SIM_SMS_SECRET_KEY": simulator.secret_key,
                       "MOTCUA_SIM_SMS_REPORT_TOKEN": "simulated-report-token"}


def _postal():
    """The postal service, taking each order through its course (picked up, delivering, delivered) two
    seconds a step, its news signed to the gateway's callback URL."""
    from motcua.simulators.postal import PostalSimulator

    simulator = PostalSimulator(callback_url=f"http://{_gateway_address()}/api/v1/postal/callbacks",
                                auto_course=2.0).start()
    return simulator, {"POSTAL_URL": simulator.url, "POSTAL_USERNAME": simulator.username,
                       "POSTAL_PASSWORD": simulator.password, "POSTAL_CALLBACK_SECRET": simulator.callback_secret,
                       "POSTAL_OFFICE_PHONE": "02373852000"}


def _gateway_address() -> str:
    return (env("GATEWAY_ADDRESS") or "0.0.0.0:8000").replace("0.0.0.0", "127.0.0.1")


STARTERS = {"dvcqg": _dvcqg, "sms": _sms, "postal": _postal}
