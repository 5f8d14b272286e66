"""One side of the bench: a source tree (this one, or a previous release checked out as a git worktree)
running its five services as processes on a fresh RabbitMQ vhost and fresh PostgreSQL databases, with
the bench's probe (bench/probe/sitecustomize.py) loaded into each service process.

A snapshot reads what costs nothing to read at any instant (CPU from /proc, the probe's counters);
`lagged()` reads the counters the servers publish late (pg_stat_database, RabbitMQ's management API).
"""
from __future__ import annotations

import contextlib
import json
import os
import resource
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import requests
from sqlalchemy import text

from motcua.config import ROOT, SERVICES
from tests import infra

BASELINE_FILE = Path(__file__).with_name("BASELINE")
PROBE_DIR = Path(__file__).with_name("probe")
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
# PostgreSQL 15 flushes an idle backend's statistics within 10 s (PGSTAT_IDLE_INTERVAL); RabbitMQ's
# management plugin collects every 5 s. A lagged counter is read this long after the work it counts.
STATS_LAG = 11.0


def baseline_ref() -> str:
    """The previous release the bench compares with (bench/BASELINE: the last release CI passed)."""
    return BASELINE_FILE.read_text().split()[0]


def describe(root: Path, ref: str = "HEAD") -> str:
    """The short commit of `ref` in `root`, marked `+` when the tree has uncommitted changes."""
    commit = _git(root, "rev-parse", "--short", ref)
    dirty = ref == "HEAD" and subprocess.run(["git", "-C", str(root), "diff", "--quiet", "HEAD"]).returncode != 0
    return commit + ("+" if dirty else "")


def _git(root: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(root), *args], check=True, capture_output=True,
                          text=True).stdout.strip()


@contextlib.contextmanager
def checkout(ref: str):
    """`ref` checked out as a detached git worktree in a temporary directory, removed afterwards."""
    parent = Path(tempfile.mkdtemp(prefix="motcua-baseline-"))
    path = parent / "tree"
    _git(ROOT, "worktree", "add", "--detach", "--quiet", str(path), ref)
    try:
        yield path
    finally:
        subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", str(path)], check=False)
        subprocess.run(["rm", "-rf", str(parent)], check=False)


def cpu_seconds(pid: int) -> float:
    """User + system CPU a process has used (Linux /proc); 0 once it is gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (FileNotFoundError, ProcessLookupError):
        return 0.0
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def machine_cpu_seconds() -> float:
    """CPU time every process of the machine has used (busy time of all cores, /proc/stat)."""
    user, nice, system, _idle, _iowait, irq, softirq, steal = (
        int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:9])
    return (user + nice + system + irq + softirq + steal) / CLOCK_TICKS


def own_cpu_seconds() -> float:
    """This process's CPU (the bench's HTTP clients, all threads)."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def rabbitmq_pid() -> int | None:
    for stat in Path("/proc").glob("[0-9]*/comm"):
        with contextlib.suppress(OSError):
            if stat.read_text().strip() == "beam.smp":
                return int(stat.parent.name)
    return None


@dataclass
class Snapshot:
    at: float
    services_cpu: dict[str, float]
    probe: dict[str, dict]
    postgres_cpu: dict[int, float]  # this side's backends, by pid (as last seen, for those gone)
    rabbitmq_cpu: float             # the whole broker (shared with anyone else using it)
    client_cpu: float
    machine_cpu: float


