"""Settings from the environment (12-factor), each with a default for the embedded run."""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

SERVICES = ("gateway", "intake", "workflow", "notify", "reporting")
ROOT = Path(__file__).resolve().parent.parent
DEFAULT_METRICS_PORTS = {"intake": 9101, "workflow": 9102, "notify": 9103, "reporting": 9104}
GATEWAY_METRICS_PORT = 9105  # production's, and wherever GATEWAY_METRICS_PORT is set


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


def token_settings(signs: bool) -> dict:
    """What a process verifying tokens holds: the public key and the longest lifetimes it accepts;
    and, if it `signs` (the gateway), the private key, checked to be the public key's pair."""
    from motcua import identity, keys

    settings = {"TOKEN_VERIFY_KEY": keys.pem_setting(keys.TOKEN_VERIFY_KEY),
                "TOKEN_MAX_SECONDS": number("MOTCUA_TOKEN_MAX_SECONDS", str(identity.DEFAULT_MAX_SECONDS), int),
                "SYSTEM_TOKEN_MAX_SECONDS": 86400 * number(
                    "MOTCUA_SYSTEM_TOKEN_MAX_DAYS", str(identity.DEFAULT_SYSTEM_MAX_SECONDS // 86400), int)}
    try:
        public = identity.verify_key(settings["TOKEN_VERIFY_KEY"])
    except ValueError as exc:
        raise SystemExit(f"{keys.TOKEN_VERIFY_KEY} is not an Ed25519 public key ({exc})") from None
    if signs:
        settings["TOKEN_SIGNING_KEY"] = keys.pem_setting(keys.TOKEN_SIGNING_KEY)
        try:
            private = identity.signing_key(settings["TOKEN_SIGNING_KEY"])
        except ValueError as exc:
            raise SystemExit(f"{keys.TOKEN_SIGNING_KEY} is not an Ed25519 private key ({exc})") from None
        if private.public_key() != public:
            raise SystemExit(f"{keys.TOKEN_SIGNING_KEY} and {keys.TOKEN_VERIFY_KEY} are not one key pair: the "
                             "gateway's tokens would be refused everywhere")
    return settings


METRICS_TOKEN = "MOTCUA_METRICS_TOKEN"


def metrics_token() -> str | None:
    """The bearer token a Prometheus scrape of /metrics must carry: none (open) outside production;
    production refuses to start without a strong, private one (metrics tell who works on what, when)."""
    from motcua import keys

    value = env(METRICS_TOKEN)
    if is_production():
        if value is None:
            raise SystemExit(f"{METRICS_TOKEN} must be set when MOTCUA_ENV=production (open metrics): generate "
                             "one with `motcua keys new`, give it to Prometheus (authorization: credentials_file)")
        keys.refuse_weak_or_published(METRICS_TOKEN, value)
    return value


def amqp_uri() -> str:
    """The broker of a separate-process deployment (operators' tools connect to it)."""
    return env("AMQP_URI", "amqp://guest:guest@127.0.0.1:5672/")


def rabbit_management_url() -> str:
    """RabbitMQ's management API (its credentials are the AMQP URI's)."""
    return env("MOTCUA_RABBIT_MANAGEMENT_URL", "http://127.0.0.1:15672/api")


def number(name: str, default: str, kind: type = float):
    """A numeric setting; a value that is not one stops the process naming the variable."""
    raw = env(name, default)
    try:
        return kind(raw)
    except ValueError:
        raise SystemExit(f"{name} must be {'a whole number' if kind is int else 'a number'}, not {raw!r}") from None


def stop_grace_seconds() -> float:
    """How long a process may take to stop after SIGTERM or Ctrl-C before it exits anyway (status 1)."""
    return number("MOTCUA_STOP_GRACE_SECONDS", "20")


# -- the database connection budget --------------------------------------------------------------
# A worker holds at most one connection, from its first statement to its end; besides the workers, a
# service holds one for its outbox relay, notify one more for its scheduler and the gateway one for its
# audit writer. The gateway's one-statement reads have a pool of their own, one connection per worker.
BACKGROUND_CONNECTIONS = {"gateway": 2, "notify": 2}  # every other service: the relay's one
POOL_OVERFLOW = 2  # beyond the pool, for moments: a health check, a metrics scrape, a second relay look


@dataclass(frozen=True)
class PoolSize:
    size: int  # connections kept open once opened (SQLAlchemy opens them as they are needed)
    overflow: int  # opened beyond `size` when all are busy, closed when given back


def db_pool(service: str, max_workers: int) -> PoolSize:
    """The connection pool of `service`'s database: one per worker and per background user."""
    return PoolSize(max_workers + BACKGROUND_CONNECTIONS.get(service, 1), POOL_OVERFLOW)


def db_connections_at_most(service: str, max_workers: int) -> int:
    """The most connections one instance of `service` opens to its database."""
    pool = db_pool(service, max_workers)
    return pool.size + pool.overflow + (max_workers if service == "gateway" else 0)


def check_connection_budget(max_workers: int, limit: int) -> None:
    """Stop the process (naming the settings) unless one instance of each of the five services fits in
    `limit` connections together: PostgreSQL refuses connections beyond its `max_connections`, so a
    platform that does not fit fails under load, not at its start."""
    needed = sum(db_connections_at_most(service, max_workers) for service in SERVICES)
    if needed > limit:
        fits = max((w for w in range(1, max_workers) if sum(db_connections_at_most(s, w) for s in SERVICES) <= limit),
                   default=None)
        fewer = f"set MOTCUA_MAX_WORKERS to {fits} or less, or " if fits else ""
        raise SystemExit(f"the five services may open {needed} database connections with MOTCUA_MAX_WORKERS="
                         f"{max_workers}, more than MOTCUA_DB_CONNECTION_LIMIT={limit}: {fewer}raise the "
                         "limit (to PostgreSQL's max_connections less what else connects to it)")


@dataclass(frozen=True)
class PlatformSettings:
    """What every service process reads: the broker, the clock, the catalogue, the event inbox."""

    amqp_uri: str
    max_workers: int = 10
    time_zone: str = "Asia/Ho_Chi_Minh"
    catalog_dir: str = ""
    rpc_timeout: float = 10.0
    clock_offset_seconds: float = 0.0
    event_batch_size: int = 64  # events applied per transaction, at most
    event_batch_linger_seconds: float = 0.005  # how long a batch waits for more (latency for fewer transactions)
    event_max_attempts: int = 3  # tries of a message failing with a bug (neither transient nor poison)
    retry_for_seconds: float = 3600.0  # how long a transient failure is retried before it is parked
    retry_base_seconds: float = 1.0  # the first retry's delay; each next one doubles…
    retry_cap_seconds: float = 300.0  # …up to this
    db_connection_limit: int = 80  # PostgreSQL's default 100, less its 3 reserved and room for tools
    idempotency_key_hours: float = 24.0  # how long a command's result answers a repeat of its key

    @classmethod
    def from_env(cls, amqp_uri: str | None = None) -> "PlatformSettings":
        return cls(amqp_uri=amqp_uri or env("AMQP_URI", "embedded://"),
                   max_workers=number("MOTCUA_MAX_WORKERS", "10", int),
                   time_zone=env("MOTCUA_TZ", "Asia/Ho_Chi_Minh"), catalog_dir=str(catalog_dir()),
                   rpc_timeout=number("MOTCUA_RPC_TIMEOUT", "10"),
                   clock_offset_seconds=number("MOTCUA_CLOCK_OFFSET_SECONDS", "0"),
                   event_batch_size=number("MOTCUA_EVENT_BATCH_SIZE", "64", int),
                   event_batch_linger_seconds=number("MOTCUA_EVENT_BATCH_LINGER_SECONDS", "0.005"),
                   event_max_attempts=number("MOTCUA_EVENT_MAX_ATTEMPTS", "3", int),
                   retry_for_seconds=number("MOTCUA_RETRY_FOR_SECONDS", "3600"),
                   retry_base_seconds=number("MOTCUA_RETRY_BASE_SECONDS", "1"),
                   retry_cap_seconds=number("MOTCUA_RETRY_CAP_SECONDS", "300"),
                   db_connection_limit=number("MOTCUA_DB_CONNECTION_LIMIT", "80", int),
                   idempotency_key_hours=number("MOTCUA_IDEMPOTENCY_KEY_HOURS", "24"))

    def config(self) -> dict:
        return {"AMQP_URI": self.amqp_uri, "max_workers": self.max_workers, "parent_calls_tracked": 10,
                "SERIALIZER": "json", "TIME_ZONE": self.time_zone, "CATALOG_DIR": self.catalog_dir,
                "RPC_TIMEOUT": self.rpc_timeout, "CLOCK_OFFSET_SECONDS": self.clock_offset_seconds,
                "EVENT_BATCH_SIZE": self.event_batch_size,
                "EVENT_BATCH_LINGER_SECONDS": self.event_batch_linger_seconds,
                "EVENT_MAX_ATTEMPTS": self.event_max_attempts, "RETRY_FOR_SECONDS": self.retry_for_seconds,
                "RETRY_BASE_SECONDS": self.retry_base_seconds, "RETRY_CAP_SECONDS": self.retry_cap_seconds,
                "IDEMPOTENCY_KEY_HOURS": self.idempotency_key_hours}


# Services nobody waits on event by event (projections, messages): they batch longer, so each of their
# transactions applies more events (a reporting batch costs the same 5–6 statements whatever its size).
DOWNSTREAM = ("reporting", "notify")


# The keys each service uses, by purpose (config name → setting); a process is given its services' only.
# Tracking keys (mã tra cứu): made by intake, checked by reporting and by the gateway's edge cache.
# Search: the applicants' lookup hashes (intake) and the recipients' hashes (notify). The gateway's own:
# throttle keys and login pseudonyms, and its forms' CSRF and login nonces.
SERVICE_KEYS = {  # the audit log's and the data keys' are read (by their modules and commands) at start too
    "gateway": {"TRACKING_KEY": "MOTCUA_TRACKING_KEY", "THROTTLE_KEY": "GATEWAY_THROTTLE_KEY",
                "FORM_KEY": "GATEWAY_FORM_KEY", "AUDIT_KEY": "GATEWAY_AUDIT_KEY"},
    "intake": {"TRACKING_KEY": "MOTCUA_TRACKING_KEY", "SEARCH_KEY": "MOTCUA_SEARCH_KEY", "DATA_KEY": "INTAKE_DATA_KEY"},
    "reporting": {"TRACKING_KEY": "MOTCUA_TRACKING_KEY"},
    "notify": {"SEARCH_KEY": "MOTCUA_SEARCH_KEY"},
    "workflow": {},
}


def _service_config(service: str) -> dict:
    """One service's own settings, read from its own variables only: its database, its metrics port,
    its keys (`SERVICE_KEYS`, its dead-letter key, the tokens' public key; the gateway's private one),
    and what it alone needs (the gateway's web address and login rules, workflow's SLA timer, notify's
    SMTP)."""
    from motcua.keys import key_setting

    config: dict = {"DB_URLS": {service: db_url(service)}, "METRICS_PORTS": {}, "EVENT_BATCH_LINGERS": {},
                    **{name: key_setting(setting).decode() for name, setting in SERVICE_KEYS[service].items()},
                    # Seals personal data in the service's parked messages (motcua.bus).
                    "DEAD_LETTER_KEYS": {service: key_setting(f"{service.upper()}_DEAD_LETTER_KEY").decode()},
                    **token_settings(service == "gateway"), "METRICS_TOKEN": metrics_token(),
                    # How long an instance trusts a token's state it read (motcua.revocation.AccessCache).
                    "ACCESS_CACHE_SECONDS": number("MOTCUA_ACCESS_CACHE_SECONDS", "5")}
    if service in DOWNSTREAM:
        config["EVENT_BATCH_LINGERS"][service] = number(f"{service.upper()}_EVENT_BATCH_LINGER_SECONDS", "0.05")
    if service in DEFAULT_METRICS_PORTS:
        config["METRICS_PORTS"][service] = number(f"{service.upper()}_METRICS_PORT",
                                                  str(DEFAULT_METRICS_PORTS[service]), int)
    elif gateway_metrics_port() is not None:
        config["METRICS_PORTS"][service] = gateway_metrics_port()
    if service == "gateway":
        config.update({
            "WEB_SERVER_ADDRESS": env("GATEWAY_ADDRESS", "0.0.0.0:8000"),
            "PUBLIC_METRICS": not is_production(),
            # Reverse proxies whose X-Forwarded-For/-Proto are believed (gateway/proxies.py); none by default.
            "TRUSTED_PROXIES": env("MOTCUA_TRUSTED_PROXIES", ""),
            "TOKEN_TTL_SECONDS": number("MOTCUA_TOKEN_TTL_SECONDS", "900", int),
            # The console warns this long before a session ends (then "Tiếp tục làm việc" renews it).
            "SESSION_WARNING_SECONDS": number("MOTCUA_SESSION_WARNING_SECONDS", "120", int),
            "LOGIN_MAX_FAILURES": number("MOTCUA_LOGIN_MAX_FAILURES", "5", int),
            "LOGIN_MAX_FAILURES_PER_ADDRESS": number("MOTCUA_LOGIN_MAX_FAILURES_PER_ADDRESS", "20", int),
            "LOGIN_WINDOW_SECONDS": number("MOTCUA_LOGIN_WINDOW_SECONDS", "300"),
            "PROOF_MAX_FAILURES": number("MOTCUA_PROOF_MAX_FAILURES", "5", int),
            "PROOF_MAX_FAILURES_PER_ADDRESS": number("MOTCUA_PROOF_MAX_FAILURES_PER_ADDRESS", "50", int),
            "PROOF_MAX_FAILURES_PER_DOSSIER": number("MOTCUA_PROOF_MAX_FAILURES_PER_DOSSIER", "10", int),
            "PROOF_WINDOW_SECONDS": number("MOTCUA_PROOF_WINDOW_SECONDS", "900"),
            "SUBMISSIONS_PER_ADDRESS": number("MOTCUA_SUBMISSIONS_PER_ADDRESS", "30", int),
            "SUBMISSION_WINDOW_SECONDS": number("MOTCUA_SUBMISSION_WINDOW_SECONDS", "3600"),
            "SIGNATURE_CHECKS_PER_ADDRESS": number("MOTCUA_SIGNATURE_CHECKS_PER_ADDRESS", "60", int),
            "SIGNATURE_CHECK_WINDOW_SECONDS": number("MOTCUA_SIGNATURE_CHECK_WINDOW_SECONDS", "3600"),
            "AUDIT_LINGER_SECONDS": number("MOTCUA_AUDIT_LINGER_SECONDS", "0.005"),
            "LONG_POLL_MAX_SECONDS": number("MOTCUA_LONG_POLL_MAX_SECONDS", "30"),
            "TRACKING_CACHE_SIZE": number("MOTCUA_TRACKING_CACHE_SIZE", "4096", int),
            "TRACKING_CACHE_MAX_AGE_SECONDS": number("MOTCUA_TRACKING_CACHE_MAX_AGE_SECONDS", "300"),
        })
    elif service == "workflow":
        config["SLA_CHECK_SECONDS"] = number("WORKFLOW_SLA_CHECK_SECONDS", "20")
    elif service == "notify":
        config["SMTP"] = {
            "host": env("SMTP_HOST"),
            "port": number("SMTP_PORT", "25", int),
            "sender": env("SMTP_SENDER", "Motcua <no-reply@motcua.local>"),
            "mailbox": env("NOTIFY_MAILBOX", str(var_dir() / "mailbox.mbox")),
        }
    return config


def gateway_metrics_port() -> int | None:
    """Production's gateway serves /metrics on a port of its own (GATEWAY_METRICS_PORT, 9105), never on the
    public one; elsewhere only when that variable is set (else /metrics is on the gateway's own port)."""
    if env("GATEWAY_METRICS_PORT") or is_production():
        return number("GATEWAY_METRICS_PORT", str(GATEWAY_METRICS_PORT), int)
    return None


def metrics_host() -> str:
    """Where the metrics and health ports listen: `MOTCUA_METRICS_HOST`, else the gateway's host (a
    platform kept on 127.0.0.1 keeps its metrics there too)."""
    return env("MOTCUA_METRICS_HOST") or env("GATEWAY_ADDRESS", "0.0.0.0:8000").rpartition(":")[0] or "0.0.0.0"


def nameko_config(amqp_uri: str | None = None, services: tuple[str, ...] | list[str] = SERVICES) -> dict:
    """The nameko container config of a process running `services` (all of them by default, as the
    embedded platform does): the platform's settings and each of those services' own, and nothing of
    the others (a process running only notify does not even read intake's database URL)."""
    from motcua.keys import refuse_published_password

    settings = PlatformSettings.from_env(amqp_uri)
    config = settings.config()
    config["METRICS_HOST"] = metrics_host()
    refuse_published_password("AMQP_URI", settings.amqp_uri)
    for service in services:
        refuse_published_password(f"{service.upper()}_DB_URL", db_url(service))
        own = _service_config(service)
        for shared in ("DB_URLS", "METRICS_PORTS", "EVENT_BATCH_LINGERS", "DEAD_LETTER_KEYS"):
            config.setdefault(shared, {}).update(own.pop(shared))
        config.update(own)
    if not all(url.startswith("sqlite") for url in config.get("DB_URLS", {}).values()):  # SQLite: one connection
        check_connection_budget(settings.max_workers, settings.db_connection_limit)
    return config
