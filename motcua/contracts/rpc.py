"""RPC payloads that cross into a service from the gateway or from agencies' systems (v1)."""
from __future__ import annotations

import json
import re
import unicodedata
from datetime import date

from marshmallow import Schema, ValidationError, fields, pre_load, validate, validates_schema

from motcua.calendar import DECISION_KINDS, UNITS
from motcua.contracts.events import CHANNELS, RETURN_METHODS, STATUS_CODES, DocumentRef
from motcua.contracts.views import NOTIFY_CHANNELS
from motcua.identity import STAFF_ROLES

# Dates a report or a search may name: beyond them the calendar arithmetic overflows.
REPORTABLE_DATES = validate.Range(min=date(2000, 1, 1), max=date(2100, 12, 31),
                                  error="must be between 2000-01-01 and 2100-12-31")
MAX_REPORT_DAYS = 3 * 366  # a daily series or a report over at most three years

# The standard report's cells (form II.06a plus the paused group): within a group the base cells
# exclude each other; each sum is the union of its parts. Drill-down names a cell. A stopped dossier
# (dừng xử lý, status 8) is closed in the period it stopped, like a withdrawn one: not paused.
REPORT_BASE_CELLS = ("received.online", "received.counter", "received.postal", "received.carried_over",
                     "resolved.early", "resolved.on_time", "resolved.late", "withdrawn", "stopped",
                     "paused.supplement", "paused.awaiting_payment",
                     "in_progress.within_deadline", "in_progress.overdue")
REPORT_SUM_CELLS = {
    "received.counter_postal": ("received.counter", "received.postal"),
    "received.total": ("received.online", "received.counter", "received.postal", "received.carried_over"),
    "resolved.total": ("resolved.early", "resolved.on_time", "resolved.late"),
    "paused.total": ("paused.supplement", "paused.awaiting_payment"),
    "in_progress.total": ("in_progress.within_deadline", "in_progress.overdue"),
}
REPORT_CELLS = REPORT_BASE_CELLS + tuple(REPORT_SUM_CELLS)
REPORT_GROUPINGS = ("agency", "field")  # rows per agency (with the tree's roll-up) or per field (lĩnh vực)

# The applicant's declaration (tờ khai, a dossier's `form`) as a whole: flat values, this many bytes of
# JSON at most, checked before it leaves the gateway (it travels the bus with the dossier). Each field
# is bounded by its procedure's declaration in the catalogue (services/intake/declaration.py).
MAX_DECLARATION_BYTES = 16 * 1024
MAX_CATALOG_SHEET_BASE64 = 16 * 1024 * 1024  # a province's 2,000 procedures with their documents: a few MB


def nfc(value):
    """Vietnamese arrives composed or decomposed: one form (NFC) for every string, recursively,
    so "Nguyễn" typed on any keyboard compares and searches equal."""
    if isinstance(value, str):
        return unicodedata.normalize("NFC", value)
    if isinstance(value, dict):
        return {nfc(k): nfc(v) for k, v in value.items()}
    if isinstance(value, list):
        return [nfc(v) for v in value]
    return value


# Unicode's control characters (category Cc: C0, DEL and C1) but tab and the line breaks.
CONTROL_CHARACTER = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")


def _control_character_at(value, path: str = "") -> str | None:
    """The dotted path of the first string holding a control character (NUL and the like)."""
    if isinstance(value, str):
        return path if CONTROL_CHARACTER.search(value) else None
    items = value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, list) else ()
    for key, item in items:
        found = _control_character_at(item, f"{path}.{key}" if path else str(key))
        if found is not None:
            return found
    return None


class NfcSchema(Schema):
    """Text in NFC; control characters refused (they corrupt forms, and PostgreSQL refuses NUL)."""

    @pre_load
    def _normalise(self, data, **_):
        where = _control_character_at(data)
        if where is not None:
            raise ValidationError({where: ["contains a control character"]})
        return nfc(data)


APPLICANT_TYPES = ("individual", "organisation")


