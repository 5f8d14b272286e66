"""The bench's probe (bench/probe/sitecustomize.py) counts what a service process does, without the
service's code knowing: here a plain script on SQLite, as the bench loads it (PYTHONPATH, env)."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

from motcua.config import ROOT

SCRIPT = textwrap.dedent("""
    import os, signal, sys, time
    from sqlalchemy import create_engine, text
    engine = create_engine(f"sqlite:///{sys.argv[1]}/t.db", pool_pre_ping=True)
    with engine.connect() as connection:
        connection.execute(text("CREATE TABLE t (n INTEGER)"))
        connection.execute(text("INSERT INTO t VALUES (1)"))
        connection.commit()
    with engine.connect() as connection:  # the pooled connection again: pre-pinged
        connection.execute(text("SELECT n FROM t"))
        connection.rollback()
    started = time.process_time()
    while time.process_time() - started < 0.3:
        sum(range(1000))
    if os.environ.get("MOTCUA_PROBE_DIR"):
        os.kill(os.getpid(), signal.SIGUSR1)
    print(os.getpid())
""")


def run_probed(tmp_path, **env) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", SCRIPT, str(tmp_path)], capture_output=True, text=True, check=True,
                          env={**os.environ, "PYTHONPATH": str(ROOT / "bench" / "probe"), **env})


def test_the_probe_counts_statements_commits_and_cpu_samples_on_request(tmp_path):
    pid = run_probed(tmp_path, MOTCUA_PROBE_DIR=str(tmp_path), MOTCUA_PROBE_PROFILE="1").stdout.strip()
    figures = json.loads((tmp_path / f"{pid}.json").read_text())
    assert figures["statements"] == {"CREATE": 1, "INSERT": 1, "SELECT": 1}
    assert (figures["database"]["commits"], figures["database"]["rollbacks"]) == (1, 1)
    # listed with the statements by who ended the transaction (here the script itself), not counted among them
    assert figures["statement_texts"]["(COMMIT from <string>:<module>)"] == 1
    assert figures["statement_texts"]["(ROLLBACK from <string>:<module>)"] == 1
    assert figures["database"]["pre_pings"] == 1
    assert 0.25 < figures["sampled_seconds"] < 2
    spin = max(figures["samples_self"], key=figures["samples_self"].get)
    assert spin == "<string>:<module>"  # the busy loop of the script itself


def test_without_its_variable_the_probe_does_nothing(tmp_path):
    run_probed(tmp_path)
    assert [p.name for p in tmp_path.iterdir()] == ["t.db"]
