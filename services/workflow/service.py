"""The workflow service: routes received dossiers through their process, step by step, agency by agency."""
from __future__ import annotations

from functools import partial

from nameko.dependency_providers import Config
from nameko.timer import timer

from motcua.access import audit_refusals
from motcua.bus import event_handler
from motcua.contracts.rpc import AssignTaskV1, CompleteTaskV1, TaskIdV1, TaskQueryV1, TransferTaskV1
from motcua.db import Database
from motcua.errors import load_valid
from motcua.idempotency import Command, ForgetExpiredKeys, account_scope, run_once, ttl_of
from motcua.logs import Tracing
from motcua.revocation import Revocations
from motcua.rpc import rpc
from services.workflow import handlers, queries
from services.workflow.dependencies import Clock, ProcessCatalog, WorkflowMetrics, sla_timer
from services.workflow.models import Base
from services.workflow.repository import WorkflowUnitOfWork
from services.workflow.schemas import ProcessOut, TaskViews

# Payload schemas, built once: they keep no state between loads, and building one costs more than a load.
ASSIGN_TASK = AssignTaskV1()
COMPLETE_TASK = CompleteTaskV1()
TASK_ID = TaskIdV1()
TASK_QUERY = TaskQueryV1()
TRANSFER_TASK = TransferTaskV1()

ON_DOSSIER_RECEIVED = "workflow.on_dossier_received"
ON_SUPPLEMENT_REQUESTED = "workflow.on_supplement_requested"
ON_DOSSIER_SUPPLEMENTED = "workflow.on_dossier_supplemented"
ON_DOSSIER_RESCHEDULED = "workflow.on_dossier_rescheduled"
ON_DOSSIER_WITHDRAWN = "workflow.on_dossier_withdrawn"
ON_PAYMENT_RECEIVED = "workflow.on_payment_received"
ON_DOSSIER_STOPPED = "workflow.on_dossier_stopped"
ON_CALENDAR_DECIDED = "workflow.on_calendar_decided"
CALENDAR_REFRESH_SECONDS = 5  # as intake's: a decision counts on every instance within this


