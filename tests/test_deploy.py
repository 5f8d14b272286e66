"""compose.yaml and the Prometheus config describe the stack the code runs (Docker is not on CI
machines, so the files are checked by reading them)."""
import yaml

from motcua.config import DEFAULT_METRICS_PORTS, ROOT, SERVICES


def load(path):
    return yaml.safe_load((ROOT / path).read_text())


def test_compose_runs_every_service_on_rabbitmq_and_its_own_database():
    compose = load("compose.yaml")["services"]
    assert {"rabbitmq", "postgres", "prometheus", "migrate", *SERVICES} <= set(compose)
    databases = set()
    for service in SERVICES:
        spec = compose[service]
        assert spec["command"] == [service]
        assert "healthcheck" in spec, f"{service} has no healthcheck"
        env = spec["environment"]
        assert env["AMQP_URI"].startswith("amqp://")
        databases.add(env[f"{service.upper()}_DB_URL"].rsplit("/", 1)[1])
    assert len(databases) == len(SERVICES)  # one database per service, never shared
    init = (ROOT / "deploy" / "postgres-init.sql").read_text()
    assert all(f"CREATE DATABASE {name};" in init for name in databases)
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
