"""The workflow service: routes received dossiers through their process, step by step, agency by agency."""
from __future__ import annotations

from functools import partial

from nameko.dependency_providers import Config
from nameko.rpc import rpc

from motcua.access import audit_refusals
from motcua.bus import event_handler
from motcua.db import Database
from motcua.errors import load_valid
from motcua.identity import verify_token
from services.workflow import domain
from services.workflow.dependencies import Clock, ProcessCatalog, WorkflowMetrics, sla_timer
from services.workflow.models import Base
from services.workflow.schemas import (
    HAND_OVER_FIELDS,
    AssignTaskInput,
    ClaimTaskInput,
    CompleteTaskInput,
    ProcessOut,
    TaskOut,
    TaskQuery,
    TransferTaskInput,
)

ON_DOSSIER_RECEIVED = "workflow.on_dossier_received"
ON_SUPPLEMENT_REQUESTED = "workflow.on_supplement_requested"
ON_DOSSIER_SUPPLEMENTED = "workflow.on_dossier_supplemented"
ON_DOSSIER_RESCHEDULED = "workflow.on_dossier_rescheduled"
ON_DOSSIER_WITHDRAWN = "workflow.on_dossier_withdrawn"
ON_PAYMENT_RECEIVED = "workflow.on_payment_received"
ON_DOSSIER_STOPPED = "workflow.on_dossier_stopped"


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

    @event_handler("intake", "dossier_stopped")
    def on_dossier_stopped(self, event):
        self.db.apply_once(event, ON_DOSSIER_STOPPED, domain.stop_process)

    @event_handler("intake", "payment_received")
    def on_payment_received(self, event):
        resume = partial(domain.resume_after_payment, catalog=self.catalog, now=self.clock())
        self.db.apply_once(event, ON_PAYMENT_RECEIVED, resume)

    @sla_timer
    def check_deadlines(self):
        domain.detect_overdue(self.db, self.catalog, self.clock())

    def _out(self, **kwargs) -> TaskOut:
        return TaskOut(self.catalog.calendar.tz, self.clock(), self.catalog, **kwargs)

    @rpc
    @audit_refusals
    def complete_task(self, task_id, outcome, note, caller_token, details=None):
        """`details`: `items` (request_supplement), `amount_vnd` (require_payment), `to_step` (send_back)."""
        caller = verify_token(caller_token, self.config["SECRET"])
        args = load_valid(CompleteTaskInput(), {**(details or {}), "task_id": task_id, "outcome": outcome,
                                                "note": note})
        task = domain.complete_task(self.db, self.catalog, args.pop("task_id"), args.pop("outcome"),
                                    args.pop("note"), caller, self.clock(), details=args)
        return self._out().dump(task)

    @rpc
    @audit_refusals
    def claim_task(self, task_id, caller_token):
        caller = verify_token(caller_token, self.config["SECRET"])
        args = load_valid(ClaimTaskInput(), {"task_id": task_id})
        return self._out().dump(domain.claim_task(self.db, args["task_id"], caller))

    @rpc
    @audit_refusals
    def assign_task(self, task_id, assignee, caller_token):
        caller = verify_token(caller_token, self.config["SECRET"])
        args = load_valid(AssignTaskInput(), {"task_id": task_id, "assignee": assignee})
        return self._out().dump(domain.assign_task(self.db, args["task_id"], args["assignee"], caller))

    @rpc
    @audit_refusals
    def transfer_task(self, task_id, agency_code, note, caller_token):
        caller = verify_token(caller_token, self.config["SECRET"])
        args = load_valid(TransferTaskInput(), {"task_id": task_id, "agency_code": agency_code, "note": note})
        task = domain.transfer_task(self.db, self.catalog, args["task_id"], args["agency_code"], args["note"],
                                    caller, self.clock())
        return self._out().dump(task)

    @rpc
    @audit_refusals
    def list_tasks(self, caller_token, status="open", role=None, assignee=None):
        caller = verify_token(caller_token, self.config["SECRET"])
        query = load_valid(TaskQuery(), {"status": status, "role": role, "assignee": assignee})
        tasks = domain.list_tasks(self.db.session, caller, query["status"], self.clock(),
                                  self.catalog.calendar.tz, self.catalog.tree, role=query["role"],
                                  assignee=query["assignee"])
        return self._out(many=True).dump(tasks)

    @rpc
    @audit_refusals
    def get_task(self, task_id, caller_token):
        caller = verify_token(caller_token, self.config["SECRET"])
        task, history = domain.get_task(self.db.session, task_id, caller, self.catalog.tree)
        return {**self._out().dump(task), "history": self._out(many=True, only=HAND_OVER_FIELDS).dump(history)}

    @rpc
    def get_process(self, procedure_code):
        return ProcessOut().dump(self.catalog.process(procedure_code))

    @rpc
    def dossier_history(self, dossier_code):
        history = domain.dossier_history(self.db.session, dossier_code)
        return self._out(many=True, only=HAND_OVER_FIELDS).dump(history)

    @rpc
    def health(self):
        return self.db.health()
