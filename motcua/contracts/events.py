"""Event payloads (v1). Add fields freely; renaming or removing one needs a new version."""
from __future__ import annotations

from marshmallow import EXCLUDE, Schema, fields, validate

CHANNELS = ("online", "counter", "postal")
# Dossier statuses and their codes, as the National Public Service Portal (DVCQG) numbers them.
STATUS_CODES = {
    "submitted": 1, "received": 2, "refused": 3, "processing": 4, "supplement_requested": 5,
    "awaiting_payment": 6, "withdrawn": 7, "stopped": 8, "result_ready": 9, "returned": 10,
}
RETURN_METHODS = ("counter", "postal", "online")


class Contract(Schema):
    class Meta:
        unknown = EXCLUDE  # consumers accept newer producers that add fields


class Contact(Contract):
    """Applicant's contact, for notify only: never stored by reporting, never logged."""

    full_name = fields.Str(required=True)
    email = fields.Str(load_default=None, allow_none=True)
    phone = fields.Str(load_default=None, allow_none=True)


class DossierFacts(Contract):
    code = fields.Str(required=True)
    procedure_code = fields.Str(required=True)
    procedure_name = fields.Str(required=True)
    field_code = fields.Str(required=True)
    agency_code = fields.Str(required=True)
    channel = fields.Str(required=True, validate=validate.OneOf(CHANNELS))


class DossierSubmittedV1(DossierFacts):
    submitted_at = fields.AwareDateTime(required=True)
    applicant_masked = fields.Str(required=True)
    tracking_key = fields.Str(required=True)


class DossierReceivedV1(DossierFacts):
    received_at = fields.AwareDateTime(required=True)
    due_at = fields.AwareDateTime(required=True)
    received_by = fields.Str(required=True)
    form = fields.Dict(load_default=dict)
    contact = fields.Nested(Contact, required=True)


class DossierRefusedV1(DossierFacts):
    refused_at = fields.AwareDateTime(required=True)
    refused_by = fields.Str(required=True)
    reason = fields.Str(required=True)
    contact = fields.Nested(Contact, required=True)


class DossierProcessingStartedV1(Contract):
    code = fields.Str(required=True)
    started_at = fields.AwareDateTime(required=True)


class DossierResultReadyV1(Contract):
    code = fields.Str(required=True)
    procedure_name = fields.Str(required=True)
    agency_code = fields.Str(required=True)
    finished_at = fields.AwareDateTime(required=True)
    due_at = fields.AwareDateTime(required=True)
    contact = fields.Nested(Contact, required=True)


class ResultReturnedV1(Contract):
    code = fields.Str(required=True)
    returned_at = fields.AwareDateTime(required=True)
    method = fields.Str(required=True, validate=validate.OneOf(RETURN_METHODS))
    returned_by = fields.Str(required=True)
    contact = fields.Nested(Contact, load_default=None, allow_none=True)


class SupplementRequestedV1(Contract):
    """Yêu cầu bổ sung (form 02): every missing item listed at once; the clock stops (status 5)."""

    code = fields.Str(required=True)
    agency_code = fields.Str(required=True)
    requested_at = fields.AwareDateTime(required=True)
    requested_by = fields.Str(required=True)
    items = fields.List(fields.Str(), required=True, validate=validate.Length(min=1))
    note = fields.Str(load_default="", allow_none=True)
    contact = fields.Nested(Contact, required=True)


class DossierSupplementedV1(Contract):
    """The applicant supplied what was asked: the clock resumes with a new due date."""

    code = fields.Str(required=True)
    supplemented_at = fields.AwareDateTime(required=True)
    status = fields.Str(required=True)  # the status the dossier resumes: received or processing
    due_at = fields.AwareDateTime(allow_none=True, load_default=None)


