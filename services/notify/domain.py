"""Notifying citizens and agencies' systems: each message goes out once per (event, channel, recipient).

Two halves, joined by the delivery log (the `deliveries` table):

* `plan()` runs in the event handler. Once per event (the inbox, `uow.apply_once`), it writes one
  row per message owed (unique on event, channel, recipient hash): the applicant's email and SMS
  when the template table has them and the citizen has not opted out, each agency webhook that
  subscribes to the event. Then the event is acked: nothing waits on the broker.
* `dispatch()` runs in notify's scheduler (a managed greenthread, `dependencies.Notifications`),
  woken by `plan()` and every `poll_seconds`. It takes due rows, per provider within its rate
  limit, with one conditional UPDATE each (created / temporary-failure due / `sending` whose lease
  ran out → sending, attempts + 1, committed), so of two notify instances only one sends a row;
  at most `concurrency` rows a round, all sent at once, so no claimed row waits out its lease.
  Right before sending, one more conditional UPDATE renews the lease (same attempt, still
  `sending`): a sender that finds the row taken over does not send it. It sends outside any
  transaction and records the outcome:
  delivered; temporary-failure → tried again after an exponential backoff with jitter, until the
  last try, then dead-lettered; permanent- or technical-failure → dead-lettered at once. A dead
  letter stays in the log, visible in the API and metrics, until an officer re-sends it. An SMS
  accepted by a carrier that sends receipts, with no receipt after `receipt_timeout_seconds`, is a
  temporary failure.

A process killed mid-send leaves its row `sending`: when the lease runs out, the row is sent again,
so a message is not lost. The one window left is a crash after the provider accepted the message
and before the commit that follows: that message may go twice, never zero times (the same
Message-ID, SMS reference and webhook delivery id both times, so the far side can fold the pair).
"""
from __future__ import annotations

import hashlib
import hmac
import json
import logging
import random
import re
from datetime import datetime, timedelta, tzinfo
from email.message import EmailMessage
from email.utils import parseaddr
from typing import Callable

import eventlet
from prometheus_client import CollectorRegistry, Counter, Histogram
from sqlalchemy import and_, func, or_, select, update
from sqlalchemy.orm import Session, sessionmaker

from motcua.contracts import Event
from motcua.contracts.events import EVENT_SCHEMAS
from motcua.db import UnitOfWork, utcnow
from motcua.errors import Conflict, NotFound, Unauthorized, ValidationFailed
from motcua.privacy import mask_email
from services.notify import sms
from services.notify.models import (
    CREATED,
    DELIVERED,
    PERMANENT,
    SENDING,
    SKIPPED,
    TECHNICAL,
    TEMPORARY,
    Delivery,
    Preference,
)
from services.notify.providers import (
    Outgoing,
    PermanentFailure,
    TemporaryFailure,
    json_path,
)
from services.notify.settings import Settings
from services.notify.templates import AGENCY_EVENTS, agency_of, dossier_code_of, message_context, templatable

log = logging.getLogger(__name__)

EMAIL, SMS, WEBHOOK = "email", "sms", "webhook"
CITIZEN_CHANNELS = (EMAIL, SMS)
# One mailbox, no display name, nothing that could add a header or a second recipient.
_ADDRESS = re.compile(r'[^@\s<>,;:"()\[\]\\]+@[^@\s<>,;:"()\[\]\\]+')
LEGAL_BASIS = ("Nghị định 118/2025/NĐ-CP (cơ chế một cửa): thông báo cho người nộp hồ sơ về việc tiếp nhận, "
               "bổ sung, từ chối và trả kết quả giải quyết thủ tục hành chính mà họ yêu cầu")
DELIVERY_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600, 21600, 86400)