class ApplicantV1(NfcSchema):
    type = fields.Str(load_default="individual", validate=validate.OneOf(APPLICANT_TYPES))
    tax_code = fields.Str(load_default=None, allow_none=True, validate=validate.Regexp(
        r"^\d{10}(-\d{3})?$", error="must be a 10-digit tax code, or 10 digits, '-' and a 3-digit branch"))
    full_name = fields.Str(required=True, validate=validate.Length(min=2, max=200))
    id_number = fields.Str(required=True, validate=validate.Regexp(
        r"^(\d{9}|\d{12})$", error="must be a 9-digit ID card or 12-digit citizen ID number"))
    phone = fields.Str(required=True, validate=validate.Regexp(
        r"^(0|\+84)\d{9}$", error="must be a Vietnamese phone number: 0 or +84 then 9 digits"))
    email = fields.Email(load_default=None, allow_none=True, validate=validate.Length(max=200))
    address = fields.Str(load_default=None, allow_none=True, validate=validate.Length(max=500))

    @validates_schema
    def _organisation(self, data, **_):
        if data.get("type") == "organisation" and not data.get("tax_code"):
            raise ValidationError("an organisation gives its tax code", "tax_code")

# A document's bytes: this size at most, one of these types read from the content (never trusted from
# the client). Intake enforces them; the portal checks each file first to name the one it refuses and
# keep the others, and shows the same limit on the form.
MAX_DOCUMENT_BYTES = 5 * 1024 * 1024
DOCUMENT_SIGNATURES = {b"%PDF-": "application/pdf", b"\xff\xd8\xff": "image/jpeg", b"\x89PNG\r\n\x1a\n": "image/png"}


def document_type(data: bytes) -> str | None:
    """The document's media type read from its first bytes; None for a type not accepted."""
    return next((kind for magic, kind in DOCUMENT_SIGNATURES.items() if data.startswith(magic)), None)


class DocumentUploadV1(NfcSchema):
    """One document as base64 (JSON bodies; multipart uploads are turned into this by the gateway)."""

    key = fields.Str(required=True, validate=validate.Length(min=1, max=40))
    filename = fields.Str(required=True, validate=validate.Length(min=1, max=200))
    content_base64 = fields.Str(required=True, validate=validate.Length(min=1))


def _bounded_declaration(form: dict) -> None:
    if any(isinstance(value, (dict, list)) for value in form.values()):
        raise ValidationError("a declaration's values are text, numbers or true/false")
    if len(json.dumps(form, ensure_ascii=False).encode()) > MAX_DECLARATION_BYTES:
        raise ValidationError(f"a declaration holds at most {MAX_DECLARATION_BYTES} bytes")


class PostalRequestV1(NfcSchema):
    """The public postal service asked for at submission: the dossier picked up at the applicant's
    address, the result delivered there (or both); intake needs the applicant's address for it."""

    pickup = fields.Bool(load_default=False)
    delivery = fields.Bool(load_default=False)


class SubmitDossierV1(NfcSchema):
    procedure_code = fields.Str(required=True, validate=validate.Length(min=1, max=20))
    channel = fields.Str(required=True, validate=validate.OneOf(CHANNELS))
    applicant = fields.Nested(ApplicantV1, required=True)
    form = fields.Dict(keys=fields.Str(validate=validate.Length(min=1, max=40)), values=fields.Raw(allow_none=True),
                       load_default=dict, validate=_bounded_declaration)
    documents = fields.List(fields.Nested(DocumentUploadV1), load_default=list)
    # The commune chosen to receive it, for a procedure received anywhere in the province (Decree
    # 118/2025); absent: the counter's own agency, else the commune of the applicant's address.
    receiving_agency_code = fields.Str(load_default=None, allow_none=True, validate=validate.Length(min=1, max=20))
    postal = fields.Nested(PostalRequestV1, load_default=None, allow_none=True)

    @validates_schema
    def _postal_needs_an_address(self, data, **_):
        postal = data.get("postal") or {}
        if (postal.get("pickup") or postal.get("delivery")) and not (data.get("applicant") or {}).get("address"):
            raise ValidationError("the postal service needs the applicant's address", "applicant")


class RefuseDossierV1(NfcSchema):
    reason = fields.Str(required=True, validate=validate.Length(min=1, max=2000))


class ReturnResultV1(NfcSchema):
    method = fields.Str(required=True, validate=validate.OneOf(RETURN_METHODS))


class RequestSupplementV1(NfcSchema):
    """Form 02: every missing item at once."""

    items = fields.List(fields.Str(validate=validate.Length(min=1, max=500)), required=True,
                        validate=validate.Length(min=1, max=50))
    note = fields.Str(load_default=None, allow_none=True, validate=validate.Length(max=2000))


def _id_number():
    return fields.Str(load_default=None, allow_none=True, validate=validate.Regexp(
        r"^(\d{9}|\d{12})$", error="must be a 9-digit ID card or 12-digit citizen ID number"))


def _tracking_key(**kwargs):
    return fields.Str(load_default=None, allow_none=True, validate=validate.Regexp(
        r"^\d{4}$", error="must be the last 4 digits of the applicant's phone"), **kwargs)


