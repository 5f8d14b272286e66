"""Motcua's Grafana dashboards, written as the provisioned JSON in deploy/grafana/dashboards/.

    .venv/bin/python deploy/grafana/dashboards.py     (tests/test_observability.py checks the files are current)

One place for the panels, so every dashboard has the same look and every query is checked the same way:
each expression parses (promtool) and names only metrics that Motcua, RabbitMQ's plugin or the PostgreSQL
exporter really export.
"""
from __future__ import annotations

import json
from pathlib import Path

HERE = Path(__file__).parent
DATASOURCE = {"type": "prometheus", "uid": "motcua-prometheus"}
# The chosen agencies' task queues (motcua/worker.py), not their dead-letter queues `….dead`.
AGENCY_QUEUES = 'queue=~"tasks\\\\.$agency", queue!~".+\\\\.dead"'


def panel(title: str, *exprs: str, unit: str = "short", kind: str = "timeseries",
          legend: str | tuple[str, ...] = "") -> dict:
    """`legend`: one legend format for every query, or one per query."""
    legends = legend if isinstance(legend, tuple) else (legend,) * len(exprs)
    return {"title": title, "type": kind, "datasource": DATASOURCE,
            "fieldConfig": {"defaults": {"unit": unit}, "overrides": []},
            "targets": [{"expr": expr, "refId": chr(ord("A") + i), "legendFormat": legends[i],
                         "datasource": DATASOURCE} for i, expr in enumerate(exprs)]}