class DossierWithdrawnV1(Contract):
    """Rút hồ sơ on the applicant's request (status 7)."""

    code = fields.Str(required=True)
    withdrawn_at = fields.AwareDateTime(required=True)
    withdrawn_by = fields.Str(required=True)
    reason = fields.Str(load_default="", allow_none=True)


class DossierRescheduledV1(Contract):
    """Phiếu xin lỗi và hẹn lại ngày trả kết quả (form 04): a new appointment, issued before the old one
    passes, with the reason; the dossier's due date moves."""

    code = fields.Str(required=True)
    agency_code = fields.Str(required=True)
    rescheduled_at = fields.AwareDateTime(required=True)
    rescheduled_by = fields.Str(required=True)
    old_due_at = fields.AwareDateTime(required=True)
    new_due_at = fields.AwareDateTime(required=True)
    reason = fields.Str(required=True)
    contact = fields.Nested(Contact, required=True)


class TaskFacts(Contract):
    task_id = fields.Str(required=True)
    dossier_code = fields.Str(required=True)
    procedure_code = fields.Str(load_default=None, allow_none=True)  # lets agencies' workers pick their tasks
    agency_code = fields.Str(required=True)
    step = fields.Str(required=True)
    step_index = fields.Int(required=True)


class TaskAssignedV1(TaskFacts):
    assigned_at = fields.AwareDateTime(required=True)
    due_at = fields.AwareDateTime(required=True)
    role = fields.Str(required=True)
    form = fields.Dict(load_default=None, allow_none=True)  # only on an agency system's task queue


class TaskCompletedV1(TaskFacts):
    completed_at = fields.AwareDateTime(required=True)
    completed_by = fields.Str(required=True)
    outcome = fields.Str(required=True)
    note = fields.Str(load_default="", allow_none=True)
    timeliness = fields.Str(required=True, validate=validate.OneOf(("early", "on_time", "late")))


class TaskOverdueV1(TaskFacts):
    """A step passed its own due time while still open: escalated to the agency's leader role."""

    due_at = fields.AwareDateTime(required=True)
    detected_at = fields.AwareDateTime(required=True)
    escalated_to_role = fields.Str(required=True)


class DossierOverdueV1(Contract):
    """A dossier passed its due date (the citizen's appointment) before its result was ready."""

    dossier_code = fields.Str(required=True)
    agency_code = fields.Str(required=True)  # the receiving agency, which owes the apology (form 04)
    current_agency_code = fields.Str(load_default=None, allow_none=True)
    due_at = fields.AwareDateTime(required=True)
    detected_at = fields.AwareDateTime(required=True)


class ResultReadyV1(Contract):
    dossier_code = fields.Str(required=True)
    agency_code = fields.Str(required=True)
    finished_at = fields.AwareDateTime(required=True)


EVENT_SCHEMAS: dict[str, tuple[int, Schema]] = {
    "dossier_submitted": (1, DossierSubmittedV1()),
    "dossier_received": (1, DossierReceivedV1()),
    "dossier_refused": (1, DossierRefusedV1()),
    "dossier_processing_started": (1, DossierProcessingStartedV1()),
    "dossier_result_ready": (1, DossierResultReadyV1()),
    "result_returned": (1, ResultReturnedV1()),
    "supplement_requested": (1, SupplementRequestedV1()),
    "dossier_supplemented": (1, DossierSupplementedV1()),
    "dossier_withdrawn": (1, DossierWithdrawnV1()),
    "task_assigned": (1, TaskAssignedV1()),
    "task_completed": (1, TaskCompletedV1()),
    "task_overdue": (1, TaskOverdueV1()),
    "dossier_overdue": (1, DossierOverdueV1()),
    "dossier_rescheduled": (1, DossierRescheduledV1()),
    "result_ready": (1, ResultReadyV1()),
}


def schema_for(event_type: str) -> tuple[int, Schema]:
    try:
        return EVENT_SCHEMAS[event_type]
    except KeyError:
        raise ValueError(f"unknown event type {event_type!r}") from None
