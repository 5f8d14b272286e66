"""What services answer over RPC (v1), as the gateway documents it (OpenAPI) and clients read it.

Each owning service dumps through its own subclass, which computes what needs its domain (a task's
actions, a delivery's masked recipient); the fields and their names are fixed here.
"""
from __future__ import annotations

from marshmallow import Schema, fields

# Notification channels toward a citizen (the order preferences list them in).
NOTIFY_CHANNELS = ("email", "sms")
# The citizens' portal page the payment platform sends the browser back to (the gateway serves it;
# intake's default INTAKE_PAYMENT_RETURN_URL names it).
PAYMENT_RETURN_PAGE = "/thanh-toan/ket-qua"


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


class ApplicantViewV1(Schema):
    type = fields.Str()
    tax_code = fields.Str(allow_none=True)
    full_name = fields.Str()
    id_number = fields.Str()
    phone = fields.Str(allow_none=True)
    email = fields.Str(allow_none=True)
    address = fields.Str(allow_none=True)


class PaymentViewV1(Schema):
    """The fee or tax a step fixed (nghĩa vụ tài chính), and its receipt once paid."""

    amount_vnd = fields.Int()
    note = fields.Str(allow_none=True)
    paid_at = fields.Str(allow_none=True)
    receipt_number = fields.Str(allow_none=True)


class SupplementViewV1(Schema):
    requested_at = fields.Str()
    requested_by = fields.Str()
    agency_code = fields.Str()
    items = fields.List(fields.Str())
    note = fields.Str(allow_none=True)
    due_before = fields.Str(allow_none=True)
    supplemented_at = fields.Str(allow_none=True)
    supplemented_by = fields.Str(allow_none=True)
    due_after = fields.Str(allow_none=True)


class RescheduleViewV1(Schema):
    """Form 04: an apology with a new appointment."""

    rescheduled_at = fields.Str()
    rescheduled_by = fields.Str()
    old_due_at = fields.Str()
    new_due_at = fields.Str()
    reason = fields.Str()
    late_apology = fields.Bool()


class DocumentViewV1(Schema):
    """A document on file (its content: GET …/documents/{id}); `key` the procedure's document, or
    `step:<key>` for one a processing step attached."""

    id = fields.Int()
    key = fields.Str()
    filename = fields.Str()
    content_type = fields.Str()
    size = fields.Int()
    sha256 = fields.Str()
    uploaded_at = fields.Str()
    uploaded_by = fields.Str()


class MissingDocumentViewV1(Schema):
    key = fields.Str()
    name = fields.Str()


class HistoryEntryViewV1(Schema):
    at = fields.Str()
    action = fields.Str()
    status = fields.Str()
    status_code = fields.Int()
    agency_code = fields.Str(allow_none=True)
    actor = fields.Str()
    note = fields.Str(allow_none=True)


class DossierViewV1(Schema):
    """A dossier (hồ sơ) as staff of an agency involved in it see it; times ISO 8601 with the
    province's offset, null until they happen; `status_code` the official 1–10."""

    code = fields.Str()
    procedure_code = fields.Str()
    procedure_version = fields.Int()
    procedure_name = fields.Str()
    field = fields.Str()
    agency_code = fields.Str()
    channel = fields.Str()
    status = fields.Str()
    status_code = fields.Int()
    allowed_actions = fields.List(fields.Str())
    applicant = fields.Nested(ApplicantViewV1)
    form = fields.Dict()
    submitted_at = fields.Str()
    received_at = fields.Str(allow_none=True)
    due_at = fields.Str(allow_none=True)
    refused_at = fields.Str(allow_none=True)
    refusal_reason = fields.Str(allow_none=True)
    result_ready_at = fields.Str(allow_none=True)
    returned_at = fields.Str(allow_none=True)
    return_method = fields.Str(allow_none=True)
    # what the applicant asked of the public postal service at submission: "pickup", "delivery"
    postal_services = fields.List(fields.Str(), load_default=list)
    paused_at = fields.Str(allow_none=True)
    withdrawn_at = fields.Str(allow_none=True)
    withdrawal_reason = fields.Str(allow_none=True)
    payment = fields.Nested(PaymentViewV1, allow_none=True)
    result_outcome = fields.Str(allow_none=True)
    result_note = fields.Str(allow_none=True)
    stopped_at = fields.Str(allow_none=True)
    stop_reason = fields.Str(allow_none=True)
    proposed_due_at = fields.Str(allow_none=True)  # a step predicted late: the date form 04 would propose
    rating = fields.Int(allow_none=True)
    rating_comment = fields.Str(allow_none=True)
    rated_at = fields.Str(allow_none=True)
    supplements = fields.List(fields.Nested(SupplementViewV1))
    reschedules = fields.List(fields.Nested(RescheduleViewV1))
    documents = fields.List(fields.Nested(DocumentViewV1))
    documents_missing = fields.List(fields.Nested(MissingDocumentViewV1))
    agencies = fields.List(fields.Str())  # every agency the dossier has passed through
    history = fields.List(fields.Nested(HistoryEntryViewV1))


