"""`make bench`: this tree and the previous release side by side in one run, with ratios.

Each side is a source tree (the previous release is checked out as a git worktree of bench/BASELINE, or
`--baseline REF`) running its five services as processes on real RabbitMQ and PostgreSQL, with a fresh
vhost and fresh databases migrated by that tree's own migrations, and the bench's probe loaded into
every service (bench/probe). The same client workloads run against each side in turn: the lifecycle
(bench/lifecycle.py), then public tracking (bench/tracking.py). Between them, the nameko floor
(bench/floor.py): this tree's messages per dossier through trivial nameko services, the same run's
measure of what the stack itself costs. Printed: a table per side, the ratios new/old, this tree against
the floor; written under the output directory: figures.json, the profiles, the services' logs.

    make bench                                                        200 dossiers at concurrency 16, both sides
    make bench BENCH_ARGS="--profile --no-baseline --dossiers 100"   where this tree's CPU goes
"""
from __future__ import annotations

import os

os.environ.setdefault("PSYCOPG_WAIT_FUNC", "wait_select")

import argparse  # noqa: E402
import contextlib  # noqa: E402
import json  # noqa: E402
import platform  # noqa: E402
import statistics  # noqa: E402
import threading  # noqa: E402
import time  # noqa: E402
import uuid  # noqa: E402
from pathlib import Path  # noqa: E402

from kombu import Connection, Exchange, Queue  # noqa: E402
from sqlalchemy import text  # noqa: E402

from bench import figures, floor, lifecycle, tracking  # noqa: E402
from bench.sides import Side, baseline_ref, checkout, describe  # noqa: E402
from motcua.config import ROOT  # noqa: E402
from tests import infra  # noqa: E402

WORKLOADS = ("lifecycle", "tracking")


def parse(argv) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n\n")[0])
    parser.add_argument("--dossiers", type=int, default=200, help="dossiers through the lifecycle (200)")
    parser.add_argument("--concurrency", type=int, default=16, help="lifecycle client threads (16)")
    parser.add_argument("--rounds", type=int, default=4,
                        help="the lifecycle's dossiers and tracking's seconds in this many rounds, the sides taking "
                             "turns: A B, B A, … (4)")
    parser.add_argument("--submissions", type=int, default=100,
                        help="sequential submissions timed alone before the lifecycle (100)")
    parser.add_argument("--raw-messages", type=int, default=5000, help="messages of the raw broker rate (5000)")
    parser.add_argument("--tracking-dossiers", type=int, default=300, help="dossiers the tracking load reads (300)")
    parser.add_argument("--clients", type=int, default=16, help="tracking connections (16)")
    parser.add_argument("--seconds", type=int, default=15, help="tracking load duration (15)")
    parser.add_argument("--baseline", default=None, help=f"the previous release's ref ({baseline_ref()})")
    parser.add_argument("--no-baseline", action="store_true", help="this tree only")
    parser.add_argument("--profile", action="store_true",
                        help="sample each service's CPU (every 5 ms of CPU time): top functions under --out")
    parser.add_argument("--no-floor", action="store_true",
                        help="skip the nameko floor (bench/floor.py: this tree's messages per dossier through "
                             "trivial services)")
    parser.add_argument("--out", type=Path, default=None, help="output directory (var/bench/<time>)")
    return parser.parse_args(argv)


# Both platforms up together: each side's five services pool up to ~100 PostgreSQL connections (the
# previous release's more), over PostgreSQL's default 100 the tracking load met "too many clients".
TWO_SIDES_CONNECTIONS = 300


def require_connections(needed: int) -> None:
    engine = infra._admin_engine()
    try:
        with engine.connect() as connection:
            allowed = int(connection.execute(text("SHOW max_connections")).scalar_one())
    finally:
        engine.dispose()
    if allowed < needed:
        raise SystemExit(f"two sides at once need PostgreSQL's max_connections ≥ {needed} (it is {allowed}): "
                         f"make bench raises it (deploy/dev/ensure-services.sh postgresql-connections)")


