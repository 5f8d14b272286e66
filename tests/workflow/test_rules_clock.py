"""The run's clock, in memory (no database, no broker): paused for a supplement (asked by a step, which
pauses the run itself, or by the counter), resumed, rescheduled, stopped; intake's echoes and late events
(ordered by `dossier_version`); the SLA check's flags, each once."""
from __future__ import annotations

from datetime import datetime, timedelta
from functools import partial

import pytest

from motcua.errors import IllegalTransition
from services.workflow import handlers
from services.workflow.process_run import ProcessRun, Task
from tests.workflow.fakes import FakeWorkflowUnitOfWork
from tests.workflow.support import (
    COMMUNE,
    LAND_DEPT,
    LAND_OFFICE,
    MONDAY,
    at,
    payment_received,
    received,
    rescheduled,
    staff,
    stopped,
    supplement_requested,
    supplemented,
    withdrawn,
)

CODE = "000.20.01.H56-260302-0001"
FIRST_LAND, TAX_OFFICE = "1.013978", "000.00.18.H56"
WORKING_DAY = at(2, 17) - at(2, 9)  # 8 working hours


@pytest.fixture
def uow() -> FakeWorkflowUnitOfWork:
    return FakeWorkflowUnitOfWork()


@pytest.fixture
def deliver(uow, catalog):
    """Deliver one of intake's events to its handler, as the service does (`now`: the handler's clock)."""
    def deliver(event, now: datetime = MONDAY) -> bool:
        handler = {
            "dossier_received": partial(handlers.start_process, catalog=catalog, now=now),
            "supplement_requested": partial(handlers.pause_process, catalog=catalog, now=now),
            "dossier_supplemented": partial(handlers.resume_process, catalog=catalog, now=now),
            "dossier_rescheduled": partial(handlers.reschedule_process, catalog=catalog, now=now),
            "dossier_withdrawn": handlers.stop_process,
            "dossier_stopped": handlers.stop_process,
            "payment_received": partial(handlers.resume_after_payment, catalog=catalog, now=now),
        }[event.event_type]
        return uow.apply_once(event, f"workflow.on_{event.event_type}", handler)
    return deliver


def run_of(uow) -> ProcessRun:
    return uow.runs.get(CODE)


def open_tasks(uow) -> list[Task]:
    return [t for t in run_of(uow).tasks if t.status == "open"]


def act(uow, catalog, task: Task, outcome: str, now: datetime, note: str | None = None, **details) -> Task:
    return handlers.complete_task(uow, catalog, task.id, outcome, note, staff(task.agency_code, task.role), now,
                                  details=details or None)


def ask_supplement(uow, catalog, now: datetime) -> Task:
    [task] = open_tasks(uow)
    return act(uow, catalog, task, "request_supplement", now, "Thiếu giấy tờ", items=["Sơ đồ thửa đất"])


def state(uow) -> tuple:
    run = run_of(uow)
    return run.status, run.paused_at, run.dossier_version, [(t.status, t.paused_at, t.due_at) for t in run.tasks]


# -- a supplement: each fact once ----------------------------------------------------------------------

def test_a_step_asking_for_a_supplement_pauses_the_run_in_the_same_transaction(uow, catalog, deliver):
    deliver(received(CODE, dossier_version=2))
    task = ask_supplement(uow, catalog, at(3, 9))
    assert (task.status, task.note) == ("open", "Thiếu giấy tờ")  # the counter issues form 02 on its behalf
    assert (run_of(uow).status, run_of(uow).paused_at, task.paused_at) == ("paused", at(3, 9), at(3, 9))
    [needed] = uow.published("supplement_needed")
    assert (needed["items"], needed["agency_code"], needed["task_id"]) == (["Sơ đồ thửa đất"], LAND_OFFICE, task.id)
    assert uow.commits == 2  # the reception, the request: one commit, nothing waits for intake's echo

    before = state(uow)
    events = len(uow.events)
    deliver(supplement_requested(CODE, at(3, 9), dossier_version=3))  # intake's echo: already paused
    assert state(uow)[:2] == before[:2] and state(uow)[3] == before[3] and len(uow.events) == events