class NotifyMetrics:
    """sent/failed per channel and provider, delivery latency, retries, dead letters (no personal data)."""

    def __init__(self, registry: CollectorRegistry):
        labels = ["channel", "provider"]
        self.outcomes = Counter("motcua_notifications", "Notification outcomes by channel, provider and status",
                                ["channel", "provider", "status"], registry=registry)
        self.latency = Histogram("motcua_notification_delivery_seconds",
                                 "From the event's message being owed to its delivery", labels,
                                 buckets=DELIVERY_BUCKETS, registry=registry)
        self.retries = Counter("motcua_notification_retries", "Temporary failures scheduled for another try",
                               labels, registry=registry)
        self.dead_letters = Counter("motcua_notification_dead_letters", "Messages dead-lettered after their last try",
                                    labels, registry=registry)
        self.resent = Counter("motcua_notification_resent", "Dead letters re-sent by an officer", labels,
                              registry=registry)


def masked_recipient(channel: str, address: str) -> str:
    """n***@example.com, 091****678: enough for an officer to recognise, not enough to write to."""
    if not address:
        return ""
    if channel == EMAIL:
        return mask_email(address) if usable_address(address) else "***"
    if channel == SMS:
        return sms.mask_phone(address)
    return address  # a webhook's name: not personal data


def recipient_hash(address: str, secret: bytes) -> str:
    """Keyed SHA-256 of the normalised address: a stable key that a dictionary cannot reverse."""
    return hmac.new(secret, address.strip().lower().encode(), hashlib.sha256).hexdigest()


def usable_address(address: str) -> bool:
    return bool(_ADDRESS.fullmatch(address))


def _due(now: datetime):
    """Rows a dispatcher may take now (the same condition guards the claiming UPDATE)."""
    return or_(and_(Delivery.status.in_((CREATED, TEMPORARY)), Delivery.dead_lettered_at.is_(None),
                    Delivery.next_attempt_at <= now),
               and_(Delivery.status == SENDING, Delivery.sent_at.is_(None), Delivery.lease_until <= now))


