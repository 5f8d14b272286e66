"""notify's settings: providers, webhooks, retries, as data (a YAML file or the container config).

Where they come from, first found: the container config's `NOTIFY` dict (tests, embedding); the YAML
file named by `NOTIFY_CONFIG`; nothing (the embedded defaults). Email without an `email` section
follows the kit's SMTP settings (`SMTP_HOST`...; plus `SMTP_SECURITY`, `SMTP_USERNAME`,
`SMTP_PASSWORD`), and without a host writes the mailbox file (development only: production refuses to
start without an SMTP host); SMS without an `sms` section writes `NOTIFY_SMS_OUTBOX` (default:
sms-outbox.jsonl beside the mailbox). Secrets are never in the file: each `*_env` names the
environment variable holding one, read at start.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from marshmallow import (
    RAISE,
    Schema,
    ValidationError,
    fields,
    validate,
    validates_schema,
)

from prometheus_client import CollectorRegistry

from motcua.catalog import AgencyFileSchema, AgencySchema, CatalogError, load_data
from motcua.config import env, is_production
from motcua.errors import ValidationFailed
from services.notify.brandname import BrandnameMetrics, BrandnameSms, read_report
from services.notify.providers import (
    HttpSms,
    MailboxEmail,
    OutboxSms,
    Provider,
    RateLimiter,
    Report,
    SmtpEmail,
    SuccessRule,
    Webhook,
    json_path,
)
from services.notify.templates import Templates


class _AgencyOffice(AgencySchema):
    email = fields.Email(load_default=None, allow_none=True)  # the office told when a dossier is overdue


class _AgencyOffices(AgencyFileSchema):
    agencies = fields.List(fields.Nested(_AgencyOffice), required=True, validate=validate.Length(min=1))


def load_agency_offices(catalog_dir: Path) -> tuple[dict[str, str], dict[str, str]]:
    """agencies.yaml: each agency's name, and the email of those that give one (checked; file:line)."""
    agencies = load_data(Path(catalog_dir) / "agencies.yaml", _AgencyOffices())["agencies"]
    return {a["code"]: a["name"] for a in agencies}, {a["code"]: a["email"] for a in agencies if a["email"]}


class _Strict(Schema):
    class Meta:
        unknown = RAISE


class RateSchema(_Strict):
    rate_per_second = fields.Float(load_default=None, validate=validate.Range(min=0, min_inclusive=False))
    burst = fields.Int(load_default=None, validate=validate.Range(min=1))


class EmailSchema(RateSchema):
    host = fields.Str(required=True)
    port = fields.Int(load_default=None)
    security = fields.Str(load_default="none", validate=validate.OneOf(("none", "starttls", "ssl")))
    username = fields.Str(load_default=None)
    password_env = fields.Str(load_default=None)
    ca_file = fields.Str(load_default=None)  # a private CA or a self-signed relay certificate
    timeout = fields.Float(load_default=30.0, validate=validate.Range(min=0.1))


class AuthSchema(_Strict):
    type = fields.Str(required=True, validate=validate.OneOf(("basic", "bearer", "header")))
    username = fields.Str(load_default=None)  # basic
    header = fields.Str(load_default=None)    # header: e.g. X-Api-Key
    secret_env = fields.Str(required=True)


class SuccessSchema(_Strict):
    status = fields.List(fields.Int(), load_default=lambda: [200, 201, 202])
    json_path = fields.Str(load_default=None)
    equals = fields.List(fields.Str(), load_default=list)
    temporary_codes = fields.List(fields.Str(), load_default=list)
    reference_path = fields.Str(load_default=None)


class ReceiptsSchema(_Strict):
    token_env = fields.Str(required=True)
    reference_path = fields.Str(required=True)
    status_path = fields.Str(required=True)
    delivered = fields.List(fields.Str(), required=True, validate=validate.Length(min=1))
    temporary = fields.List(fields.Str(), load_default=list)
    permanent = fields.List(fields.Str(), load_default=list)