def dashboard(uid: str, title: str, panels: list[dict], variables: list[dict] = ()) -> dict:
    laid = []
    for i, p in enumerate(panels):  # two panels a row, 12 columns each
        laid.append({**p, "id": i + 1, "gridPos": {"h": 8, "w": 12, "x": 12 * (i % 2), "y": 8 * (i // 2)}})
    return {"uid": uid, "title": title, "tags": ["motcua"], "timezone": "browser", "schemaVersion": 39,
            "version": 1, "refresh": "30s", "time": {"from": "now-24h", "to": "now"},
            "templating": {"list": list(variables)}, "panels": laid}


def variable(name: str, query: str) -> dict:
    return {"name": name, "type": "query", "datasource": DATASOURCE, "query": {"query": query, "refId": name},
            "definition": query, "includeAll": True, "multi": True, "refresh": 2, "current": {}}


DASHBOARDS = {
    "overview": dashboard("motcua-overview", "Motcua: overview", [
        panel("Dossiers in and out per hour", "motcua:dossiers_in:rate1h * 3600", "motcua:dossiers_out:rate1h * 3600",
              legend=("in", "out")),
        panel("Lifecycle step latency, p95 per service", "motcua:entrypoint_latency_seconds:p95_5m",
              unit="s", legend="{{service}}"),
        panel("Overdue tasks now", "motcua:tasks_overdue", kind="stat"),
        panel("Overdue tasks per agency", "topk(10, motcua_tasks_overdue)", legend="{{agency_code}}"),
        panel("Dossiers by status", "motcua_dossiers_by_status{service=\"intake\"}", legend="{{status}}"),
        panel("Public HTTP requests per second by status",
              "sum by (status) (rate(motcua_http_requests_total[5m]))", unit="reqps", legend="{{status}}"),
        panel("Services up", "up{job=\"motcua\"}", kind="stat", legend="{{service}}"),
        panel("Public tracking answers per second: cache hit, miss, stale",
              "sum by (outcome) (rate(motcua_tracking_answers_total[5m]))", unit="reqps", legend="{{outcome}}"),
    ]),
    "services": dashboard("motcua-services", "Motcua: per service", [
        panel("Calls per second", "sum by (entrypoint, outcome) (motcua:entrypoint_calls:rate5m{service=~\"$service\"})",
              unit="reqps", legend="{{entrypoint}} {{outcome}}"),
        panel("Latency p50 / p95 / p99",
              *(f"histogram_quantile({q}, sum by (le) (rate(motcua_entrypoint_duration_seconds_bucket"
                f"{{service=~\"$service\"}}[5m])))" for q in ("0.5", "0.95", "0.99")), unit="s",
              legend=("p50", "p95", "p99")),
        panel("Server errors (share of calls)", "motcua:entrypoint_errors:ratio_rate5m{service=~\"$service\"}",
              unit="percentunit", legend="{{service}}"),
        panel("Client errors (4xx) per second",
              "sum by (entrypoint) (motcua:entrypoint_calls:rate5m{service=~\"$service\", outcome=\"client_error\"})",
              unit="reqps", legend="{{entrypoint}}"),
        panel("Outbox backlog (unpublished events)", "motcua_outbox_backlog{service=~\"$service\"}",
              legend="{{service}}"),
        panel("Outbox lag: backlog growth and publish failures",
              "deriv(motcua_outbox_backlog{service=~\"$service\"}[10m])",
              "rate(motcua_outbox_publish_failures_total{service=~\"$service\"}[5m])",
              legend=("{{service}} growth", "{{service}} failures")),
        panel("Events published per second", "sum by (event_type) (rate(motcua_events_published_total"
              "{service=~\"$service\"}[5m]))", legend="{{event_type}}"),
        panel("Inbox: duplicates skipped per second", "sum by (consumer) (rate(motcua_duplicate_events_total"
              "{service=~\"$service\"}[5m]))", legend="{{consumer}}"),
        panel("Event retries and dead letters (last hour)",
              "sum by (queue) (increase(motcua_event_retries_total{service=~\"$service\"}[1h]))",
              "sum by (queue) (increase(motcua_dead_letters_total{service=~\"$service\"}[1h]))",
              legend=("{{queue}} retried", "{{queue}} parked")),
        panel("Notifications by channel and outcome", "sum by (channel, status) (rate(motcua_notifications_total[5m]))",
              legend="{{channel}} {{status}}"),
        panel("Notification dead letters awaiting a re-send", "motcua_notification_dead_letters_open",
              legend="{{channel}}"),
        panel("National portal pushes by state (only while sync is on)", "motcua_dvcqg_pushes", legend="{{state}}"),
    ], [variable("service", "label_values(motcua_entrypoint_calls_total, service)")]),
    "agencies": dashboard("motcua-agencies", "Motcua: per agency", [
        panel("Task queue depth (ready, not taken)",
              f"motcua:task_queue_depth{{{AGENCY_QUEUES}}}",
              legend="{{queue}}"),
        panel("Tasks being worked (taken, unacknowledged)",
              f"sum by (queue) (rabbitmq_queue_messages_unacked{{{AGENCY_QUEUES}}})", legend="{{queue}}"),
        panel("Workers connected per agency queue",
              f"sum by (queue) (rabbitmq_queue_consumers{{{AGENCY_QUEUES}}})", legend="{{queue}}"),
        panel("Oldest open task", "motcua_tasks_oldest_open_seconds{agency_code=~\"$agency\"}", unit="s",
              legend="{{agency_code}}"),
        panel("Open tasks", "motcua_tasks_open{agency_code=~\"$agency\"}", legend="{{agency_code}}"),
        panel("Overdue tasks", "motcua_tasks_overdue{agency_code=~\"$agency\"}", legend="{{agency_code}}"),
    ], [variable("agency", "label_values(motcua_tasks_open, agency_code)")]),
    "rabbitmq-postgresql": dashboard("motcua-infrastructure", "Motcua: RabbitMQ and PostgreSQL", [
        panel("RabbitMQ: messages ready and unacknowledged",
              "sum(rabbitmq_queue_messages_ready)", "sum(rabbitmq_queue_messages_unacked)",
              legend=("ready", "unacknowledged")),
        panel("RabbitMQ: publish and deliver rates",
              "sum(rate(rabbitmq_global_messages_received_total[5m]))",
              "sum(rate(rabbitmq_global_messages_delivered_total[5m]))", unit="reqps",
              legend=("published", "delivered")),
        panel("RabbitMQ: connections and channels", "sum(rabbitmq_connections)", "sum(rabbitmq_channels)",
              legend=("connections", "channels")),
        panel("RabbitMQ: memory used and its high watermark", "sum(rabbitmq_process_resident_memory_bytes)",
              "sum(rabbitmq_resident_memory_limit_bytes)", unit="bytes", legend=("used", "watermark")),
        panel("RabbitMQ: free disk", "min(rabbitmq_disk_space_available_bytes)", unit="bytes"),
        panel("PostgreSQL: up", "pg_up", kind="stat"),
        panel("PostgreSQL: connections per database vs max",
              "sum by (datname) (pg_stat_database_numbackends{datname=~\"motcua.*\"})",
              "max(pg_settings_max_connections)", legend=("{{datname}}", "max_connections")),
        panel("PostgreSQL: commits and rollbacks per second",
              "sum by (datname) (rate(pg_stat_database_xact_commit{datname=~\"motcua.*\"}[5m]))",
              "sum by (datname) (rate(pg_stat_database_xact_rollback{datname=~\"motcua.*\"}[5m]))",
              unit="reqps", legend=("{{datname}} commits", "{{datname}} rollbacks")),
        panel("PostgreSQL: database size", "pg_database_size_bytes{datname=~\"motcua.*\"}", unit="bytes",
              legend="{{datname}}"),
    ]),
}


def write() -> None:
    for name, board in DASHBOARDS.items():
        (HERE / "dashboards" / f"{name}.json").write_text(json.dumps(board, indent=1, ensure_ascii=False) + "\n")


if __name__ == "__main__":
    write()
