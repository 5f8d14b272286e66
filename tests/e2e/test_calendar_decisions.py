"""A calendar decision recorded through the API reaches workflow as an event (no restart) over HTTP,
services in separate processes on real RabbitMQ and PostgreSQL: the open step's deadline moves with the
dossier's appointment."""
from datetime import datetime

import pytest

from tests.e2e.client import LAND_STEPS, Api

pytestmark = pytest.mark.e2e


def test_a_day_off_declared_through_the_api_moves_the_open_steps_deadline(platform):
    api = Api(platform.base_url)
    code = api.submit()["code"]
    received = api.receive(code)
    agency, role = LAND_STEPS[0]
    task = api.open_task(code, agency, role)
    step_due = datetime.fromisoformat(task["due_at"])
    # The day the step is due is declared a day off (a hypothetical decision, for the test).
    decision = {"date": step_due.date().isoformat(), "kind": "day_off", "source": "Công văn thử nghiệm (e2e)"}
    recorded = api.command("POST", "/api/v1/calendar/decisions", user="admin", json=decision)
    assert recorded.status_code == 201, recorded.text
    assert code in recorded.json()["rescheduled"]
    appointment = datetime.fromisoformat(api.call("GET", f"/api/v1/dossiers/{code}", user="admin").json()["due_at"])
    assert appointment > datetime.fromisoformat(received["due_at"])

    def moved(tasks):
        mine = next((t for t in tasks if t["dossier_code"] == code), None)
        return mine if mine and datetime.fromisoformat(mine["due_at"]) > step_due else None

    later = api.watch("/api/v1/tasks?status=open", f"{role}@{agency}", 60, moved,
                      lambda: f"the step of {code} still due {step_due}")
    # its last hours fall on the next working day, at the same hour
    assert datetime.fromisoformat(later["due_at"]).date() > step_due.date()
    assert datetime.fromisoformat(later["due_at"]).time() == step_due.time()
