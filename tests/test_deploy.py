"""compose.yaml and the Prometheus config describe the stack the code runs (Docker is not on CI
machines, so the files are checked by reading them)."""
import json
import pkgutil
from urllib.parse import urlparse

import yaml

from motcua import broker_permissions
from motcua.config import DEFAULT_METRICS_PORTS, ROOT, SERVICES


def load(path):
    return yaml.safe_load((ROOT / path).read_text())


def test_compose_runs_every_service_on_rabbitmq_and_its_own_database():
    compose = load("compose.yaml")["services"]
    assert {"rabbitmq", "postgres", "prometheus", "migrate", *SERVICES} <= set(compose)
    init = (ROOT / "deploy" / "postgres-init.sql").read_text()
    for service in SERVICES:
        spec = compose[service]
        assert spec["command"] == [service]
        assert "healthcheck" in spec, f"{service} has no healthcheck"
        env = spec["environment"]
        # its own database, as its own user, and no other service's URL
        assert [name for name in env if name.endswith("_DB_URL")] == [f"{service.upper()}_DB_URL"]
        url = urlparse(env[f"{service.upper()}_DB_URL"])
        assert url.username == url.path[1:] == f"motcua_{service}"
        assert f"'{url.username}'" in init and url.password == url.username  # a role and database of that name
    assert "rabbitmq_prometheus" in (ROOT / "deploy" / "rabbitmq-enabled-plugins").read_text()
    assert "rabbitmq_management" in (ROOT / "deploy" / "rabbitmq-enabled-plugins").read_text()


def test_healthchecks_and_prometheus_use_the_services_metrics_ports():
    compose = load("compose.yaml")["services"]
    targets = {t for job in load("deploy/prometheus/prometheus.yml")["scrape_configs"]
               for group in job["static_configs"] for t in group["targets"]}
    for service, port in DEFAULT_METRICS_PORTS.items():
        assert f"{service}:{port}" in targets
        assert f"127.0.0.1:{port}/health" in " ".join(compose[service]["healthcheck"]["test"])
    assert "gateway:8000" in targets


def test_compose_runs_the_example_agency_worker():
    worker = load("compose.yaml")["services"]["tax-office-worker"]
    command = " ".join(worker["entrypoint"])
    assert "--worker workers.tax_office:TaxOfficeWorker" in command
    assert "python -m motcua.cli tokens system 000.00.18.H56" in command
    assert "COPY workers ./workers" in (ROOT / "deploy" / "Dockerfile").read_text()


def test_each_process_connects_to_the_broker_as_its_own_user_from_the_loaded_definitions():
    compose = load("compose.yaml")["services"]
    definitions = json.loads((ROOT / "deploy" / "rabbitmq" / "definitions.json").read_text())
    hashes = {user["name"]: user["password_hash"] for user in definitions["users"]}
    worker = broker_permissions.uses_of(pkgutil.resolve_name(broker_permissions.EXAMPLE_WORKERS[0])).name
    for name, principal in [(s, s) for s in SERVICES] + [("tax-office-worker", worker)]:
        uri = urlparse(compose[name]["environment"]["AMQP_URI"])
        assert uri.username == broker_permissions.USER_PREFIX + principal
        assert broker_permissions.password_hash(uri.username, uri.password) == hashes[uri.username]
    rabbitmq = compose["rabbitmq"]
    assert "./deploy/rabbitmq/definitions.json:/etc/rabbitmq/definitions.json:ro" in rabbitmq["volumes"]
    assert "load_definitions = /etc/rabbitmq/definitions.json" in (ROOT / "deploy" / "rabbitmq" / "rabbitmq.conf").read_text()
