"""Real infrastructure for tests: RabbitMQ vhosts, PostgreSQL databases, service processes.

Missing RabbitMQ or PostgreSQL fails the test with how to start them: CI never skips silently.
"""
from __future__ import annotations

import contextlib
import functools
import os
import random
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
import requests

from motcua.config import ROOT, SERVICES, token_settings
from motcua.identity import Caller, issue_token

# The development token pair (deploy/dev), as every process of a test run reads it: TOKEN_SIGNING_KEY
# for the tests that stand in for the gateway, TOKEN_VERIFY_KEY (and the lifetimes) for a service's config.
TOKENS = token_settings(signs=True)
VERIFYING = {k: v for k, v in TOKENS.items() if k != "TOKEN_SIGNING_KEY"}


def set_production_keys(monkeypatch, directory: Path) -> dict[str, str]:
    """Every key setting of the five services set to a fresh private value (the token pair as two PEM
    files in `directory`), as an operator sets them for production; the values by setting."""
    from motcua import keys
    from motcua.config import METRICS_TOKEN, SERVICE_KEYS

    names = {setting for own in SERVICE_KEYS.values() for setting in own.values()}
    names |= {f"{service.upper()}_DEAD_LETTER_KEY" for service in SERVICES} | {METRICS_TOKEN}
    values = {name: keys.new_key() for name in sorted(names)}
    for name, pem in zip((keys.TOKEN_SIGNING_KEY, keys.TOKEN_VERIFY_KEY), keys.new_token_pair()):
        path = directory / f"{name.lower()}.pem"
        path.write_text(pem)
        values[name] = str(path)
    for name, value in values.items():
        monkeypatch.setenv(name, value)
    return values


def gateway_token(username: str, agency: str | None, *roles: str, ttl: float = 6 * 3600) -> str:
    """A token as the gateway signs it (`ttl` seconds: by default long enough that a token made when a
    test module is imported outlives the whole suite on a busy machine, and within the 12-hour cap)."""
    from datetime import timedelta

    return issue_token(Caller(username, agency, tuple(roles)), TOKENS["TOKEN_SIGNING_KEY"], timedelta(seconds=ttl))

RABBIT_HOST = os.environ.get("TEST_RABBIT_HOST", "127.0.0.1")
RABBIT_MGMT = f"http://{RABBIT_HOST}:15672/api"
RABBIT_AUTH = ("guest", "guest")
# A test platform's clients (the e2e tests, chaos, bench) all submit from 127.0.0.1, anonymously:
# the per-address limit of anonymous submissions is lifted for them (tests of the limit set their own).
ONE_ADDRESS_LOAD = {"MOTCUA_SUBMISSIONS_PER_ADDRESS": "1000000"}
PG_ADMIN_URL = os.environ.get("TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres")

HOW_TO_START_RABBIT = (
    "RabbitMQ with its management plugin must run on 127.0.0.1:5672/15672 for integration tests. "
    "Start it with: rabbitmq-server -detached && rabbitmq-plugins enable rabbitmq_management "
    "(or: docker compose up rabbitmq)."
)
HOW_TO_START_PG = (
    "PostgreSQL must accept user postgres on 127.0.0.1:5432 for integration tests. Start it with: "
    "pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start "
    "(or: docker compose up postgres)."
)


def _port_open(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=2):
            return True
    except OSError:
        return False


def require_rabbitmq() -> None:
    if not _port_open(RABBIT_HOST, 5672):
        pytest.fail(HOW_TO_START_RABBIT, pytrace=False)
    try:
        requests.get(f"{RABBIT_MGMT}/overview", auth=RABBIT_AUTH, timeout=5).raise_for_status()
    except requests.RequestException:
        pytest.fail(HOW_TO_START_RABBIT, pytrace=False)


def require_postgres() -> None:
    if not _port_open("127.0.0.1", 5432):
        pytest.fail(HOW_TO_START_PG, pytrace=False)


def create_vhost(vhost: str) -> None:
    requests.put(f"{RABBIT_MGMT}/vhosts/{vhost}", auth=RABBIT_AUTH, timeout=10).raise_for_status()
    requests.put(f"{RABBIT_MGMT}/permissions/{vhost}/guest", auth=RABBIT_AUTH, timeout=10,
                 json={"configure": ".*", "write": ".*", "read": ".*"}).raise_for_status()


