"""`make test`: the suite in two pytest processes side by side (lanes), each given whole test files.

Most of the suite's time is waiting: for a platform's processes to start, a fault's outage to end, a
browser's session to expire, a broker node to boot. One process waits for each in turn (≈ 18 minutes on
2 cores, 1,578 tests); two lanes wait at once. Files are dealt to the lanes longest first by the seconds
they took (`SECONDS`, from `--durations`; a file not listed counts one second), so the lanes end
together. The lanes share the machine's RabbitMQ and PostgreSQL as any two suites may: every test has
its own vhost, databases and ports (`tests.infra.free_port` splits the port range by `MOTCUA_TEST_LANE`),
and no test stops the shared broker or database (a test that stops a broker starts a node of its own).

`python -m tests.lanes [pytest options] [paths]`: with paths, or `MOTCUA_TEST_LANES=1`, one pytest
process as before. While the lanes run, one line every half minute says how far each has come; each
lane's output is printed whole when it ends (and kept in var/test-lanes/lane-N.log, the last run's
temporary files and its default var/ beside it). Stopping it (Ctrl-C, SIGTERM) stops both lanes.
"""
from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
LOGS = ROOT / "var" / "test-lanes"

# Seconds per file (setup, calls and teardown), `pytest --durations=250` on 2 cores, 6 December 2026.
SECONDS = {
    "integration/test_chaos.py": 153, "browser/test_journeys.py": 142, "integration/test_broker_cluster.py": 56,
    "e2e/test_database_outage.py": 42, "integration/test_stop_signals.py": 39,
    "integration/test_quorum_queues.py": 38, "integration/test_database_faults.py": 34,
    "e2e/test_retried_commands.py": 32, "integration/test_retries.py": 28, "integration/test_reliability.py": 28,
    "integration/test_rpc_broker_drop.py": 25, "e2e/test_schemathesis.py": 25, "e2e/test_lifecycle.py": 23,
    "security/test_web_edge.py": 17, "bench/test_floor.py": 15, "security/test_throttle.py": 14,
    "e2e/test_liaison.py": 13,
    "security/test_revocation_reaches_services.py": 11, "gateway/test_long_poll.py": 11,
    "e2e/test_synthetic_province.py": 11, "notify/test_smtp.py": 10, "e2e/test_reception_anywhere.py": 10,
    "e2e/test_postal.py": 10, "integration/test_history_import.py": 9, "e2e/test_least_privilege.py": 9,
    "security/test_forged_rpc.py": 8, "motcua/test_event_batches.py": 8, "integration/test_broker_users.py": 8,
    "security/test_sessions_cached.py": 7, "gateway/test_tracking_edge.py": 7,
    "reporting/test_agency_counters.py": 6, "motcua/test_outbox_relay.py": 6, "integration/test_sla.py": 6,
    "e2e/test_calendar_decisions.py": 6, "security/test_users.py": 5, "reporting/test_aggregates.py": 5,
}
LANES = 2
PROGRESS_EVERY = 30  # seconds


def seconds_of(name: str) -> int:
    """A test file's measured seconds; one for a file not measured."""
    return SECONDS.get(name, 1)


def deal(files: list[str], lanes: int) -> list[list[str]]:
    """Whole files to `lanes` lanes, longest first, each to the lane with the fewest seconds so far."""
    dealt: list[list[str]] = [[] for _ in range(lanes)]
    totals = [0] * lanes
    for name in sorted(files, key=lambda f: (-seconds_of(f), f)):
        lane = totals.index(min(totals))
        dealt[lane].append(name)
        totals[lane] += seconds_of(name)
    return [sorted(names) for names in dealt]


def test_files() -> list[str]:
    return sorted(str(path.relative_to(ROOT / "tests")) for path in (ROOT / "tests").rglob("test_*.py"))


OUTCOMES = re.compile(r"([.sxXFE]+)(\s+\[\s*\d+%\])?")


def progress(log: Path) -> str:
    """How far a lane has come: its tests done (pytest -q's progress characters) and failed so far."""
    text = log.read_text(errors="replace") if log.exists() else ""
    marks = "".join(match.group(1) for line in text.splitlines() if (match := OUTCOMES.fullmatch(line)))
    failed = marks.count("F") + marks.count("E")
    return f"{len(marks)} test{'' if len(marks) == 1 else 's'} done" + (f", {failed} failed" if failed else "")


NO_TESTS_RAN = 5  # pytest's exit code when nothing was collected or selected (e.g. -k in one lane only)


