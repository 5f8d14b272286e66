"""Deadlines on real RabbitMQ + PostgreSQL: a workflow container whose clock runs 30 days ahead routes a
received dossier, its SLA timer finds the step and the dossier overdue, announces each exactly once on
workflow's exchange, and the step shows in the agency leaders' overdue inbox. Two instances run at once,
each with its own timer (as a cluster scales workflow, deploy/k8s): still once."""
from __future__ import annotations

import time
from datetime import datetime, timedelta, timezone

from kombu import Connection, Queue, binding
from nameko.amqp.publish import Publisher
from nameko.containers import ServiceContainer
from nameko.standalone.events import get_event_exchange
from nameko.testing.services import entrypoint_hook

from motcua.config import ROOT, nameko_config
from motcua.contracts import make_event
from motcua.identity import Caller, issue_token
from services.workflow.service import WorkflowService
from tests import infra

LAND, LAND_OFFICE, COMMUNE = "1.012786", "000.12.01.H56", "000.20.01.H56"
DOSSIER = "000.20.01.H56-261123-0001"
AHEAD = timedelta(days=30)


def drain(queue) -> list[dict]:
    messages = []
    while (message := queue.get(no_ack=True)) is not None:
        messages.append(message.payload)
    return messages


def test_a_dossier_past_its_due_date_is_escalated_within_seconds(amqp_uri, pg_urls):
    config = {**nameko_config(amqp_uri), "DB_URLS": pg_urls, "CATALOG_DIR": str(ROOT / "deploy" / "catalog"),
              "METRICS_PORTS": {}, "SLA_CHECK_SECONDS": 1, "CLOCK_OFFSET_SECONDS": AHEAD.total_seconds()}
    intake_events = get_event_exchange("intake", config)
    with Connection(amqp_uri) as connection:
        workflow_events = get_event_exchange("workflow", config)
        probe = Queue("probe-sla", bindings=[binding(workflow_events, routing_key=key)
                                             for key in ("task_overdue", "dossier_overdue")])(connection.default_channel)
        probe.declare()

        workflow, second = ServiceContainer(WorkflowService, config), ServiceContainer(WorkflowService, config)
        workflow.start()
        second.start()
        try:
            now = datetime.now(timezone.utc)  # the real now: the dossier is due in 14 days, the service is 30 ahead
            Publisher(amqp_uri).publish(make_event("intake", "dossier_received", {
                "code": DOSSIER, "procedure_code": LAND, "procedure_name": "Cấp lại GCN", "field_code": "DD",
                "agency_code": COMMUNE, "channel": "online", "received_at": now, "due_at": now + timedelta(days=14),
                "received_by": f"receptionist@{COMMUNE}", "form": {}, "contact": {"full_name": "Nguyễn Văn A"}}),
                exchange=intake_events, routing_key="dossier_received", declare=[intake_events])

            seen: list[dict] = []
            assert infra.wait_for(lambda: seen.extend(drain(probe)) or len(seen) >= 2, timeout=30), seen
            time.sleep(3)  # three more checks of the timer: nothing is announced twice
            seen.extend(drain(probe))

            by_type = {message["event_type"]: message["data"] for message in seen}
            assert sorted(message["event_type"] for message in seen) == ["dossier_overdue", "task_overdue"]
            task_overdue, dossier_overdue = by_type["task_overdue"], by_type["dossier_overdue"]
            assert (task_overdue["dossier_code"], task_overdue["agency_code"], task_overdue["escalated_to_role"]) == (
                DOSSIER, LAND_OFFICE, "leader")
            assert datetime.fromisoformat(task_overdue["detected_at"]) >= now + AHEAD  # the service's own clock
            assert (dossier_overdue["dossier_code"], dossier_overdue["agency_code"],
                    dossier_overdue["current_agency_code"]) == (DOSSIER, COMMUNE, LAND_OFFICE)

            leader = issue_token(Caller(f"leader@{LAND_OFFICE}", LAND_OFFICE, ("leader",)), config["TOKEN_SIGNING_KEY"],
                                 timedelta(hours=1))
            with entrypoint_hook(workflow, "list_tasks") as list_tasks:
                [task] = list_tasks(leader, status="overdue")
            assert (task["id"], task["overdue"], task["escalated_to"]) == (task_overdue["task_id"], True, "leader")

            with entrypoint_hook(workflow, "check_deadlines") as check_deadlines:
                check_deadlines()  # driven by hand as well: still nothing new
            time.sleep(1)
            assert drain(probe) == []
        finally:
            workflow.stop()
            second.stop()
