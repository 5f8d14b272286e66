"""Workflow's RPC answers, times in the province's time zone (its inputs are motcua.contracts.rpc's)."""
from __future__ import annotations

from datetime import datetime

from marshmallow import fields

from motcua.calendar import local_iso, overdue_before
from motcua.contracts.views import ConditionViewV1, ProcessViewV1, StepViewV1
from services.workflow.process_run import ESCALATION_ROLE, Task
from services.workflow.processes import Processes


class TaskViews:
    """Tasks as `TaskViewV1` answers them, built directly (a test holds them equal to the contract's dump):
    times in the province's time zone, `overdue` and `escalated_to` as of `now`, the actions open now and
    the agencies a transfer may go to, both from the task's process."""

    def __init__(self, catalog: Processes, now: datetime):
        self.catalog = catalog
        self.tz = catalog.calendar.tz
        self.overdue_cutoff = overdue_before(now, self.tz)

    def task(self, task: Task) -> dict:
        process = self.catalog.process(task.procedure_code)
        overdue = task.is_overdue(self.overdue_cutoff)
        return {**self.hand_over(task), "dossier_code": task.dossier_code, "procedure_code": task.procedure_code,
                "assignee": task.assignee, "overdue": overdue, "escalated_to": ESCALATION_ROLE if overdue else None,
                "actions": task.allowed_actions(process),
                "transfer_to": list(process.steps[task.step_index].transfer_to)}

    def tasks(self, tasks: list[Task]) -> list[dict]:
        return [self.task(task) for task in tasks]

    def hand_over(self, task: Task) -> dict:
        """One hand-over of a dossier: a line of the process control sheet (phiếu kiểm soát quá trình)."""
        tz = self.tz
        return {"id": task.id, "step": task.step, "step_index": task.step_index, "agency_code": task.agency_code,
                "from_agency_code": task.from_agency_code, "role": task.role, "status": task.status,
                "assigned_at": local_iso(task.assigned_at, tz), "due_at": local_iso(task.due_at, tz),
                "completed_at": local_iso(task.completed_at, tz), "completed_by": task.completed_by,
                "outcome": task.outcome, "note": task.note, "timeliness": task.timeliness,
                "documents": task.documents}

    def hand_overs(self, tasks: list[Task]) -> list[dict]:
        return [self.hand_over(task) for task in tasks]


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
