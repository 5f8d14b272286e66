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
POSTAL_KINDS = ("pickup", "delivery")  # the dossier picked up at the applicant's, the result delivered there
SHIPMENT_STATUSES = ("ordered", "picked_up", "in_transit", "delivered", "failed", "returned", "cancelled")


class Contract(Schema):
    class Meta:
        unknown = EXCLUDE  # consumers accept newer producers that add fields


class Contact(Contract):
    """Applicant's contact, for notify only: never stored by reporting, never logged."""

    full_name = fields.Str(required=True)
    email = fields.Str(load_default=None, allow_none=True)
    phone = fields.Str(load_default=None, allow_none=True)


class DossierEvent(Contract):
    """Every event intake publishes about a dossier carries the dossier's state once the event took place:
    intake owns it (one owner per state), consumers apply it in `dossier_version` order and never
    re-derive it. `dossier_version` is the dossier's sequence number: 1 for `dossier_submitted`, one more
    for each later event about the dossier. `due_at` is the appointment in force after the event (none
    before reception). Loaded as None from events stored before these fields existed."""

    code = fields.Str(required=True)
    status = fields.Str(load_default=None, allow_none=True, validate=validate.OneOf(STATUS_CODES))
    status_code = fields.Int(load_default=None, allow_none=True)
    dossier_version = fields.Int(load_default=None, allow_none=True, validate=validate.Range(min=1))
    due_at = fields.AwareDateTime(load_default=None, allow_none=True)
    # True on the events `motcua history import` made of a dossier of the old system (docs/history-format.md):
    # facts of the past, stamped with their own times; projections apply them, nobody acts on them
    # (workflow starts no process, notify messages nobody).
    imported = fields.Bool(load_default=False)


class DossierFacts(DossierEvent):
    procedure_code = fields.Str(required=True)
    procedure_name = fields.Str(required=True)
    field_code = fields.Str(required=True)
    agency_code = fields.Str(required=True)
    channel = fields.Str(required=True, validate=validate.OneOf(CHANNELS))


class DossierSubmittedV1(DossierFacts):
    submitted_at = fields.AwareDateTime(required=True)
    applicant_masked = fields.Str(required=True)
    tracking_key = fields.Str(required=True)
    # Online submissions only (the counter hands its applicant the receipt): the code by SMS/e-mail at
    # once. Absent from events stored before it existed.
    contact = fields.Nested(Contact, load_default=None, allow_none=True)


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


class DossierProcessingStartedV1(DossierEvent):
    started_at = fields.AwareDateTime(required=True)


class DossierResultReadyV1(DossierEvent):
    procedure_name = fields.Str(required=True)
    agency_code = fields.Str(required=True)
    finished_at = fields.AwareDateTime(required=True)
    due_at = fields.AwareDateTime(required=True)
    contact = fields.Nested(Contact, required=True)


class ResultReturnedV1(DossierEvent):
    returned_at = fields.AwareDateTime(required=True)
    method = fields.Str(required=True, validate=validate.OneOf(RETURN_METHODS))
    returned_by = fields.Str(required=True)
    contact = fields.Nested(Contact, load_default=None, allow_none=True)


class SupplementRequestedV1(DossierEvent):
    """Yêu cầu bổ sung (form 02): every missing item listed at once; the clock stops (status 5)."""

    agency_code = fields.Str(required=True)
    requested_at = fields.AwareDateTime(required=True)
    requested_by = fields.Str(required=True)
    items = fields.List(fields.Str(), required=True, validate=validate.Length(min=1))
    note = fields.Str(load_default="", allow_none=True)
    contact = fields.Nested(Contact, required=True)


class DossierSupplementedV1(DossierEvent):
    """The applicant supplied what was asked: the clock resumes with a new due date."""

    supplemented_at = fields.AwareDateTime(required=True)
    status = fields.Str(required=True)  # the status the dossier resumes: received or processing


class DossierWithdrawnV1(DossierEvent):
    """Rút hồ sơ on the applicant's request (status 7)."""

    withdrawn_at = fields.AwareDateTime(required=True)
    withdrawn_by = fields.Str(required=True)
    reason = fields.Str(load_default="", allow_none=True)


