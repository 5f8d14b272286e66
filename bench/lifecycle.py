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
from bench.sides import Side, Snapshot, lagged_delta, settled_lagged
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


def in_turns(sides: list[Side], args, raw_broker_rate: float, rounds: int) -> dict[str, dict]:
    """The workload on every side at once, `args.dossiers` each, in `rounds` rounds taken in turn: A B,
    B A, A B, … (each side as often first as second). A virtual machine's speed drifts by 10–25 % over
    minutes (bench/README.md); rounds in turn meet the same drift on both sides, so their ratio holds
    where one side after the other's does not. Each side's figures per dossier are its rounds' together
(profile and statements under the output dir)."""
    turns = {side.label: _Turns(side) for side in sides}
    sizes = [args.dossiers // rounds + (1 if i < args.dossiers % rounds else 0) for i in range(rounds)]
    for turn in turns.values():
        turn.prepare(args.submissions)
    for i, size in enumerate(sizes):
        for side in (sides if i % 2 == 0 else sides[::-1]):
            turns[side.label].round(size, args.concurrency, f"round {i + 1}/{rounds}" if rounds > 1 else "")
    return {label: turn.figures(args, raw_broker_rate) for label, turn in turns.items()}


class _Turns:
    """One side's part of `in_turns`: its client, its rounds' snapshots, and its figures from them."""

    def __init__(self, side: Side):
        self.side = side
        self.api = logged_in(side.base_url)
        self.quiet: list[float] = []
        self.latencies: list[float] = []
        self.rounds: list[tuple[Snapshot, Snapshot, int]] = []  # (before, after, dossiers) of each round

    def prepare(self, submissions: int) -> None:
        for i in range(submissions):
            begun = time.perf_counter()
            self.api.submit(key=uuid.uuid4().hex)
            self.quiet.append(time.perf_counter() - begun)
            progress(f"{self.side.label}: sequential submissions", i + 1, submissions)
        self.lagged_before = settled_lagged(self.side)
        self.lagged_before_at = time.perf_counter()

    def round(self, dossiers: int, concurrency: int, name: str) -> None:
        label = f"{self.side.label}: {name + ', ' if name else ''}dossiers"
        before = self.side.snapshot()
        done = [0]
        lock = threading.Lock()

        def one(_):
            one_dossier(self.api, self.latencies)
            with lock:
                done[0] += 1
                progress(label, done[0], dossiers)

        with ThreadPoolExecutor(concurrency) as pool:
            list(pool.map(one, range(dossiers)))
        self.rounds.append((before, self.side.snapshot(), dossiers))

    def figures(self, args, raw_broker_rate: float) -> dict:
        side, n = self.side, sum(count for _b, _a, count in self.rounds)
        first, last = self.rounds[0][0], self.rounds[-1][1]
        elapsed = sum(after.at - before.at for before, after, _n in self.rounds)
        lagged, background = lagged_delta(side, self.lagged_before, last.at)
        # the idle background while the other sides worked (their preparation, their rounds in between),
        # at the rate measured after the work
        idle = (first.at - self.lagged_before_at) + (last.at - first.at - elapsed)
        lagged = {key: value - background[key] * idle for key, value in lagged.items()}
        # the profile spans every round (between them the side idles while the others work)
        figures.write_profile(side.out_dir.parent / f"profile-{side.label}-lifecycle.txt",
                              f"lifecycle, {side.label}: {n} dossiers at concurrency {args.concurrency}",
                              first, last, n, "dossier")
        bus_rate = lagged["broker_publishes"] / elapsed

        def together(per_unit) -> dict:
            return figures.weighted_mean([(per_unit(before, after, count), count)
                                          for before, after, count in self.rounds])

        return {
            "dossiers": n, "concurrency": args.concurrency, "elapsed_s": elapsed, "dossiers_per_s": n / elapsed,
            "rounds": [{"dossiers": count, "elapsed_s": after.at - before.at,
                        "service_cpu_ms": figures.per_service(before, after, count)["all services"]["cpu_ms"]}
                       for before, after, count in self.rounds],
            "submit_idle_ms": {"p50": percentile(self.quiet, 50) * 1000, "p99": percentile(self.quiet, 99) * 1000},
            "submit_load_ms": {"p50": percentile(self.latencies, 50) * 1000,
                               "p99": percentile(self.latencies, 99) * 1000,
                               "mean": statistics.mean(self.latencies) * 1000},
            "services": together(figures.per_service),
            "platform": {
                **together(figures.platform_cpu),
                "pg_transactions": lagged["pg_transactions"] / n,
                # what the services do idle (relays' polls, timers) at the rate measured after the run
                "pg_transactions_idle_rate": background["pg_transactions"] * elapsed / n,
                "broker_publishes": lagged["broker_publishes"] / n,
                "broker_deliveries": lagged["broker_deliveries"] / n,
                "bus_msgs_per_s": bus_rate,
                "bus_ratio": bus_rate / raw_broker_rate if raw_broker_rate else None,
            },
            "idle_background_per_s": background,
            "details": together(figures.details),
        }


def main(argv=None) -> None:
    from bench.compare import main as compare
    compare(argv, workloads=("lifecycle",))


if __name__ == "__main__":
    main()