def run_lanes(options: list[str], lanes: int = LANES) -> int:
    LOGS.mkdir(parents=True, exist_ok=True)
    # The lanes inherit SIGINT's disposition: ignored, as in a job started in the background, pytest
    # could not be interrupted; with a handler here, each lane starts with the default.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    started = time.monotonic()
    running = []
    try:
        for number, files in enumerate(deal(test_files(), lanes), start=1):
            running.append((number, *_start_lane(number, lanes, files, options)))
            print(f"lane {number}: {len(files)} test files (log: {(LOGS / f'lane-{number}.log').relative_to(ROOT)})", flush=True)
        return _await_lanes(running, started)
    finally:  # interrupted (Ctrl-C, CI's SIGTERM): the lanes' process groups are stopped
        _stop_lanes([process for _number, _log, process in running])


def _start_lane(number: int, lanes: int, files: list[str], options: list[str]) -> tuple[Path, subprocess.Popen]:
    log = LOGS / f"lane-{number}.log"
    # A test that writes to the platform's default files (the mailbox, the SMS outbox, documents)
    # writes to its lane's own, not to var/ that the other lane shares.
    shutil.rmtree(LOGS / f"var-{number}", ignore_errors=True)
    env = {**os.environ, "MOTCUA_TEST_LANE": f"{number - 1}/{lanes}", "MOTCUA_VAR_DIR": str(LOGS / f"var-{number}")}
    command = [sys.executable, "-m", "pytest", *options, f"--basetemp={LOGS / f'tmp-{number}'}",
               *(f"tests/{name}" for name in files)]
    with open(log, "w") as output:
        return log, subprocess.Popen(command, cwd=ROOT, env=env, stdout=output, stderr=subprocess.STDOUT,
                                     start_new_session=True)


def _stop_lanes(processes: list[subprocess.Popen], grace: float = 60) -> None:
    """Each lane is a process group of its own (pytest, the platforms and browsers it started): SIGINT
    to all of it (pytest tears its fixtures down, the services stop), then SIGKILL to what is left, also
    when a second Ctrl-C cuts the wait short. (A RabbitMQ node started detached is a session of its
    own: the test that started it stops it in its teardown.)"""
    for process in processes:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGINT)
    deadline = time.monotonic() + grace
    try:
        for process in processes:
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(timeout=max(0.0, deadline - time.monotonic()))
    finally:
        for process in processes:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait()


def verdict(codes: dict[int, int]) -> tuple[int, list[int]]:
    """The run's exit code and its failed lanes: a lane in which no test was selected (exit code 5,
    `-k` matching files of the other lane only) has not failed, unless no lane ran a test."""
    failed = [number for number, code in sorted(codes.items()) if code not in (0, NO_TESTS_RAN)]
    if failed:
        return 1, failed
    return (NO_TESTS_RAN if all(code == NO_TESTS_RAN for code in codes.values()) else 0), []


def _await_lanes(running: list, started: float) -> int:
    codes: dict[int, int] = {}
    last = time.monotonic()
    while len(codes) < len(running):
        time.sleep(1)
        for number, log, process in running:
            if number not in codes and process.poll() is not None:
                codes[number] = process.returncode
                print(f"\n===== lane {number} ended after {time.monotonic() - started:.0f} s =====", flush=True)
                print(log.read_text(errors="replace"), flush=True)
        if time.monotonic() - last >= PROGRESS_EVERY and len(codes) < len(running):
            last = time.monotonic()
            print(f"[{time.monotonic() - started:4.0f} s] " + "; ".join(
                f"lane {number}: {'ended' if number in codes else progress(log)}" for number, log, _ in running),
                flush=True)
    code, failed = verdict(codes)
    print(f"\n{len(running)} lanes in {time.monotonic() - started:.0f} s: "
          + (f"lane(s) {', '.join(map(str, failed))} failed" if failed else
             "no test selected" if code else "all passed"), flush=True)
    return code


def main(argv: list[str]) -> int:
    paths = [arg for arg in argv if not arg.startswith("-") and (ROOT / arg.split("::")[0]).exists()]
    if paths or os.environ.get("MOTCUA_TEST_LANES") == "1":
        os.chdir(ROOT)  # pytest itself in this process: Ctrl-C reaches it alone, and it tears down as ever
        os.execv(sys.executable, [sys.executable, "-m", "pytest", *argv])
    return run_lanes(argv)


def _stop(signum, _frame):
    raise SystemExit(128 + signum)


if __name__ == "__main__":
    signal.signal(signal.SIGTERM, _stop)  # as Ctrl-C does: the lanes are stopped on the way out
    sys.exit(main(sys.argv[1:]))
