"""Deadlines and SLA: the overdue check flags each late step and dossier once, escalates to leaders,
and stays exactly-once with two workflow instances checking at once (PostgreSQL, SKIP LOCKED)."""
from __future__ import annotations

import threading
from collections import Counter
from datetime import datetime, timedelta
from functools import partial

import pytest
from nameko.containers import ServiceContainer
from nameko.testing.services import worker_factory
from sqlalchemy import select, text, update
from sqlalchemy.orm import sessionmaker

from motcua.db import make_engine, utcnow
from motcua.revocation import AccessCache
from services.workflow import handlers, queries
from services.workflow.dependencies import Clock as ClockProvider
from services.workflow.models import Base, outbox, runs as run_rows, tasks as task_rows
from services.workflow.repository import WorkflowUnitOfWork
from services.workflow.service import WorkflowService
from tests.infra import VERIFYING
from tests.workflow.support import (
    ADMIN,
    CATALOG_DIR,
    COMMUNE,
    LAND_DEPT,
    LAND_OFFICE,
    MONDAY,
    TZ,
    received,
    staff,
    stored_run,
    stored_tasks,
    token,
)

CONSUMER = "workflow.on_dossier_received"


def at(day: int, hour: int, minute: int = 0) -> datetime:
    """A local time in March 2026 (2 March is a Monday)."""
    return datetime(2026, 3, day, hour, minute, tzinfo=TZ)


def code(n: int) -> str:
    return f"000.20.01.H56-260302-{n:04d}"


WEDNESDAY_CLOSE = at(4, 17)


def start(uow, catalog, n: int, due_at: datetime = WEDNESDAY_CLOSE, now: datetime = MONDAY) -> None:
    """Dossier n received on Monday; its first step (6 working days) is capped at the dossier's due date."""
    uow.apply_once(received(code(n), due_at=due_at), CONSUMER,
                   partial(handlers.start_process, catalog=catalog, now=now))


def emitted(session, event_type: str) -> list[dict]:
    rows = session.execute(select(outbox.c.payload).where(outbox.c.event_type == event_type)
                           .order_by(outbox.c.id)).scalars()
    return [payload["data"] for payload in rows]


def test_a_late_step_and_its_dossier_are_flagged_and_announced_once(uow, catalog):
    start(uow, catalog, 1)
    [task] = stored_tasks(uow.session)
    assert task.due_at == at(4, 17)

    detected_at = at(5, 0, 1)
    assert handlers.detect_overdue(uow, catalog, detected_at) == (1, 1)

    [overdue] = emitted(uow.session, "task_overdue")
    assert overdue["task_id"] == task.id
    assert (overdue["agency_code"], overdue["step_index"], overdue["escalated_to_role"]) == (LAND_OFFICE, 0, "leader")
    assert datetime.fromisoformat(overdue["due_at"]) == at(4, 17)
    assert datetime.fromisoformat(overdue["detected_at"]) == detected_at
    [late] = emitted(uow.session, "dossier_overdue")
    assert (late["dossier_code"], late["agency_code"], late["current_agency_code"]) == (code(1), COMMUNE, LAND_OFFICE)
    assert datetime.fromisoformat(late["due_at"]) == at(4, 17)
    assert stored_tasks(uow.session, id=task.id)[0].overdue_at == detected_at
    assert stored_run(uow.session, code(1)).overdue_at == detected_at

    assert handlers.detect_overdue(uow, catalog, at(6, 9)) == (0, 0)  # the next checks announce nothing again
    assert len(emitted(uow.session, "task_overdue")) == len(emitted(uow.session, "dossier_overdue")) == 1


def test_a_completed_step_or_finished_dossier_is_never_flagged(uow, catalog):
    start(uow, catalog, 1, due_at=at(4, 17))
    [task] = stored_tasks(uow.session)
    handlers.complete_task(uow, catalog, task.id, "approve", None, staff(LAND_OFFICE), at(4, 10))
    # The next step opens Wednesday, capped at the same dossier due date: overdue on Thursday.
    assert handlers.detect_overdue(uow, catalog, at(6, 9)) == (1, 1)
    assert [t["agency_code"] for t in emitted(uow.session, "task_overdue")] == [LAND_DEPT]
    assert emitted(uow.session, "dossier_overdue")[0]["current_agency_code"] == LAND_DEPT

    start(uow, catalog, 2, due_at=at(20, 17))
    for officer in (staff(LAND_OFFICE), staff(LAND_DEPT, "leader"), staff(COMMUNE)):
        [current] = stored_tasks(uow.session, dossier_code=code(2), status="open")
        handlers.complete_task(uow, catalog, current.id, "approve", None, officer, at(10, 9))
    assert handlers.detect_overdue(uow, catalog, at(31, 9)) == (0, 0)  # dossier 2 finished before its due date
    assert {t["dossier_code"] for t in emitted(uow.session, "task_overdue")} == {code(1)}


def test_a_backlog_is_flagged_in_batches_in_one_check(uow, catalog):
    for n in range(1, 6):
        start(uow, catalog, n)
    assert handlers.detect_overdue(uow, catalog, at(9, 9), batch=2) == (5, 5)
    assert sorted(d["dossier_code"] for d in emitted(uow.session, "dossier_overdue")) == [code(n) for n in range(1, 6)]


