"""The workflow service: routes received dossiers through their process, step by step, agency by agency."""
from __future__ import annotations

from functools import partial

from nameko.dependency_providers import Config
from nameko.rpc import rpc

from motcua.bus import event_handler
from motcua.db import Database
from motcua.errors import load_valid
from motcua.identity import verify_token
from services.workflow import domain
from services.workflow.dependencies import Clock, ProcessCatalog, WorkflowMetrics, sla_timer
from services.workflow.models import Base
from services.workflow.schemas import HAND_OVER_FIELDS, CompleteTaskInput, ProcessOut, TaskOut, TaskQuery

ON_DOSSIER_RECEIVED = "workflow.on_dossier_received"
ON_SUPPLEMENT_REQUESTED = "workflow.on_supplement_requested"
ON_DOSSIER_SUPPLEMENTED = "workflow.on_dossier_supplemented"
ON_DOSSIER_RESCHEDULED = "workflow.on_dossier_rescheduled"
ON_DOSSIER_WITHDRAWN = "workflow.on_dossier_withdrawn"


class WorkflowService:
    name = "workflow"

    db = Database(Base)
    metrics = WorkflowMetrics()
    catalog = ProcessCatalog()
    clock = Clock()
    config = Config()

    @event_handler("intake", "dossier_received")
    def on_dossier_received(self, event):
        start = partial(domain.start_process, catalog=self.catalog, now=self.clock())
        self.db.apply_once(event, ON_DOSSIER_RECEIVED, start)

    @event_handler("intake", "supplement_requested")
    def on_supplement_requested(self, event):
        self.db.apply_once(event, ON_SUPPLEMENT_REQUESTED, domain.pause_process)

    @event_handler("intake", "dossier_supplemented")
    def on_dossier_supplemented(self, event):
        resume = partial(domain.resume_process, calendar=self.catalog.calendar, now=self.clock())
        self.db.apply_once(event, ON_DOSSIER_SUPPLEMENTED, resume)

    @event_handler("intake", "dossier_rescheduled")
    def on_dossier_rescheduled(self, event):
        reschedule = partial(domain.reschedule_process, tz=self.catalog.calendar.tz, now=self.clock())
        self.db.apply_once(event, ON_DOSSIER_RESCHEDULED, reschedule)

    @event_handler("intake", "dossier_withdrawn")
    def on_dossier_withdrawn(self, event):
        self.db.apply_once(event, ON_DOSSIER_WITHDRAWN, domain.stop_process)

    @sla_timer
    def check_deadlines(self):
        domain.detect_overdue(self.db, self.clock(), self.catalog.calendar.tz)

    @rpc
    def complete_task(self, task_id, outcome, note, caller_token):
        caller = verify_token(caller_token, self.config["SECRET"])
        args = load_valid(CompleteTaskInput(), {"task_id": task_id, "outcome": outcome, "note": note})
        now = self.clock()
        task = domain.complete_task(self.db, self.catalog, args["task_id"], args["outcome"], args["note"],
                                    caller, now)
        return TaskOut(self.catalog.calendar.tz, now).dump(task)

    @rpc
    def list_tasks(self, caller_token, status="open"):
        caller = verify_token(caller_token, self.config["SECRET"])
        query = load_valid(TaskQuery(), {"status": status})
        now, tz = self.clock(), self.catalog.calendar.tz
        tasks = domain.list_tasks(self.db.session, caller, query["status"], now, tz)
        return TaskOut(tz, now, many=True).dump(tasks)

    @rpc
    def get_task(self, task_id, caller_token):
        caller = verify_token(caller_token, self.config["SECRET"])
        task, history = domain.get_task(self.db.session, task_id, caller)
        tz, now = self.catalog.calendar.tz, self.clock()
        return {**TaskOut(tz, now).dump(task),
                "history": TaskOut(tz, now, many=True, only=HAND_OVER_FIELDS).dump(history)}

    @rpc
    def get_process(self, procedure_code):
        return ProcessOut().dump(self.catalog.process(procedure_code))

    @rpc
    def dossier_history(self, dossier_code):
        history = domain.dossier_history(self.db.session, dossier_code)
        return TaskOut(self.catalog.calendar.tz, self.clock(), many=True, only=HAND_OVER_FIELDS).dump(history)

    @rpc
    def health(self):
        return self.db.health()
