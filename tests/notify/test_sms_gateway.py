"""SMS through a generic HTTP carrier gateway, against a local HTTP server standing in for the
carrier (its own process): request built from data, success rule, retries, dead letter and re-send,
delivery receipts, rate limit. Agencies' webhooks against the same kind of server, signed."""
import json
import time
from contextlib import closing

import pytest

from motcua.errors import Conflict, NotFound, Unauthorized, ValidationFailed
from services.notify.delivery import DELIVERED, PERMANENT, SENDING, SKIPPED, TEMPORARY
from services.notify.providers import SIGNATURE_HEADER, RateLimiter, verify_signature
from tests.infra import free_port
from tests.notify.conftest import (
    plan_once,
    AGENCY,
    CODE,
    PHONE,
    dossier_received,
    dossier_result_ready,
    dossier_withdrawn,
    event,
    outcome,
    read_jsonl,
    rows,
)

TOKEN_ENV, RECEIPT_ENV, HOOK_ENV = "NOTIFY_TEST_SMS_TOKEN", "NOTIFY_TEST_RECEIPT_TOKEN", "NOTIFY_TEST_HOOK_SECRET"
BODY = '{"to": "{{ to }}", "text": {{ text | tojson }}, "ref": "{{ reference }}", "brand": "{{ sender }}"}'


@pytest.fixture(autouse=True)
def secrets(monkeypatch):
    monkeypatch.setenv(TOKEN_ENV, "carrier-api-token")
    monkeypatch.setenv(RECEIPT_ENV, "receipt-token")
    monkeypatch.setenv(HOOK_ENV, "agency-hook-secret")


def sms_settings(port, receipts=True, **extra):
    sms = {"name": "vnpt", "url": f"http://127.0.0.1:{port}/send", "body_template": BODY, "sender": "MOTCUA",
           "auth": {"type": "bearer", "secret_env": TOKEN_ENV}, "timeout": 5,
           "success": {"status": [200], "json_path": "code", "equals": ["00"], "temporary_codes": ["99"],
                       "reference_path": "message_id"}}
    if receipts:
        sms["receipts"] = {"token_env": RECEIPT_ENV, "reference_path": "id", "status_path": "status",
                           "delivered": ["DELIVRD"], "temporary": ["EXPIRED"], "permanent": ["UNDELIV"]}
    return {"sms": sms, "lease_seconds": 10, "retry": {"max_attempts": 3, "base_seconds": 10, "max_seconds": 60},
            **extra}


def carrier(local_servers, tmp_path, statuses="200", reply='{"code": "00", "message_id": "m-{n}"}', port=None,
            run=True):
    return local_servers("carrier.py", "--log", str(tmp_path / "carrier.jsonl"), "--statuses", statuses,
                         "--reply", reply, port=port, run=run)


def sms_rows(sessions):
    return rows(sessions, "sms")


def test_the_carrier_gets_the_request_built_from_data_and_its_receipt_delivers(local_servers, tmp_path,
                                                                               make_notifier, new_uow, sessions,
                                                                               registry):
    server = carrier(local_servers, tmp_path)
    notifier = make_notifier(sms_settings(server.port))
    plan_once(notifier, new_uow(), event(dossier_received()))
    assert notifier.dispatch() == 2  # the email goes to the mailbox, the SMS to the carrier

    [request] = read_jsonl(tmp_path / "carrier.jsonl")
    assert request["path"] == "/send" and request["headers"]["Authorization"] == "Bearer carrier-api-token"
    body = json.loads(request["body"])
    assert body["to"] == "84912345678" and body["brand"] == "MOTCUA"
    assert body["text"] == (f"Ho so {CODE} da duoc tiep nhan. Hen tra ket qua: 27/02/2026 16:00. "
                            "Tra cuu bang ma ho so va 4 so cuoi dien thoai.")
    [waiting] = sms_rows(sessions)
    assert body["ref"] == f"{waiting.event_id}.sms"
    assert (waiting.status, waiting.provider, waiting.provider_ref, waiting.segments) == (SENDING, "vnpt", "m-1", 1)
    assert waiting.recipient_masked == "091****678"
    assert notifier.dispatch() == 0  # accepted by the carrier, awaiting its receipt: never sent again

    with closing(new_uow()) as uow:
        with pytest.raises(Unauthorized):
            notifier.receipt(uow, "vnpt", "wrong", {"id": "m-1", "status": "DELIVRD"})
        with pytest.raises(ValidationFailed) as error:
            notifier.receipt(uow, "vnpt", "receipt-token", {"id": "m-1", "status": "??"})
        assert error.value.field == "status"
        with pytest.raises(NotFound):
            notifier.receipt(uow, "vnpt", "receipt-token", {"id": "m-404", "status": "DELIVRD"})
        assert notifier.receipt(uow, "vnpt", "receipt-token", {"id": "m-1", "status": "DELIVRD"}).status \
            == DELIVERED
        notifier.receipt(uow, "vnpt", "receipt-token", {"id": "m-1", "status": "UNDELIV"})  # a late repeat
    [delivered] = sms_rows(sessions)
    assert (delivered.status, delivered.address) == (DELIVERED, None)
    assert outcome(registry, "sms", "vnpt", DELIVERED) == 1