class ApplicantActionV1(NfcSchema):
    """Supplement or withdraw: the counter's token, or the applicant's proof: the tracking key (the
    phone's last 4 digits, as for tracking) and the ID number."""

    key = _tracking_key()
    id_number = _id_number()
    reason = fields.Str(load_default=None, allow_none=True, validate=validate.Length(max=2000))
    documents = fields.List(fields.Nested(DocumentUploadV1), load_default=list)


class RateDossierV1(NfcSchema):
    """Đánh giá mức độ hài lòng: 1 (not satisfied) to 5, once the result was returned; the applicant
    proves it with the tracking key and the ID number, as for a supplement."""

    key = _tracking_key()
    id_number = _id_number()
    rating = fields.Int(required=True, strict=False, validate=validate.Range(min=1, max=5))
    comment = fields.Str(load_default=None, allow_none=True, validate=validate.Length(max=2000))


class _OffsetDateTime(fields.AwareDateTime):
    """An ISO datetime with its offset; a '+' that a query string turned into a space is put back."""

    def _deserialize(self, value, attr, data, **kwargs):
        if isinstance(value, str) and len(value) > 6 and value[-6] == " ":
            value = value[:-6] + "+" + value[-5:]
        moment = super()._deserialize(value, attr, data, **kwargs)
        REPORTABLE_DATES(moment.date())  # far dates overflow the working-time arithmetic
        return moment


class CalendarDueV1(NfcSchema):
    """GET /api/v1/calendar/due: start (ISO with offset), days (the amount: halves allowed, whole for
    calendar days), unit (working_days by default, calendar_days, working_hours), agency, cutoff (HH:MM)."""

    start = _OffsetDateTime(required=True, error_messages={
        "invalid": "must be an ISO datetime with an offset, e.g. 2026-03-02T09:00:00+07:00",
        "invalid_awareness": "must carry a UTC offset, e.g. +07:00"})
    days = fields.Decimal(required=True, allow_nan=False, as_string=True,
                          validate=validate.Range(min=0, max=3650))
    unit = fields.Str(load_default="working_days", validate=validate.OneOf(UNITS))
    agency = fields.Str(load_default=None, allow_none=True, validate=validate.Length(min=1, max=32))
    cutoff = fields.Time(load_default=None, allow_none=True, format="%H:%M",
                         error_messages={"invalid": "must be a time HH:MM"})


class CalendarDecisionV1(NfcSchema):
    """POST /api/v1/calendar/decisions: an official decision about one day (a day off, or a working day
    such as a swapped Saturday) with its document; `decided_year` when it completes its year's calendar
    (the year is no longer provisional)."""

    date = fields.Date(required=True, error_messages={"invalid": "must be a date YYYY-MM-DD"})
    kind = fields.Str(required=True, validate=validate.OneOf(DECISION_KINDS))
    source = fields.Str(required=True, validate=validate.Length(min=8, max=500))
    decided_year = fields.Bool(load_default=False)


class CatalogSheetV1(NfcSchema):
    """One spreadsheet of a catalogue import (.xlsx or .csv), as base64."""

    filename = fields.Str(required=True, validate=[validate.Length(min=1, max=200), validate.Regexp(
        r"(?i)^.+\.(xlsx|csv)$", error="a spreadsheet is .xlsx or .csv")])
    content_base64 = fields.Str(required=True, validate=validate.Length(min=1, max=MAX_CATALOG_SHEET_BASE64))


class CatalogImportPreviewV1(NfcSchema):
    """The admin console's upload: a province's procedure list and/or agency list, and the date their
    changes would take effect (`motcua catalog import` without --apply; docs/adopting.md)."""

    procedures = fields.Nested(CatalogSheetV1, load_default=None)
    agencies = fields.Nested(CatalogSheetV1, load_default=None)
    effective_from = fields.Date(required=True, error_messages={"invalid": "must be a date YYYY-MM-DD"})

    @validates_schema
    def _one_sheet(self, data, **_):
        if not data.get("procedures") and not data.get("agencies"):
            raise ValidationError("give the procedure list, the agency list or both", "procedures")


class RescheduleDossierV1(NfcSchema):
    """Form 04: the apology with a new appointment (hẹn lại ngày trả kết quả) and its reason."""

    new_due_at = _OffsetDateTime(required=True, error_messages={
        "invalid": "must be an ISO datetime with an offset, e.g. 2026-03-20T16:00:00+07:00",
        "invalid_awareness": "must carry a UTC offset, e.g. +07:00"})
    reason = fields.Str(required=True, validate=validate.Length(min=1, max=2000))


