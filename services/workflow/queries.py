"""Workflow's read paths: agencies' inboxes, a task with its dossier's hand-overs, the metrics' counts.
Each one statement, no lock, no write."""
from __future__ import annotations

from datetime import datetime, tzinfo
from functools import cache

from sqlalchemy import and_, bindparam, case, func, select
from sqlalchemy.orm import Session

from motcua.access import AgencyTree, may_read, scope_of
from motcua.calendar import overdue_before
from motcua.contracts.rpc import OVERDUE
from motcua.errors import Forbidden, NotFound
from motcua.identity import STAFF_ROLES, Caller
from motcua.sql import read_rows
from services.workflow.models import runs, tasks
from services.workflow.process_run import CANCELLED, DONE, OPEN, Task, require_staff
from services.workflow.repository import task_of

# Built once (statement construction costs more than its cached compilation).
_IN_ORDER = (tasks.c.assigned_at, tasks.c.step_index)
_HISTORY = select(tasks).where(tasks.c.dossier_code == bindparam("code")).order_by(*_IN_ORDER)
_RECEIVING = select(runs.c.receiving_agency_code).where(runs.c.dossier_code == bindparam("code"))
_HISTORY_OF_TASK = select(tasks).where(tasks.c.dossier_code == select(tasks.c.dossier_code).where(
    tasks.c.id == bindparam("task_id")).scalar_subquery().correlate(None)).order_by(*_IN_ORDER)


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
    params = {"cutoff": overdue_before(now, tz), "status": status, "agencies": sorted(scope or ()), "role": role,
              "assignee": caller.username if assignee == "me" else assignee}
    by_status = status if status in (OVERDUE, "all") else "one"
    by_assignee = None if assignee is None else "none" if assignee == "none" else "one"
    query = _inbox(by_status, scope is not None, role is not None, by_assignee)
    return [task_of(row) for row in read_rows(session, query, params)]


@cache
def _inbox(by_status: str, scoped: bool, by_role: bool, by_assignee: str | None):
    """The statement of one shape of `list_tasks`' filters."""
    overdue = and_(tasks.c.status == OPEN, tasks.c.paused_at.is_(None),
                   tasks.c.due_at < bindparam("cutoff", type_=tasks.c.due_at.type))
    query = select(tasks).order_by(case((overdue, 0), else_=1), tasks.c.due_at, tasks.c.id)
    if by_status == OVERDUE:
        query = query.where(overdue)
    elif by_status == "one":
        query = query.where(tasks.c.status == bindparam("status"))
    if scoped:
        query = query.where(tasks.c.agency_code.in_(bindparam("agencies", expanding=True)))
    if by_role:
        query = query.where(tasks.c.role == bindparam("role"))
    if by_assignee == "none":
        query = query.where(tasks.c.assignee.is_(None))
    elif by_assignee == "one":
        query = query.where(tasks.c.assignee == bindparam("assignee"))
    return query


def task_with_history(session: Session, task_id: str, caller: Caller, tree: AgencyTree) -> tuple[Task, list[Task]]:
    """A task the caller may read (own agency; a leader's sub-agencies too) and its dossier's hand-overs,
    read together."""
    require_staff(caller)
    history = [task_of(row) for row in read_rows(session, _HISTORY_OF_TASK, {"task_id": str(task_id)})]
    task = next((t for t in history if t.id == str(task_id)), None)
    if task is None:
        raise NotFound(f"no task {task_id}")
    if not task.readable_by(caller, tree):
        raise Forbidden("not allowed for another agency's records")
    return task, history


def dossier_history(session: Session, dossier_code: str, caller: Caller, tree: AgencyTree) -> list[Task]:
    """Every hand-over of a dossier in order (the process control sheet, phiếu kiểm soát quá trình), for
    staff of an agency involved in it, as intake decides for the dossier itself: the receiving agency
    and every agency a step went to (a leader's sub-tree; every one for a platform admin). A dossier
    with no process yet has no hand-overs to show anyone."""
    caller.require(*STAFF_ROLES)
    run = read_rows(session, _RECEIVING, {"code": dossier_code})
    if not run:
        return []
    history = [task_of(row) for row in read_rows(session, _HISTORY, {"code": dossier_code})]
    if not may_read(caller, {run[0].receiving_agency_code, *(task.agency_code for task in history)}, tree):
        raise Forbidden("not allowed for another agency's records")
    return history


def open_tasks_by_agency(session: Session, overdue_cutoff: datetime | None = None) -> dict[tuple, float]:
    """Open tasks per agency; with `overdue_cutoff` (from `overdue_before`), only the overdue ones."""
    query = select(tasks.c.agency_code, func.count()).where(tasks.c.status == OPEN).group_by(tasks.c.agency_code)
    if overdue_cutoff is not None:
        query = query.where(tasks.c.paused_at.is_(None), tasks.c.due_at < overdue_cutoff)
    return {(agency,): count for agency, count in session.execute(query)}


def oldest_open_task_by_agency(session: Session, now: datetime) -> dict[tuple, float]:
    """Seconds since the oldest open task of each agency was assigned: a queue that grows old is
    an agency falling behind, which the queue's depth alone does not tell."""
    query = (select(tasks.c.agency_code, func.min(tasks.c.assigned_at))
             .where(tasks.c.status == OPEN).group_by(tasks.c.agency_code))
    return {(agency,): max(0.0, (now - assigned).total_seconds())
            for agency, assigned in session.execute(query)}


def tasks_by_status(session: Session) -> dict[tuple, float]:
    counts = dict(session.execute(select(tasks.c.status, func.count()).group_by(tasks.c.status)).all())
    return {(status,): counts.get(status, 0) for status in (OPEN, DONE, CANCELLED)}
