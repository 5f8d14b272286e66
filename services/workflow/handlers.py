"""Workflow's service layer: each command or event loads the process run through the unit of work's
repository, calls one method of `ProcessRun`, saves the run, emits the events it returned, and (for a command)
commits once. Event handlers never commit: `apply_once` does, possibly after several events."""
from __future__ import annotations

import logging
from collections import Counter
from datetime import datetime, time, timedelta
from typing import Callable

from motcua.calendar import Decision, overdue_before
from motcua.contracts import Event
from motcua.errors import NotFound
from motcua.identity import Caller
from motcua.worker import TASKS_EXCHANGE
from services.workflow.process_run import Message, ProcessRun, Task, require_staff
from services.workflow.processes import Processes
from services.workflow.repository import WorkflowUnitOfWork

log = logging.getLogger(__name__)

SLA_BATCH = 500  # runs flagged per transaction by detect_overdue


def publish(uow: WorkflowUnitOfWork, messages: list[Message]) -> None:
    """Record the run's events in the outbox, in order; a task's also on its agency's task queue."""
    for message in messages:
        event_id = uow.emit(message.event_type, message.data)
        if message.task_queue is not None:
            uow.emit(message.event_type, message.queue_data, exchange=TASKS_EXCHANGE.name,
                     routing_key=f"task.{message.task_queue}", event_id=event_id)


# -- intake's events ---------------------------------------------------------------------------------

def start_process(uow: WorkflowUnitOfWork, event: Event, catalog: Processes, now: datetime) -> None:
    """On `dossier_received`: open the first stage's tasks, unless this dossier's process already exists.
    An unknown procedure raises, so the message is parked in the dead-letter queue until processes.yaml
    is fixed and the message replayed, rather than the dossier silently going nowhere. A dossier imported
    from the old system (`imported`) was processed there: no process starts for it."""
    data = event.data
    if data.get("imported"):
        log.debug("dossier %s was imported: no process started; event %s ignored", data["code"], event.event_id)
        return
    if uow.runs.exists(data["code"]):
        log.info("process of dossier %s already started; event %s ignored", data["code"], event.event_id)
        return
    run, messages = ProcessRun.start(data["code"], data["procedure_code"], data["agency_code"], data["due_at"],
                                     data["form"], data["dossier_version"], catalog, now)
    uow.runs.add(run)
    publish(uow, messages)


def _apply_to_run(uow: WorkflowUnitOfWork, event: Event, change: Callable[[ProcessRun], list[Message]]) -> None:
    """Apply one of intake's later decisions to the dossier's run, unless it was never routed here."""
    run = uow.runs.get(event.data["code"])
    if run is None:
        log.info("no process of dossier %s; event %s ignored", event.data["code"], event.event_id)
    else:
        messages = change(run)
        uow.runs.save(run)
        publish(uow, messages)


def pause_process(uow: WorkflowUnitOfWork, event: Event, catalog: Processes, now: datetime) -> None:
    data = event.data
    _apply_to_run(uow, event, lambda run: run.pause_for_supplement(
        data["requested_at"], data["due_at"], catalog.calendar.tz, now, data["dossier_version"]))


def resume_process(uow: WorkflowUnitOfWork, event: Event, catalog: Processes, now: datetime) -> None:
    data = event.data
    _apply_to_run(uow, event, lambda run: run.resume_after_supplement(
        data["supplemented_at"], data["due_at"], catalog.calendar, now, data["dossier_version"]))


def reschedule_process(uow: WorkflowUnitOfWork, event: Event, catalog: Processes, now: datetime) -> None:
    data = event.data
    _apply_to_run(uow, event, lambda run: run.reschedule(data["new_due_at"], catalog.calendar.tz, now,
                                                         data["dossier_version"]))


