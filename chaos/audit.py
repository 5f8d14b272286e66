"""What the chaos run left behind, read from each service's own database, the broker and the logs once
the platform is quiet: stuck dossiers and where, duplicate side effects, lost events, parked messages,
unsent outbox rows, the report against intake's truth."""
from __future__ import annotations

import json
import re
from collections import Counter
from pathlib import Path

from chaos.faults import POISON_HEADER, POISON_MARKER
from chaos.load import Load
from chaos.stack import Stack
from services.reporting.service import SUBSCRIPTIONS


def _extra(counts) -> int:
    """Copies beyond the first, summed over keys."""
    return sum(n - 1 for n in counts if n > 1)


def returned_codes(stack: Stack) -> set[str]:
    """intake's word on which dossiers are returned (a client refused a retry may not know it)."""
    return {row.code for row in stack.query("intake", "SELECT code FROM dossiers WHERE status = 'returned'")}


def stuck(stack: Stack, load: Load, returned: set[str]) -> list[dict]:
    """Every planned dossier intake has not returned, and where it is."""
    out = []
    for dossier in load.dossiers:
        if dossier.code in returned:
            continue
        where = {"number": dossier.number, "code": dossier.code, "client_stage": dossier.stage,
                 "client_error": dossier.error}
        if dossier.code:
            status = stack.query("intake", "SELECT status FROM dossiers WHERE code = :code", code=dossier.code)
            where["intake_status"] = status[0].status if status else None
            where["open_tasks"] = [f"{row.step} @ {row.agency_code}" for row in stack.query(
                "workflow", "SELECT step, agency_code FROM tasks WHERE dossier_code = :code AND status = 'open'",
                code=dossier.code)]
            run = stack.query("workflow", "SELECT status FROM dossier_processes WHERE dossier_code = :code",
                              code=dossier.code)
            where["run_status"] = run[0].status if run else None
        out.append(where)
    return out


def duplicates(stack: Stack, load: Load) -> dict:
    codes = [row.code for row in stack.query("intake", "SELECT code FROM dossiers")]
    client_codes = {d.code for d in load.dossiers if d.code}
    actions = Counter()
    for row in stack.query("intake", "SELECT code, history FROM dossiers"):
        actions.update((row.code, entry.get("action")) for entry in row.history or [])
    tasks = stack.query("workflow", "SELECT count(*) AS n FROM tasks GROUP BY dossier_code, step_index, agency_code")
    deliveries = stack.query("notify", "SELECT count(*) AS n FROM deliveries "
                                       "GROUP BY dossier_code, event_type, channel, recipient_hash")
    emitted = Counter()
    for service, version in (("intake", "dossier_version"), ("workflow", "run_version")):
        for row in stack.query(service, "SELECT event_type, exchange, payload FROM outbox"):
            data = row.payload.get("data", {})
            if version in data:
                emitted[(service, row.exchange, row.event_type, data.get("dossier_code", data.get("code")),
                         data.get("task_id"), data[version])] += 1
    stored = Counter()
    for row in stack.query("reporting", "SELECT source, event_type, dossier_code, data FROM events"):
        version = row.data.get("dossier_version", row.data.get("run_version"))
        if version is not None:
            stored[(row.source, row.event_type, row.dossier_code, row.data.get("task_id"), version)] += 1
    return {
        "dossier_codes": _extra(Counter(codes).values()),
        "ghost_dossiers": len(set(codes) - client_codes),  # stored for a submission whose answer was lost
        "actions": _extra(actions.values()),
        "tasks": _extra(row.n for row in tasks),
        "deliveries": _extra(row.n for row in deliveries),
        "events_emitted": _extra(emitted.values()),
        "events_stored_by_reporting": _extra(stored.values()),
        "examples": [str(key) for key, n in list(emitted.items()) + list(stored.items()) if n > 1][:5],
    }


def code_gaps(stack: Stack) -> dict:
    """Numbers missing from each agency's day of dossier codes (`{agency}-{yyMMdd}-{NNNN}`, numbered from
    0001 without a gap however many instances submit at once: a rolled-back submission gives its number
    back)."""
    days: dict[str, set[int]] = {}
    for row in stack.query("intake", "SELECT code FROM dossiers"):
        prefix, number = row.code.rsplit("-", 1)
        days.setdefault(prefix, set()).add(int(number))
    missing = {prefix: sorted(set(range(1, max(numbers) + 1)) - numbers) for prefix, numbers in days.items()}
    missing = {prefix: numbers for prefix, numbers in missing.items() if numbers}
    return {"total": sum(len(numbers) for numbers in missing.values()),
            "examples": [f"{prefix}-{n:04d}" for prefix, numbers in missing.items() for n in numbers][:5]}


def lost_events(stack: Stack, parked_ids: set[str]) -> dict:
    """Events an owner committed (its outbox) that reporting, which hears every one of them, neither
    stored nor parked."""
    heard = {row.event_id for row in stack.query("reporting", "SELECT event_id FROM events")} | parked_ids
    lost = Counter()
    for service in ("intake", "workflow"):
        for row in stack.query(service, "SELECT event_id, event_type FROM outbox"):
            if (service, row.event_type) in SUBSCRIPTIONS and row.event_id not in heard:
                lost[f"{service}.{row.event_type}"] += 1
    received = stack.query("intake", "SELECT code FROM dossiers WHERE received_at IS NOT NULL")
    runs = {row.dossier_code for row in stack.query("workflow", "SELECT dossier_code FROM dossier_processes")}
    # not counted as lost: their dossier_received may be parked (then it shows in the parked figure)
    without_run = sum(1 for row in received if row.code not in runs)
    return {"total": sum(lost.values()), "by_type": dict(lost), "received_without_run": without_run}