def machine() -> str:
    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), platform.processor() or "unknown CPU")
    return f"{os.cpu_count()} cores, {cpu}, Python {platform.python_version()}, {platform.system()} {platform.release()}"


def raw_broker_rate(count: int) -> float:
    """kombu persistent publishes, each confirmed, to a durable queue that a consumer acks (the
    guarantees the outbox relay uses), on a vhost of its own."""
    vhost = f"motcua-bench-raw-{uuid.uuid4().hex[:8]}"
    infra.create_vhost(vhost)
    amqp_uri = infra.amqp_uri(vhost)
    exchange = Exchange("bench.raw", type="direct", durable=True)
    queue = Queue("bench.raw", exchange=exchange, routing_key="raw", durable=True)
    received = threading.Event()
    seen = [0]

    def consume():
        with Connection(amqp_uri) as connection:
            def on_message(_body, message):
                message.ack()
                seen[0] += 1
                if seen[0] == count:
                    received.set()
            with connection.Consumer(queue, callbacks=[on_message], prefetch_count=100):
                while not received.is_set():
                    with contextlib.suppress(TimeoutError):
                        connection.drain_events(timeout=1)

    try:
        with Connection(amqp_uri, transport_options={"confirm_publish": True}) as connection:
            queue(connection.default_channel).declare()
            consumer = threading.Thread(target=consume, daemon=True)
            consumer.start()
            producer = connection.Producer(serializer="json")
            started = time.perf_counter()
            for i in range(count):
                producer.publish({"n": i, "pad": "x" * 400}, exchange=exchange, routing_key="raw", delivery_mode=2)
            received.wait(120)
            return count / (time.perf_counter() - started)
    finally:
        infra.delete_vhost(vhost)


# Rows of the side-by-side tables: (label, path in a side's figures of that workload, format).
LIFECYCLE_ROWS = (
    ("dossiers/s", ("dossiers_per_s",), "{:.2f}"),
    ("service CPU ms/dossier", ("services", "all services", "cpu_ms"), "{:.1f}"),
    ("PostgreSQL CPU ms/dossier (this side's backends)", ("platform", "postgres_cpu_ms"), "{:.1f}"),
    ("RabbitMQ CPU ms/dossier (whole broker)", ("platform", "rabbitmq_cpu_ms"), "{:.1f}"),
    ("bench client CPU ms/dossier", ("platform", "client_cpu_ms"), "{:.1f}"),
    ("machine CPU ms/dossier (every process)", ("platform", "machine_cpu_ms"), "{:.1f}"),
    ("  of which other processes (not this bench: disturbance)", ("platform", "other_processes_cpu_ms"), "{:.1f}"),
    ("PostgreSQL transactions/dossier (pg_stat_database)", ("platform", "pg_transactions"), "{:.1f}"),
    ("  of which idle background (its rate × run time)", ("platform", "pg_transactions_idle_rate"), "{:.1f}"),
    ("SQL statements/dossier", ("services", "all services", "statements"), "{:.1f}"),
    ("commits/dossier", ("services", "all services", "commits"), "{:.1f}"),
    ("broker publishes/dossier (events + RPC)", ("platform", "broker_publishes"), "{:.1f}"),
    ("broker deliveries/dossier", ("platform", "broker_deliveries"), "{:.1f}"),
    ("bus traffic / raw broker rate", ("platform", "bus_ratio"), "{:.3f}"),
    ("submit latency, idle, p50 ms", ("submit_idle_ms", "p50"), "{:.1f}"),
    ("submit latency, idle, p99 ms", ("submit_idle_ms", "p99"), "{:.1f}"),
    ("submit latency under load, p50 ms", ("submit_load_ms", "p50"), "{:.1f}"),
    ("submit latency under load, p99 ms", ("submit_load_ms", "p99"), "{:.1f}"),
)
TRACKING_ROWS = (
    ("requests/s", ("requests_per_s",), "{:.0f}"),
    ("latency p50 ms", ("latency_ms", "p50"), "{:.2f}"),
    ("latency p99 ms", ("latency_ms", "p99"), "{:.2f}"),
    ("service CPU ms/request (gateway + reporting)", ("cpu_ms_per_request", "gateway + reporting"), "{:.2f}"),
    ("  gateway CPU ms/request", ("cpu_ms_per_request", "gateway"), "{:.2f}"),
    ("  reporting CPU ms/request", ("cpu_ms_per_request", "reporting"), "{:.2f}"),
    ("PostgreSQL CPU ms/request", ("cpu_ms_per_request", "postgres"), "{:.2f}"),
    ("load generator (wrk) CPU ms/request", ("cpu_ms_per_request", "load_generator"), "{:.3f}"),
    ("machine CPU ms/request (every process)", ("cpu_ms_per_request", "machine"), "{:.2f}"),
    ("  of which other processes (not this bench: disturbance)", ("cpu_ms_per_request", "other_processes"),
     "{:.2f}"),
    ("gateway SQL statements/request", ("per_request", "gateway", "statements"), "{:.2f}"),
    ("reporting SQL statements/request", ("per_request", "reporting", "statements"), "{:.2f}"),
    ("gateway commits/request", ("per_request", "gateway", "commits"), "{:.2f}"),
    ("reporting commits/request", ("per_request", "reporting", "commits"), "{:.2f}"),
)


