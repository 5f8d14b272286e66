"""The workflow service's entrypoints (nameko worker_factory): translation, validation, authorization."""
from __future__ import annotations

import json
from dataclasses import replace
from datetime import date, datetime, timedelta

import pytest
from nameko.containers import ServiceContainer
from nameko.testing.services import worker_factory
from prometheus_client import generate_latest

from motcua.errors import Forbidden, IllegalTransition, NotFound, Unauthorized, ValidationFailed
from motcua.revocation import AccessCache
from motcua.identity import Caller
from motcua.metrics import metrics_for
from services.workflow.service import WorkflowService
from tests.infra import VERIFYING
from tests.workflow.support import (
    ADMIN,
    CATALOG_DIR,
    COMMUNE,
    LAND,
    LAND_DEPT,
    LAND_OFFICE,
    TZ,
    calendar_decided,
    received,
    staff,
    token,
)


def test_a_dossier_travels_three_agencies_through_the_rpc_api(service, clock):
    service.on_dossier_received(received())
    officers = [staff(LAND_OFFICE), staff(LAND_DEPT, "leader"), staff(COMMUNE)]
    for officer in officers:
        clock.now += timedelta(days=1)
        [task] = service.list_tasks(token(officer))
        assert set(task) >= {"id", "dossier_code", "agency_code", "step", "role", "due_at", "status", "assigned_at"}
        assert task["agency_code"] == officer.agency_code
        assert task["due_at"].endswith("+07:00")
        done = service.complete_task(task["id"], "approve", "đã xử lý", token(officer))
        assert (done["status"], done["completed_by"], done["note"]) == ("done", officer.username, "đã xử lý")
        json.dumps(done)  # crosses RPC as JSON

    detail = service.get_task(done["id"], token(officers[-1]))
    assert [h["agency_code"] for h in detail["history"]] == [o.agency_code for o in officers]
    assert all(h["completed_at"].endswith("+07:00") and h["timeliness"] for h in detail["history"])
    assert service.dossier_history(detail["dossier_code"], token(officers[0])) == detail["history"]
    assert service.list_tasks(token(ADMIN)) == []
    assert [t["status"] for t in service.list_tasks(token(ADMIN), status="all")] == ["done"] * 3

    with pytest.raises(IllegalTransition):
        service.complete_task(done["id"], "approve", None, token(officers[-1]))


def test_a_duplicate_delivery_is_ignored(service):
    event = received()
    service.on_dossier_received(event)
    service.on_dossier_received(event)
    assert len(service.list_tasks(token(ADMIN))) == 1


def test_an_unknown_procedure_raises_for_the_dead_letter_queue(service):
    with pytest.raises(NotFound):
        service.on_dossier_received(received(procedure_code="9.999999"))


def test_another_agencys_task_is_refused(service):
    service.on_dossier_received(received())
    [task] = service.list_tasks(token(staff(LAND_OFFICE)))
    assert service.list_tasks(token(staff(COMMUNE))) == []
    with pytest.raises(Forbidden):
        service.complete_task(task["id"], "approve", None, token(staff(COMMUNE, "leader")))
    with pytest.raises(Forbidden):
        service.get_task(task["id"], token(staff(COMMUNE)))
    assert service.list_tasks(token(staff(LAND_OFFICE)))[0]["status"] == "open"


@pytest.mark.parametrize("call, field", [
    (lambda s: s.complete_task("x", "reject", None, token(staff(LAND_OFFICE))), "outcome"),
    (lambda s: s.complete_task("x", None, None, token(staff(LAND_OFFICE))), "outcome"),
    (lambda s: s.list_tasks(token(staff(LAND_OFFICE)), status="late"), "status"),
])
def test_bad_input_names_the_field(service, call, field):
    with pytest.raises(ValidationFailed) as caught:
        call(service)
    assert caught.value.field == field


@pytest.mark.parametrize("bad_token", [None, "not-a-jwt", token(ADMIN)[:-3] + "abc"])
def test_calls_need_a_valid_token(service, bad_token):
    with pytest.raises(Unauthorized):
        service.list_tasks(bad_token)
    with pytest.raises(Unauthorized):  # issue 12: the hand-overs of any dossier were read without a caller
        service.dossier_history("000.20.01.H56-260302-0001", bad_token)


def test_a_dossiers_hand_overs_are_for_staff_of_an_agency_involved_in_it(service):
    """Issue 12: `dossier_history` took no caller; any process on the bus read any dossier's hand-overs."""
    service.on_dossier_received(received())
    [task] = service.list_tasks(token(ADMIN))
    code = task["dossier_code"]
    for involved in (staff(LAND_OFFICE), staff(COMMUNE, "receptionist"), staff(LAND_DEPT, "leader")):
        assert [h["id"] for h in service.dossier_history(code, token(involved))] == [task["id"]]
    for outsider in (staff("000.20.02.H56"), Caller("citizen", None, ("applicant",)),
                     Caller("system@x", LAND_OFFICE, ("system",))):
        with pytest.raises(Forbidden):
            service.dossier_history(code, token(outsider))
    assert service.dossier_history("000.20.01.H56-260302-9999", token(staff(LAND_OFFICE))) == []


