"""Routing rules of a dossier's process run, in memory (no database, no broker): the first stage, parallel
branches and their join, conditions, relative agencies, each outcome of a step, who may act, and the
run's versioned events. The service layer runs against `FakeWorkflowUnitOfWork`."""
from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from functools import partial

import pytest

from motcua.errors import Forbidden, IllegalTransition, NotFound, ValidationFailed
from motcua.identity import Caller
from services.workflow import handlers
from services.workflow.process_run import ProcessRun, Task
from services.workflow.processes import AgencyRule, Branch, Processes, Condition, Process, Step
from tests.workflow.fakes import FakeWorkflowUnitOfWork
from tests.workflow.support import ADMIN, COMMUNE, LAND, LAND_DEPT, LAND_OFFICE, MONDAY, at, received, staff

CODE = "000.20.01.H56-260302-0001"
NEWBORN, FIRST_LAND = "2.000986", "1.013978"
WARD_POLICE, SOCIAL_INSURANCE, TAX_OFFICE, OTHER_COMMUNE = "000.15.01.H56", "000.00.31.H56", "000.00.18.H56", "000.20.02.H56"
SPLIT, NOTHING_APPLIES = "9.000001", "9.000002"


def _step(name: str, agency: str, stage: int, branch: int = 0, role: str = "specialist", when=None) -> Step:
    return Step(name, AgencyRule(code=agency), role, Decimal(1), stage=stage, branch=branch, when=when)


@pytest.fixture(scope="module")
def rules(catalog) -> Processes:
    """The real catalogue, plus SPLIT: A, then branches [B, B2] and [C] side by side, then D; and
    NOTHING_APPLIES: one step whose condition the empty declaration fails."""
    split = Process(SPLIT, (
        _step("A", COMMUNE, 0), _step("B", LAND_OFFICE, 1, 0), _step("B2", LAND_OFFICE, 1, 0, "leader"),
        _step("C", LAND_DEPT, 1, 1), _step("D", COMMUNE, 2)),
        ((Branch((0,)),), (Branch((1, 2)), Branch((3,))), (Branch((4,)),)))
    nothing = Process(NOTHING_APPLIES, (_step("X", LAND_OFFICE, 0, when=Condition("urgent", equals=True)),),
                      ((Branch((0,)),),))
    return replace(catalog, processes={**catalog.processes, SPLIT: split, NOTHING_APPLIES: nothing})


@pytest.fixture
def uow() -> FakeWorkflowUnitOfWork:
    return FakeWorkflowUnitOfWork()


def start(uow, rules, procedure: str = LAND, form: dict | None = None, due_at: datetime | None = None,
          now: datetime = MONDAY) -> ProcessRun:
    event = received(CODE, procedure_code=procedure, due_at=due_at, form=form)
    assert uow.apply_once(event, "workflow.on_dossier_received",
                          partial(handlers.start_process, catalog=rules, now=now))
    return uow.runs.get(CODE)


def open_tasks(uow) -> list[Task]:
    return sorted((t for t in uow.runs.get(CODE).tasks if t.status == "open"), key=lambda t: t.step_index)


def act(uow, rules, task: Task, outcome: str, note: str | None = None, now: datetime = MONDAY,
        caller: Caller | None = None, **details) -> Task:
    caller = caller or staff(task.agency_code, task.role)
    return handlers.complete_task(uow, rules, task.id, outcome, note, caller, now, details=details or None)


# -- starting ------------------------------------------------------------------------------------------

def test_a_received_dossier_gets_its_first_step_with_a_working_day_due_date(uow, rules):
    start(uow, rules)
    [task] = open_tasks(uow)
    assert (task.agency_code, task.role, task.step_index, task.assigned_at) == (LAND_OFFICE, "specialist", 0, MONDAY)
    assert task.due_at == at(10, 9)  # 6 working days of 8 hours from Monday 09:00: the next Tuesday 09:00
    assert str(task.id) == task.id and len(task.id) == 36
    assert uow.commits == 1
    [assigned] = uow.published("task_assigned")
    [to_agency] = uow.published("task_assigned", task_queues=True)
    assert assigned == to_agency  # the same event on the agency's own task queue…
    [public, queued] = [e for e in uow.events if e["event_type"] == "task_assigned"]
    assert public["event_id"] == queued["event_id"]  # …with the same id
    assert (queued["exchange"], queued["routing_key"]) == ("motcua.tasks", f"task.{LAND_OFFICE}")
    assert (assigned["task_id"], assigned["procedure_code"]) == (task.id, LAND)
    assert datetime.fromisoformat(assigned["due_at"]) == at(10, 9)