def test_an_sms_whose_receipt_never_comes_is_retried_then_dead_lettered(local_servers, tmp_path, make_notifier,
                                                                         new_uow, sessions, clock, registry):
    server = carrier(local_servers, tmp_path)
    assert make_notifier(sms_settings(server.port)).settings.receipt_timeout_seconds == 86400  # the default: 24 h
    notifier = make_notifier(sms_settings(server.port, receipt_timeout_seconds=3600))
    plan_once(notifier, new_uow(), event(dossier_received(email=None)))
    assert notifier.dispatch() == 1
    clock.advance(3599)
    assert notifier.dispatch() == 0
    assert [(d.status, d.provider_ref) for d in sms_rows(sessions)] == [(SENDING, "m-1")]  # still within the timeout

    clock.advance(1)  # an hour without a receipt: a temporary failure, tried again after the backoff
    assert notifier.dispatch() == 0
    [waiting] = sms_rows(sessions)
    assert (waiting.status, waiting.reason, waiting.attempts) == (TEMPORARY, "no receipt within 3600 s", 1)
    assert waiting.provider_ref is None and waiting.dead_lettered_at is None
    with closing(new_uow()) as uow, pytest.raises(NotFound):  # a receipt for the abandoned try changes nothing
        notifier.receipt(uow, "vnpt", "receipt-token", {"id": "m-1", "status": "DELIVRD"})
    for attempt in (2, 3):
        clock.advance(60)
        assert notifier.dispatch() == 1
        assert [(d.status, d.attempts, d.provider_ref) for d in sms_rows(sessions)] == [
            (SENDING, attempt, f"m-{attempt}")]
        clock.advance(3600)
        notifier.dispatch()

    [dead] = sms_rows(sessions)  # the last try's receipt never came either: dead-lettered
    assert (dead.status, dead.reason, dead.attempts) == (TEMPORARY, "no receipt within 3600 s", 3)
    assert dead.dead_lettered_at is not None
    requests_seen = read_jsonl(tmp_path / "carrier.jsonl")
    assert len(requests_seen) == 3 and len({json.loads(r["body"])["ref"] for r in requests_seen}) == 1
    assert registry.get_sample_value("motcua_notification_dead_letters_total",
                                     {"channel": "sms", "provider": "vnpt"}) == 1
    assert outcome(registry, "sms", "vnpt", TEMPORARY) == 3


def test_a_carrier_failing_the_first_two_tries_delivers_on_the_third(local_servers, tmp_path, make_notifier,
                                                                     new_uow, sessions, clock, registry):
    server = carrier(local_servers, tmp_path, statuses="503,503,200")
    notifier = make_notifier(sms_settings(server.port, receipts=False))
    plan_once(notifier, new_uow(), event(dossier_received(email=None)))

    assert notifier.dispatch() == 1
    assert [(d.status, d.reason) for d in sms_rows(sessions)] == [(TEMPORARY, "HTTP 503")]
    for _retry in range(2):
        clock.advance(60)
        assert notifier.dispatch() == 1
    [delivered] = sms_rows(sessions)
    assert (delivered.status, delivered.attempts) == (DELIVERED, 3)
    requests_seen = read_jsonl(tmp_path / "carrier.jsonl")
    assert len(requests_seen) == 3 and len({r["body"] for r in requests_seen}) == 1  # the same message each time
    assert registry.get_sample_value("motcua_notification_retries_total",
                                     {"channel": "sms", "provider": "vnpt"}) == 2


def test_a_carrier_down_for_the_whole_test_dead_letters_then_the_resend_delivers(local_servers, tmp_path,
                                                                                 make_notifier, new_uow, sessions,
                                                                                 clock, registry):
    port = free_port()
    notifier = make_notifier(sms_settings(port, receipts=False))
    plan_once(notifier, new_uow(), event(dossier_received(email=None)))
    for _attempt in range(3):
        assert notifier.dispatch() == 1
        clock.advance(60)
    [dead] = sms_rows(sessions)
    assert (dead.status, dead.reason, dead.attempts) == (TEMPORARY, "ConnectionError", 3)
    assert dead.dead_lettered_at is not None
    assert registry.get_sample_value("motcua_notification_dead_letters_total",
                                     {"channel": "sms", "provider": "vnpt"}) == 1

    carrier(local_servers, tmp_path, port=port)
    with closing(new_uow()) as uow:
        notifier.resend(uow, dead.id)
        with pytest.raises(Conflict):
            notifier.resend(uow, dead.id)  # no longer a dead letter
    assert notifier.dispatch() == 1
    assert [(d.status, d.resends) for d in sms_rows(sessions)] == [(DELIVERED, 1)]
    assert len(read_jsonl(tmp_path / "carrier.jsonl")) == 1


