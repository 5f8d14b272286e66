"""Benchmark: N dossiers through their whole life over HTTP, services as separate processes on real
RabbitMQ + PostgreSQL; compared with the raw broker rate measured in the same run.

    make bench BENCH_ARGS="--dossiers 200 --concurrency 8"
"""
from __future__ import annotations

import os

os.environ.setdefault("PSYCOPG_WAIT_FUNC", "wait_select")

import argparse  # noqa: E402
import platform  # noqa: E402
import statistics  # noqa: E402
import tempfile  # noqa: E402
import threading  # noqa: E402
import time  # noqa: E402
import uuid  # noqa: E402
from concurrent.futures import ThreadPoolExecutor  # noqa: E402
from pathlib import Path  # noqa: E402

from kombu import Connection, Exchange, Queue  # noqa: E402

from motcua.progress import progress  # noqa: E402
from tests import infra  # noqa: E402
from tests.e2e.client import COMMUNE, LAND_STEPS, Api  # noqa: E402

# Messages on the bus for one land dossier: 6 intake events, 3 task_assigned (+3 copies to the agency
# exchange), 3 task_completed, 1 result_ready = 16 published, each delivered to 1–3 queues.
MESSAGES_PER_DOSSIER = 16


def machine() -> str:
    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), platform.processor() or "unknown CPU")
    return f"{os.cpu_count()} cores, {cpu}, Python {platform.python_version()}, {platform.system()} {platform.release()}"


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(p / 100 * (len(ordered) - 1))))]


def raw_broker_rate(amqp_uri: str, count: int) -> float:
    """kombu persistent publishes, each confirmed, to a durable queue that a consumer acks."""
    exchange = Exchange("bench.raw", type="direct", durable=True)
    queue = Queue(f"bench.raw.{uuid.uuid4().hex[:6]}", exchange=exchange, routing_key="raw", durable=True)
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
                    try:
                        connection.drain_events(timeout=1)
                    except TimeoutError:
                        pass

    with Connection(amqp_uri, transport_options={"confirm_publish": True}) as connection:
        queue(connection.default_channel).declare()
        consumer = threading.Thread(target=consume, daemon=True)
        consumer.start()
        producer = connection.Producer(serializer="json")
        started = time.perf_counter()
        for i in range(count):
            producer.publish({"n": i, "pad": "x" * 400}, exchange=exchange, routing_key="raw",
                             delivery_mode=2, declare=[queue] if i == 0 else [])
        received.wait(120)
        elapsed = time.perf_counter() - started
        queue(connection.default_channel).delete()
    return count / elapsed


def cpu_seconds(pid: int) -> float:
    """User + system CPU time a process has used (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


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


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.lifecycle")
    parser.add_argument("--dossiers", type=int, default=100)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--raw-messages", type=int, default=5000)
    parser.add_argument("--submissions", type=int, default=200, help="sequential submissions timed alone")
    args = parser.parse_args(argv)

    infra.require_rabbitmq_for_bench()
    vhost = f"motcua-bench-{uuid.uuid4().hex[:8]}"
    infra.create_vhost(vhost)
    urls = infra.create_service_databases()
    workdir = Path(tempfile.mkdtemp(prefix="motcua-bench-"))
    services = infra.ServiceProcesses(infra.amqp_uri(vhost), urls, workdir)
    try:
        print(f"machine: {machine()}")
        print("starting the five services as processes …", flush=True)
        services.start_all()
        api = Api(services.base_url)
        for user in ["admin", f"receptionist@{COMMUNE}"] + [f"{role}@{agency}" for agency, role in LAND_STEPS]:
            api.token(user)  # log in once, before the threads share the cached tokens
        latencies: list[float] = []
        done = [0]
        lock = threading.Lock()

        def run(_):
            one_dossier(api, latencies)
            with lock:
                done[0] += 1
                progress("dossiers", done[0], args.dossiers)

        quiet: list[float] = []
        for i in range(args.submissions):
            begun = time.perf_counter()
            api.submit(key=uuid.uuid4().hex)
            quiet.append(time.perf_counter() - begun)
            progress("sequential submissions", i + 1, args.submissions)
        cpu_before = {name: cpu_seconds(p.pid) for name, p in services.processes.items()}
        started = time.perf_counter()
        with ThreadPoolExecutor(args.concurrency) as pool:
            list(pool.map(run, range(args.dossiers)))
        elapsed = time.perf_counter() - started
        rate = args.dossiers / elapsed
        cpu = {name: cpu_seconds(p.pid) - cpu_before[name] for name, p in services.processes.items()}
        print(f"measuring the raw broker rate ({args.raw_messages} messages) …", flush=True)
        raw = raw_broker_rate(infra.amqp_uri(vhost), args.raw_messages)
        bus_rate = rate * MESSAGES_PER_DOSSIER
        print(f"dossiers through the whole lifecycle: {args.dossiers} in {elapsed:.1f} s = {rate:.1f} dossiers/s "
              f"(concurrency {args.concurrency})")
        print(f"submit latency, one client, nothing else running ({args.submissions} submissions): "
              f"p50 {percentile(quiet, 50) * 1000:.1f} ms, p99 {percentile(quiet, 99) * 1000:.1f} ms")
        print(f"submit latency under the lifecycle load: p50 {percentile(latencies, 50) * 1000:.1f} ms, "
              f"p99 {percentile(latencies, 99) * 1000:.1f} ms, mean {statistics.mean(latencies) * 1000:.1f} ms")
        print("CPU per dossier by service: " + ", ".join(
            f"{name} {seconds / args.dossiers * 1000:.0f} ms" for name, seconds in sorted(cpu.items(), key=lambda c: -c[1])))
        print(f"raw broker rate (kombu, persistent, confirmed, durable queue, consumer acking): {raw:.0f} msg/s")
        print(f"platform bus traffic: {bus_rate:.0f} msg/s ({MESSAGES_PER_DOSSIER} published per dossier) "
              f"= {bus_rate / raw:.3f} of the raw broker rate; one dossier costs "
              f"{raw / rate:.0f} raw-broker message times")
    finally:
        services.stop_all()
        infra.delete_vhost(vhost)
        infra.drop_databases(urls)


if __name__ == "__main__":
    main()
