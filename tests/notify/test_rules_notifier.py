"""The Notifier's rules against in-memory fakes (tests/notify/fakes.py): which messages an event owes,
how a round claims, sends, records and schedules the next one, receipts, re-sends and choices. No
database, no provider: persistence and the real providers are tested in test_deliveries.py,
test_smtp.py, test_sms_gateway.py and test_crash.py."""
from datetime import timedelta

import pytest
from prometheus_client import CollectorRegistry

from motcua.errors import Conflict
from services.notify import preferences
from services.notify.delivery import CREATED, DELIVERED, PERMANENT, SENDING, SKIPPED, TEMPORARY
from services.notify.domain import Notifier, NotifyMetrics
from services.notify.providers import PermanentFailure, RateLimiter, TemporaryFailure
from services.notify.settings import load_settings
from tests.notify.conftest import (
    plan_once,
    AGENCY,
    AGENCY_NAMES,
    CODE,
    EMAIL,
    LAND_OFFICE,
    OFFICE_EMAILS,
    SECRET,
    SENDER,
    TZ,
    FakeClock,
    dossier_overdue,
    dossier_received,
    dossier_result_ready,
    dossier_submitted,
    dossier_withdrawn,
    event,
    task_overdue,
)
from tests.notify.fakes import FakeDeliveryRepository, FakeNotifyLog, FakeNotifyUnitOfWork

HOOK_ENV = "NOTIFY_TEST_HOOK_SECRET"


class FakeProvider:
    """Records what it is given; each send takes the next scripted outcome (a reference, or an error)."""

    def __init__(self, name: str, channel: str, awaits_receipt: bool = False, outcomes=()):
        self.name, self.channel, self.awaits_receipt = name, channel, awaits_receipt
        self.outcomes = list(outcomes)
        self.sent = []

    def text_of(self, message):
        return message.body

    def send(self, message):
        self.sent.append(message)
        outcome = self.outcomes.pop(0) if self.outcomes else None
        if isinstance(outcome, Exception):
            raise outcome
        return outcome


class Setup:
    def __init__(self, tmp_path, notify: dict | None = None):
        self.log, self.clock, self.registry = FakeNotifyLog(), FakeClock(), CollectorRegistry()
        settings = load_settings({"SMTP": {"host": None, "sender": SENDER, "mailbox": str(tmp_path / "m.mbox")},
                                  "NOTIFY": notify or {}})
        settings.email, settings.sms = FakeProvider("smtp", "email"), FakeProvider("outbox", "sms")
        self.email, self.sms = settings.email, settings.sms
        self.notifier = Notifier(settings=settings, unit_of_work=self.log.unit_of_work, sender=SENDER, tz=TZ,
                                 secret=SECRET, metrics=NotifyMetrics(self.registry), agency_names=AGENCY_NAMES,
                                 agency_emails=OFFICE_EMAILS, clock=self.clock, jitter=lambda: 0.5)
        self.woken = 0
        self.notifier.wake = self.wake

    def wake(self):
        self.woken += 1

    def plan(self, *payloads) -> list[bool]:
        return [plan_once(self.notifier, self.log.unit_of_work(), event(p)) for p in payloads]

    def rows(self, channel: str | None = None):
        return [d for d in self.log.deliveries() if channel is None or d.channel == channel]

    def outcome(self, channel, provider, status):
        return self.registry.get_sample_value("motcua_notifications_total",
                                              {"channel": channel, "provider": provider, "status": status}) or 0


@pytest.fixture
def setup(tmp_path):
    return Setup(tmp_path)


class BatchUnitOfWork(FakeNotifyUnitOfWork):
    """A batched consumer's unit of work: several events applied, then ONE commit."""

    def apply_once(self, event, consumer, apply):
        if (event.event_id, consumer) in self.applied:
            return False
        apply(self, event)
        self.applied.add((event.event_id, consumer))
        return True


# --- planning ---------------------------------------------------------------------------------------

