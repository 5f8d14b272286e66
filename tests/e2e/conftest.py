import pytest

from tests import infra


@pytest.fixture
def platform(amqp_uri, pg_urls, tmp_path):
    """The five services as separate processes on real RabbitMQ and PostgreSQL."""
    services = infra.ServiceProcesses(amqp_uri, pg_urls, tmp_path)
    services.start_all()
    yield services
    services.stop_all()
