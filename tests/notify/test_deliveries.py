"""The delivery log on a real database with the real local providers: one message per (event,
channel, recipient), whatever the bus or a crash does; dead letters, technical failures; citizens'
choices; nothing personal in logs. The rules alone, without a database: test_rules_delivery.py."""
import logging
from datetime import timedelta

import eventlet
from sqlalchemy import select, update

from services.notify import preferences
from services.notify.delivery import CREATED, DELIVERED, SENDING, SKIPPED, TECHNICAL
from services.notify.models import deliveries
from services.notify.models import preferences as recorded_choices
from services.notify.repository import DeliveryRepository, PreferenceRepository
from tests.notify.conftest import (
    plan_once,
    AGENCY,
    CODE,
    EMAIL,
    LAND_OFFICE,
    OFFICE_EMAILS,
    dossier_overdue,
    dossier_received,
    dossier_rescheduled,
    dossier_result_ready,
    event,
    read_jsonl,
    read_mbox,
    rows,
    supplement_requested,
    task_overdue,
)


def test_the_same_event_twice_sends_one_message_per_channel(make_notifier, new_uow, sessions, mbox_path, sms_outbox):
    notifier = make_notifier()
    payload = dossier_received()
    assert plan_once(notifier, new_uow(), event(payload)) is True
    assert plan_once(notifier, new_uow(), event(payload)) is False  # redelivered by the bus: nothing more owed
    assert notifier.dispatch() == 2
    assert plan_once(notifier, new_uow(), event(payload)) is False  # and after sending, still nothing
    assert notifier.dispatch() == 0

    assert len(read_mbox(mbox_path)) == 1 and len(read_jsonl(sms_outbox)) == 1
    assert [(d.channel, d.status, d.attempts, d.recipient_masked) for d in rows(sessions)] == [
        ("email", DELIVERED, 1, "n***@example.com"), ("sms", DELIVERED, 1, "091****678")]
    for delivery in rows(sessions):
        stored = repr({c.name: getattr(delivery, c.name) for c in deliveries.columns})
        assert EMAIL not in stored and "0912345678" not in stored and "Ánh" not in stored


def test_each_event_of_a_dossier_is_its_own_message(make_notifier, new_uow, mbox_path, sessions):
    notifier = make_notifier()
    for payload in (dossier_received(), supplement_requested(), dossier_result_ready()):
        plan_once(notifier, new_uow(), event(payload))
    notifier.dispatch()
    assert [m["Subject"].split("] ")[1] for m in read_mbox(mbox_path)] == [
        f"Đã tiếp nhận hồ sơ {CODE}", f"Hồ sơ {CODE} cần bổ sung giấy tờ", f"Hồ sơ {CODE} đã có kết quả"]
    assert "1. Bản sao giấy chứng sinh" in read_mbox(mbox_path)[1].get_content()
    with sessions() as session:
        listed = DeliveryRepository(session).of_dossier(CODE)
    assert [(d.event_type, d.channel) for d in listed] == [
        ("dossier_received", "email"), ("dossier_received", "sms"), ("supplement_requested", "email"),
        ("supplement_requested", "sms"), ("dossier_result_ready", "email"), ("dossier_result_ready", "sms")]


def test_the_apology_goes_to_the_applicant_with_the_new_appointment(make_notifier, new_uow, mbox_path, sms_outbox):
    notifier = make_notifier()
    plan_once(notifier, new_uow(), event(dossier_rescheduled()))
    assert notifier.dispatch() == 2
    [mail] = read_mbox(mbox_path)
    assert mail["To"] == EMAIL and mail["Subject"] == f"[Một cửa] Xin lỗi và hẹn lại ngày trả kết quả hồ sơ {CODE}"
    body = mail.get_content()
    assert "Sở Tư pháp xin lỗi Ông/Bà" in body and "Hẹn lại ngày trả kết quả: 04/03/2026 16:00" in body
    assert "Chờ kết quả xác minh của Công an phường" in body
    [text] = read_jsonl(sms_outbox)
    assert "Hen lai ngay tra ket qua: 04/03/2026 16:00" in text["text"]