def test_a_supplement_the_counter_asks_for_pauses_the_run(uow, catalog, deliver):
    deliver(received(CODE))
    deliver(supplement_requested(CODE, at(3, 9)))
    [task] = open_tasks(uow)
    assert (run_of(uow).status, run_of(uow).paused_at, task.paused_at) == ("paused", at(3, 9), at(3, 9))
    assert uow.published() == uow.published("task_assigned")  # no event of its own


@pytest.mark.parametrize("outcome, details", [("request_supplement", {"items": ["Bản vẽ"]}),
                                              ("require_payment", {"amount_vnd": 100_000})])
def test_a_stopped_clock_cannot_be_stopped_again(uow, catalog, deliver, outcome, details):
    deliver(received(CODE, procedure_code=FIRST_LAND))
    for _ in range(2):
        [task] = open_tasks(uow)
        act(uow, catalog, task, "approve", at(3, 9))
    deliver(supplement_requested(CODE, at(4, 9)))  # the counter asked first
    [tax] = open_tasks(uow)
    assert tax.agency_code == TAX_OFFICE
    with pytest.raises(IllegalTransition) as refused:
        act(uow, catalog, tax, outcome, at(4, 10), "Thêm", **details)
    assert refused.value.details == {"status": "paused", "allowed": []}
    assert (run_of(uow).status, tax.status) == ("paused", "open")
    act(uow, catalog, tax, "approve", at(4, 10))  # the step itself may still be done


def test_the_echo_of_a_supplement_arriving_after_the_supplement_is_stale(uow, catalog, deliver):
    deliver(received(CODE, dossier_version=2))
    ask_supplement(uow, catalog, at(3, 9))
    deliver(supplemented(CODE, at(5, 9), due_at=at(31, 17), dossier_version=4), now=at(5, 9))
    assert run_of(uow).status == "running"
    deliver(supplement_requested(CODE, at(3, 9), dossier_version=3), now=at(5, 10))  # delivered late
    assert (run_of(uow).status, run_of(uow).dossier_version, open_tasks(uow)[0].paused_at) == ("running", 4, None)


def test_a_supplement_delivered_before_the_counters_request_never_leaves_the_run_paused(uow, catalog, deliver):
    deliver(received(CODE, dossier_version=2))
    deliver(supplemented(CODE, at(4, 9), due_at=at(31, 17), dossier_version=4), now=at(4, 9))
    deliver(supplement_requested(CODE, at(3, 9), dossier_version=3), now=at(4, 10))
    assert (run_of(uow).status, run_of(uow).dossier_due_at, open_tasks(uow)[0].paused_at) == ("running", at(31, 17), None)


def test_a_reschedule_while_paused_delivered_before_the_request_still_lets_it_pause(uow, catalog, deliver):
    deliver(received(CODE, dossier_version=2))
    deliver(rescheduled(CODE, at(3, 10), at(31, 17), at(27, 17), dossier_version=4), now=at(3, 10))
    deliver(supplement_requested(CODE, at(3, 9), dossier_version=3), now=at(3, 11))
    assert (run_of(uow).status, run_of(uow).paused_at, run_of(uow).dossier_due_at) == ("paused", at(3, 9), at(27, 17))


def test_a_second_request_delivered_before_the_first_supplement_keeps_the_clock_stopped(uow, catalog, deliver):
    deliver(received(CODE, dossier_version=2))
    deliver(supplement_requested(CODE, at(3, 9), dossier_version=3))
    deliver(supplement_requested(CODE, at(5, 9), dossier_version=5, due_at=at(31, 17)), now=at(5, 9))  # round 2…
    deliver(supplemented(CODE, at(4, 9), due_at=at(31, 17), dossier_version=4), now=at(5, 10))  # …before the first
    assert (run_of(uow).status, run_of(uow).dossier_due_at) == ("paused", at(31, 17))
    deliver(supplemented(CODE, at(6, 9), due_at=at(31, 17), dossier_version=6), now=at(6, 9))
    assert run_of(uow).status == "running"