def delete_vhost(vhost: str) -> None:
    requests.delete(f"{RABBIT_MGMT}/vhosts/{vhost}", auth=RABBIT_AUTH, timeout=10)


def amqp_uri(vhost: str) -> str:
    return f"amqp://guest:guest@{RABBIT_HOST}:5672/{vhost}"


class LeastPrivilegeBroker:
    """A vhost's users of `motcua.broker_permissions`, under a prefix of their own, with random passwords."""

    def __init__(self, vhost: str, prefix: str):
        from motcua import broker_permissions

        self.vhost = vhost
        self.prefix = prefix
        self.grants = broker_permissions.grants(prefix=prefix)
        self.passwords = {grant.user: uuid.uuid4().hex for grant in self.grants}

    def uri(self, principal: str) -> str:
        """The AMQP URI of a service's or a worker's (its nameko name) own user."""
        user = self.prefix + principal
        return f"amqp://{user}:{self.passwords[user]}@{RABBIT_HOST}:5672/{self.vhost}"

    def delete_users(self) -> None:
        for user in self.passwords:
            requests.delete(f"{RABBIT_MGMT}/users/{user}", auth=RABBIT_AUTH, timeout=10)


def queue_info(vhost: str, queue: str) -> dict:
    """A queue as the management API describes it ({} while it does not exist)."""
    response = requests.get(f"{RABBIT_MGMT}/queues/{vhost}/{queue}", auth=RABBIT_AUTH, timeout=10)
    if response.status_code == 404:
        return {}
    response.raise_for_status()
    return response.json()


def vhost_queues(vhost: str) -> list[dict]:
    """Every queue of `vhost` as the management API describes it."""
    response = requests.get(f"{RABBIT_MGMT}/queues/{vhost}", auth=RABBIT_AUTH, timeout=10)
    response.raise_for_status()
    return response.json()


def queue_bound(vhost: str, queue: str, exchange: str, routing_key: str) -> bool:
    """Whether `queue` is bound to `exchange` by `routing_key` (a queue is declared before its bindings:
    an event published in between goes nowhere)."""
    response = requests.get(f"{RABBIT_MGMT}/bindings/{vhost}/e/{exchange}/q/{queue}", auth=RABBIT_AUTH, timeout=10)
    return response.status_code == 200 and any(b["routing_key"] == routing_key for b in response.json())


def queue_depth(vhost: str, queue: str) -> int:
    """Messages in a queue; raises while the queue does not exist."""
    response = requests.get(f"{RABBIT_MGMT}/queues/{vhost}/{queue}", auth=RABBIT_AUTH, timeout=10)
    response.raise_for_status()
    return int(response.json().get("messages", 0))


def _admin_engine():
    from sqlalchemy import create_engine
    return create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")


def create_service_databases(names=SERVICES, migrate: bool = True) -> dict[str, str]:
    """A fresh PostgreSQL database per name; migrated when the names are Motcua's services: copied from a
    migrated template database (`CREATE DATABASE … TEMPLATE` takes a tenth of running the migrations)."""
    prefix = f"motcua_test_{uuid.uuid4().hex[:8]}"
    base = PG_ADMIN_URL.rsplit("/", 1)[0]
    urls = {name: f"{base}/{prefix}_{name}" for name in names}
    engine = _admin_engine()
    with engine.connect() as connection:
        if not migrate:
            for url in urls.values():
                connection.exec_driver_sql(f'CREATE DATABASE "{url.rsplit("/", 1)[1]}"')
        else:
            # Suites run side by side (make test's lanes): each template is made once, and none is dropped
            # while another copies it.
            connection.exec_driver_sql("SELECT pg_advisory_lock(hashtext('motcua test templates'))")
            try:
                templates = _migrated_templates(connection, names)
                for name, url in urls.items():
                    connection.exec_driver_sql(f'CREATE DATABASE "{url.rsplit("/", 1)[1]}" TEMPLATE "{templates[name]}"')
            finally:
                connection.exec_driver_sql("SELECT pg_advisory_unlock(hashtext('motcua test templates'))")
    engine.dispose()
    return urls


