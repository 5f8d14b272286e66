"""Workflow's RPC answers, times in the province's time zone (its inputs are motcua.contracts.rpc's)."""
from __future__ import annotations

from datetime import datetime, tzinfo

from marshmallow import fields

from motcua.calendar import local_iso, overdue_before
from motcua.contracts.views import ConditionViewV1, ProcessViewV1, StepViewV1, TaskViewV1
from services.workflow.process_run import ESCALATION_ROLE
from services.workflow.processes import Catalog


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
        return task.allowed_actions(self.catalog.process(task.procedure_code))

    def _transfer_to(self, task) -> list[str]:
        return list(self.catalog.process(task.procedure_code).steps[task.step_index].transfer_to)

    def _overdue(self, task) -> bool:
        return task.is_overdue(self.overdue_cutoff)

    def _escalated_to(self, task) -> str | None:
        return ESCALATION_ROLE if task.is_overdue(self.overdue_cutoff) else None


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
