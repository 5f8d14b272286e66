"""Message templates (mẫu thông báo) as data: templates.yaml, per event and channel, checked at load.

The table: each top-level key of templates.yaml is an event type of motcua/contracts/events.py that
carries the applicant's `contact` (the message goes to the applicant), or one of AGENCY_EVENTS (the
message goes to the agency's office, its `email` in agencies.yaml); under it, one entry per channel
(`email`: subject + body; `sms`: text, sent unaccented within one GSM-7 SMS). An event or channel
absent from the table sends nothing: adding an event is a YAML entry plus the one-line handler
subscribing to it. Agencies override any (event, channel) in their own file.

Variables are the event's contract fields (times as dd/mm/yyyy HH:MM in the province's zone), with
`full_name` (from the contact), `agency_code`, `agency_name` and a `<field>_label` for coded fields.
Jinja2 runs sandboxed with StrictUndefined: a template reads only what its event provides, and a
missing variable raises instead of sending a message with a hole in it. Every template is also
rendered with sample data at load, so an SMS that would not fit one segment stops notify at start.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone, tzinfo
from pathlib import Path

from jinja2 import StrictUndefined, Template, TemplateSyntaxError, meta
from jinja2.sandbox import SandboxedEnvironment
from marshmallow import (
    RAISE,
    Schema,
    ValidationError,
    fields,
    validate,
    validates,
    validates_schema,
)

from motcua.catalog import CatalogError, load_data
from motcua.contracts.events import EVENT_SCHEMAS
from motcua.contracts.views import NOTIFY_CHANNELS
from motcua.errors import NotFound
from services.notify import sms

DEFAULT_PATH = Path(__file__).with_name("templates.yaml")
TIME_FORMAT = "%d/%m/%Y %H:%M"
CHANNELS = NOTIFY_CHANNELS
PARTS = {"email": ("subject", "body"), "sms": ("text",)}
# Never offered to templates: the contact itself (only full_name is), the form, secrets.
OMITTED = frozenset({"contact", "form", "tracking_key"})
LABELS = {
    "method": {"counter": "tại Bộ phận Một cửa", "postal": "qua dịch vụ bưu chính công ích",
               "online": "trực tuyến"},
    "channel": {"counter": "trực tiếp", "postal": "qua bưu chính công ích", "online": "trực tuyến"},
}
SMS_MAX_SEGMENTS = 1

# Plain-text messages: nothing to escape, and escaping would mangle names like "Nguyễn & Cộng sự".
_env = SandboxedEnvironment(undefined=StrictUndefined, autoescape=False, keep_trailing_newline=True)


def local_time(value: datetime, tz: tzinfo) -> str:
    """dd/mm/yyyy HH:MM in the province's time zone, as on the appointment slip."""
    return value.astimezone(tz).strftime(TIME_FORMAT)


def agency_of(dossier_code: str) -> str:
    """The receiving agency of a dossier, from its code `{agency e-ID}-{yyMMdd}-{NNNN}`."""
    return dossier_code.rsplit("-", 2)[0]


def dossier_code_of(data: dict) -> str:
    """Intake's events name the dossier `code`, workflow's `dossier_code`."""
    return data["dossier_code"] if "dossier_code" in data else data["code"]


# Events that message the agency named by their `agency_code` (its office's email), not the applicant:
# a step overdue goes to the step's agency, a dossier overdue to the receiving agency (it owes form 04).
AGENCY_EVENTS = frozenset({"task_overdue", "dossier_overdue"})


def templatable(event_type: str) -> bool:
    """Events carrying the applicant's contact message the applicant; AGENCY_EVENTS, the agency."""
    return event_type in EVENT_SCHEMAS and (event_type in AGENCY_EVENTS
                                            or "contact" in EVENT_SCHEMAS[event_type][1].fields)


def variables(event_type: str) -> frozenset[str]:
    names = set(EVENT_SCHEMAS[event_type][1].fields) - OMITTED
    return frozenset(names | {f"{n}_label" for n in LABELS if n in names}
                     | {"full_name", "agency_code", "agency_name"})