def test_several_events_planned_in_one_transaction_commit_once_and_wake_the_scheduler_after_it(setup):
    uow = BatchUnitOfWork(setup.log)
    assert plan_once(setup.notifier, uow, event(dossier_received())) is True
    assert plan_once(setup.notifier, uow, event(dossier_result_ready(phone=None))) is True
    assert setup.log.commits == 0 and setup.woken == 0  # the handler never commits nor wakes by itself
    uow.commit()
    assert setup.log.commits == 1 and setup.woken == 2
    assert [(d.event_type, d.channel, d.status, d.reason) for d in setup.rows()] == [
        ("dossier_received", "email", CREATED, None), ("dossier_received", "sms", CREATED, None),
        ("dossier_result_ready", "email", CREATED, None), ("dossier_result_ready", "sms", SKIPPED, "no_address")]
    assert setup.outcome("sms", "outbox", SKIPPED) == 1


def test_an_online_submission_sends_the_code_at_once_and_a_counter_one_nothing(setup):
    online = setup.notifier.messages_owed(event(dossier_submitted()), lambda code: set())
    assert [(d.channel, d.status) for d in online] == [("email", CREATED), ("sms", CREATED)]
    assert all(d.context["code"] == CODE for d in online)
    assert setup.notifier.messages_owed(event(dossier_submitted(channel="counter")), lambda code: set()) == []


def test_the_same_event_again_owes_nothing_more(setup):
    payload = dossier_received()
    assert setup.plan(payload, payload) == [True, False]
    other_consumer = setup.log.unit_of_work()  # the inbox forgot it: the unique key still holds
    other_consumer.deliveries.add_new(setup.notifier.messages_owed(event(payload), lambda code: set()))
    assert len(setup.rows()) == 2


def test_an_imported_dossier_s_events_owe_nobody_a_message(setup):
    payload = dossier_received()
    payload["data"]["imported"] = True
    assert setup.notifier.messages_owed(event(payload), lambda code: set()) == []


def test_addresses_decide_what_is_skipped_and_why(setup):
    asked = []

    def opted_out(code):
        asked.append(code)
        return set()

    owed = setup.notifier.messages_owed(event(dossier_received(email="a@b.vn, c@d.vn", phone="12345")), opted_out)
    assert [(d.channel, d.status, d.reason, d.recipient_masked, d.address) for d in owed] == [
        ("email", SKIPPED, "invalid_address", "***", None), ("sms", SKIPPED, "invalid_address", "***", None)]
    assert asked == []  # nobody to ask about: the citizen's choices are not looked up
    owed = setup.notifier.messages_owed(event(dossier_received(phone="+84 912 345 678")), opted_out)
    assert [(d.channel, d.address, d.recipient_masked) for d in owed] == [
        ("email", EMAIL, "n***@example.com"), ("sms", "0912345678", "091****678")]
    assert asked == [CODE] and owed[0].context["full_name"] == "Nguyễn Thị Ánh"


def test_a_citizen_who_opted_out_of_a_channel_is_not_messaged_on_it(setup):
    setup.log.choices.append((CODE, preferences.Choice("sms", True, "tracking", setup.clock())))
    setup.plan(dossier_received())
    assert [(d.channel, d.status, d.reason) for d in setup.rows()] == [("email", CREATED, None),
                                                                      ("sms", SKIPPED, "opted_out")]


def test_a_batch_of_events_applies_each_dossiers_own_choices(setup):
    other = CODE.replace("0001", "0002")
    assert other != CODE
    setup.log.choices.append((CODE, preferences.Choice("sms", True, "tracking", setup.clock())))
    setup.log.choices.append((other, preferences.Choice("email", True, "tracking", setup.clock())))
    uow = setup.log.unit_of_work()
    setup.notifier.plan_new(uow, [event(dossier_received()), event(dossier_submitted(code=other)),
                                  event(dossier_received(code=other))])
    uow.commit()
    assert [(d.dossier_code, d.event_type, d.channel, d.status, d.reason) for d in setup.rows()] == [
        (CODE, "dossier_received", "email", CREATED, None), (CODE, "dossier_received", "sms", SKIPPED, "opted_out"),
        (other, "dossier_submitted", "email", SKIPPED, "opted_out"), (other, "dossier_submitted", "sms", CREATED, None),
        (other, "dossier_received", "email", SKIPPED, "opted_out"), (other, "dossier_received", "sms", CREATED, None)]
    assert setup.woken == 1  # one wake-up for the batch