class SmsSchema(RateSchema):
    name = fields.Str(required=True, validate=validate.Regexp(r"^[a-z0-9_-]{1,32}$"))
    url = fields.Url(required=True, require_tld=False)
    method = fields.Str(load_default="POST", validate=validate.OneOf(("POST", "PUT", "GET")))
    content_type = fields.Str(load_default="application/json")
    headers = fields.Dict(keys=fields.Str(), values=fields.Str(), load_default=dict)
    auth = fields.Nested(AuthSchema, load_default=None)
    sender = fields.Str(load_default="")
    body_template = fields.Str(required=True)
    timeout = fields.Float(load_default=10.0, validate=validate.Range(min=0.1))
    success = fields.Nested(SuccessSchema, load_default=lambda: SuccessSchema().load({}))
    receipts = fields.Nested(ReceiptsSchema, load_default=None)


class BrandnameSchema(RateSchema):
    """A brandname gateway (services/notify/brandname.py): the keys by the names of the environment
    variables that hold them; the delivery reports come to the gateway's receipt URL with the token."""

    name = fields.Str(load_default="brandname", validate=validate.Regexp(r"^[a-z0-9_-]{1,32}$"))
    url = fields.Url(required=True, require_tld=False)
    api_key_env = fields.Str(required=True)
    secret_key_env = fields.Str(required=True)
    brandname = fields.Str(required=True, validate=validate.Regexp(r"^[A-Za-z0-9 ._-]{1,11}$"))  # carriers: ≤ 11
    sms_type = fields.Str(load_default="2", validate=validate.Regexp(r"^[0-9]{1,2}$"))
    unicode = fields.Bool(load_default=False)
    max_segments = fields.Int(load_default=3, validate=validate.Range(min=1, max=10))
    sandbox = fields.Bool(load_default=False)
    timeout = fields.Float(load_default=10.0, validate=validate.Range(min=0.1))
    callback_url = fields.Url(load_default=None, require_tld=False)  # the gateway's receipts URL, without token
    receipt_token_env = fields.Str(load_default=None)

    @validates_schema
    def _reports_need_a_token(self, data, **_):
        if bool(data["callback_url"]) != bool(data["receipt_token_env"]):
            raise ValidationError({"receipt_token_env": ["callback_url and receipt_token_env go together"]})


class WebhookSchema(RateSchema):
    agency_code = fields.Str(required=True)
    url = fields.Url(required=True, require_tld=False)
    secret_env = fields.Str(required=True)
    events = fields.List(fields.Str(), required=True, validate=validate.Length(min=1))
    timeout = fields.Float(load_default=10.0, validate=validate.Range(min=0.1))


class RetrySchema(_Strict):
    max_attempts = fields.Int(load_default=5, validate=validate.Range(min=1, max=50))
    base_seconds = fields.Float(load_default=30.0, validate=validate.Range(min=0))
    max_seconds = fields.Float(load_default=3600.0, validate=validate.Range(min=0))


