"""The chaos stack: the suite's own RabbitMQ node, fresh PostgreSQL databases, two instances of each
service as separate processes (tests/infra.py's `ServiceProcesses`), and what the faults and the final
figures need from them."""
from __future__ import annotations

import contextlib
import threading
import time
from datetime import datetime
from pathlib import Path

import requests
from nameko.standalone.events import get_event_exchange
from sqlalchemy import create_engine, text
from sqlalchemy.exc import OperationalError

from chaos.broker import Broker, BrokerCluster
from motcua.config import SERVICES
from motcua.outbox import ConfirmedPublisher, Outgoing
from tests import infra

# Small pools: ten service processes share PostgreSQL's 100 connections with other people's tests
# (a pool holds max_workers + 2 connections, as many again in overflow).
STACK_ENV = {"MOTCUA_MAX_WORKERS": "4", "MOTCUA_TOKEN_TTL_SECONDS": "86400", "MOTCUA_LOG_LEVEL": "INFO",
             "WORKFLOW_SLA_CHECK_SECONDS": "20"}


class Stack:
    def __init__(self, out: Path, instances: int = 2, broker: Broker | BrokerCluster | None = None,
                 extra_env: dict | None = None):
        self.out = out
        self.instances = instances
        self.broker = broker or Broker(out)
        self.env = {**STACK_ENV, **(extra_env or {})}
        self.urls: dict[str, str] = {}
        self.services: infra.ServiceProcesses | None = None
        self.engines: dict[str, object] = {}
        self.admin = infra._admin_engine()
        self.poison_injected: dict[str, int] = {}
        self.unexpected_exits: list[dict] = []
        self.peak_depth = {"total": 0, "queue": None, "queue_depth": 0}
        self._down: set[str] = set()  # instances a fault stopped on purpose
        self._stopping = threading.Event()
        self._lock = threading.Lock()
        self.started_at = time.monotonic()

    def __enter__(self) -> "Stack":
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *_exc) -> None:
        self.stop()

    def start(self) -> None:
        if not infra._port_open("127.0.0.1", 5432):
            raise SystemExit(infra.HOW_TO_START_PG)
        print(f"chaos: starting RabbitMQ node {self.broker.node} on port {self.broker.port} …", flush=True)
        self.broker.start()
        self.urls = infra.create_service_databases()
        self.engines = {s: create_engine(url, pool_size=1, max_overflow=1) for s, url in self.urls.items()}
        self.services = infra.ServiceProcesses(self.broker.amqp_uri, self.urls, self.out, extra_env=self.env,
                                               instances=self.instances)
        print(f"chaos: starting {self.instances} instances of each service …", flush=True)
        self.services.start_all()
        for watcher in (self._supervise, self._sample_queues):
            threading.Thread(target=watcher, daemon=True).start()

    def stop(self) -> dict:
        """Stops everything (once); returns the instances that did not stop within their grace period."""
        if self._stopping.is_set():
            return {}
        self._stopping.set()
        slow = {}
        if self.services is not None:
            for name, process in self.services.processes.items():
                with contextlib.suppress(ProcessLookupError):
                    process.terminate()
            for name, process in self.services.processes.items():
                try:
                    infra.stop_process(process, timeout=20)
                except AssertionError as exc:
                    slow[name] = str(exc).splitlines()[0]
        for engine in self.engines.values():
            engine.dispose()
        self.broker.stop()
        if self.urls:
            infra.drop_databases(self.urls)
        self.admin.dispose()
        return slow

    # -- processes ------------------------------------------------------------------------------------
    @property
    def instance_names(self) -> list[str]:
        return [name for names in self.services.names.values() for name in names]

    def kill_instance(self, name: str, down_for: float) -> None:
        with self._lock:
            self._down.add(name)
        try:
            self.services.kill(name)
            time.sleep(down_for)
            self.services.start(name)
        finally:
            with self._lock:
                self._down.discard(name)

    def _supervise(self) -> None:
        """A process manager's part: an instance that exits on its own is recorded and started again."""
        while not self._stopping.wait(0.5):
            for name, process in list(self.services.processes.items()):
                with self._lock:
                    if name in self._down or process.poll() is None or self._stopping.is_set():
                        continue
                    self.unexpected_exits.append({"instance": name, "returncode": process.returncode,
                                                  "at_s": round(time.monotonic() - self.started_at, 1)})
                    print(f"\nchaos: {name} exited on its own ({process.returncode}); restarting it", flush=True)
                    self.services.start(name)

    def unhealthy(self) -> dict[str, str]:
        """Instances whose own /health does not answer 200 (a gateway's is the platform's)."""
        failing = {}
        for name in self.instance_names:
            if name in self.services.metrics_ports:
                url = f"http://127.0.0.1:{self.services.metrics_ports[name]}/health"
            else:
                url = f"{self.services.base_urls[self.services.names['gateway'].index(name)]}/health"
            try:
                response = requests.get(url, timeout=5)
                if response.status_code != 200:
                    failing[name] = f"{response.status_code} {response.text[:200]}"
            except requests.RequestException as exc:
                failing[name] = type(exc).__name__
        return failing

    # -- the broker -----------------------------------------------------------------------------------
    def inbox_queues(self) -> list[str]:
        queues = self.broker.queues()
        return [f"inbox.{service}" for service in SERVICES if f"inbox.{service}" in queues]

    def _sample_queues(self) -> None:
        while not self._stopping.wait(1.0):
            with contextlib.suppress(Exception):  # the broker restarting: no sample this second
                depths = {name: n for name, n in self.broker.queues().items() if not name.endswith(".dead")}
                total = sum(depths.values())
                self.peak_depth["total"] = max(self.peak_depth["total"], total)
                if depths:
                    queue, depth = max(depths.items(), key=lambda item: item[1])
                    if depth > self.peak_depth["queue_depth"]:
                        self.peak_depth.update(queue=queue, queue_depth=depth)

    def republish_outbox(self, since: datetime) -> int:
        """Every event the services wrote to their outboxes since `since`, published once more."""
        publisher = ConfirmedPublisher(self.broker.amqp_uri)
        count = 0
        try:
            for service in self.engines:
                rows = self.query(service, "SELECT event_type, exchange, routing_key, payload FROM outbox "
                                           "WHERE created_at >= :since ORDER BY id", since=since)
                messages = [Outgoing(row.payload, get_event_exchange(service, {}) if row.exchange is None
                                     else _topic(row.exchange), row.routing_key or row.event_type,
                                     {"event_id": row.payload["event_id"], "event_type": row.event_type})
                            for row in rows]
                for start in range(0, len(messages), 200):
                    publisher.publish_all(messages[start:start + 200])
                count += len(messages)
        finally:
            publisher.close()
        return count

    # -- the databases --------------------------------------------------------------------------------
    def database_name(self, service: str) -> str:
        return self.urls[service].rsplit("/", 1)[1]

    def refuse_connections(self, service: str, seconds: float) -> int:
        """`service`'s database refuses every connection for `seconds`, its open ones cut at once; returns
        how many were cut. Only this suite's database is touched."""
        name = self.database_name(service)
        with self.admin.connect() as connection:
            connection.exec_driver_sql(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS false')
            try:
                cut = connection.execute(text(
                    "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                    "WHERE datname = :name AND pid <> pg_backend_pid()"), {"name": name}).scalar_one()
                self.engines[service].dispose()
                time.sleep(seconds)
            finally:
                connection.exec_driver_sql(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS true')
        return int(cut)

    def query(self, service: str, sql: str, patience: float = 120, **params) -> list:
        """Rows of `sql` in `service`'s database, waiting out an outage the suite injected."""
        deadline = time.monotonic() + patience
        while True:
            try:
                with self.engines[service].connect() as connection:
                    return connection.execute(text(sql), params).all()
            except OperationalError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(1)


def _topic(name: str):
    from kombu import Exchange
    return Exchange(name, type="topic", durable=True)
