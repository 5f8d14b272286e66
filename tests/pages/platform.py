"""`make run`'s embedded platform in a subprocess, for the pages' tests and the browser journey."""
from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import time
from pathlib import Path

import requests

from motcua.config import ROOT, SERVICES
from tests import infra


@contextlib.contextmanager
def embedded_platform(var_dir: Path):
    """Yields the base URL once /health answers 200; stops the platform after."""
    port = infra.free_port()
    env = {**os.environ, "MOTCUA_VAR_DIR": str(var_dir), "GATEWAY_ADDRESS": f"127.0.0.1:{port}", "AMQP_URI": "",
           **{f"{s.upper()}_DB_URL": "" for s in SERVICES},
           **{f"{s.upper()}_METRICS_PORT": str(infra.free_port()) for s in SERVICES if s != "gateway"}}
    log_path = var_dir / "run.log"
    with open(log_path, "wb") as log:
        process = subprocess.Popen([sys.executable, "-m", "motcua.run", "--embedded"], env=env, cwd=ROOT,
                                   stdout=log, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.time() + 60
        while True:
            assert process.poll() is None, log_path.read_text()
            with contextlib.suppress(requests.RequestException):
                if requests.get(f"{base}/health", timeout=2).status_code == 200:
                    break
            assert time.time() < deadline, "the platform did not start:\n" + log_path.read_text()
            time.sleep(0.3)
        yield base
    finally:
        process.terminate()
        process.wait(timeout=30)
