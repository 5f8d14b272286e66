"""The faults the chaos suite injects, and when: a seeded plan of moments under load.

Each fault is a callable on the `Stack` that returns once it is over (the killed process restarted,
the database accepting connections again, the broker back); the recovery time is then measured from
that moment: until every instance answers its /health again, and until some dossier makes progress.
"""
from __future__ import annotations

import json
import random
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Callable

from motcua.config import SERVICES

# A marker in every poison body: it must never show up in a log line (personal data in a body would).
POISON_MARKER = "chaos-poison-0912345678"
# …and a header telling the parked copies apart: a parked copy's body is sealed (encrypted), so the
# marker no longer shows in it; parking keeps a message's headers.
POISON_HEADER = "x-chaos-poison"


@dataclass
class Fault:
    name: str
    at: float  # fraction of the dossiers submitted when it starts
    inject: Callable[["Stack"], dict]  # noqa: F821 — returns what it did (shown in the figures)


def kill(instance: str, down_for: float) -> Callable:
    def inject(stack) -> dict:
        stack.kill_instance(instance, down_for)
        return {"down_for_s": down_for}
    return inject


def close_connections(stack) -> dict:
    return {"connections_closed": stack.broker.close_connections()}


def restart_broker(down_for: float) -> Callable:
    def inject(stack) -> dict:
        stack.broker.restart_app(down_for)
        return {"down_for_s": down_for}
    return inject


def database_outage(service: str, seconds: float) -> Callable:
    def inject(stack) -> dict:
        return {"refused_for_s": seconds, "backends_terminated": stack.refuse_connections(service, seconds)}
    return inject


def duplicate_storm(seconds: float) -> Callable:
    """Every event published in a window of `seconds` is published once more (as a broker or relay that
    repeats itself would): the outbox rows of the window, sent again to their exchanges."""
    def inject(stack) -> dict:
        since = datetime.now(timezone.utc)
        time.sleep(seconds)
        return {"window_s": seconds, "events_published_again": stack.republish_outbox(since)}
    return inject


POISON = (
    # (what, body, content type): each must be parked, none may be dropped or logged
    ("truncated JSON", '{"event_id": "' + POISON_MARKER + '", "event_type": "dossier_rec', "application/json"),
    ("not JSON at all", "applicant " + POISON_MARKER + " <binh.tran@example.vn>", "text/plain"),
    ("JSON, not an event", json.dumps({"hello": POISON_MARKER}), "application/json"),
    ("an event of no known type", json.dumps({
        "event_id": "00000000-0000-4000-8000-000000000001", "event_type": "chaos_unknown", "source": "intake",
        "version": 1, "occurred_at": "2026-01-01T00:00:00+00:00", "data": {"phone": POISON_MARKER}}),
     "application/json"),
    ("an event breaking its contract", json.dumps({
        "event_id": "00000000-0000-4000-8000-000000000002", "event_type": "dossier_received", "source": "intake",
        "version": 1, "occurred_at": "2026-01-01T00:00:00+00:00", "data": {"dossier_code": POISON_MARKER}}),
     "application/json"),
)


def poison(stack) -> dict:
    """Every kind of poison into every service's event inbox."""
    injected = {}
    for queue in stack.inbox_queues():
        for _what, body, content_type in POISON:
            stack.broker.publish_raw(queue, body, content_type, {POISON_HEADER: 1})
        injected[queue] = len(POISON)
    stack.poison_injected.update(injected)
    return {"poison_per_queue": len(POISON), "queues": sorted(injected)}


def plan(rng: random.Random, instances: dict[str, list[str]], outage: tuple[float, float], full: bool) -> list[Fault]:
    """The faults in the order they fire: every instance killed (the short run: one of each service),
    connections closed, the broker restarted, each service's database refusing connections for a time
    drawn from `outage`, a duplicate storm, poison; at moments drawn between 5 % and 70 % of the submissions."""
    faults = []
    for service in SERVICES:
        victims = instances[service] if full else [rng.choice(instances[service])]
        for instance in victims:
            faults.append(Fault(f"SIGKILL {instance}", 0, kill(instance, round(rng.uniform(0.5, 3.0), 1))))
    faults.append(Fault("broker connections closed", 0, close_connections))
    faults.append(Fault("broker restarted", 0, restart_broker(round(rng.uniform(1.0, 5.0), 1))))
    for service in SERVICES:
        seconds = round(rng.uniform(*outage))
        faults.append(Fault(f"{service} database refuses connections {seconds} s", 0,
                            database_outage(service, seconds)))
    faults.append(Fault("duplicate storm", 0, duplicate_storm(10.0)))
    faults.append(Fault("poison messages", 0, poison))
    moments = sorted(rng.uniform(0.05, 0.7) for _ in faults)
    rng.shuffle(faults)
    for fault, at in zip(faults, moments):
        fault.at = at
    return faults
