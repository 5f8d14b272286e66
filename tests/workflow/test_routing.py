"""Routing at full depth (liên thông): parallel branches and their join, conditions on the declaration,
agencies relative to the dossier, and every action a step may take. Service worker, SQLite, no broker."""
from __future__ import annotations

from datetime import datetime

import pytest
from sqlalchemy import or_, select

from motcua.contracts import make_event, parse_event
from motcua.errors import Forbidden, IllegalTransition, ValidationFailed
from services.workflow.models import outbox
from services.workflow.process_run import ProcessRun, Task
from motcua.identity import Caller
from tests.workflow.support import (
    ADMIN,
    COMMUNE,
    TZ,
    intake_event,
    received,
    staff,
    stored_run,
    stored_tasks,
    supplement_requested,
    token,
)

NEWBORN = "2.000986"
FIRST_LAND = "1.013978"
JUSTICE, WARD_POLICE, SOCIAL_INSURANCE = COMMUNE, "000.15.01.H56", "000.00.31.H56"
LAND_OFFICE, TAX_OFFICE, LAND_DEPT, OTHER_COMMUNE = "000.12.01.H56", "000.00.18.H56", "000.00.12.H56", "000.20.02.H56"
CODE = "000.20.01.H56-260302-0001"


def at(day: int, hour: int) -> datetime:
    return datetime(2026, 3, day, hour, 0, tzinfo=TZ)


def start(service, procedure: str, form: dict | None = None):
    event = received(CODE, procedure_code=procedure)
    data = {**event.data, "form": form or {}}
    service.on_dossier_received(parse_event(make_event("intake", "dossier_received", data)))


def open_tasks(uow) -> list[Task]:
    return sorted(stored_tasks(uow.session, status="open"), key=lambda task: task.step_index)


def run_of(uow) -> ProcessRun:
    return stored_run(uow.session, CODE)


def events(uow, event_type: str) -> list[dict]:
    """The payloads of one event type in the outbox, once each (task_assigned also goes to the task queue)."""
    rows = uow.session.execute(select(outbox.c.payload).where(outbox.c.event_type == event_type,
                                                              or_(outbox.c.exchange.is_(None),
                                                                  outbox.c.exchange != "motcua.tasks"))
                               .order_by(outbox.c.id)).scalars()
    return [payload["data"] for payload in rows]


def act(service, task: Task, outcome: str, note: str | None = None, role: str | None = None, **details):
    caller = staff(task.agency_code, role or task.role)
    return service.complete_task(task.id, outcome, note, token(caller), details=details or None)


def test_the_newborn_bundle_runs_three_agencies_in_parallel_and_joins(service, uow, clock):
    start(service, NEWBORN)
    branches = open_tasks(uow)
    assert [t.agency_code for t in branches] == [JUSTICE, WARD_POLICE, SOCIAL_INSURANCE]
    # The residence step went to the police of the receiving commune (agencies.yaml `serves`).
    assert all(t.from_agency_code == COMMUNE for t in branches)

    clock.now = at(2, 10)
    act(service, branches[0], "approve", "Đã cấp Giấy khai sinh")
    act(service, branches[2], "approve", "Đã cấp thẻ BHYT")
    assert [t.agency_code for t in open_tasks(uow)] == [WARD_POLICE]  # the join waits for the last branch

    act(service, branches[1], "approve", "Đã đăng ký thường trú")
    [final] = open_tasks(uow)
    assert (final.step_index, final.agency_code, final.from_agency_code) == (3, COMMUNE, WARD_POLICE)
    act(service, final, "approve")
    assert run_of(uow).status == "finished"
    assert len(events(uow, "result_ready")) == 1


def test_a_branch_whose_condition_fails_is_left_out(service, uow):
    start(service, NEWBORN, form={"health_insurance": False})
    assert [t.agency_code for t in open_tasks(uow)] == [JUSTICE, WARD_POLICE]


def test_the_relative_agency_follows_the_receiving_commune(service, uow, catalog):
    process = catalog.process(NEWBORN)
    assert catalog.agency_for(process.steps[1], OTHER_COMMUNE, {}) == "000.15.02.H56"
    with pytest.raises(ValidationFailed, match="serves"):
        catalog.agency_for(process.steps[1], LAND_DEPT, {})


def _land_to_tax(service, uow, form=None) -> Task:
    start(service, FIRST_LAND, form=form or {"land_area_m2": 250, "land_price_vnd_per_m2": 10_000_000})
    [commune] = open_tasks(uow)
    act(service, commune, "approve", "Đất ở ổn định, không tranh chấp")
    [office] = open_tasks(uow)
    act(service, office, "approve", "Đã đo đạc")
    [tax] = open_tasks(uow)
    assert tax.agency_code == TAX_OFFICE
    return tax