def test_overdue_goes_to_the_agency_office_never_to_the_applicant(make_notifier, new_uow, sessions, mbox_path,
                                                                   sms_outbox):
    notifier = make_notifier()
    for payload in (dossier_overdue(), task_overdue(), task_overdue(agency=LAND_OFFICE)):
        plan_once(notifier, new_uow(), event(payload))
    assert notifier.dispatch() == 2
    mails = read_mbox(mbox_path)
    assert [m["To"] for m in mails] == [OFFICE_EMAILS[AGENCY]] * 2 and not read_jsonl(sms_outbox)
    assert mails[0]["Subject"] == f"[Một cửa] Hồ sơ {CODE} đã quá hạn trả kết quả"
    assert "Kính gửi Sở Tư pháp" in mails[0].get_content() and LAND_OFFICE in mails[0].get_content()
    assert 'Bước "Thẩm định hồ sơ"' in mails[1].get_content()
    # the land office gives no email: its message is skipped, with the reason, and listed with the dossier's
    assert [(d.event_type, d.agency_code, d.status, d.reason) for d in rows(sessions)] == [
        ("dossier_overdue", AGENCY, DELIVERED, None), ("task_overdue", AGENCY, DELIVERED, None),
        ("task_overdue", LAND_OFFICE, SKIPPED, "no_agency_address")]
    with sessions() as session:
        assert len(DeliveryRepository(session).of_dossier(CODE)) == 3


def test_two_dispatchers_at_once_send_a_message_once(make_notifier, new_uow, sessions, mbox_path):
    """Two notify instances: the first holds the row inside its provider when the second looks."""
    first, second = make_notifier(), make_notifier()
    inside, release = eventlet.event.Event(), eventlet.event.Event()
    calls = []
    mailbox = first.settings.email

    class Held:
        name, channel, awaits_receipt = "mailbox", "email", False

        def send(self, message):
            calls.append(message.key)
            inside.send()
            release.wait()
            return mailbox.send(message)

    first.settings.email = Held()
    plan_once(first, new_uow(), event(dossier_result_ready(phone=None)))
    running = eventlet.spawn(first.dispatch)
    inside.wait()
    assert [d.status for d in rows(sessions, "email")] == [SENDING]
    assert second.dispatch() == 0  # the row is held by the first
    release.send()
    assert running.wait() == 1
    assert second.dispatch() == 0

    assert len(calls) == 1 and len(read_mbox(mbox_path)) == 1
    assert [(d.channel, d.status, d.attempts) for d in rows(sessions, "email")] == [("email", DELIVERED, 1)]


def test_slow_sends_never_outlive_the_lease_of_a_row_waiting_its_turn(make_notifier, new_uow, sessions, mbox_path,
                                                                      clock):
    """One sender at a time, 40 s a message, 60 s leases, three messages due: the third must not sit
    claimed behind the first two while a second instance, looking after 80 s, finds its lease run out."""
    settings = {"concurrency": 1, "lease_seconds": 60}
    first, second = make_notifier(settings), make_notifier(settings)
    mailbox, by_second = first.settings.email, []

    class Slow:
        name, channel, awaits_receipt = "mailbox", "email", False
        sent = 0

        def send(self, message):
            clock.advance(40)
            Slow.sent += 1
            if Slow.sent == 2:  # the second instance's round, while the first is busy
                by_second.append(second.dispatch())
            return mailbox.send(message)

    first.settings.email = Slow()
    for number in (1, 2, 3):
        plan_once(first, new_uow(), event(dossier_result_ready(phone=None, code=f"{CODE[:-4]}000{number}")))
    while first.dispatch():
        pass

    assert len(read_mbox(mbox_path)) == 3 and len({m["Message-ID"] for m in read_mbox(mbox_path)}) == 3
    assert Slow.sent == 2 and by_second == [1]  # the third went once, through the second instance
    assert [(d.status, d.attempts) for d in rows(sessions, "email")] == [(DELIVERED, 1)] * 3


def test_a_claim_taken_over_before_its_send_is_not_sent(make_notifier, new_uow, sessions, mbox_path, clock,
                                                       monkeypatch):
    """Two rows claimed in one round; the process stalls past the lease before sending them (a pause,
    a slow database) and a second instance takes one of them over: the first must see that this row
    is no longer its own, and not send it; the other row, still its own, it sends."""
    first, second = make_notifier({"concurrency": 2, "lease_seconds": 60}), make_notifier({"concurrency": 1})
    composed, compose = [], first.compose

    def stalling(delivery):
        composed.append(delivery.id)
        if len(composed) == 2:
            clock.advance(61)
            assert second.dispatch() == 1  # the oldest of the two
        return compose(delivery)

    monkeypatch.setattr(first, "compose", stalling)
    for number in (1, 2):
        plan_once(first, new_uow(), event(dossier_result_ready(phone=None, code=f"{CODE[:-4]}000{number}")))
    assert first.dispatch() == 2

    assert len(read_mbox(mbox_path)) == 2 and len({m["Message-ID"] for m in read_mbox(mbox_path)}) == 2
    assert [(d.status, d.attempts) for d in rows(sessions, "email")] == [(DELIVERED, 2), (DELIVERED, 1)]