def _at(tree, path):
    for key in path:
        if not isinstance(tree, dict) or key not in tree:
            return None
        tree = tree[key]
    return tree


def side_by_side(title: str, rows, sides: dict[str, dict], workload: str) -> str:
    labels = list(sides)
    header = [title] + [f"{label} {sides[label]['ref']}" for label in labels]
    if len(labels) == 2:
        header.append("new/old")
    body = []
    for label, path, fmt in rows:
        values = [_at(sides[side].get(workload), path) for side in labels]
        row = [label] + ["–" if value is None else fmt.format(value) for value in values]
        if len(values) == 2:
            row.append(figures.ratio_text(values[0] / values[1] if None not in values and values[1] else None))
        body.append(row)
    return figures.table("", header, body)


def rounds_table(sides: dict[str, dict]) -> str:
    """Service CPU per dossier of each side's rounds, in the order run, and (two sides) each round's
    ratio: the spread of the ratios is what the run can resolve."""
    labels = list(sides)
    header = ["round"] + [f"{label} service CPU ms/dossier" for label in labels]
    per_side = [sides[label]["lifecycle"]["rounds"] for label in labels]
    rows, ratios = [], []
    for i, parts in enumerate(zip(*per_side)):
        row = [f"{i + 1} ({' '.join((labels if i % 2 == 0 else labels[::-1]))})"] + [
            f"{part['service_cpu_ms']:.1f}" for part in parts]
        if len(parts) == 2:
            ratios.append(parts[0]["service_cpu_ms"] / parts[1]["service_cpu_ms"])
            row.append(figures.ratio_text(ratios[-1]))
        rows.append(row)
    if ratios:
        header.append("new/old")
        rows.append(["median of the rounds' ratios", "", "", figures.ratio_text(statistics.median(ratios))])
        rows.append(["their range", "", "", f"{min(ratios):.2f}–{max(ratios):.2f}"])
    return figures.table("\nrounds in turn (each side as often first as second)", header, rows)


