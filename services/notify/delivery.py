"""A delivery (one message to one recipient on one channel for one event) and its moves, as plain code.

No session, no provider, no clock of its own: the caller passes `now` and the facts (the provider
accepted, refused, a receipt came), and the object changes its fields. notify's scheduler, event
handlers and RPCs are the adapters around it (services/notify/domain.py), the repository writes
what it became (services/notify/repository.py).

The lifecycle (GOV.UK Notify's states):

    created ──claim──► sending ──accepted──► delivered
       ▲                  │  └─accepted, the provider sends receipts─► sending (sent_at set)
       │                  │        ├─receipt: delivered ─► delivered
       │                  │        ├─receipt: temporary, or none within the timeout ─► temporary-failure
       │                  │        └─receipt: permanent ─► permanent-failure (dead letter)
       │                  ├─temporary failure ─► temporary-failure ──backoff──► claimed again
       │                  │        └─ on the last try: dead letter
       │                  ├─permanent failure ─► permanent-failure (dead letter)
       │                  ├─technical failure (ours) ─► technical-failure (dead letter)
       │                  └─lease ran out (the sender died) ─► claimed again, by anyone
       └──re-send by an officer ◄── any dead letter (a fresh set of tries)
    skipped: no usable address, or the citizen opted out (at planning, or later while it waits)
"""
from __future__ import annotations

from dataclasses import dataclass, fields
from datetime import datetime, timedelta
from typing import Callable

from motcua.backoff import backoff
from motcua.errors import Conflict

CREATED, SENDING, DELIVERED = "created", "sending", "delivered"
TEMPORARY, PERMANENT, TECHNICAL, SKIPPED = "temporary-failure", "permanent-failure", "technical-failure", "skipped"
WAITING_STATUSES = (CREATED, TEMPORARY)  # queued for a try (unless dead-lettered)
REASON_LENGTH = 128


@dataclass(frozen=True)
class RetryPolicy:
    """`max_attempts` tries in all; between them the kit's backoff (motcua/backoff.py)."""

    max_attempts: int
    base_seconds: float
    max_seconds: float
    jitter: Callable[[], float] | None = None  # None: random

    def delay(self, attempts: int) -> timedelta:
        share = self.jitter() if self.jitter else None
        return timedelta(seconds=backoff(attempts, self.base_seconds, self.max_seconds, share))


