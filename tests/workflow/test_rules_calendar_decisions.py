"""Steps' deadlines follow the official calendar decisions recorded through the API (intake's
`calendar_decided`), in memory (no database, no broker): the open steps whose span holds the day move
by the working time the new calendar takes from them, never earlier, never past the dossier's due date;
the steps assigned afterwards are counted with the decision."""
from __future__ import annotations

from dataclasses import replace
from datetime import date
from functools import partial

import pytest

from services.workflow import handlers
from services.workflow.processes import Processes
from tests.workflow.fakes import FakeWorkflowUnitOfWork
from tests.workflow.support import LAND_DEPT, LAND_OFFICE, MONDAY, at, calendar_decided, received, rescheduled, staff

CODE = "000.20.01.H56-260302-0001"
THURSDAY = date(2026, 3, 5)  # declared a day off after the dossier was received (a fictitious letter)


@pytest.fixture
def rules(catalog) -> Processes:
    """The catalogue's own copy: a decision changes the calendar it counts with."""
    return replace(catalog)


@pytest.fixture
def uow() -> FakeWorkflowUnitOfWork:
    return FakeWorkflowUnitOfWork()


def start(uow, rules, due_at=None):
    uow.apply_once(received(CODE, due_at=due_at), "workflow.on_dossier_received",
                   partial(handlers.start_process, catalog=rules, now=MONDAY))
    [task] = uow.runs.get(CODE).tasks
    return task


def decide(uow, rules, event, now=at(4, 8)) -> bool:
    return uow.apply_once(event, "workflow.on_calendar_decided",
                          partial(handlers.apply_calendar_decision, catalog=rules, now=now))


def test_a_day_off_declared_in_a_steps_span_moves_its_deadline_by_a_working_day(uow, rules):
    # The land office's step: 6 working days from Monday 2/3 09:00 → Tuesday 10/3 09:00.
    task = start(uow, rules)
    assert task.agency_code == LAND_OFFICE and task.due_at == at(10, 9)
    decide(uow, rules, calendar_decided(THURSDAY))
    # From Thursday 5/3 the step had 26 working hours left (5, 6, 9/3 and 2 hours of the 10th); under
    # the new calendar they run Friday 6, Monday 9, Tuesday 10 and 2 hours of Wednesday 11/3.
    assert task.due_at == at(11, 9)
    # Published with the run's next version, for the national portal's step deadline.
    [moved] = uow.published("task_rescheduled")
    assert (moved["task_id"], moved["old_due_at"], moved["due_at"], moved["reason"]) == (
        task.id, at(10, 9).isoformat(), at(11, 9).isoformat(), "calendar")
    assert moved["run_version"] == max(e["run_version"] for e in uow.published()) == uow.runs.get(CODE).version
    # From now on this instance counts every new step with it: the next step's 3 days from Wed 4/3 9:00
    # skip Thursday 5/3.
    assert rules.calendar.due_at(at(4, 9), 3) == at(10, 9)


def test_the_steps_assigned_after_the_decision_count_with_it(uow, rules):
    task = start(uow, rules)
    decide(uow, rules, calendar_decided(THURSDAY))
    run = uow.runs.get(CODE)
    run.complete(task.id, "approve", "đủ điều kiện", staff(LAND_OFFICE), at(4, 9), rules)
    [second] = [t for t in run.tasks if t.agency_code == LAND_DEPT]
    assert second.due_at == at(10, 9)  # 3 working days from Wed 4/3 09:00, Thursday 5/3 off


def test_a_step_whose_span_does_not_hold_the_day_keeps_its_deadline(uow, rules):
    task = start(uow, rules)
    decide(uow, rules, calendar_decided(date(2026, 3, 12)))  # after the step's due date
    assert task.due_at == at(10, 9) and not uow.published("task_rescheduled")


def test_a_new_working_day_never_moves_a_deadline_earlier(uow, rules):
    task = start(uow, rules)
    decide(uow, rules, calendar_decided(date(2026, 3, 7), kind="working_day"))  # Saturday 7/3 worked
    assert task.due_at == at(10, 9)
    assert rules.calendar.due_at(at(6, 9), 1) == at(7, 9)  # but a step assigned on Friday counts it


def test_a_step_never_runs_past_the_dossiers_due_date(uow, rules):
    task = start(uow, rules, due_at=at(10, 9))  # the dossier is due when its step is
    decide(uow, rules, calendar_decided(THURSDAY))
    assert task.due_at == at(10, 9)  # intake did not move the appointment: neither does the step


def test_a_step_moves_with_the_appointment_intake_moved_first(uow, rules):
    """intake's outbox has the `dossier_rescheduled` the decision caused before the decision itself."""
    task = start(uow, rules, due_at=at(10, 9))
    uow.apply_once(rescheduled(CODE, at(4, 8), at(10, 9), at(11, 9)), "workflow.on_dossier_rescheduled",
                   partial(handlers.reschedule_process, catalog=rules, now=at(4, 8)))
    decide(uow, rules, calendar_decided(THURSDAY))
    assert task.due_at == at(11, 9)


def test_the_same_decision_delivered_again_moves_nothing_more(uow, rules):
    """Both calendars are read from the recorded decisions, not from memory: a replay (another event id,
    or the batch retried after a rollback) finds the day already off and moves nothing."""
    task = start(uow, rules)
    assert decide(uow, rules, calendar_decided(THURSDAY))
    assert decide(uow, rules, calendar_decided(THURSDAY))  # a new event id: applied, to no effect
    assert task.due_at == at(11, 9)
    assert uow.calendar.recorded()[0][0].date == THURSDAY and len(uow.calendar.recorded()) == 1
