"""SMS through a brandname gateway (tin nhắn thương hiệu, SMS Brandname CSKH), in the HTTP API the
Vietnamese aggregators speak (eSMS's `SendMultipleMessage_V4_post_json`: docs/connections.md).

One request per message: `ApiKey`, `SecretKey`, `Phone` (0xxxxxxxxx), `Content`, `Brandname` (the
province's registered sender name), `SmsType` 2 (customer care), `IsUnicode` 0/1, `Sandbox`,
`RequestId` (our per-message id: the gateway refuses to send the same id twice, so a retry after a lost
answer is not a second SMS, nor a second charge) and `CallbackUrl` (where the delivery report goes: the
gateway's receipt URL with the report token, since the gateway signs nothing). The
answer: `{"CodeResult": "100", "SMSID": …}` accepted, else an error code. The report comes later as an
HTTP GET on the callback URL: `SMSID`, `SendStatus` (1 awaiting approval, 2 waiting to send, 4 refused,
5 sent, 7 at the carrier awaiting its report), `SendSuccess`, `SendFailed`, `RequestId`, `telcoid`,
`phonenumber`.

Content by the gateway's rules: unaccented GSM-7 (160 characters, 153 a part when longer) unless the
brandname is registered for Unicode (`unicode: true`: 70, 67 a part); at most `max_segments` parts:
Unicode text that would need more is sent unaccented, unaccented text is cut (with "...").
"""
from __future__ import annotations

import unicodedata
from urllib.parse import urlencode

import requests
from prometheus_client import CollectorRegistry, Counter, Histogram

from motcua.errors import ValidationFailed
from motcua.http import CallFailed, post_json
from services.notify import sms
from services.notify.delivery import DELIVERED, PERMANENT, TEMPORARY
from services.notify.providers import Outgoing, PermanentFailure, Report, TemporaryFailure

ACCEPTED = "100"
# Codes worth another try: an unknown error at the gateway, the account's balance, the API keys (our
# configuration: retried, then dead-lettered, where an operator sees it). Any other code is permanent.
TEMPORARY_CODES = frozenset({"99", "101", "103"})
# SendStatus of a report: only these end a message; 1, 2 and 7 say it is still on its way.
SENT, REFUSED = "5", "4"


class BrandnameMetrics:
    """`motcua_sms_gateway_requests_total{provider,outcome}` (accepted, refused, retry, garbage,
    unreachable), `motcua_sms_gateway_parts_total{provider,encoding}` (the parts billed),
    `motcua_sms_gateway_seconds{provider}` (a request's duration)."""

    def __init__(self, registry: CollectorRegistry | None = None):
        self.registry = registry = registry or CollectorRegistry()
        self.requests = Counter("motcua_sms_gateway_requests", "Requests to the SMS brandname gateway",
                                ["provider", "outcome"], registry=registry)
        self.parts = Counter("motcua_sms_gateway_parts", "SMS parts accepted by the brandname gateway",
                             ["provider", "encoding"], registry=registry)
        self.seconds = Histogram("motcua_sms_gateway_seconds", "Duration of a request to the SMS gateway",
                                 ["provider"], registry=registry)


class BrandnameSms:
    channel = "sms"

    def __init__(self, name: str, url: str, api_key: str, secret_key: str, brandname: str,
                 callback_url: str | None = None, callback_token: str | None = None, sms_type: str = "2",
                 unicode: bool = False,
                 max_segments: int = 3, sandbox: bool = False, timeout: float = 10.0,
                 metrics: BrandnameMetrics | None = None):
        if not 1 <= max_segments <= 10:
            raise ValueError("max_segments must be 1 to 10")
        self.name, self.url = name, url
        self.api_key, self.secret_key = api_key, secret_key
        self.brandname, self.sms_type, self.unicode = brandname, sms_type, unicode
        # The reports come back to the gateway's receipt URL with our token (the gateway signs nothing).
        self.callback_url = (f"{callback_url}{'&' if '?' in callback_url else '?'}{urlencode({'token': callback_token})}"
                             if callback_url else None)
        self.max_segments, self.sandbox, self.timeout = max_segments, sandbox, timeout
        self.metrics = metrics or BrandnameMetrics()
        self.awaits_receipt = callback_url is not None

    def text_of(self, message: Outgoing) -> str:
        """The content as the gateway takes it (see the module's rules)."""
        if self.unicode and message.accented:
            accented = unicodedata.normalize("NFC", message.accented)
            if sms.measure(accented).segments <= self.max_segments:
                return accented
        return sms.fit(sms.unaccent(message.body), self.max_segments)

    def request_body(self, message: Outgoing) -> dict:
        text = self.text_of(message)
        body = {"ApiKey": self.api_key, "SecretKey": self.secret_key, "Phone": message.to, "Content": text,
                "Brandname": self.brandname, "SmsType": self.sms_type,
                "IsUnicode": "1" if sms.measure(text).encoding == "UCS-2" else "0",
                "Sandbox": "1" if self.sandbox else "0", "RequestId": message.key}
        if self.callback_url:
            body["CallbackUrl"] = self.callback_url
        return body

    def send(self, message: Outgoing) -> str | None:
        body = self.request_body(message)
        try:
            answer = post_json(requests, self.url, body, call="send", timeout=self.timeout,
                               seconds=self.metrics.seconds.labels(self.name))
        except CallFailed as failure:
            if failure.answer is None:
                self._count(failure.outcome)
                raise TemporaryFailure(failure.reason) from None
            answer = failure.answer  # a refusal that explains itself: its CodeResult says which
        code = str(answer.get("CodeResult"))
        if code != ACCEPTED:
            self._count("retry" if code in TEMPORARY_CODES else "refused")
            failure = TemporaryFailure if code in TEMPORARY_CODES else PermanentFailure
            raise failure(f"gateway code {code[:16]!r}")
        self._count("accepted")
        length = sms.measure(body["Content"])
        self.metrics.parts.labels(self.name, length.encoding).inc(length.segments)
        reference = answer.get("SMSID")
        return str(reference) if reference else None

    def _count(self, outcome: str) -> None:
        self.metrics.requests.labels(self.name, outcome).inc()

    def __repr__(self) -> str:
        return f"BrandnameSms({self.name}, {self.brandname})"


def read_report(params: dict) -> Report:
    """A delivery report's query parameters: delivered when sent with a success, permanent when refused or
    sent without one (the carrier could not deliver), not final otherwise."""
    reference = params.get("SMSID") or None
    if reference is None:
        raise ValidationFailed("missing", field="SMSID")
    status = str(params.get("SendStatus", ""))
    if status == SENT:
        delivered = _count(params.get("SendSuccess")) > 0
        outcome = DELIVERED if delivered else PERMANENT if _count(params.get("SendFailed")) > 0 else TEMPORARY
        return Report(reference, f"{status}/{'ok' if delivered else 'failed'}", outcome)
    if status == REFUSED:
        return Report(reference, status, PERMANENT)
    return Report(reference, status, None)


def _count(value) -> int:
    try:
        return int(str(value))
    except ValueError:
        return 0