def test_payment_pauses_the_process_until_intake_says_it_was_paid(service, uow, clock):
    tax = _land_to_tax(service, uow)
    act(service, tax, "require_payment", "Lệ phí trước bạ 12.500.000 đồng", amount_vnd=12_500_000)
    assert (run_of(uow).status, open_tasks(uow)) == ("awaiting_payment", [])
    [required] = events(uow, "payment_required")
    assert (required["amount_vnd"], required["agency_code"]) == (12_500_000, TAX_OFFICE)

    clock.now = at(9, 9)
    new_due = at(30, 17)
    service.on_payment_received(intake_event("payment_received", code=CODE, paid_at=clock.now,
                                             confirmed_by=f"receptionist@{COMMUNE}", receipt_number="BL-0042",
                                             due_at=new_due))
    [signing] = open_tasks(uow)
    assert (signing.agency_code, signing.role, signing.from_agency_code) == (LAND_DEPT, "leader", COMMUNE)
    assert (run_of(uow).status, run_of(uow).dossier_due_at) == ("running", new_due)


def test_an_exempt_household_skips_the_tax_step(service, uow):
    start(service, FIRST_LAND, form={"fee_exempt": True})
    for _ in range(2):
        [task] = open_tasks(uow)
        act(service, task, "approve")
    [signing] = open_tasks(uow)
    assert signing.agency_code == LAND_DEPT


def test_send_back_reopens_the_previous_step_and_the_dossier_comes_forward_again(service, uow, clock):
    tax = _land_to_tax(service, uow)
    clock.now = at(3, 9)
    act(service, tax, "send_back", "Diện tích đo đạc không khớp tờ khai")
    [again] = open_tasks(uow)
    assert (again.agency_code, again.step_index, again.from_agency_code) == (LAND_OFFICE, 1, TAX_OFFICE)
    clock.now = at(4, 9)
    act(service, again, "approve", "Đã đo lại")
    assert [t.agency_code for t in open_tasks(uow)] == [TAX_OFFICE]
    history = service.dossier_history(CODE, token(ADMIN))
    assert [(h["agency_code"], h["outcome"]) for h in history] == [
        (COMMUNE, "approve"), (LAND_OFFICE, "approve"), (TAX_OFFICE, "send_back"), (LAND_OFFICE, "approve"),
        (TAX_OFFICE, None)]


def test_a_first_step_cannot_send_back_and_a_reason_is_required(service, uow):
    start(service, FIRST_LAND)
    [commune] = open_tasks(uow)
    assert "send_back" not in service.list_tasks(token(staff(COMMUNE)))[0]["actions"]
    with pytest.raises(ValidationFailed) as missing:
        act(service, commune, "refuse")
    assert missing.value.field == "note"


def test_a_step_asks_the_counter_for_a_supplement_stays_open_and_the_run_pauses_itself(service, uow, clock):
    start(service, FIRST_LAND)
    [commune] = open_tasks(uow)
    clock.now = at(3, 9)
    act(service, commune, "request_supplement", "Thiếu giấy tờ", items=["Sơ đồ thửa đất"])
    [needed] = events(uow, "supplement_needed")
    assert (needed["items"], needed["agency_code"]) == (["Sơ đồ thửa đất"], COMMUNE)
    [still] = open_tasks(uow)
    assert still.id == commune.id
    assert (run_of(uow).status, run_of(uow).paused_at, still.paused_at) == ("paused", at(3, 9), at(3, 9))
    clock.now = at(3, 10)
    service.on_supplement_requested(supplement_requested(CODE, at(3, 9)))  # intake's echo: nothing to do
    assert (run_of(uow).status, run_of(uow).paused_at, len(events(uow, "supplement_needed"))) == ("paused", at(3, 9), 1)


def test_refuse_ends_with_a_refusal_result_and_its_reason(service, uow):
    start(service, FIRST_LAND)
    [commune] = open_tasks(uow)
    act(service, commune, "refuse", "Đất đang tranh chấp")
    [ready] = events(uow, "result_ready")
    assert (ready["outcome"], ready["reason"]) == ("refused", "Đất đang tranh chấp")


def test_stop_cancels_every_open_branch(service, uow):
    start(service, NEWBORN)
    first = open_tasks(uow)[0]
    act(service, first, "stop", "Người yêu cầu không bổ sung hồ sơ đúng hạn")
    assert open_tasks(uow) == [] and run_of(uow).status == "stopped"
    assert events(uow, "processing_stopped")[0]["reason"].startswith("Người yêu cầu")