TEMPLATE_PREFIX = "motcua_template_"


@functools.cache
def _schema_code_digest() -> str:
    """What a migrated schema depends on: the migrations, the code they import (the services' and the
    kit's modules: sealed columns, the audit chain), and the versions of alembic and SQLAlchemy."""
    import hashlib

    import alembic
    import sqlalchemy

    digest = hashlib.sha256(f"{alembic.__version__} {sqlalchemy.__version__}".encode())
    for path in sorted([*(ROOT / "services").rglob("*.py"), *(ROOT / "motcua").rglob("*.py")]):
        digest.update(str(path.relative_to(ROOT)).encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()


def template_stem() -> str:
    """How this tree's templates are named: by what its schema depends on and the keys its migrations read."""
    import hashlib

    digest = hashlib.sha256(_schema_code_digest().encode())
    for key in ("INTAKE_DATA_KEY", "GATEWAY_AUDIT_KEY"):
        digest.update(os.environ.get(key, "").encode() + b"\0")
    return f"{TEMPLATE_PREFIX}{digest.hexdigest()[:12]}_"


BUILDING = "_building"


# A template of other code or keys is dropped once unused this long: another checkout sharing the
# PostgreSQL server (a worktree, a branch) keeps its own while it runs, instead of each run dropping the
# other's and building its own again.
KEEP_UNUSED_TEMPLATES_SECONDS = 3600


def _migrated_templates(connection, names) -> dict[str, str]:
    """{service: a database migrated to this tree's head}, made once for the code and keys it was made
    with (they are in its name: a changed migration, or a test's own data or audit key, gets a template
    of its own); each use is noted on the template (its comment: the time), and templates of other code
    unused for `KEEP_UNUSED_TEMPLATES_SECONDS` are dropped. Built under a name of its own and renamed
    once migrated, so a run killed mid-migration leaves no template to be copied half-made."""
    from motcua import migrate as migrations

    stem, now = template_stem(), int(time.time())
    found = connection.exec_driver_sql(
        "SELECT datname, shobj_description(oid, 'pg_database') FROM pg_database WHERE starts_with(datname, %s)",
        (TEMPLATE_PREFIX,)).all()
    existing = {name for name, _used in found}
    for stale, used in found:
        unused = not (used or "").isdigit() or int(used) < now - KEEP_UNUSED_TEMPLATES_SECONDS
        # A build cut short is nobody's (we hold the lock); another code's template, once unused.
        if stale.endswith(BUILDING) or (not stale.startswith(stem) and unused):
            drop_database(connection, stale)
            existing.discard(stale)
    base = PG_ADMIN_URL.rsplit("/", 1)[0]
    for name in names:
        if stem + name not in existing:
            building = stem + name + BUILDING
            connection.exec_driver_sql(f'CREATE DATABASE "{building}"')
            try:
                migrations.upgrade(name, f"{base}/{building}")
                connection.exec_driver_sql(f'ALTER DATABASE "{building}" RENAME TO "{stem + name}"')
            except BaseException:
                drop_database(connection, building)
                raise
        connection.exec_driver_sql(f"COMMENT ON DATABASE \"{stem + name}\" IS '{now}'")
    return {name: stem + name for name in names}


def drop_database(connection, name: str) -> None:
    """`name` dropped if it is there, its connections ended (an autocommit admin connection)."""
    connection.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def drop_databases(urls: dict[str, str]) -> None:
    engine = _admin_engine()
    with engine.connect() as connection:
        for url in urls.values():
            drop_database(connection, url.rsplit("/", 1)[1])
    engine.dispose()


@contextlib.contextmanager
def databases_as_deployed():
    """The databases and users of deploy/postgres-init.sql, under names of this test's own, each migrated
    by its own user: yields {service: URL of its own user}; drops them after."""
    prefix = f"motcua_test_{uuid.uuid4().hex[:8]}"
    sql = (ROOT / "deploy" / "postgres-init.sql").read_text()
    for service in SERVICES:
        sql = sql.replace(f"motcua_{service}", f"{prefix}_{service}")
    base = PG_ADMIN_URL.rsplit("@", 1)[1].rsplit("/", 1)[0]
    urls = {s: f"postgresql+psycopg://{prefix}_{s}:{prefix}_{s}@{base}/{prefix}_{s}" for s in SERVICES}
    engine = _admin_engine()
    try:
        admin = PG_ADMIN_URL.replace("postgresql+psycopg://", "postgresql://")
        subprocess.run(["psql", "-v", "ON_ERROR_STOP=1", "-q", admin], input=sql, text=True, check=True,
                       capture_output=True)  # as the postgres image runs it
        from motcua import migrate as migrations

        for service, url in urls.items():
            migrations.upgrade(service, url)
        yield urls
    finally:
        drop_databases(urls)
        with engine.connect() as connection:
            for service in SERVICES:
                connection.exec_driver_sql(f'DROP ROLE IF EXISTS "{prefix}_{service}"')
        engine.dispose()


def migrated_sqlite_urls(directory: Path) -> dict[str, str]:
    from motcua import migrate as migrations

    urls = {service: f"sqlite:///{directory / (service + '.db')}" for service in SERVICES}
    for service, url in urls.items():
        migrations.upgrade(service, url)
    return urls


@contextlib.contextmanager
def migrated_database(request, service: str, dialect: str, directory: Path):
    """`service`'s migrated database on `dialect`: SQLite in `directory`, or a fresh PostgreSQL one
    (dropped after). Yields its URL; for a fixture parametrized over both dialects."""
    if dialect == "sqlite":
        from motcua import migrate as migrations

        url = f"sqlite:///{directory / (service + '.db')}"
        migrations.upgrade(service, url)
        yield url
        return
    request.getfixturevalue("postgres")
    urls = create_service_databases(names=(service,))
    try:
        yield urls[service]
    finally:
        drop_databases(urls)


_handed_out: set[int] = set()


def free_port() -> int:
    """A port nobody listens on, below the kernel's ephemeral range.

    Port 0 would hand out an ephemeral port, which an outgoing connection (to RabbitMQ, PostgreSQL)
    may take before the service binds it: that is the "Address already in use" CI once hit.
    """
    low, _ = (int(n) for n in Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split())
    # `make test`'s lanes (tests/lanes.py) each take their own slice, so two never pick the same port.
    lane, lanes = (int(n) for n in os.environ.get("MOTCUA_TEST_LANE", "0/1").split("/"))
    width = (low - 20000) // lanes
    rng = random.Random()
    for _ in range(200):
        port = rng.randrange(20000 + lane * width, 20000 + (lane + 1) * width)
        if port in _handed_out:
            continue
        with socket.socket() as sock:
            try:
                sock.bind(("0.0.0.0", port))
            except OSError:
                continue
        _handed_out.add(port)
        return port
    raise RuntimeError("no free port below the ephemeral range")


def stop_process(process: subprocess.Popen, log_path: Path | None = None, timeout: float = 20) -> None:
    """SIGTERM, as an operator stops a service; one that does not exit in time is killed and the
    test fails with its log: a shutdown that hangs is a bug, not noise."""
    if process.poll() is not None:
        return
    process.terminate()
    wait_stopped(process, log_path, timeout)


def wait_stopped(process: subprocess.Popen, log_path: Path | None = None, timeout: float = 20) -> None:
    """Wait for a process sent one SIGTERM (a second would mean "stop now": `motcua/run.py`)."""
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=10)
        tail = log_path.read_text(errors="replace")[-4000:] if log_path else ""
        raise AssertionError(f"{process.args} did not stop within {timeout:g} s of SIGTERM\n{tail}") from None