def apply_calendar_decision(uow: WorkflowUnitOfWork, event: Event, catalog: Processes, now: datetime) -> None:
    """On intake's `calendar_decided`: keep the decision, move the open steps whose span holds its day
    (`ProcessRun.recalendar`), and count every deadline with it once committed. Both calendars come from
    the table, not from this instance's memory, so a batch retried after a rollback moves the same steps."""
    data = event.data
    decision = Decision(data["date"], data["kind"], data["source"])
    before = catalog.counting_with(uow.calendar.recorded())
    uow.calendar.record(decision, data["decided_year"], data["decided_by"], data["decided_at"])
    recorded = uow.calendar.recorded()
    after = catalog.counting_with(recorded)
    day_start = datetime.combine(decision.date, time.min, tzinfo=after.tz)
    for run in uow.runs.with_open_steps_spanning(day_start, day_start + timedelta(days=1)):
        publish(uow, run.recalendar(day_start, before, after, now))
        uow.runs.save(run)
    uow.after_commit(lambda: catalog.use_decisions(recorded))


def refresh_calendar(uow: WorkflowUnitOfWork, catalog: Processes) -> None:
    """Count with every decision recorded so far (another instance may have applied the event)."""
    catalog.use_decisions(uow.calendar.recorded())


def stop_process(uow: WorkflowUnitOfWork, event: Event) -> None:
    _apply_to_run(uow, event, ProcessRun.stop)


def resume_after_payment(uow: WorkflowUnitOfWork, event: Event, catalog: Processes, now: datetime) -> None:
    data = event.data
    _apply_to_run(uow, event, lambda run: run.resume_after_payment(data["due_at"], catalog, now,
                                                                   data["dossier_version"]))


# -- staff's commands --------------------------------------------------------------------------------

def _run_of_task(uow: WorkflowUnitOfWork, task_id: str, caller: Caller) -> ProcessRun:
    require_staff(caller)  # before any read: someone else learns nothing, not even which tasks exist
    run = uow.runs.with_task(task_id)
    if run is None:
        raise NotFound(f"no task {task_id}")
    return run


def complete_task(uow: WorkflowUnitOfWork, catalog: Processes, task_id: str, outcome: str, note: str | None,
                  caller: Caller, now: datetime, details: dict | None = None) -> Task:
    run = _run_of_task(uow, task_id, caller)
    messages = run.complete(task_id, outcome, note, caller, now, catalog, details)
    uow.runs.save(run)
    publish(uow, messages)
    uow.commit()
    return run.task(task_id)


def transfer_task(uow: WorkflowUnitOfWork, catalog: Processes, task_id: str, to_agency: str, note: str | None,
                  caller: Caller, now: datetime) -> Task:
    run = _run_of_task(uow, task_id, caller)
    messages = run.transfer(task_id, to_agency, note, caller, now, catalog)
    uow.runs.save(run)
    publish(uow, messages)
    uow.commit()
    return run.task(task_id)


def claim_task(uow: WorkflowUnitOfWork, task_id: str, caller: Caller) -> Task:
    run = _run_of_task(uow, task_id, caller)
    run.claim(task_id, caller)
    uow.runs.save(run)
    uow.commit()
    return run.task(task_id)


def assign_task(uow: WorkflowUnitOfWork, task_id: str, assignee: str | None, caller: Caller) -> Task:
    run = _run_of_task(uow, task_id, caller)
    run.assign(task_id, assignee, caller)
    uow.runs.save(run)
    uow.commit()
    return run.task(task_id)


# -- the SLA check -----------------------------------------------------------------------------------

def detect_overdue(uow: WorkflowUnitOfWork, catalog: Processes, now: datetime, batch: int = SLA_BATCH) -> tuple[int, int]:
    """Flag what is newly overdue (`ProcessRun.flag_overdue`), `batch` runs of each kind per transaction,
    until none is left. Returns (tasks flagged, dossiers flagged)."""
    cutoff = overdue_before(now, catalog.calendar.tz)
    flagged: Counter[str] = Counter()
    while True:
        runs = uow.runs.overdue(cutoff, batch)
        messages = [message for run in runs for message in run.flag_overdue(now, catalog)]
        uow.runs.save(*runs)
        publish(uow, messages)
        uow.commit()
        flagged.update(m.event_type for m in messages)
        # Fewer than a batch: nothing else is waiting (what other instances hold, they flag).
        if len(runs) < batch or not messages:
            break
    if flagged:
        log.info("SLA check: %d tasks and %d dossiers newly overdue", flagged["task_overdue"],
                 flagged["dossier_overdue"])
    return flagged["task_overdue"], flagged["dossier_overdue"]
