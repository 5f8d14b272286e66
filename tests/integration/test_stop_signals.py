"""Stopping, as operators and process managers stop a process (issue 11, problem 7): the first SIGTERM or
Ctrl-C stops it gracefully within MOTCUA_STOP_GRACE_SECONDS, a second one while stopping ends it at
once. Real processes, real signals: `make run`'s embedded platform, a service process on RabbitMQ and
PostgreSQL, and the `--services` supervisor with its children.

Before the fix, two SIGINTs 50 ms or 1 s apart (or two SIGTERMs) stopped nameko's timers twice
("Trying to re-send() an already-triggered event") and the process never exited."""
import contextlib
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests

from motcua.config import ROOT
from tests import infra

GRACE = 15  # MOTCUA_STOP_GRACE_SECONDS of the processes under test
STOP_ENV = {"MOTCUA_STOP_GRACE_SECONDS": str(GRACE)}
# (signal, seconds between the two): Ctrl-C pressed twice quickly, Ctrl-C pressed again a second
# later (the graceful stop takes a few seconds, so both arrive while stopping), a process manager's
# SIGTERM repeated.
TWICE = [(signal.SIGINT, 0.05), (signal.SIGINT, 1.0), (signal.SIGTERM, 0.05)]
TWICE_IDS = ["two SIGINTs 50 ms apart", "two SIGINTs 1 s apart", "two SIGTERMs"]


def signal_twice(process: subprocess.Popen, signum: int, gap: float, log_path: Path) -> tuple[float, int]:
    """Send `signum` twice, `gap` seconds apart; the seconds until the process exited, and its status.
    A process still running after its grace period (and some margin) is killed and fails the test."""
    started = time.monotonic()
    process.send_signal(signum)
    time.sleep(gap)
    process.send_signal(signum)
    try:
        process.wait(timeout=GRACE + 10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=10)
        pytest.fail(f"still running {GRACE + 10} s after two {signal.Signals(signum).name}s:\n"
                    + log_path.read_text(errors="replace")[-4000:])
    return time.monotonic() - started, process.returncode


def assert_stopped_at_once(elapsed: float, status: int, signum: int, log: str) -> None:
    # 128 + signal: the second signal ended the stop; 0: the graceful stop had finished before it came.
    assert status in (128 + signum, 0), f"exit status {status}\n{log[-4000:]}"
    assert elapsed < GRACE, f"{elapsed:.1f} s to exit, beyond the {GRACE} s grace period"
    assert "re-send" not in log and "Traceback" not in log, log[-4000:]


@pytest.mark.parametrize("signum, gap", TWICE, ids=TWICE_IDS)
def test_a_second_signal_ends_the_embedded_platform_at_once(tmp_path, signum, gap):
    with infra.embedded_platform_process(tmp_path, STOP_ENV) as (process, _base):
        elapsed, status = signal_twice(process, signum, gap, tmp_path / "run.log")
    log = (tmp_path / "run.log").read_text(errors="replace")
    assert_stopped_at_once(elapsed, status, signum, log)
    if gap < 1:  # a graceful stop of the embedded platform takes seconds, never 50 ms
        assert status == 128 + signum and f"{signal.Signals(signum).name} while stopping: stopping now" in log
        assert elapsed < 5


def test_a_stop_that_outlasts_its_grace_period_ends_the_process_with_status_1(tmp_path):
    # A graceful stop of the embedded platform takes seconds; a grace of 50 ms runs out first.
    with infra.embedded_platform_process(tmp_path, {"MOTCUA_STOP_GRACE_SECONDS": "0.05"}) as (process, _base):
        started = time.monotonic()
        process.send_signal(signal.SIGTERM)
        status = process.wait(timeout=10)
    assert status == 1 and time.monotonic() - started < 5
    assert "still stopping 0.05 s after SIGTERM: stopping now" in (tmp_path / "run.log").read_text()