class DossierRescheduledV1(DossierEvent):
    """Phiếu xin lỗi và hẹn lại ngày trả kết quả (form 04): a new appointment, issued before the old one
    passes, with the reason; the dossier's due date moves."""

    agency_code = fields.Str(required=True)
    rescheduled_at = fields.AwareDateTime(required=True)
    rescheduled_by = fields.Str(required=True)
    old_due_at = fields.AwareDateTime(required=True)
    new_due_at = fields.AwareDateTime(required=True)
    reason = fields.Str(required=True)
    contact = fields.Nested(Contact, required=True)


class DossierRatedV1(DossierEvent):
    """The applicant's satisfaction (1-5) with a returned dossier, once; the comment stays in intake."""

    agency_code = fields.Str(required=True)
    procedure_code = fields.Str(required=True)
    field_code = fields.Str(required=True)
    rating = fields.Int(required=True, validate=validate.Range(min=1, max=5))
    rated_at = fields.AwareDateTime(required=True)


class PostalShipmentUpdatedV1(DossierEvent):
    """The public postal service's news of a dossier's shipment (bưu chính công ích): the pickup of the
    dossier or the delivery of its result; intake records it in the history (a result delivered by post
    is then returned: `result_returned`, method postal). No address travels here."""

    kind = fields.Str(required=True, validate=validate.OneOf(POSTAL_KINDS))
    shipment_status = fields.Str(required=True, validate=validate.OneOf(SHIPMENT_STATUSES))
    item_code = fields.Str(load_default=None, allow_none=True)  # the postal item's number (số hiệu bưu gửi)
    carrier_status = fields.Str(required=True)
    updated_at = fields.AwareDateTime(required=True)


class RunEvent(Contract):
    """Every event workflow publishes about a dossier's process run (quy trình) carries `run_version`: the
    run's sequence number, 1 for its first event, one more for each later one, so a consumer keeps the
    newest state of the run (e.g. where the dossier is now) whatever order the bus delivers in.
    Loaded as None from events stored before the field existed."""

    dossier_code = fields.Str(required=True)
    run_version = fields.Int(load_default=None, allow_none=True, validate=validate.Range(min=1))


class TaskFacts(RunEvent):
    task_id = fields.Str(required=True)
    procedure_code = fields.Str(load_default=None, allow_none=True)  # lets agencies' workers pick their tasks
    agency_code = fields.Str(required=True)
    step = fields.Str(required=True)
    step_index = fields.Int(required=True)


class TaskAssignedV1(TaskFacts):
    assigned_at = fields.AwareDateTime(required=True)
    due_at = fields.AwareDateTime(required=True)
    role = fields.Str(required=True)
    form = fields.Dict(load_default=None, allow_none=True)  # only on an agency system's task queue


class DocumentRef(Contract):
    """A document kept in intake's blob store, by its SHA-256 (the bytes never travel on the bus)."""

    key = fields.Str(required=True)
    filename = fields.Str(required=True)
    content_type = fields.Str(required=True)
    size = fields.Int(required=True)
    sha256 = fields.Str(required=True, validate=validate.Regexp(r"^[0-9a-f]{64}$"))


class TaskCompletedV1(TaskFacts):
    completed_at = fields.AwareDateTime(required=True)
    completed_by = fields.Str(required=True)
    outcome = fields.Str(required=True)
    note = fields.Str(load_default="", allow_none=True)
    timeliness = fields.Str(required=True, validate=validate.OneOf(("early", "on_time", "late")))
    documents = fields.List(fields.Nested(DocumentRef), load_default=list)


class TaskRescheduledV1(TaskFacts):
    """An open step's deadline moved later by an official calendar decision (a day made a holiday within
    its span: the working time it had left counted again), never earlier nor past the dossier's due date."""

    old_due_at = fields.AwareDateTime(required=True)
    due_at = fields.AwareDateTime(required=True)
    rescheduled_at = fields.AwareDateTime(required=True)
    reason = fields.Str(required=True, validate=validate.OneOf(("calendar",)))


class TaskOverdueV1(TaskFacts):
    """A step passed its own due time while still open: escalated to the agency's leader role."""

    due_at = fields.AwareDateTime(required=True)
    detected_at = fields.AwareDateTime(required=True)
    escalated_to_role = fields.Str(required=True)


