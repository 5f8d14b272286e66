"""A service outlives its database, on real PostgreSQL and RabbitMQ: connections cut under it (the
server restarted, a proxy dropped them) and its database refusing connections for a while. Faults
are injected only into this test's own databases (`pg_terminate_backend` of their backends,
`ALTER DATABASE … ALLOW_CONNECTIONS`)."""
import contextlib
import time
import uuid
from datetime import datetime, timezone

import eventlet
import pytest
import requests
from nameko.containers import ServiceContainer
from nameko.standalone.rpc import ServiceRpcProxy
from sqlalchemy import String, create_engine, func, select, text
from sqlalchemy.exc import OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column

from motcua.config import SERVICES, PlatformSettings, PoolSize, db_connections_at_most
from motcua.db import Database, ServiceBase, UnitOfWork, make_engine, reliability_tables
from motcua.faults import TransientFailure, is_transient
from motcua.rpc import rpc
from tests import infra
from tests.documents import required_uploads
from tests.e2e.client import APPLICANT, COMMUNE, LAND_STEPS, Api, mails_for


class LedgerBase(ServiceBase, DeclarativeBase):
    pass


outbox, _ = reliability_tables(LedgerBase.metadata)


class Entry(LedgerBase):
    __tablename__ = "entries"
    id: Mapped[int] = mapped_column(primary_key=True)
    code: Mapped[str] = mapped_column(String(40))


class Ledger:
    """A service with a database and an outbox relay, whose calls hold their transaction open for
    `hold` seconds: long enough for the test to cut the connection under it."""

    name = "kit_ledger"
    db = Database(LedgerBase)

    @rpc
    def count(self, hold=0.0):
        """A read that never commits: its connection is rolled back in the worker's teardown."""
        counted = self.db.session.scalar(select(func.count()).select_from(Entry))
        eventlet.sleep(hold)
        return counted

    @rpc
    def record(self, code, hold=0.0):
        self.db.session.add(Entry(code=code))
        self.db.session.flush()
        eventlet.sleep(hold)
        self.db.emit("result_ready", {"dossier_code": code, "agency_code": "000.00.06.H56",
                                      "finished_at": datetime.now(timezone.utc)})
        self.db.commit()


# -- helpers on this test's own databases ------------------------------------------------------------

def database_name(url: str) -> str:
    return url.rsplit("/", 1)[1]


def admin():
    return create_engine(infra.PG_ADMIN_URL, isolation_level="AUTOCOMMIT")


def cut_connections(urls) -> int:
    """Terminate every backend of these (this test's) databases; returns how many there were."""
    engine = admin()
    with engine.connect() as connection:
        cut = connection.execute(text(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
            "WHERE datname = ANY(:names) AND pid <> pg_backend_pid()"),
            {"names": [database_name(url) for url in urls]}).scalar_one()
    engine.dispose()
    return cut


@contextlib.contextmanager
def refusing_connections(*urls: str):
    """The databases refuse new connections, and their open ones are cut, until the block ends."""
    engine = admin()
    with engine.connect() as connection:
        for url in urls:
            connection.exec_driver_sql(f'ALTER DATABASE "{database_name(url)}" ALLOW_CONNECTIONS false')
    try:
        cut_connections(urls)
        yield
    finally:
        with engine.connect() as connection:
            for url in urls:
                connection.exec_driver_sql(f'ALTER DATABASE "{database_name(url)}" ALLOW_CONNECTIONS true')
        engine.dispose()


def alive(container) -> bool:
    return not container._died.ready()


# -- the kit: one service container in this process -----------------------------------------------

@pytest.fixture
def ledger(amqp_uri, postgres):
    urls = infra.create_service_databases(names=("kit_ledger",), migrate=False)
    engine = create_engine(urls["kit_ledger"])
    LedgerBase.metadata.create_all(engine)
    engine.dispose()
    config = {"AMQP_URI": amqp_uri, "DB_URLS": urls, "max_workers": 4}
    container = ServiceContainer(Ledger, config)
    container.start()
    try:
        yield config, container
    finally:
        container.stop()
        infra.drop_databases(urls)


def entries(config) -> list[str]:
    engine = create_engine(config["DB_URLS"]["kit_ledger"])
    with engine.connect() as connection:
        codes = sorted(connection.scalars(select(Entry.code)))
    engine.dispose()
    return codes


def unpublished(config) -> int:
    engine = create_engine(config["DB_URLS"]["kit_ledger"])
    with engine.connect() as connection:
        count = connection.scalar(select(func.count()).select_from(outbox).where(outbox.c.published_at.is_(None)))
    engine.dispose()
    return count


