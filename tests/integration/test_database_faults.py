"""A service outlives its database, on real PostgreSQL and RabbitMQ: connections cut under it (the
server restarted, a proxy dropped them) and its database refusing connections for a while. Faults
are injected only into this test's own databases (`pg_terminate_backend` of their backends,
`ALTER DATABASE … ALLOW_CONNECTIONS`)."""
import contextlib
import uuid
from datetime import datetime, timezone

import eventlet
import pytest
from nameko.containers import ServiceContainer
from nameko.standalone.rpc import ServiceRpcProxy
from sqlalchemy import String, create_engine, func, select, text
from sqlalchemy.exc import OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column

from motcua.config import PoolSize
from motcua.db import Database, ServiceBase, UnitOfWork, make_engine, reliability_tables
from motcua.faults import TransientFailure, is_transient
from motcua.rpc import rpc
from tests import infra


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
def refusing_connections(url: str):
    """The database refuses new connections, and its open ones are cut, until the block ends."""
    engine = admin()
    with engine.connect() as connection:
        connection.exec_driver_sql(f'ALTER DATABASE "{database_name(url)}" ALLOW_CONNECTIONS false')
    try:
        cut_connections([url])
        yield
    finally:
        with engine.connect() as connection:
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