class NotifySettingsSchema(_Strict):
    email = fields.Nested(EmailSchema, load_default=None)
    sms = fields.Nested(SmsSchema, load_default=None)
    brandname = fields.Nested(BrandnameSchema, load_default=None)
    webhooks = fields.List(fields.Nested(WebhookSchema), load_default=list)
    retry = fields.Nested(RetrySchema, load_default=lambda: RetrySchema().load({}))
    # A `sending` row older than this was left by a process killed mid-send and is sent again:
    # longer than every provider's timeout, so a live sender always finishes first.
    lease_seconds = fields.Float(load_default=60.0, validate=validate.Range(min=1))
    # The scheduler sleeps until the next row falls due or something wakes it (a plan, a re-send, a
    # receipt); with nothing due that it knows of, it still looks this often, for rows another notify
    # instance planned or scheduled and died before sending.
    poll_seconds = fields.Float(load_default=60.0, validate=validate.Range(min=0.01))
    # An SMS accepted by a carrier that sends receipts, with no receipt after this long, is a
    # temporary failure (tried again): above the carrier's validity period (docs/notifications.md).
    receipt_timeout_seconds = fields.Float(load_default=86400.0, validate=validate.Range(min=60))
    concurrency = fields.Int(load_default=10, validate=validate.Range(min=1, max=200))
    template_overrides = fields.Str(load_default=None)

    @validates_schema
    def _lease_outlives_timeouts(self, data, **_):
        if data["sms"] and data["brandname"]:
            raise ValidationError({"brandname": ["one SMS provider: the generic `sms` or the `brandname` gateway"]})
        timeouts = [s["timeout"] for s in (data["email"], data["sms"], data["brandname"], *data["webhooks"]) if s]
        if timeouts and data["lease_seconds"] <= max(timeouts):
            raise ValidationError({"lease_seconds": [f"must exceed every provider timeout ({max(timeouts)} s)"]})
        from motcua.contracts.events import EVENT_SCHEMAS
        for index, hook in enumerate(data["webhooks"]):
            unknown = sorted(set(hook["events"]) - set(EVENT_SCHEMAS))
            if unknown:
                raise ValidationError({"webhooks": {index: {"events": [f"unknown event(s) {', '.join(unknown)}"]}}})
            if [h["agency_code"] for h in data["webhooks"]].count(hook["agency_code"]) > 1:
                raise ValidationError({"webhooks": {index: {"agency_code": ["one webhook per agency"]}}})


@dataclass
class Receipts:
    """A generic carrier's reports: where its reference and status are in the body, what each status means."""

    token: str
    reference_path: str
    status_path: str
    outcomes: dict[str, str]  # carrier status → delivered | temporary-failure | permanent-failure

    @property
    def reference_field(self) -> str:
        return self.reference_path

    def read(self, body: dict) -> Report:
        reference = json_path(body, self.reference_path)
        carrier_status = json_path(body, self.status_path)
        if reference is None:
            raise ValidationFailed("missing", field=self.reference_path)
        outcome = self.outcomes.get(str(carrier_status))
        if outcome is None:
            raise ValidationFailed("unknown delivery status", field=self.status_path)
        return Report(str(reference), str(carrier_status), outcome)


@dataclass
class BrandnameReceipts:
    """The brandname gateway's reports (brandname.read_report)."""

    token: str
    reference_field = "SMSID"

    def read(self, body: dict) -> Report:
        return read_report(body)


@dataclass
class Settings:
    email: Provider
    sms: Provider
    webhooks: list[tuple[str, Webhook, frozenset[str]]]  # (agency code, provider, event types)
    limiters: dict[str, RateLimiter]
    receipts: dict[str, Receipts | BrandnameReceipts]
    retry: dict
    lease_seconds: float
    poll_seconds: float
    receipt_timeout_seconds: float
    concurrency: int
    templates: Templates


def _secret(name: str) -> str:
    value = os.environ.get(name)
    if not value:
        raise CatalogError(f"notify settings: environment variable {name} (a secret) is not set")
    return value


def raw_settings(container_config: dict) -> dict:
    """The validated settings data, from the container config or the NOTIFY_CONFIG file."""
    if container_config.get("NOTIFY") is not None:
        try:
            return NotifySettingsSchema().load(container_config["NOTIFY"])
        except ValidationError as exc:
            raise CatalogError(f"NOTIFY settings: {exc.messages}") from None
    path = env("NOTIFY_CONFIG")
    return load_data(Path(path), NotifySettingsSchema()) if path else NotifySettingsSchema().load({})


