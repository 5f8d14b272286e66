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

from motcua.access import AgencyTree, may_read, scope_of
from motcua.calendar import WorkingCalendar, overdue_before, timeliness
from motcua.contracts import Event
from motcua.db import UnitOfWork
from motcua.errors import Forbidden, IllegalTransition, NotFound, ValidationFailed
from motcua.identity import STAFF_ROLES, Caller
from motcua.worker import TASKS_EXCHANGE
from services.workflow.models import (
    AWAITING_PAYMENT,
    CANCELLED,
    DONE,
    FINISHED,
    OPEN,
    PAUSED,
    RUNNING,
    STOPPED,
    TRANSFERRED,
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
    """On `dossier_received`: open the first stage's tasks, unless this dossier's process already exists."""
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
    uow.session.flush()
    _enter_stage(uow, run, process, 0, catalog, now, from_agency=run.receiving_agency_code)


def _enter_stage(uow: UnitOfWork, run: DossierProcess, process: Process, stage: int, catalog: Catalog,
                 now: datetime, from_agency: str | None) -> None:
    """Open the first applicable step of every applicable branch of `stage` (parallel branches start
    together); a stage with nothing applicable is skipped; past the last one, the result is ready."""
    while stage < len(process.stages):
        opened = False
        for branch in process.stages[stage]:
            if branch.when is not None and not branch.when.holds(run.form):
                continue
            first = next((i for i in branch.steps if process.applies(i, run.form)), None)
            if first is not None:
                _assign(uow, run, process, first, catalog, now, from_agency)
                opened = True
        if opened:
            return
        stage += 1
    _finish(uow, run, now, from_agency or run.receiving_agency_code)


def _finish(uow: UnitOfWork, run: DossierProcess, now: datetime, agency_code: str,
            outcome: str = "approved", reason: str = "") -> None:
    run.status = FINISHED
    run.finished_at = now
    uow.emit("result_ready", {"dossier_code": run.dossier_code, "agency_code": agency_code,
                              "finished_at": now, "outcome": outcome, "reason": reason})


def _advance(uow: UnitOfWork, run: DossierProcess, process: Process, index: int, catalog: Catalog,
             now: datetime, from_agency: str) -> None:
    """After step `index`: the next applicable step of its branch; at the branch's end, the join waits
    for the stage's other branches, then the next stage starts."""
    branch = process.branch_of(index).steps
    later = [i for i in branch[branch.index(index) + 1:] if process.applies(i, run.form)]
    if later:
        _assign(uow, run, process, later[0], catalog, now, from_agency)
        return
    stage = process.steps[index].stage
    pending = uow.session.scalar(select(func.count()).select_from(Task).where(
        Task.dossier_code == run.dossier_code, Task.status == OPEN,
        Task.step_index.in_(process.stage_steps(stage))))
    if pending:
        return  # the join: another branch of this stage is still running
    _enter_stage(uow, run, process, stage + 1, catalog, now, from_agency)


def _assign(uow: UnitOfWork, run: DossierProcess, process: Process, index: int, catalog: Catalog,
            now: datetime, from_agency: str | None, agency_code: str | None = None) -> Task:
    step = process.steps[index]
    agency_code = agency_code or catalog.agency_for(step, run.receiving_agency_code, run.form)
    # A step never runs past the dossier's own due date (the appointment given to the citizen).
    due = min(catalog.calendar.due_at(now, step.allowance), run.dossier_due_at)
    task = Task(id=str(uuid.uuid4()), dossier_code=run.dossier_code, procedure_code=run.procedure_code,
                step_index=index, step=step.name, agency_code=agency_code, role=step.role,
                status=OPEN, assigned_at=now, due_at=due, from_agency_code=from_agency,
                # Assigned while the dossier waits for a supplement: this step's clock is stopped too.
                paused_at=max(now, run.paused_at) if run.status == PAUSED else None)
    uow.session.add(task)
    uow.session.flush()
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


def allowed_actions(task: Task, process: Process) -> list[str]:
    """What may be done with a task now: its step's actions (send back only after a first step),
    claim while nobody holds it; nothing once closed."""
    if task.status != OPEN:
        return []
    step = process.steps[task.step_index]
    actions = [a for a in step.actions if a != "send_back" or _send_back_targets(process, task.step_index)]
    return actions + (["claim"] if task.assignee is None else [])


def _send_back_targets(process: Process, index: int) -> list[int]:
    """The earlier steps a step may send the dossier back to (trả lại bước trước): those before it in its
    branch, and, from a branch's first step, the steps of the single-step stages before its stage."""
    step = process.steps[index]
    branch = process.branch_of(index).steps
    targets = list(branch[:branch.index(index)])
    targets += [i for stage in process.stages[:step.stage] if len(stage) == 1 for i in stage[0].steps]
    return sorted(set(targets))


def _open_task_for_action(uow: UnitOfWork, catalog: Catalog, task_id: str, caller: Caller,
                          action: str) -> tuple[Task, DossierProcess, Process]:
    """The task, locked (two officers acting at once cannot both move the process), if the caller has
    the step's role in its agency, it is open and its step allows `action`."""
    task = _task_of(uow.session, task_id, caller, for_update=True)
    # Only the role the step is meant for (a receptionist cannot sign a leader's step); admins pass.
    caller.require(task.role, agency_code=task.agency_code, allow_system=True)
    if task.assignee not in (None, caller.username) and not caller.has_role(ESCALATION_ROLE):
        raise Forbidden(f"the task is assigned to {task.assignee}")
    run = uow.session.get(DossierProcess, task.dossier_code, with_for_update=True)
    process = catalog.process(run.procedure_code)
    allowed = allowed_actions(task, process)
    if task.status != OPEN or run.status not in (RUNNING, PAUSED) or action not in allowed:
        state = task.status if task.status != OPEN else run.status
        raise IllegalTransition(f"cannot {action} a task that is {state}", field="outcome",
                                details={"status": state, "allowed": allowed if run.status == RUNNING else []})
    return task, run, process


def _close(uow: UnitOfWork, catalog: Catalog, task: Task, status: str, outcome: str, note: str | None,
           caller: Caller, now: datetime, documents: list[dict] | None = None) -> None:
    task.status = status
    task.outcome = outcome
    task.note = note or ""
    task.completed_by = caller.username
    task.completed_at = now
    task.timeliness = timeliness(now, task.due_at, catalog.calendar.tz)
    task.documents = documents or None
    uow.emit("task_completed", {**_task_facts(task), "completed_at": now, "completed_by": caller.username,
                                "outcome": outcome, "note": task.note, "timeliness": task.timeliness,
                                "documents": documents or []})


def _cancel_open(uow: UnitOfWork, run: DossierProcess, steps: set[int] | None = None) -> None:
    """Cancel the dossier's open tasks (of `steps` only, if given): they leave the inboxes."""
    for other in _open_tasks(uow, run.dossier_code):
        if steps is None or other.step_index in steps:
            other.status = CANCELLED
            other.paused_at = None


def complete_task(uow: UnitOfWork, catalog: Catalog, task_id: str, outcome: str, note: str | None,
                  caller: Caller, now: datetime, details: dict | None = None) -> Task:
    """Act on a step (xử lý bước): approve (forward to the next step, or the result after the last),
    send back to an earlier step, ask the counter for a supplement, require a payment (status 6),
    refuse (the result is a written refusal) or stop processing (status 8); `details["documents"]`:
    what the step completes with (references intake stored).

    One transaction: the task, what follows it and their events commit together.
    """
    details = details or {}
    task, run, process = _open_task_for_action(uow, catalog, task_id, caller, outcome)
    if outcome == "request_supplement":
        # The task stays open: the counter issues form 02, and `supplement_requested` pauses the clock.
        uow.emit("supplement_needed", {"dossier_code": run.dossier_code, "agency_code": task.agency_code,
                                       "task_id": task.id, "items": details["items"], "note": note or "",
                                       "requested_by": caller.username, "requested_at": now})
        task.note = note or ""
        uow.commit()
        return task
    _close(uow, catalog, task, DONE, outcome, note, caller, now, details.get("documents"))
    if outcome == "approve":
        _advance(uow, run, process, task.step_index, catalog, now, task.agency_code)
    elif outcome == "send_back":
        _send_back(uow, run, process, task, details.get("to_step"), catalog, now)
    elif outcome == "require_payment":
        run.status, run.paused_at, run.resume_after_step = AWAITING_PAYMENT, now, task.step_index
        uow.emit("payment_required", {"dossier_code": run.dossier_code, "agency_code": task.agency_code,
                                      "task_id": task.id, "amount_vnd": details["amount_vnd"],
                                      "note": task.note, "required_at": now})
    elif outcome == "refuse":
        _cancel_open(uow, run)
        _finish(uow, run, now, task.agency_code, outcome="refused", reason=task.note)
    elif outcome == "stop":
        _cancel_open(uow, run)
        run.status, run.finished_at = STOPPED, now
        uow.emit("processing_stopped", {"dossier_code": run.dossier_code, "agency_code": task.agency_code,
                                        "stopped_at": now, "stopped_by": caller.username, "reason": task.note})
    uow.commit()
    return task


def _send_back(uow: UnitOfWork, run: DossierProcess, process: Process, task: Task, to_step: int | None,
               catalog: Catalog, now: datetime) -> None:
    """The dossier goes back to an earlier step (the previous one by default), which is opened again;
    leaving a parallel stage cancels its other branches (they run again when the stage comes back)."""
    targets = _send_back_targets(process, task.step_index)
    target = targets[-1] if to_step is None else to_step
    if target not in targets:
        raise ValidationFailed(f"can be sent back to steps {targets}", field="to_step")
    stage = process.steps[task.step_index].stage
    if process.steps[target].stage != stage:
        _cancel_open(uow, run, steps=process.stage_steps(stage))
    _assign(uow, run, process, target, catalog, now, from_agency=task.agency_code)


def claim_task(uow: UnitOfWork, task_id: str, caller: Caller) -> Task:
    """Nhận xử lý: an officer with the step's role takes a task from the agency's pool."""
    task = _task_of(uow.session, task_id, caller, for_update=True)
    caller.require(task.role, agency_code=task.agency_code)
    if task.status != OPEN or task.assignee not in (None, caller.username):
        raise IllegalTransition(f"task is {task.status}" + (f", held by {task.assignee}" if task.assignee else ""),
                                field="status", details={"status": task.status, "allowed": []})
    task.assignee = caller.username
    uow.commit()
    return task


def assign_task(uow: UnitOfWork, task_id: str, assignee: str | None, caller: Caller) -> Task:
    """Phân công: the agency's leader assigns (or reassigns, or returns to the pool with None) an open task."""
    task = _task_of(uow.session, task_id, caller, for_update=True)
    caller.require(ESCALATION_ROLE, "agency_admin", agency_code=task.agency_code)
    if task.status != OPEN:
        raise IllegalTransition(f"task is {task.status}", field="status",
                                details={"status": task.status, "allowed": []})
    task.assignee = assignee
    uow.commit()
    return task


def transfer_task(uow: UnitOfWork, catalog: Catalog, task_id: str, to_agency: str, note: str | None,
                  caller: Caller, now: datetime) -> Task:
    """Chuyển xử lý: hand a step to another agency the step lists (`transfer_to`); a new task opens there."""
    task, run, process = _open_task_for_action(uow, catalog, task_id, caller, "transfer")
    step = process.steps[task.step_index]
    if to_agency not in step.transfer_to:
        raise ValidationFailed(f"this step may go to {', '.join(step.transfer_to)} only", field="agency_code")
    _close(uow, catalog, task, TRANSFERRED, "transfer", note, caller, now)
    successor = _assign(uow, run, process, task.step_index, catalog, now, task.agency_code, agency_code=to_agency)
    uow.emit("dossier_transferred", {**_task_facts(task), "from_agency_code": task.agency_code,
                                     "to_agency_code": to_agency, "transferred_at": now,
                                     "transferred_by": caller.username, "note": task.note,
                                     "new_task_id": successor.id})
    uow.commit()
    return task


def is_overdue(task: Task, cutoff: datetime) -> bool:
    """`cutoff` from `overdue_before`. A step of a paused dossier is never overdue."""
    return task.status == OPEN and task.paused_at is None and task.due_at < cutoff


def list_tasks(session: Session, caller: Caller, status: str, now: datetime, tz: tzinfo,
               tree: AgencyTree, role: str | None = None, assignee: str | None = None) -> list[Task]:
    """The caller's agency's tasks, overdue first, then by due date; a leader's or agency admin's also
    those of the sub-agencies in `tree` (all agencies for a platform admin).

    `status` is one of STATUS_FILTERS; "overdue" lists the open tasks past their due date, which are
    escalated to the agency's leaders. `role` keeps one role's steps; `assignee` one officer's tasks
    ("me": the caller's, "none": the agency's unassigned pool).
    """
    _require_staff(caller)
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


def detect_overdue(uow: UnitOfWork, catalog: Catalog, now: datetime, batch: int = SLA_BATCH) -> tuple[int, int]:
    """The SLA check: flag open tasks and running dossiers past their due date, each exactly once
    (paused dossiers and their steps are skipped: the clock stops while the applicant supplements).

    Each flagged task emits `task_overdue` (escalated to the agency's leaders), each flagged dossier
    `dossier_overdue` (for the receiving agency, which owes the apology, form 04); a late step that,
    by the `catalog`'s allowances, makes its dossier miss its due date emits `delay_predicted` (form 04
    drafted before the date passes). Rows are claimed
    with FOR UPDATE SKIP LOCKED (PostgreSQL), so several workflow instances checking at once never
    flag, hence never emit, the same breach twice. Flags and events commit together, `batch` rows of
    each kind per transaction, until none is left. Returns (tasks flagged, dossiers flagged).
    """
    cutoff = overdue_before(now, catalog.calendar.tz)
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
            _predict_delay(uow, catalog, task, now)
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


def _predict_delay(uow: UnitOfWork, catalog: Catalog, task: Task, now: datetime) -> None:
    """A step past its own deadline: if the steps still ahead cannot fit before the dossier's due
    date, the receiving agency is told once, with the appointment it should propose (form 04)."""
    run = uow.session.get(DossierProcess, task.dossier_code)
    if run is None or run.status != RUNNING or run.delay_predicted_at is not None:
        return
    process = catalog.process(run.procedure_code)
    # The late step itself needs at least the rest of today; then every step still ahead.
    ahead = process.remaining_allowance(task.step_index, run.form) + process.steps[task.step_index].allowance / 2
    proposed = catalog.calendar.due_at(now, ahead)
    if proposed <= run.dossier_due_at:
        return
    run.delay_predicted_at = now
    uow.emit("delay_predicted", {"dossier_code": run.dossier_code, "agency_code": run.receiving_agency_code,
                                 "current_agency_code": task.agency_code, "due_at": run.dossier_due_at,
                                 "proposed_due_at": proposed, "detected_at": now})


def resume_after_payment(uow: UnitOfWork, event: Event, catalog: Catalog, now: datetime) -> None:
    """On `payment_received`: the clock resumes with intake's new due date and processing goes on
    after the step that fixed the amount."""
    run = _process_of(uow, event)
    if run is None or run.status != AWAITING_PAYMENT:
        return
    data = event.data
    run.status, run.paused_at = RUNNING, None
    if data["due_at"] is not None:
        run.dossier_due_at = data["due_at"]
    _rearm(run, run.dossier_due_at, overdue_before(now, catalog.calendar.tz))
    index, run.resume_after_step = run.resume_after_step, None
    # The dossier comes back from the counter, where the payment was confirmed.
    _advance(uow, run, catalog.process(run.procedure_code), index, catalog, now,
             from_agency=run.receiving_agency_code)


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
    if run is None or run.status not in (RUNNING, PAUSED, AWAITING_PAYMENT):
        return
    run.status = STOPPED
    run.paused_at = None
    for task in _open_tasks(uow, run.dossier_code):
        task.status = CANCELLED
        task.paused_at = None


def get_task(session: Session, task_id: str, caller: Caller, tree: AgencyTree) -> tuple[Task, list[Task]]:
    """A task the caller may read (own agency; a leader's sub-agencies too) and its dossier's hand-overs."""
    _require_staff(caller, allow_system=True)
    task = session.get(Task, str(task_id))
    if task is None:
        raise NotFound(f"no task {task_id}")
    own_system = caller.is_system and caller.agency_code == task.agency_code
    if not (own_system or (caller.has_role(*STAFF_ROLES) and may_read(caller, [task.agency_code], tree))):
        raise Forbidden("not allowed for another agency's records")
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