class StepDocumentsV1(NfcSchema):
    """Documents a step completes with (biên bản, the signed result), base64 like the applicant's."""

    documents = fields.List(fields.Nested(DocumentUploadV1), required=True, validate=validate.Length(min=1, max=10))


class VerifySignatureV1(NfcSchema):
    """A signed PDF (kết quả điện tử) anyone may check: base64, 5 MB at most before encoding."""

    content_base64 = fields.Str(required=True, validate=validate.Length(min=1, max=7_000_000))


class ConfirmPaymentV1(NfcSchema):
    """The counter confirms the applicant paid the fee or tax a step fixed (status 6 ends)."""

    receipt_number = fields.Str(required=True, validate=validate.Length(min=1, max=64))


class SearchDossiersV1(NfcSchema):
    """Staff search (POST body, so ID numbers and phones never sit in a URL or an access log)."""

    code = fields.Str(load_default=None, validate=validate.Length(min=1, max=40))
    name = fields.Str(load_default=None, validate=validate.Length(min=1, max=200))
    id_number = fields.Str(load_default=None, validate=validate.Regexp(r"^(\d{9}|\d{12})$",
                                                                       error="must be 9 or 12 digits"))
    phone = fields.Str(load_default=None, validate=validate.Regexp(r"^(0|\+84)\d{9}$",
                                                                   error="must be 0 or +84 then 9 digits"))
    status = fields.Str(load_default=None, validate=validate.OneOf(tuple(STATUS_CODES)))
    procedure_code = fields.Str(load_default=None, validate=validate.Length(min=1, max=20))
    date_from = fields.Date(load_default=None, validate=REPORTABLE_DATES)
    date_to = fields.Date(load_default=None, validate=REPORTABLE_DATES)
    overdue = fields.Bool(load_default=None)
    # true: only dossiers lacking a mandatory document of their procedure version (the counter's flag);
    # false: only complete ones
    documents_missing = fields.Bool(load_default=None)
    page = fields.Int(load_default=1, validate=validate.Range(min=1, max=100000))
    page_size = fields.Int(load_default=20, validate=validate.Range(min=1, max=100))

    @validates_schema
    def _ordered(self, data, **_):
        if data.get("date_from") and data.get("date_to") and data["date_from"] > data["date_to"]:
            raise ValidationError("must not be after date_to", "date_from")


def check_period(data: dict, max_days: int) -> None:
    """`from`..`to`, both included: in order, and at most `max_days` days."""
    if data["date_to"] < data["date_from"]:
        raise ValidationError({"to": ["must not be before from"]})
    if (data["date_to"] - data["date_from"]).days >= max_days:
        raise ValidationError({"to": [f"a period of at most {max_days} days"]})


class ReportQueryV1(Schema):
    """A report's period (at most MAX_REPORT_DAYS), optionally one agency's sub-tree, by agency or field."""

    date_from = fields.Date(required=True, data_key="from", validate=REPORTABLE_DATES)
    date_to = fields.Date(required=True, data_key="to", validate=REPORTABLE_DATES)
    agency = fields.Str(load_default=None, allow_none=True)
    by = fields.Str(load_default="agency", validate=validate.OneOf(REPORT_GROUPINGS))

    @validates_schema
    def _ordered(self, data, **_):
        check_period(data, MAX_REPORT_DAYS)


class DrillDownQueryV1(ReportQueryV1):
    """The dossiers behind one cell of the standard report (form II.06a)."""

    cell = fields.Str(required=True, validate=validate.OneOf(REPORT_CELLS))
    key = fields.Str(load_default=None, allow_none=True, validate=validate.Length(min=1, max=64))
    rollup = fields.Bool(load_default=False)


class ExportQueryV1(ReportQueryV1):
    format = fields.Str(required=True, validate=validate.OneOf(("csv", "xlsx", "pdf")))


MAX_LOG_BOOK_DAYS = 366


class LogBookQueryV1(Schema):
    """Sổ theo dõi hồ sơ (form 07): the dossiers an agency received in a period, as PDF or XLSX."""

    date_from = fields.Date(required=True, data_key="from", validate=REPORTABLE_DATES)
    date_to = fields.Date(required=True, data_key="to", validate=REPORTABLE_DATES)
    format = fields.Str(load_default="pdf", validate=validate.OneOf(("pdf", "xlsx")))

    @validates_schema
    def _ordered(self, data, **_):
        check_period(data, MAX_LOG_BOOK_DAYS)


