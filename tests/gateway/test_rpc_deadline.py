"""RPC requests go out without publisher confirms (transient, one round trip less): a request that
reaches no service is still answered, 503 at the call's deadline."""
from __future__ import annotations

import time
import uuid

import pytest
import requests
from nameko.containers import ServiceContainer

import motcua.embedded
from motcua.config import nameko_config
from services.gateway.service import GatewayService
from tests.infra import free_port, migrated_sqlite_urls


@pytest.fixture(params=["embedded", pytest.param("rabbitmq", marks=pytest.mark.integration)])
def bus(request):
    if request.param == "rabbitmq":
        yield request.getfixturevalue("amqp_uri")
        return
    motcua.embedded.install()
    vhost = f"deadline-{uuid.uuid4().hex[:8]}"
    yield f"embedded:///{vhost}"
    motcua.embedded.reset(vhost)


def test_a_call_to_a_service_that_is_not_running_is_503_by_its_deadline(tmp_path, bus):
    port = free_port()
    config = {**nameko_config(bus), "DB_URLS": migrated_sqlite_urls(tmp_path),
              "WEB_SERVER_ADDRESS": f"127.0.0.1:{port}", "METRICS_PORTS": {}, "RPC_TIMEOUT": 1}
    container = ServiceContainer(GatewayService, config)  # no intake anywhere on this bus
    container.start()
    try:
        started = time.monotonic()
        response = requests.get(f"http://127.0.0.1:{port}/api/v1/agencies", timeout=10)
        assert time.monotonic() - started < 5  # the embedded bus knows at once; RabbitMQ, at the deadline
        assert response.status_code == 503 and response.json()["error"]["code"] == "service_unavailable"
    finally:
        container.stop()


@pytest.mark.integration
def test_after_a_call_timed_out_requests_go_out_on_a_new_connection(amqp_uri):
    """A pooled channel that swallows requests (seen after a broker node's loss) is not used again: the
    pool behind the publisher is closed and the next request opens its own."""
    from kombu import Connection
    from kombu.pools import connections, producers
    from kombu.utils.collections import eqhash
    from nameko.amqp.publish import Publisher

    from motcua.rpc import renew_connections

    publisher = Publisher(amqp_uri, use_confirms=False)
    publisher.publish(b"first", routing_key="nowhere")
    key = eqhash(Connection(amqp_uri, transport_options={**publisher.transport_options, "confirm_publish": False}))
    pool = dict.get(producers, key)  # the pools are keyed by the connection's eqhash
    assert pool is not None and key in connections  # the request went out through these pools
    with pool.acquire() as producer:
        channel = producer.channel
    renew_connections(publisher)
    assert key not in producers and key not in connections
    publisher.publish(b"second", routing_key="nowhere")  # a new pool, a new connection and channel
    with dict.get(producers, key).acquire() as producer:
        assert producer.channel is not channel
    renew_connections(publisher)