def load_settings(container_config: dict, registry: CollectorRegistry | None = None) -> Settings:
    """The settings, providers built; `registry` the service's metrics (the brandname gateway's counters)."""
    data = raw_settings(container_config)
    smtp = container_config["SMTP"]
    limiters: dict[str, RateLimiter] = {}

    def limited(provider, section):
        limiters[provider.name] = RateLimiter((section or {}).get("rate_per_second"), (section or {}).get("burst"))
        return provider

    mail = data["email"]
    if mail:
        email = SmtpEmail(mail["host"], mail["port"] or (465 if mail["security"] == "ssl" else 25),
                          security=mail["security"], username=mail["username"],
                          password=_secret(mail["password_env"]) if mail["password_env"] else None,
                          timeout=mail["timeout"], ca_file=mail["ca_file"])
    elif smtp.get("host"):
        email = SmtpEmail(smtp["host"], int(smtp.get("port") or 25), security=env("SMTP_SECURITY", "none"),
                          username=env("SMTP_USERNAME"), password=env("SMTP_PASSWORD"))
    elif is_production():
        raise SystemExit("MOTCUA_ENV=production needs an SMTP host for notify's email (SMTP_HOST, or an email "
                         "section in NOTIFY_CONFIG): the mailbox file is for development only")
    else:
        email = MailboxEmail(smtp["mailbox"])
    limited(email, mail)

    receipts = {}
    text = data["sms"]
    if text:
        auth, headers = None, dict(text["headers"])
        if text["auth"]:
            secret = _secret(text["auth"]["secret_env"])
            kind = text["auth"]["type"]
            if kind == "basic":
                auth = (text["auth"]["username"] or "", secret)
            elif kind == "bearer":
                headers["Authorization"] = f"Bearer {secret}"
            else:
                headers[text["auth"]["header"] or "X-Api-Key"] = secret
        rule = text["success"]
        sms = HttpSms(text["name"], text["url"], text["body_template"], method=text["method"],
                      content_type=text["content_type"], headers=headers, auth=auth, sender=text["sender"],
                      timeout=text["timeout"], awaits_receipt=text["receipts"] is not None,
                      success=SuccessRule(tuple(rule["status"]), rule["json_path"], tuple(rule["equals"]),
                                          tuple(rule["temporary_codes"]), rule["reference_path"]))
        if text["receipts"]:
            r = text["receipts"]
            outcomes = {**{s: "temporary-failure" for s in r["temporary"]},
                        **{s: "permanent-failure" for s in r["permanent"]}, **{s: "delivered" for s in r["delivered"]}}
            receipts[sms.name] = Receipts(_secret(r["token_env"]), r["reference_path"], r["status_path"], outcomes)
    elif data["brandname"]:
        brand = data["brandname"]
        sms = BrandnameSms(brand["name"], brand["url"], _secret(brand["api_key_env"]), _secret(brand["secret_key_env"]),
                           brand["brandname"], callback_url=brand["callback_url"],
                           callback_token=_secret(brand["receipt_token_env"]) if brand["callback_url"] else None,
                           sms_type=brand["sms_type"],
                           unicode=brand["unicode"], max_segments=brand["max_segments"], sandbox=brand["sandbox"],
                           timeout=brand["timeout"], metrics=BrandnameMetrics(registry))
        if brand["callback_url"]:
            receipts[sms.name] = BrandnameReceipts(_secret(brand["receipt_token_env"]))
    else:
        sms = OutboxSms(env("NOTIFY_SMS_OUTBOX") or Path(smtp["mailbox"]).with_name("sms-outbox.jsonl"))
    limited(sms, text or data["brandname"])

    webhooks = []
    for hook in data["webhooks"]:
        provider = limited(Webhook(f"webhook-{hook['agency_code']}", hook["url"], _secret(hook["secret_env"]).encode(),
                                   timeout=hook["timeout"]), hook)
        webhooks.append((hook["agency_code"], provider, frozenset(hook["events"])))

    overrides = data["template_overrides"]
    return Settings(email=email, sms=sms, webhooks=webhooks, limiters=limiters, receipts=receipts,
                    retry=data["retry"], lease_seconds=data["lease_seconds"], poll_seconds=data["poll_seconds"],
                    receipt_timeout_seconds=data["receipt_timeout_seconds"], concurrency=data["concurrency"],
                    templates=Templates.load(overrides=Path(overrides) if overrides else None))