class Notifier:
    """Plans and dispatches messages; plain code, wired by dependencies.py."""

    def __init__(self, settings: Settings, sessions: sessionmaker, sender: str, tz: tzinfo, secret: bytes,
                 metrics: NotifyMetrics, agency_names: dict[str, str] | None = None,
                 agency_emails: dict[str, str] | None = None, clock: Callable[[], datetime] = utcnow,
                 jitter: Callable[[], float] = random.random):
        self.settings = settings
        self.templates = settings.templates
        self.sessions = sessions
        self.sender = sender
        self.tz = tz
        self.secret = secret
        self.metrics = metrics
        self.agency_names = agency_names or {}
        self.agency_emails = agency_emails or {}  # agencies' offices, for AGENCY_EVENTS (agencies.yaml `email`)
        self.clock = clock
        self.jitter = jitter
        self.wake: Callable[[], None] = lambda: None  # set by the scheduler

    # --- planning (event handlers) ---------------------------------------------------------------

    def plan(self, uow: UnitOfWork, event: Event) -> bool:
        """Record the messages `event` owes, once per event; False for a duplicate event."""
        planned = uow.apply_once(event, "notify.plan", self._plan)
        if planned:
            self.wake()
        return planned

    def _plan(self, uow: UnitOfWork, event: Event) -> None:
        data = event.data
        code = dossier_code_of(data)
        agency = data.get("agency_code") or agency_of(code)
        if templatable(event.event_type):
            to_agency = event.event_type in AGENCY_EVENTS  # the agency's office, not the applicant
            contact = {"email": self.agency_emails.get(agency)} if to_agency else data.get("contact") or {}
            context = message_context(event.event_type, data, self.tz, self.agency_names)
            opted_out = set() if to_agency else self._opted_out(uow.session, code)
            for channel in self.templates.channels(event.event_type, agency):
                raw = (contact.get("email") if channel == EMAIL else contact.get("phone")) or ""
                address = raw.strip() if channel == EMAIL else (sms.normalise_phone(raw) or "")
                reason = None
                if not raw.strip():
                    reason = "no_agency_address" if to_agency else "no_address"
                elif channel == EMAIL and not usable_address(address) or channel == SMS and not address:
                    reason, address = "invalid_address", raw.strip()
                elif channel in opted_out:
                    reason = "opted_out"
                self._add(uow.session, event, agency, channel, self._provider(channel).name, address,
                          None if reason else context, reason)
        version, schema = EVENT_SCHEMAS[event.event_type]
        for hook_agency, hook, events in self.settings.webhooks:
            if hook_agency == agency and event.event_type in events:
                wire = {k: v for k, v in schema.dump(event.data).items() if k != "contact"}
                body = {"event_id": event.event_id, "event_type": event.event_type, "version": version,
                        "source": event.source, "occurred_at": event.occurred_at.isoformat(), "data": wire}
                self._add(uow.session, event, agency, WEBHOOK, hook.name, hook.name, body, None)

    def _add(self, session: Session, event: Event, agency: str, channel: str, provider: str, address: str,
             context: dict | None, skip_reason: str | None) -> None:
        now = self.clock()
        session.add(Delivery(
            event_id=event.event_id, event_type=event.event_type, dossier_code=dossier_code_of(event.data),
            agency_code=agency, channel=channel, provider=provider,
            recipient_hash=recipient_hash(address, self.secret) if address else "",
            recipient_masked=masked_recipient(channel, address),
            address=None if skip_reason else address, context=context,
            status=SKIPPED if skip_reason else CREATED, reason=skip_reason, attempts=0, resends=0,
            next_attempt_at=None if skip_reason else now, created_at=now, updated_at=now))
        if skip_reason:
            self.metrics.outcomes.labels(channel, provider, SKIPPED).inc()

    def _opted_out(self, session: Session, dossier_code: str) -> set[str]:
        return {channel for channel, choice in current_preferences(session, dossier_code).items()
                if choice is not None and choice.opted_out}

    def _provider(self, channel: str, name: str | None = None):
        if channel == EMAIL:
            return self.settings.email
        if channel == SMS:
            return self.settings.sms
        for _agency, hook, _events in self.settings.webhooks:
            if hook.name == name:
                return hook
        raise LookupError(f"no webhook provider {name!r} configured any more")

    # --- dispatching (the scheduler) -------------------------------------------------------------

    def dispatch(self, limit: int = 100) -> int:
        """Take the due rows (within each provider's rate limit) and send them; returns how many.

        At most `concurrency` rows are claimed per round, all sent at once, so no claimed row waits
        for a free sender while its lease runs out (and another instance takes it over)."""
        now = self.clock()
        self._expire_receipts(now)
        with self.sessions() as session:
            candidates = session.execute(
                select(Delivery.id, Delivery.channel, Delivery.provider, Delivery.attempts).where(_due(now))
                .order_by(Delivery.next_attempt_at, Delivery.id).limit(limit)).all()
            taken = []
            for delivery_id, channel, provider, attempts in candidates:
                if len(taken) == self.settings.concurrency:
                    break  # the rest stays due for the next round
                limiter = self.settings.limiters.get(provider)
                if limiter is not None and not limiter.try_acquire():
                    continue  # this provider's share of this round is used up: it stays due
                claimed = session.execute(
                    update(Delivery).where(Delivery.id == delivery_id, Delivery.attempts == attempts, _due(now))
                    .values(status=SENDING, attempts=attempts + 1, updated_at=now,
                            lease_until=now + timedelta(seconds=self.settings.lease_seconds))
                    .execution_options(synchronize_session=False)).rowcount
                session.commit()  # the claim is durable before anything is sent
                if claimed == 1:
                    taken.append((delivery_id, attempts + 1))
        pool = eventlet.GreenPool(self.settings.concurrency)
        for delivery_id, attempts in taken:
            pool.spawn_n(self._send, delivery_id, attempts)
        pool.waitall()
        return len(taken)

    def _expire_receipts(self, now: datetime) -> None:
        """An SMS accepted by the carrier whose receipt has not come within `receipt_timeout_seconds`
        is a temporary failure: tried again, then dead-lettered, by the usual rules."""
        cutoff = now - timedelta(seconds=self.settings.receipt_timeout_seconds)
        with self.sessions() as session:
            # Locked as `receipt()` locks it: a receipt arriving now is applied before or after, never lost
            # under this (PostgreSQL re-checks the condition on the locked row).
            expired = session.scalars(select(Delivery).where(
                Delivery.status == SENDING, Delivery.sent_at.is_not(None), Delivery.sent_at <= cutoff)
                .order_by(Delivery.id).with_for_update()).all()
            for delivery in expired:
                self._temporary(delivery, f"no receipt within {self.settings.receipt_timeout_seconds:g} s")
            session.commit()

    def _send(self, delivery_id: int, attempts: int) -> None:
        with self.sessions() as session:
            now = self.clock()
            # Still ours? Renew the lease, and send only if this claim (its attempt number) still holds
            # the row: had the lease run out before this point, another instance may be sending it.
            held = session.execute(
                update(Delivery).where(Delivery.id == delivery_id, Delivery.status == SENDING,
                                       Delivery.attempts == attempts, Delivery.sent_at.is_(None))
                .values(updated_at=now, lease_until=now + timedelta(seconds=self.settings.lease_seconds))
                .execution_options(synchronize_session=False)).rowcount
            session.commit()
            if held != 1:
                log.warning("delivery %s attempt %d: taken over by another dispatcher, not sent", delivery_id,
                            attempts)
                return
            delivery = session.get(Delivery, delivery_id)
            try:
                provider = self._provider(delivery.channel, delivery.provider)
                message = self.compose(delivery)
            except Exception as exc:  # a template that no longer renders, a webhook removed
                self._final(delivery, TECHNICAL, type(exc).__name__)
                session.commit()
                return
            delivery.provider = provider.name
            delivery.segments = sms.measure(message.body).segments if delivery.channel == SMS else None
            session.commit()  # no connection held while the provider works (SQLite has one)
            started = self.clock()
            try:
                reference = provider.send(message)
            except TemporaryFailure as exc:
                self._temporary(delivery, str(exc))
            except PermanentFailure as exc:
                self._final(delivery, PERMANENT, str(exc))
            except Exception as exc:
                self._final(delivery, TECHNICAL, type(exc).__name__)
            else:
                if provider.awaits_receipt:
                    delivery.sent_at, delivery.lease_until = started, None
                    delivery.provider_ref = reference or message.key
                    delivery.updated_at = self.clock()
                else:
                    self._delivered(delivery)
            session.commit()

    def compose(self, delivery: Delivery) -> Outgoing:
        key = f"{delivery.event_id}.{delivery.channel}"
        if delivery.channel == WEBHOOK:
            return Outgoing(WEBHOOK, delivery.address, key, json.dumps(delivery.context, ensure_ascii=False),
                            headers={"X-Motcua-Event": delivery.event_type, "X-Motcua-Delivery": key})
        rendered = self.templates.render(delivery.event_type, delivery.channel, delivery.context,
                                         delivery.agency_code)
        if delivery.channel == SMS:
            return Outgoing(SMS, delivery.address, key, rendered.body)
        email = EmailMessage()
        email["From"] = self.sender
        email["To"] = delivery.address
        email["Subject"] = rendered.subject
        # The same id on every attempt: a repeat after a crash is recognisable as the same message.
        email["Message-ID"] = f"<{key}@{_domain_of(self.sender)}>"
        email.set_content(rendered.body, charset="utf-8", cte="quoted-printable")
        return Outgoing(EMAIL, delivery.address, key, rendered.body, subject=rendered.subject, email=email)

    def backoff(self, attempts: int) -> float:
        """Seconds before try `attempts + 1`: base·2^(attempts-1), capped, half of it jittered."""
        retry = self.settings.retry
        delay = min(retry["max_seconds"], retry["base_seconds"] * 2 ** (attempts - 1))
        return delay / 2 + self.jitter() * delay / 2

    def _temporary(self, delivery: Delivery, reason: str) -> None:
        now = self.clock()
        delivery.status, delivery.reason, delivery.updated_at = TEMPORARY, reason[:128], now
        delivery.lease_until = delivery.sent_at = delivery.provider_ref = None
        self.metrics.outcomes.labels(delivery.channel, delivery.provider, TEMPORARY).inc()
        if delivery.attempts >= self.settings.retry["max_attempts"]:
            self._dead_letter(delivery, now)
        else:
            delivery.next_attempt_at = now + timedelta(seconds=self.backoff(delivery.attempts))
            self.metrics.retries.labels(delivery.channel, delivery.provider).inc()
        log.warning("%s delivery %s (%s) failed, attempt %d: %s", delivery.channel, delivery.id,
                    delivery.provider, delivery.attempts, reason)

    def _final(self, delivery: Delivery, status: str, reason: str) -> None:
        now = self.clock()
        delivery.status, delivery.reason, delivery.updated_at = status, reason[:128], now
        delivery.lease_until = None
        self.metrics.outcomes.labels(delivery.channel, delivery.provider, status).inc()
        self._dead_letter(delivery, now)
        log.warning("%s delivery %s (%s): %s: %s", delivery.channel, delivery.id, delivery.provider, status, reason)

    def _dead_letter(self, delivery: Delivery, now: datetime) -> None:
        delivery.dead_lettered_at, delivery.next_attempt_at = now, None
        self.metrics.dead_letters.labels(delivery.channel, delivery.provider).inc()
        log.error("%s delivery %s dead-lettered after %d attempt(s)", delivery.channel, delivery.id,
                  delivery.attempts)

    def _delivered(self, delivery: Delivery) -> None:
        now = self.clock()
        delivery.status, delivery.reason, delivery.delivered_at, delivery.updated_at = DELIVERED, None, now, now
        delivery.lease_until = delivery.next_attempt_at = None
        delivery.address = delivery.context = None  # what was needed to send it is no longer kept
        self.metrics.outcomes.labels(delivery.channel, delivery.provider, DELIVERED).inc()
        self.metrics.latency.labels(delivery.channel, delivery.provider).observe(
            (now - delivery.created_at).total_seconds())

    # --- officers and carriers (RPC) --------------------------------------------------------------

    def resend(self, session: Session, delivery_id: int) -> Delivery:
        """Put a dead letter back in the queue, with a fresh set of tries."""
        delivery = session.get(Delivery, delivery_id, with_for_update=True)
        if delivery is None:
            raise NotFound("no such delivery", field="delivery_id")
        if delivery.dead_lettered_at is None:
            raise Conflict("only a dead-lettered delivery can be re-sent", field="delivery_id")
        now = self.clock()
        delivery.status, delivery.attempts, delivery.resends = CREATED, 0, delivery.resends + 1
        delivery.dead_lettered_at, delivery.next_attempt_at, delivery.updated_at = None, now, now
        session.commit()
        self.metrics.resent.labels(delivery.channel, delivery.provider).inc()
        self.wake()
        return delivery

    def receipt(self, session: Session, provider: str, token: str, body: dict) -> Delivery:
        """A carrier's delivery receipt (DLR) for an SMS it accepted earlier."""
        receipts = self.settings.receipts.get(provider)
        if receipts is None or not hmac.compare_digest(receipts.token.encode(), (token or "").encode()):
            raise Unauthorized("unknown provider or wrong receipt token")
        reference = json_path(body, receipts.reference_path)
        carrier_status = json_path(body, receipts.status_path)
        outcome = receipts.outcomes.get(str(carrier_status))
        if reference is None:
            raise ValidationFailed("missing", field=receipts.reference_path)
        if outcome is None:
            raise ValidationFailed("unknown delivery status", field=receipts.status_path)
        delivery = session.scalars(select(Delivery).where(
            Delivery.provider == provider, Delivery.provider_ref == str(reference)).with_for_update()).first()
        if delivery is None:
            raise NotFound("no message with this reference", field=receipts.reference_path)
        if delivery.status == SENDING and delivery.sent_at is not None:  # a repeated receipt changes nothing
            if outcome == DELIVERED:
                self._delivered(delivery)
            elif outcome == TEMPORARY:
                self._temporary(delivery, f"receipt {carrier_status}")
                self.wake()
            else:
                self._final(delivery, PERMANENT, f"receipt {carrier_status}")
            session.commit()
        return delivery

    def set_preferences(self, session: Session, dossier_code: str, choices: dict[str, bool],
                        source: str) -> dict:
        """Record the citizen's choices (True = send on this channel); opting out also cancels
        the messages of the dossier still waiting on that channel."""
        now = self.clock()
        current = current_preferences(session, dossier_code)
        for channel, enabled in choices.items():
            choice = current[channel]
            if choice is None or choice.opted_out == enabled:  # first explicit choice, or a change
                session.add(Preference(dossier_code=dossier_code, channel=channel, opted_out=not enabled,
                                       legal_basis=LEGAL_BASIS, source=source, recorded_at=now))
            if not enabled:
                session.execute(
                    update(Delivery).where(Delivery.dossier_code == dossier_code, Delivery.channel == channel,
                                           Delivery.status.in_((CREATED, TEMPORARY)),
                                           Delivery.dead_lettered_at.is_(None))
                    .values(status=SKIPPED, reason="opted_out", address=None, context=None, next_attempt_at=None,
                            updated_at=now)
                    .execution_options(synchronize_session=False))
        session.commit()
        return preferences_view(session, dossier_code)


