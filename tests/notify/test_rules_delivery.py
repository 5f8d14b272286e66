"""The rules of one delivery (services/notify/delivery.py) and of recipients, as plain code: no
database, no provider, no clock but the one each test passes."""
from datetime import datetime, timedelta, timezone

import pytest

from motcua.errors import Conflict
from motcua.privacy import mask_email
from services.notify import preferences
from services.notify.delivery import (
    CREATED,
    DELIVERED,
    PERMANENT,
    SENDING,
    SKIPPED,
    TECHNICAL,
    TEMPORARY,
    Delivery,
    RetryPolicy,
)
from services.notify.domain import masked_recipient, recipient_hash, usable_address

T0 = datetime(2026, 2, 24, 2, 5, tzinfo=timezone.utc)
LEASE = timedelta(seconds=60)
RETRY = RetryPolicy(max_attempts=3, base_seconds=10, max_seconds=60, jitter=lambda: 0.5)
EMAIL = "nguyen.thi.anh@example.com"
SECRET = b"notify-test-secret"


def owed(skip_reason=None, channel="email") -> Delivery:
    return Delivery.owed(event_id="e-1", event_type="dossier_received", dossier_code="000.00.06.H56-260224-0001",
                         agency_code="000.00.06.H56", channel=channel, provider="smtp", recipient_hash="h",
                         recipient_masked="n***@example.com", address=EMAIL, context={"code": "X"}, now=T0,
                         skip_reason=skip_reason)


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def sent(delivery: Delivery, seconds: float = 0) -> Delivery:
    delivery.claim(at(seconds), LEASE)
    return delivery


# --- recipients -------------------------------------------------------------------------------------

def test_mask_and_hash_hide_the_address():
    assert masked_recipient("email", EMAIL) == mask_email(EMAIL) == "n***@example.com"
    assert masked_recipient("email", "not-an-address") == "***"
    assert masked_recipient("email", "a@b@example.com") == "***"  # not "a***@b@example.com"
    assert masked_recipient("sms", "0912345678") == "091****678"
    assert masked_recipient("email", "") == ""
    digest = recipient_hash(" Nguyen.Thi.Anh@Example.com ", SECRET)
    assert digest == recipient_hash(EMAIL, SECRET)  # one person, one key
    assert digest != recipient_hash(EMAIL, b"another-secret")
    assert len(digest) == 64 and "nguyen" not in digest


@pytest.mark.parametrize("address, ok", [
    ("a@example.com", True), ("", False), ("no-at-sign", False), ("a@b.vn, c@d.vn", False),
    ("a@b.vn\nBcc: x@y.vn", False), ("Anh <a@b.vn>", False),
])
def test_usable_address(address, ok):
    assert usable_address(address) is ok


# --- the lifecycle ----------------------------------------------------------------------------------

def test_a_new_message_is_due_at_once_and_a_skipped_one_never():
    new = owed()
    assert (new.status, new.attempts, new.next_attempt_at, new.address) == (CREATED, 0, T0, EMAIL)
    assert new.waiting and new.is_due(T0) and new.due_at == T0
    skipped = owed("opted_out")
    assert (skipped.status, skipped.reason, skipped.address, skipped.context) == (SKIPPED, "opted_out", None, None)
    assert not skipped.is_due(at(10 ** 6)) and skipped.due_at is None


def test_a_claim_holds_the_row_until_its_lease_runs_out_then_anyone_may_take_it_again():
    delivery = sent(owed())
    assert (delivery.status, delivery.attempts, delivery.lease_until) == (SENDING, 1, at(60))
    assert delivery.in_flight and delivery.holds(1) and not delivery.is_due(at(59))
    with pytest.raises(ValueError):
        delivery.claim(at(30), LEASE)  # another dispatcher, while the lease holds
    assert delivery.is_due(at(60))  # its sender died: the message is not lost
    delivery.claim(at(61), LEASE)
    assert (delivery.attempts, delivery.lease_until) == (2, at(121))
    assert not delivery.holds(1) and delivery.holds(2)  # the first claim is no longer the one holding it
    delivery.renew(at(100), LEASE)
    assert delivery.lease_until == at(160)


def test_accepted_is_delivered_and_forgets_what_it_needed_to_send():
    delivery = sent(owed())
    delivery.sending_through("smtp", None)
    delivery.accepted(at(2), at(1), None, awaits_receipt=False, key="e-1.email")
    assert (delivery.status, delivery.delivered_at, delivery.lease_until, delivery.next_attempt_at) == (
        DELIVERED, at(2), None, None)
    assert delivery.address is None and delivery.context is None and not delivery.is_due(at(10 ** 6))


def test_accepted_by_a_provider_that_sends_receipts_waits_for_one():
    delivery = sent(owed(channel="sms"))
    delivery.accepted(at(2), at(1), None, awaits_receipt=True, key="e-1.sms")
    assert (delivery.status, delivery.sent_at, delivery.provider_ref) == (SENDING, at(1), "e-1.sms")
    assert delivery.awaiting_receipt and not delivery.in_flight and delivery.due_at is None
    assert not delivery.receipt_overdue(at(3600), timedelta(seconds=3600))
    assert delivery.receipt_overdue(at(3601), timedelta(seconds=3600))