def test_a_connection_cut_before_the_teardown_leaves_the_service_running(ledger):
    """The connection of a read is cut while its transaction is open: the teardown's rollback fails
    (this killed the container), the connection is discarded, the next call connects afresh."""
    config, container = ledger
    with ServiceRpcProxy("kit_ledger", config, timeout=30) as service:
        assert service.count() == 0  # the pool holds a connection now
        answer = service.count.call_async(hold=1.0)
        eventlet.sleep(0.4)
        assert cut_connections(config["DB_URLS"].values()) >= 1
        assert answer.result() == 0  # read before the cut: the answer stands
        eventlet.sleep(0.3)  # the teardown runs after the reply
        assert alive(container)
        service.record("A")  # a stale pooled connection fails at most one call: here none is left
        assert service.count() == 1 and alive(container)


def test_a_connection_cut_before_the_commit_fails_that_call_cleanly_and_the_next_one_reconnects(ledger):
    config, container = ledger
    with ServiceRpcProxy("kit_ledger", config, timeout=30) as service:
        service.record("A")
        answer = service.record.call_async("B", hold=1.0)
        eventlet.sleep(0.4)
        assert cut_connections(config["DB_URLS"].values()) >= 1
        with pytest.raises(TransientFailure, match="kit_ledger cannot answer just now") as failure:
            answer.result()
        assert is_transient(failure.value) and "INSERT" not in str(failure.value)
        assert alive(container)
        service.record("C")
    assert entries(config) == ["A", "C"]
    assert infra.wait_for(lambda: unpublished(config) == 0, timeout=30)  # the relay lived through it
    assert alive(container)


def test_health_is_not_fooled_by_a_pooled_connection_the_server_dropped(ledger):
    """The database restarted while the service was idle: its pooled connection is dead, the database
    is not; the health check says healthy (it asks again on a fresh connection)."""
    config, container = ledger
    [database] = [d for d in container.dependencies if isinstance(d, Database)]
    with ServiceRpcProxy("kit_ledger", config, timeout=30) as service:
        service.count()
        assert infra.wait_for(lambda: database.engine.pool.checkedin() >= 1, timeout=5)  # given back at teardown
        assert cut_connections(config["DB_URLS"].values()) >= 1
        eventlet.sleep(0.3)
        database.ping()
        assert service.count() == 0


def test_a_database_refusing_connections_fails_calls_until_it_accepts_them_again(ledger):
    config, container = ledger
    [database] = [d for d in container.dependencies if isinstance(d, Database)]
    url = config["DB_URLS"]["kit_ledger"]
    with ServiceRpcProxy("kit_ledger", config, timeout=30) as service:
        service.record("before")
        with refusing_connections(url):
            for attempt in range(3):
                with pytest.raises(TransientFailure):
                    service.record(f"during-{attempt}")
                with pytest.raises(OperationalError):
                    database.ping()
                eventlet.sleep(1.0)  # the relay keeps looking for orphans meanwhile, and failing
            assert alive(container)
        database.ping()  # healthy as soon as the database is back: no stale connection reported
        service.record("after")
    assert entries(config) == ["after", "before"]
    assert infra.wait_for(lambda: unpublished(config) == 0, timeout=30)
    assert alive(container)


def test_a_unit_of_work_closes_quietly_over_a_dropped_connection(postgres):
    urls = infra.create_service_databases(names=("kit_uow",), migrate=False)
    engine = make_engine(urls["kit_uow"], PoolSize(2, 0))
    LedgerBase.metadata.create_all(engine)
    try:
        unit = UnitOfWork(lambda: Session(engine), "kit", LedgerBase.metadata)
        unit.session.add(Entry(code="lost"))
        unit.session.flush()
        assert cut_connections(urls.values()) >= 1
        unit.close()  # the rollback fails; the connection is discarded instead of raising
        assert engine.pool.checkedout() == 0
        unit = UnitOfWork(lambda: Session(engine), "kit", LedgerBase.metadata)
        unit.session.add(Entry(code="kept"))
        unit.commit()
        unit.close()
        with engine.connect() as connection:
            assert list(connection.scalars(select(Entry.code))) == ["kept"]
    finally:
        engine.dispose()
        infra.drop_databases(urls)


# -- the connection budget: a refused connection is a failure that passes ----------------------------

def test_a_pool_checkout_timeout_is_transient(postgres):
    urls = infra.create_service_databases(names=("kit_pool",), migrate=False)
    engine = create_engine(urls["kit_pool"], pool_size=1, max_overflow=0, pool_timeout=0.2)
    try:
        with engine.connect():
            with pytest.raises(PoolTimeout) as failure, engine.connect():
                pass
        assert is_transient(failure.value)
    finally:
        engine.dispose()
        infra.drop_databases(urls)


