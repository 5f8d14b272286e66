"""Settings from the environment (12-factor), each with a default for the embedded run."""
from __future__ import annotations

import os
from pathlib import Path

SERVICES = ("gateway", "intake", "workflow", "notify", "reporting")
ROOT = Path(__file__).resolve().parent.parent
DEFAULT_METRICS_PORTS = {"intake": 9101, "workflow": 9102, "notify": 9103, "reporting": 9104}


def env(name: str, default: str | None = None) -> str | None:
    value = os.environ.get(name)
    return value if value not in (None, "") else default


def var_dir() -> Path:
    path = Path(env("MOTCUA_VAR_DIR", str(ROOT / "var")))
    path.mkdir(parents=True, exist_ok=True)
    return path


def db_url(service: str) -> str:
    return env(f"{service.upper()}_DB_URL") or f"sqlite:///{var_dir() / (service + '.db')}"


def catalog_dir() -> Path:
    return Path(env("MOTCUA_CATALOG_DIR", str(ROOT / "deploy" / "catalog")))


def is_production() -> bool:
    return env("MOTCUA_ENV", "development") == "production"


DEVELOPMENT_SECRET = "motcua-development-secret-change-me"


def secret() -> str:
    """Signs access tokens and tracking keys; production refuses the public development value."""
    value = env("MOTCUA_SECRET", DEVELOPMENT_SECRET)
    if is_production() and value == DEVELOPMENT_SECRET:
        raise SystemExit("MOTCUA_SECRET must be set to a private value when MOTCUA_ENV=production")
    return value


def nameko_config(amqp_uri: str | None = None) -> dict:
    """The nameko container config, every value from the environment."""
    uri = amqp_uri or env("AMQP_URI", "embedded://")
    return {
        "AMQP_URI": uri,
        "max_workers": int(env("MOTCUA_MAX_WORKERS", "10")),
        "parent_calls_tracked": 10,
        "DB_URLS": {service: db_url(service) for service in SERVICES},
        "METRICS_PORTS": {
            service: int(env(f"{service.upper()}_METRICS_PORT", str(port)))
            for service, port in DEFAULT_METRICS_PORTS.items()
        },
        "WEB_SERVER_ADDRESS": env("GATEWAY_ADDRESS", "0.0.0.0:8000"),
        "SERIALIZER": "json",
        "SECRET": secret(),
        "TIME_ZONE": env("MOTCUA_TZ", "Asia/Ho_Chi_Minh"),
        "CATALOG_DIR": str(catalog_dir()),
        "SMTP": {
            "host": env("SMTP_HOST"),
            "port": int(env("SMTP_PORT", "25")),
            "sender": env("SMTP_SENDER", "Motcua <no-reply@motcua.local>"),
            "mailbox": env("NOTIFY_MAILBOX", str(var_dir() / "mailbox.mbox")),
        },
        "RPC_TIMEOUT": float(env("MOTCUA_RPC_TIMEOUT", "10")),
        "EVENT_BATCH_SIZE": int(env("MOTCUA_EVENT_BATCH_SIZE", "64")),  # events applied per transaction, at most
        "EVENT_MAX_ATTEMPTS": int(env("MOTCUA_EVENT_MAX_ATTEMPTS", "3")),
        # how long a batch waits for more events before it is applied (latency traded for fewer transactions)
        "EVENT_BATCH_LINGER_SECONDS": float(env("MOTCUA_EVENT_BATCH_LINGER_SECONDS", "0.005")),
        "TOKEN_TTL_SECONDS": int(env("MOTCUA_TOKEN_TTL_SECONDS", "900")),
        "LOGIN_MAX_FAILURES": int(env("MOTCUA_LOGIN_MAX_FAILURES", "5")),
        "LOGIN_MAX_FAILURES_PER_ADDRESS": int(env("MOTCUA_LOGIN_MAX_FAILURES_PER_ADDRESS", "20")),
        "LOGIN_WINDOW_SECONDS": float(env("MOTCUA_LOGIN_WINDOW_SECONDS", "300")),
        "PROOF_MAX_FAILURES": int(env("MOTCUA_PROOF_MAX_FAILURES", "5")),
        "PROOF_MAX_FAILURES_PER_ADDRESS": int(env("MOTCUA_PROOF_MAX_FAILURES_PER_ADDRESS", "50")),
        "PROOF_WINDOW_SECONDS": float(env("MOTCUA_PROOF_WINDOW_SECONDS", "900")),
        "SLA_CHECK_SECONDS": float(env("WORKFLOW_SLA_CHECK_SECONDS", "20")),
        "CLOCK_OFFSET_SECONDS": float(env("MOTCUA_CLOCK_OFFSET_SECONDS", "0")),
        "ACCESS_CACHE_SECONDS": float(env("MOTCUA_ACCESS_CACHE_SECONDS", "5")),
        "AUDIT_LINGER_SECONDS": float(env("MOTCUA_AUDIT_LINGER_SECONDS", "0.005")),
        "LONG_POLL_MAX_SECONDS": float(env("MOTCUA_LONG_POLL_MAX_SECONDS", "30")),
    }