def test_overdue_goes_to_the_agency_office_and_never_asks_the_citizens_choices(setup):
    never = pytest.fail  # an agency's office has no citizen's choices
    owed = [d for payload in (dossier_overdue(), task_overdue(agency=LAND_OFFICE))
            for d in setup.notifier.messages_owed(event(payload), never)]
    assert [(d.event_type, d.agency_code, d.address, d.status, d.reason) for d in owed] == [
        ("dossier_overdue", AGENCY, OFFICE_EMAILS[AGENCY], CREATED, None),
        ("task_overdue", LAND_OFFICE, None, SKIPPED, "no_agency_address")]


def test_a_webhook_gets_the_event_without_the_contact(tmp_path, monkeypatch):
    monkeypatch.setenv(HOOK_ENV, "agency-hook-secret")
    hook = {"agency_code": AGENCY, "url": "http://127.0.0.1:9/hook", "secret_env": HOOK_ENV,
            "events": ["dossier_received", "dossier_withdrawn"]}
    setup = Setup(tmp_path, {"webhooks": [hook]})
    received = dossier_received()
    owed = [d for payload in (received, dossier_withdrawn())
            for d in setup.notifier.messages_owed(event(payload), lambda code: set())]
    hooks = [d for d in owed if d.channel == "webhook"]
    assert [(d.event_type, d.provider, d.address) for d in hooks] == [
        ("dossier_received", f"webhook-{AGENCY}", f"webhook-{AGENCY}"),
        ("dossier_withdrawn", f"webhook-{AGENCY}", f"webhook-{AGENCY}")]
    assert hooks[0].context["event_id"] == received["event_id"] and "contact" not in hooks[0].context["data"]
    # dossier_withdrawn carries no contact: only the agency's system hears of it
    assert [d.channel for d in owed] == ["email", "sms", "webhook", "webhook"]


# --- rounds -----------------------------------------------------------------------------------------

def test_a_round_claims_once_records_once_and_then_sleeps_until_woken(setup):
    setup.plan(dossier_received())
    commits = setup.log.commits
    assert setup.notifier.dispatch() == 2
    assert setup.log.commits - commits == 3  # receipts looked for once at start, the claim, the outcomes
    assert [(d.channel, d.status, d.attempts, d.address) for d in setup.rows()] == [
        ("email", DELIVERED, 1, None), ("sms", DELIVERED, 1, None)]
    assert [m.key for m in setup.email.sent + setup.sms.sent] == [f"{setup.rows()[0].event_id}.email",
                                                                   f"{setup.rows()[0].event_id}.sms"]
    assert setup.notifier.next_round_at is None  # nothing due, no receipt awaited: no polling
    assert setup.outcome("email", "smtp", DELIVERED) == 1 and setup.outcome("sms", "outbox", DELIVERED) == 1
    assert setup.notifier.dispatch() == 0 and setup.log.commits - commits == 4


def test_a_full_round_runs_the_next_at_once(tmp_path):
    setup = Setup(tmp_path, {"concurrency": 2})
    setup.plan(dossier_received(), dossier_result_ready(phone="0912345678"))
    assert setup.notifier.dispatch() == 2 and setup.notifier.next_round_at == setup.clock()
    assert setup.notifier.dispatch() == 2 and setup.notifier.next_round_at == setup.clock()  # it cannot know
    assert setup.notifier.dispatch() == 0 and setup.notifier.next_round_at is None