def test_a_withdrawal_while_the_step_waits_for_a_supplement_stops_everything(uow, catalog, deliver):
    deliver(received(CODE, dossier_version=2))
    ask_supplement(uow, catalog, at(3, 9))
    deliver(withdrawn(CODE, at(3, 10), dossier_version=3))  # intake ignores the step's request: withdrawn
    [task] = run_of(uow).tasks
    assert (run_of(uow).status, run_of(uow).paused_at, task.status, task.paused_at) == ("stopped", None, "cancelled", None)
    deliver(supplement_requested(CODE, at(3, 9), dossier_version=3))  # a stale echo changes nothing
    deliver(supplemented(CODE, at(4, 9), dossier_version=5))  # nor does a resume: a stopped run stays stopped
    assert (run_of(uow).status, task.status) == ("stopped", "cancelled")
    with pytest.raises(IllegalTransition) as refused:
        act(uow, catalog, task, "approve", at(4, 9))
    assert refused.value.details == {"status": "cancelled", "allowed": []}


def test_a_withdrawal_stops_the_process_and_cancels_its_open_steps_silently(uow, catalog, deliver):
    deliver(received(CODE))
    events = len(uow.events)
    deliver(withdrawn(CODE, at(3, 9)))
    assert (run_of(uow).status, open_tasks(uow), len(uow.events)) == ("stopped", [], events)


def test_a_withdrawal_while_awaiting_payment_stops_the_run(uow, catalog, deliver):
    deliver(received(CODE, procedure_code=FIRST_LAND))
    for _ in range(2):
        [task] = open_tasks(uow)
        act(uow, catalog, task, "approve", at(3, 9))
    [tax] = open_tasks(uow)
    act(uow, catalog, tax, "require_payment", at(4, 9), "Lệ phí", amount_vnd=100_000)
    deliver(withdrawn(CODE, at(4, 10)))
    deliver(payment_received(CODE, at(4, 11)))  # too late: nothing resumes
    assert (run_of(uow).status, run_of(uow).paused_at, open_tasks(uow)) == ("stopped", None, [])


def test_a_step_that_stops_the_processing_is_not_stopped_again_by_intakes_echo(uow, catalog, deliver):
    deliver(received(CODE, dossier_version=2))
    [task] = open_tasks(uow)
    act(uow, catalog, task, "stop", at(3, 9), "Không bổ sung đúng hạn")
    assert (run_of(uow).status, run_of(uow).finished_at, task.status) == ("stopped", at(3, 9), "done")
    events = len(uow.events)
    deliver(stopped(CODE, at(3, 9), dossier_version=3))
    assert (run_of(uow).status, run_of(uow).finished_at, len(uow.events)) == ("stopped", at(3, 9), events)


# -- resuming, rescheduling ----------------------------------------------------------------------------

def test_resuming_moves_each_open_step_by_exactly_the_paused_working_time(uow, catalog, deliver):
    deliver(received(CODE))  # due in 30 days: the 6-day step is not capped
    [task] = open_tasks(uow)
    assert task.due_at == at(10, 9)
    ask_supplement(uow, catalog, at(3, 9))
    deliver(supplemented(CODE, at(5, 9), due_at=at(31, 17)), now=at(5, 9))
    # Tuesday 9:00 to Thursday 9:00 is two working days: the step moves from Tuesday 10th to Thursday 12th.
    assert catalog.calendar.working_time_between(at(3, 9), at(5, 9)) == 2 * WORKING_DAY
    assert (task.due_at, task.paused_at) == (at(12, 9), None)
    assert (run_of(uow).status, run_of(uow).paused_at, run_of(uow).dossier_due_at) == ("running", None, at(31, 17))


def test_a_resumed_step_never_runs_past_the_new_dossier_due(uow, catalog, deliver):
    deliver(received(CODE))
    deliver(supplement_requested(CODE, at(3, 9)))
    deliver(supplemented(CODE, at(5, 9), due_at=at(11, 17)), now=at(5, 9))
    assert open_tasks(uow)[0].due_at == run_of(uow).dossier_due_at == at(11, 17)


def test_a_step_assigned_while_paused_waits_from_its_assignment(uow, catalog, deliver):
    deliver(received(CODE))
    deliver(supplement_requested(CODE, at(3, 9)))
    [first] = open_tasks(uow)
    act(uow, catalog, first, "approve", at(4, 9))
    [step] = open_tasks(uow)
    assert step.paused_at == at(4, 9)  # paused from its assignment, not from the request
    due = step.due_at
    deliver(supplemented(CODE, at(6, 9)), now=at(6, 9))
    # Wednesday 9:00 to Friday 9:00: two working days.
    assert (step.due_at, step.paused_at) == (catalog.calendar.add_working_time(due, 2 * WORKING_DAY), None)


