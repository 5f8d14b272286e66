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


def run(side: Side, args) -> dict:
    codes = prepare(side, args.tracking_dossiers, args.concurrency)
    codes_file = side.out_dir / "tracking-codes.txt"
    codes_file.write_text("\n".join(codes) + "\n")
    side.quiesce()  # the last events' handlers done before the window opens
    before = side.snapshot()
    summary, wrk_cpu = load(side.base_url, codes_file, args.clients, args.seconds)
    after = side.snapshot()
    requests_done = summary["requests"]
    per_request = figures.per_service(before, after, requests_done)
    cpu = {name: per_request[name]["cpu_ms"] for name in TRACKING_SERVICES}
    figures.write_profile(side.out_dir.parent / f"profile-{side.label}-tracking.txt",
                          f"tracking, {side.label}: {args.clients} clients for {args.seconds} s over "
                          f"{len(codes)} dossiers", before, after, requests_done, "request")
    platform = figures.platform_cpu(before, after, requests_done)
    latency = summary["latency_us"]
    return {
        "dossiers": len(codes), "clients": args.clients, "seconds": summary["duration_us"] / 1e6,
        "requests": requests_done, "requests_per_s": requests_done / (summary["duration_us"] / 1e6),
        "latency_ms": {"p50": latency["p50"] / 1000, "p99": latency["p99"] / 1000, "mean": latency["mean"] / 1000},
        "errors": summary["errors"],
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
