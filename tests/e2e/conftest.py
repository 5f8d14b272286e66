import pytest

from tests import infra


@pytest.fixture
def platform(amqp_uri, pg_urls, tmp_path):
    """The five services as separate processes on real RabbitMQ and PostgreSQL."""
    services = infra.ServiceProcesses(amqp_uri, pg_urls, tmp_path)
    services.start_all()
    yield services
    services.stop_all()


@pytest.fixture
def embedded(tmp_path):
    """`make run`'s embedded platform in a subprocess (own ports, files under tmp_path): (base URL, tmp_path)."""
    with infra.embedded_platform(tmp_path) as base:
        yield base, tmp_path