def test_a_reschedule_moves_the_due_date_and_rearms_the_overdue_check(uow, catalog, deliver):
    deliver(received(CODE, due_at=at(4, 17)))
    handlers.detect_overdue(uow, catalog, at(5, 9))
    assert run_of(uow).overdue_at == at(5, 9)
    deliver(rescheduled(CODE, at(5, 9), at(4, 17), at(13, 17)), now=at(5, 9))
    assert (run_of(uow).dossier_due_at, run_of(uow).overdue_at) == (at(13, 17), None)
    assert handlers.detect_overdue(uow, catalog, at(13, 23))[1] == 0  # due today is not late yet
    assert handlers.detect_overdue(uow, catalog, at(14, 9))[1] == 1
    assert [datetime.fromisoformat(d["due_at"]) for d in uow.published("dossier_overdue")] == [at(4, 17), at(13, 17)]


def test_a_reschedule_to_a_date_already_passed_keeps_the_breach(uow, catalog, deliver):
    deliver(received(CODE, due_at=at(4, 17)))
    handlers.detect_overdue(uow, catalog, at(9, 9))
    deliver(rescheduled(CODE, at(9, 9), at(4, 17), at(6, 17)), now=at(9, 9))
    assert (run_of(uow).dossier_due_at, run_of(uow).overdue_at) == (at(6, 17), at(9, 9))


def test_intakes_events_apply_in_dossier_version_order(uow, catalog, deliver):
    deliver(received(CODE, dossier_version=2))
    deliver(rescheduled(CODE, at(3, 9), at(31, 17), at(20, 17), dossier_version=4))
    deliver(rescheduled(CODE, at(3, 8), at(31, 17), at(25, 17), dossier_version=3))  # older, delivered later
    deliver(rescheduled(CODE, at(3, 10), at(20, 17), at(18, 17), dossier_version=4))  # the same version again
    assert (run_of(uow).dossier_due_at, run_of(uow).dossier_version) == (at(20, 17), 4)
    deliver(rescheduled(CODE, at(3, 11), at(20, 17), at(19, 17)))  # stored before versions: applied
    assert (run_of(uow).dossier_due_at, run_of(uow).dossier_version) == (at(19, 17), 4)


def test_intakes_events_about_a_dossier_never_routed_here_are_ignored(uow, catalog, deliver):
    for event in (supplement_requested(CODE, at(3, 9)), supplemented(CODE, at(5, 9)), withdrawn(CODE, at(3, 9)),
                  rescheduled(CODE, at(3, 9), at(4, 17), at(13, 17)), payment_received(CODE, at(3, 9))):
        assert deliver(event)
    assert uow.runs.runs == {} and uow.events == []


# -- the SLA check -------------------------------------------------------------------------------------

def test_a_late_step_and_its_dossier_are_flagged_and_announced_once(uow, catalog, deliver):
    deliver(received(CODE, due_at=at(4, 17)))
    [task] = open_tasks(uow)
    assert task.due_at == at(4, 17)
    detected_at = at(5, 0, 1)
    assert handlers.detect_overdue(uow, catalog, detected_at) == (1, 1)
    [overdue] = uow.published("task_overdue")
    assert (overdue["task_id"], overdue["agency_code"], overdue["step_index"]) == (task.id, LAND_OFFICE, 0)
    assert overdue["escalated_to_role"] == "leader"
    assert datetime.fromisoformat(overdue["due_at"]) == at(4, 17)
    assert datetime.fromisoformat(overdue["detected_at"]) == detected_at
    [late] = uow.published("dossier_overdue")
    assert (late["dossier_code"], late["agency_code"], late["current_agency_code"]) == (CODE, COMMUNE, LAND_OFFICE)
    assert (task.overdue_at, run_of(uow).overdue_at) == (detected_at, detected_at)
    assert handlers.detect_overdue(uow, catalog, at(6, 9)) == (0, 0)  # the next checks announce nothing again


