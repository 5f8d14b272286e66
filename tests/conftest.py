"""Test set-up shared by every layer: eventlet first, then real RabbitMQ/PostgreSQL fixtures."""
import os

os.environ.setdefault("PSYCOPG_WAIT_FUNC", "wait_select")

import warnings  # noqa: E402

with warnings.catch_warnings():
    warnings.simplefilter("ignore")  # eventlet announces its bug-fix-only mode; STACK.md knows
    import eventlet

eventlet.monkey_patch()

import uuid  # noqa: E402

import pytest  # noqa: E402

from tests import infra  # noqa: E402


@pytest.fixture
def web_session():
    """Overrides nameko's fixture, which imports a function Werkzeug 3 removed (STACK.md trap 6)."""
    pytest.fail("use tests.infra.http helpers, not nameko's web_session")


@pytest.fixture(scope="session")
def rabbitmq():
    infra.require_rabbitmq()
    return infra.RABBIT_HOST


@pytest.fixture
def amqp_uri(rabbitmq):
    """A fresh RabbitMQ vhost for one test, deleted after it."""
    vhost = f"motcua-test-{uuid.uuid4().hex[:10]}"
    infra.create_vhost(vhost)
    yield infra.amqp_uri(vhost)
    infra.delete_vhost(vhost)


@pytest.fixture
def least_privilege_broker(amqp_uri):
    """The fresh vhost of `amqp_uri` with a broker user per service and worker holding only the permissions
    `motcua.broker_permissions` gives it (users named uniquely, deleted after the test)."""
    from motcua import broker_permissions

    broker = infra.LeastPrivilegeBroker(amqp_uri.rsplit("/", 1)[1], f"test-{uuid.uuid4().hex[:8]}-")
    broker_permissions.apply(broker.grants, infra.RABBIT_MGMT, infra.RABBIT_AUTH, broker.vhost, broker.passwords)
    yield broker
    broker.delete_users()


@pytest.fixture(scope="session")
def postgres():
    infra.require_postgres()


@pytest.fixture
def pg_urls(postgres):
    """A fresh, migrated PostgreSQL database for each of the five services."""
    urls = infra.create_service_databases()
    yield urls
    infra.drop_databases(urls)


@pytest.fixture
def sqlite_urls(tmp_path):
    """Migrated SQLite files for each service, for fast service tests without PostgreSQL."""
    return infra.migrated_sqlite_urls(tmp_path)


def pytest_collection_modifyitems(items):
    """Mark by folder, so `make unit` can leave out what needs RabbitMQ and PostgreSQL."""
    for item in items:
        path = str(item.fspath)
        if "/tests/integration/" in path:
            item.add_marker(pytest.mark.integration)
        elif "/tests/e2e/" in path:
            item.add_marker(pytest.mark.e2e)


@pytest.fixture(params=["sqlite", "postgresql"])
def empty_database(request, tmp_path):
    """`empty_database(service)`: the URL of an empty database on SQLite, then (the test again) on
    PostgreSQL; for a migration test that starts from an older revision. Dropped after the test."""
    created = []

    def make(service: str) -> str:
        if request.param == "sqlite":
            return f"sqlite:///{tmp_path / (service + '-empty.db')}"
        request.getfixturevalue("postgres")
        created.append(infra.create_service_databases(names=(service,), migrate=False))
        return created[-1][service]

    yield make
    for urls in created:
        infra.drop_databases(urls)
