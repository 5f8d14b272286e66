"""Email over SMTP against a real local server (aiosmtpd in its own process): plain, STARTTLS and
SSL with authentication and a self-signed certificate, a relay that fails the first two tries,
and one that is down for the whole test (dead letter, then re-sent)."""
import mailbox
import re
import subprocess
import sys
import time

import pytest

from motcua.catalog import CatalogError
from motcua.config import ROOT, nameko_config
from services.notify.delivery import DELIVERED, TEMPORARY
from services.notify.providers import (
    MailboxEmail,
    Outgoing,
    SmtpEmail,
    TemporaryFailure,
)
from services.notify.repository import DeliveryRepository
from services.notify.settings import load_agency_offices, load_settings
from tests.infra import free_port, set_production_keys
from tests.notify.conftest import (
    plan_once,
    CODE,
    EMAIL,
    dossier_received,
    dossier_result_ready,
    event,
    outcome,
    read_jsonl,
    read_maildir,
    read_mbox,
    rows,
    smtp_config,
)

PASSWORD_ENV = "NOTIFY_TEST_SMTP_PASSWORD"


@pytest.fixture
def maildir(tmp_path):
    return tmp_path / "smtp-maildir"


def smtp_settings(port, **extra):
    return {"email": {"host": "127.0.0.1", "port": port, "timeout": 5, **extra}, "lease_seconds": 10,
            "retry": {"max_attempts": 3, "base_seconds": 10, "max_seconds": 60}}


def test_plain_smtp_delivers_once_and_sms_stays_out_of_the_mail(local_servers, maildir, make_notifier, new_uow,
                                                                sessions, sms_outbox, registry):
    server = local_servers("smtp_server.py", "--maildir", str(maildir))
    notifier = make_notifier(smtp_settings(server.port))
    payload = dossier_received()

    assert plan_once(notifier, new_uow(), event(payload)) is True
    assert plan_once(notifier, new_uow(), event(payload)) is False  # the bus delivered the event again
    assert notifier.dispatch() == 2  # email and SMS
    assert notifier.dispatch() == 0

    [got] = read_maildir(maildir)
    assert got["X-RcptTo"] == EMAIL and got["To"] == EMAIL
    assert got["Subject"] == f"[Một cửa] Đã tiếp nhận hồ sơ {CODE}"
    assert got["Message-ID"] == f"<{payload['event_id']}.email@motcua.test>"
    assert "Ngày hẹn trả kết quả:  27/02/2026 16:00" in got.get_content()
    [text] = read_jsonl(sms_outbox)
    assert text["to"] == "0912345678" and text["text"].startswith(f"Ho so {CODE} da duoc tiep nhan")
    assert [(d.channel, d.status, d.attempts) for d in rows(sessions)] == [("email", DELIVERED, 1),
                                                                          ("sms", DELIVERED, 1)]
    assert outcome(registry, "email", "smtp", DELIVERED) == 1
    assert registry.get_sample_value("motcua_notification_delivery_seconds_count",
                                     {"channel": "email", "provider": "smtp"}) == 1


def test_starttls_with_authentication_and_a_self_signed_certificate(local_servers, maildir, certificate, tmp_path,
                                                                    monkeypatch):
    cert, key = certificate
    server = local_servers("smtp_server.py", "--maildir", str(maildir), "--starttls", str(cert), str(key),
                           "--auth", "motcua:s3cret")
    monkeypatch.setenv(PASSWORD_ENV, "s3cret")
    provider = load_settings({"SMTP": smtp_config(tmp_path / "m.mbox"), "NOTIFY": smtp_settings(
        server.port, security="starttls", username="motcua", password_env=PASSWORD_ENV, ca_file=str(cert))}).email
    message = message_to(EMAIL)

    provider.send(message)
    assert [m["X-RcptTo"] for m in read_maildir(maildir)] == [EMAIL]

    provider.password = "wrong"
    with pytest.raises(TemporaryFailure):  # our configuration: retried, then dead-lettered
        provider.send(message)
    untrusted = SmtpEmail("127.0.0.1", server.port, security="starttls", username="motcua", password="s3cret",
                          timeout=5)
    with pytest.raises(TemporaryFailure, match="SSLCertVerificationError"):  # no CA given: the cert is refused
        untrusted.send(message)
    assert len(read_maildir(maildir)) == 1