def test_a_row_left_sending_by_a_killed_process_is_sent_when_its_lease_runs_out(make_notifier, new_uow, sessions,
                                                                                mbox_path, clock):
    notifier = make_notifier({"lease_seconds": 60})
    plan_once(notifier, new_uow(), event(dossier_result_ready(phone=None)))
    with sessions() as session:  # what a process killed mid-send leaves behind
        session.execute(update(deliveries).where(deliveries.c.channel == "email").values(
            status=SENDING, attempts=1, lease_until=clock() + timedelta(seconds=60)))
        session.commit()

    assert notifier.dispatch() == 0  # it may still be in flight elsewhere
    clock.advance(61)
    assert notifier.dispatch() == 1
    assert [(d.channel, d.status, d.attempts) for d in rows(sessions, "email")] == [("email", DELIVERED, 2)]
    assert len(read_mbox(mbox_path)) == 1


def test_a_message_that_cannot_be_rendered_is_a_technical_failure_then_resent(make_notifier, new_uow, sessions,
                                                                              mbox_path, registry, caplog):
    notifier = make_notifier()
    plan_once(notifier, new_uow(), event(dossier_result_ready(phone=None)))
    with sessions() as session:  # e.g. an agency override deployed that needs a variable the row lacks
        delivery = session.execute(select(deliveries).where(deliveries.c.channel == "email")).one()
        context = dict(delivery.context)
        session.execute(update(deliveries).where(deliveries.c.id == delivery.id)
                        .values(context={k: v for k, v in context.items() if k != "due_at"}))
        session.commit()
    with caplog.at_level(logging.DEBUG):
        assert notifier.dispatch() == 1
    [failed] = rows(sessions, "email")
    assert (failed.status, failed.reason, failed.attempts) == (TECHNICAL, "UndefinedError", 1)
    assert failed.dead_lettered_at is not None and failed.next_attempt_at is None
    assert EMAIL not in caplog.text and "Ánh" not in caplog.text

    with sessions() as session:
        session.execute(update(deliveries).where(deliveries.c.id == failed.id).values(context=context))  # fixed
        session.commit()
    notifier.resend(new_uow(), failed.id)
    assert notifier.dispatch() == 1
    assert [(d.status, d.resends) for d in rows(sessions, "email")] == [(DELIVERED, 1)]
    assert len(read_mbox(mbox_path)) == 1


def test_opting_out_records_the_choice_and_cancels_what_waits(make_notifier, new_uow, sessions, mbox_path,
                                                              sms_outbox, clock):
    notifier = make_notifier()
    plan_once(notifier, new_uow(), event(dossier_received()))  # planned, not yet sent
    view = notifier.set_preferences(new_uow(), CODE, {"sms": False}, source="tracking")
    assert view["sms"]["enabled"] is False and view["email"]["enabled"] is True
    assert view["sms"]["legal_basis"] == preferences.LEGAL_BASIS and view["email"]["recorded_at"] is None
    assert notifier.dispatch() == 1  # the email only
    assert read_jsonl(sms_outbox) == [] and len(read_mbox(mbox_path)) == 1
    assert [(d.channel, d.status, d.reason) for d in rows(sessions)] == [("email", DELIVERED, None),
                                                                        ("sms", SKIPPED, "opted_out")]

    plan_once(notifier, new_uow(), event(dossier_result_ready(phone="0912345678")))  # later events: no SMS either
    assert [(d.channel, d.status, d.reason) for d in rows(sessions)][2:] == [("email", CREATED, None),
                                                                            ("sms", SKIPPED, "opted_out")]
    clock.advance(1)
    notifier.set_preferences(new_uow(), CODE, {"sms": True, "email": True}, source="tracking")
    notifier.set_preferences(new_uow(), CODE, {"sms": True}, source="tracking")  # no change: not recorded again
    with sessions() as session:
        choices = [(p.channel, p.opted_out, p.source)
                   for p in session.execute(select(recorded_choices).order_by(recorded_choices.c.id))]
        current = preferences.in_force(PreferenceRepository(session).recorded(CODE))
        assert preferences.view(current)["sms"]["enabled"] is True
    assert choices == [("sms", True, "tracking"), ("sms", False, "tracking"), ("email", False, "tracking")]