class DossierOverdueV1(RunEvent):
    """A dossier passed its due date (the citizen's appointment) before its result was ready."""

    agency_code = fields.Str(required=True)  # the receiving agency, which owes the apology (form 04)
    current_agency_code = fields.Str(load_default=None, allow_none=True)
    due_at = fields.AwareDateTime(required=True)
    detected_at = fields.AwareDateTime(required=True)


class ResultReadyV1(RunEvent):
    agency_code = fields.Str(required=True)
    finished_at = fields.AwareDateTime(required=True)
    # "approved": the result is the document asked for; "refused": a step refused to grant it, the
    # result is the written refusal with its reason (văn bản từ chối giải quyết).
    outcome = fields.Str(load_default="approved", validate=validate.OneOf(("approved", "refused")))
    reason = fields.Str(load_default="", allow_none=True)


class DossierTransferredV1(TaskFacts):
    """A step handed to another agency than the process named (chuyển xử lý), where the step allows it."""

    from_agency_code = fields.Str(required=True)
    to_agency_code = fields.Str(required=True)
    transferred_at = fields.AwareDateTime(required=True)
    transferred_by = fields.Str(required=True)
    note = fields.Str(load_default="", allow_none=True)
    new_task_id = fields.Str(required=True)


class SupplementNeededV1(RunEvent):
    """A step asks for missing documents through the counter, which issues form 02 (the clock stops)."""

    agency_code = fields.Str(required=True)  # the step's agency, which asks
    task_id = fields.Str(required=True)
    items = fields.List(fields.Str(), required=True, validate=validate.Length(min=1))
    note = fields.Str(load_default="", allow_none=True)
    requested_by = fields.Str(required=True)
    requested_at = fields.AwareDateTime(required=True)


class PaymentRequiredV1(RunEvent):
    """A step fixed a financial obligation (nghĩa vụ tài chính: fee, tax): status 6, the clock stops."""

    agency_code = fields.Str(required=True)  # the step's agency, which fixed the amount
    task_id = fields.Str(required=True)
    amount_vnd = fields.Int(required=True, validate=validate.Range(min=0))
    note = fields.Str(load_default="", allow_none=True)
    required_at = fields.AwareDateTime(required=True)


class ProcessingStoppedV1(RunEvent):
    """Dừng xử lý (status 8, form 05): a step stopped the dossier's processing, with the reason."""

    agency_code = fields.Str(required=True)
    stopped_at = fields.AwareDateTime(required=True)
    stopped_by = fields.Str(required=True)
    reason = fields.Str(required=True)


class DelayPredictedV1(RunEvent):
    """A late step makes the dossier miss its due date: the receiving agency drafts form 04 (apology and
    a new appointment) to issue before the date passes."""

    agency_code = fields.Str(required=True)  # the receiving agency, which owes the apology
    current_agency_code = fields.Str(required=True)
    due_at = fields.AwareDateTime(required=True)
    proposed_due_at = fields.AwareDateTime(required=True)
    detected_at = fields.AwareDateTime(required=True)


class PaymentRequestedV1(DossierEvent):
    """Intake put the dossier in status 6: the applicant is told the amount to pay."""

    agency_code = fields.Str(required=True)
    requested_at = fields.AwareDateTime(required=True)
    amount_vnd = fields.Int(required=True)
    note = fields.Str(load_default="", allow_none=True)
    contact = fields.Nested(Contact, required=True)


class PaymentReceivedV1(DossierEvent):
    """The obligation is paid (confirmed at the counter): processing resumes with a new due date."""

    paid_at = fields.AwareDateTime(required=True)
    confirmed_by = fields.Str(required=True)
    receipt_number = fields.Str(required=True)


class FeePaidV1(DossierEvent):
    """Lệ phí nộp trực tuyến: the procedure's fee due at submission (a level-4 procedure) paid through the
    payment platform; a line of the history with its electronic receipt, no status moves."""

    paid_at = fields.AwareDateTime(required=True)
    amount_vnd = fields.Int(required=True, validate=validate.Range(min=0))
    receipt_number = fields.Str(required=True)


class PaymentRefundedV1(DossierEvent):
    """Hoàn phí: the fee paid online returned to the payer by the payment platform (a stop or a refused
    result the province refunds, INTAKE_PAYMENT_REFUND_ON); a line of the history, no status moves."""

    order_id = fields.Str(required=True)  # our payment order (vnp_TxnRef)
    amount_vnd = fields.Int(required=True, validate=validate.Range(min=0))
    refund_number = fields.Str(load_default=None, allow_none=True)  # the platform's number for the refund
    refunded_at = fields.AwareDateTime(required=True)