def test_ssl_with_authentication(local_servers, maildir, certificate):
    cert, key = certificate
    server = local_servers("smtp_server.py", "--maildir", str(maildir), "--ssl", str(cert), str(key),
                           "--auth", "motcua:s3cret")
    SmtpEmail("127.0.0.1", server.port, security="ssl", username="motcua", password="s3cret", timeout=5,
              ca_file=str(cert)).send(message_to(EMAIL))
    assert [m["X-RcptTo"] for m in read_maildir(maildir)] == [EMAIL]


def message_to(address):
    from email.message import EmailMessage
    email = EmailMessage()
    email["From"], email["To"], email["Subject"] = "no-reply@motcua.test", address, "Thử"
    email.set_content("Nội dung thử", charset="utf-8")
    return Outgoing("email", address, "k", "Nội dung thử", email=email)


def test_a_relay_failing_the_first_two_tries_delivers_on_the_third(local_servers, maildir, make_notifier, new_uow,
                                                                   sessions, clock, registry):
    server = local_servers("smtp_server.py", "--maildir", str(maildir), "--fail-first", "2")
    notifier = make_notifier(smtp_settings(server.port), jitter=lambda: 0.5)
    plan_once(notifier, new_uow(), event(dossier_result_ready()))

    assert notifier.dispatch() == 1
    [first] = rows(sessions, "email")
    assert (first.status, first.attempts, first.reason) == (TEMPORARY, 1, "SMTP 451 SMTPDataError")
    assert (first.next_attempt_at - clock()).total_seconds() == 7.5  # 10 s, half of it jittered (0.5)
    assert notifier.dispatch() == 0  # not due yet
    clock.advance(7.5)
    assert notifier.dispatch() == 1
    [second] = rows(sessions, "email")
    assert (second.status, second.attempts) == (TEMPORARY, 2)
    assert (second.next_attempt_at - clock()).total_seconds() == 15  # doubled
    clock.advance(15)
    assert notifier.dispatch() == 1

    [delivered] = rows(sessions, "email")
    assert (delivered.status, delivered.attempts, delivered.dead_lettered_at) == (DELIVERED, 3, None)
    assert delivered.address is None and delivered.context is None  # erased once delivered
    assert len(read_maildir(maildir)) == 1
    assert registry.get_sample_value("motcua_notification_retries_total",
                                     {"channel": "email", "provider": "smtp"}) == 2
    assert outcome(registry, "email", "smtp", TEMPORARY) == 2 and outcome(registry, "email", "smtp", DELIVERED) == 1


def test_a_relay_down_for_the_whole_test_dead_letters_then_the_resend_delivers(local_servers, maildir, make_notifier,
                                                                               new_uow, sessions, clock, registry):
    port = free_port()  # nothing listens here until the end
    notifier = make_notifier(smtp_settings(port))
    plan_once(notifier, new_uow(), event(dossier_result_ready()))

    for _attempt in range(3):
        assert notifier.dispatch() == 1
        clock.advance(60)
    assert notifier.dispatch() == 0  # the last try is spent: nothing more is scheduled
    [dead] = rows(sessions, "email")
    assert (dead.status, dead.attempts, dead.reason) == (TEMPORARY, 3, "ConnectionRefusedError")
    assert dead.dead_lettered_at is not None and dead.next_attempt_at is None
    with sessions() as session:
        assert [d.id for d in DeliveryRepository(session).dead_letters(100)] == [dead.id]
    assert registry.get_sample_value("motcua_notification_dead_letters_total",
                                     {"channel": "email", "provider": "smtp"}) == 1

    local_servers("smtp_server.py", "--maildir", str(maildir), port=port)  # the relay is back
    notifier.resend(new_uow(), dead.id)
    assert notifier.dispatch() == 1

    [delivered] = rows(sessions, "email")
    assert (delivered.status, delivered.attempts, delivered.resends, delivered.dead_lettered_at) == (
        DELIVERED, 1, 1, None)
    assert [m["X-RcptTo"] for m in read_maildir(maildir)] == [EMAIL]
    with sessions() as session:
        assert DeliveryRepository(session).dead_letters(100) == []


def test_without_an_smtp_host_the_mailbox_file_is_used(tmp_path):
    settings = load_settings({"SMTP": smtp_config(tmp_path / "m.mbox"), "NOTIFY": {}})
    assert isinstance(settings.email, MailboxEmail) and settings.email.path == tmp_path / "m.mbox"
    assert settings.sms.path == tmp_path / "sms-outbox.jsonl"