class PublicDossierViewV1(Schema):
    """What an applicant acting without an account gets back: the status, no personal data."""

    code = fields.Str()
    status = fields.Str()
    status_code = fields.Int()
    due_at = fields.Str(allow_none=True)
    allowed_actions = fields.List(fields.Str())


class SignatureCheckViewV1(Schema):
    """One signature of a PDF as the public verification found it (who signed, when, whether it holds)."""

    field = fields.Str()
    valid = fields.Bool()
    intact = fields.Bool()
    trusted = fields.Bool()
    covers_whole_document = fields.Bool()
    signer_name = fields.Str(allow_none=True)
    signer_id = fields.Str(allow_none=True, metadata={"description": "the agency's code, or the certifying officer's account"})
    agency_code = fields.Str(allow_none=True)
    certificate_serial = fields.Str(allow_none=True)
    issuer = fields.Str(allow_none=True)
    signed_at = fields.Str(allow_none=True)
    problem = fields.Str()


class SignatureVerificationViewV1(Schema):
    """The answer of the public verification of a signed result (tra cứu kết quả ký số)."""

    signed = fields.Bool()
    sha256 = fields.Str()
    signatures = fields.List(fields.Nested(SignatureCheckViewV1))


class TimelineEntryViewV1(Schema):
    """One line of public tracking's timeline: a change of status or of hands, when it happened."""

    at = fields.Str()
    status = fields.Str()
    agency_code = fields.Str(allow_none=True)
    step = fields.Str()  # the step of the process, while the dossier is in one
    postal = fields.Str()  # the postal service's news, "<pickup|delivery>:<status>" (bưu chính công ích)


class TrackedDossierViewV1(Schema):
    """Public tracking (tra cứu hồ sơ): where a dossier is, for whoever has its code and the phone's last
    4 digits; the applicant's name masked, nothing else personal. `dossier_version` and `run_version`:
    every intake event of the dossier up to that `dossier_version`, and every workflow event of its
    process run up to that `run_version`, is reflected (0: none yet); the versions the events carry."""

    code = fields.Str()
    procedure_code = fields.Str(allow_none=True)
    procedure_name = fields.Str(allow_none=True)
    status = fields.Str(allow_none=True)
    status_code = fields.Int(allow_none=True)
    submitted_at = fields.Str(allow_none=True)
    received_at = fields.Str(allow_none=True)
    due_at = fields.Str(allow_none=True)
    finished_at = fields.Str(allow_none=True)
    returned_at = fields.Str(allow_none=True)
    refused_at = fields.Str(allow_none=True)
    current_agency_code = fields.Str(allow_none=True)
    applicant_name = fields.Str(allow_none=True)
    timeline = fields.List(fields.Nested(TimelineEntryViewV1))
    supplement_items = fields.List(fields.Str())  # what the open supplement request asks for
    dossier_version = fields.Int()
    run_version = fields.Int()
