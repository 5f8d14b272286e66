"""Workflow's read paths: agencies' inboxes, a task with its dossier's hand-overs, the metrics' counts.
Each one statement, no lock, no write."""
from __future__ import annotations

from datetime import datetime, tzinfo

from sqlalchemy import and_, bindparam, case, func, select
from sqlalchemy.orm import Session

from motcua.access import AgencyTree, scope_of
from motcua.calendar import overdue_before
from motcua.contracts.rpc import OVERDUE
from motcua.errors import Forbidden, NotFound
from motcua.identity import STAFF_ROLES, Caller
from services.workflow.models import Task
from services.workflow.process_run import CANCELLED, DONE, OPEN, require_staff

# Built once (statement construction costs more than its cached compilation).
_HISTORY = select(Task).where(Task.dossier_code == bindparam("code")).order_by(Task.assigned_at, Task.step_index)
_HISTORY_OF_TASK = select(Task).where(Task.dossier_code == select(Task.dossier_code).where(
    Task.id == bindparam("task_id")).scalar_subquery().correlate(None)).order_by(Task.assigned_at, Task.step_index)


def list_tasks(session: Session, caller: Caller, status: str, now: datetime, tz: tzinfo,
               tree: AgencyTree, role: str | None = None, assignee: str | None = None) -> list[Task]:
    """The caller's agency's tasks, overdue first, then by due date; a leader's or agency admin's also
    those of the sub-agencies in `tree` (all agencies for a platform admin).

    `status` is one of TASK_STATUS_FILTERS; "overdue" lists the open tasks past their due date, which are
    escalated to the agency's leaders. `role` keeps one role's steps; `assignee` one officer's tasks
    ("me": the caller's, "none": the agency's unassigned pool).
    """
    caller.require(*STAFF_ROLES)
    scope = scope_of(caller, tree)
    overdue = and_(Task.status == OPEN, Task.paused_at.is_(None), Task.due_at < overdue_before(now, tz))
    query = select(Task).order_by(case((overdue, 0), else_=1), Task.due_at, Task.id)
    if status == OVERDUE:
        query = query.where(overdue)
    elif status != "all":
        query = query.where(Task.status == status)
    if scope is not None:
        query = query.where(Task.agency_code.in_(sorted(scope)))
    if role is not None:
        query = query.where(Task.role == role)
    if assignee == "none":
        query = query.where(Task.assignee.is_(None))
    elif assignee is not None:
        query = query.where(Task.assignee == (caller.username if assignee == "me" else assignee))
    return list(session.scalars(query))


def task_with_history(session: Session, task_id: str, caller: Caller, tree: AgencyTree) -> tuple[Task, list[Task]]:
    """A task the caller may read (own agency; a leader's sub-agencies too) and its dossier's hand-overs,
    read together."""
    require_staff(caller)
    history = list(session.scalars(_HISTORY_OF_TASK, {"task_id": str(task_id)}))
    task = next((t for t in history if t.id == str(task_id)), None)
    if task is None:
        raise NotFound(f"no task {task_id}")
    if not task.readable_by(caller, tree):
        raise Forbidden("not allowed for another agency's records")
    return task, history


def dossier_history(session: Session, dossier_code: str) -> list[Task]:
    """Every hand-over of a dossier in order (the process control sheet, phiếu kiểm soát quá trình)."""
    return list(session.scalars(_HISTORY, {"code": dossier_code}))


def open_tasks_by_agency(session: Session, overdue_cutoff: datetime | None = None) -> dict[tuple, float]:
    """Open tasks per agency; with `overdue_cutoff` (from `overdue_before`), only the overdue ones."""
    query = select(Task.agency_code, func.count()).where(Task.status == OPEN).group_by(Task.agency_code)
    if overdue_cutoff is not None:
        query = query.where(Task.paused_at.is_(None), Task.due_at < overdue_cutoff)
    return {(agency,): count for agency, count in session.execute(query)}


def tasks_by_status(session: Session) -> dict[tuple, float]:
    counts = dict(session.execute(select(Task.status, func.count()).group_by(Task.status)).all())
    return {(status,): counts.get(status, 0) for status in (OPEN, DONE, CANCELLED)}
