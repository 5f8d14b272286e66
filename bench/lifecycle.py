"""Benchmark workload: N land dossiers through their whole life over HTTP, `concurrency` at a time.

Each dossier: submit, receive, each of the three agencies' officers waits for the task in their inbox
and completes it, the client waits for `result_ready`, then the dossier is returned. The waits are long
polls where the server offers them (tests/e2e/client.py), polls every 0.2 s otherwise.

    make bench BENCH_ARGS="--dossiers 40 --no-baseline"      (python -m bench.lifecycle: this workload only)
"""
from __future__ import annotations

import statistics
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor

from bench import figures
from bench.sides import Side, lagged_delta, settled_lagged
from motcua.progress import progress
from tests.e2e.client import COMMUNE, LAND_STEPS, Api

USERS = ["admin", f"receptionist@{COMMUNE}"] + [f"{role}@{agency}" for agency, role in LAND_STEPS]


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(p / 100 * (len(ordered) - 1))))]


def logged_in(base_url: str) -> Api:
    api = Api(base_url, keep_alive=True)  # officers' consoles, like browsers, keep their connection
    for user in USERS:
        api.token(user)  # log in once, before the threads share the cached tokens
    return api


def one_dossier(api: Api, submit_latencies: list[float]) -> None:
    started = time.perf_counter()
    code = api.submit(key=uuid.uuid4().hex)["code"]
    submit_latencies.append(time.perf_counter() - started)
    api.receive(code)
    api.process_land_dossier(code)
    api.wait_status(code, "result_ready", timeout=120)
    response = api.call("POST", f"/api/v1/dossiers/{code}/return", user=f"receptionist@{COMMUNE}",
                        json={"method": "counter"})
    assert response.status_code == 200, response.text


def run(side: Side, args, raw_broker_rate: float) -> dict:
    """The workload on one side; its figures per dossier (profile and statements under the output dir)."""
    api = logged_in(side.base_url)
    quiet: list[float] = []
    for i in range(args.submissions):
        begun = time.perf_counter()
        api.submit(key=uuid.uuid4().hex)
        quiet.append(time.perf_counter() - begun)
        progress(f"{side.label}: sequential submissions", i + 1, args.submissions)
    lagged_before = settled_lagged(side)
    before = side.snapshot()
    latencies: list[float] = []
    done = [0]
    lock = threading.Lock()

    def one(_):
        one_dossier(api, latencies)
        with lock:
            done[0] += 1
            progress(f"{side.label}: dossiers", done[0], args.dossiers)

    with ThreadPoolExecutor(args.concurrency) as pool:
        list(pool.map(one, range(args.dossiers)))
    after = side.snapshot()
    elapsed = after.at - before.at
    lagged, background = lagged_delta(side, lagged_before, after.at)
    n = args.dossiers
    rate = n / elapsed
    figures.write_profile(side.out_dir.parent / f"profile-{side.label}-lifecycle.txt",
                          f"lifecycle, {side.label}: {n} dossiers at concurrency {args.concurrency}",
                          before, after, n, "dossier")
    bus_rate = lagged["broker_publishes"] / elapsed
    return {
        "dossiers": n, "concurrency": args.concurrency, "elapsed_s": elapsed, "dossiers_per_s": rate,
        "submit_idle_ms": {"p50": percentile(quiet, 50) * 1000, "p99": percentile(quiet, 99) * 1000},
        "submit_load_ms": {"p50": percentile(latencies, 50) * 1000, "p99": percentile(latencies, 99) * 1000,
                           "mean": statistics.mean(latencies) * 1000},
        "services": figures.per_service(before, after, n),
        "platform": {
            **figures.platform_cpu(before, after, n),
            "pg_transactions": lagged["pg_transactions"] / n,
            # what the services do idle (relays' polls, timers) at the rate measured after the run
            "pg_transactions_idle_rate": background["pg_transactions"] * elapsed / n,
            "broker_publishes": lagged["broker_publishes"] / n,
            "broker_deliveries": lagged["broker_deliveries"] / n,
            "bus_msgs_per_s": bus_rate,
            "bus_ratio": bus_rate / raw_broker_rate if raw_broker_rate else None,
        },
        "idle_background_per_s": background,
        "details": figures.details(before, after, n),
    }


def main(argv=None) -> None:
    from bench.compare import main as compare
    compare(argv, workloads=("lifecycle",))


if __name__ == "__main__":
    main()