class TrackQueryV1(Schema):
    """Public tracking (tra cứu hồ sơ): the dossier's code and the last 4 digits of the applicant's phone."""

    code = fields.Str(required=True, validate=validate.Length(min=1, max=64))
    key = fields.Str(required=True, validate=validate.Regexp(r"^[0-9]{4}$",
                                                             error="the last 4 digits of the phone number"))


class DashboardQueryV1(Schema):
    agency = fields.Str(load_default=None, allow_none=True)


class NotificationPreviewV1(Schema):
    """A template rendered with sample data (notify names the event types it has samples of)."""

    event_type = fields.Str(required=True, validate=validate.Length(min=1, max=64))
    channel = fields.Str(required=True, validate=validate.OneOf(NOTIFY_CHANNELS))
    agency_code = fields.Str(load_default=None, allow_none=True, validate=validate.Length(min=1, max=64))


# What an officer (or an agency's system) may do with a step (xử lý bước); `approve` forwards it
# (chuyển bước tiếp); `transfer` has its own call, since it names the agency.
TASK_OUTCOMES = ("approve", "send_back", "request_supplement", "require_payment", "refuse", "stop")
TASK_ACTIONS = TASK_OUTCOMES + ("transfer",)
NEEDS_REASON = ("refuse", "stop", "send_back")  # the reason goes to the applicant or the earlier step
OVERDUE = "overdue"  # an inbox of the open tasks past their due date
TASK_STATUS_FILTERS = ("open", OVERDUE, "done", "all")


def _note():
    return fields.Str(load_default=None, allow_none=True, validate=validate.Length(max=2000))


class TaskIdV1(NfcSchema):
    """The task a command names (the path's `{task_id}` at the gateway)."""

    task_id = fields.Str(required=True, validate=validate.Length(min=1, max=36))


class CompleteTaskV1(NfcSchema):
    """What is done with a step: approve, send_back (to_step, default the previous step),
    request_supplement (items: every missing one at once, form 02), require_payment (amount_vnd), refuse
    or stop (the reason in note); documents: what the step completes with, stored by intake first."""

    outcome = fields.Str(required=True, validate=validate.OneOf(TASK_OUTCOMES, error="must be one of: {choices}"))
    note = _note()
    items = fields.List(fields.Str(validate=validate.Length(min=1, max=500)), load_default=None,
                        validate=validate.Length(min=1, max=50))
    amount_vnd = fields.Int(load_default=None, strict=True, validate=validate.Range(min=0, max=10**13))
    to_step = fields.Int(load_default=None, strict=True, validate=validate.Range(min=0, max=1000))
    documents = fields.List(fields.Nested(DocumentRef), load_default=None, validate=validate.Length(max=10))

    @validates_schema
    def _what_the_outcome_needs(self, data, **_):
        outcome = data.get("outcome")
        if outcome == "request_supplement" and not data.get("items"):
            raise ValidationError("list every missing item", "items")
        if outcome == "require_payment" and data.get("amount_vnd") is None:
            raise ValidationError("the amount to pay is required", "amount_vnd")
        if outcome in NEEDS_REASON and not (data.get("note") or "").strip():
            raise ValidationError(f"a {outcome} needs its reason", "note")


class CompleteTaskBodyV1(CompleteTaskV1):
    """POST /api/v1/tasks/{task_id}/complete: the documents as uploads (base64), which the gateway
    stores in intake before it calls workflow with their references."""

    documents = fields.List(fields.Nested(DocumentUploadV1), load_default=None,
                            validate=validate.Length(min=1, max=10))


class AssignTaskV1(NfcSchema):
    """Phân công: the officer a leader assigns the task to; null returns it to the agency's pool."""

    assignee = fields.Str(required=True, allow_none=True, validate=validate.Length(min=1, max=120))


class TransferTaskV1(NfcSchema):
    """Chuyển xử lý: the agency the step goes to (one the step lists), and why."""

    agency_code = fields.Str(required=True, validate=validate.Length(min=1, max=20))
    note = _note()


class TaskQueryV1(NfcSchema):
    """An inbox: open (default), overdue, done or all; one role's steps; one officer's tasks ("me": the
    caller's, "none": the unassigned pool)."""

    status = fields.Str(load_default="open", validate=validate.OneOf(TASK_STATUS_FILTERS,
                                                                     error="must be one of: {choices}"))
    role = fields.Str(load_default=None, validate=validate.OneOf(STAFF_ROLES, error="must be one of: {choices}"))
    assignee = fields.Str(load_default=None, validate=validate.Length(min=1, max=120))