def test_too_many_clients_is_transient(postgres):
    """PostgreSQL refusing a connection over a limit ("too many connections for role", the same
    refusal as "too many clients" at max_connections) is retried later, never treated as poison."""
    urls = infra.create_service_databases(names=("kit_limit",), migrate=False)
    role = f"motcua_test_{uuid.uuid4().hex[:8]}"
    engine = admin()
    with engine.connect() as connection:
        connection.exec_driver_sql(f'CREATE ROLE "{role}" LOGIN CONNECTION LIMIT 1')
    limited = create_engine(urls["kit_limit"].replace("postgres@", f"{role}@"), pool_size=2, max_overflow=0)
    try:
        with limited.connect():
            with pytest.raises(OperationalError, match="too many connections") as failure, limited.connect():
                pass
        assert is_transient(failure.value)
    finally:
        limited.dispose()
        infra.drop_databases(urls)
        with engine.connect() as connection:
            connection.exec_driver_sql(f'DROP ROLE IF EXISTS "{role}"')
        engine.dispose()


# -- the platform: five service processes under load -------------------------------------------------

@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    """The five services as separate processes on this module's own vhost and databases. An event
    failing while a database is away waits at most 4 s between tries here (an hour's growing delays by
    default), so the tests see the platform catch up within seconds of the database's return."""
    infra.require_rabbitmq()
    infra.require_postgres()
    vhost = f"motcua-test-{uuid.uuid4().hex[:10]}"
    infra.create_vhost(vhost)
    urls = infra.create_service_databases()
    services = infra.ServiceProcesses(infra.amqp_uri(vhost), urls, tmp_path_factory.mktemp("db-faults"),
                                      extra_env={"MOTCUA_RETRY_CAP_SECONDS": "4",
                                                 "WORKFLOW_SLA_CHECK_SECONDS": "1"})  # its timer meets the outage
    try:
        services.start_all()
        yield services, urls, vhost
    finally:
        services.stop_all()
        infra.drop_databases(urls)
        infra.delete_vhost(vhost)


def all_alive(services) -> bool:
    return all(process.poll() is None for process in services.processes.values())


def patiently(send, timeout: float = 120) -> requests.Response:
    """`send()` again while it is answered 503 (what the platform asks a client to do, with
    Retry-After) or the connection fails; returns the first other answer."""
    deadline = time.time() + timeout
    while True:
        with contextlib.suppress(requests.RequestException):
            response = send()
            if response.status_code != 503:
                return response
            assert response.headers.get("Retry-After"), response.headers
        assert time.time() < deadline, f"still unavailable after {timeout}s"
        time.sleep(0.3)


def dossier_status(api: Api, code: str) -> str:
    return patiently(lambda: api.call("GET", f"/api/v1/dossiers/{code}", user="admin")).json()["status"]


def carry_through(api: Api, key: str) -> str:
    """One land dossier from submission to its return, as officers would carry it through a platform
    whose database connections are being cut: a 503 is tried again, and an answer lost to one is
    learnt from the dossier or the task list (a repeated command may be refused as done already)."""
    documents = required_uploads("1.012786")
    submitted = patiently(lambda: api.call("POST", "/api/v1/dossiers", headers={"Idempotency-Key": key}, json={
        "procedure_code": "1.012786", "channel": "online", "applicant": APPLICANT, "form": {}, "documents": documents}))
    assert submitted.status_code == 201, submitted.text
    code = submitted.json()["code"]
    received = patiently(lambda: api.call("POST", f"/api/v1/dossiers/{code}/receive",
                                          user=f"receptionist@{COMMUNE}", json={}))
    assert received.status_code == 200 or dossier_status(api, code) != "submitted", received.text
    for agency, role in LAND_STEPS:
        user, seen = f"{role}@{agency}", False
        deadline = time.time() + 120
        while True:
            assert time.time() < deadline, f"step at {agency} of {code} never done"
            tasks = patiently(lambda: api.call("GET", "/api/v1/tasks?status=open", user=user))
            assert tasks.status_code == 200, tasks.text
            task = next((t for t in tasks.json() if t["dossier_code"] == code), None)
            if task is None:
                if seen:  # completed by a call whose answer was lost
                    break
                time.sleep(0.3)
                continue
            seen = True
            if patiently(lambda: api.complete(task, user)).status_code == 200:
                break
    deadline = time.time() + 120
    while dossier_status(api, code) != "result_ready":
        assert time.time() < deadline, f"{code} never ready"
        time.sleep(0.3)
    returned = patiently(lambda: api.call("POST", f"/api/v1/dossiers/{code}/return",
                                          user=f"receptionist@{COMMUNE}", json={"method": "counter"}))
    assert returned.status_code == 200 or dossier_status(api, code) == "returned", returned.text
    return code