class Side:
    """A tree's five services with fresh databases and vhost; a context manager that cleans up."""

    def __init__(self, label: str, root: Path, out_dir: Path, profile: bool):
        self.label = label
        self.root = root
        self.out_dir = out_dir / label
        self.probe_dir = self.out_dir / "probe"
        self.probe_dir.mkdir(parents=True, exist_ok=True)
        self.profile = profile
        self.vhost = f"motcua-bench-{uuid.uuid4().hex[:8]}"
        self.urls: dict[str, str] = {}
        self.services: infra.ServiceProcesses | None = None
        self._dumps: dict[int, int] = {}
        self._rabbitmq = rabbitmq_pid()
        self._backends: dict[int, float] = {}  # CPU last seen of each PostgreSQL backend of this side
        self._backends_lock = threading.Lock()
        self._watching = threading.Event()
        self._admin = infra._admin_engine()  # the `postgres` database: reading statistics adds none here

    def __enter__(self) -> Side:
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *_exc) -> None:
        self.stop()

    def start(self) -> None:
        infra.create_vhost(self.vhost)
        self.urls = infra.create_service_databases(migrate=False)
        env = {**os.environ, "PYTHONPATH": str(self.root),
               **{f"{service.upper()}_DB_URL": url for service, url in self.urls.items()}}
        # The tree's own migrations, as its release would run them.
        migrated = subprocess.run([sys.executable, "-m", "motcua.migrate", "upgrade", "all"], cwd=self.root,
                                  env=env, capture_output=True, text=True)
        if migrated.returncode != 0:
            raise RuntimeError(f"{self.label}: migrations failed:\n{migrated.stderr[-3000:]}")
        probe_env = {"PYTHONPATH": f"{PROBE_DIR}{os.pathsep}{self.root}", "MOTCUA_PROBE_DIR": str(self.probe_dir)}
        if self.profile:
            probe_env["MOTCUA_PROBE_PROFILE"] = "1"
        self.services = infra.ServiceProcesses(infra.amqp_uri(self.vhost), self.urls, self.out_dir,
                                               extra_env=probe_env, root=self.root)
        self.services.start_all()
        threading.Thread(target=self._watch_backends, daemon=True).start()

    def stop(self) -> None:
        self._watching.set()
        if self.services is not None:
            try:
                self.services.stop_all()
            except AssertionError as slow:  # a service that did not stop in time was killed
                print(f"{self.label}: {str(slow).splitlines()[0]}", flush=True)
            subprocess.run(["rm", "-rf", str(self.out_dir / "var")], check=False)  # mailbox, blobs
        infra.delete_vhost(self.vhost)
        if self.urls:
            infra.drop_databases(self.urls)
        self._admin.dispose()

    @property
    def base_url(self) -> str:
        return self.services.base_url

    @property
    def pids(self) -> dict[str, int]:
        return {name: process.pid for name, process in self.services.processes.items()}

    def probe(self) -> dict[str, dict]:
        """Every service's cumulative probe counters, asked for by SIGUSR1."""
        for pid in self.pids.values():
            os.kill(pid, signal.SIGUSR1)
        figures = {}
        deadline = time.time() + 20
        for name, pid in self.pids.items():
            path = self.probe_dir / f"{pid}.json"
            while True:
                with contextlib.suppress(FileNotFoundError, json.JSONDecodeError):
                    dump = json.loads(path.read_text())
                    if dump["dumps"] > self._dumps.get(pid, 0):
                        self._dumps[pid] = dump["dumps"]
                        figures[name] = dump
                        break
                if time.time() > deadline:
                    raise RuntimeError(f"{self.label}: {name} (pid {pid}) did not answer the probe; "
                                       f"see {self.out_dir}/{name}.log")
                time.sleep(0.01)
        return figures

    def quiesce(self, quiet: float = 1.0, timeout: float = 60) -> None:
        """Returns once no service has published or received a message for `quiet` seconds."""
        def traffic():
            return sum(sum(dump["published"].values()) + sum(dump["delivered"].values())
                       for dump in self.probe().values())

        last, since, deadline = traffic(), time.perf_counter(), time.perf_counter() + timeout
        while time.perf_counter() - since < quiet and time.perf_counter() < deadline:
            time.sleep(0.25)
            now = traffic()
            if now != last:
                last, since = now, time.perf_counter()

    @property
    def database_names(self) -> list[str]:
        return [url.rsplit("/", 1)[1] for url in self.urls.values()]

    def _watch_backends(self, every: float = 0.5) -> None:
        """Keeps the CPU of this side's PostgreSQL backends as last seen: one that exits (a pool's
        overflow connection closed) still counts, less its last half second."""
        while not self._watching.wait(every):
            self._postgres_cpu()

    def _postgres_cpu(self) -> dict[int, float]:
        with self._admin.connect() as connection:
            pids = connection.execute(text("SELECT pid FROM pg_stat_activity WHERE datname = ANY(:names)"),
                                      {"names": self.database_names}).scalars().all()
        with self._backends_lock:
            for pid in pids:
                cpu = cpu_seconds(pid)
                if cpu:
                    self._backends[pid] = cpu
            return dict(self._backends)

    def snapshot(self) -> Snapshot:
        at = time.perf_counter()
        services_cpu = {name: cpu_seconds(pid) for name, pid in self.pids.items()}
        rabbitmq = cpu_seconds(self._rabbitmq) if self._rabbitmq else 0.0
        client, machine = own_cpu_seconds(), machine_cpu_seconds()
        return Snapshot(at, services_cpu, self.probe(), self._postgres_cpu(), rabbitmq, client, machine)

    def lagged(self) -> dict[str, float]:
        """PostgreSQL transactions in this side's databases, and the broker's message counts in its vhost."""
        with self._admin.connect() as connection:
            transactions = connection.execute(text(
                "SELECT coalesce(sum(xact_commit + xact_rollback), 0) FROM pg_stat_database "
                "WHERE datname = ANY(:names)"), {"names": self.database_names}).scalar_one()
        response = requests.get(f"{infra.RABBIT_MGMT}/vhosts/{self.vhost}", auth=infra.RABBIT_AUTH, timeout=10)
        response.raise_for_status()
        stats = response.json().get("message_stats", {})
        return {"pg_transactions": float(transactions), "broker_publishes": float(stats.get("publish", 0)),
                "broker_deliveries": float(stats.get("deliver_get", 0))}


def lagged_delta(side: Side, before: dict[str, float], ended: float) -> tuple[dict[str, float], dict[str, float]]:
    """The lagged counters' growth from `before` to the end of the work (`ended`, perf_counter), and
    the idle background rates per second subtracted for the time waited after it."""
    _sleep_until(ended + STATS_LAG)
    first, first_at = side.lagged(), time.perf_counter()
    time.sleep(5)
    second, second_at = side.lagged(), time.perf_counter()
    rates = {key: max(0.0, (second[key] - first[key]) / (second_at - first_at)) for key in first}
    return {key: first[key] - before[key] - rates[key] * (first_at - ended) for key in first}, rates


def settled_lagged(side: Side) -> dict[str, float]:
    """The lagged counters once the work before this call has reached them."""
    time.sleep(STATS_LAG)
    return side.lagged()


def _sleep_until(moment: float) -> None:
    delay = moment - time.perf_counter()
    if delay > 0:
        time.sleep(delay)
