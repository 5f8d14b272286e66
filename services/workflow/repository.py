"""Workflow's unit of work: its process runs through a repository over the transaction's connection.

SQLAlchemy Core, no ORM: a command reads its run (locked) and the run's tasks in two statements, and
writes what changed in one (on PostgreSQL the run's row and its tasks' rows together, the run's as a
data-modifying CTE); the ORM's identity map, attribute instrumentation and flush cost more than that
whole command's SQL. Statements are built once per shape (building costs more than their cached
compilation).
"""
from __future__ import annotations

from datetime import datetime
from functools import cache, cached_property

from sqlalchemy import Connection, bindparam, select, union, update
from sqlalchemy.orm import Session

from motcua import decisions
from motcua.calendar import Decision
from motcua.idempotency import CommandUnitOfWork
from motcua.sql import one_statement, upsert_insert
from services.workflow.models import calendar_decisions, runs, tasks
from services.workflow.process_run import OPEN, RUNNING, ProcessRun, Task

RUN_COLUMNS = tuple(c.name for c in runs.columns)
TASK_COLUMNS = tuple(c.name for c in tasks.columns)
# What an existing task's row may change (a task never moves to another dossier).
_TASK_CHANGES = tuple(name for name in TASK_COLUMNS if name not in ("id", "dossier_code"))

_LOCKED = select(runs).with_for_update()
_BY_CODE = _LOCKED.where(runs.c.dossier_code == bindparam("code"))
_BY_TASK = _LOCKED.where(runs.c.dossier_code == select(tasks.c.dossier_code).where(
    tasks.c.id == bindparam("task_id")).scalar_subquery())
_EXISTS = select(runs.c.dossier_code).where(runs.c.dossier_code == bindparam("code"))
_TASK_ORDER = (tasks.c.assigned_at, tasks.c.step_index)
_TASKS_OF_RUN = select(tasks).where(tasks.c.dossier_code == bindparam("code")).order_by(*_TASK_ORDER)
_TASKS_OF_RUNS = (select(tasks).where(tasks.c.dossier_code.in_(bindparam("codes", expanding=True)))
                  .order_by(*_TASK_ORDER))
_FOLDED_TASKS = 8  # a run's writes are one statement up to this many tasks (a command changes one or two)


def task_of(row) -> Task:
    """A task from its row (`tasks`' columns are `Task`'s fields)."""
    return Task(**row._mapping)


