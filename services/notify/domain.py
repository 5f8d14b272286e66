"""Notifying citizens and agencies' systems: each message goes out once per (event, channel, recipient).

Two halves, joined by the delivery log (the `deliveries` table; the rules of one row are the plain
`Delivery` of delivery.py, and the `Notifier` here is the adapter that runs them):

* `plan_new()` runs in the service's batch handler, with the batch's events the inbox (consumer
  `PLANNER`) found new. It works out the messages each owes (`messages_owed`, plain code: the
  applicant's email and SMS when the template table has them and the citizen has not opted out, each
  agency webhook that subscribes to the event) and writes them all with one multi-row INSERT (ON
  CONFLICT DO NOTHING on the unique key: event, channel, recipient hash), after one look-up of the
  batch's citizens' choices. It does not commit: the consumer commits the batch, then acks it; once
  committed, the scheduler is woken (`uow.after_commit`).
* `dispatch()` is one round of notify's scheduler (a managed greenthread, `dependencies.Notifications`).
  It claims the due rows, at most `concurrency` of them and within each provider's rate limit, with
  ONE statement (`UPDATE … WHERE id IN (SELECT … FOR UPDATE SKIP LOCKED LIMIT n) RETURNING …`:
  created / temporary-failure due / `sending` whose lease ran out → sending, attempts + 1, lease),
  committed before anything is sent, so of two notify instances only one sends a try. It renders
  them, sends them all at once outside any transaction, and records the round's outcomes in one
  transaction (one UPDATE executed for all rows):
  delivered; temporary-failure → tried again after the kit's backoff (motcua/backoff.py), until the
  last try, then dead-lettered; permanent- or technical-failure → dead-lettered at once. A dead
  letter stays in the log, visible in the API and metrics, until an officer re-sends it. An SMS
  accepted by a carrier that sends receipts, with no receipt after `receipt_timeout_seconds`, is a
  temporary failure.
  A claim holds for `lease_seconds`, longer than any provider's timeout. Should a round's sends
  start so late that a lease could run out before they end (a stalled process), the round first
  renews its leases in one statement that matches only the claims still its own (same attempt,
  still `sending`), and sends only those: a row another instance took over is not sent twice.
* Between rounds the scheduler sleeps until the next row falls due (a retry, a lease running out),
  a wake from `plan_new()`, a re-send or a receipt, or the next receipt deadline; it looks for receipts
  that never came only while some message awaits one.

A process killed mid-send leaves its rows `sending`: when their lease runs out, they are sent again,
so a message is not lost. The one window left is a crash after a provider accepted a message and
before the commit that records the round (at most the slowest send of the round later): that
message may go twice, never zero times (the same Message-ID, SMS reference and webhook delivery id
both times, so the far side can fold the pair).
"""
from __future__ import annotations

import hashlib
import hmac
import json
import logging
import random
import re
from contextlib import contextmanager
from datetime import datetime, timedelta, timezone, tzinfo
from email.utils import parseaddr
from typing import Callable, Iterator

import eventlet
from prometheus_client import CollectorRegistry, Counter, Histogram

from motcua.contracts import Event
from motcua.contracts.events import EVENT_SCHEMAS
from motcua.db import utcnow
from motcua.errors import NotFound, Unauthorized
from motcua.privacy import mask_email
from motcua.text import normalise_phone
from services.notify import preferences, sms
from services.notify.delivery import (
    CREATED,
    DELIVERED,
    PERMANENT,
    SKIPPED,
    TECHNICAL,
    TEMPORARY,
    Delivery,
    RetryPolicy,
)
from services.notify.providers import (
    Outgoing,
    PermanentFailure,
    TemporaryFailure,
    plain_text_email,
)
from services.notify.repository import NotifyUnitOfWork
from services.notify.settings import Settings
from services.notify.templates import AGENCY_EVENTS, agency_of, dossier_code_of, message_context, templatable

log = logging.getLogger(__name__)

PLANNER = "notify.plan"  # the inbox consumer of every event notify plans messages for

