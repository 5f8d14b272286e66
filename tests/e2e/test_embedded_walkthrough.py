"""`make run`'s embedded platform answers the README's curl walk-through (docs/walkthrough.sh)."""
import mailbox
import os
import subprocess
import sys
import time

import pytest
import requests

from motcua.config import ROOT
from tests import infra
from tests.e2e.client import APPLICANT

pytestmark = pytest.mark.e2e


@pytest.fixture
def embedded(tmp_path):
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


def test_readme_walkthrough_takes_a_dossier_to_returned(embedded):
    base, var = embedded
    result = subprocess.run(["bash", str(ROOT / "docs" / "walkthrough.sh")], env={**os.environ, "BASE_URL": base},
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "4. returned" in result.stdout
    assert "5. tracking says: returned" in result.stdout
    assert '"early": 1' in result.stdout  # the report counts it, resolved before its due date
    assert len(mailbox.mbox(str(var / "mailbox.mbox"))) == 2  # "received" and "result ready"
    run_log = (var / "run.log").read_text()
    assert "Motcua is serving on http://" in run_log
    for secret in (APPLICANT["id_number"], APPLICANT["phone"], "binh.tran@example.vn", "Hàng Bông"):
        assert secret not in run_log, "personal data in a log line"