def test_get_process(service):
    process = service.get_process(LAND)
    contract = [{key: step[key] for key in ("name", "agency_code", "role", "allowance")} for step in process["steps"]]
    assert contract == [
        {"name": "Thẩm định hồ sơ, cập nhật cơ sở dữ liệu đất đai", "agency_code": LAND_OFFICE,
         "role": "specialist", "allowance": {"value": 6, "unit": "working_days"}},
        {"name": "Ký cấp lại Giấy chứng nhận", "agency_code": LAND_DEPT, "role": "leader",
         "allowance": {"value": 3, "unit": "working_days"}},
        {"name": "Vào sổ cấp Giấy chứng nhận, chuyển trả kết quả", "agency_code": COMMUNE,
         "role": "specialist", "allowance": {"value": 1, "unit": "working_days"}},
    ]
    assert process["stages"] == [[{"steps": [0], "when": None}], [{"steps": [1], "when": None}],
                                 [{"steps": [2], "when": None}]]
    assert process["steps"][0]["actions"] == ["approve", "send_back", "request_supplement", "refuse", "stop"]
    with pytest.raises(NotFound):
        service.get_process("9.999999")


def test_health(service):
    assert service.health() == {"status": "ok", "service": "workflow", "checks": {"database": "ok"}}


def test_task_gauges_are_read_from_the_database_at_scrape(db_url, service, clock):
    clock.now = datetime(2024, 3, 4, 9, tzinfo=TZ)  # long past: the step is overdue by the real clock
    service.on_dossier_received(received(received_at=clock.now))
    container = ServiceContainer(WorkflowService, {
        "AMQP_URI": "memory://", "DB_URLS": {"workflow": db_url}, "CATALOG_DIR": str(CATALOG_DIR),
        "TIME_ZONE": "Asia/Ho_Chi_Minh", **VERIFYING})
    container.dependencies.all.setup()
    try:
        text = generate_latest(metrics_for(container).registry).decode()
    finally:
        container.dependencies.all.stop()
    assert f'motcua_tasks_open{{agency_code="{LAND_OFFICE}"}} 1.0' in text
    assert 'motcua_tasks_by_status{status="open"} 1.0' in text
    assert 'motcua_tasks_by_status{status="done"} 0.0' in text
    assert f'motcua_tasks_overdue{{agency_code="{LAND_OFFICE}"}} 1.0' in text
    # assigned at the test clock's 2024 morning, read by the container's real clock: old by now
    [oldest] = [line for line in text.splitlines() if line.startswith("motcua_tasks_oldest_open_seconds{")]
    assert oldest.startswith(f'motcua_tasks_oldest_open_seconds{{agency_code="{LAND_OFFICE}"}}')
    assert float(oldest.split()[-1]) > (datetime.now(TZ) - datetime(2024, 3, 5, tzinfo=TZ)).total_seconds()


def test_task_answers_are_exactly_the_contracts_task_view(service, clock):
    """Workflow builds its task answers in the shape of motcua.contracts.views.TaskViewV1 (OpenAPI documents
    it), directly rather than through a dump: every field, nothing more, each value as the contract dumps it."""
    from motcua.contracts.views import TaskViewV1

    service.on_dossier_received(received())
    officer = staff(LAND_OFFICE)
    [open_task] = service.list_tasks(token(officer))
    clock.now += timedelta(days=30)  # overdue now: escalated
    [late] = service.list_tasks(token(officer))
    done = service.complete_task(late["id"], "approve", "xong", token(officer),
                                 details={"documents": []})
    detail = service.get_task(done["id"], token(officer))
    # A hand-over (a line of the process control sheet): who had the step, when, and how it ended.
    hand_over_fields = {"id", "step", "step_index", "agency_code", "from_agency_code", "role", "status", "assigned_at",
                        "due_at", "completed_at", "completed_by", "outcome", "note", "timeliness", "documents"}
    for built in (open_task, late, done, {k: v for k, v in detail.items() if k != "history"}):
        assert set(built) == set(TaskViewV1().fields)
        assert TaskViewV1().dump(built) == built
    for built in detail["history"] + service.dossier_history(done["dossier_code"], token(ADMIN)):
        assert set(built) == hand_over_fields
        assert TaskViewV1(only=hand_over_fields).dump(built) == built
    assert (open_task["overdue"], open_task["escalated_to"], open_task["actions"][-1]) == (False, None, "claim")
    assert (late["overdue"], late["escalated_to"]) == (True, "leader")
    assert (done["actions"], done["overdue"], done["timeliness"]) == ([], False, "late")


def test_a_calendar_decision_moves_the_open_steps_and_reaches_every_instance(uow, catalog, clock):
    """intake's `calendar_decided` through the handler, on a real (SQLite) database: the open step's
    deadline moves, this instance counts with the decision at once, another one at its next refresh (the
    inbox gives the event to one instance only); no restart."""
    mine, other = replace(catalog), replace(catalog)  # two instances' catalogues
    service = worker_factory(WorkflowService, revocations=AccessCache(5), db=uow, catalog=mine, clock=clock, config=dict(VERIFYING))
    service.on_dossier_received(received())
    [task] = service.list_tasks(token(ADMIN))
    assert task["due_at"] == "2026-03-10T09:00:00+07:00"  # 6 working days from Monday 2/3 09:00
    thursday = date(2026, 3, 5)
    service.on_calendar_decided(calendar_decided(thursday))
    [task] = service.list_tasks(token(ADMIN))
    assert task["due_at"] == "2026-03-11T09:00:00+07:00"
    assert thursday in mine.calendar.extra_days_off

    second = worker_factory(WorkflowService, revocations=AccessCache(5), db=uow, catalog=other, clock=clock, config=dict(VERIFYING))
    assert thursday not in other.calendar.extra_days_off
    second.refresh_calendar()
    assert thursday in other.calendar.extra_days_off
    assert not catalog.calendar.extra_days_off & {thursday}  # the shared fixture untouched