EMAIL, SMS, WEBHOOK = "email", "sms", "webhook"
# One mailbox, no display name, nothing that could add a header or a second recipient.
_ADDRESS = re.compile(r'[^@\s<>,;:"()\[\]\\]+@[^@\s<>,;:"()\[\]\\]+')
DELIVERY_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600, 21600, 86400)
# Rows due but claimed by another dispatcher at this very moment: look again this much later.
BUSY_PAUSE = timedelta(seconds=0.1)
_START = datetime.min.replace(tzinfo=timezone.utc)


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
        self.receipt_lag = Histogram("motcua_sms_receipt_seconds", "From a carrier accepting an SMS to its report",
                                     ["provider"], buckets=DELIVERY_BUCKETS, registry=registry)

    def count(self, delivery: Delivery) -> None:
        """What a delivery's last move means for the counters (called once it is committed)."""
        channel, provider, status = delivery.channel, delivery.provider, delivery.status
        if delivery.awaiting_receipt:  # its outcome comes with the receipt
            return
        self.outcomes.labels(channel, provider, status).inc()
        if status == DELIVERED:
            self.latency.labels(channel, provider).observe((delivery.delivered_at - delivery.created_at)
                                                           .total_seconds())
        elif delivery.dead_letter:
            self.dead_letters.labels(channel, provider).inc()
        elif status == TEMPORARY:
            self.retries.labels(channel, provider).inc()


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


def _log_outcome(delivery: Delivery) -> None:
    """Ids, channel, provider and the provider's error class: never an address or a name."""
    what = (delivery.channel, delivery.id, delivery.provider)
    if delivery.status == TEMPORARY:
        log.warning("%s delivery %s (%s) failed, attempt %d: %s", *what, delivery.attempts, delivery.reason)
    elif delivery.status in (PERMANENT, TECHNICAL):
        log.warning("%s delivery %s (%s): %s: %s", *what, delivery.status, delivery.reason)
    if delivery.dead_letter:
        log.error("%s delivery %s dead-lettered after %d attempt(s)", delivery.channel, delivery.id,
                  delivery.attempts)


