"""Intake's decisions that stop, move or end a dossier's clock: supplement (paused), supplemented
(resumed, steps moved by the paused working time), rescheduled (form 04), withdrawn (stopped)."""
from __future__ import annotations

from datetime import datetime

import pytest
from sqlalchemy import select

from motcua.errors import IllegalTransition
from services.workflow import queries
from services.workflow.models import outbox
from services.workflow.process_run import ProcessRun, Task
from tests.workflow.support import (
    LAND_OFFICE,
    TZ,
    received,
    rescheduled,
    staff,
    stored_run,
    stored_tasks,
    supplement_requested,
    supplemented,
    token,
    withdrawn,
)

CODE = "000.20.01.H56-260302-0001"


def at(day: int, hour: int, minute: int = 0) -> datetime:
    """A local time in March 2026 (2 March is a Monday)."""
    return datetime(2026, 3, day, hour, minute, tzinfo=TZ)


def event_count(uow) -> int:
    return len(uow.session.execute(select(outbox.c.id)).all())


def run_of(uow) -> ProcessRun:
    return stored_run(uow.session, CODE)


def task_of(uow) -> Task:
    [task] = stored_tasks(uow.session, dossier_code=CODE)
    return task


def overdue_inbox(service) -> list[dict]:
    return service.list_tasks(token(staff(LAND_OFFICE, "leader")), status="overdue")


def test_a_paused_dossier_and_its_step_are_never_overdue(service, clock, uow):
    service.on_dossier_received(received(CODE, due_at=at(4, 17)))  # the step is capped at Wednesday 17:00
    clock.now = at(3, 9)
    service.on_supplement_requested(supplement_requested(CODE, at(3, 9)))
    assert (run_of(uow).status, run_of(uow).paused_at) == ("paused", at(3, 9))

    clock.now = at(9, 9)  # both due dates long passed, but the clock is stopped
    service.check_deadlines()
    assert task_of(uow).overdue_at is None and run_of(uow).overdue_at is None
    assert overdue_inbox(service) == []
    [open_task] = service.list_tasks(token(staff(LAND_OFFICE)))  # still in the inbox, not overdue
    assert (open_task["overdue"], open_task["escalated_to"]) == (False, None)
    assert queries.open_tasks_by_agency(uow.session, at(9, 0)) == {}


def test_resuming_moves_each_open_step_by_exactly_the_paused_working_time(service, clock, uow, catalog):
    service.on_dossier_received(received(CODE))  # due in 30 days: the 6-day step is not capped
    assert task_of(uow).due_at == at(10, 9)
    service.on_supplement_requested(supplement_requested(CODE, at(3, 9)))
    clock.now = at(5, 9)
    service.on_dossier_supplemented(supplemented(CODE, at(5, 9), due_at=at(31, 17)))

    # Tuesday 9:00 to Thursday 9:00 is two working days: the step moves from Tuesday 10th to Thursday 12th.
    assert catalog.calendar.working_time_between(at(3, 9), at(5, 9)) == 2 * (at(2, 17) - at(2, 9))
    assert task_of(uow).due_at == at(12, 9)
    assert (task_of(uow).paused_at, run_of(uow).status, run_of(uow).paused_at) == (None, "running", None)
    assert run_of(uow).dossier_due_at == at(31, 17)

    clock.now = at(13, 9)  # detected again once the moved date passes
    service.check_deadlines()
    assert task_of(uow).overdue_at == at(13, 9) and run_of(uow).overdue_at is None


def test_a_resumed_step_never_runs_past_the_new_dossier_due(service, clock, uow):
    service.on_dossier_received(received(CODE))
    service.on_supplement_requested(supplement_requested(CODE, at(3, 9)))
    service.on_dossier_supplemented(supplemented(CODE, at(5, 9), due_at=at(11, 17)))
    assert task_of(uow).due_at == run_of(uow).dossier_due_at == at(11, 17)


