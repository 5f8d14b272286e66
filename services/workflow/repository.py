"""Workflow's unit of work: its process runs through a repository over the transaction's session."""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import bindparam, select, union
from sqlalchemy.orm import Session, selectinload

from motcua.db import UnitOfWork
from services.workflow.models import ProcessRun, Task
from services.workflow.process_run import OPEN, RUNNING

# Built once (statement construction costs more than its cached compilation).
_LOCKED = select(ProcessRun).with_for_update().execution_options(populate_existing=True)
_BY_CODE = _LOCKED.where(ProcessRun.dossier_code == bindparam("code"))
_BY_TASK = _LOCKED.where(ProcessRun.dossier_code == select(Task.dossier_code).where(
    Task.id == bindparam("task_id")).scalar_subquery())


class RunRepository:
    """Process runs, each read with its row locked (FOR UPDATE on PostgreSQL) until the transaction
    ends: every change to a run or its tasks holds that lock, so two officers, an SLA check and an
    intake event never act on the same dossier at once. Loads refresh what the session holds already
    (several events may be applied one after another in one transaction)."""

    def __init__(self, session: Session):
        self.session = session

    def get(self, dossier_code: str) -> ProcessRun | None:
        return self.session.scalars(_BY_CODE, {"code": dossier_code}).one_or_none()

    def with_task(self, task_id: str) -> ProcessRun | None:
        """The run a task belongs to."""
        return self.session.scalars(_BY_TASK, {"task_id": str(task_id)}).one_or_none()

    def add(self, run: ProcessRun) -> None:
        self.session.add(run)

    def overdue(self, cutoff: datetime, limit: int) -> list[ProcessRun]:
        """Runs with a step or a due date past `cutoff` not flagged yet (up to `limit` of each kind), with
        their tasks; runs another transaction holds are skipped (FOR UPDATE SKIP LOCKED), so several
        workflow instances checking at once never flag the same breach twice."""
        late_tasks = (select(Task.dossier_code)
                      .where(Task.status == OPEN, Task.overdue_at.is_(None), Task.paused_at.is_(None),
                             Task.due_at < cutoff)
                      .order_by(Task.due_at).limit(limit).subquery())
        late_runs = (select(ProcessRun.dossier_code)
                     .where(ProcessRun.status == RUNNING, ProcessRun.overdue_at.is_(None),
                            ProcessRun.dossier_due_at < cutoff)
                     .order_by(ProcessRun.dossier_due_at).limit(limit).subquery())
        candidates = union(select(late_tasks.c.dossier_code), select(late_runs.c.dossier_code))
        query = (_LOCKED.with_for_update(skip_locked=True).where(ProcessRun.dossier_code.in_(candidates))
                 .order_by(ProcessRun.dossier_due_at).options(selectinload(ProcessRun.tasks)))
        return list(self.session.scalars(query))


class WorkflowUnitOfWork(UnitOfWork):
    """The kit's unit of work with workflow's repository of process runs."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.runs = RunRepository(self.session)