def report(results: dict) -> str:
    sides = results["sides"]
    parts = [f"machine: {results['machine']}"]
    if results.get("raw_broker_msgs_per_s"):
        parts.append(f"raw broker rate (kombu, persistent, confirmed, durable queue, consumer acking): "
                     f"{results['raw_broker_msgs_per_s']:.0f} msg/s")
    first = next(iter(sides.values()))
    if "lifecycle" in first:
        run = first["lifecycle"]
        parts.append(f"\nLIFECYCLE: {run['dossiers']} land dossiers, concurrency {run['concurrency']}; "
                     f"figures per dossier")
        for label, side in sides.items():
            parts.append(figures.services_table(f"{label} ({side['ref']}): {side['lifecycle']['elapsed_s']:.1f} s",
                                                side["lifecycle"]["services"]))
        if "ratios" in results:
            parts.append(figures.services_ratio_table("new/old", results["ratios"]["lifecycle"]["services"]))
        parts.append(side_by_side("lifecycle", LIFECYCLE_ROWS, sides, "lifecycle"))
        if len(run["rounds"]) > 1:
            parts.append(rounds_table(sides))
    if "floor" in results:
        parts.append(floor.report(results["floor"], sides["current"]["lifecycle"]))
    if "tracking" in first:
        run = first["tracking"]
        parts.append(f"\nTRACKING: {run['clients']} keep-alive clients (wrk) for {run['seconds']:.0f} s over "
                     f"{run['dossiers']} received dossiers, right key")
        parts.append(side_by_side("tracking", TRACKING_ROWS, sides, "tracking"))
        for label, side in sides.items():
            errors = {kind: count for kind, count in side["tracking"]["errors"].items() if count}
            if errors:
                parts.append(f"  {label}: wrk counted errors {errors} (status = answers other than 2xx/3xx)")
    parts.append(f"\nfigures: {results['out']}/figures.json; profiles and SQL by statement: "
                 f"{results['out']}/profile-*.txt; service logs under {results['out']}/<side>/")
    return "\n".join(parts)


def main(argv=None, workloads: tuple[str, ...] = WORKLOADS) -> None:
    args = parse(argv)
    infra.require_rabbitmq_for_bench()
    if "tracking" in workloads:
        tracking.ensure_wrk()
    out = (args.out or ROOT / "var" / "bench" / time.strftime("%Y%m%d-%H%M%S")).resolve()
    out.mkdir(parents=True, exist_ok=True)
    results = {"machine": machine(), "args": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
               "out": str(out), "sides": {}}
    print(f"machine: {results['machine']}", flush=True)
    raw = 0.0
    if "lifecycle" in workloads:
        print(f"measuring the raw broker rate ({args.raw_messages} messages) …", flush=True)
        raw = results["raw_broker_msgs_per_s"] = raw_broker_rate(args.raw_messages)
    trees = [("current", None)]
    if not args.no_baseline:
        trees.append(("baseline", args.baseline or baseline_ref()))
        require_connections(TWO_SIDES_CONNECTIONS)
    with contextlib.ExitStack() as stack:  # every side's services up together: the lifecycle's rounds in turn
        sides = []
        for label, ref in trees:
            root = stack.enter_context(checkout(ref)) if ref else ROOT
            described = describe(root)
            print(f"{label}: {described} from {root}; starting its five services …", flush=True)
            sides.append(stack.enter_context(Side(label, root, out, args.profile)))
            results["sides"][label] = {"ref": described}
        if "lifecycle" in workloads:
            for label, measured in lifecycle.in_turns(sides, args, raw, args.rounds).items():
                results["sides"][label]["lifecycle"] = measured
            (out / "figures.json").write_text(json.dumps(results, indent=1, ensure_ascii=False))  # so far
        if "tracking" in workloads:
            for label, measured in tracking.in_turns(sides, args, args.rounds).items():
                results["sides"][label]["tracking"] = measured
        print("stopping the services …", flush=True)
    if "lifecycle" in workloads and not args.no_floor:  # on a machine quiet again
        pattern = floor.Pattern.of_lifecycle(results["sides"]["current"]["lifecycle"]["services"])
        print(f"the nameko floor: {pattern.calls:.1f} calls, {pattern.events:.1f} events, "
              f"{pattern.deliveries:.1f} deliveries per dossier …", flush=True)
        results["floor"] = floor.measure(pattern, args.dossiers, args.concurrency, out / "floor")
    if len(results["sides"]) == 2:
        current, baseline = results["sides"]["current"], results["sides"]["baseline"]
        results["ratios"] = figures.ratios(current, baseline)
    (out / "figures.json").write_text(json.dumps(results, indent=1, ensure_ascii=False))
    print("\n" + report(results))
    if args.profile:
        print("--profile: the services' CPU above includes the sampler's own, listed in the profiles as "
              "bench/probe/sitecustomize.py:_install.<locals>.sample")


if __name__ == "__main__":
    main()
