"""Workflow's runs and tasks on a real database: what is stored (outbox and inbox rows, versions), several
events in one transaction, two officers at once on PostgreSQL, and the read paths' queries. The rules
themselves are tested in memory (test_rules_*.py)."""
from __future__ import annotations

import threading
from datetime import datetime, timedelta
from functools import partial

import eventlet
import pytest
from sqlalchemy import select, text
from sqlalchemy.orm import sessionmaker

from motcua.calendar import overdue_before
from motcua.db import make_engine
from motcua.errors import Forbidden, NotFound
from services.workflow import handlers, queries
from services.workflow.models import Base, inbox, outbox, runs
from services.workflow.process_run import Task
from services.workflow.repository import WorkflowUnitOfWork
from tests.infra import wait_for
from tests.workflow.support import (
    ADMIN,
    COMMUNE,
    LAND,
    LAND_DEPT,
    LAND_OFFICE,
    MONDAY,
    TZ,
    at,
    received,
    rescheduled,
    staff,
    stored_run,
    stored_tasks,
    supplement_requested,
    withdrawn,
)

CONSUMER = "workflow.on_dossier_received"
NEWBORN = "2.000986"


def events(uow, event_type: str | None = None) -> list:
    query = select(outbox.c.event_type, outbox.c.exchange, outbox.c.routing_key, outbox.c.payload).order_by(outbox.c.id)
    rows = uow.session.execute(query).all()
    return [r for r in rows if event_type is None or r.event_type == event_type]


def start(uow, catalog, event, now=MONDAY) -> bool:
    return uow.apply_once(event, CONSUMER, partial(handlers.start_process, catalog=catalog, now=now))


def open_task(uow) -> Task:
    [task] = stored_tasks(uow.session, status="open")
    return task


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


def test_a_repeated_or_reordered_dossier_received_does_nothing(uow, catalog):
    event = received()
    assert start(uow, catalog, event)
    assert not start(uow, catalog, event)  # the same delivery again: the inbox absorbs it
    assert start(uow, catalog, received(received_at=MONDAY + timedelta(hours=1)))  # re-sent with a new id
    assert [task.id for task in stored_tasks(uow.session)] == [open_task(uow).id]
    assert len(events(uow)) == 2


def test_an_unknown_procedure_is_refused_so_the_message_is_parked(uow, catalog):
    event = received(procedure_code="9.999999")
    with pytest.raises(NotFound, match="9.999999"):
        start(uow, catalog, event)
    uow.session.rollback()  # as the worker teardown does
    assert stored_tasks(uow.session) == [] and uow.session.execute(select(runs)).all() == []
    assert uow.session.execute(select(inbox)).all() == []  # not marked applied: a replay will retry it
    assert events(uow) == []


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
    assert [t.id for t in queries.dossier_history(uow.session, first.dossier_code, ADMIN, catalog.tree)] == [
        first.id, second.id]
    assert queries.dossier_history(uow.session, "unknown", ADMIN, catalog.tree) == []
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


def test_the_run_its_tasks_and_versions_are_stored(uow, catalog, db_url):
    start(uow, catalog, received(dossier_version=2))
    handlers.complete_task(uow, catalog, open_task(uow).id, "approve", None, staff(LAND_OFFICE), at(3, 9))
    with sessionmaker(bind=make_engine(db_url))() as session:  # read back, not from this session's memory
        run = stored_run(session, received().data["code"])
        assert (run.status, run.version, run.dossier_version, run.dossier_due_at) == ("running", 3, 2, MONDAY + timedelta(days=30))
        assert [(t.step_index, t.status, t.completed_at) for t in run.tasks] == [(0, "done", at(3, 9)), (1, "open", None)]
    versions = [(e.event_type, e.payload["data"]["run_version"]) for e in events(uow) if e.exchange is None]
    assert versions == [("task_assigned", 1), ("task_completed", 2), ("task_assigned", 3)]