def test_a_temporary_failure_is_tried_again_when_its_backoff_ends_then_dead_lettered(tmp_path):
    setup = Setup(tmp_path, {"retry": {"max_attempts": 2, "base_seconds": 10, "max_seconds": 60}})
    setup.email.outcomes = [TemporaryFailure("SMTP 451 SMTPDataError"), TemporaryFailure("ConnectionRefusedError")]
    setup.plan(dossier_result_ready(phone=None))
    assert setup.notifier.dispatch() == 1
    [waiting] = setup.rows("email")
    assert (waiting.status, waiting.reason, waiting.next_attempt_at) == (
        TEMPORARY, "SMTP 451 SMTPDataError", setup.clock() + timedelta(seconds=7.5))
    assert setup.notifier.next_round_at == waiting.next_attempt_at  # asleep until then
    setup.clock.advance(7)
    assert setup.notifier.dispatch() == 0
    setup.clock.advance(0.5)
    assert setup.notifier.dispatch() == 1
    [dead] = setup.rows("email")
    assert (dead.status, dead.attempts, dead.dead_letter) == (TEMPORARY, 2, True)
    assert setup.notifier.next_round_at is None
    assert setup.registry.get_sample_value("motcua_notification_retries_total",
                                           {"channel": "email", "provider": "smtp"}) == 1
    assert setup.registry.get_sample_value("motcua_notification_dead_letters_total",
                                           {"channel": "email", "provider": "smtp"}) == 1


def test_a_refused_message_and_one_that_does_not_render_are_dead_letters(setup):
    setup.email.outcomes = [PermanentFailure("SMTP 550 recipient refused")]
    setup.plan(dossier_result_ready(phone=None), dossier_received(email=None))
    [sms] = [d for d in setup.rows("sms") if d.status == CREATED]
    setup.log.rows[sms.id]["context"] = {}  # e.g. an agency's override needing what the row lacks
    assert setup.notifier.dispatch() == 2
    assert [(d.channel, d.status, d.reason, d.dead_letter) for d in setup.rows() if d.status != SKIPPED] == [
        ("email", PERMANENT, "SMTP 550 recipient refused", True), ("sms", "technical-failure", "UndefinedError", True)]
    assert len(setup.email.sent) == 1 and setup.sms.sent == []


def test_a_provider_out_of_budget_waits_for_its_next_token(setup):
    seconds = [0.0]
    setup.notifier.settings.limiters["outbox"] = RateLimiter(rate=0.5, burst=2, clock=lambda: seconds[0])
    for n in range(3):
        setup.plan(dossier_received(email=None, code=f"{AGENCY}-260224-000{n}"))
    assert setup.notifier.dispatch() == 2
    assert setup.notifier.next_round_at == setup.clock() + timedelta(seconds=2)  # the next token
    assert setup.notifier.dispatch() == 0
    seconds[0] += 2
    assert setup.notifier.dispatch() == 1
    assert [d.status for d in setup.rows("sms")] == [DELIVERED] * 3


def test_a_round_that_cannot_end_within_its_leases_sends_only_the_claims_still_its_own(setup, monkeypatch):
    setup.plan(dossier_result_ready(phone=None), dossier_received(phone=None, code=f"{CODE[:-4]}0002"))
    compose, stalls = setup.notifier.compose, [61]

    def stalled(delivery):  # the process stalls past the lease; meanwhile another instance takes one row
        if stalls:
            setup.clock.advance(stalls.pop())
            other = setup.log.unit_of_work()
            [taken], _rest = other.deliveries.claim_due(setup.clock(), timedelta(seconds=60), 1, {})
            other.commit()
        return compose(delivery)

    monkeypatch.setattr(setup.notifier, "compose", stalled)
    assert setup.notifier.dispatch() == 2
    assert len(setup.email.sent) == 1
    assert [(d.status, d.attempts) for d in setup.rows("email")] == [(SENDING, 2), (DELIVERED, 1)]


# --- receipts ---------------------------------------------------------------------------------------

def test_receipt_deadlines_are_checked_only_while_a_message_awaits_one(tmp_path, monkeypatch):
    setup = Setup(tmp_path, {"receipt_timeout_seconds": 3600})
    setup.notifier.settings.sms = setup.sms = FakeProvider("vnpt", "sms", awaits_receipt=True, outcomes=["m-1"])
    checks = []
    overdue = FakeDeliveryRepository.receipts_overdue
    monkeypatch.setattr(FakeDeliveryRepository, "receipts_overdue",
                        lambda self, now, timeout: checks.append(now) or overdue(self, now, timeout))
    assert setup.notifier.dispatch() == 0 and len(checks) == 1  # at start: does anything await a receipt?
    setup.clock.advance(600)
    assert setup.notifier.dispatch() == 0 and len(checks) == 1 and setup.notifier.next_round_at is None

    setup.plan(dossier_received(email=None))
    sent_at = setup.clock()
    assert setup.notifier.dispatch() == 1
    assert [(d.status, d.provider_ref) for d in setup.rows("sms")] == [(SENDING, "m-1")]
    assert setup.notifier.next_round_at == sent_at + timedelta(seconds=3600)  # wake on the deadline
    setup.clock.advance(3599)
    assert setup.notifier.dispatch() == 0 and len(checks) == 1
    setup.clock.advance(1)
    assert setup.notifier.dispatch() == 0 and len(checks) == 2
    [retry] = setup.rows("sms")
    assert (retry.status, retry.reason, retry.attempts) == (TEMPORARY, "no receipt within 3600 s", 1)
    assert setup.notifier.next_round_at == retry.next_attempt_at