def test_a_temporary_failure_backs_off_then_the_last_try_is_a_dead_letter():
    delivery = sent(owed())
    delivery.failed_temporarily(at(1), "SMTP 451 SMTPDataError", RETRY)
    assert (delivery.status, delivery.reason, delivery.next_attempt_at) == (TEMPORARY, "SMTP 451 SMTPDataError",
                                                                            at(1 + 7.5))
    assert delivery.waiting and not delivery.is_due(at(8)) and delivery.is_due(at(8.5))
    delivery.claim(at(8.5), LEASE)
    delivery.failed_temporarily(at(9), "x" * 300, RETRY)
    assert delivery.next_attempt_at == at(9 + 15) and len(delivery.reason) == 128  # doubled; reasons are short
    delivery.claim(at(24), LEASE)
    delivery.failed_temporarily(at(25), "ConnectionRefusedError", RETRY)
    assert (delivery.status, delivery.attempts, delivery.dead_lettered_at, delivery.next_attempt_at) == (
        TEMPORARY, 3, at(25), None)
    assert delivery.dead_letter and not delivery.waiting and not delivery.is_due(at(10 ** 6))


@pytest.mark.parametrize("status", [PERMANENT, TECHNICAL])
def test_a_permanent_or_technical_failure_is_a_dead_letter_at_once(status):
    delivery = sent(owed())
    delivery.failed(at(1), status, "SMTP 550 recipient refused")
    assert (delivery.status, delivery.attempts, delivery.dead_lettered_at, delivery.lease_until) == (
        status, 1, at(1), None)
    with pytest.raises(ValueError):
        owed().failed(at(1), DELIVERED, "not a failure")


def test_a_dead_letter_is_re_sent_with_a_fresh_set_of_tries_only_by_an_officer():
    delivery = sent(owed())
    with pytest.raises(Conflict):
        delivery.resend(at(1))  # not a dead letter
    delivery.failed(at(1), PERMANENT, "HTTP 400")
    delivery.resend(at(100))
    assert (delivery.status, delivery.attempts, delivery.resends, delivery.dead_lettered_at) == (
        CREATED, 0, 1, None)
    assert delivery.is_due(at(100))


@pytest.mark.parametrize("outcome, status, dead", [
    (DELIVERED, DELIVERED, False), (TEMPORARY, TEMPORARY, False), (PERMANENT, PERMANENT, True)])
def test_a_receipt_decides_what_the_carrier_accepted(outcome, status, dead):
    delivery = sent(owed(channel="sms"))
    delivery.accepted(at(2), at(1), "m-1", awaits_receipt=True, key="e-1.sms")
    assert delivery.receipt_arrived(at(30), outcome, "CODE", RETRY) is True
    assert (delivery.status, delivery.dead_letter, delivery.provider_ref) == (
        status, dead, None if status == TEMPORARY else "m-1")  # a retry forgets the abandoned reference
    assert delivery.receipt_arrived(at(40), DELIVERED, "DELIVRD", RETRY) is False  # a repeat changes nothing
    assert delivery.status == status


def test_no_receipt_within_the_timeout_is_a_temporary_failure():
    delivery = sent(owed(channel="sms"))
    delivery.accepted(at(2), at(1), "m-1", awaits_receipt=True, key="e-1.sms")
    delivery.receipt_expired(at(3601), timedelta(seconds=3600), RETRY)
    assert (delivery.status, delivery.reason, delivery.provider_ref, delivery.sent_at) == (
        TEMPORARY, "no receipt within 3600 s", None, None)
    assert delivery.receipt_arrived(at(3700), DELIVERED, "DELIVRD", RETRY) is False  # the abandoned try


def test_opting_out_skips_only_what_still_waits():
    waiting = owed()
    assert waiting.opt_out(at(1)) is True
    assert (waiting.status, waiting.reason, waiting.address, waiting.next_attempt_at) == (
        SKIPPED, "opted_out", None, None)
    in_flight, dead = sent(owed()), sent(owed())
    dead.failed(at(1), PERMANENT, "HTTP 400")
    assert in_flight.opt_out(at(2)) is False and dead.opt_out(at(2)) is False
    assert (in_flight.status, dead.status) == (SENDING, PERMANENT)


def test_retries_use_the_kits_backoff():
    low = RetryPolicy(5, base_seconds=30, max_seconds=300, jitter=lambda: 0.0)
    high = RetryPolicy(5, base_seconds=30, max_seconds=300, jitter=lambda: 1.0)
    assert [low.delay(n).total_seconds() for n in (1, 2, 3, 10)] == [15, 30, 60, 150]
    assert [high.delay(n).total_seconds() for n in (1, 2, 3, 10)] == [30, 60, 120, 300]


# --- citizens' choices --------------------------------------------------------------------------------

def test_the_latest_choice_counts_and_an_unchanged_one_is_not_recorded_again():
    current = preferences.in_force([])
    assert preferences.opted_out(current) == set() and preferences.view(current)["sms"]["enabled"] is True
    first = preferences.new_choices(current, {"sms": False}, "tracking", at(1))
    current = preferences.in_force(first)
    assert preferences.opted_out(current) == {"sms"}
    assert preferences.new_choices(current, {"sms": False}, "tracking", at(2)) == []  # no change
    again = preferences.new_choices(current, {"sms": True, "email": True}, "tracking", at(3))
    current = preferences.in_force(first + again)
    assert [(c.channel, c.opted_out) for c in again] == [("sms", False), ("email", False)]
    view = preferences.view(current)
    assert view["sms"] == {"enabled": True, "legal_basis": preferences.LEGAL_BASIS, "recorded_at": at(3),
                           "source": "tracking"}