def test_several_events_apply_in_one_transaction_one_after_another(uow, catalog, db_url):
    """As the kit's batched consumer applies them: no commit between, each reads what the previous wrote."""
    first, second = "000.20.01.H56-260302-0001", "000.20.01.H56-260302-0002"
    batch = [(received(first, dossier_version=2), partial(handlers.start_process, catalog=catalog, now=MONDAY)),
             (received(second, dossier_version=2), partial(handlers.start_process, catalog=catalog, now=MONDAY)),
             (supplement_requested(first, at(2, 10), dossier_version=3),
              partial(handlers.pause_process, catalog=catalog, now=at(2, 10))),
             (rescheduled(first, at(2, 11), at(31, 9), at(20, 17), dossier_version=4),
              partial(handlers.reschedule_process, catalog=catalog, now=at(2, 11))),
             (withdrawn(second, at(2, 12), dossier_version=3), handlers.stop_process),
             (received(first, dossier_version=2), partial(handlers.start_process, catalog=catalog, now=MONDAY))]
    for event, apply in batch:
        assert uow.claim(event, event.event_type)
        apply(uow, event)
    uow.commit()
    with sessionmaker(bind=make_engine(db_url))() as session:
        paused, gone = stored_run(session, first), stored_run(session, second)
        assert (paused.status, paused.paused_at, paused.dossier_due_at, paused.dossier_version) == (
            "paused", at(2, 10), at(20, 17), 4)
        assert [(t.status, t.paused_at) for t in paused.tasks] == [("open", at(2, 10))]
        assert (gone.status, [t.status for t in gone.tasks]) == ("stopped", ["cancelled"])
        assert len(session.execute(select(inbox)).all()) == len(batch)
    assert len(events(uow, "task_assigned")) == 4  # two dossiers, each on two routes; the repeat added none


def test_two_officers_closing_the_last_two_branches_at_once_open_the_next_stage_once(pg_urls, catalog):
    """The run's row is the lock: the second officer waits, then reads the tasks as the first left them,
    so the join sees both branches closed (a read taken before the wait would see one still open)."""
    engine = make_engine(pg_urls["workflow"])
    sessions = sessionmaker(bind=engine, expire_on_commit=False)

    def unit() -> WorkflowUnitOfWork:
        return WorkflowUnitOfWork(sessions(), "workflow", Base.metadata)

    try:
        seed = unit()
        start(seed, catalog, received(procedure_code=NEWBORN))
        justice, police, insurance = sorted(stored_tasks(seed.session), key=lambda t: t.step_index)
        handlers.complete_task(seed, catalog, justice.id, "approve", None, staff(COMMUNE), at(2, 10))
        seed.close()

        first = unit()
        run = first.runs.with_task(police.id)  # holds the run's lock
        second_done = threading.Event()

        def second_officer():
            other = unit()
            try:
                handlers.complete_task(other, catalog, insurance.id, "approve", None, staff(insurance.agency_code),
                                       at(2, 11))
            finally:
                other.close()
                second_done.set()

        thread = threading.Thread(target=second_officer)
        thread.start()
        with sessions() as watcher:  # the second officer is queued on the run's lock
            assert wait_for(lambda: watcher.execute(text("SELECT count(*) FROM pg_locks WHERE NOT granted")).scalar(),
                            timeout=10)
        assert not second_done.is_set()
        messages = run.complete(police.id, "approve", None, staff(police.agency_code), at(2, 11), catalog)
        first.runs.save(run)
        handlers.publish(first, messages)
        first.commit()
        first.close()
        thread.join(10)
        eventlet.sleep(0)
        with sessions() as session:
            tasks = sorted(stored_tasks(session), key=lambda t: t.step_index)
            assert [(t.step_index, t.status) for t in tasks] == [(0, "done"), (1, "done"), (2, "done"), (3, "open")]
            assert stored_run(session, justice.dossier_code).version == 7  # 3 assigned, 3 completed, the last stage assigned
    finally:
        engine.dispose()