class RunRepository:
    """Process runs, each read with its row locked (FOR UPDATE on PostgreSQL) until the transaction
    ends: every change to a run or its tasks holds that lock, so two officers, an SLA check and an
    intake event never act on the same dossier at once. The tasks are read in a second statement, once
    the run's row is locked, so they are read as committed by whoever held the lock before (a join read
    in the locking statement would see them as of before the wait, e.g. a parallel branch just closed
    still open). Every load reads afresh (several events may be applied one after another in one
    transaction); `save` writes what changed since."""

    def __init__(self, session: Session):
        self.session = session
        # code -> the run's row and its tasks' rows (by id) as last read or written
        self._stored: dict[str, tuple[dict, dict[str, tuple]]] = {}

    def get(self, dossier_code: str) -> ProcessRun | None:
        return self._load(_BY_CODE, {"code": dossier_code})

    def with_task(self, task_id: str) -> ProcessRun | None:
        """The run a task belongs to."""
        return self._load(_BY_TASK, {"task_id": str(task_id)})

    def exists(self, dossier_code: str) -> bool:
        return self._connection().execute(_EXISTS, {"code": dossier_code}).first() is not None

    def overdue(self, cutoff: datetime, limit: int) -> list[ProcessRun]:
        """Runs with a step or a due date past `cutoff` not flagged yet (up to `limit` of each kind), with
        their tasks; runs another transaction holds are skipped (FOR UPDATE SKIP LOCKED), so several
        workflow instances checking at once never flag the same breach twice."""
        late_tasks = (select(tasks.c.dossier_code)
                      .where(tasks.c.status == OPEN, tasks.c.overdue_at.is_(None), tasks.c.paused_at.is_(None),
                             tasks.c.due_at < cutoff)
                      .order_by(tasks.c.due_at).limit(limit).subquery())
        late_runs = (select(runs.c.dossier_code)
                     .where(runs.c.status == RUNNING, runs.c.overdue_at.is_(None), runs.c.dossier_due_at < cutoff)
                     .order_by(runs.c.dossier_due_at).limit(limit).subquery())
        candidates = union(select(late_tasks.c.dossier_code), select(late_runs.c.dossier_code))
        query = (select(runs).with_for_update(skip_locked=True).where(runs.c.dossier_code.in_(candidates))
                 .order_by(runs.c.dossier_due_at))
        return self._runs(self._connection().execute(query).all())

    def with_open_steps_spanning(self, start: datetime, end: datetime) -> list[ProcessRun]:
        """Runs with an open step assigned before `end` and due from `start` on (its span holds that
        time: a calendar decision about it moves the step), locked, with their tasks."""
        spanning = select(tasks.c.dossier_code).where(tasks.c.status == OPEN, tasks.c.assigned_at < end,
                                                      tasks.c.due_at >= start)
        query = _LOCKED.where(runs.c.dossier_code.in_(spanning)).order_by(runs.c.dossier_code)
        return self._runs(self._connection().execute(query).all())

    def add(self, run: ProcessRun) -> None:
        """Store a new run and its tasks."""
        self._stored[run.dossier_code] = ({}, {})
        self.save(run)

    def save(self, *saved: ProcessRun) -> None:
        """Write what changed in the runs and their tasks since they were read (or added): each run's row
        (the columns that changed), the new and changed tasks' rows (inserted, or updated where stored).
        On PostgreSQL a single run's writes are one statement; several runs' (the SLA check's) are one
        statement per set of changed columns and one for all their tasks."""
        run_writes: dict[tuple[bool, tuple[str, ...]], list[dict]] = {}
        task_rows: list[dict] = []
        for run in saved:
            stored_run, stored_tasks = self._stored[run.dossier_code]
            row = {name: getattr(run, name) for name in RUN_COLUMNS}
            new = not stored_run
            changed = tuple(name for name in RUN_COLUMNS if new or row[name] != stored_run[name])
            if changed:
                params = {f"run_{name}": row[name] for name in changed}
                key = {} if new else {"run_key": run.dossier_code}
                run_writes.setdefault((new, changed), []).append({**params, **key})
            for task in run.tasks:
                values = tuple(getattr(task, name) for name in TASK_COLUMNS)
                if stored_tasks.get(task.id) != values:
                    task_rows.append(dict(zip(TASK_COLUMNS, values)))
                    stored_tasks[task.id] = values
            self._stored[run.dossier_code] = (row, stored_tasks)
        if not run_writes and not task_rows:
            return
        connection = self._connection()
        dialect = connection.dialect.name
        if dialect == "postgresql" and len(saved) == 1 and len(task_rows) <= _FOLDED_TASKS:
            [(run_write, [run_params])] = run_writes.items() or [(None, [{}])]
            task_params = {f"{name}_{i}": value for i, row in enumerate(task_rows) for name, value in row.items()}
            connection.execute(_folded(run_write, len(task_rows)), {**run_params, **task_params})
            return
        for (new, changed), params in run_writes.items():
            connection.execute(_run_write(dialect, new, changed), params)
        if task_rows:
            connection.execute(_task_upsert(dialect, ""), task_rows)

    # -- underneath ------------------------------------------------------------------------------------

    def _connection(self) -> Connection:
        return self.session.connection()

    def _load(self, query, params: dict) -> ProcessRun | None:
        connection = self._connection()
        row = connection.execute(query, params).first()
        if row is None:
            return None
        return self._runs([row])[0]

    def _runs(self, rows) -> list[ProcessRun]:
        found = {row.dossier_code: ProcessRun(**row._mapping) for row in rows}
        if found:
            [code, *more] = found
            query, params = (_TASKS_OF_RUNS, {"codes": list(found)}) if more else (_TASKS_OF_RUN, {"code": code})
            for task_row in self._connection().execute(query, params):
                found[task_row.dossier_code].tasks.append(task_of(task_row))
        for run in found.values():
            self._stored[run.dossier_code] = (
                {name: getattr(run, name) for name in RUN_COLUMNS},
                {task.id: tuple(getattr(task, name) for name in TASK_COLUMNS) for task in run.tasks})
        return list(found.values())


@cache
def _run_write(dialect: str, new: bool, columns: tuple[str, ...]):
    """A run's row: inserted, or its changed `columns` updated (parameters `run_<column>`, `run_key`)."""
    values = {name: bindparam(f"run_{name}", type_=runs.c[name].type) for name in columns}
    if new:
        return upsert_insert(runs, dialect).values(values)
    key = bindparam("run_key", type_=runs.c.dossier_code.type)
    return update(runs).where(runs.c.dossier_code == key).values(values)


@cache
def _task_upsert(dialect: str, suffix: str):
    """A task's row (parameters `<column><suffix>`), inserted or, for a task stored already, updated.
    One row per statement: SQLAlchemy does not cache the compilation of a multi-row VALUES."""
    statement = upsert_insert(tasks, dialect).values(
        {name: bindparam(f"{name}{suffix}", type_=tasks.c[name].type) for name in TASK_COLUMNS})
    return statement.on_conflict_do_update(index_elements=[tasks.c.id],
                                           set_={name: statement.excluded[name] for name in _TASK_CHANGES})


@cache
def _folded(run_write: tuple[bool, tuple[str, ...]] | None, task_count: int):
    """One run's writes as one PostgreSQL statement: its row's, then each task's (parameters `<column>_<i>`)."""
    writes = [_task_upsert("postgresql", f"_{i}") for i in range(task_count)]
    return one_statement(writes if run_write is None else [_run_write("postgresql", *run_write), *writes])


class CalendarDecisionRepository:
    """The official calendar's decisions recorded through the API (intake's `calendar_decided`)."""

    def __init__(self, session: Session):
        self.session = session

    def recorded(self) -> list[tuple[Decision, bool]]:
        return decisions.recorded(self.session, calendar_decisions)

    def record(self, decision: Decision, decided_year: bool, decided_by: str, decided_at: datetime) -> None:
        decisions.record(self.session, calendar_decisions, decision, decided_year, decided_by, decided_at)


class WorkflowUnitOfWork(CommandUnitOfWork):
    """The kit's unit of work (with its command results) and workflow's repositories: process runs, the
    calendar's recorded decisions."""

    @cached_property
    def runs(self) -> RunRepository:  # made with the session, when first needed
        return RunRepository(self.session)

    @cached_property
    def calendar(self) -> CalendarDecisionRepository:
        return CalendarDecisionRepository(self.session)
