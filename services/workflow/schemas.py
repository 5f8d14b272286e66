"""Workflow's RPC boundary: inputs checked here, outputs with times in the province's time zone."""
from __future__ import annotations

from datetime import datetime, tzinfo

from marshmallow import Schema, fields, validate

from motcua.calendar import local_iso, overdue_before
from services.workflow.domain import ESCALATION_ROLE, STATUS_FILTERS, is_overdue

OUTCOMES = ("approve",)  # send back, supplement and refusal come with later issues


class CompleteTaskInput(Schema):
    task_id = fields.Str(required=True, validate=validate.Length(min=1, max=36))
    outcome = fields.Str(required=True, validate=validate.OneOf(
        OUTCOMES, error="must be one of: {choices}"))
    note = fields.Str(load_default="", allow_none=True, validate=validate.Length(max=2000))


class TaskQuery(Schema):
    status = fields.Str(load_default="open", validate=validate.OneOf(
        STATUS_FILTERS, error="must be one of: {choices}"))


class _LocalDateTime(fields.Field):
    """An aware datetime as ISO 8601 with the offset of the schema's time zone."""

    def _serialize(self, value, attr, obj, **kwargs):
        return local_iso(value, self.root.tz)


class TaskOut(Schema):
    """A task, times in `tz` (the province's); `overdue` and `escalated_to` as of `now`."""

    id = fields.Str()
    dossier_code = fields.Str()
    procedure_code = fields.Str()
    agency_code = fields.Str()
    step = fields.Str()
    step_index = fields.Int()
    role = fields.Str()
    status = fields.Str()
    assigned_at = _LocalDateTime()
    due_at = _LocalDateTime()
    completed_at = _LocalDateTime()
    completed_by = fields.Str()
    outcome = fields.Str()
    note = fields.Str()
    timeliness = fields.Str()
    overdue = fields.Method("_overdue")
    escalated_to = fields.Method("_escalated_to")  # the role an overdue step is escalated to

    def __init__(self, tz: tzinfo, now: datetime, **kwargs):
        super().__init__(**kwargs)
        self.tz = tz
        self.overdue_cutoff = overdue_before(now, tz)

    def _overdue(self, task) -> bool:
        return is_overdue(task, self.overdue_cutoff)

    def _escalated_to(self, task) -> str | None:
        return ESCALATION_ROLE if is_overdue(task, self.overdue_cutoff) else None


# One hand-over of a dossier: a line of the process control sheet (phiếu kiểm soát quá trình).
HAND_OVER_FIELDS = ("id", "step", "step_index", "agency_code", "role", "status", "assigned_at", "due_at",
                    "completed_at", "completed_by", "timeliness")


class _StepOut(Schema):
    name = fields.Str()
    agency_code = fields.Str()
    role = fields.Str()
    allowance = fields.Method("_allowance")

    def _allowance(self, step):
        days = step.allowance
        return {"value": int(days) if days == days.to_integral_value() else float(days), "unit": "working_days"}


class ProcessOut(Schema):
    procedure_code = fields.Str()
    steps = fields.List(fields.Nested(_StepOut))
