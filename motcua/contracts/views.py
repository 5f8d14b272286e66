"""What services answer over RPC (v1), as the gateway documents it (OpenAPI) and clients read it.

Each owning service dumps through its own subclass, which computes what needs its domain (a task's
actions, a delivery's masked recipient); the fields and their names are fixed here.
"""
from __future__ import annotations

from marshmallow import Schema, fields

# Notification channels toward a citizen (the order preferences list them in).
NOTIFY_CHANNELS = ("email", "sms")


class TaskViewV1(Schema):
    """A task (công việc) of a dossier's step; times in the province's time zone."""

    id = fields.Str()
    dossier_code = fields.Str()
    procedure_code = fields.Str()
    agency_code = fields.Str()
    step = fields.Str()
    step_index = fields.Int()
    role = fields.Str()
    status = fields.Str()
    assigned_at = fields.Str()
    due_at = fields.Str()
    completed_at = fields.Str(allow_none=True)
    completed_by = fields.Str(allow_none=True)
    outcome = fields.Str(allow_none=True)
    note = fields.Str(allow_none=True)
    timeliness = fields.Str(allow_none=True)
    assignee = fields.Str(allow_none=True)
    from_agency_code = fields.Str(allow_none=True)
    documents = fields.List(fields.Dict(), allow_none=True)
    overdue = fields.Bool()
    escalated_to = fields.Str(allow_none=True)  # the role an overdue step is escalated to
    actions = fields.List(fields.Str())  # what may be done with it now (the step's actions, claim)
    transfer_to = fields.List(fields.Str())  # the agencies a transfer may go to


class ConditionViewV1(Schema):
    field = fields.Str()
    equals = fields.Raw()
    not_equals = fields.Raw()
    one_of = fields.List(fields.Raw())


class StepViewV1(Schema):
    index = fields.Int()
    name = fields.Str()
    agency_code = fields.Str(allow_none=True)  # null when the agency depends on the dossier (see `agency`)
    agency = fields.Dict()  # {"code"} or {"under", "serving"}
    role = fields.Str()
    allowance = fields.Dict()  # {"value", "unit": "working_days"}
    handled_by = fields.Str()
    actions = fields.List(fields.Str())
    transfer_to = fields.List(fields.Str())
    when = fields.Nested(ConditionViewV1, allow_none=True)
    stage = fields.Int()
    branch = fields.Int()


class ProcessViewV1(Schema):
    """A process (quy trình): `steps` flat in order (each with its stage and branch), `stages` the shape:
    each stage a list of branches, each branch `{"steps": [indices], "when"}` (parallel when several)."""

    procedure_code = fields.Str()
    steps = fields.List(fields.Nested(StepViewV1))
    stages = fields.List(fields.List(fields.Dict()))


class PreferenceViewV1(Schema):
    enabled = fields.Bool()
    legal_basis = fields.Str()
    recorded_at = fields.AwareDateTime(allow_none=True)
    source = fields.Str(allow_none=True)


class DeliveryViewV1(Schema):
    """A delivery as officers see it: the recipient only masked, never its hash, address or content."""

    id = fields.Int()
    event_id = fields.Str()
    event_type = fields.Str()
    dossier_code = fields.Str()
    agency_code = fields.Str(allow_none=True)
    channel = fields.Str()
    provider = fields.Str(allow_none=True)
    recipient = fields.Str()
    status = fields.Str()
    reason = fields.Str(allow_none=True)
    attempts = fields.Int()
    resends = fields.Int()
    segments = fields.Int(allow_none=True)
    dead_letter = fields.Bool()
    next_attempt_at = fields.AwareDateTime(allow_none=True)
    created_at = fields.AwareDateTime()
    updated_at = fields.AwareDateTime()
    delivered_at = fields.AwareDateTime(allow_none=True)