def parked(stack: Stack) -> dict:
    """Every dead-letter queue's messages, the injected poison (its header) told from the rest."""
    poison, other, samples, reporting_ids = Counter(), Counter(), [], set()
    for queue, depth in stack.broker.queues().items():
        if not queue.endswith(".dead") or not depth:
            continue
        messages = stack.broker.call("POST", f"/queues/{stack.broker.vhost}/{queue}/get", json={
            "count": depth, "ackmode": "ack_requeue_true", "encoding": "auto"}).json()
        for message in messages:
            if POISON_HEADER in (message.get("properties", {}).get("headers") or {}):
                poison[queue] += 1
            else:
                other[queue] += 1
                if queue == "inbox.reporting.dead" and isinstance(message.get("payload"), str):
                    reporting_ids.update(re.findall(r'"event_id": ?"([0-9a-f-]{36})"', message["payload"]))
                headers = message.get("properties", {}).get("headers", {}) or {}
                if len(samples) < 10:
                    samples.append({"queue": queue, "error": str(headers.get("x-motcua-error", ""))[:300]})
    injected = stack.poison_injected
    missing = {f"{q}.dead": n - poison.get(f"{q}.dead", 0) for q, n in injected.items()
               if n - poison.get(f"{q}.dead", 0)}
    return {"beyond_poison": sum(other.values()), "by_queue": dict(other), "poison_parked": sum(poison.values()),
            "poison_injected": sum(injected.values()), "poison_not_parked": missing, "samples": samples,
            "reporting_event_ids": reporting_ids}


def outbox_unsent(stack: Stack) -> dict:
    return {service: stack.query(service, "SELECT count(*) AS n FROM outbox WHERE published_at IS NULL")[0].n
            for service in stack.urls}


def report_vs_truth(stack: Stack) -> dict:
    truth = stack.query("intake", """
        SELECT count(*) FILTER (WHERE received_at IS NOT NULL) AS received,
               count(*) FILTER (WHERE result_ready_at IS NOT NULL) AS resolved,
               count(*) FILTER (WHERE received_at IS NOT NULL AND result_ready_at IS NULL
                                AND withdrawn_at IS NULL) AS open,
               count(*) AS dossiers FROM dossiers""")[0]
    buckets = {row.bucket: int(row.n) for row in stack.query(
        "reporting", "SELECT bucket, sum(n) AS n FROM report_counts WHERE grain = 'day' GROUP BY bucket")}
    report = {
        "received": buckets.get("received", 0),
        "resolved": sum(n for b, n in buckets.items() if b.startswith("resolved.") and b != "resolved.seconds"),
        "open": sum(n for b, n in buckets.items() if b.startswith("open.in.")) -
                sum(n for b, n in buckets.items() if b.startswith("open.out.")),
        "dossiers": stack.query("reporting", "SELECT count(*) AS n FROM dossier_facts WHERE status IS NOT NULL")[0].n,
    }
    statuses = {row.code: row.status for row in stack.query("intake", "SELECT code, status FROM dossiers")}
    mismatched = sum(1 for row in stack.query("reporting", "SELECT code, status FROM dossier_facts")
                     if row.code in statuses and row.status != statuses[row.code])
    rows = {key: {"report": report[key], "truth": int(getattr(truth, key))} for key in report}
    return {"rows": rows, "status_mismatches": mismatched,
            "difference": sum(abs(r["report"] - r["truth"]) for r in rows.values()) + mismatched}


LOG_PATTERNS = {
    "tracebacks": "Traceback (most recent call last)",
    "parked": "parked a message",
    "too many clients": "too many clients",
    "container killed": "killing",
    "double stop (re-send)": "already-triggered event",
    "relay failures": "outbox relay failed",
}
_TIMESTAMP = re.compile(r"^\S+ \S+ ")
_SERIOUS = ("ERROR", "CRITICAL")


def _error_message(line: str) -> str | None:
    """The message of an ERROR or CRITICAL line, without its time, from a JSON log line (the services'
    default, motcua.logs) or a text one (MOTCUA_LOG_FORMAT=text); None for any other line."""
    if line.startswith("{"):
        try:
            record = json.loads(line)
        except ValueError:
            return None
        if record.get("level") not in _SERIOUS:
            return None
        return f"{record['level']} {record.get('logger', '')}: {record.get('message', '')}"[:240]
    if any(f" {level} " in line for level in _SERIOUS):
        return _TIMESTAMP.sub("", line)[:240]
    return None


def logs(out: Path) -> dict:
    found = {"poison_bodies_logged": 0, **{name: 0 for name in LOG_PATTERNS}}
    samples: dict[str, list[str]] = {}
    for path in sorted(out.glob("*.log")):
        errors: list[str] = []
        for line in path.read_text(errors="replace").splitlines():
            if POISON_MARKER in line:
                found["poison_bodies_logged"] += 1
            for name, needle in LOG_PATTERNS.items():
                if needle in line:
                    found[name] += 1
            message = _error_message(line)
            if message and message not in errors and len(errors) < 5:
                errors.append(message)
        if errors:
            samples[path.stem] = errors
    return {"counts": found, "error_samples": samples}
