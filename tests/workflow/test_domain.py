"""Workflow rules on a real (SQLite) database: starting processes, completing steps, timeliness."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone
from functools import partial

import pytest
from sqlalchemy import select

from motcua.calendar import overdue_before
from motcua.errors import Forbidden, IllegalTransition, NotFound
from motcua.identity import Caller
from services.workflow import handlers, queries
from services.workflow.models import inbox, outbox
from services.workflow.process_run import ProcessRun, Task
from tests.workflow.support import ADMIN, COMMUNE, LAND, LAND_DEPT, LAND_OFFICE, MONDAY, TZ, received, staff

CONSUMER = "workflow.on_dossier_received"


def at(day: int, hour: int, minute: int = 0) -> datetime:
    """A local time in March 2026 (2 March is a Monday)."""
    return datetime(2026, 3, day, hour, minute, tzinfo=TZ)


def events(uow, event_type: str | None = None) -> list:
    query = select(outbox.c.event_type, outbox.c.exchange, outbox.c.routing_key, outbox.c.payload).order_by(outbox.c.id)
    rows = uow.session.execute(query).all()
    return [r for r in rows if event_type is None or r.event_type == event_type]


def start(uow, catalog, event, now=MONDAY) -> bool:
    return uow.apply_once(event, CONSUMER, partial(handlers.start_process, catalog=catalog, now=now))


def open_task(uow) -> Task:
    return uow.session.scalars(select(Task).where(Task.status == "open")).one()


def test_a_received_dossier_gets_its_first_step_with_a_working_day_due_date(uow, catalog):
    assert start(uow, catalog, received())

    task = open_task(uow)
    assert (task.agency_code, task.role, task.step_index) == (LAND_OFFICE, "specialist", 0)
    assert task.assigned_at == MONDAY
    # 6 working days of 8 hours from Monday 09:00 end on the next Tuesday at 09:00
    assert task.due_at == at(10, 9)
    assert str(task.id) == task.id and len(task.id) == 36

    assigned = events(uow, "task_assigned")
    assert [(e.exchange, e.routing_key) for e in assigned] == [(None, None), ("motcua.tasks", f"task.{LAND_OFFICE}")]
    first, to_agency = (e.payload for e in assigned)
    # the same event, with the same id, on both routes
    assert (first["event_id"], first["data"]) == (to_agency["event_id"], to_agency["data"])
    assert first["data"]["task_id"] == task.id
    assert first["data"]["procedure_code"] == LAND
    assert datetime.fromisoformat(first["data"]["due_at"]) == at(10, 9)


def test_a_step_is_never_due_after_the_dossier(uow, catalog):
    dossier_due = at(3, 17)
    start(uow, catalog, received(due_at=dossier_due))
    assert open_task(uow).due_at == dossier_due


def test_a_repeated_or_reordered_dossier_received_does_nothing(uow, catalog):
    event = received()
    assert start(uow, catalog, event)
    assert not start(uow, catalog, event)  # the same delivery again: the inbox absorbs it
    assert start(uow, catalog, received(received_at=MONDAY + timedelta(hours=1)))  # re-sent with a new id
    assert uow.session.scalars(select(Task)).all() == [open_task(uow)]
    assert len(events(uow)) == 2


def test_an_unknown_procedure_is_refused_so_the_message_is_parked(uow, catalog):
    event = received(procedure_code="9.999999")
    with pytest.raises(NotFound, match="9.999999"):
        start(uow, catalog, event)
    uow.session.rollback()  # as the worker teardown does
    assert uow.session.scalars(select(ProcessRun)).all() == []
    assert uow.session.execute(select(inbox)).all() == []  # not marked applied: a replay will retry it
    assert events(uow) == []


def test_a_three_agency_process_runs_to_result_ready_once(uow, catalog):
    start(uow, catalog, received())
    officers = [staff(LAND_OFFICE), staff(LAND_DEPT, "leader"), staff(COMMUNE)]
    finished = [at(5, 10), at(10, 16), at(12, 8)]
    completed = []
    for officer, now in zip(officers, finished):
        task = open_task(uow)
        assert task.agency_code == officer.agency_code
        completed.append(handlers.complete_task(uow, catalog, task.id, "approve", "đã thẩm định", officer, now))

    assert [t.timeliness for t in completed] == ["early", "on_time", "late"]
    assert [t.completed_by for t in completed] == [o.username for o in officers]
    assert [t.due_at for t in completed] == [at(10, 9), at(10, 10), at(11, 16)]
    run = uow.session.get(ProcessRun, completed[0].dossier_code)
    assert (run.status, run.finished_at) == ("finished", at(12, 8))
    ready = events(uow, "result_ready")
    assert len(ready) == 1
    assert ready[0].payload["data"]["agency_code"] == COMMUNE
    assert datetime.fromisoformat(ready[0].payload["data"]["finished_at"]) == at(12, 8)
    assert [e.payload["data"]["timeliness"] for e in events(uow, "task_completed")] == ["early", "on_time", "late"]
    assert len(events(uow, "task_assigned")) == 6

    with pytest.raises(IllegalTransition) as caught:
        handlers.complete_task(uow, catalog, completed[-1].id, "approve", None, officers[-1], at(12, 9))
    assert caught.value.details == {"status": "done", "allowed": []}  # nothing more to do with it
    assert len(events(uow, "result_ready")) == 1


@pytest.mark.parametrize("caller", [
    staff(LAND_DEPT, "leader"),  # the next agency in the process, but not this step's
    Caller("citizen", None, ()),
    Caller("someone@" + LAND_OFFICE, LAND_OFFICE, ("viewer",)),
])
def test_only_staff_of_the_tasks_agency_can_complete_it(uow, catalog, caller):
    start(uow, catalog, received())
    task = open_task(uow)
    with pytest.raises(Forbidden):
        handlers.complete_task(uow, catalog, task.id, "approve", None, caller, at(3, 9))
    uow.session.rollback()
    assert open_task(uow).id == task.id
    assert events(uow, "task_completed") == []


@pytest.mark.parametrize("caller", [
    staff(LAND_OFFICE, "receptionist"),  # the right agency, the wrong role
    staff(LAND_OFFICE, "leader"),
])
def test_only_the_steps_role_can_complete_it(uow, catalog, caller):
    start(uow, catalog, received())
    task = open_task(uow)
    assert task.role == "specialist"
    with pytest.raises(Forbidden, match="specialist"):
        handlers.complete_task(uow, catalog, task.id, "approve", None, caller, at(3, 9))
    uow.session.rollback()
    assert open_task(uow).status == "open"
    assert events(uow, "task_completed") == []


def test_a_leaders_step_needs_a_leader(uow, catalog):
    start(uow, catalog, received())
    handlers.complete_task(uow, catalog, open_task(uow).id, "approve", None, staff(LAND_OFFICE), at(3, 9))
    signing = open_task(uow)
    assert (signing.agency_code, signing.role) == (LAND_DEPT, "leader")
    for wrong in (staff(LAND_DEPT, "receptionist"), staff(LAND_DEPT, "specialist")):
        with pytest.raises(Forbidden, match="leader"):
            handlers.complete_task(uow, catalog, signing.id, "approve", None, wrong, at(3, 10))
        uow.session.rollback()
    done = handlers.complete_task(uow, catalog, signing.id, "approve", None, staff(LAND_DEPT, "leader"), at(3, 10))
    assert (done.status, done.completed_by) == ("done", f"leader@{LAND_DEPT}")


def test_an_admin_may_complete_any_task(uow, catalog):
    start(uow, catalog, received())
    task = handlers.complete_task(uow, catalog, open_task(uow).id, "approve", None, ADMIN, at(3, 9))
    assert (task.status, task.completed_by) == ("done", "admin")


def test_an_unknown_task_is_not_found(uow, catalog):
    with pytest.raises(NotFound):
        handlers.complete_task(uow, catalog, "00000000-0000-0000-0000-000000000000", "approve", None,
                             staff(LAND_OFFICE), MONDAY)


@pytest.mark.parametrize("completed_at, expected", [
    (at(9, 16), "early"),
    (at(10, 8), "on_time"),   # before the due hour, same date
    (at(10, 23, 30), "on_time"),  # after the due hour, same date
    (at(11, 0, 5), "late"),   # still 10 March in UTC: dates are the province's
])
def test_a_steps_timeliness_compares_local_dates(uow, catalog, completed_at, expected):
    start(uow, catalog, received())
    task = open_task(uow)
    assert task.due_at == at(10, 9)
    done = handlers.complete_task(uow, catalog, task.id, "approve", None, staff(LAND_OFFICE),
                                completed_at.astimezone(timezone.utc))
    assert done.timeliness == expected
    assert events(uow, "task_completed")[0].payload["data"]["timeliness"] == expected


def test_tasks_are_listed_per_agency_overdue_first(uow, catalog):
    start(uow, catalog, received("000.20.01.H56-260302-0001", due_at=at(20, 17)))
    start(uow, catalog, received("000.20.01.H56-260302-0002", due_at=at(4, 17)))
    start(uow, catalog, received("000.20.01.H56-260302-0003", procedure_code="1.004873"))
    officer = staff(LAND_OFFICE)

    now = at(5, 9)  # the second dossier's step is overdue, the first's not yet
    listed = queries.list_tasks(uow.session, officer, "open", now, TZ, catalog.tree)
    assert [t.dossier_code[-4:] for t in listed] == ["0002", "0001"]
    assert {t.agency_code for t in queries.list_tasks(uow.session, ADMIN, "open", now, TZ, catalog.tree)} == {LAND_OFFICE, "000.20.02.H56"}

    handlers.complete_task(uow, catalog, listed[1].id, "approve", None, officer, now)
    assert [t.dossier_code[-4:] for t in queries.list_tasks(uow.session, officer, "done", now, TZ, catalog.tree)] == ["0001"]
    assert len(queries.list_tasks(uow.session, officer, "all", now, TZ, catalog.tree)) == 2
    # the department's leader: its own step of 0001, and its land office's (overdue first) for oversight
    assert [t.dossier_code[-4:] for t in queries.list_tasks(uow.session, staff(LAND_DEPT, "leader"), "open", now, TZ,
                                                           catalog.tree)] == ["0002", "0001"]


def test_history_lists_every_hand_over_of_the_dossier(uow, catalog):
    start(uow, catalog, received())
    first = handlers.complete_task(uow, catalog, open_task(uow).id, "approve", None, staff(LAND_OFFICE), at(5, 10))
    second = open_task(uow)

    task, history = queries.task_with_history(uow.session, second.id, staff(LAND_DEPT, "leader"), catalog.tree)
    assert task.id == second.id
    assert [(t.agency_code, t.completed_by, t.timeliness) for t in history] == [
        (LAND_OFFICE, f"specialist@{LAND_OFFICE}", "early"), (LAND_DEPT, None, None)]
    assert [t.id for t in queries.dossier_history(uow.session, first.dossier_code)] == [first.id, second.id]
    assert queries.dossier_history(uow.session, "unknown") == []
    with pytest.raises(Forbidden):
        queries.task_with_history(uow.session, second.id, staff(LAND_OFFICE), catalog.tree)


def test_counts_for_the_metrics(uow, catalog):
    start(uow, catalog, received("000.20.01.H56-260302-0001"))
    start(uow, catalog, received("000.20.01.H56-260302-0002", procedure_code="1.004873"))
    marital = queries.list_tasks(uow.session, ADMIN, "open", MONDAY, TZ, catalog.tree)[0]  # due first: 2 days
    assert marital.procedure_code == "1.004873"
    handlers.complete_task(uow, catalog, marital.id, "approve", None, ADMIN, at(3, 9))
    assert queries.tasks_by_status(uow.session) == {("open",): 2, ("done",): 1, ("cancelled",): 0}
    assert queries.open_tasks_by_agency(uow.session) == {(LAND_OFFICE,): 1, ("000.20.02.H56",): 1}
    assert sum(queries.open_tasks_by_agency(uow.session, overdue_before(at(31, 9), TZ)).values()) == 2
    assert queries.open_tasks_by_agency(uow.session, overdue_before(MONDAY, TZ)) == {}