@pytest.fixture
def workflow_process(amqp_uri, postgres, tmp_path):
    """Workflow (it has a timer: the SLA check) in its own process on a fresh vhost and database,
    as production runs it; yields it once its /health answers 200."""
    urls = infra.create_service_databases(names=("workflow",))
    services = infra.ServiceProcesses(amqp_uri, urls, tmp_path, extra_env=STOP_ENV)
    try:
        services.start("workflow")
        health = f"http://127.0.0.1:{services.metrics_ports['workflow']}/health"
        assert infra.wait_for(lambda: _answers_200(health), timeout=60), services.logs()
        yield services.processes["workflow"]
    finally:
        services.stop_all()
        infra.drop_databases(urls)


def _answers_200(url: str) -> bool:
    with contextlib.suppress(requests.RequestException):
        return requests.get(url, timeout=2).status_code == 200
    return False


@pytest.mark.parametrize("signum, gap", TWICE, ids=TWICE_IDS)
def test_a_second_signal_ends_a_service_process_at_once(workflow_process, tmp_path, signum, gap):
    elapsed, status = signal_twice(workflow_process, signum, gap, tmp_path / "workflow.log")
    assert_stopped_at_once(elapsed, status, signum, (tmp_path / "workflow.log").read_text(errors="replace"))


def test_one_signal_stops_a_service_process_gracefully(workflow_process, tmp_path):
    started = time.monotonic()
    workflow_process.send_signal(signal.SIGTERM)
    status = workflow_process.wait(timeout=GRACE + 10)
    log = (tmp_path / "workflow.log").read_text(errors="replace")
    assert status == 0 and time.monotonic() - started < GRACE, log[-4000:]
    assert "stopping now" not in log and "Traceback" not in log


@pytest.fixture
def supervisor(amqp_uri, pg_urls, tmp_path):
    """`make run-services`: the supervisor and its children (the five services and the example
    worker, each in its own process); yields the supervisor, its children's pids and its log once
    the gateway's /health answers 200."""
    env = infra.ServiceProcesses(amqp_uri, pg_urls, tmp_path, extra_env=STOP_ENV).env
    log_path = tmp_path / "supervisor.log"
    with open(log_path, "wb") as log:
        process = subprocess.Popen([sys.executable, "-m", "motcua.run", "--services"], env=env, cwd=ROOT,
                                   stdout=log, stderr=subprocess.STDOUT)
    try:
        health = f"http://{env['GATEWAY_ADDRESS']}/health"
        assert infra.wait_for(lambda: process.poll() is None and _answers_200(health), timeout=90), \
            log_path.read_text(errors="replace")
        children = [int(pid) for pid in re.findall(r"\(pid (\d+)\)", log_path.read_text())]
        assert len(children) == 6
        yield process, children, log_path
    finally:
        infra.stop_process(process, log_path, timeout=GRACE + 10)


def _running(pid: int) -> bool:
    """Whether `pid` still runs (an orphan's zombie, not yet reaped, does not)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return False
    return state not in ("Z", "X")


# Ctrl-C (the terminal sends it to the supervisor alone: its children have their own sessions), and a
# process manager's SIGTERM (which used to end the supervisor and leave its children running).
@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_the_supervisor_passes_one_stop_to_its_children_and_restarts_none(supervisor, signum):
    process, children, log_path = supervisor
    started = time.monotonic()
    process.send_signal(signum)
    status = process.wait(timeout=GRACE + 10)
    log = log_path.read_text(errors="replace")
    assert status == 0 and time.monotonic() - started < GRACE, log[-4000:]
    assert not [pid for pid in children if _running(pid)], log[-4000:]
    assert "restarting" not in log and "stopping now" not in log and "Traceback" not in log, log[-4000:]


def test_a_second_signal_ends_the_supervisor_and_its_children_at_once(supervisor):
    process, children, log_path = supervisor
    elapsed, status = signal_twice(process, signal.SIGINT, 0.05, log_path)
    log = log_path.read_text(errors="replace")
    assert status == 128 + signal.SIGINT and elapsed < 5, log[-4000:]
    assert infra.wait_for(lambda: not [pid for pid in children if _running(pid)], timeout=5), log[-4000:]
    assert "re-send" not in log and "restarting" not in log