def test_the_inbox_shows_overdue_first_and_escalated_to_leaders(uow, catalog):
    start(uow, catalog, 1, due_at=at(20, 17))
    start(uow, catalog, 2, due_at=at(4, 17))
    start(uow, catalog, 3, due_at=at(20, 17), now=at(3, 9))
    now = at(5, 9)
    leader = staff(LAND_OFFICE, "leader")
    assert [t.dossier_code for t in queries.list_tasks(uow.session, leader, "open", now, TZ, catalog.tree)] == [code(2), code(1), code(3)]
    assert [t.dossier_code for t in queries.list_tasks(uow.session, leader, "overdue", now, TZ, catalog.tree)] == [code(2)]
    assert queries.list_tasks(uow.session, staff(COMMUNE, "leader"), "overdue", now, TZ, catalog.tree) == []  # per agency
    # the land office's parent department oversees it: its leader sees the escalation too
    assert [t.dossier_code for t in queries.list_tasks(uow.session, staff(LAND_DEPT, "leader"), "overdue", now, TZ,
                                                      catalog.tree)] == [code(2)]
    assert queries.list_tasks(uow.session, leader, "overdue", at(4, 23), TZ, catalog.tree) == []  # due today: not yet


class Clock:
    def __init__(self, now: datetime):
        self.now = now

    def __call__(self) -> datetime:
        return self.now


def test_the_timer_entrypoint_flags_and_the_inbox_escalates(uow, catalog):
    clock = Clock(MONDAY)
    service = worker_factory(WorkflowService, revocations=AccessCache(5),
                             db=uow, catalog=catalog, clock=clock, config=dict(VERIFYING))
    service.on_dossier_received(received(code(1), due_at=at(4, 17)))
    service.on_dossier_received(received(code(2), due_at=at(20, 17)))

    clock.now = at(5, 9)
    service.check_deadlines()
    assert [t["dossier_code"] for t in emitted(uow.session, "task_overdue")] == [code(1)]

    leader = token(staff(LAND_OFFICE, "leader"))
    [overdue] = service.list_tasks(leader, status="overdue")
    assert (overdue["dossier_code"], overdue["overdue"], overdue["escalated_to"]) == (code(1), True, "leader")
    inbox = service.list_tasks(leader)
    assert [(t["dossier_code"], t["overdue"], t["escalated_to"]) for t in inbox] == [
        (code(1), True, "leader"), (code(2), False, None)]
    assert service.get_task(overdue["id"], leader)["overdue"] is True
    assert service.list_tasks(token(ADMIN), status="overdue") == [overdue]

    done = service.complete_task(overdue["id"], "approve", None, token(staff(LAND_OFFICE)))
    assert (done["overdue"], done["escalated_to"], done["timeliness"]) == (False, None, "late")


def test_the_clock_runs_ahead_by_the_configured_offset_except_in_production(db_url, monkeypatch):
    config = {"AMQP_URI": "memory://", "DB_URLS": {"workflow": db_url}, "CATALOG_DIR": str(CATALOG_DIR),
              "TIME_ZONE": "Asia/Ho_Chi_Minh", **VERIFYING, "CLOCK_OFFSET_SECONDS": 30 * 86400}
    container = ServiceContainer(WorkflowService, config)
    [provider] = [d for d in container.dependencies if isinstance(d, ClockProvider)]
    provider.setup()
    before = utcnow()
    now = provider.now()
    assert before + timedelta(days=30) <= now <= utcnow() + timedelta(days=30)

    container = ServiceContainer(WorkflowService, {**config, "CLOCK_OFFSET_SECONDS": 0})
    [provider] = [d for d in container.dependencies if isinstance(d, ClockProvider)]
    provider.setup()
    assert before <= provider.now() <= utcnow()

    monkeypatch.setenv("MOTCUA_ENV", "production")
    container = ServiceContainer(WorkflowService, config)
    [provider] = [d for d in container.dependencies if isinstance(d, ClockProvider)]
    with pytest.raises(SystemExit, match="CLOCK_OFFSET_SECONDS"):
        provider.setup()


DOSSIERS = 40


def test_two_instances_checking_at_once_announce_each_breach_once(pg_urls, catalog):
    engine = make_engine(pg_urls["workflow"])
    sessions = sessionmaker(bind=engine, expire_on_commit=False)

    def unit() -> WorkflowUnitOfWork:
        return WorkflowUnitOfWork(sessions(), "workflow", Base.metadata)

    seed = unit()
    for n in range(DOSSIERS):
        start(seed, catalog, n)
    seed.close()
    try:
        # A run another instance holds (the lock of the run and its tasks) is skipped, not waited for
        # nor announced twice.
        holder = unit()
        assert holder.runs.get(code(0)) is not None
        other = unit()
        other.session.execute(text("SET lock_timeout = '5s'"))  # waiting on the held row would fail, not hang
        assert handlers.detect_overdue(other, catalog, at(9, 9)) == (DOSSIERS - 1, DOSSIERS - 1)
        holder.close()  # releases the row
        assert handlers.detect_overdue(other, catalog, at(9, 9)) == (1, 1)
        other.close()

        # Reset the flags and the announcements, then two instances race over the whole backlog.
        with sessions() as session, session.begin():
            session.execute(update(task_rows).values(overdue_at=None))
            session.execute(update(run_rows).values(overdue_at=None))
            session.execute(outbox.delete())
        results: list[tuple[int, int]] = []
        barrier = threading.Barrier(2)

        def check():
            detector = unit()
            barrier.wait()
            try:
                results.append(handlers.detect_overdue(detector, catalog, at(9, 9), batch=3))
            finally:
                detector.close()

        threads = [threading.Thread(target=check) for _ in range(2)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()

        assert sum(tasks for tasks, _ in results) == sum(dossiers for _, dossiers in results) == DOSSIERS
        with sessions() as session:
            assert Counter(t["task_id"] for t in emitted(session, "task_overdue")).most_common(1)[0][1] == 1
            assert len(emitted(session, "task_overdue")) == DOSSIERS
            assert sorted(d["dossier_code"] for d in emitted(session, "dossier_overdue")) == sorted(
                code(n) for n in range(DOSSIERS))
    finally:
        engine.dispose()
