"""Workflow rules: start a dossier's process, assign steps, complete tasks, judge each step's timeliness.

Plain functions: they take a UnitOfWork (or a Session), the catalogue, the caller and `now` (aware UTC),
so tests control time and need no broker.
"""
from __future__ import annotations

import logging
import uuid
from datetime import datetime, tzinfo

from sqlalchemy import and_, case, func, select
from sqlalchemy.orm import Session

from motcua.calendar import WorkingCalendar, overdue_before, timeliness
from motcua.contracts import Event
from motcua.db import UnitOfWork
from motcua.errors import IllegalTransition, NotFound
from motcua.identity import STAFF_ROLES, Caller
from motcua.worker import TASKS_EXCHANGE
from services.workflow.models import (
    CANCELLED,
    DONE,
    FINISHED,
    OPEN,
    PAUSED,
    RUNNING,
    STOPPED,
    DossierProcess,
    Task,
)
from services.workflow.processes import Catalog, Process

log = logging.getLogger(__name__)

OVERDUE = "overdue"  # a filter of the inbox: open tasks past their due date
STATUS_FILTERS = (OPEN, OVERDUE, DONE, "all")
ESCALATION_ROLE = "leader"  # an overdue step is escalated to its agency's leaders (lãnh đạo)
SLA_BATCH = 500  # rows flagged per transaction by detect_overdue


def start_process(uow: UnitOfWork, event: Event, catalog: Catalog, now: datetime) -> None:
    """On `dossier_received`: open the first step's task, unless this dossier's process already exists."""
    data = event.data
    if uow.session.get(DossierProcess, data["code"]) is not None:
        log.info("process of dossier %s already started; event %s ignored", data["code"], event.event_id)
        return
    # Unknown procedure: raise, so the message is parked in the dead-letter queue until processes.yaml
    # is fixed and the message replayed, rather than the dossier silently going nowhere.
    process = catalog.process(data["procedure_code"])
    run = DossierProcess(dossier_code=data["code"], procedure_code=process.procedure_code,
                         receiving_agency_code=data["agency_code"], dossier_due_at=data["due_at"],
                         status=RUNNING, started_at=now, form=data.get("form") or {})
    uow.session.add(run)
    _assign(uow, run, process, 0, catalog, now)


def _assign(uow: UnitOfWork, run: DossierProcess, process: Process, index: int, catalog: Catalog,
            now: datetime) -> Task:
    step = process.steps[index]
    # A step never runs past the dossier's own due date (the appointment given to the citizen).
    due = min(catalog.calendar.due_at(now, step.allowance), run.dossier_due_at)
    task = Task(id=str(uuid.uuid4()), dossier_code=run.dossier_code, procedure_code=run.procedure_code,
                step_index=index, step=step.name, agency_code=step.agency_code, role=step.role,
                status=OPEN, assigned_at=now, due_at=due,
                # Assigned while the dossier waits for a supplement: this step's clock is stopped too.
                paused_at=max(now, run.paused_at) if run.status == PAUSED else None)
    uow.session.add(task)
    data = {**_task_facts(task), "assigned_at": now, "due_at": due, "role": task.role}
    event_id = uow.emit("task_assigned", data)
    if step.handled_by == "system":
        data = {**data, "form": run.form}  # the agency's system needs the declaration; officers read the dossier
    # The same event, with the same id, on the agency's own task queue (liên thông to its workers).
    uow.emit("task_assigned", data, exchange=TASKS_EXCHANGE.name, routing_key=f"task.{task.agency_code}",
             event_id=event_id)
    return task


def _task_facts(task: Task) -> dict:
    return {"task_id": task.id, "dossier_code": task.dossier_code, "procedure_code": task.procedure_code,
            "agency_code": task.agency_code, "step": task.step, "step_index": task.step_index}


def _require_staff(caller: Caller, agency_code: str | None = None, allow_system: bool = False) -> None:
    caller.require(*STAFF_ROLES, agency_code=agency_code, allow_system=allow_system)


def _task_of(session: Session, task_id: str, caller: Caller, for_update: bool = False) -> Task:
    # An agency's own system (motcua.worker) may take its own agency's tasks.
    _require_staff(caller, allow_system=True)
    query = select(Task).where(Task.id == str(task_id))
    task = session.scalars(query.with_for_update() if for_update else query).first()
    if task is None:
        raise NotFound(f"no task {task_id}")
    _require_staff(caller, task.agency_code, allow_system=True)
    return task