class DossierStoppedV1(DossierEvent):
    """Intake's record of a stop (status 8)."""

    agency_code = fields.Str(required=True)
    stopped_at = fields.AwareDateTime(required=True)
    reason = fields.Str(required=True)
    contact = fields.Nested(Contact, required=True)


class AccessDeniedV1(Contract):
    """A service refused a caller (từ chối truy cập): for the gateway's audit log. The caller as the
    verified token says (or nobody, with the unverified `claimed_username`, for a forged token);
    never any personal data of the record asked for."""

    action = fields.Str(required=True)
    reason = fields.Str(required=True)
    denied_at = fields.AwareDateTime(required=True)
    username = fields.Str(load_default=None, allow_none=True)
    agency_code = fields.Str(load_default=None, allow_none=True)
    roles = fields.List(fields.Str(), load_default=list)
    claimed_username = fields.Str(load_default=None, allow_none=True)
    dossier_code = fields.Str(load_default=None, allow_none=True)
    task_id = fields.Str(load_default=None, allow_none=True)


class TokenRevokedV1(Contract):
    """The gateway's logout (đăng xuất): every gateway instance refuses the token from now on (they
    cache tokens' states for a few seconds). The token's id only, never the token."""

    token_id = fields.Str(required=True)
    expires_at = fields.AwareDateTime(required=True)  # when the token would have expired anyway
    revoked_at = fields.AwareDateTime(required=True)


class AccountChangedV1(Contract):
    """A staff account's roles, activity or password changed: its earlier tokens are refused, and
    every gateway instance reads the account's state again."""

    username = fields.Str(required=True)
    changed_at = fields.AwareDateTime(required=True)


class CalendarDecidedV1(Contract):
    """The province's admin recorded an official calendar decision (intake: POST /api/v1/calendar/decisions):
    a day off or a working day, with its document. Every service that counts working time counts with it
    from now on (workflow: the open steps' deadlines). Published after the `dossier_rescheduled` events it
    caused, in the same transaction."""

    date = fields.Date(required=True)
    kind = fields.Str(required=True, validate=validate.OneOf(("day_off", "working_day")))
    source = fields.Str(required=True)
    decided_year = fields.Bool(required=True)  # the decision completes its year's calendar
    decided_by = fields.Str(required=True)
    decided_at = fields.AwareDateTime(required=True)


# The gateway's own events about staff sessions: for the other gateway instances, no dossier's.
SESSION_EVENTS = frozenset({"token_revoked", "account_changed"})
# The official calendar's: for the services that count working time, no dossier's.
CALENDAR_EVENTS = frozenset({"calendar_decided"})

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
    "task_rescheduled": (1, TaskRescheduledV1()),
    "dossier_overdue": (1, DossierOverdueV1()),
    "dossier_rescheduled": (1, DossierRescheduledV1()),
    "dossier_rated": (1, DossierRatedV1()),
    "postal_shipment_updated": (1, PostalShipmentUpdatedV1()),
    "result_ready": (1, ResultReadyV1()),
    "dossier_transferred": (1, DossierTransferredV1()),
    "supplement_needed": (1, SupplementNeededV1()),
    "payment_required": (1, PaymentRequiredV1()),
    "processing_stopped": (1, ProcessingStoppedV1()),
    "delay_predicted": (1, DelayPredictedV1()),
    "payment_requested": (1, PaymentRequestedV1()),
    "payment_received": (1, PaymentReceivedV1()),
    "dossier_stopped": (1, DossierStoppedV1()),
    "payment_refunded": (1, PaymentRefundedV1()),
    "fee_paid": (1, FeePaidV1()),
    "access_denied": (1, AccessDeniedV1()),
    "token_revoked": (1, TokenRevokedV1()),
    "account_changed": (1, AccountChangedV1()),
    "calendar_decided": (1, CalendarDecidedV1()),
}


def schema_for(event_type: str) -> tuple[int, Schema]:
    try:
        return EVENT_SCHEMAS[event_type]
    except KeyError:
        raise ValueError(f"unknown event type {event_type!r}") from None
