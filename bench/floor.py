"""The nameko floor: what one dossier's messages cost with nothing around them, measured in the same run.

A lifecycle side's figures give its message pattern per dossier (`Pattern.of_lifecycle`): the HTTP
requests, each one RPC (the gateway's publishes), and the events published and delivered (the rest,
less a reply per request). Five trivial nameko services (bench/floor_services.py: an HTTP front, an RPC
back that publishes, three listeners) then carry exactly that many messages per dossier, driven by the
same client threads at the same concurrency, with no database, no schema and no logic. Their CPU, the
broker's and the client's per dossier are the floor of this stack for that pattern: what the services
spend above it is what our code costs; what the machine spends at the floor bounds the dossiers/s any
code on this stack could reach with this pattern.

    python -m bench.floor --calls 10.5 --events 15 --deliveries 36     a pattern given by hand
"""
from __future__ import annotations

import argparse
import contextlib
import json
import queue
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from dataclasses import asdict, dataclass
from pathlib import Path

import requests

from bench.floor_services import SERVICES
from bench.sides import cpu_seconds, machine_cpu_seconds, own_cpu_seconds, rabbitmq_pid
from motcua.config import ROOT
from tests import infra


@dataclass(frozen=True)
class Pattern:
    """Messages per dossier: HTTP requests (each one RPC and its reply), events published, event deliveries."""

    calls: float
    events: float
    deliveries: float

    @classmethod
    def of_lifecycle(cls, services: dict[str, dict[str, float]]) -> "Pattern":
        """From a lifecycle side's per-service figures (bench/figures.per_service)."""
        calls = services["gateway"]["published"]
        every = services["all services"]
        return cls(calls, every["published"] - 2 * calls, every["delivered"] - 2 * calls)

    def plan(self, dossiers: int) -> list[list[tuple[int, int]]]:
        """Each dossier's calls, each call's events as (reaching two listeners, reaching three): over
        all dossiers the totals are the pattern's to within one, spread as evenly as they go."""
        total_calls = max(dossiers, round(self.calls * dossiers))
        total_events = round(self.events * dossiers)
        # Each event reaches two listeners or three: as many of three as make up the deliveries.
        threes = min(total_events, max(0, round(self.deliveries * dossiers) - 2 * total_events))
        calls = [[0, 0] for _ in range(total_calls)]
        for n in range(total_events):
            reaches_three = (n + 1) * threes // total_events - n * threes // total_events
            calls[n * total_calls // total_events][reaches_three] += 1
        bounds = [d * total_calls // dossiers for d in range(dossiers + 1)]
        return [[tuple(call) for call in calls[start:end]] for start, end in zip(bounds, bounds[1:])]

    @classmethod
    def sent_by(cls, plan: list[list[tuple[int, int]]]) -> "Pattern":
        """What a plan carries per dossier (each event reaching two listeners or three: a pattern with
        fewer than two or more than three deliveries an event is carried as near as that goes)."""
        calls = [call for dossier in plan for call in dossier]
        return cls(len(calls) / len(plan), sum(a + b for a, b in calls) / len(plan),
                   sum(2 * a + 3 * b for a, b in calls) / len(plan))


class FloorServices:
    """The five trivial services as processes on a vhost of their own (a context manager)."""

    def __init__(self, out_dir: Path):
        self.out_dir = out_dir
        self.vhost = f"motcua-bench-floor-{uuid.uuid4().hex[:8]}"
        self.port = infra.free_port()
        self.processes: dict[str, subprocess.Popen] = {}
        self.config_dir = Path(tempfile.mkdtemp(prefix="motcua-floor-"))

    def __enter__(self) -> "FloorServices":
        infra.create_vhost(self.vhost)
        try:
            config = self.config_dir / "config.yaml"
            config.write_text(json.dumps({"AMQP_URI": infra.amqp_uri(self.vhost),
                                          "WEB_SERVER_ADDRESS": f"127.0.0.1:{self.port}"}))
            self.out_dir.mkdir(parents=True, exist_ok=True)
            for name in SERVICES:
                with open(self.out_dir / f"{name}.log", "wb") as log:
                    self.processes[name] = subprocess.Popen(
                        [sys.executable, "-m", "nameko", "run", "--config", str(config), f"bench.floor_services:{name}"],
                        cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)
            self._wait_ready()
        except BaseException:
            self.__exit__()
            raise
        return self

    def __exit__(self, *_exc) -> None:
        try:
            for process in self.processes.values():
                process.terminate()  # all at once, then each awaited: they stop side by side
            for name, process in self.processes.items():
                infra.wait_stopped(process, self.out_dir / f"{name}.log")
        finally:
            infra.delete_vhost(self.vhost)
            shutil.rmtree(self.config_dir, ignore_errors=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _wait_ready(self, timeout: float = 60) -> None:
        """Until the front answers and every listener's queue has its consumer (none misses an event)."""
        deadline = time.time() + timeout
        while time.time() < deadline:
            for name, process in self.processes.items():
                if process.poll() is not None:
                    raise RuntimeError(f"floor service {name} exited; see {self.out_dir}/{name}.log")
            with contextlib.suppress(requests.RequestException):
                listening = [q for q in infra.vhost_queues(self.vhost)
                             if q["name"].startswith("evt-floor_back-") and q.get("consumers")]
                if len(listening) == 5 and requests.get(f"{self.url}/ping", timeout=5).ok:
                    return
            time.sleep(0.25)
        raise RuntimeError(f"the floor's services did not start in {timeout} s; see {self.out_dir}")

    def cpu(self) -> float:
        return sum(cpu_seconds(process.pid) for process in self.processes.values())

    def quiesce(self, quiet: float = 1.0, timeout: float = 60) -> None:
        """Returns once the services have spent under 10 ms of CPU in `quiet` seconds (all delivered)."""
        deadline = time.time() + timeout
        last = self.cpu()
        while time.time() < deadline:
            time.sleep(quiet)
            now = self.cpu()
            if now - last < 0.010:
                return
            last = now


def drive(url: str, plan: list[list[tuple[int, int]]], concurrency: int) -> None:
    """Each dossier's calls in order, `concurrency` dossiers at a time, each thread keeping its connection."""
    todo: queue.Queue = queue.Queue()
    for calls in plan:
        todo.put(calls)
    failures: list[str] = []

    def client():
        with requests.Session() as session:
            while not failures:
                try:
                    calls = todo.get_nowait()
                except queue.Empty:
                    return
                for fanout2, fanout3 in calls:
                    try:
                        response = session.post(f"{url}/work", json={"fanout2": fanout2, "fanout3": fanout3},
                                                timeout=60)
                    except requests.RequestException as exc:  # figures over dossiers not run would be wrong
                        failures.append(repr(exc))
                        return
                    if not response.ok:
                        failures.append(f"{response.status_code} {response.text[:200]}")
                        return

    threads = [threading.Thread(target=client) for _ in range(concurrency)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if failures:
        raise RuntimeError(f"the floor's front failed: {failures[0]}")


def measure(pattern: Pattern, dossiers: int, concurrency: int, out_dir: Path, warmup: int = 20) -> dict:
    """The floor of `pattern`: per dossier, CPU ms of the services, the broker, the client and the machine,
    and the dossiers/s the five services reached."""
    broker = rabbitmq_pid()
    with FloorServices(out_dir) as services:
        drive(services.url, pattern.plan(warmup), concurrency)
        services.quiesce()
        before = services.cpu(), cpu_seconds(broker) if broker else 0.0, own_cpu_seconds(), machine_cpu_seconds()
        plan = pattern.plan(dossiers)
        started = time.perf_counter()
        drive(services.url, plan, concurrency)
        elapsed = time.perf_counter() - started
        services.quiesce()
        after = services.cpu(), cpu_seconds(broker) if broker else 0.0, own_cpu_seconds(), machine_cpu_seconds()
    spent = [(new - old) * 1000 / dossiers for new, old in zip(after, before)]
    return {"pattern": asdict(pattern), "sent": asdict(Pattern.sent_by(plan)), "dossiers": dossiers,
            "concurrency": concurrency,
            "service_cpu_ms": spent[0], "rabbitmq_cpu_ms": spent[1], "client_cpu_ms": spent[2],
            "machine_cpu_ms": spent[3], "dossiers_per_s": dossiers / elapsed}


def report(floor: dict, lifecycle: dict | None = None) -> str:
    """The floor's figures, and beside them a lifecycle side's with the ratio (its CPU over the floor's)."""
    p = floor["sent"]
    lines = [f"\nNAMEKO FLOOR: the same messages per dossier through five trivial nameko services (no database, "
             f"no logic): {p['calls']:.1f} HTTP requests each one RPC, {p['events']:.1f} events published, "
             f"{p['deliveries']:.1f} delivered; {floor['dossiers']} dossiers at concurrency {floor['concurrency']}"]
    rows = (("service CPU ms/dossier", "service_cpu_ms", ("services", "all services", "cpu_ms")),
            ("RabbitMQ CPU ms/dossier", "rabbitmq_cpu_ms", ("platform", "rabbitmq_cpu_ms")),
            ("bench client CPU ms/dossier", "client_cpu_ms", ("platform", "client_cpu_ms")),
            ("machine CPU ms/dossier", "machine_cpu_ms", ("platform", "machine_cpu_ms")),
            ("dossiers/s", "dossiers_per_s", ("dossiers_per_s",)))
    lines.append(f"  {'':52s}{'floor':>10s}" + (f"{'current':>10s}{'current/floor':>15s}" if lifecycle else ""))
    for label, key, path in rows:
        line = f"  {label:52s}{floor[key]:10.1f}"
        if lifecycle:
            value = lifecycle
            for part in path:
                value = value[part]
            line += f"{value:10.1f}" + (f"{value / floor[key]:15.2f}" if floor[key] else f"{'–':>15s}")
        lines.append(line)
    return "\n".join(lines)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.floor", description=__doc__.split("\n\n")[0])
    parser.add_argument("--calls", type=float, default=10.5, help="HTTP requests per dossier, each one RPC (10.5)")
    parser.add_argument("--events", type=float, default=15.0, help="events published per dossier (15)")
    parser.add_argument("--deliveries", type=float, default=36.0, help="event deliveries per dossier (36)")
    parser.add_argument("--dossiers", type=int, default=400, help="dossiers (400)")
    parser.add_argument("--concurrency", type=int, default=16, help="client threads (16)")
    parser.add_argument("--out", type=Path, default=ROOT / "var" / "bench" / "floor", help="the services' logs")
    args = parser.parse_args(argv)
    infra.require_rabbitmq_for_bench()
    floor = measure(Pattern(args.calls, args.events, args.deliveries), args.dossiers, args.concurrency, args.out)
    print(report(floor))


if __name__ == "__main__":
    main()