def message_context(event_type: str, data: dict, tz: tzinfo, agency_names: dict[str, str]) -> dict:
    """The template variables of one event (a contract-checked payload)."""
    context = {}
    for name in set(EVENT_SCHEMAS[event_type][1].fields) - OMITTED:
        value = data.get(name)
        context[name] = local_time(value, tz) if isinstance(value, datetime) else ("" if value is None else value)
        if name in LABELS:
            context[f"{name}_label"] = LABELS[name].get(value, value or "")
    agency = data.get("agency_code") or agency_of(dossier_code_of(data))
    contact = data.get("contact") or {}
    return {**context, "full_name": contact.get("full_name") or "", "agency_code": agency,
            "agency_name": agency_names.get(agency, agency)}


_WHEN = datetime(2026, 3, 2, 2, 15, tzinfo=timezone.utc)
_DUE = datetime(2026, 3, 20, 9, 0, tzinfo=timezone.utc)
_CONTACT = {"full_name": "Nguyễn Thị Minh Khai", "email": "minh.khai@example.vn", "phone": "0912345678"}
_FACTS = {"code": "000.00.06.H56-260302-0123", "procedure_code": "1.012786",
          "procedure_name": "Cấp lại Giấy chứng nhận quyền sử dụng đất do bị mất", "field_code": "DD",
          "agency_code": "000.00.06.H56", "channel": "online"}
# Sample data per event, long enough to be realistic: what the preview shows and the load check uses.
SAMPLES: dict[str, dict] = {
    "dossier_submitted": {**_FACTS, "submitted_at": _WHEN, "applicant_masked": "N*** T*** M*** K***",
                          "tracking_key": "k", "contact": _CONTACT},
    "dossier_received": {**_FACTS, "received_at": _WHEN, "due_at": _DUE, "received_by": "receptionist",
                         "form": {}, "contact": _CONTACT},
    "dossier_refused": {**_FACTS, "refused_at": _WHEN, "refused_by": "receptionist", "contact": _CONTACT,
                        "reason": "Thửa đất đang có tranh chấp, chưa đủ điều kiện cấp lại theo quy định"},
    "supplement_requested": {"code": _FACTS["code"], "agency_code": _FACTS["agency_code"], "requested_at": _WHEN,
                             "requested_by": "receptionist", "note": "Nộp bổ sung trong 10 ngày làm việc",
                             "items": ["Bản sao CCCD của người được ủy quyền", "Sơ đồ thửa đất có xác nhận"],
                             "contact": _CONTACT},
    "dossier_result_ready": {"code": _FACTS["code"], "procedure_name": _FACTS["procedure_name"],
                             "agency_code": _FACTS["agency_code"], "finished_at": _WHEN, "due_at": _DUE,
                             "contact": _CONTACT},
    "result_returned": {"code": _FACTS["code"], "returned_at": _WHEN, "method": "postal",
                        "returned_by": "receptionist", "contact": _CONTACT},
    "dossier_rescheduled": {"code": _FACTS["code"], "agency_code": _FACTS["agency_code"], "rescheduled_at": _WHEN,
                            "rescheduled_by": "receptionist", "old_due_at": _WHEN, "new_due_at": _DUE,
                            "reason": "Cần xác minh thực địa nguồn gốc thửa đất với Ủy ban nhân dân cấp xã",
                            "contact": _CONTACT},
    "task_overdue": {"task_id": "7f3c", "dossier_code": _FACTS["code"], "procedure_code": _FACTS["procedure_code"],
                     "agency_code": "000.12.01.H56", "step": "Thẩm định hồ sơ, đo đạc thửa đất", "step_index": 1,
                     "due_at": _WHEN, "detected_at": _DUE, "escalated_to_role": "leader"},
    "dossier_overdue": {"dossier_code": _FACTS["code"], "agency_code": _FACTS["agency_code"],
                        "current_agency_code": "000.12.01.H56", "due_at": _WHEN, "detected_at": _DUE},
    "payment_requested": {"code": _FACTS["code"], "agency_code": _FACTS["agency_code"], "requested_at": _WHEN,
                          "amount_vnd": 12500000, "contact": _CONTACT,
                          "note": "Thông báo nộp lệ phí trước bạ: 12.500.000 đồng (0,5% × 250 m² × 10.000.000 đồng/m²)"},
    "dossier_stopped": {"code": _FACTS["code"], "agency_code": _FACTS["agency_code"], "stopped_at": _WHEN,
                        "reason": "Quá thời hạn bổ sung hồ sơ theo Phiếu yêu cầu bổ sung", "contact": _CONTACT},
}