class Notifier:
    """Plans and dispatches messages: the adapter around `Delivery`, wired by dependencies.py.

    `unit_of_work` makes the scheduler's transactions (a `NotifyUnitOfWork`, or a fake in tests)."""

    def __init__(self, settings: Settings, unit_of_work: Callable[[], NotifyUnitOfWork], sender: str, tz: tzinfo,
                 secret: bytes, metrics: NotifyMetrics, agency_names: dict[str, str] | None = None,
                 agency_emails: dict[str, str] | None = None, clock: Callable[[], datetime] = utcnow,
                 jitter: Callable[[], float] = random.random):
        self.settings = settings
        self.templates = settings.templates
        self.unit_of_work = unit_of_work
        self.sender = sender
        self.tz = tz
        self.secret = secret
        self.metrics = metrics
        self.agency_names = agency_names or {}
        self.agency_emails = agency_emails or {}  # agencies' offices, for AGENCY_EVENTS (agencies.yaml `email`)
        self.clock = clock
        self.retry = RetryPolicy(settings.retry["max_attempts"], settings.retry["base_seconds"],
                                 settings.retry["max_seconds"], jitter)
        self.lease = timedelta(seconds=settings.lease_seconds)
        self.receipt_timeout = timedelta(seconds=settings.receipt_timeout_seconds)
        self.wake: Callable[[], None] = lambda: None  # set by the scheduler
        # When the scheduler should run its next round; None: only when woken.
        self.next_round_at: datetime | None = _START
        # When to look for receipts that never came; None: no message awaits one. The first round
        # asks the log (a restart, or messages another instance sent).
        self._receipts_check_at: datetime | None = _START

    # --- planning (event handlers) ---------------------------------------------------------------

    def plan_new(self, uow: NotifyUnitOfWork, events: list[Event]) -> None:
        """Record the messages `events` owe, events new to the planner (the kit claimed their inbox rows;
        its batch commits): the applicants' choices read in one statement, the messages written in one."""
        choices = uow.preferences.recorded_for({dossier_code_of(e.data) for e in events if not e.data.get("imported")})
        owed = [delivery for event in events for delivery in self.messages_owed(
            event, lambda code: preferences.opted_out(preferences.in_force(choices.get(code, []))))]
        uow.deliveries.add_new(owed)
        uow.after_commit(lambda: self._planned(owed))

    def _planned(self, owed: list[Delivery]) -> None:
        for delivery in owed:
            if delivery.status == SKIPPED:
                self.metrics.outcomes.labels(delivery.channel, delivery.provider, SKIPPED).inc()
        if any(delivery.status == CREATED for delivery in owed):
            self.wake()

    def messages_owed(self, event: Event, opted_out: Callable[[str], set[str]]) -> list[Delivery]:
        """The deliveries `event` owes (plain: no I/O but `opted_out(dossier_code)`, asked only when a
        citizen's message has a usable address). An imported dossier's events (the old system's past,
        `motcua history import`) owe nobody a message."""
        data, now = event.data, self.clock()
        if data.get("imported"):
            return []
        code = dossier_code_of(data)
        agency = data.get("agency_code") or agency_of(code)

        def owed(channel: str, provider: str, address: str, context: dict | None, skip_reason: str | None):
            return Delivery.owed(
                event_id=event.event_id, event_type=event.event_type, dossier_code=code, agency_code=agency,
                channel=channel, provider=provider,
                recipient_hash=recipient_hash(address, self.secret) if address else "",
                recipient_masked=masked_recipient(channel, address), address=address, context=context, now=now,
                skip_reason=skip_reason)

        messages = []
        to_agency = event.event_type in AGENCY_EVENTS  # the agency's office, not the applicant
        # An event without a contact (a counter submission: its applicant holds the receipt) messages nobody.
        if templatable(event.event_type) and (to_agency or data.get("contact") is not None):
            contact = {"email": self.agency_emails.get(agency)} if to_agency else data.get("contact") or {}
            recipients = []
            for channel in self.templates.channels(event.event_type, agency):
                raw = (contact.get("email") if channel == EMAIL else contact.get("phone")) or ""
                address = raw.strip() if channel == EMAIL else (normalise_phone(raw) or "")
                reason = None
                if not raw.strip():
                    reason = "no_agency_address" if to_agency else "no_address"
                elif channel == EMAIL and not usable_address(address) or channel == SMS and not address:
                    reason, address = "invalid_address", raw.strip()
                recipients.append((channel, address, reason))
            if not to_agency and any(reason is None for _, _, reason in recipients):
                declined = opted_out(code)
                recipients = [(channel, address, "opted_out" if reason is None and channel in declined else reason)
                              for channel, address, reason in recipients]
            if recipients:
                context = message_context(event.event_type, data, self.tz, self.agency_names)
                messages += [owed(channel, self._provider(channel).name, address, context, reason)
                             for channel, address, reason in recipients]
        version, schema = EVENT_SCHEMAS[event.event_type]
        for hook_agency, hook, events in self.settings.webhooks:
            if hook_agency == agency and event.event_type in events:
                wire = {k: v for k, v in schema.dump(event.data).items() if k != "contact"}
                body = {"event_id": event.event_id, "event_type": event.event_type, "version": version,
                        "source": event.source, "occurred_at": event.occurred_at.isoformat(), "data": wire}
                messages.append(owed(WEBHOOK, hook.name, hook.name, body, None))
        return messages

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

    @contextmanager
    def _transaction(self) -> Iterator[NotifyUnitOfWork]:
        """One of the scheduler's transactions: committed when the block ends, else rolled back."""
        uow = self.unit_of_work()
        try:
            yield uow
            uow.commit()
        finally:
            uow.close()

    def dispatch(self) -> int:
        """One round: claim the due rows (within each provider's rate limit), send them, record the
        outcomes, and set `next_round_at`; returns how many rows it claimed.

        At most `concurrency` rows are claimed per round, all sent at once, so no claimed row waits
        for a free sender while its lease runs out (and another instance takes it over)."""
        now = self.clock()
        if self._receipts_check_at is not None and self._receipts_check_at <= now:
            self._expire_receipts(now)
        limiters = {name: limiter for name, limiter in self.settings.limiters.items() if limiter.rate}
        budgets = {name: limiter.available() for name, limiter in limiters.items()}
        full = self.settings.concurrency
        with self._transaction() as uow:  # the claim is durable before anything is sent
            claimed, next_due = uow.deliveries.claim_due(now, self.lease, full, budgets)
            if not claimed:
                next_due = uow.deliveries.next_due(now, set(budgets))
        for delivery in claimed:
            if delivery.provider in limiters:
                limiters[delivery.provider].take()
        spent = {name for name, budget in budgets.items() if sum(d.provider == name for d in claimed) >= budget}
        if claimed:
            retries = [d.due_at for d in self._send_round(claimed, now) if d.due_at is not None]
            next_due = min([t for t in (next_due, *retries) if t is not None], default=None)
        if len(claimed) == full:
            self.next_round_at = now  # there may be more due: no sleep
        else:
            self._schedule(now, next_due, spent, busy=not claimed)
        return len(claimed)

    def _schedule(self, now: datetime, next_due: datetime | None, spent: set[str], busy: bool) -> None:
        """The next round: the next row due, a provider's next token, the next receipt deadline."""
        times = [t for t in (next_due, self._receipts_check_at) if t is not None]
        times += [now + timedelta(seconds=self.settings.limiters[name].wait_seconds()) for name in spent]
        at = min(times, default=None)
        if busy and at is not None and at <= now:  # due, yet nothing claimed: another dispatcher holds them
            at = now + BUSY_PAUSE
        self.next_round_at = at

    def _send_round(self, claimed: list[Delivery], claimed_at: datetime) -> list[Delivery]:
        """Render, send at once, record in one transaction; returns the rows recorded."""
        outgoing, done = [], []
        for delivery in claimed:
            try:
                provider = self._provider(delivery.channel, delivery.provider)
                message = self.compose(delivery)
            except Exception as exc:  # a template that no longer renders, a webhook removed
                delivery.failed(self.clock(), TECHNICAL, type(exc).__name__)
                done.append(delivery)
                continue
            delivery.sending_through(provider.name,
                                     sms.measure(provider.text_of(message)).segments if delivery.channel == SMS
                                     else None)
            outgoing.append((delivery, provider, message))
        now = self.clock()
        # The longest a send may take; a local file (mailbox, SMS outbox) has no timeout.
        longest = max((getattr(provider, "timeout", 0.0) for _, provider, _ in outgoing), default=0.0)
        if now - claimed_at >= self.lease - timedelta(seconds=longest):
            # The leases could run out before the sends end: renew the claims still ours, drop the others.
            with self._transaction() as uow:
                held = uow.deliveries.renew(claimed, now, self.lease)
            for delivery in claimed:
                if delivery.id in held:
                    delivery.renew(now, self.lease)
                else:
                    log.warning("delivery %s attempt %d: taken over by another dispatcher, not sent", delivery.id,
                                delivery.attempts)
            outgoing = [(d, provider, message) for d, provider, message in outgoing if d.id in held]
            done = [d for d in done if d.id in held]
        pool = eventlet.GreenPool(self.settings.concurrency)
        for delivery, provider, message in outgoing:
            pool.spawn_n(self._send, delivery, provider, message)
        pool.waitall()
        done += [delivery for delivery, _, _ in outgoing]
        with self._transaction() as uow:
            uow.deliveries.record(done)
        for delivery in done:
            self.metrics.count(delivery)
            _log_outcome(delivery)
        return done

    def _send(self, delivery: Delivery, provider, message: Outgoing) -> None:
        started = self.clock()
        try:
            reference = provider.send(message)
        except TemporaryFailure as exc:
            delivery.failed_temporarily(self.clock(), str(exc), self.retry)
        except PermanentFailure as exc:
            delivery.failed(self.clock(), PERMANENT, str(exc))
        except Exception as exc:
            delivery.failed(self.clock(), TECHNICAL, type(exc).__name__)
        else:
            delivery.accepted(self.clock(), started, reference, provider.awaits_receipt, message.key)
            if delivery.awaiting_receipt:
                deadline = started + self.receipt_timeout
                self._receipts_check_at = min(self._receipts_check_at or deadline, deadline)

    def _expire_receipts(self, now: datetime) -> None:
        """An SMS accepted by the carrier whose receipt has not come within `receipt_timeout_seconds`
        is a temporary failure: tried again, then dead-lettered, by the usual rules. Then: when the
        next one could expire (None while no message awaits a receipt)."""
        with self._transaction() as uow:
            overdue = uow.deliveries.receipts_overdue(now, self.receipt_timeout)
            for delivery in overdue:
                delivery.receipt_expired(now, self.receipt_timeout, self.retry)
            uow.deliveries.record(overdue)
            earliest = uow.deliveries.earliest_receipt_wait()
        self._receipts_check_at = earliest + self.receipt_timeout if earliest else None
        for delivery in overdue:
            self.metrics.count(delivery)
            _log_outcome(delivery)

    def compose(self, delivery: Delivery) -> Outgoing:
        key = f"{delivery.event_id}.{delivery.channel}"
        if delivery.channel == WEBHOOK:
            return Outgoing(WEBHOOK, delivery.address, key, json.dumps(delivery.context, ensure_ascii=False),
                            headers={"X-Motcua-Event": delivery.event_type, "X-Motcua-Delivery": key})
        rendered = self.templates.render(delivery.event_type, delivery.channel, delivery.context,
                                         delivery.agency_code)
        if delivery.channel == SMS:
            return Outgoing(SMS, delivery.address, key, rendered.body, accented=rendered.accented)
        # The same Message-ID on every attempt: a repeat after a crash is recognisable as the same message.
        email = plain_text_email(self.sender, delivery.address, rendered.subject, rendered.body,
                                 f"<{key}@{_domain_of(self.sender)}>")
        return Outgoing(EMAIL, delivery.address, key, rendered.body, subject=rendered.subject, email=email)

    # --- officers, carriers and citizens (RPC) ----------------------------------------------------

    def resend(self, uow: NotifyUnitOfWork, delivery_id: int) -> Delivery:
        """Put a dead letter back in the queue, with a fresh set of tries."""
        delivery = uow.deliveries.get(delivery_id)
        if delivery is None:
            raise NotFound("no such delivery", field="delivery_id")
        delivery.resend(self.clock())
        uow.deliveries.record([delivery])
        uow.after_commit(lambda: self._resent(delivery))
        uow.commit()
        return delivery

    def _resent(self, delivery: Delivery) -> None:
        self.metrics.resent.labels(delivery.channel, delivery.provider).inc()
        self.wake()

    def receipt(self, uow: NotifyUnitOfWork, provider: str, token: str, body: dict) -> Delivery:
        """A carrier's delivery receipt (DLR) for an SMS it accepted earlier; a report that is not final
        (the message still on its way) changes nothing."""
        receipts = self.settings.receipts.get(provider)
        if receipts is None or not hmac.compare_digest(receipts.token.encode(), (token or "").encode()):
            raise Unauthorized("unknown provider or wrong receipt token")
        report = receipts.read(body)
        delivery = uow.deliveries.by_reference(provider, str(report.reference))
        if delivery is None:
            raise NotFound("no message with this reference", field=receipts.reference_field)
        sent_at = delivery.sent_at
        if report.outcome is not None and delivery.receipt_arrived(self.clock(), report.outcome,
                                                                   report.carrier_status, self.retry):
            uow.deliveries.record([delivery])
            uow.after_commit(lambda: self._received(delivery))
            uow.commit()
            self.metrics.receipt_lag.labels(provider).observe(max((self.clock() - sent_at).total_seconds(), 0.0))
        return delivery

    def _received(self, delivery: Delivery) -> None:
        self.metrics.count(delivery)
        _log_outcome(delivery)
        if delivery.waiting:
            self.wake()  # tried again after its backoff

    def set_preferences(self, uow: NotifyUnitOfWork, dossier_code: str, choices: dict[str, bool],
                        source: str) -> dict:
        """Record the citizen's choices (True = send on this channel); opting out also cancels
        the messages of the dossier still waiting on that channel."""
        now = self.clock()
        recorded = uow.preferences.recorded(dossier_code)
        new = preferences.new_choices(preferences.in_force(recorded), choices, source, now)
        uow.preferences.add(dossier_code, new)
        declined = [channel for channel, enabled in choices.items() if not enabled]
        if declined:
            waiting = uow.deliveries.waiting_of(dossier_code, declined)
            uow.deliveries.record([delivery for delivery in waiting if delivery.opt_out(now)])
        uow.commit()
        return preferences.view(preferences.in_force(recorded + new))


def _domain_of(sender: str) -> str:
    return parseaddr(sender)[1].rpartition("@")[2] or "motcua.local"