def current_preferences(session: Session, dossier_code: str) -> dict[str, Preference | None]:
    latest = {channel: None for channel in CITIZEN_CHANNELS}
    for choice in session.scalars(select(Preference).where(Preference.dossier_code == dossier_code)
                                  .order_by(Preference.recorded_at, Preference.id)):
        latest[choice.channel] = choice
    return latest


def preferences_view(session: Session, dossier_code: str) -> dict:
    view = {}
    for channel, choice in current_preferences(session, dossier_code).items():
        view[channel] = {"enabled": choice is None or not choice.opted_out, "legal_basis": LEGAL_BASIS,
                         "recorded_at": choice.recorded_at if choice else None,
                         "source": choice.source if choice else None}
    return view


def _domain_of(sender: str) -> str:
    return parseaddr(sender)[1].rpartition("@")[2] or "motcua.local"


def list_deliveries(session: Session, dossier_code: str) -> list[Delivery]:
    """The deliveries of one dossier, oldest first (recipients only masked)."""
    return list(session.scalars(
        select(Delivery).where(Delivery.dossier_code == dossier_code).order_by(Delivery.created_at, Delivery.id)))


def list_dead_letters(session: Session, limit: int = 100) -> list[Delivery]:
    return list(session.scalars(select(Delivery).where(Delivery.dead_lettered_at.is_not(None))
                                .order_by(Delivery.dead_lettered_at.desc(), Delivery.id.desc()).limit(limit)))


def open_dead_letters(session: Session) -> dict[tuple, float]:
    """Dead letters waiting for an officer, by channel (a scrape-time gauge)."""
    rows = session.execute(select(Delivery.channel, func.count()).where(Delivery.dead_lettered_at.is_not(None))
                           .group_by(Delivery.channel))
    return {(channel,): count for channel, count in rows}