def test_overdue_is_judged_by_local_dates(uow, catalog, deliver):
    deliver(received(CODE, due_at=at(4, 17)))
    assert handlers.detect_overdue(uow, catalog, at(4, 23, 59)) == (0, 0)
    assert handlers.detect_overdue(uow, catalog, at(5, 0, 0)) == (1, 1)


def test_a_completed_step_or_finished_dossier_is_never_flagged(uow, catalog, deliver):
    deliver(received(CODE, due_at=at(20, 17)))
    for officer in (staff(LAND_OFFICE), staff(LAND_DEPT, "leader"), staff(COMMUNE)):
        [task] = open_tasks(uow)
        handlers.complete_task(uow, catalog, task.id, "approve", None, officer, at(10, 9))
    assert handlers.detect_overdue(uow, catalog, at(31, 9)) == (0, 0)


def test_one_dossier_overdue_per_dossier_however_many_late_steps(uow, catalog, deliver):
    deliver(received(CODE, due_at=at(4, 17)))
    handlers.detect_overdue(uow, catalog, at(5, 9))
    [late] = open_tasks(uow)
    act(uow, catalog, late, "approve", at(5, 10))
    # The next step is born overdue (capped at the passed dossier due date): a new task_overdue,
    # but the dossier was already announced.
    assert handlers.detect_overdue(uow, catalog, at(5, 10, 1)) == (1, 0)
    assert [t["step_index"] for t in uow.published("task_overdue")] == [0, 1]
    assert uow.published("dossier_overdue")[0]["current_agency_code"] == LAND_OFFICE


def test_a_paused_dossier_and_its_step_are_never_overdue(uow, catalog, deliver):
    deliver(received(CODE, due_at=at(4, 17)))
    ask_supplement(uow, catalog, at(3, 9))
    assert handlers.detect_overdue(uow, catalog, at(9, 9)) == (0, 0)
    assert open_tasks(uow)[0].overdue_at is None and run_of(uow).overdue_at is None


def test_a_late_step_that_will_miss_the_due_date_drafts_form_04_once(uow, catalog, deliver):
    deliver(received(CODE, procedure_code=FIRST_LAND, due_at=at(20, 17)))
    # The commune's 5 days are gone; 15 working days of steps are still ahead.
    handlers.detect_overdue(uow, catalog, at(16, 9))
    [predicted] = uow.published("delay_predicted")
    assert (predicted["agency_code"], predicted["current_agency_code"]) == (COMMUNE, COMMUNE)
    assert datetime.fromisoformat(predicted["proposed_due_at"]) > at(20, 17)
    assert run_of(uow).delay_predicted_at == at(16, 9)
    [task] = open_tasks(uow)
    act(uow, catalog, task, "approve", at(16, 10))
    handlers.detect_overdue(uow, catalog, at(31, 9))
    assert len(uow.published("delay_predicted")) == 1  # once


def test_a_backlog_is_flagged_in_batches_in_one_check(uow, catalog, deliver):
    codes = [f"000.20.01.H56-260302-{n:04d}" for n in range(1, 6)]
    for code in codes:
        deliver(received(code, due_at=at(4, 17)))
    commits = uow.commits
    assert handlers.detect_overdue(uow, catalog, at(9, 9), batch=2) == (5, 5)
    assert sorted(d["dossier_code"] for d in uow.published("dossier_overdue")) == codes
    assert uow.commits - commits == 3  # 2 + 2 + 1
    first = [(e["event_type"], e["data"]["run_version"]) for e in uow.events
             if e["exchange"] is None and e["data"]["dossier_code"] == codes[0]]
    assert first == [("task_assigned", 1), ("task_overdue", 2), ("delay_predicted", 3), ("dossier_overdue", 4)]


def test_what_the_sla_check_flags_is_the_runs_own_rule(catalog):
    run, _ = ProcessRun.start(CODE, "1.012786", COMMUNE, at(4, 17), {}, None, catalog, MONDAY)
    cutoff = at(5, 0)
    assert run.needs_flagging(cutoff) and not run.needs_flagging(at(4, 0))
    run.flag_overdue(at(5, 9), catalog)
    assert not run.needs_flagging(cutoff)
    run.tasks[0].due_at, run.tasks[0].overdue_at = at(4, 17) + timedelta(days=1), None
    run.tasks[0].paused_at = at(5, 8)
    assert not run.needs_flagging(at(9, 0))  # paused: never overdue