def sample_data(event_type: str) -> dict:
    """A contract-valid payload of `event_type` for previews (ValueError if there is none)."""
    if event_type not in SAMPLES:
        raise ValueError(f"no sample data for event type {event_type!r}")
    return SAMPLES[event_type]


def _problem(source: str, allowed: frozenset[str]) -> str | None:
    try:
        unknown = meta.find_undeclared_variables(_env.parse(source)) - allowed
    except TemplateSyntaxError as exc:
        return f"template syntax error (template line {exc.lineno}): {exc.message}"
    if unknown:
        return f"unknown variable(s) {', '.join(sorted(unknown))}; known: {', '.join(sorted(allowed))}"
    return None


class EmailTemplateSchema(Schema):
    class Meta:
        unknown = RAISE

    subject = fields.Str(required=True, validate=validate.Length(min=1))
    body = fields.Str(required=True, validate=validate.Length(min=1))

    @validates("subject")
    def _one_line(self, value, **_):
        if "\n" in value.strip():
            raise ValidationError("a subject is a single line")


class SmsTemplateSchema(Schema):
    class Meta:
        unknown = RAISE

    text = fields.Str(required=True, validate=validate.Length(min=1))


class EventTemplatesSchema(Schema):
    class Meta:
        unknown = RAISE

    email = fields.Nested(EmailTemplateSchema)
    sms = fields.Nested(SmsTemplateSchema)


def _check_events(data: dict) -> None:
    for event_type, channels in data.items():
        if not templatable(event_type):
            raise ValidationError({event_type: ["not an event that carries the applicant's contact nor one "
                                                "for the agency"]})
        allowed = variables(event_type)
        for channel, parts in channels.items():
            for part, source in parts.items():
                problem = _problem(source, allowed)
                if problem:
                    raise ValidationError({event_type: {channel: {part: [problem]}}})


class TemplatesFileSchema(Schema):
    """templates.yaml: event type → channel → parts."""

    class Meta:
        unknown = RAISE

    events = fields.Dict(keys=fields.Str(), values=fields.Nested(EventTemplatesSchema), required=True)

    @validates_schema
    def _compiles(self, data, **_):
        try:
            _check_events(data["events"])
        except ValidationError as exc:  # the full path, so the error names the file's line
            raise ValidationError({"events": exc.messages}) from None


class OverridesFileSchema(Schema):
    """An agency's overrides: agency code → event type → channel → parts."""

    class Meta:
        unknown = RAISE

    agencies = fields.Dict(keys=fields.Str(), values=fields.Dict(
        keys=fields.Str(), values=fields.Nested(EventTemplatesSchema)), required=True)

    @validates_schema
    def _compiles(self, data, **_):
        for agency_code, events in data["agencies"].items():
            try:
                _check_events(events)
            except ValidationError as exc:
                raise ValidationError({"agencies": {agency_code: exc.messages}}) from None


@dataclass(frozen=True)
class Rendered:
    channel: str
    body: str
    subject: str = ""
    encoding: str = ""
    segments: int = 0
    accented: str = ""  # SMS: the text before it was unaccented (a brandname registered for Unicode)


