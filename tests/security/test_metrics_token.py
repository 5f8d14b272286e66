"""Open metrics: production refuses to start without a scrape token; with one, /metrics answers only a
scrape that carries it (services' metrics ports and the gateway alike); /health stays open for probes."""
import pytest
import requests
from nameko.containers import ServiceContainer
from nameko.testing.utils import get_extension

from motcua import embedded, keys
from motcua.config import METRICS_TOKEN, metrics_token
from motcua.metrics import Metrics, scrape_allowed
from tests.infra import free_port, migrated_sqlite_urls
from tests.security.conftest import mocked_gateway


class Scraped:
    """A service with nothing but its metrics port."""

    name = "scraped"
    metrics = Metrics()


def test_production_refuses_open_metrics(monkeypatch):
    monkeypatch.setenv("MOTCUA_ENV", "production")
    monkeypatch.delenv(METRICS_TOKEN, raising=False)
    with pytest.raises(SystemExit, match="MOTCUA_METRICS_TOKEN must be set"):
        metrics_token()
    monkeypatch.setenv(METRICS_TOKEN, "prometheus")
    with pytest.raises(SystemExit, match="weaker than 256"):
        metrics_token()
    private = keys.new_key()
    monkeypatch.setenv(METRICS_TOKEN, private)
    assert metrics_token() == private


def test_development_metrics_are_open_unless_a_token_is_set(monkeypatch):
    monkeypatch.delenv("MOTCUA_ENV", raising=False)
    monkeypatch.delenv(METRICS_TOKEN, raising=False)
    assert metrics_token() is None
    assert scrape_allowed({"METRICS_TOKEN": None}, None)
    token = keys.new_key()
    assert scrape_allowed({"METRICS_TOKEN": token}, f"Bearer {token}")
    for wrong in (None, "", token, f"Basic {token}", f"Bearer {token}x", "Bearer "):
        assert not scrape_allowed({"METRICS_TOKEN": token}, wrong)


def test_a_services_metrics_port_answers_only_the_scrape_token():
    token, port = keys.new_key(), free_port()
    embedded.install()
    config = {"AMQP_URI": "embedded:///metrics-token", "METRICS_PORTS": {"scraped": port},
              "METRICS_TOKEN": token, "SERIALIZER": "json"}
    container = ServiceContainer(Scraped, config)
    metrics = get_extension(container, Metrics)
    metrics.setup()
    metrics.start()
    try:
        url = f"http://127.0.0.1:{port}"
        refused = requests.get(f"{url}/metrics", timeout=5)
        assert refused.status_code == 401 and "motcua_" not in refused.text
        assert requests.get(f"{url}/metrics", headers={"Authorization": "Bearer wrong"}, timeout=5).status_code == 401
        scraped = requests.get(f"{url}/metrics", headers={"Authorization": f"Bearer {token}"}, timeout=5)
        assert scraped.status_code == 200 and "motcua_" in scraped.text
    finally:
        metrics.stop()
        embedded.reset("metrics-token")


def test_the_gateways_metrics_answer_only_the_scrape_token(tmp_path):
    token = keys.new_key()
    embedded.install()
    gateway = mocked_gateway(migrated_sqlite_urls(tmp_path), METRICS_TOKEN=token)
    try:
        refused = requests.get(f"{gateway.url}/metrics", timeout=5)
        assert refused.status_code == 401 and refused.json()["error"]["code"] == "unauthorized"
        scraped = requests.get(f"{gateway.url}/metrics", headers={"Authorization": f"Bearer {token}"}, timeout=5)
        assert scraped.status_code == 200 and "motcua_" in scraped.text
        assert requests.get(f"{gateway.url}/health", timeout=5).status_code in (200, 503)  # probes need no token
    finally:
        gateway.container.stop()


def test_production_serves_the_gateways_metrics_on_its_metrics_port_only(tmp_path):
    """PUBLIC_METRICS off (production): the public port answers /metrics 404; its metrics port serves them."""
    token, port = keys.new_key(), free_port()
    embedded.install()
    gateway = mocked_gateway(migrated_sqlite_urls(tmp_path), METRICS_TOKEN=token, PUBLIC_METRICS=False,
                             METRICS_HOST="127.0.0.1", METRICS_PORTS={"gateway": port})
    try:
        bearer = {"Authorization": f"Bearer {token}"}
        assert requests.get(f"{gateway.url}/metrics", headers=bearer, timeout=5).status_code == 404
        scraped = requests.get(f"http://127.0.0.1:{port}/metrics", headers=bearer, timeout=5)
        assert scraped.status_code == 200 and "motcua_http_requests_total" in scraped.text
    finally:
        gateway.container.stop()