@dataclass(eq=False)
class Delivery:
    """One row of the delivery log. `address` and `context` (what is needed to send it) are kept
    only until it is delivered; `recipient_masked` is what people see."""

    event_id: str
    event_type: str
    dossier_code: str
    agency_code: str | None
    channel: str
    provider: str | None
    recipient_hash: str
    recipient_masked: str
    address: str | None
    context: dict | None
    status: str
    reason: str | None
    created_at: datetime
    updated_at: datetime
    attempts: int = 0
    resends: int = 0
    segments: int | None = None
    next_attempt_at: datetime | None = None
    lease_until: datetime | None = None
    provider_ref: str | None = None
    sent_at: datetime | None = None
    dead_lettered_at: datetime | None = None
    delivered_at: datetime | None = None
    id: int | None = None

    @classmethod
    def owed(cls, *, event_id: str, event_type: str, dossier_code: str, agency_code: str | None, channel: str,
             provider: str, recipient_hash: str, recipient_masked: str, address: str, context: dict | None,
             now: datetime, skip_reason: str | None = None) -> "Delivery":
        """A message owed by an event: due now, or skipped at once with the reason."""
        return cls(event_id=event_id, event_type=event_type, dossier_code=dossier_code, agency_code=agency_code,
                   channel=channel, provider=provider, recipient_hash=recipient_hash,
                   recipient_masked=recipient_masked, address=None if skip_reason else address,
                   context=None if skip_reason else context, status=SKIPPED if skip_reason else CREATED,
                   reason=skip_reason, next_attempt_at=None if skip_reason else now, created_at=now, updated_at=now)

    @classmethod
    def from_row(cls, row) -> "Delivery":
        """From a mapping of the table's columns (a database row, a fake's copy)."""
        return cls(**{name: row[name] for name in FIELDS})

    def as_row(self) -> dict:
        return {name: getattr(self, name) for name in FIELDS}

    # --- where it stands ---------------------------------------------------------------------------

    @property
    def dead_letter(self) -> bool:
        return self.dead_lettered_at is not None

    @property
    def waiting(self) -> bool:
        """Queued for its next try (new, or after a temporary failure that was not the last)."""
        return self.status in WAITING_STATUSES and not self.dead_letter

    @property
    def in_flight(self) -> bool:
        """Claimed by a sender that has not yet heard back from the provider."""
        return self.status == SENDING and self.sent_at is None

    @property
    def awaiting_receipt(self) -> bool:
        """Accepted by a provider that tells the outcome later, in a delivery receipt."""
        return self.status == SENDING and self.sent_at is not None

    @property
    def due_at(self) -> datetime | None:
        """When a dispatcher may take it: its next try, or when the lease of its sender runs out."""
        if self.waiting:
            return self.next_attempt_at
        if self.in_flight:
            return self.lease_until
        return None

    def is_due(self, now: datetime) -> bool:
        due_at = self.due_at
        return due_at is not None and due_at <= now

    def receipt_overdue(self, now: datetime, timeout: timedelta) -> bool:
        return self.awaiting_receipt and self.sent_at <= now - timeout

    def holds(self, attempts: int) -> bool:
        """Is the claim that made try number `attempts` still the one holding it?"""
        return self.in_flight and self.attempts == attempts

    # --- moves -------------------------------------------------------------------------------------

    def claim(self, now: datetime, lease: timedelta) -> None:
        """Taken by a dispatcher for one more try; nobody else takes it before the lease runs out."""
        if not self.is_due(now):
            raise ValueError("a delivery is claimed only when it is due")
        self.status, self.attempts = SENDING, self.attempts + 1
        self.lease_until, self.updated_at = now + lease, now

    def renew(self, now: datetime, lease: timedelta) -> None:
        self.lease_until, self.updated_at = now + lease, now

    def sending_through(self, provider: str, segments: int | None) -> None:
        self.provider, self.segments = provider, segments

    def accepted(self, now: datetime, started: datetime, reference: str | None, awaits_receipt: bool,
                 key: str) -> None:
        """The provider took the message: delivered, or (if it sends receipts) waiting for one."""
        if not awaits_receipt:
            self.delivered(now)
            return
        self.sent_at, self.lease_until, self.updated_at = started, None, now
        self.provider_ref = reference or key

    def delivered(self, now: datetime) -> None:
        self.status, self.reason, self.delivered_at, self.updated_at = DELIVERED, None, now, now
        self.lease_until = self.next_attempt_at = None
        self.address = self.context = None  # what was needed to send it is no longer kept

    def failed_temporarily(self, now: datetime, reason: str, retry: RetryPolicy) -> None:
        """Worth another try after the backoff, unless that was the last try: then a dead letter."""
        self.status, self.reason, self.updated_at = TEMPORARY, reason[:REASON_LENGTH], now
        self.lease_until = self.sent_at = self.provider_ref = None
        if self.attempts >= retry.max_attempts:
            self._dead_letter(now)
        else:
            self.next_attempt_at = now + retry.delay(self.attempts)

    def failed(self, now: datetime, status: str, reason: str) -> None:
        """A permanent failure (the provider refuses it) or a technical one (ours): a dead letter now."""
        if status not in (PERMANENT, TECHNICAL):
            raise ValueError(f"not a final failure: {status}")
        self.status, self.reason, self.updated_at = status, reason[:REASON_LENGTH], now
        self.lease_until = None
        self._dead_letter(now)

    def receipt_arrived(self, now: datetime, outcome: str, carrier_status: str, retry: RetryPolicy) -> bool:
        """A carrier's delivery receipt; False (nothing changes) when it no longer waits for one."""
        if not self.awaiting_receipt:
            return False
        if outcome == DELIVERED:
            self.delivered(now)
        elif outcome == TEMPORARY:
            self.failed_temporarily(now, f"receipt {carrier_status}", retry)
        else:
            self.failed(now, PERMANENT, f"receipt {carrier_status}")
        return True

    def receipt_expired(self, now: datetime, timeout: timedelta, retry: RetryPolicy) -> None:
        """No receipt within the timeout: a temporary failure, tried again by the usual rules."""
        self.failed_temporarily(now, f"no receipt within {timeout.total_seconds():g} s", retry)

    def resend(self, now: datetime) -> None:
        """An officer puts a dead letter back in the queue, with a fresh set of tries."""
        if not self.dead_letter:
            raise Conflict("only a dead-lettered delivery can be re-sent", field="delivery_id")
        self.status, self.attempts, self.resends = CREATED, 0, self.resends + 1
        self.dead_lettered_at, self.next_attempt_at, self.updated_at = None, now, now

    def opt_out(self, now: datetime) -> bool:
        """The citizen opted out of its channel: skipped if it still waits, else unchanged (False)."""
        if not self.waiting:
            return False
        self.status, self.reason, self.updated_at = SKIPPED, "opted_out", now
        self.address = self.context = self.next_attempt_at = None
        return True

    def _dead_letter(self, now: datetime) -> None:
        self.dead_lettered_at, self.next_attempt_at = now, None


FIELDS = tuple(f.name for f in fields(Delivery))