def test_a_step_is_never_due_after_the_dossier(uow, rules):
    start(uow, rules, due_at=at(3, 17))
    assert open_tasks(uow)[0].due_at == at(3, 17)


def test_a_dossier_received_again_with_a_new_id_does_nothing(uow, rules):
    start(uow, rules)
    start(uow, rules, now=MONDAY + timedelta(hours=1))
    assert len(uow.runs.get(CODE).tasks) == 1
    assert len(uow.published()) == 1


def test_a_dossier_imported_from_the_old_system_starts_no_process(uow, rules):
    event = received(CODE, procedure_code=LAND)
    imported = replace(event, data={**event.data, "imported": True})
    assert uow.apply_once(imported, "workflow.on_dossier_received",
                          partial(handlers.start_process, catalog=rules, now=MONDAY))
    assert uow.runs.get(CODE) is None and uow.published() == []


def test_an_unknown_procedure_is_refused_so_the_message_is_parked(uow, rules):
    with pytest.raises(NotFound, match="9.999999"):
        start(uow, rules, procedure="9.999999")
    assert uow.runs.runs == {} and uow.events == [] and uow.commits == 0


def test_the_newborn_bundle_opens_three_agencies_at_once_the_police_of_the_receiving_commune(uow, rules):
    start(uow, rules, NEWBORN)
    branches = open_tasks(uow)
    assert [t.agency_code for t in branches] == [COMMUNE, WARD_POLICE, SOCIAL_INSURANCE]
    assert all(t.from_agency_code == COMMUNE for t in branches)


def test_a_branch_whose_condition_fails_is_left_out(uow, rules):
    start(uow, rules, NEWBORN, form={"health_insurance": False})
    assert [t.agency_code for t in open_tasks(uow)] == [COMMUNE, WARD_POLICE]


def test_the_relative_agency_follows_the_receiving_commune(rules):
    process = rules.process(NEWBORN)
    assert rules.agency_for(process.steps[1], OTHER_COMMUNE, {}) == "000.15.02.H56"
    with pytest.raises(ValidationFailed, match="serves"):
        rules.agency_for(process.steps[1], LAND_DEPT, {})


@pytest.mark.parametrize("receiving", [COMMUNE, OTHER_COMMUNE])
def test_a_dossier_received_anywhere_is_handled_by_the_commune_that_received_it(uow, rules, receiving):
    """Decree 118/2025/NĐ-CP: 2.000635 is received at any commune; its step is `serving: receiving`."""
    event = received(CODE, procedure_code="2.000635", agency_code=receiving)
    uow.apply_once(event, "workflow.on_dossier_received", partial(handlers.start_process, catalog=rules, now=MONDAY))
    [task] = open_tasks(uow)
    assert task.agency_code == receiving and task.from_agency_code == receiving
    [assigned] = uow.published("task_assigned")
    assert assigned["agency_code"] == receiving


def test_the_declaration_may_name_the_commune_that_handles_it(rules):
    """`agency: {serving: form.<field>}` without `under`: the agency whose code the declaration holds."""
    step = Step("Giải quyết", AgencyRule(serving="form.residence_commune"), "specialist", Decimal(1))
    assert rules.agency_for(step, COMMUNE, {"residence_commune": OTHER_COMMUNE}) == OTHER_COMMUNE
    with pytest.raises(ValidationFailed, match="no agency is the dossier's form.residence_commune"):
        rules.agency_for(step, COMMUNE, {"residence_commune": "000.99.99.H56"})