def test_a_step_transfers_only_to_the_agencies_it_lists(service, uow):
    start(service, FIRST_LAND)
    [commune] = open_tasks(uow)
    with pytest.raises(ValidationFailed):
        service.transfer_task(commune.id, LAND_DEPT, None, token(staff(COMMUNE)))
    service.transfer_task(commune.id, OTHER_COMMUNE, "Thửa đất thuộc xã Quảng Phú", token(staff(COMMUNE)))
    [moved] = open_tasks(uow)
    assert (moved.agency_code, moved.step_index, moved.from_agency_code) == (OTHER_COMMUNE, 0, COMMUNE)
    [transferred] = events(uow, "dossier_transferred")
    assert (transferred["to_agency_code"], transferred["new_task_id"]) == (OTHER_COMMUNE, moved.id)


def test_claim_assign_and_who_may_complete(service, uow):
    start(service, FIRST_LAND)
    [task] = open_tasks(uow)
    mine = service.claim_task(task.id, token(staff(COMMUNE)))
    assert (mine["assignee"], "claim" in mine["actions"]) == (f"specialist@{COMMUNE}", False)
    other = Caller("chuyenvien2", COMMUNE, ("specialist",))
    with pytest.raises(IllegalTransition):
        service.claim_task(task.id, token(other))
    with pytest.raises(Forbidden):
        service.complete_task(task.id, "approve", None, token(other))
    with pytest.raises(Forbidden):  # only the agency's leaders assign
        service.assign_task(task.id, "chuyenvien2", token(other))
    service.assign_task(task.id, "chuyenvien2", token(staff(COMMUNE, "leader")))
    assert service.list_tasks(token(other), assignee="me")[0]["id"] == task.id
    service.complete_task(task.id, "approve", None, token(other))


def test_a_late_step_that_will_miss_the_due_date_drafts_form_04(service, uow, clock):
    event = received(CODE, procedure_code=FIRST_LAND, due_at=at(20, 17))
    service.on_dossier_received(event)
    clock.now = at(16, 9)  # the commune's 5 days are gone; 15 working days of steps are still ahead
    service.check_deadlines()
    [predicted] = events(uow, "delay_predicted")
    assert predicted["agency_code"] == COMMUNE
    assert datetime.fromisoformat(predicted["proposed_due_at"]) > at(20, 17)
    service.check_deadlines()
    assert len(events(uow, "delay_predicted")) == 1  # once


def test_a_broken_process_file_names_its_line(tmp_path):
    import shutil

    from motcua.catalog import CatalogError
    from services.workflow.processes import load_processes
    from tests.workflow.support import CATALOG_DIR
    for name in ("agencies.yaml", "calendar.yaml"):
        shutil.copy(CATALOG_DIR / name, tmp_path / name)
    (tmp_path / "processes.yaml").write_text(
        'processes:\n  - procedure_code: "2.000986"\n    steps:\n      - parallel:\n'
        '          - steps:\n              - {name: A, agency_code: 000.20.01.H56, role: specialist, allowance: 1}\n'
        '          - steps:\n              - {name: B, agency: {under: 000.00.15.H56, serving: nowhere},'
        ' role: specialist, allowance: 1}\n', encoding="utf-8")
    with pytest.raises(CatalogError, match=r"processes\.yaml:8: .*serving"):  # step B's line
        load_processes(tmp_path, "Asia/Ho_Chi_Minh")


def test_the_process_definition_shows_its_shape(service):
    process = service.get_process(NEWBORN)
    assert [len(stage) for stage in process["stages"]] == [3, 1]
    assert process["steps"][1]["agency"] == {"under": "000.00.15.H56", "serving": "receiving"}
    assert process["steps"][1]["agency_code"] is None


def test_a_department_leader_oversees_its_units_tasks_but_acts_only_in_its_own(service, uow):
    start(service, FIRST_LAND, form={"fee_exempt": True})
    [commune] = open_tasks(uow)
    act(service, commune, "approve")
    [office] = open_tasks(uow)  # the land registration office, a unit under the department
    leader = token(staff(LAND_DEPT, "leader"))
    assert [t["id"] for t in service.list_tasks(leader)] == [office.id]
    assert service.get_task(office.id, leader)["agency_code"] == LAND_OFFICE
    with pytest.raises(Forbidden):
        service.complete_task(office.id, "approve", None, leader)
    assert service.list_tasks(token(staff(LAND_DEPT))) == []  # a specialist sees their own agency only


def test_a_refused_call_is_reported_for_the_audit_log(service, uow):
    start(service, FIRST_LAND)
    [commune] = open_tasks(uow)
    with pytest.raises(Forbidden):
        service.get_task(commune.id, token(staff(OTHER_COMMUNE)))
    [denied] = events(uow, "access_denied")
    assert (denied["action"], denied["task_id"], denied["username"]) == (
        "workflow.get_task", commune.id, f"specialist@{OTHER_COMMUNE}")
