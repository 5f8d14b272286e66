"""Safe to start (issue 16 §3): one line for a port in use, no second instance on a shared port, metrics
where they are configured, nothing exported that no one reads (`_created`, a disabled feature's gauges)."""
import socket
import subprocess
import sys

import pytest
from nameko.containers import ServiceContainer
from prometheus_client import generate_latest

from motcua import config as motcua_config
from motcua.config import ROOT, gateway_metrics_port, metrics_host
from motcua.metrics import Metrics, ServiceMetrics, metrics_for
from motcua.run import listening_ports, refuse_ports_in_use
from services.reporting.service import ReportingService
from tests.infra import VERIFYING


@pytest.fixture
def held_port():
    """A port another process holds, as a second `make run` would find it."""
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        yield holder.getsockname()[1]


def test_no_created_series():
    metrics = ServiceMetrics("intake")
    metrics.calls.labels("intake", "submit", "success").inc()
    metrics.latency.labels("intake", "submit", "success").observe(0.01)
    text = generate_latest(metrics.registry).decode()
    assert "motcua_entrypoint_calls_total" in text and "_created" not in text


def test_a_port_in_use_stops_the_start_with_one_line_naming_its_variable(held_port):
    config = {"WEB_SERVER_ADDRESS": "127.0.0.1:0", "METRICS_HOST": "127.0.0.1",
              "METRICS_PORTS": {"workflow": held_port}}
    assert listening_ports(config) == [("GATEWAY_ADDRESS", "127.0.0.1", 0),
                                       ("WORKFLOW_METRICS_PORT", "127.0.0.1", held_port)]
    with pytest.raises(SystemExit) as stopped:
        refuse_ports_in_use(config)
    message = str(stopped.value)
    assert "\n" not in message and f"port {held_port}" in message and "WORKFLOW_METRICS_PORT" in message


def test_make_run_says_so_in_one_line_without_a_traceback(held_port, tmp_path):
    """The real `python -m motcua.run --embedded`, as `make run` starts it, on a gateway port in use."""
    env = {"PATH": "/usr/bin:/bin", "GATEWAY_ADDRESS": f"127.0.0.1:{held_port}", "MOTCUA_VAR_DIR": str(tmp_path),
           "PSYCOPG_WAIT_FUNC": "wait_select"}
    done = subprocess.run([sys.executable, "-m", "motcua.run", "--embedded"], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 1
    [line] = done.stderr.strip().splitlines()
    assert f"port {held_port}" in line and "GATEWAY_ADDRESS" in line
    assert not list(tmp_path.glob("*.db"))  # stopped before migrating anything


def test_the_metrics_port_is_never_shared_with_a_second_instance(held_port):
    """eventlet's listen sets SO_REUSEPORT by default: two processes would then split the scrapes."""
    container = ServiceContainer(ReportingService, {"AMQP_URI": "memory://", "METRICS_HOST": "127.0.0.1",
                                                     "METRICS_PORTS": {"reporting": held_port}})
    provider = next(d for d in container.dependencies if isinstance(d, Metrics))
    with pytest.raises(OSError):
        provider.start()


def test_the_metrics_port_binds_where_configured():
    container = ServiceContainer(ReportingService, {"AMQP_URI": "memory://", "METRICS_HOST": "127.0.0.1",
                                                     "METRICS_PORTS": {"reporting": 0}})
    provider = next(d for d in container.dependencies if isinstance(d, Metrics))
    provider.start()
    provider.stop()
    assert provider.address[0] == "127.0.0.1" and provider.address[1] > 0


def test_metrics_follow_the_gateway_host_and_production_keeps_them_off_the_public_port(monkeypatch):
    for name in ("MOTCUA_METRICS_HOST", "GATEWAY_METRICS_PORT", "MOTCUA_ENV"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("GATEWAY_ADDRESS", "127.0.0.1:8000")
    assert metrics_host() == "127.0.0.1"
    monkeypatch.setenv("MOTCUA_METRICS_HOST", "10.0.0.5")
    assert metrics_host() == "10.0.0.5"
    assert gateway_metrics_port() is None  # development: /metrics on the gateway's port, as before
    monkeypatch.setenv("MOTCUA_ENV", "production")
    assert gateway_metrics_port() == motcua_config.GATEWAY_METRICS_PORT


def test_national_portal_gauges_are_not_exported_while_sync_is_off(monkeypatch, tmp_path):
    monkeypatch.delenv("DVCQG_URL", raising=False)
    container = ServiceContainer(ReportingService, {
        "AMQP_URI": "memory://", "DB_URLS": {"reporting": f"sqlite:///{tmp_path / 'r.db'}"}, "METRICS_PORTS": {},
        "TRACKING_KEY": "k" * 64, "TIME_ZONE": "Asia/Ho_Chi_Minh", "CATALOG_DIR": None, **VERIFYING})
    container.dependencies.all.setup()
    try:
        text = generate_latest(metrics_for(container).registry).decode()
    finally:
        container.dependencies.all.stop()
    assert "motcua_dvcqg_pushes" not in text


def make_dry_run(target: str, tmp_path) -> str:
    """The commands `make <target>` would run on a fresh clone (no .venv yet): `make -n`."""
    done = subprocess.run(["make", "-n", "-C", str(ROOT), f"VENV={tmp_path / 'venv'}", target],
                          capture_output=True, text=True, check=True)
    return done.stdout


def test_make_run_installs_only_what_running_needs_and_make_test_adds_the_test_extras(tmp_path):
    run = make_dry_run("run", tmp_path)
    assert "-m venv" in run and "pip install" in run and "-e ." in run and "[test]" not in run
    assert "motcua.run --embedded" in run
    test = make_dry_run("test", tmp_path)
    assert '-e ".[test]"' in test
    assert "ensure-services.sh rabbitmq postgresql postgresql-connections chromium promtool" in test
    assert test.index("ensure-services.sh") < test.index("-m tests.lanes")


def test_ci_is_one_call_of_make_test():
    commands = [line for line in (ROOT / ".ci" / "run").read_text().splitlines()
                if line.strip() and not line.startswith("#") and not line.startswith(("set ", "cd "))]
    assert commands == ["exec make test"]