def test_a_process_where_nothing_applies_is_ready_at_once(uow, rules):
    run = start(uow, rules, NOTHING_APPLIES)
    assert (run.status, run.tasks) == ("finished", [])
    [ready] = uow.published("result_ready")
    assert (ready["agency_code"], ready["outcome"]) == (COMMUNE, "approved")


# -- approving, the join -------------------------------------------------------------------------------

def test_a_three_agency_process_runs_to_result_ready_once(uow, rules):
    start(uow, rules)
    officers = [staff(LAND_OFFICE), staff(LAND_DEPT, "leader"), staff(COMMUNE)]
    finished = [at(5, 10), at(10, 16), at(12, 8)]
    completed = []
    for officer, now in zip(officers, finished):
        [task] = open_tasks(uow)
        assert task.agency_code == officer.agency_code
        completed.append(act(uow, rules, task, "approve", "đã thẩm định", now, officer))

    assert [t.timeliness for t in completed] == ["early", "on_time", "late"]
    assert [t.completed_by for t in completed] == [o.username for o in officers]
    assert [t.due_at for t in completed] == [at(10, 9), at(10, 10), at(11, 16)]
    run = uow.runs.get(CODE)
    assert (run.status, run.finished_at) == ("finished", at(12, 8))
    [ready] = uow.published("result_ready")
    assert ready["agency_code"] == COMMUNE and datetime.fromisoformat(ready["finished_at"]) == at(12, 8)
    assert [e["timeliness"] for e in uow.published("task_completed")] == ["early", "on_time", "late"]
    assert len(uow.published("task_assigned")) == len(uow.published("task_assigned", task_queues=True)) == 3
    assert uow.commits == 4  # the reception, then one per completion

    with pytest.raises(IllegalTransition) as caught:
        act(uow, rules, completed[-1], "approve", now=at(12, 9), caller=officers[-1])
    assert caught.value.details == {"status": "done", "allowed": []}  # nothing more to do with it
    assert len(uow.published("result_ready")) == 1


@pytest.mark.parametrize("completed_at, expected", [
    (at(9, 16), "early"),
    (at(10, 8), "on_time"),   # before the due hour, same date
    (at(10, 23, 30), "on_time"),  # after the due hour, same date
    (at(11, 0, 5), "late"),   # still 10 March in UTC: dates are the province's
])
def test_a_steps_timeliness_compares_local_dates(uow, rules, completed_at, expected):
    start(uow, rules)
    [task] = open_tasks(uow)
    done = act(uow, rules, task, "approve", now=completed_at.astimezone(timezone.utc))
    assert done.timeliness == expected
    assert uow.published("task_completed")[0]["timeliness"] == expected


def test_parallel_branches_join_before_the_next_stage(uow, rules):
    start(uow, rules, NEWBORN)
    justice, police, insurance = open_tasks(uow)
    act(uow, rules, justice, "approve", "Đã cấp Giấy khai sinh", at(2, 10))
    act(uow, rules, insurance, "approve", "Đã cấp thẻ BHYT", at(2, 10))
    assert open_tasks(uow) == [police]  # the join waits for the last branch
    act(uow, rules, police, "approve", "Đã đăng ký thường trú", at(2, 11))
    [final] = open_tasks(uow)
    assert (final.step_index, final.agency_code, final.from_agency_code) == (3, COMMUNE, WARD_POLICE)
    act(uow, rules, final, "approve", now=at(2, 15))
    assert uow.runs.get(CODE).status == "finished" and len(uow.published("result_ready")) == 1


def test_a_branch_goes_on_step_by_step_and_the_join_waits_for_its_last_step(uow, rules):
    start(uow, rules, SPLIT)
    [a] = open_tasks(uow)
    act(uow, rules, a, "approve")
    b, c = open_tasks(uow)
    act(uow, rules, b, "approve")
    b2, still_c = open_tasks(uow)
    assert (b2.step, b2.from_agency_code, still_c) == ("B2", LAND_OFFICE, c)
    act(uow, rules, c, "approve")
    assert open_tasks(uow) == [b2]
    act(uow, rules, b2, "approve")
    assert [t.step for t in open_tasks(uow)] == ["D"]


