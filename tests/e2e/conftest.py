import os
import subprocess
import sys
import time

import pytest
import requests

from motcua.config import ROOT
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
    port = infra.free_port()
    env = {**os.environ, "MOTCUA_VAR_DIR": str(tmp_path), "GATEWAY_ADDRESS": f"127.0.0.1:{port}",
           "AMQP_URI": "", **{f"{s.upper()}_DB_URL": "" for s in ("gateway", "intake", "workflow", "notify", "reporting")},
           **{f"{s.upper()}_METRICS_PORT": str(infra.free_port()) for s in ("intake", "workflow", "notify", "reporting")}}
    log = open(tmp_path / "run.log", "wb")
    process = subprocess.Popen([sys.executable, "-m", "motcua.run", "--embedded"], env=env, cwd=ROOT,
                               stdout=log, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    deadline = time.time() + 60
    while time.time() < deadline:
        assert process.poll() is None, (tmp_path / "run.log").read_text()
        try:
            if requests.get(f"{base}/health", timeout=2).status_code == 200:
                break
        except requests.RequestException:
            pass
        time.sleep(0.3)
    yield base, tmp_path
    process.terminate()
    process.wait(timeout=30)
