"""Channels behind one interface: a provider hands one `Outgoing` message to a transport.

`send()` returns the provider's reference for the message (an SMS gateway's id, for its delivery
receipts) or None, and raises `TemporaryFailure` (worth another try: connection refused, timeout,
SMTP 4xx, HTTP 5xx/429) or `PermanentFailure` (the same message will never go: SMTP 5xx for the
recipient, a carrier rejecting the number). Anything else it raises is a technical failure of ours.
Error messages carry status codes and error classes only, never an address or a phone number.

Providers: `SmtpEmail` (STARTTLS/SSL, auth), `MailboxEmail` (development's default: an mbox file),
`HttpSms` (any carrier's HTTP gateway, described as data), `OutboxSms` (the embedded default: a
JSON-lines file), `Webhook` (agencies' systems: JSON signed with HMAC-SHA256 and a timestamp).
All block on sockets or files, which eventlet's monkey-patching turns green.
"""
from __future__ import annotations

import fcntl
import hashlib
import hmac
import io
import json
import mailbox
import os
import re
import smtplib
import ssl
import threading
import time
from dataclasses import dataclass, field
from email.charset import QP, Charset
from email.generator import BytesGenerator
from email.header import Header
from email.message import Message
from email.mime.text import MIMEText
from email.utils import formataddr, parseaddr
from pathlib import Path
from typing import Callable, Protocol

import eventlet
import requests
from jinja2 import StrictUndefined
from jinja2.sandbox import SandboxedEnvironment

SIGNATURE_HEADER = "X-Motcua-Signature"


class TemporaryFailure(Exception):
    """Not delivered this time; another try later may succeed."""


class PermanentFailure(Exception):
    """Never deliverable as it stands (bad address or number, refused by the provider)."""


@dataclass
class Outgoing:
    """One rendered message for one recipient; `key` is unique per (event, channel, recipient)."""

    channel: str
    to: str
    key: str
    body: str
    subject: str = ""
    email: Message | None = None
    headers: dict[str, str] = field(default_factory=dict)
    accented: str = ""  # SMS: the text with its diacritics, for a gateway that may send Unicode


@dataclass(frozen=True)
class Report:
    """A carrier's delivery report (DLR) read: the message's reference at the carrier, the carrier's
    status, and what it means for us (delivered, temporary-failure, permanent-failure), or None while
    the message is still on its way."""

    reference: str | None
    carrier_status: str
    outcome: str | None


class Provider(Protocol):
    name: str
    channel: str
    awaits_receipt: bool

    def send(self, message: Outgoing) -> str | None: ...


class SmtpEmail:
    """SMTP relay: `security` none | starttls | ssl; LOGIN/PLAIN auth when a username is given.

    One connection per message: notifications are few next to a relay's idle timeout.
    """

    channel = "email"
    awaits_receipt = False

    def __init__(self, host: str, port: int = 25, security: str = "none", username: str | None = None,
                 password: str | None = None, timeout: float = 30.0, ca_file: str | None = None,
                 name: str = "smtp"):
        if security not in ("none", "starttls", "ssl"):
            raise ValueError(f"SMTP security must be none, starttls or ssl, not {security!r}")
        self.host, self.port, self.security = host, port, security
        self.username, self.password = username, password
        self.timeout = timeout
        self.ca_file = ca_file
        self.name = name

    def _tls(self) -> ssl.SSLContext:
        return ssl.create_default_context(cafile=self.ca_file)

    def send(self, message: Outgoing) -> None:
        # `timeout` bounds the whole exchange, not only each step, so a send always ends within the
        # delivery's lease and no other notify instance takes the row over mid-send.
        try:
            with eventlet.Timeout(self.timeout, TimeoutError("the SMTP exchange took too long")):
                self._exchange(message)
        except smtplib.SMTPRecipientsRefused as exc:
            codes = sorted({code for code, _text in exc.recipients.values()})
            raise _by_smtp_code(max(codes), "recipient refused") from None
        except smtplib.SMTPResponseException as exc:
            raise _by_smtp_code(exc.smtp_code, type(exc).__name__) from None
        except (smtplib.SMTPException, OSError) as exc:  # refused, reset, timeout, TLS handshake
            raise TemporaryFailure(type(exc).__name__) from None

    def _exchange(self, message: Outgoing) -> None:
        if self.security == "ssl":
            smtp = smtplib.SMTP_SSL(self.host, self.port, timeout=self.timeout, context=self._tls())
        else:
            smtp = smtplib.SMTP(self.host, self.port, timeout=self.timeout)
        with smtp:
            if self.security == "starttls":
                smtp.starttls(context=self._tls())
            if self.username:
                smtp.login(self.username, self.password or "")
            smtp.send_message(message.email)

    def __repr__(self) -> str:
        return f"SmtpEmail({self.host}:{self.port}, {self.security})"