def test_an_exempt_household_skips_the_tax_step(uow, rules):
    start(uow, rules, FIRST_LAND, form={"fee_exempt": True})
    for _ in range(2):
        [task] = open_tasks(uow)
        act(uow, rules, task, "approve")
    [signing] = open_tasks(uow)
    assert signing.agency_code == LAND_DEPT


# -- sending back, transferring, refusing, stopping, payment -------------------------------------------

def _land_to_tax(uow, rules) -> Task:
    start(uow, rules, FIRST_LAND, form={"land_area_m2": 250, "land_price_vnd_per_m2": 10_000_000})
    for _ in range(2):
        [task] = open_tasks(uow)
        act(uow, rules, task, "approve")
    [tax] = open_tasks(uow)
    assert tax.agency_code == TAX_OFFICE
    return tax


def test_send_back_reopens_the_previous_step_for_the_dossier_to_come_forward_again(uow, rules):
    tax = _land_to_tax(uow, rules)
    act(uow, rules, tax, "send_back", "Diện tích đo đạc không khớp tờ khai", at(3, 9))
    [again] = open_tasks(uow)
    assert (again.agency_code, again.step_index, again.from_agency_code) == (LAND_OFFICE, 1, TAX_OFFICE)
    act(uow, rules, again, "approve", "Đã đo lại", at(4, 9))
    assert [t.agency_code for t in open_tasks(uow)] == [TAX_OFFICE]


def test_send_back_only_to_an_earlier_step_and_nothing_changes_otherwise(uow, rules):
    tax = _land_to_tax(uow, rules)
    before = (len(uow.events), uow.runs.get(CODE).version)
    with pytest.raises(ValidationFailed) as refused:
        act(uow, rules, tax, "send_back", "sai", to_step=3)
    assert refused.value.field == "to_step"
    assert (tax.status, len(uow.events), uow.runs.get(CODE).version) == ("open", *before)
    act(uow, rules, tax, "send_back", "về xã", to_step=0)
    assert [(t.agency_code, t.step_index) for t in open_tasks(uow)] == [(COMMUNE, 0)]


def test_a_first_step_cannot_send_back(uow, rules):
    start(uow, rules, FIRST_LAND)
    [commune] = open_tasks(uow)
    assert "send_back" not in commune.allowed_actions(rules.process(FIRST_LAND))
    with pytest.raises(IllegalTransition):
        act(uow, rules, commune, "send_back", "không có bước trước")


def test_sending_back_out_of_a_parallel_stage_cancels_its_other_branches(uow, rules):
    start(uow, rules, SPLIT)
    [a] = open_tasks(uow)
    act(uow, rules, a, "approve")
    b, c = open_tasks(uow)
    assert c.allowed_actions(rules.process(SPLIT))[:2] == ["approve", "send_back"]
    act(uow, rules, c, "send_back", "Thiếu xác nhận của xã")
    [reopened] = open_tasks(uow)
    assert (reopened.step, reopened.from_agency_code, b.status) == ("A", LAND_DEPT, "cancelled")


def test_sending_back_within_a_branch_leaves_the_other_branch_running(uow, rules):
    start(uow, rules, SPLIT)
    act(uow, rules, open_tasks(uow)[0], "approve")
    act(uow, rules, open_tasks(uow)[0], "approve")  # B
    b2, c = open_tasks(uow)
    act(uow, rules, b2, "send_back", "Ký lại")
    assert [t.step for t in open_tasks(uow)] == ["B", "C"] and c.status == "open"


def test_a_step_transfers_only_to_the_agencies_it_lists(uow, rules):
    start(uow, rules, FIRST_LAND)
    [commune] = open_tasks(uow)
    with pytest.raises(ValidationFailed) as refused:
        handlers.transfer_task(uow, rules, commune.id, LAND_DEPT, None, staff(COMMUNE), MONDAY)
    assert refused.value.field == "agency_code" and commune.status == "open"
    moved_from = handlers.transfer_task(uow, rules, commune.id, OTHER_COMMUNE, "Thửa đất thuộc xã Quảng Phú",
                                        staff(COMMUNE), MONDAY)
    assert (moved_from.status, moved_from.outcome) == ("transferred", "transfer")
    [moved] = open_tasks(uow)
    assert (moved.agency_code, moved.step_index, moved.from_agency_code) == (OTHER_COMMUNE, 0, COMMUNE)
    [transferred] = uow.published("dossier_transferred")
    assert (transferred["to_agency_code"], transferred["new_task_id"]) == (OTHER_COMMUNE, moved.id)