class ConnectionPeak:
    """Samples pg_stat_activity: the most connections each of the services' databases had at once."""

    def __init__(self, urls: dict[str, str]):
        self.names = {database_name(url): service for service, url in urls.items()}
        self.peak = {service: 0 for service in urls}
        self.total = 0
        self.engine = admin()

    def sample(self) -> None:
        with self.engine.connect() as connection:
            counts = dict(connection.execute(text(
                "SELECT datname, count(*) FROM pg_stat_activity WHERE datname = ANY(:names) GROUP BY datname"),
                {"names": list(self.names)}).all())
        for name, service in self.names.items():
            self.peak[service] = max(self.peak[service], counts.get(name, 0))
        self.total = max(self.total, sum(counts.values()))

    def __str__(self) -> str:
        return f"peak connections: {self.peak}, all five at once: {self.total}"


def test_services_outlive_their_database_connections_cut_under_load(stack):
    services, urls, vhost = stack
    api = Api(services.base_url)
    for user in ("admin", f"receptionist@{COMMUNE}", *(f"{role}@{agency}" for agency, role in LAND_STEPS)):
        api.token(user)
    peak = ConnectionPeak(urls)
    run = uuid.uuid4().hex[:6]
    pool = eventlet.GreenPool(12)
    load = [pool.spawn(carry_through, api, f"db-faults-{run}-{i}") for i in range(12)]
    cut = 0
    for _ in range(5):  # every service's connections, five times over the load
        for _ in range(8):
            eventlet.sleep(0.25)
            peak.sample()
        cut += cut_connections(urls.values())
        assert all_alive(services), services.logs()[-5000:]
    codes = [dossier.wait() for dossier in load]
    print(peak)
    assert cut >= 10  # faults were injected for real: the services held connections each time
    assert len(set(codes)) == 12 and {dossier_status(api, code) for code in codes} == {"returned"}
    assert all_alive(services)
    assert all(infra.queue_depth(vhost, f"inbox.{s}.dead") == 0 for s in ("intake", "workflow", "notify", "reporting")
               if infra.queue_info(vhost, f"inbox.{s}.dead"))
    assert "exited with error" not in services.logs()
    assert patiently(lambda: requests.get(f"{services.base_url}/health", timeout=10)).status_code == 200
    # Within the budget the pools were sized to (motcua.config): one instance of each service.
    workers = PlatformSettings.from_env().max_workers
    assert peak.total <= sum(db_connections_at_most(service, workers) for service in SERVICES)


def test_services_whose_databases_refuse_connections_are_unhealthy_until_they_are_back(stack):
    """Every service's database refuses connections for ten seconds: each service says so on its
    /health, the gateway answers 503 with Retry-After, no process dies (nor its relay, notify's
    scheduler, workflow's SLA timer, the gateway's audit writer); all healthy again once the
    databases are back, and a dossier goes through its whole life, its e-mails sent."""
    services, urls, _ = stack
    api = Api(services.base_url)
    health_urls = [f"{services.base_url}/health",
                   *(f"http://127.0.0.1:{port}/health" for port in services.metrics_ports.values())]

    def statuses() -> set[int]:
        return {requests.get(url, timeout=10).status_code for url in health_urls}

    assert statuses() == {200}
    with refusing_connections(*urls.values()):
        assert infra.wait_for(lambda: statuses() == {503}, timeout=20), statuses()
        intake_health = requests.get(f"http://127.0.0.1:{services.metrics_ports['intake']}/health", timeout=10)
        assert intake_health.json()["checks"]["database"].startswith("error")
        assert "intake" in requests.get(f"{services.base_url}/health", timeout=10).json()["failed"]
        refused = api.call("POST", "/api/v1/dossiers", headers={"Idempotency-Key": f"db-out-{uuid.uuid4().hex}"},
                           json={"procedure_code": "1.012786", "channel": "online", "applicant": APPLICANT, "form": {},
                                 "documents": required_uploads("1.012786")})
        assert refused.status_code == 503, refused.text
        assert refused.json()["error"]["code"] == "service_unavailable" and int(refused.headers["Retry-After"]) >= 1
        for _ in range(10):  # the outage goes on: the processes stay, their background loops keep trying
            time.sleep(1)
            assert all_alive(services), services.logs()[-5000:]
    assert infra.wait_for(lambda: statuses() == {200}, timeout=30), statuses()
    code = carry_through(api, f"db-back-{uuid.uuid4().hex}")
    assert dossier_status(api, code) == "returned"
    mailbox = services.log_dir / "var" / "mailbox.mbox"
    assert infra.wait_for(lambda: len(mails_for(mailbox, code)) == 3, timeout=60)  # submitted, received, ready
    assert all_alive(services) and "exited with error" not in services.logs()
