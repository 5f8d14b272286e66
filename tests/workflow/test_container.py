"""The workflow service in a real nameko container on the embedded bus: event in, tasks out per agency."""
from __future__ import annotations

import uuid
from datetime import timedelta

import eventlet
import pytest
from kombu import Connection, Exchange, Queue
from nameko.containers import ServiceContainer
from nameko.standalone.events import event_dispatcher, get_event_exchange
from nameko.testing.services import entrypoint_hook

from motcua import embedded
from motcua.contracts import make_event
from services.workflow.service import WorkflowService
from tests.infra import VERIFYING
from tests.workflow.support import CATALOG_DIR, COMMUNE, LAND, LAND_DEPT, LAND_OFFICE, MONDAY, staff, token

WAIT = 10  # seconds: a liveness guard, not a timing assertion


@pytest.fixture
def config(db_url):
    embedded.install()
    vhost = f"workflow-{uuid.uuid4().hex[:10]}"
    yield {"AMQP_URI": f"embedded:///{vhost}", "DB_URLS": {"workflow": db_url}, "CATALOG_DIR": str(CATALOG_DIR),
           "TIME_ZONE": "Asia/Ho_Chi_Minh", **VERIFYING, "max_workers": 4}
    embedded.reset(vhost)


def next_message(queue):
    with eventlet.Timeout(WAIT, False):
        while (message := queue.get(no_ack=True)) is None:
            eventlet.sleep(0.01)
        return message.payload
    pytest.fail(f"nothing arrived on {queue.name}")


def test_a_received_dossier_is_routed_to_each_agencys_task_queue(config):
    with Connection(config["AMQP_URI"]) as connection:
        channel = connection.default_channel
        tasks = Exchange("motcua.tasks", type="topic", durable=True)
        agency_queues = {code: Queue(f"agency-{code}", exchange=tasks, routing_key=f"task.{code}")(channel)
                         for code in (LAND_OFFICE, LAND_DEPT, COMMUNE)}
        results = Queue("probe-result-ready", exchange=get_event_exchange("workflow", config),
                        routing_key="result_ready")(channel)
        for queue in [*agency_queues.values(), results]:
            queue.declare()

        container = ServiceContainer(WorkflowService, config)
        container.start()
        try:
            received = make_event("intake", "dossier_received", {
                "code": "000.20.01.H56-260302-0001", "procedure_code": LAND, "procedure_name": "Cấp lại GCN",
                "field_code": "DD", "agency_code": COMMUNE, "channel": "online",
                "received_at": MONDAY, "due_at": MONDAY + timedelta(days=14),
                "received_by": f"receptionist@{COMMUNE}", "form": {}, "contact": {"full_name": "Nguyễn Văn A"}})
            event_dispatcher(config)("intake", "dossier_received", received)  # next_message waits for it

            for officer in (staff(LAND_OFFICE), staff(LAND_DEPT, "leader"), staff(COMMUNE)):
                assigned = next_message(agency_queues[officer.agency_code])
                assert assigned["event_type"] == "task_assigned"
                assert assigned["data"]["dossier_code"] == "000.20.01.H56-260302-0001"
                with entrypoint_hook(container, "complete_task") as complete:
                    done = complete(assigned["data"]["task_id"], "approve", None, token(officer))
                assert done["status"] == "done"

            ready = next_message(results)
            assert (ready["event_type"], ready["data"]["agency_code"]) == ("result_ready", COMMUNE)
            assert all(q.get() is None for q in agency_queues.values())
        finally:
            container.stop()