def test_a_step_assigned_while_paused_waits_too(service, clock, uow, catalog):
    service.on_dossier_received(received(CODE))
    service.on_supplement_requested(supplement_requested(CODE, at(3, 9)))
    clock.now = at(4, 9)
    service.complete_task(task_of(uow).id, "approve", None, token(staff(LAND_OFFICE)))
    [step] = stored_tasks(uow.session, status="open")
    assert step.paused_at == at(4, 9)  # paused from its assignment, not from the request
    due = step.due_at
    clock.now = at(6, 9)
    service.on_dossier_supplemented(supplemented(CODE, at(6, 9)))
    [step] = stored_tasks(uow.session, id=step.id)
    # Wednesday 9:00 to Friday 9:00: two working days.
    assert step.due_at == catalog.calendar.add_working_time(due, 2 * (at(2, 17) - at(2, 9)))
    assert step.paused_at is None


def test_a_reschedule_moves_the_due_date_and_rearms_the_overdue_check(service, clock, uow):
    service.on_dossier_received(received(CODE, due_at=at(4, 17)))
    clock.now = at(5, 9)
    service.check_deadlines()
    assert run_of(uow).overdue_at == at(5, 9)

    service.on_dossier_rescheduled(rescheduled(CODE, at(5, 9), at(4, 17), at(13, 17)))
    assert (run_of(uow).dossier_due_at, run_of(uow).overdue_at) == (at(13, 17), None)
    clock.now = at(13, 23)
    service.check_deadlines()
    assert run_of(uow).overdue_at is None  # due today is not late yet
    clock.now = at(14, 9)
    service.check_deadlines()
    assert run_of(uow).overdue_at == at(14, 9)
    late = uow.session.execute(select(outbox.c.payload).where(outbox.c.event_type == "dossier_overdue")).scalars()
    assert [datetime.fromisoformat(p["data"]["due_at"]) for p in late] == [at(4, 17), at(13, 17)]


def test_a_reschedule_to_a_date_already_passed_keeps_the_breach(service, clock, uow):
    service.on_dossier_received(received(CODE, due_at=at(4, 17)))
    clock.now = at(9, 9)
    service.check_deadlines()
    service.on_dossier_rescheduled(rescheduled(CODE, at(9, 9), at(4, 17), at(6, 17)))
    assert (run_of(uow).dossier_due_at, run_of(uow).overdue_at) == (at(6, 17), at(9, 9))


def test_a_withdrawal_stops_the_process_and_cancels_its_open_steps_silently(service, clock, uow):
    service.on_dossier_received(received(CODE, due_at=at(4, 17)))
    before = event_count(uow)
    service.on_dossier_withdrawn(withdrawn(CODE, at(3, 9)))
    assert (run_of(uow).status, task_of(uow).status) == ("stopped", "cancelled")
    assert event_count(uow) == before
    assert service.list_tasks(token(staff(LAND_OFFICE))) == []

    with pytest.raises(IllegalTransition) as refused:  # 409 at the gateway
        service.complete_task(task_of(uow).id, "approve", None, token(staff(LAND_OFFICE)))
    assert refused.value.details == {"status": "cancelled", "allowed": []}
    clock.now = at(20, 9)
    service.check_deadlines()
    assert event_count(uow) == before


@pytest.mark.parametrize("handler, event", [
    ("on_supplement_requested", supplement_requested(CODE, at(3, 9))),
    ("on_dossier_supplemented", supplemented(CODE, at(5, 9), due_at=at(20, 17))),
    ("on_dossier_rescheduled", rescheduled(CODE, at(3, 9), at(4, 17), at(13, 17))),
    ("on_dossier_withdrawn", withdrawn(CODE, at(3, 9))),
])
def test_a_dossier_never_routed_here_is_ignored(service, uow, handler, event):
    getattr(service, handler)(event)
    assert run_of(uow) is None and stored_tasks(uow.session) == []
