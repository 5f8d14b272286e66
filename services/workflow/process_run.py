"""A dossier's run through its process (quy trình) and the tasks (công việc) of its steps: workflow's rules.

`ProcessRun` is the aggregate: the run and all its tasks change together, under one lock. Its methods
check a rule, change the run and its tasks, and return the events to publish (`Message`s), each
stamped with the run's next `run_version`, in order. They do no I/O: the catalogue (processes,
agencies, the working calendar), the caller and the time are passed in. The service layer
(`services.workflow.handlers`) loads a run through a repository, calls one method, emits what it
returns and commits once. Plain dataclasses: `models.py` maps them onto workflow's tables.
"""
from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta, tzinfo

from motcua.access import AgencyTree, may_read
from motcua.calendar import WorkingCalendar, overdue_before, timeliness
from motcua.errors import Forbidden, IllegalTransition, NotFound, ValidationFailed
from motcua.identity import STAFF_ROLES, Caller
from services.workflow.processes import Processes, Process

# Paused while the applicant supplements the dossier, awaiting payment while a fee or tax is unpaid
# (the clock stops for both); stopped when it is withdrawn or a step stops it.
RUNNING, PAUSED, AWAITING_PAYMENT, FINISHED, STOPPED = "running", "paused", "awaiting_payment", "finished", "stopped"
# A task transferred to another agency, or sent back, is closed; its successor is a new task.
OPEN, DONE, CANCELLED, TRANSFERRED = "open", "done", "cancelled", "transferred"
ESCALATION_ROLE = "leader"  # an overdue step is escalated to its agency's leaders (lãnh đạo)
# Outcomes that stop the dossier's clock (status 5 and 6): one stop at a time, from a running process.
CLOCK_STOPPING = ("request_supplement", "require_payment")


@dataclass(frozen=True)
class Message:
    """An event to publish. `task_queue`: the agency whose own task queue gets it too (liên thông to its
    workers: the same event, the same id), with `queue_data` (the declaration, for an agency's system)."""

    event_type: str
    data: dict
    task_queue: str | None = None
    queue_data: dict | None = None


def require_staff(caller: Caller, agency_code: str | None = None) -> None:
    """Staff of `agency_code` (any agency if None); an agency's own system (motcua.worker) passes for its
    own agency's tasks."""
    caller.require(*STAFF_ROLES, agency_code=agency_code, allow_system=True)


@dataclass(eq=False)
class Task:
    """One step of one dossier, assigned to an agency (liên thông: the next step may be another agency)."""

    id: str
    dossier_code: str
    procedure_code: str
    step_index: int
    step: str
    agency_code: str
    role: str
    status: str
    assigned_at: datetime
    due_at: datetime
    # Who handed the dossier over (the previous step's agency), for the process control sheet (form 06).
    from_agency_code: str | None = None
    # While its dossier is paused: when this step's clock stopped (the request, or its assignment if
    # later). A paused step is never overdue; on resume its due date moves by the working time since.
    paused_at: datetime | None = None
    # The officer the task is assigned to (claimed or assigned by a leader); None: the agency's pool.
    assignee: str | None = None
    completed_at: datetime | None = None
    completed_by: str | None = None
    outcome: str | None = None
    note: str | None = None
    timeliness: str | None = None
    # When the SLA check found the step past its due date and escalated it (`task_overdue`, once).
    overdue_at: datetime | None = None
    # Documents the step completed with (references into intake's blob store: key, filename, sha256…)
    documents: list | None = None

    @property
    def is_open(self) -> bool:
        return self.status == OPEN

    def is_overdue(self, cutoff: datetime) -> bool:
        """`cutoff` from `overdue_before`. A step of a paused dossier is never overdue."""
        return self.is_open and self.paused_at is None and self.due_at < cutoff

    def allowed_actions(self, process: Process) -> list[str]:
        """What may be done with the task now: its step's actions (send back only after a first step),
        claim while nobody holds it; nothing once closed."""
        if not self.is_open:
            return []
        actions = list(process.actions_when_open(self.step_index))
        return actions + ["claim"] if self.assignee is None else actions

    def readable_by(self, caller: Caller, tree: AgencyTree) -> bool:
        """Its agency's staff, the leaders and agency admins above it in `tree`, its agency's own system."""
        own_system = caller.is_system and caller.agency_code == self.agency_code
        return own_system or (caller.has_role(*STAFF_ROLES) and may_read(caller, [self.agency_code], tree))

    def facts(self) -> dict:
        """What every event about the task says of it."""
        return {"task_id": self.id, "dossier_code": self.dossier_code, "procedure_code": self.procedure_code,
                "agency_code": self.agency_code, "step": self.step, "step_index": self.step_index}


