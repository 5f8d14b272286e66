"""Workflow's RPC boundary: inputs checked here, outputs with times in the province's time zone."""
from __future__ import annotations

from datetime import datetime, tzinfo

from marshmallow import Schema, ValidationError, fields, validate, validates_schema

from motcua.calendar import local_iso, overdue_before
from motcua.contracts.events import DocumentRef
from motcua.contracts.views import ConditionViewV1, ProcessViewV1, StepViewV1, TaskViewV1
from motcua.identity import STAFF_ROLES
from services.workflow.domain import ESCALATION_ROLE, STATUS_FILTERS, allowed_actions, is_overdue
from services.workflow.processes import ACTIONS, Catalog

OUTCOMES = tuple(a for a in ACTIONS if a != "transfer")  # transfer has its own call: it names an agency
NEEDS_NOTE = ("refuse", "stop", "send_back")  # the reason goes to the applicant or the earlier step


class CompleteTaskInput(Schema):
    task_id = fields.Str(required=True, validate=validate.Length(min=1, max=36))
    outcome = fields.Str(required=True, validate=validate.OneOf(
        OUTCOMES, error="must be one of: {choices}"))
    note = fields.Str(load_default="", allow_none=True, validate=validate.Length(max=2000))
    # request_supplement: every missing item, listed at once (form 02)
    items = fields.List(fields.Str(validate=validate.Length(min=1, max=500)), load_default=None,
                        validate=validate.Length(min=1, max=50))
    # require_payment: the amount fixed (VND)
    amount_vnd = fields.Int(load_default=None, strict=True, validate=validate.Range(min=0, max=10**13))
    # send_back: the step to go back to (its index in the process); default the previous one
    to_step = fields.Int(load_default=None, strict=True, validate=validate.Range(min=0))
    # the step's documents, stored by intake first (store_step_documents)
    documents = fields.List(fields.Nested(DocumentRef), load_default=None, validate=validate.Length(max=10))

    @validates_schema
    def _what_the_outcome_needs(self, data, **_):
        outcome = data.get("outcome")
        if outcome == "request_supplement" and not data.get("items"):
            raise ValidationError("list every missing item", "items")
        if outcome == "require_payment" and data.get("amount_vnd") is None:
            raise ValidationError("the amount to pay is required", "amount_vnd")
        if outcome in NEEDS_NOTE and not (data.get("note") or "").strip():
            raise ValidationError(f"a {outcome} needs its reason", "note")


class ClaimTaskInput(Schema):
    task_id = fields.Str(required=True, validate=validate.Length(min=1, max=36))


class AssignTaskInput(ClaimTaskInput):
    assignee = fields.Str(required=True, allow_none=True, validate=validate.Length(min=1, max=120))


class TransferTaskInput(ClaimTaskInput):
    agency_code = fields.Str(required=True, validate=validate.Length(min=1, max=20))
    note = fields.Str(load_default="", allow_none=True, validate=validate.Length(max=2000))


class TaskQuery(Schema):
    status = fields.Str(load_default="open", validate=validate.OneOf(
        STATUS_FILTERS, error="must be one of: {choices}"))
    role = fields.Str(load_default=None, validate=validate.OneOf(STAFF_ROLES, error="must be one of: {choices}"))
    assignee = fields.Str(load_default=None, validate=validate.Length(min=1, max=120))


class _LocalDateTime(fields.Field):
    """An aware datetime as ISO 8601 with the offset of the schema's time zone."""

    def _serialize(self, value, attr, obj, **kwargs):
        return local_iso(value, self.root.tz)


class TaskOut(TaskViewV1):
    """A task, times in `tz` (the province's); `overdue` and `escalated_to` as of `now`."""

    assigned_at = _LocalDateTime()
    due_at = _LocalDateTime()
    completed_at = _LocalDateTime()
    overdue = fields.Method("_overdue")
    escalated_to = fields.Method("_escalated_to")
    actions = fields.Method("_actions")
    transfer_to = fields.Method("_transfer_to")

    def __init__(self, tz: tzinfo, now: datetime, catalog: Catalog, **kwargs):
        super().__init__(**kwargs)
        self.tz = tz
        self.overdue_cutoff = overdue_before(now, tz)
        self.catalog = catalog

    def _actions(self, task) -> list[str]:
        return allowed_actions(task, self.catalog.process(task.procedure_code))

    def _transfer_to(self, task) -> list[str]:
        return list(self.catalog.process(task.procedure_code).steps[task.step_index].transfer_to)

    def _overdue(self, task) -> bool:
        return is_overdue(task, self.overdue_cutoff)

    def _escalated_to(self, task) -> str | None:
        return ESCALATION_ROLE if is_overdue(task, self.overdue_cutoff) else None


# One hand-over of a dossier: a line of the process control sheet (phiếu kiểm soát quá trình).
HAND_OVER_FIELDS = ("id", "step", "step_index", "agency_code", "from_agency_code", "role", "status",
                    "assigned_at", "due_at", "completed_at", "completed_by", "outcome", "note", "timeliness",
                    "documents")


class _StepOut(StepViewV1):
    index = fields.Method("_index")
    agency = fields.Method("_agency")
    allowance = fields.Method("_allowance")

    def _index(self, step):
        return self.context_steps.index(step)

    def _agency(self, step):
        rule = step.agency
        return {"code": rule.code} if rule.code else {"under": rule.under, "serving": rule.serving}

    def _allowance(self, step):
        days = step.allowance
        return {"value": int(days) if days == days.to_integral_value() else float(days), "unit": "working_days"}


class ProcessOut(ProcessViewV1):
    steps = fields.Method("_steps")
    stages = fields.Method("_stages")

    def _steps(self, process):
        schema = _StepOut(many=True)
        schema.context_steps = list(process.steps)
        return schema.dump(process.steps)

    def _stages(self, process):
        return [[{"steps": list(b.steps), "when": ConditionViewV1().dump(b.when) if b.when else None}
                 for b in stage] for stage in process.stages]