def test_a_receipt_settles_the_message_once_and_a_temporary_one_wakes_the_scheduler(tmp_path, monkeypatch):
    monkeypatch.setenv("NOTIFY_TEST_RECEIPT_TOKEN", "receipt-token")
    monkeypatch.setenv("NOTIFY_TEST_SMS_TOKEN", "t")
    sms = {"name": "vnpt", "url": "http://127.0.0.1:9/send", "body_template": "{{ text }}",
           "receipts": {"token_env": "NOTIFY_TEST_RECEIPT_TOKEN", "reference_path": "id", "status_path": "status",
                        "delivered": ["DELIVRD"], "temporary": ["EXPIRED"]}}
    setup = Setup(tmp_path, {"sms": sms})
    setup.notifier.settings.sms = FakeProvider("vnpt", "sms", awaits_receipt=True, outcomes=["m-1", "m-2"])
    setup.plan(dossier_received(email=None))
    setup.notifier.dispatch()
    woken = setup.woken
    [waiting] = setup.rows("sms")
    assert setup.notifier.receipt(setup.log.unit_of_work(), "vnpt", "receipt-token",
                                  {"id": "m-1", "status": "EXPIRED"}).status == TEMPORARY
    assert setup.woken == woken + 1
    setup.clock.advance(60)
    setup.notifier.dispatch()
    assert setup.notifier.receipt(setup.log.unit_of_work(), "vnpt", "receipt-token",
                                  {"id": "m-2", "status": "DELIVRD"}).status == DELIVERED
    repeat = setup.notifier.receipt(setup.log.unit_of_work(), "vnpt", "receipt-token",
                                    {"id": "m-2", "status": "EXPIRED"})
    assert repeat.status == DELIVERED and [(d.status, d.attempts) for d in setup.rows("sms")] == [(DELIVERED, 2)]
    assert waiting.id == repeat.id and setup.outcome("sms", "vnpt", DELIVERED) == 1


# --- officers and citizens --------------------------------------------------------------------------

def test_an_officer_re_sends_a_dead_letter_and_the_scheduler_is_woken_after_the_commit(setup):
    setup.email.outcomes = [PermanentFailure("SMTP 550 recipient refused")]
    setup.plan(dossier_result_ready(phone=None))
    setup.notifier.dispatch()
    [dead] = setup.rows("email")
    woken = setup.woken
    resent = setup.notifier.resend(setup.log.unit_of_work(), dead.id)
    assert (resent.status, resent.resends, resent.dead_letter, setup.woken) == (CREATED, 1, False, woken + 1)
    with pytest.raises(Conflict):
        setup.notifier.resend(setup.log.unit_of_work(), dead.id)
    assert setup.notifier.dispatch() == 1 and setup.rows("email")[0].status == DELIVERED


def test_opting_out_records_the_choice_and_cancels_what_waits(setup):
    setup.plan(dossier_received())
    view = setup.notifier.set_preferences(setup.log.unit_of_work(), CODE, {"sms": False}, "tracking")
    assert view["sms"]["enabled"] is False and view["email"]["enabled"] is True
    assert [(d.channel, d.status, d.reason) for d in setup.rows()] == [("email", CREATED, None),
                                                                      ("sms", SKIPPED, "opted_out")]
    setup.notifier.set_preferences(setup.log.unit_of_work(), CODE, {"sms": False}, "tracking")
    assert [c.opted_out for _code, c in setup.log.choices] == [True]  # the same choice is not recorded twice