@contextlib.contextmanager
def embedded_platform(var_dir: Path):
    """`make run`'s embedded platform in a subprocess (own ports, files under `var_dir`): yields the
    base URL once /health answers 200, fails with the run log if it does not start; stops it after."""
    with embedded_platform_process(var_dir) as (_process, base):
        yield base


@contextlib.contextmanager
def embedded_platform_process(var_dir: Path, extra_env: dict | None = None):
    """`embedded_platform`, yielding its process too (for tests that signal it) beside the base URL."""
    port = free_port()
    env = {**os.environ, **ONE_ADDRESS_LOAD, "MOTCUA_VAR_DIR": str(var_dir), "GATEWAY_ADDRESS": f"127.0.0.1:{port}",
           "AMQP_URI": "",
           **{f"{s.upper()}_DB_URL": "" for s in SERVICES},
           **{f"{s.upper()}_METRICS_PORT": str(free_port()) for s in SERVICES if s != "gateway"}, **(extra_env or {})}
    log_path = var_dir / "run.log"
    with open(log_path, "wb") as log:
        process = subprocess.Popen([sys.executable, "-m", "motcua.run", "--embedded"], env=env, cwd=ROOT,
                                   stdout=log, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.time() + 60
        while True:
            assert process.poll() is None, log_path.read_text()
            with contextlib.suppress(requests.RequestException):
                if requests.get(f"{base}/health", timeout=2).status_code == 200:
                    break
            assert time.time() < deadline, "the platform did not start:\n" + log_path.read_text()
            time.sleep(0.3)
        yield process, base
    finally:
        stop_process(process, log_path, timeout=30)


def instance_name(service: str, number: int) -> str:
    """A service instance's name: the service's own for the first, `<service>-<n>` for the others."""
    return service if number == 1 else f"{service}-{number}"


class ServiceProcesses:
    """The five services, each in its own OS process, as production runs them; `root` is the source
    tree they run from (the bench also runs a previous release's checkout). `instances` of each
    service (the chaos suite runs two): every gateway instance on its own HTTP port, every other
    instance with its own metrics port; processes are named by `instance_name`."""

    def __init__(self, amqp_uri: str, db_urls: dict[str, str], log_dir: Path, extra_env: dict | None = None,
                 root: Path = ROOT, instances: int = 1):
        self.root = root
        self.env = {
            **os.environ, **ONE_ADDRESS_LOAD, "AMQP_URI": amqp_uri, "PYTHONPATH": str(root), "MOTCUA_LOG_LEVEL": "INFO",
            "MOTCUA_VAR_DIR": str(log_dir / "var"), **(extra_env or {}),
        }
        for service, url in db_urls.items():
            self.env[f"{service.upper()}_DB_URL"] = url
        self.names = {service: [instance_name(service, n) for n in range(1, instances + 1)] for service in SERVICES}
        self.gateway_ports = [free_port() for _ in self.names["gateway"]]
        self.gateway_port = self.gateway_ports[0]
        self.base_urls = [f"http://127.0.0.1:{port}" for port in self.gateway_ports]
        self.base_url = self.base_urls[0]
        self.instance_env = {name: {"GATEWAY_ADDRESS": f"127.0.0.1:{port}"}
                             for name, port in zip(self.names["gateway"], self.gateway_ports)}
        self.metrics_ports = {}
        for service in SERVICES:
            if service != "gateway":
                for name in self.names[service]:
                    self.metrics_ports[name] = free_port()
                    self.instance_env[name] = {f"{service.upper()}_METRICS_PORT": str(self.metrics_ports[name])}
        self.env.update(self.instance_env[self.names["gateway"][0]])  # what a seed or a CLI run alongside sees
        self.log_dir = log_dir
        self.processes: dict[str, subprocess.Popen] = {}

    def service_of(self, name: str) -> str:
        return next(service for service, names in self.names.items() if name in names)

    def start(self, name: str) -> None:
        """Start the instance `name` (a service's name alone: its first instance)."""
        log = open(self.log_dir / f"{name}.log", "ab")
        self.processes[name] = subprocess.Popen(
            [sys.executable, "-m", "motcua.run", self.service_of(name)], env={**self.env, **self.instance_env[name]},
            cwd=self.root, stdout=log, stderr=subprocess.STDOUT)

    def start_all(self) -> None:
        from motcua import seed  # noqa: F401  (imported to fail fast if the seed module is broken)
        subprocess.run([sys.executable, "-m", "motcua.seed"], env=self.env, cwd=self.root, check=True,
                       capture_output=True)
        for names in self.names.values():
            for name in names:
                self.start(name)
        self.wait_healthy()

    def wait_healthy(self, timeout: float = 60) -> None:
        deadline = time.time() + timeout
        last = None
        pending = list(self.base_urls)
        while time.time() < deadline:
            for name, process in self.processes.items():
                if process.poll() is not None:
                    raise RuntimeError(f"{name} exited with {process.returncode}; see {self.log_dir}/{name}.log")
            try:
                response = requests.get(f"{pending[0]}/health", timeout=5)
                last = response.text
                if response.status_code == 200:
                    pending.pop(0)
                    if not pending:
                        return
                    continue
            except requests.RequestException as exc:
                last = repr(exc)
            time.sleep(0.5)
        raise RuntimeError(f"platform not healthy after {timeout}s: {last}")

    def kill(self, name: str) -> None:
        process = self.processes[name]
        process.kill()
        process.wait(timeout=10)

    def stop_all(self) -> None:
        for process in self.processes.values():
            if process.poll() is None:
                process.terminate()
        for name, process in self.processes.items():
            wait_stopped(process, self.log_dir / f"{name}.log")

    def logs(self) -> str:
        return "\n".join(p.read_text(errors="replace") for p in sorted(self.log_dir.glob("*.log")))


def get_messages(vhost: str, queue: str, count: int = 10) -> list[dict]:
    """Peek at messages (requeued) through the management API."""
    response = requests.post(f"{RABBIT_MGMT}/queues/{vhost}/{queue}/get", auth=RABBIT_AUTH, timeout=10,
                             json={"count": count, "ackmode": "ack_requeue_true", "encoding": "auto"})
    response.raise_for_status()
    return response.json()


def require_rabbitmq_for_bench() -> None:
    if not (_port_open(RABBIT_HOST, 5672) and _port_open("127.0.0.1", 5432)):
        raise SystemExit(HOW_TO_START_RABBIT + "\n" + HOW_TO_START_PG)


def wait_for(predicate, timeout: float = 60, interval: float = 0.3):
    """Poll `predicate` until it is truthy or `timeout` passes; returns its last value."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    return predicate()


@contextlib.contextmanager
def intake_behind_gateway(directories: pytest.TempPathFactory, name: str, environment: dict[str, str],
                          port: int | None = None, intake_fakes: dict | None = None, gateway_fakes: dict | None = None):
    """Intake and the gateway in this process (embedded bus, migrated SQLite, demo accounts), with
    `environment` set while they run (a connection's settings: its simulator's URL) and the named
    dependencies replaced by fakes (the services not started). Yields (gateway URL, intake container,
    gateway container, config)."""
    from nameko.containers import ServiceContainer
    from nameko.testing.services import replace_dependencies

    from motcua import embedded
    from motcua.config import catalog_dir, nameko_config
    from services.gateway.accounts import seed_demo_accounts
    from services.gateway.service import GatewayService
    from services.intake.service import IntakeService

    patched = pytest.MonkeyPatch()
    for key, value in environment.items():
        patched.setenv(key, value)
    embedded.install()
    vhost = f"{name}-{uuid.uuid4().hex[:8]}"
    port = port or free_port()
    config = {**nameko_config(f"embedded:///{vhost}"), "DB_URLS": migrated_sqlite_urls(directories.mktemp("db")),
              "WEB_SERVER_ADDRESS": f"127.0.0.1:{port}", "METRICS_PORTS": {},
              "BLOB_DIR": str(directories.mktemp("blobs"))}
    seed_demo_accounts(config["DB_URLS"]["gateway"], catalog_dir())
    intake, gateway = (ServiceContainer(cls, config) for cls in (IntakeService, GatewayService))
    replace_dependencies(intake, **(intake_fakes or {"workflow": object()}))
    if gateway_fakes:
        replace_dependencies(gateway, **gateway_fakes)
    try:
        for container in (intake, gateway):
            container.start()
        yield f"http://127.0.0.1:{port}", intake, gateway, config
    finally:
        for container in (intake, gateway):
            container.stop()
        embedded.reset(vhost)
        patched.undo()