def complete_task(uow: UnitOfWork, catalog: Catalog, task_id: str, outcome: str, note: str | None,
                  caller: Caller, now: datetime) -> Task:
    """Complete a step (hoàn thành bước), then assign the next one or, after the last, mark the result ready.

    One transaction: the task, the next task or the finished process, and their events commit together.
    """
    # Locked, so two officers completing the same task at once cannot both advance the process.
    task = _task_of(uow.session, task_id, caller, for_update=True)
    # Only the role the step is meant for (a receptionist cannot sign a leader's step); admins pass.
    caller.require(task.role, agency_code=task.agency_code, allow_system=True)
    if task.status != OPEN:
        raise IllegalTransition(f"task is {task.status}; only an open task can be completed",
                                field="status", details={"status": task.status, "allowed": [OPEN]})
    task.status = DONE
    task.outcome = outcome
    task.note = note or ""
    task.completed_by = caller.username
    task.completed_at = now
    task.timeliness = timeliness(now, task.due_at, catalog.calendar.tz)
    uow.emit("task_completed", {**_task_facts(task), "completed_at": now, "completed_by": caller.username,
                                "outcome": outcome, "note": task.note, "timeliness": task.timeliness})
    run = uow.session.get(DossierProcess, task.dossier_code)
    process = catalog.process(run.procedure_code)
    if task.step_index + 1 < len(process.steps):
        _assign(uow, run, process, task.step_index + 1, catalog, now)
    else:
        run.status = FINISHED
        run.finished_at = now
        uow.emit("result_ready", {"dossier_code": run.dossier_code, "agency_code": task.agency_code,
                                  "finished_at": now})
    uow.commit()
    return task


def is_overdue(task: Task, cutoff: datetime) -> bool:
    """`cutoff` from `overdue_before`. A step of a paused dossier is never overdue."""
    return task.status == OPEN and task.paused_at is None and task.due_at < cutoff


def list_tasks(session: Session, caller: Caller, status: str, now: datetime, tz: tzinfo) -> list[Task]:
    """The caller's agency's tasks (all agencies for an admin), overdue first, then by due date.

    `status` is one of STATUS_FILTERS; "overdue" lists the open tasks past their due date, which are
    escalated to the agency's leaders.
    """
    _require_staff(caller)
    overdue = and_(Task.status == OPEN, Task.paused_at.is_(None), Task.due_at < overdue_before(now, tz))
    query = select(Task).order_by(case((overdue, 0), else_=1), Task.due_at, Task.id)
    if status == OVERDUE:
        query = query.where(overdue)
    elif status != "all":
        query = query.where(Task.status == status)
    if not caller.is_admin:
        query = query.where(Task.agency_code == caller.agency_code)
    return list(session.scalars(query))


def detect_overdue(uow: UnitOfWork, now: datetime, tz: tzinfo, batch: int = SLA_BATCH) -> tuple[int, int]:
    """The SLA check: flag open tasks and running dossiers past their due date, each exactly once
    (paused dossiers and their steps are skipped: the clock stops while the applicant supplements).

    Each flagged task emits `task_overdue` (escalated to the agency's leaders), each flagged dossier
    `dossier_overdue` (for the receiving agency, which owes the apology, form 04). Rows are claimed
    with FOR UPDATE SKIP LOCKED (PostgreSQL), so several workflow instances checking at once never
    flag, hence never emit, the same breach twice. Flags and events commit together, `batch` rows of
    each kind per transaction, until none is left. Returns (tasks flagged, dossiers flagged).
    """
    cutoff = overdue_before(now, tz)
    flagged_tasks = flagged_dossiers = 0
    while True:
        tasks = uow.session.scalars(
            select(Task).where(Task.status == OPEN, Task.overdue_at.is_(None), Task.paused_at.is_(None),
                               Task.due_at < cutoff)
            .order_by(Task.due_at).limit(batch).with_for_update(skip_locked=True)).all()
        for task in tasks:
            task.overdue_at = now
            uow.emit("task_overdue", {**_task_facts(task), "due_at": task.due_at, "detected_at": now,
                                      "escalated_to_role": ESCALATION_ROLE})
        runs = uow.session.scalars(
            select(DossierProcess).where(DossierProcess.status == RUNNING, DossierProcess.overdue_at.is_(None),
                                         DossierProcess.dossier_due_at < cutoff)
            .order_by(DossierProcess.dossier_due_at).limit(batch).with_for_update(skip_locked=True)).all()
        holders = _current_agencies(uow.session, [run.dossier_code for run in runs])
        for run in runs:
            run.overdue_at = now
            uow.emit("dossier_overdue", {"dossier_code": run.dossier_code, "agency_code": run.receiving_agency_code,
                                         "current_agency_code": holders.get(run.dossier_code),
                                         "due_at": run.dossier_due_at, "detected_at": now})
        uow.commit()
        flagged_tasks += len(tasks)
        flagged_dossiers += len(runs)
        if len(tasks) < batch and len(runs) < batch:
            break
    if flagged_tasks or flagged_dossiers:
        log.info("SLA check: %d tasks and %d dossiers newly overdue", flagged_tasks, flagged_dossiers)
    return flagged_tasks, flagged_dossiers


