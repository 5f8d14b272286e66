"""Prometheus metrics, one registry per service container, and its /metrics + /health port.

Labels never carry personal data: service, entrypoint, outcome, event type, queue, status.
"""
from __future__ import annotations

import hmac
import json
import logging
import time
from typing import Callable
from weakref import WeakKeyDictionary

import eventlet
from eventlet import wsgi
from nameko.extensions import DependencyProvider
from prometheus_client import (CollectorRegistry, Counter, Gauge, Histogram, disable_created_metrics,
                               generate_latest)
from prometheus_client.exposition import CONTENT_TYPE_LATEST

log = logging.getLogger(__name__)
# Every counter and histogram would also export a `_created` timestamp series: as many series again,
# which no dashboard or rule reads.
disable_created_metrics()

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)


class ServiceMetrics:
    """The standard metrics every Motcua service exposes."""

    def __init__(self, service: str):
        self.service = service
        self.registry = CollectorRegistry()
        r = self.registry
        self.calls = Counter("motcua_entrypoint_calls", "Entrypoint calls",
                             ["service", "entrypoint", "outcome"], registry=r)
        self.latency = Histogram("motcua_entrypoint_duration_seconds", "Entrypoint latency",
                                 ["service", "entrypoint", "outcome"], buckets=LATENCY_BUCKETS, registry=r)
        self.outbox_backlog = Gauge("motcua_outbox_backlog", "Outbox events not yet published",
                                    ["service"], registry=r)
        self.published = Counter("motcua_events_published", "Events published by the outbox relay",
                                 ["service", "event_type"], registry=r)
        self.publish_failures = Counter("motcua_outbox_publish_failures",
                                        "Outbox publish attempts that failed", ["service"], registry=r)
        self.redeliveries = Counter("motcua_event_retries", "Failed event deliveries sent back for a retry",
                                    ["service", "queue"], registry=r)
        self.dead_letters = Counter("motcua_dead_letters", "Messages parked in a dead-letter queue",
                                    ["service", "queue"], registry=r)
        self.duplicates = Counter("motcua_duplicate_events", "Events skipped as already applied",
                                  ["service", "consumer"], registry=r)

    def gauge_from(self, name: str, documentation: str, labels: list[str],
                   read: Callable[[], dict[tuple, float]]) -> None:
        """A gauge read at scrape time, e.g. dossiers by status from the service's own database."""
        registry = self.registry

        class _Collector:
            def collect(self):
                from prometheus_client.core import GaugeMetricFamily
                family = GaugeMetricFamily(name, documentation, labels=labels)
                try:
                    for label_values, value in read().items():
                        family.add_metric(list(label_values), value)
                except Exception:  # a scrape must not fail because the database is briefly away
                    log.warning("could not read %s", name, exc_info=True)
                yield family

        registry.register(_Collector())


def metrics_for(container) -> ServiceMetrics:
    """The metrics of one container (a registry per service, so two containers never clash)."""
    metrics = getattr(container, "_motcua_metrics", None)
    if metrics is None:
        metrics = container._motcua_metrics = ServiceMetrics(container.service_name)
    return metrics


def scrape_allowed(config: dict, authorization: str | None) -> bool:
    """May this scrape read /metrics? Without `METRICS_TOKEN` (development, demo) anyone may; with one
    (always in production: `motcua.config.metrics_token`) only `Authorization: Bearer <token>`, as
    Prometheus sends it (`authorization: {credentials_file: …}`). /health stays open: probes need it and it
    tells nothing but ok or what is down."""
    token = config.get("METRICS_TOKEN")
    if not token:
        return True
    scheme, _, given = (authorization or "").partition(" ")
    return scheme.lower() == "bearer" and hmac.compare_digest(given.strip().encode(), token.encode())