class WorkflowService(Revocations):
    name = "workflow"

    db = Database(Base, unit_of_work=WorkflowUnitOfWork)
    expired_keys = ForgetExpiredKeys()
    metrics = WorkflowMetrics()
    tracing = Tracing()  # each call's trace id, in its log lines and passed on (motcua.logs)
    catalog = ProcessCatalog()
    clock = Clock()
    config = Config()

    @event_handler("intake", "dossier_received")
    def on_dossier_received(self, event):
        start = partial(handlers.start_process, catalog=self.catalog, now=self.clock())
        self.db.apply_once(event, ON_DOSSIER_RECEIVED, start)

    @event_handler("intake", "supplement_requested")
    def on_supplement_requested(self, event):
        pause = partial(handlers.pause_process, catalog=self.catalog, now=self.clock())
        self.db.apply_once(event, ON_SUPPLEMENT_REQUESTED, pause)

    @event_handler("intake", "dossier_supplemented")
    def on_dossier_supplemented(self, event):
        resume = partial(handlers.resume_process, catalog=self.catalog, now=self.clock())
        self.db.apply_once(event, ON_DOSSIER_SUPPLEMENTED, resume)

    @event_handler("intake", "dossier_rescheduled")
    def on_dossier_rescheduled(self, event):
        reschedule = partial(handlers.reschedule_process, catalog=self.catalog, now=self.clock())
        self.db.apply_once(event, ON_DOSSIER_RESCHEDULED, reschedule)

    @event_handler("intake", "dossier_withdrawn")
    def on_dossier_withdrawn(self, event):
        self.db.apply_once(event, ON_DOSSIER_WITHDRAWN, handlers.stop_process)

    @event_handler("intake", "dossier_stopped")
    def on_dossier_stopped(self, event):
        self.db.apply_once(event, ON_DOSSIER_STOPPED, handlers.stop_process)

    @event_handler("intake", "payment_received")
    def on_payment_received(self, event):
        resume = partial(handlers.resume_after_payment, catalog=self.catalog, now=self.clock())
        self.db.apply_once(event, ON_PAYMENT_RECEIVED, resume)

    @event_handler("intake", "calendar_decided")
    def on_calendar_decided(self, event):
        decide = partial(handlers.apply_calendar_decision, catalog=self.catalog, now=self.clock())
        self.db.apply_once(event, ON_CALENDAR_DECIDED, decide)

    @timer(interval=CALENDAR_REFRESH_SECONDS, eager=True)
    def refresh_calendar(self):
        """The decisions another instance applied (the inbox gives each event to one instance), and at
        start those recorded before it."""
        handlers.refresh_calendar(self.db, self.catalog)

    @sla_timer
    def check_deadlines(self):
        handlers.detect_overdue(self.db, self.catalog, self.clock())

    def _views(self) -> TaskViews:
        return TaskViews(self.catalog, self.clock())

    def _caller_and_task(self, caller_token, task_id):
        caller = self.verified_caller(caller_token)
        return caller, load_valid(TASK_ID, {"task_id": task_id})["task_id"]

    def _once(self, idempotency_key, name, caller, request, run):
        """A task command once per key (motcua.idempotency): the task's view, or the first one's."""
        command = Command.of(idempotency_key, f"workflow.{name}", account_scope(caller.username), request)
        return run_once(self.db, command, lambda: self._views().task(run()), self.clock(), ttl_of(self.config))

    @rpc
    @audit_refusals
    def complete_task(self, task_id, outcome, note, caller_token, details=None, idempotency_key=None):
        """`details`: `items` (request_supplement), `amount_vnd` (require_payment), `to_step` (send_back),
        `documents` (references intake stored)."""
        caller, task_id = self._caller_and_task(caller_token, task_id)
        args = load_valid(COMPLETE_TASK, {**(details or {}), "outcome": outcome, "note": note})
        return self._once(idempotency_key, "complete_task", caller, [task_id, outcome, note, details],
                          lambda: handlers.complete_task(self.db, self.catalog, task_id, args.pop("outcome"),
                                                         args.pop("note"), caller, self.clock(), details=args))

    @rpc
    @audit_refusals
    def claim_task(self, task_id, caller_token, idempotency_key=None):
        caller, task_id = self._caller_and_task(caller_token, task_id)
        return self._once(idempotency_key, "claim_task", caller, [task_id],
                          lambda: handlers.claim_task(self.db, task_id, caller))

    @rpc
    @audit_refusals
    def assign_task(self, task_id, assignee, caller_token, idempotency_key=None):
        caller, task_id = self._caller_and_task(caller_token, task_id)
        args = load_valid(ASSIGN_TASK, {"assignee": assignee})
        return self._once(idempotency_key, "assign_task", caller, [task_id, assignee],
                          lambda: handlers.assign_task(self.db, task_id, args["assignee"], caller))

    @rpc
    @audit_refusals
    def transfer_task(self, task_id, agency_code, note, caller_token, idempotency_key=None):
        caller, task_id = self._caller_and_task(caller_token, task_id)
        args = load_valid(TRANSFER_TASK, {"agency_code": agency_code, "note": note})
        return self._once(idempotency_key, "transfer_task", caller, [task_id, agency_code, note],
                          lambda: handlers.transfer_task(self.db, self.catalog, task_id, args["agency_code"],
                                                         args["note"], caller, self.clock()))

    @rpc
    @audit_refusals
    def list_tasks(self, caller_token, status="open", role=None, assignee=None):
        caller = self.verified_caller(caller_token)
        query = load_valid(TASK_QUERY, {"status": status, "role": role, "assignee": assignee})
        now = self.clock()
        tasks = queries.list_tasks(self.db.session, caller, query["status"], now, self.catalog.calendar.tz,
                                   self.catalog.tree, role=query["role"], assignee=query["assignee"])
        return TaskViews(self.catalog, now).tasks(tasks)

    @rpc
    @audit_refusals
    def get_task(self, task_id, caller_token):
        caller = self.verified_caller(caller_token)
        task, history = queries.task_with_history(self.db.session, task_id, caller, self.catalog.tree)
        views = self._views()
        return {**views.task(task), "history": views.hand_overs(history)}

    @rpc
    def get_process(self, procedure_code):
        return ProcessOut().dump(self.catalog.process(procedure_code))

    @rpc
    @audit_refusals
    def dossier_history(self, dossier_code, caller_token):
        """Every hand-over of the dossier (form 06), for staff of an agency involved in it."""
        caller = self.verified_caller(caller_token)
        history = queries.dossier_history(self.db.session, dossier_code, caller, self.catalog.tree)
        return self._views().hand_overs(history)

    @rpc
    def health(self):
        return self.db.health()