def test_production_without_an_smtp_host_is_refused(tmp_path, monkeypatch):
    for name in ("SMTP_HOST", "NOTIFY_CONFIG"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("MOTCUA_ENV", "production")
    set_production_keys(monkeypatch, tmp_path)
    monkeypatch.setenv("NOTIFY_MAILBOX", str(tmp_path / "m.mbox"))
    with pytest.raises(SystemExit, match="MOTCUA_ENV=production needs an SMTP host .*"
                                         "the mailbox file is for development only"):
        load_settings(nameko_config("amqp://broker", services=["notify"]))
    monkeypatch.setenv("SMTP_HOST", "smtp.example.gov.vn")
    assert isinstance(load_settings(nameko_config("amqp://broker", services=["notify"])).email, SmtpEmail)


def test_agency_offices_come_from_agencies_yaml_and_a_bad_email_is_refused_with_its_line(tmp_path):
    names, emails = load_agency_offices(ROOT / "deploy" / "catalog")
    assert emails["000.00.06.H56"] == "vanphong.sotuphap@example.gov.vn" and names["000.00.06.H56"] == "Sở Tư pháp"
    assert "000.00.00.H56" in names and "000.00.00.H56" not in emails  # optional: no email, no overdue mail
    (tmp_path / "agencies.yaml").write_text(
        "province: {code: H56}\nlevels: [department]\nagencies:\n  - code: 000.00.06.H56\n    name: Sở Tư pháp\n"
        "    level: department\n    email: not-an-address\n", encoding="utf-8")
    with pytest.raises(CatalogError, match=r"agencies.yaml:\d+: agencies.0.email"):
        load_agency_offices(tmp_path)


def test_the_mailbox_file_gets_what_pythons_mbox_writes_and_stays_readable(tmp_path):
    ours, reference = tmp_path / "ours.mbox", tmp_path / "reference.mbox"
    box = mailbox.mbox(reference)
    for n, body in enumerate(["Nội dung thử", "Một dòng\nFrom đầu dòng, phải được trích dẫn\n"]):
        message = message_to(EMAIL)
        message.email.set_content(body, charset="utf-8", cte="8bit")
        MailboxEmail(ours).send(message)
        box.add(message.email)
    box.close()
    from_lines = re.compile(rb"^From MAILER-DAEMON .*$", re.MULTILINE)
    assert from_lines.sub(b"From", ours.read_bytes()) == from_lines.sub(b"From", reference.read_bytes())
    assert [m.get_content() for m in read_mbox(ours)] == ["Nội dung thử\n",
                                                          "Một dòng\n>From đầu dòng, phải được trích dẫn\n"]


def test_a_mailbox_locked_by_a_mail_reader_is_a_temporary_failure(tmp_path):
    path = tmp_path / "m.mbox"
    reader = subprocess.Popen([sys.executable, "-c", "import mailbox, sys, time; box = mailbox.mbox(sys.argv[1]); "
                               "box.lock(); print('locked', flush=True); time.sleep(30)", str(path)],
                              stdout=subprocess.PIPE)
    try:
        assert reader.stdout.readline() == b"locked\n"
        with pytest.raises(TemporaryFailure, match="mailbox locked"):
            MailboxEmail(path).send(message_to(EMAIL))
    finally:
        reader.kill()
        reader.wait()
    MailboxEmail(path).send(message_to(EMAIL))
    assert len(read_mbox(path)) == 1


# A notify process inside a delivery: its message appended, the mailbox locked, its fsync never returning.
NOTIFY_FROZEN_HOLDING_THE_LOCK = """
import os, sys, time
from email.message import EmailMessage
from services.notify.providers import MailboxEmail, Outgoing

def frozen(fd):
    print("holding", flush=True)
    time.sleep(60)

email = EmailMessage()
email["To"] = "held@example.com"
email.set_content("held")
os.fsync = frozen
MailboxEmail(sys.argv[1]).send(Outgoing("email", "held@example.com", "k", "held", email=email))
"""


def test_a_notify_killed_while_it_holds_the_mailbox_lock_never_blocks_the_next_delivery(tmp_path):
    path = tmp_path / "m.mbox"
    holder = subprocess.Popen([sys.executable, "-c", NOTIFY_FROZEN_HOLDING_THE_LOCK, str(path)], cwd=ROOT,
                              stdout=subprocess.PIPE)
    try:
        assert holder.stdout.readline() == b"holding\n"
        with pytest.raises(TemporaryFailure, match="mailbox locked"):  # alive, it holds the lock
            MailboxEmail(path).send(message_to(EMAIL))
    finally:
        holder.kill()  # SIGKILL, with the lock held
        holder.wait()
    started = time.monotonic()
    MailboxEmail(path).send(message_to(EMAIL))
    assert time.monotonic() - started < 0.5
    assert [m["To"] for m in read_mbox(path)] == ["held@example.com", EMAIL]