class Metrics(DependencyProvider):
    """Counts and times every entrypoint call; serves /metrics and /health on the service's port."""

    def __init__(self, port_config_key: str = "METRICS_PORTS"):
        self.port_config_key = port_config_key
        self.started: WeakKeyDictionary = WeakKeyDictionary()
        self.server = None
        self.address: tuple[str, int] | None = None  # where it listens, once started
        self.health_checks: list[tuple[str, Callable[[], None]]] = []

    def setup(self):
        self.metrics = metrics_for(self.container)

    def start(self):
        port = self.container.config.get(self.port_config_key, {}).get(self.container.service_name)
        if port is None:
            return
        # Never SO_REUSEPORT (eventlet's default): a second instance must fail to start, not share the port.
        sock = eventlet.listen((self.container.config.get("METRICS_HOST", "0.0.0.0"), int(port)), reuse_port=False)
        self.address = sock.getsockname()
        self.server = self.container.spawn_managed_thread(
            lambda: wsgi.server(sock, self._wsgi, log_output=False), identifier="metrics-server")
        log.info("%s metrics and health on %s:%s", self.container.service_name, *self.address)

    def stop(self):
        if self.server is not None:
            self.server.kill()
            self.server = None

    def kill(self):
        self.stop()

    def add_health_check(self, name: str, check: Callable[[], None]) -> None:
        self.health_checks.append((name, check))

    def health(self) -> dict:
        checks = {}
        for name, check in self._all_checks():
            try:
                check()
                checks[name] = "ok"
            except Exception as exc:  # report, don't raise: health answers with what is wrong
                checks[name] = f"error: {type(exc).__name__}"
        ok = all(v == "ok" for v in checks.values())
        return {"status": "ok" if ok else "error", "service": self.container.service_name, "checks": checks}

    def _all_checks(self):
        from motcua.db import Database
        for dependency in self.container.dependencies:
            if isinstance(dependency, Database):
                yield "database", dependency.ping
        yield "broker", self._broker_check
        yield from self.health_checks

    def _broker_check(self):
        from nameko.amqp.publish import get_connection
        with get_connection(self.container.config["AMQP_URI"]) as connection:
            connection.ensure_connection(max_retries=1, timeout=2)

    def _wsgi(self, environ, start_response):
        path = environ.get("PATH_INFO", "")
        if path == "/metrics" and not scrape_allowed(self.container.config, environ.get("HTTP_AUTHORIZATION")):
            start_response("401 Unauthorized", [("Content-Type", "application/json"),
                                                ("WWW-Authenticate", 'Bearer realm="metrics"')])
            return [b'{"error": {"code": "unauthorized", "message": "metrics need the scrape token"}}']
        if path == "/metrics":
            start_response("200 OK", [("Content-Type", CONTENT_TYPE_LATEST)])
            return [generate_latest(self.metrics.registry)]
        if path == "/health":
            body = self.health()
            status = "200 OK" if body["status"] == "ok" else "503 Service Unavailable"
            start_response(status, [("Content-Type", "application/json")])
            return [json.dumps(body).encode()]
        start_response("404 Not Found", [("Content-Type", "application/json")])
        return [b'{"error": {"code": "not_found", "message": "only /metrics and /health here"}}']

    def worker_setup(self, worker_ctx):
        self.started[worker_ctx] = time.perf_counter()

    def worker_result(self, worker_ctx, result=None, exc_info=None):
        started = self.started.pop(worker_ctx, None)
        if started is None:
            return
        outcome = "success" if exc_info is None else _outcome(exc_info[1])
        labels = (self.container.service_name, worker_ctx.entrypoint.method_name, outcome)
        self.metrics.calls.labels(*labels).inc()
        self.metrics.latency.labels(*labels).observe(time.perf_counter() - started)

    def get_dependency(self, worker_ctx):
        return self.metrics


def _outcome(exc: BaseException) -> str:
    from motcua.errors import MotcuaError
    return "client_error" if isinstance(exc, MotcuaError) else "error"


class GroupCountGauge(DependencyProvider):
    """A gauge of rows per value of its columns (each a label), read from the service's database at
    scrape time (e.g. dossiers by status). The columns must never hold personal data."""

    def __init__(self, name: str, documentation: str, *columns):
        self.name = name
        self.documentation = documentation
        self.columns = columns

    def setup(self):
        from sqlalchemy import func, select

        from motcua.db import Database

        database = next(d for d in self.container.dependencies if isinstance(d, Database))
        query = select(*self.columns, func.count()).group_by(*self.columns)

        def read():
            with database.engine.connect() as connection:
                return {tuple(str(value) for value in row[:-1]): row[-1] for row in connection.execute(query)}

        metrics_for(self.container).gauge_from(self.name, self.documentation, [c.key for c in self.columns], read)
