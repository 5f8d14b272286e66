"""Benchmark workload: public tracking (`GET /api/v1/track/{code}?key=…`) under `wrk`.

Submits and receives `--tracking-dossiers` dossiers, waits until reporting tracks each one as received,
then `--clients` keep-alive connections (wrk, C, a small fraction of the services' CPU: it is reported)
ask for random codes among them with the right key for `--seconds`. Prints req/s, latency p50/p99 and
the service CPU per request (gateway + reporting, and each).

    make bench BENCH_ARGS="--no-baseline --dossiers 40"    (python -m bench.tracking: this workload only)
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import requests

from bench import figures
from bench.sides import Side
from motcua.config import ROOT
from motcua.progress import progress
from tests.e2e.client import APPLICANT, COMMUNE, Api

WRK_SCRIPT = Path(__file__).with_name("track.lua")
TRACKING_KEY = APPLICANT["phone"][-4:]
TRACKING_SERVICES = ("gateway", "reporting")


def ensure_wrk() -> str:
    """wrk's path; installed (Debian package `wrk`) by deploy/dev/ensure-services.sh when missing."""
    if not shutil.which("wrk"):
        subprocess.run([str(ROOT / "deploy" / "dev" / "ensure-services.sh"), "wrk"], check=False)
    path = shutil.which("wrk")
    if not path:
        raise SystemExit("the tracking bench needs wrk (apt-get install wrk)")
    return path


def tracked(base_url: str, code: str) -> dict | None:
    response = requests.get(f"{base_url}/api/v1/track/{code}", params={"key": TRACKING_KEY}, timeout=30)
    return response.json() if response.status_code == 200 else None


def prepare(side: Side, count: int, concurrency: int) -> list[str]:
    """`count` dossiers submitted and received, each tracked by reporting in the status intake gives it."""
    user = f"receptionist@{COMMUNE}"
    api = Api(side.base_url)
    api.token(user)
    done = [0]

    def one(_):
        code = api.submit(key=uuid.uuid4().hex)["code"]
        api.receive(code)
        deadline = time.time() + 60
        # Reception starts the process (a task, then `processing`): wait until reporting has it all.
        while (tracked(side.base_url, code) or {}).get("status") != api.call(
                "GET", f"/api/v1/dossiers/{code}", user=user).json()["status"]:
            assert time.time() < deadline, f"reporting does not track {code} as intake has it"
            time.sleep(0.2)
        done[0] += 1
        progress(f"{side.label}: tracked dossiers", done[0], count)
        return code

    with ThreadPoolExecutor(concurrency) as pool:
        return list(pool.map(one, range(count)))


def load(base_url: str, codes_file: Path, clients: int, seconds: int) -> tuple[dict, float]:
    """wrk's summary (its Lua `done` prints JSON) and the CPU seconds wrk itself used."""
    command = [ensure_wrk(), "-t2", f"-c{clients}", f"-d{seconds}s", "-s", str(WRK_SCRIPT), base_url,
               "--", str(codes_file), TRACKING_KEY]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    output = process.stdout.read()
    _pid, status, usage = os.wait4(process.pid, 0)  # reaped here, for wrk's own resource usage
    process.returncode = os.waitstatus_to_exitcode(status)
    if process.returncode != 0:
        raise RuntimeError(f"wrk failed ({process.returncode}): {output}")
    summary = json.loads(next(line for line in output.splitlines() if line.startswith("{")))
    return summary, usage.ru_utime + usage.ru_stime


def in_turns(sides: list[Side], args, rounds: int) -> dict[str, dict]:
    """The load on every side, `args.seconds` each in `rounds` windows taken in turn (A B, B A, …), as
    the lifecycle's rounds (bench/lifecycle.py): the machine's drift met by both sides alike. A side's
    figures are its windows' together; its latency percentiles the windows' weighted by their requests."""
    codes_files = {}
    for side in sides:
        codes = prepare(side, args.tracking_dossiers, args.concurrency)
        codes_files[side.label] = side.out_dir / "tracking-codes.txt"
        codes_files[side.label].write_text("\n".join(codes) + "\n")
        side.quiesce()  # the last events' handlers done before the first window opens
    seconds = max(1, round(args.seconds / rounds))
    windows: dict[str, list] = {side.label: [] for side in sides}
    for i in range(rounds):
        for side in (sides if i % 2 == 0 else sides[::-1]):
            before = side.snapshot()
            summary, wrk_cpu = load(side.base_url, codes_files[side.label], args.clients, seconds)
            windows[side.label].append((before, side.snapshot(), summary, wrk_cpu))
    return {side.label: _figures(side, args, windows[side.label]) for side in sides}


def _figures(side: Side, args, windows: list) -> dict:
    requests_done = sum(summary["requests"] for _b, _a, summary, _cpu in windows)
    duration = sum(summary["duration_us"] for _b, _a, summary, _cpu in windows) / 1e6
    wrk_cpu = sum(cpu for _b, _a, _summary, cpu in windows)

    def together(per_unit) -> dict:
        return figures.weighted_mean([(per_unit(before, after, summary["requests"]), summary["requests"])
                                      for before, after, summary, _cpu in windows])

    per_request = together(figures.per_service)
    cpu = {name: per_request[name]["cpu_ms"] for name in TRACKING_SERVICES}
    figures.write_profile(side.out_dir.parent / f"profile-{side.label}-tracking.txt",
                          f"tracking, {side.label}: {args.clients} clients for {duration:.0f} s over "
                          f"{args.tracking_dossiers} dossiers", windows[0][0], windows[-1][1], requests_done, "request")
    platform = together(figures.platform_cpu)
    latency = figures.weighted_mean([(summary["latency_us"], summary["requests"])
                                     for _b, _a, summary, _cpu in windows])
    errors = {kind: sum(summary["errors"].get(kind, 0) for _b, _a, summary, _cpu in windows)
              for kind in windows[0][2]["errors"]}
    return {
        "dossiers": args.tracking_dossiers, "clients": args.clients, "seconds": duration,
        "requests": requests_done, "requests_per_s": requests_done / duration,
        "latency_ms": {"p50": latency["p50"] / 1000, "p99": latency["p99"] / 1000, "mean": latency["mean"] / 1000},
        "errors": errors,
        "cpu_ms_per_request": {
            "gateway + reporting": sum(cpu.values()), **cpu,
            "postgres": platform["postgres_cpu_ms"], "rabbitmq": platform["rabbitmq_cpu_ms"],
            "load_generator": wrk_cpu * 1000 / requests_done, "machine": platform["machine_cpu_ms"],
            # wrk is a child of the bench, not counted in the client's CPU: not "other" either
            "other_processes": platform["other_processes_cpu_ms"] - wrk_cpu * 1000 / requests_done,
        },
        "per_request": {name: per_request[name] for name in TRACKING_SERVICES},
    }


def main(argv=None) -> None:
    from bench.compare import main as compare
    compare(argv, workloads=("tracking",))


if __name__ == "__main__":
    main()