def _by_smtp_code(code: int, what: str) -> Exception:
    # 535 (authentication) is our configuration, not the recipient: retried, then dead-lettered.
    if 500 <= code < 600 and code != 535:
        return PermanentFailure(f"SMTP {code} {what}")
    return TemporaryFailure(f"SMTP {code} {what}")


class MailboxEmail:
    """Appends each message to an mbox file, so a developer reads what citizens would receive; for
    development only (production refuses to start without an SMTP host: `settings.load_settings`).

    The same bytes as Python's `mailbox.mbox` writes, appended without reading the file first
    (`mailbox.mbox.add` scans the whole file for its table of contents: a cost that grew with every
    message). The lock against other processes (another notify instance, a mail reader) is fcntl's,
    which the kernel releases when its holder's process ends, however it ends: a SIGKILLed notify
    never blocks the next delivery. No dot-lock file (`<mbox>.lock`): one left behind by a killed
    holder failed every delivery until a person removed it."""

    channel = "email"
    awaits_receipt = False
    name = "mailbox"
    # A holder appends one message (milliseconds): one still holding the lock after this is a mail
    # reader or stuck, and the delivery is tried again later.
    LOCK_WAIT_SECONDS = 2.0

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self._lock = threading.Lock()  # green under eventlet: greenthreads of this process queue here

    def send(self, message: Outgoing) -> None:
        entry = mbox_entry(message.email)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self._lock, open(self.path, "ab") as mbox:
            self._lock_file(mbox)
            try:
                mbox.write(entry)
                mbox.flush()
                os.fsync(mbox.fileno())
            finally:
                fcntl.lockf(mbox, fcntl.LOCK_UN)

    def _lock_file(self, mbox) -> None:
        give_up_at = time.monotonic() + self.LOCK_WAIT_SECONDS
        while True:
            try:
                fcntl.lockf(mbox, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return
            except OSError:
                if time.monotonic() >= give_up_at:
                    raise TemporaryFailure("mailbox locked") from None
                eventlet.sleep(0.01)  # not a blocking lockf: it would stall every greenthread

    def __repr__(self) -> str:
        return f"MailboxEmail({self.path.name})"


_ONE_LINE = re.compile(r"[\r\n]+")
_UTF8_QP = Charset("utf-8")
_UTF8_QP.body_encoding = QP  # the body readable as it travels, its diacritics escaped


def plain_text_email(sender: str, to: str, subject: str, body: str, message_id: str) -> Message:
    """A UTF-8 text/plain message: the body quoted-printable, non-ASCII headers as RFC 2047 encoded words.

    Built on the email package's compat32 classes, not `EmailMessage`: the same bytes on the wire, at
    a fifth of the CPU (its default policy parses every header it is given back into objects)."""
    email = MIMEText(body, "plain", _UTF8_QP)
    email["From"] = _address(sender)
    email["To"] = _address(to)
    subject = _ONE_LINE.sub(" ", subject)  # a line break in a header would start a header of its own
    email["Subject"] = Header(subject, "utf-8") if not subject.isascii() else subject
    email["Message-ID"] = message_id
    return email


def _address(value: str) -> str:
    """`Name <addr>` with a non-ASCII name encoded (the address itself is ASCII: checked at the edge)."""
    name, address = parseaddr(value)
    return formataddr((name, address), charset="utf-8") if name else address


def mbox_entry(email: Message) -> bytes:
    """One message as `mailbox.mbox` appends it: a "From " line, the message with its own "From "
    lines quoted, and a blank line."""
    buffer = io.BytesIO()
    BytesGenerator(buffer, mangle_from_=True, maxheaderlen=0).flatten(email)
    data = buffer.getvalue().replace(b"\n", mailbox.linesep)
    if not data.endswith(mailbox.linesep):
        data += mailbox.linesep
    return b"From MAILER-DAEMON " + time.asctime(time.gmtime()).encode() + mailbox.linesep + data + mailbox.linesep


class OutboxSms:
    """The embedded default for SMS: one JSON line per message in a local file (never the mailbox)."""

    channel = "sms"
    awaits_receipt = False
    name = "outbox"

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self._lock = threading.Lock()

    def text_of(self, message: Outgoing) -> str:
        return message.body

    def send(self, message: Outgoing) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        line = json.dumps({"to": message.to, "text": message.body, "reference": message.key}, ensure_ascii=False)
        with self._lock, open(self.path, "a", encoding="utf-8") as outbox:
            outbox.write(line + "\n")

    def __repr__(self) -> str:
        return f"OutboxSms({self.path.name})"


# Carrier request bodies are templates too: sandboxed, every variable required.
_request_env = SandboxedEnvironment(undefined=StrictUndefined, autoescape=False)


def json_path(document, path: str):
    """`a.b.0.c` into parsed JSON; None when any step is missing."""
    for step in path.split(".") if path else []:
        if isinstance(document, list) and step.isdigit() and int(step) < len(document):
            document = document[int(step)]
        elif isinstance(document, dict) and step in document:
            document = document[step]
        else:
            return None
    return document


@dataclass(frozen=True)
class SuccessRule:
    """When a carrier's answer means "accepted": an HTTP status in `status`, and, if `json_path` is
    set, that field of the JSON answer among `equals`. A non-accepted answer is temporary when its
    HTTP status is 408/429/5xx or its code is in `temporary_codes`, else permanent."""

    status: tuple[int, ...] = (200, 201, 202)
    json_path: str | None = None
    equals: tuple[str, ...] = ()
    temporary_codes: tuple[str, ...] = ()
    reference_path: str | None = None

    def judge(self, response: requests.Response) -> str | None:
        code = response.status_code
        if code not in self.status:
            failure = TemporaryFailure if code in (408, 429) or code >= 500 else PermanentFailure
            raise failure(f"HTTP {code}")
        body = None
        if self.json_path or self.reference_path:
            try:
                body = response.json()
            except ValueError:
                raise TemporaryFailure(f"HTTP {code} with an answer that is not JSON") from None
        if self.json_path:
            value = json_path(body, self.json_path)
            value = "" if value is None else str(value)
            if value not in self.equals:
                failure = TemporaryFailure if value in self.temporary_codes else PermanentFailure
                raise failure(f"carrier code {value[:32]!r}")
        if self.reference_path:
            reference = json_path(body, self.reference_path)
            return None if reference is None else str(reference)
        return None


class HttpSms:
    """Any carrier's HTTP SMS gateway (VNPT, Viettel, MobiFone, an aggregator), described as data:
    URL, method, headers, auth, a body template, the success rule. The body template sees `to`
    (84xxxxxxxxx), `to_local` (0xxxxxxxxx), `text`, `reference` (our id, for receipts and the
    carrier's own duplicate check) and `sender` (the brandname)."""

    channel = "sms"

    def __init__(self, name: str, url: str, body_template: str, method: str = "POST",
                 content_type: str = "application/json", headers: dict[str, str] | None = None,
                 auth: tuple[str, str] | None = None, sender: str = "", timeout: float = 10.0,
                 success: SuccessRule = SuccessRule(), awaits_receipt: bool = False):
        self.name = name
        self.url = url
        self.method = method
        self.content_type = content_type
        self.headers = dict(headers or {})
        self.auth = auth
        self.sender = sender
        self.timeout = timeout
        self.success = success
        self.awaits_receipt = awaits_receipt
        self.template = _request_env.from_string(body_template)

    def text_of(self, message: Outgoing) -> str:
        return message.body

    def request_body(self, message: Outgoing) -> str:
        local = message.to
        international = "84" + local[1:] if local.startswith("0") else local
        return self.template.render(to=international, to_local=local, text=message.body,
                                    reference=message.key, sender=self.sender)

    def send(self, message: Outgoing) -> str | None:
        body = self.request_body(message).encode()
        try:
            response = requests.request(self.method, self.url, data=body, auth=self.auth, timeout=self.timeout,
                                        headers={"Content-Type": self.content_type, **self.headers})
        except requests.RequestException as exc:
            raise TemporaryFailure(type(exc).__name__) from None
        return self.success.judge(response)

    def __repr__(self) -> str:
        return f"HttpSms({self.name})"


def signature(secret: bytes, timestamp: int, body: bytes) -> str:
    """`t=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>.<body>">`: the receiver recomputes it and
    refuses a timestamp older than a few minutes (replay)."""
    digest = hmac.new(secret, f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={digest}"


def verify_signature(secret: bytes, header: str, body: bytes, now: float, tolerance: float = 300) -> bool:
    """What an agency's system does with the header (documented, and used by the tests)."""
    parts = dict(part.split("=", 1) for part in header.split(",") if "=" in part)
    try:
        timestamp = int(parts["t"])
    except (KeyError, ValueError):
        return False
    expected = signature(secret, timestamp, body)
    return abs(now - timestamp) <= tolerance and hmac.compare_digest(expected, header)


class Webhook:
    """POSTs the event as JSON to an agency's system, signed; 2xx = delivered."""

    channel = "webhook"
    awaits_receipt = False

    def __init__(self, name: str, url: str, secret: bytes, timeout: float = 10.0,
                 clock: Callable[[], float] = time.time):
        self.name = name
        self.url = url
        self.secret = secret
        self.timeout = timeout
        self.clock = clock

    def send(self, message: Outgoing) -> None:
        body = message.body.encode()
        headers = {"Content-Type": "application/json", **message.headers,
                   SIGNATURE_HEADER: signature(self.secret, int(self.clock()), body)}
        try:
            response = requests.post(self.url, data=body, headers=headers, timeout=self.timeout)
        except requests.RequestException as exc:
            raise TemporaryFailure(type(exc).__name__) from None
        if response.status_code // 100 != 2:
            code = response.status_code
            failure = TemporaryFailure if code in (408, 429) or code >= 500 else PermanentFailure
            raise failure(f"HTTP {code}")

    def __repr__(self) -> str:
        return f"Webhook({self.name})"


class RateLimiter:
    """A token bucket per provider: `rate` messages a second on average, bursts of `burst`.

    The dispatcher asks how many messages the provider may take now (`available`), claims at most
    that many in its round, and `take`s one token for each it claimed."""

    def __init__(self, rate: float | None, burst: int | None = None, clock: Callable[[], float] = time.monotonic):
        self.rate = rate
        self.capacity = float(burst or max(1, int(rate or 1)))
        self.tokens = self.capacity
        self.clock = clock
        self.updated = clock()

    def _refill(self) -> None:
        now = self.clock()
        self.tokens = min(self.capacity, self.tokens + (now - self.updated) * self.rate)
        self.updated = now

    def available(self) -> int:
        """Whole messages the provider may take now."""
        self._refill()
        return int(self.tokens)

    def take(self) -> None:
        self._refill()
        self.tokens -= 1

    def wait_seconds(self) -> float:
        """Until the provider may take one more message."""
        self._refill()
        return max(0.0, (1 - self.tokens) / self.rate)