@dataclass(eq=False)
class ProcessRun:
    """A received dossier routed through its procedure's process; one per dossier."""

    dossier_code: str
    procedure_code: str
    receiving_agency_code: str
    dossier_due_at: datetime
    status: str
    started_at: datetime
    # The applicant's declaration (tờ khai), handed only to steps an agency's own system takes.
    form: dict = field(default_factory=dict)
    finished_at: datetime | None = None
    # When the SLA check found the dossier past its due date and emitted `dossier_overdue` (once).
    overdue_at: datetime | None = None
    # When the clock stopped (supplement or payment): the working time from then to the supplement
    # is added to its open steps' due dates when it resumes.
    paused_at: datetime | None = None
    # Awaiting payment: the step whose completion fixed the amount; processing resumes after it.
    resume_after_step: int | None = None
    # When the SLA check predicted the dossier would miss its due date (`delay_predicted`, once).
    delay_predicted_at: datetime | None = None
    # The run's last event's `run_version` (0: none yet).
    version: int = 0
    # The newest of intake's events about the dossier applied here (`dossier_version`), and the newest
    # that paused or resumed the clock: older ones the bus delivers late are stale.
    dossier_version: int | None = None
    clock_version: int | None = None
    tasks: list[Task] = field(default_factory=list)

    # -- starting --------------------------------------------------------------------------------------

    @classmethod
    def start(cls, dossier_code: str, procedure_code: str, receiving_agency_code: str, due_at: datetime,
              form: dict | None, dossier_version: int | None, catalog: Processes,
              now: datetime) -> tuple["ProcessRun", list[Message]]:
        """On reception: the run opens its first stage's tasks. An unknown procedure raises NotFound."""
        process = catalog.process(procedure_code)
        run = cls(dossier_code=dossier_code, procedure_code=process.procedure_code,
                  receiving_agency_code=receiving_agency_code, dossier_due_at=due_at, status=RUNNING,
                  started_at=now, form=form or {}, dossier_version=dossier_version)
        out: list[Message] = []
        run._enter_stage(out, process, 0, catalog, now, from_agency=receiving_agency_code)
        return run, out

    # -- what staff do with a task ---------------------------------------------------------------------

    def task(self, task_id: str) -> Task:
        for task in self.tasks:
            if task.id == task_id:
                return task
        raise NotFound(f"no task {task_id}")

    def complete(self, task_id: str, outcome: str, note: str | None, caller: Caller, now: datetime,
                 catalog: Processes, details: dict | None = None) -> list[Message]:
        """Act on a step (xử lý bước): approve (forward to the next step, or the result after the last),
        send back to an earlier step, ask the counter for a supplement (the clock stops at once), require
        a payment (status 6), refuse (the result is a written refusal) or stop processing (status 8);
        `details`: `items`, `amount_vnd`, `to_step`, `documents` (references intake stored)."""
        details = details or {}
        process = catalog.process(self.procedure_code)
        task = self._actionable(task_id, caller, outcome, process)
        out: list[Message] = []
        if outcome == "request_supplement":
            # The task stays open; the counter issues form 02 on its behalf. The run stops its own clock
            # now (each fact once): intake's `supplement_requested` then finds it paused already.
            task.note = note or ""
            self._record(out, "supplement_needed", {
                "dossier_code": self.dossier_code, "agency_code": task.agency_code, "task_id": task.id,
                "items": details["items"], "note": task.note, "requested_by": caller.username,
                "requested_at": now})
            self._pause(now)
            return out
        target = self._send_back_target(process, task, details.get("to_step")) if outcome == "send_back" else None
        self._close(out, task, DONE, outcome, note, caller, now, catalog.calendar.tz, details.get("documents"))
        if outcome == "approve":
            self._advance(out, process, task.step_index, catalog, now, task.agency_code)
        elif outcome == "send_back":
            self._go_back(out, process, task, target, catalog, now)
        elif outcome == "require_payment":
            self.status, self.paused_at, self.resume_after_step = AWAITING_PAYMENT, now, task.step_index
            self._record(out, "payment_required", {
                "dossier_code": self.dossier_code, "agency_code": task.agency_code, "task_id": task.id,
                "amount_vnd": details["amount_vnd"], "note": task.note, "required_at": now})
        elif outcome == "refuse":
            self._cancel_open()
            self._finish(out, now, task.agency_code, outcome="refused", reason=task.note)
        elif outcome == "stop":
            self._halt()
            self.finished_at = now
            self._record(out, "processing_stopped", {
                "dossier_code": self.dossier_code, "agency_code": task.agency_code, "stopped_at": now,
                "stopped_by": caller.username, "reason": task.note})
        return out

    def transfer(self, task_id: str, to_agency: str, note: str | None, caller: Caller, now: datetime,
                 catalog: Processes) -> list[Message]:
        """Chuyển xử lý: hand a step to another agency the step lists (`transfer_to`); a new task opens there."""
        process = catalog.process(self.procedure_code)
        task = self._actionable(task_id, caller, "transfer", process)
        allowed = process.steps[task.step_index].transfer_to
        if to_agency not in allowed:
            raise ValidationFailed(f"this step may go to {', '.join(allowed)} only", field="agency_code")
        out: list[Message] = []
        self._close(out, task, TRANSFERRED, "transfer", note, caller, now, catalog.calendar.tz)
        successor = self._assign(out, process, task.step_index, catalog, now, task.agency_code,
                                 agency_code=to_agency)
        self._record(out, "dossier_transferred", {
            **task.facts(), "from_agency_code": task.agency_code, "to_agency_code": to_agency,
            "transferred_at": now, "transferred_by": caller.username, "note": task.note,
            "new_task_id": successor.id})
        return out

    def claim(self, task_id: str, caller: Caller) -> None:
        """Nhận xử lý: an officer with the step's role takes a task from the agency's pool."""
        task = self._task_for(task_id, caller)
        caller.require(task.role, agency_code=task.agency_code)
        if not task.is_open or task.assignee not in (None, caller.username):
            raise IllegalTransition(f"task is {task.status}" + (f", held by {task.assignee}" if task.assignee else ""),
                                    field="status", details={"status": task.status, "allowed": []})
        task.assignee = caller.username

    def assign(self, task_id: str, assignee: str | None, caller: Caller) -> None:
        """Phân công: the agency's leader assigns (or reassigns, or returns to the pool with None) an open task."""
        task = self._task_for(task_id, caller)
        caller.require(ESCALATION_ROLE, "agency_admin", agency_code=task.agency_code)
        if not task.is_open:
            raise IllegalTransition(f"task is {task.status}", field="status",
                                    details={"status": task.status, "allowed": []})
        task.assignee = assignee

    # -- intake's decisions about the dossier ----------------------------------------------------------
    # Intake numbers its events about a dossier (`dossier_version`); the bus may deliver them out of
    # order (another queue, a replay from the dead-letter queue). A due date is taken only from the
    # newest event so far; a pause or resume only if no newer one was applied (a supplement request's
    # echo delivered after the supplement must not stop the clock again). A withdrawal or stop always
    # applies: nothing restarts a stopped dossier. Events without a version (stored before it existed)
    # are applied as they come.

    def pause_for_supplement(self, requested_at: datetime, due_at: datetime | None, tz: tzinfo, now: datetime,
                             dossier_version: int | None = None) -> list[Message]:
        """`supplement_requested` (status 5): the clock stops; no step or the dossier is overdue meanwhile.
        A run that paused itself when its step asked (`complete`) is paused already: nothing to do."""
        if self._newer("dossier_version", dossier_version):
            self._move_due(due_at, overdue_before(now, tz))
        if self._newer("clock_version", dossier_version):
            self._pause(requested_at)
        return []

    def resume_after_supplement(self, supplemented_at: datetime, due_at: datetime | None,
                                calendar: WorkingCalendar, now: datetime,
                                dossier_version: int | None = None) -> list[Message]:
        """`dossier_supplemented`: the clock resumes with intake's new due date, if any; each open step's
        due date moves later by the working time it was paused, never past the dossier's."""
        cutoff = overdue_before(now, calendar.tz)
        if self._newer("dossier_version", dossier_version):
            self._move_due(due_at, cutoff)
        if not self._newer("clock_version", dossier_version) or self.status != PAUSED:
            return []
        self.status, self.paused_at = RUNNING, None
        for task in self._open_tasks():
            paused = calendar.working_time_between(task.paused_at, supplemented_at)
            if paused:  # zero would still roll a due date at closing time to the next opening
                task.due_at = min(calendar.add_working_time(task.due_at, paused), self.dossier_due_at)
            task.paused_at = None
            _rearm(task, task.due_at, cutoff)
        return []

    def resume_after_payment(self, due_at: datetime | None, catalog: Processes, now: datetime,
                             dossier_version: int | None = None) -> list[Message]:
        """`payment_received`: the clock resumes with intake's new due date and processing goes on after
        the step that fixed the amount; the dossier comes back from the counter, which confirmed it."""
        if self._newer("dossier_version", dossier_version):
            self._move_due(due_at, overdue_before(now, catalog.calendar.tz))
        if self.status != AWAITING_PAYMENT:
            return []
        self.status, self.paused_at = RUNNING, None
        index, self.resume_after_step = self.resume_after_step, None
        out: list[Message] = []
        self._advance(out, catalog.process(self.procedure_code), index, catalog, now,
                      from_agency=self.receiving_agency_code)
        return out

    def reschedule(self, new_due_at: datetime, tz: tzinfo, now: datetime,
                   dossier_version: int | None = None) -> list[Message]:
        """`dossier_rescheduled` (form 04): the dossier is due at the new appointment; if that is still
        ahead, a breach already announced will be announced again should the new date pass too."""
        if self._newer("dossier_version", dossier_version):
            self._move_due(new_due_at, overdue_before(now, tz))
        return []

    def recalendar(self, day_start: datetime, before: WorkingCalendar, after: WorkingCalendar,
                   now: datetime) -> list[Message]:
        """An official calendar decision about the day starting at `day_start` (intake's
        `calendar_decided`): each open step whose span holds that day keeps the working time it had left
        from the day's start (or from its assignment, if later), counted again under the new calendar.
        A deadline is never moved earlier (a new working Saturday leaves the dates given) nor past the
        dossier's due date (intake's, moved by the same decision before this event)."""
        cutoff = overdue_before(now, after.tz)
        day_end = day_start + timedelta(days=1)
        out: list[Message] = []
        for task in self._open_tasks():
            if task.assigned_at >= day_end or task.due_at < day_start:
                continue  # its span does not hold the day: the two calendars agree on it
            anchor = max(task.assigned_at, day_start)
            due = min(after.recounted(anchor, task.due_at, before), self.dossier_due_at)
            if due > task.due_at:
                self._record(out, "task_rescheduled", {
                    **task.facts(), "old_due_at": task.due_at, "due_at": due, "rescheduled_at": now,
                    "reason": "calendar"})
                task.due_at = due
                _rearm(task, due, cutoff)
        return out

    def stop(self) -> list[Message]:
        """`dossier_withdrawn` or intake's `dossier_stopped`: the process stops and its open steps are
        cancelled (they leave the inboxes). A run its own step stopped is stopped already."""
        if self.status in (RUNNING, PAUSED, AWAITING_PAYMENT):
            self._halt()
        return []

    # -- deadlines (the SLA check) ---------------------------------------------------------------------

    def needs_flagging(self, cutoff: datetime) -> bool:
        """Something the SLA check has not announced yet is past its due date."""
        return bool(self._late_tasks(cutoff)) or self._late(cutoff)

    def flag_overdue(self, now: datetime, catalog: Processes) -> list[Message]:
        """Flag each open step past its due date (`task_overdue`, escalated to the agency's leaders) and
        the dossier past its own (`dossier_overdue`, for the receiving agency, which owes the apology,
        form 04), each once; paused steps and dossiers are skipped. A late step that, by the catalogue's
        allowances, makes the dossier miss its due date also drafts form 04 (`delay_predicted`)."""
        cutoff = overdue_before(now, catalog.calendar.tz)
        out: list[Message] = []
        for task in self._late_tasks(cutoff):
            task.overdue_at = now
            self._record(out, "task_overdue", {**task.facts(), "due_at": task.due_at, "detected_at": now,
                                               "escalated_to_role": ESCALATION_ROLE})
            self._predict_delay(out, task, catalog, now)
        if self._late(cutoff):
            self.overdue_at = now
            self._record(out, "dossier_overdue", {
                "dossier_code": self.dossier_code, "agency_code": self.receiving_agency_code,
                "current_agency_code": self._current_agency(), "due_at": self.dossier_due_at,
                "detected_at": now})
        return out

    def _late_tasks(self, cutoff: datetime) -> list[Task]:
        return sorted((t for t in self.tasks if t.overdue_at is None and t.is_overdue(cutoff)),
                      key=lambda t: t.due_at)

    def _late(self, cutoff: datetime) -> bool:
        return self.status == RUNNING and self.overdue_at is None and self.dossier_due_at < cutoff

    def _current_agency(self) -> str | None:
        """The agency holding the dossier now: that of its open step (the earliest, if several)."""
        holders = sorted(self._open_tasks(), key=lambda t: (t.step_index, t.assigned_at))
        return holders[0].agency_code if holders else None

    def _predict_delay(self, out: list[Message], task: Task, catalog: Processes, now: datetime) -> None:
        """A step past its own deadline: if the steps still ahead cannot fit before the dossier's due
        date, the receiving agency is told once, with the appointment it should propose (form 04)."""
        if self.status != RUNNING or self.delay_predicted_at is not None:
            return
        process = catalog.process(self.procedure_code)
        # The late step itself needs at least the rest of today; then every step still ahead.
        ahead = (process.remaining_allowance(task.step_index, self.form)
                 + process.steps[task.step_index].allowance / 2)
        proposed = catalog.calendar.due_at(now, ahead)
        if proposed <= self.dossier_due_at:
            return
        self.delay_predicted_at = now
        self._record(out, "delay_predicted", {
            "dossier_code": self.dossier_code, "agency_code": self.receiving_agency_code,
            "current_agency_code": task.agency_code, "due_at": self.dossier_due_at,
            "proposed_due_at": proposed, "detected_at": now})

    # -- the rules underneath --------------------------------------------------------------------------

    def _record(self, out: list[Message], event_type: str, data: dict, task_queue: str | None = None,
                queue_data: dict | None = None) -> None:
        self.version += 1
        stamp = {"run_version": self.version}
        out.append(Message(event_type, {**data, **stamp}, task_queue,
                           None if queue_data is None else {**queue_data, **stamp}))

    def _task_for(self, task_id: str, caller: Caller) -> Task:
        task = self.task(task_id)
        require_staff(caller, task.agency_code)
        return task

    def _actionable(self, task_id: str, caller: Caller, action: str, process: Process) -> Task:
        """The task, if the caller has the step's role in its agency, holds it (or leads the agency), it
        is open, its step allows `action`, and the process runs (a clock already stopped cannot stop
        again: a second supplement request would never reach the applicant)."""
        task = self._task_for(task_id, caller)
        # Only the role the step is meant for (a receptionist cannot sign a leader's step); admins pass.
        caller.require(task.role, agency_code=task.agency_code, allow_system=True)
        if task.assignee not in (None, caller.username) and not caller.has_role(ESCALATION_ROLE):
            raise Forbidden(f"the task is assigned to {task.assignee}")
        allowed = task.allowed_actions(process)
        runs = self.status == RUNNING or (self.status == PAUSED and action not in CLOCK_STOPPING)
        if not task.is_open or not runs or action not in allowed:
            state = task.status if not task.is_open else self.status
            raise IllegalTransition(f"cannot {action} a task that is {state}", field="outcome",
                                    details={"status": state, "allowed": allowed if self.status == RUNNING else []})
        return task

    def _open_tasks(self) -> list[Task]:
        return [task for task in self.tasks if task.is_open]

    def _enter_stage(self, out: list[Message], process: Process, stage: int, catalog: Processes, now: datetime,
                     from_agency: str | None) -> None:
        """Open the first applicable step of every applicable branch of `stage` (parallel branches start
        together); a stage with nothing applicable is skipped; past the last one, the result is ready."""
        while stage < len(process.stages):
            opened = False
            for branch in process.stages[stage]:
                if branch.when is not None and not branch.when.holds(self.form):
                    continue
                first = next((i for i in branch.steps if process.applies(i, self.form)), None)
                if first is not None:
                    self._assign(out, process, first, catalog, now, from_agency)
                    opened = True
            if opened:
                return
            stage += 1
        self._finish(out, now, from_agency or self.receiving_agency_code)

    def _advance(self, out: list[Message], process: Process, index: int, catalog: Processes, now: datetime,
                 from_agency: str) -> None:
        """After step `index`: the next applicable step of its branch; at the branch's end, the join waits
        for the stage's other branches, then the next stage starts."""
        branch = process.branch_of(index).steps
        later = [i for i in branch[branch.index(index) + 1:] if process.applies(i, self.form)]
        if later:
            self._assign(out, process, later[0], catalog, now, from_agency)
            return
        stage = process.steps[index].stage
        if any(t.step_index in process.stage_steps(stage) for t in self._open_tasks()):
            return  # the join: another branch of this stage is still running
        self._enter_stage(out, process, stage + 1, catalog, now, from_agency)

    def _assign(self, out: list[Message], process: Process, index: int, catalog: Processes, now: datetime,
                from_agency: str | None, agency_code: str | None = None) -> Task:
        step = process.steps[index]
        agency_code = agency_code or catalog.agency_for(step, self.receiving_agency_code, self.form)
        # A step never runs past the dossier's own due date (the appointment given to the citizen).
        due = min(catalog.calendar.due_at(now, step.allowance), self.dossier_due_at)
        task = Task(id=str(uuid.uuid4()), dossier_code=self.dossier_code, procedure_code=self.procedure_code,
                    step_index=index, step=step.name, agency_code=agency_code, role=step.role, status=OPEN,
                    assigned_at=now, due_at=due, from_agency_code=from_agency,
                    # Assigned while the dossier waits for a supplement: this step's clock is stopped too.
                    paused_at=max(now, self.paused_at) if self.status == PAUSED else None)
        self.tasks.append(task)
        data = {**task.facts(), "assigned_at": now, "due_at": due, "role": task.role}
        # The agency's system needs the declaration; officers read the dossier.
        self._record(out, "task_assigned", data, task_queue=agency_code,
                     queue_data={**data, "form": self.form} if step.handled_by == "system" else data)
        return task

    def _close(self, out: list[Message], task: Task, status: str, outcome: str, note: str | None,
               caller: Caller, now: datetime, tz: tzinfo, documents: list[dict] | None = None) -> None:
        task.status, task.outcome, task.note = status, outcome, note or ""
        task.completed_by, task.completed_at = caller.username, now
        task.timeliness = timeliness(now, task.due_at, tz)
        task.documents = documents or None
        self._record(out, "task_completed", {
            **task.facts(), "completed_at": now, "completed_by": caller.username, "outcome": outcome,
            "note": task.note, "timeliness": task.timeliness, "documents": documents or []})

    def _send_back_target(self, process: Process, task: Task, to_step: int | None) -> int:
        targets = process.send_back_targets(task.step_index)
        target = targets[-1] if to_step is None and targets else to_step
        if target not in targets:
            raise ValidationFailed(f"can be sent back to steps {targets}", field="to_step")
        return target

    def _go_back(self, out: list[Message], process: Process, task: Task, target: int, catalog: Processes,
                 now: datetime) -> None:
        """The dossier goes back to an earlier step, which is opened again; leaving a parallel stage
        cancels its other branches (they run again when the stage comes back)."""
        stage = process.steps[task.step_index].stage
        if process.steps[target].stage != stage:
            self._cancel_open(steps=process.stage_steps(stage))
        self._assign(out, process, target, catalog, now, from_agency=task.agency_code)

    def _finish(self, out: list[Message], now: datetime, agency_code: str, outcome: str = "approved",
                reason: str = "") -> None:
        self.status, self.finished_at = FINISHED, now
        self._record(out, "result_ready", {"dossier_code": self.dossier_code, "agency_code": agency_code,
                                           "finished_at": now, "outcome": outcome, "reason": reason})

    def _newer(self, mark: str, dossier_version: int | None) -> bool:
        """Record an intake event's version in `mark` (`dossier_version`: any event; `clock_version`: a
        pause or resume); False if one as new was recorded there before."""
        seen = getattr(self, mark)
        if dossier_version is None:
            return True
        if seen is not None and dossier_version <= seen:
            return False
        setattr(self, mark, dossier_version)
        return True

    def _move_due(self, due_at: datetime | None, cutoff: datetime) -> None:
        if due_at is not None:
            self.dossier_due_at = due_at
        _rearm(self, self.dossier_due_at, cutoff)

    def _pause(self, at: datetime) -> None:
        if self.status != RUNNING:
            return
        self.status, self.paused_at = PAUSED, at
        for task in self._open_tasks():
            task.paused_at = at

    def _halt(self) -> None:
        self.status, self.paused_at = STOPPED, None
        self._cancel_open()

    def _cancel_open(self, steps: set[int] | None = None) -> None:
        """Cancel the open tasks (of `steps` only, if given): they leave the inboxes."""
        for task in self._open_tasks():
            if steps is None or task.step_index in steps:
                task.status, task.paused_at = CANCELLED, None


def _rearm(flagged: ProcessRun | Task, due: datetime, cutoff: datetime) -> None:
    """A breach already announced is announced again if the moved due date, still ahead, passes too."""
    if flagged.overdue_at is not None and due >= cutoff:
        flagged.overdue_at = None