def test_refuse_ends_with_a_refusal_result_and_its_reason(uow, rules):
    start(uow, rules, NEWBORN)
    justice, police, insurance = open_tasks(uow)
    act(uow, rules, justice, "refuse", "Giấy chứng sinh không hợp lệ")
    [ready] = uow.published("result_ready")
    assert (ready["outcome"], ready["reason"], ready["agency_code"]) == ("refused", "Giấy chứng sinh không hợp lệ", COMMUNE)
    assert (uow.runs.get(CODE).status, police.status, insurance.status) == ("finished", "cancelled", "cancelled")


def test_stop_cancels_every_open_branch(uow, rules):
    start(uow, rules, NEWBORN)
    act(uow, rules, open_tasks(uow)[0], "stop", "Người yêu cầu không bổ sung hồ sơ đúng hạn", at(3, 9))
    run = uow.runs.get(CODE)
    assert (open_tasks(uow), run.status, run.finished_at) == ([], "stopped", at(3, 9))
    [stopped] = uow.published("processing_stopped")
    assert stopped["reason"].startswith("Người yêu cầu") and stopped["stopped_by"] == f"specialist@{COMMUNE}"


def test_payment_stops_the_clock_until_intake_says_it_was_paid(uow, rules):
    tax = _land_to_tax(uow, rules)
    act(uow, rules, tax, "require_payment", "Lệ phí trước bạ 12.500.000 đồng", at(5, 9), amount_vnd=12_500_000)
    run = uow.runs.get(CODE)
    assert (run.status, run.paused_at, run.resume_after_step, open_tasks(uow)) == ("awaiting_payment", at(5, 9), 2, [])
    [required] = uow.published("payment_required")
    assert (required["amount_vnd"], required["agency_code"], required["task_id"]) == (12_500_000, TAX_OFFICE, tax.id)

    new_due = at(30, 17)
    assert run.resume_after_payment(new_due, rules, at(9, 9))  # the signing step's task_assigned
    [signing] = open_tasks(uow)
    assert (signing.agency_code, signing.role, signing.from_agency_code) == (LAND_DEPT, "leader", COMMUNE)
    assert (run.status, run.paused_at, run.resume_after_step, run.dossier_due_at) == ("running", None, None, new_due)
    assert run.resume_after_payment(new_due, rules, at(9, 10)) == []  # a repeat resumes nothing


# -- who may act ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("caller", [
    staff(LAND_DEPT, "leader"),  # the next agency in the process, but not this step's
    Caller("citizen", None, ()),
    Caller("someone@" + LAND_OFFICE, LAND_OFFICE, ("viewer",)),
    Caller(f"system@{LAND_DEPT}", LAND_DEPT, ("system",)),  # another agency's system
])
def test_only_staff_of_the_tasks_agency_can_complete_it(uow, rules, caller):
    start(uow, rules)
    [task] = open_tasks(uow)
    with pytest.raises(Forbidden):
        act(uow, rules, task, "approve", caller=caller)
    assert task.status == "open" and uow.published("task_completed") == [] and uow.commits == 1


@pytest.mark.parametrize("caller", [
    staff(LAND_OFFICE, "receptionist"),  # the right agency, the wrong role
    staff(LAND_OFFICE, "leader"),
])
def test_only_the_steps_role_can_complete_it(uow, rules, caller):
    start(uow, rules)
    [task] = open_tasks(uow)
    assert task.role == "specialist"
    with pytest.raises(Forbidden, match="specialist"):
        act(uow, rules, task, "approve", caller=caller)
    assert task.status == "open" and uow.published("task_completed") == []