@pytest.mark.parametrize("code, status, dead", [("13", PERMANENT, True), ("99", TEMPORARY, False)])
def test_the_carriers_own_code_decides_permanent_or_temporary(local_servers, tmp_path, make_notifier, new_uow,
                                                              sessions, code, status, dead):
    server = carrier(local_servers, tmp_path, reply=f'{{"code": "{code}"}}')
    notifier = make_notifier(sms_settings(server.port, receipts=False))
    plan_once(notifier, new_uow(), event(dossier_received(email=None)))
    notifier.dispatch()
    [delivery] = sms_rows(sessions)
    assert (delivery.status, delivery.reason, delivery.dead_lettered_at is not None) == (
        status, f"carrier code '{code}'", dead)


def test_the_rate_limit_holds_messages_back_until_the_provider_has_room(local_servers, tmp_path, make_notifier,
                                                                        new_uow, sessions):
    server = carrier(local_servers, tmp_path)
    notifier = make_notifier(sms_settings(server.port, receipts=False))
    seconds = [0.0]
    notifier.settings.limiters["vnpt"] = RateLimiter(rate=1, burst=2, clock=lambda: seconds[0])
    for n in range(3):
        plan_once(notifier, new_uow(), event(dossier_received(email=None, code=f"{AGENCY}-260224-000{n}")))

    assert notifier.dispatch() == 2
    assert notifier.dispatch() == 0  # the third waits, still due
    seconds[0] += 1.0
    assert notifier.dispatch() == 1
    assert [d.status for d in sms_rows(sessions)] == [DELIVERED] * 3


def test_sms_with_an_unusable_number_is_skipped(make_notifier, new_uow, sessions):
    notifier = make_notifier()
    plan_once(notifier, new_uow(), event(dossier_received(email=None, phone="12345")))
    plan_once(notifier, new_uow(), event(dossier_result_ready(email=None, phone=None)))
    assert [(d.event_type, d.channel, d.status, d.reason, d.recipient_masked) for d in rows(sessions)] == [
        ("dossier_received", "email", SKIPPED, "no_address", ""),
        ("dossier_received", "sms", SKIPPED, "invalid_address", "***"),
        ("dossier_result_ready", "email", SKIPPED, "no_address", ""),
        ("dossier_result_ready", "sms", SKIPPED, "no_address", "")]
    assert notifier.dispatch() == 0


def test_agency_webhooks_are_signed_retried_and_carry_no_contact(local_servers, tmp_path, make_notifier, new_uow,
                                                                 sessions, clock):
    server = carrier(local_servers, tmp_path, statuses="500,204", reply="")
    hook = {"agency_code": AGENCY, "url": f"http://127.0.0.1:{server.port}/motcua-events", "secret_env": HOOK_ENV,
            "events": ["dossier_received", "dossier_withdrawn"], "timeout": 5}
    notifier = make_notifier({"webhooks": [hook], "lease_seconds": 10})
    received = dossier_received()
    plan_once(notifier, new_uow(), event(received))
    plan_once(notifier, new_uow(), event(dossier_withdrawn()))  # no contact: only the agency's system hears of it
    notifier.dispatch()
    clock.advance(3600)
    notifier.dispatch()

    hooks = rows(sessions, "webhook")
    assert [(d.event_type, d.status, d.provider, d.recipient_masked) for d in hooks] == [
        ("dossier_received", DELIVERED, f"webhook-{AGENCY}", f"webhook-{AGENCY}"),
        ("dossier_withdrawn", DELIVERED, f"webhook-{AGENCY}", f"webhook-{AGENCY}")]
    calls = read_jsonl(tmp_path / "carrier.jsonl")
    assert len(calls) == 3  # one of the first two answered 500 and was sent again
    for call in calls:
        body = call["body"].encode()
        assert verify_signature(b"agency-hook-secret", call["headers"][SIGNATURE_HEADER], body, time.time())
        assert not verify_signature(b"another-secret", call["headers"][SIGNATURE_HEADER], body, time.time())
        assert not verify_signature(b"agency-hook-secret", call["headers"][SIGNATURE_HEADER], body + b" ",
                                    time.time())
        assert "contact" not in json.loads(body)["data"] and PHONE not in call["body"]
    bodies = {json.loads(c["body"])["event_type"]: json.loads(c["body"]) for c in calls}
    assert bodies["dossier_received"]["event_id"] == received["event_id"]
    assert bodies["dossier_received"]["data"]["code"] == CODE
    assert {c["headers"]["X-Motcua-Event"] for c in calls} == {"dossier_received", "dossier_withdrawn"}


def test_a_stale_signature_is_refused():
    from services.notify.providers import signature
    header = signature(b"k", 1_000_000, b"{}")
    assert verify_signature(b"k", header, b"{}", now=1_000_100)
    assert not verify_signature(b"k", header, b"{}", now=1_000_000 + 301)
    assert not verify_signature(b"k", "t=x,v1=y", b"{}", now=1_000_000)