def _current_agencies(session: Session, dossier_codes: list[str]) -> dict[str, str]:
    """The agency holding each dossier now: that of its open step (the earliest, if several)."""
    if not dossier_codes:
        return {}
    rows = session.execute(select(Task.dossier_code, Task.agency_code)
                           .where(Task.dossier_code.in_(dossier_codes), Task.status == OPEN)
                           .order_by(Task.step_index.desc(), Task.assigned_at.desc())).all()
    return dict(rows)  # later rows win: the earliest open step of each dossier


def _process_of(uow: UnitOfWork, event: Event) -> DossierProcess | None:
    """The dossier's process, locked; None (the event is ignored) for a dossier never routed here."""
    run = uow.session.get(DossierProcess, event.data["code"], with_for_update=True)
    if run is None:
        log.info("no process of dossier %s; event %s ignored", event.data["code"], event.event_id)
    return run


def _open_tasks(uow: UnitOfWork, dossier_code: str) -> list[Task]:
    return list(uow.session.scalars(select(Task).where(Task.dossier_code == dossier_code, Task.status == OPEN)
                                    .with_for_update()))


def _rearm(row: DossierProcess | Task, due: datetime, cutoff: datetime) -> None:
    """A breach already announced is announced again if the moved due date, still ahead, passes too."""
    if row.overdue_at is not None and due >= cutoff:
        row.overdue_at = None


def pause_process(uow: UnitOfWork, event: Event) -> None:
    """On `supplement_requested`: the clock stops (status 5); no step or the dossier is overdue meanwhile."""
    run = _process_of(uow, event)
    if run is None or run.status != RUNNING:
        return
    run.status = PAUSED
    run.paused_at = event.data["requested_at"]
    for task in _open_tasks(uow, run.dossier_code):
        task.paused_at = run.paused_at


def resume_process(uow: UnitOfWork, event: Event, calendar: WorkingCalendar, now: datetime) -> None:
    """On `dossier_supplemented`: the clock resumes with intake's new due date, if any; each open step's
    due date moves later by the working time it was paused, never past the dossier's."""
    run = _process_of(uow, event)
    if run is None or run.status != PAUSED:
        return
    data = event.data
    run.status = RUNNING
    run.paused_at = None
    if data["due_at"] is not None:
        run.dossier_due_at = data["due_at"]
    cutoff = overdue_before(now, calendar.tz)
    _rearm(run, run.dossier_due_at, cutoff)
    for task in _open_tasks(uow, run.dossier_code):
        paused = calendar.working_time_between(task.paused_at, data["supplemented_at"])
        if paused:  # zero would still roll a due date at closing time to the next opening
            task.due_at = min(calendar.add_working_time(task.due_at, paused), run.dossier_due_at)
        task.paused_at = None
        _rearm(task, task.due_at, cutoff)


def reschedule_process(uow: UnitOfWork, event: Event, tz: tzinfo, now: datetime) -> None:
    """On `dossier_rescheduled` (form 04): the dossier is due at the new appointment; if that is still
    ahead, a breach already announced will be announced again should the new date pass too."""
    run = _process_of(uow, event)
    if run is None:
        return
    run.dossier_due_at = event.data["new_due_at"]
    _rearm(run, run.dossier_due_at, overdue_before(now, tz))


def stop_process(uow: UnitOfWork, event: Event) -> None:
    """On `dossier_withdrawn`: the process stops and its open steps are cancelled (they leave the inbox)."""
    run = _process_of(uow, event)
    if run is None or run.status not in (RUNNING, PAUSED):
        return
    run.status = STOPPED
    run.paused_at = None
    for task in _open_tasks(uow, run.dossier_code):
        task.status = CANCELLED
        task.paused_at = None


def get_task(session: Session, task_id: str, caller: Caller) -> tuple[Task, list[Task]]:
    """A task of the caller's agency and the hand-overs of its dossier."""
    task = _task_of(session, task_id, caller)
    return task, dossier_history(session, task.dossier_code)


def dossier_history(session: Session, dossier_code: str) -> list[Task]:
    """Every hand-over of a dossier in order (the process control sheet, phiếu kiểm soát quá trình)."""
    return list(session.scalars(select(Task).where(Task.dossier_code == dossier_code)
                                .order_by(Task.assigned_at, Task.step_index)))


def open_tasks_by_agency(session: Session, overdue_cutoff: datetime | None = None) -> dict[tuple, float]:
    """Open tasks per agency; with `overdue_cutoff` (from `overdue_before`), only the overdue ones."""
    query = select(Task.agency_code, func.count()).where(Task.status == OPEN).group_by(Task.agency_code)
    if overdue_cutoff is not None:
        query = query.where(Task.paused_at.is_(None), Task.due_at < overdue_cutoff)
    return {(agency,): count for agency, count in session.execute(query)}


def tasks_by_status(session: Session) -> dict[tuple, float]:
    counts = dict(session.execute(select(Task.status, func.count()).group_by(Task.status)).all())
    return {(status,): counts.get(status, 0) for status in (OPEN, DONE, CANCELLED)}