def test_a_leaders_step_needs_a_leader(uow, rules):
    start(uow, rules)
    act(uow, rules, open_tasks(uow)[0], "approve")
    [signing] = open_tasks(uow)
    assert (signing.agency_code, signing.role) == (LAND_DEPT, "leader")
    for wrong in (staff(LAND_DEPT, "receptionist"), staff(LAND_DEPT, "specialist")):
        with pytest.raises(Forbidden, match="leader"):
            act(uow, rules, signing, "approve", caller=wrong)
    done = act(uow, rules, signing, "approve", caller=staff(LAND_DEPT, "leader"))
    assert (done.status, done.completed_by) == ("done", f"leader@{LAND_DEPT}")


def test_an_admin_and_the_agencys_own_system_may_complete_its_task(uow, rules):
    start(uow, rules)
    [task] = open_tasks(uow)
    assert (act(uow, rules, task, "approve", caller=ADMIN).completed_by) == "admin"
    [signing] = open_tasks(uow)
    system = Caller(f"system@{LAND_DEPT}", LAND_DEPT, ("system",))
    assert act(uow, rules, signing, "approve", caller=system).completed_by == system.username


def test_an_unknown_task_is_not_found(uow, rules):
    start(uow, rules)
    with pytest.raises(NotFound):
        handlers.complete_task(uow, rules, "00000000-0000-0000-0000-000000000000", "approve", None,
                               staff(LAND_OFFICE), MONDAY)
    with pytest.raises(Forbidden):  # someone not staff learns nothing, not even that it does not exist
        handlers.complete_task(uow, rules, "00000000-0000-0000-0000-000000000000", "approve", None,
                               Caller("citizen", None, ()), MONDAY)


def test_claim_assign_and_who_may_complete(uow, rules):
    start(uow, rules, FIRST_LAND)
    [task] = open_tasks(uow)
    mine = handlers.claim_task(uow, task.id, staff(COMMUNE))
    assert (mine.assignee, "claim" in mine.allowed_actions(rules.process(FIRST_LAND))) == (f"specialist@{COMMUNE}", False)
    other = Caller("chuyenvien2", COMMUNE, ("specialist",))
    with pytest.raises(IllegalTransition):
        handlers.claim_task(uow, task.id, other)
    with pytest.raises(Forbidden):
        act(uow, rules, task, "approve", caller=other)
    with pytest.raises(Forbidden):  # only the agency's leaders assign
        handlers.assign_task(uow, task.id, "chuyenvien2", other)
    handlers.assign_task(uow, task.id, "chuyenvien2", staff(COMMUNE, "leader"))
    assert act(uow, rules, task, "approve", caller=other).completed_by == "chuyenvien2"
    with pytest.raises(IllegalTransition):  # closed: nobody holds it any more
        handlers.assign_task(uow, task.id, None, staff(COMMUNE, "leader"))


def test_who_may_read_a_task(rules):
    task = Task("t", CODE, LAND, 0, "s", "000.12.01.H56", "specialist", "open", MONDAY, MONDAY)
    assert task.readable_by(staff(LAND_OFFICE), rules.tree)
    assert task.readable_by(staff(LAND_DEPT, "leader"), rules.tree)  # the land office is the department's unit
    assert not task.readable_by(staff(LAND_DEPT), rules.tree)  # a specialist reads their own agency's only
    assert not task.readable_by(staff(COMMUNE, "leader"), rules.tree)
    assert task.readable_by(Caller(f"system@{LAND_OFFICE}", LAND_OFFICE, ("system",)), rules.tree)
    assert not task.readable_by(Caller(f"system@{COMMUNE}", COMMUNE, ("system",)), rules.tree)
    assert task.readable_by(ADMIN, rules.tree)


# -- the run's events carry its version ----------------------------------------------------------------

def test_every_event_of_the_run_carries_the_next_run_version_in_order(uow, rules):
    start(uow, rules, NEWBORN)
    justice, police, insurance = open_tasks(uow)
    act(uow, rules, justice, "approve")
    act(uow, rules, police, "stop", "Dừng")
    published = uow.published()
    assert [e["run_version"] for e in published] == list(range(1, len(published) + 1))
    assert [e["run_version"] for e in uow.published("task_assigned", task_queues=True)] == [1, 2, 3]
    assert uow.runs.get(CODE).version == len(published) == 6  # 3 assigned, 2 completed, stopped