class Templates:
    """The compiled templates by (agency or None, event type, channel)."""

    def __init__(self, compiled: dict[tuple[str | None, str, str], dict[str, Template]]):
        self._compiled = compiled

    @classmethod
    def load(cls, path: Path = DEFAULT_PATH, overrides: Path | None = None) -> "Templates":
        """Load and check the templates (and an agencies' overrides file); CatalogError with file:line."""
        compiled = {}
        data = load_data(path, TemplatesFileSchema())
        tables = [(None, data["events"], path)]
        if overrides is not None:
            tables += [(agency, events, overrides)
                       for agency, events in load_data(overrides, OverridesFileSchema())["agencies"].items()]
        for agency, events, source in tables:
            for event_type, channels in events.items():
                for channel, parts in channels.items():
                    compiled[(agency, event_type, channel)] = {p: _env.from_string(s) for p, s in parts.items()}
        templates = cls(compiled)
        templates._check_samples({key: source for agency, _events, source in tables
                                  for key in compiled if key[0] == agency})
        return templates

    def _check_samples(self, sources: dict[tuple, Path]) -> None:
        for (agency, event_type, channel), source in sources.items():
            if event_type not in SAMPLES:
                continue
            context = message_context(event_type, SAMPLES[event_type], timezone.utc, {})
            try:
                rendered = self._render(self._compiled[(agency, event_type, channel)], channel, context, fit=False)
            except Exception as exc:  # StrictUndefined on a derived name, a sandbox refusal
                raise CatalogError(f"{source}: {event_type}.{channel}: {type(exc).__name__}: {exc}") from None
            if channel == "sms" and sms.measure(rendered.body).segments > SMS_MAX_SEGMENTS:
                raise CatalogError(
                    f"{source}: {event_type}.sms: {sms.measure(rendered.body).units} GSM-7 characters with the "
                    f"sample data; an SMS template must fit {sms.SINGLE} (shorten it or truncate a variable)")

    def channels(self, event_type: str, agency_code: str | None) -> list[str]:
        """The channels this event messages the applicant on, for this agency."""
        return [c for c in CHANNELS
                if (agency_code, event_type, c) in self._compiled or (None, event_type, c) in self._compiled]

    def render(self, event_type: str, channel: str, context: dict, agency_code: str | None = None) -> Rendered:
        parts = self._compiled.get((agency_code, event_type, channel)) or self._compiled[(None, event_type, channel)]
        return self._render(parts, channel, context)

    @staticmethod
    def _render(parts: dict[str, Template], channel: str, context: dict, fit: bool = True) -> Rendered:
        """`fit`: cut an SMS that real data made too long (the load check measures it uncut)."""
        if channel == "sms":
            accented = " ".join(parts["text"].render(context).split())
            text = sms.unaccent(accented)
            text = sms.fit(text, SMS_MAX_SEGMENTS) if fit else text
            length = sms.measure(text)
            return Rendered(channel, text, encoding=length.encoding, segments=length.segments, accented=accented)
        return Rendered(channel, parts["body"].render(context), subject=" ".join(parts["subject"].render(context).split()))


def preview(templates: Templates, event_type: str, channel: str, agency_code: str | None, tz: tzinfo,
            agency_names: dict[str, str]) -> dict:
    """A template rendered with the event's sample data (the agency's override if it has one)."""
    data = {**sample_data(event_type), **({"agency_code": agency_code} if agency_code else {})}
    agency = agency_code or data.get("agency_code") or agency_of(dossier_code_of(data))
    if channel not in templates.channels(event_type, agency):
        raise NotFound(f"no {channel} message for {event_type}", field="channel")
    rendered = templates.render(event_type, channel, message_context(event_type, data, tz, agency_names), agency)
    if channel == "sms":
        length = sms.measure(rendered.body)
        return {"channel": channel, "text": rendered.body, "encoding": length.encoding, "characters": length.units,
                "segments": length.segments}
    return {"channel": channel, "subject": rendered.subject, "body": rendered.body}
