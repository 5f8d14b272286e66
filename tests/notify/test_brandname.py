"""SMS through the brandname gateway (services/notify/brandname.py) against its simulator
(motcua/simulators/sms.py): the request in the gateway's format, content by its rules, one message per
RequestId whatever the retries, delivery reports called back over HTTP GET, forged reports refused, and
the gateway down, slow, answering garbage or refusing."""
from contextlib import closing

import pytest

from motcua.errors import MotcuaError, Unauthorized
from motcua.simulators.http import Answer, JsonServer
from motcua.simulators.sms import SmsGatewaySimulator
from services.notify import sms
from services.notify.brandname import BrandnameSms
from services.notify.delivery import DELIVERED, PERMANENT, SENDING, TEMPORARY
from services.notify.providers import Outgoing
from tests.infra import free_port
from tests.notify.conftest import CODE, PHONE, dossier_received, event, outcome, plan_once, rows

API_ENV, SECRET_ENV, TOKEN_ENV = "NOTIFY_TEST_ESMS_KEY", "NOTIFY_TEST_ESMS_SECRET", "NOTIFY_TEST_ESMS_REPORTS"


@pytest.fixture(autouse=True)
def secrets(monkeypatch):
    monkeypatch.setenv(API_ENV, "motcua-api-key")
    monkeypatch.setenv(SECRET_ENV, "motcua-secret-key")
    monkeypatch.setenv(TOKEN_ENV, "report-token")


@pytest.fixture
def gateway():
    simulator = SmsGatewaySimulator(port=free_port())
    yield simulator
    simulator.stop()


@pytest.fixture
def receiver():
    """Our receipt URL, played here by a server handing each report to the notifier (the gateway's
    GET /api/v1/notifications/receipts/<provider> does the same over RPC)."""
    state = {}

    def handle(request):
        params = {key: values[0] for key, values in request.query.items()}
        token = params.pop("token", "")
        try:
            with closing(state["new_uow"]()) as uow:
                delivery = state["notifier"].receipt(uow, "brandname", token, params)
        except MotcuaError as error:
            return Answer(401 if isinstance(error, Unauthorized) else 400, {"error": type(error).__name__})
        return Answer(200, {"id": delivery.id, "status": delivery.status})

    server = JsonServer(handle, free_port()).start()
    server.state = state
    yield server
    server.stop()


def brandname_settings(gateway, receiver=None, **more):
    brand = {"url": gateway.url, "api_key_env": API_ENV, "secret_key_env": SECRET_ENV, "brandname": "MOTCUA",
             "timeout": 1, **more}
    if receiver is not None:
        brand.update(callback_url=f"{receiver.url}/api/v1/notifications/receipts/brandname",
                     receipt_token_env=TOKEN_ENV)
    return {"brandname": brand, "lease_seconds": 10, "retry": {"max_attempts": 3, "base_seconds": 10,
                                                                "max_seconds": 60}}


def test_the_gateway_gets_its_format_and_the_report_called_back_delivers(gateway, receiver, make_notifier, new_uow,
                                                                       sessions, registry):
    notifier = make_notifier(brandname_settings(gateway.start(), receiver))
    receiver.state.update(notifier=notifier, new_uow=new_uow)
    plan_once(notifier, new_uow(), event(dossier_received(email=None)))
    assert notifier.dispatch() == 1

    [request] = [r.body for r in gateway.http.requests]
    [waiting] = rows(sessions, "sms")
    assert {key: request[key] for key in ("ApiKey", "SecretKey", "Phone", "Brandname", "SmsType", "IsUnicode",
                                          "Sandbox", "RequestId")} == {
        "ApiKey": "motcua-api-key", "SecretKey": "motcua-secret-key", "Phone": PHONE, "Brandname": "MOTCUA",
        "SmsType": "2", "IsUnicode": "0", "Sandbox": "0", "RequestId": f"{waiting.event_id}.sms"}
    assert request["Content"].startswith(f"Ho so {CODE} da duoc tiep nhan.")
    assert request["CallbackUrl"].endswith("/api/v1/notifications/receipts/brandname?token=report-token")
    [message] = gateway.messages.values()
    assert (waiting.status, waiting.provider, waiting.provider_ref, waiting.segments) == (
        SENDING, "brandname", message.sms_id, 1)

    assert gateway.report(message.sms_id, status="7") == 200  # at the carrier, not final: nothing changes
    assert rows(sessions, "sms")[0].status == SENDING
    assert gateway.report(message.sms_id) == 200
    [delivered] = rows(sessions, "sms")
    assert (delivered.status, delivered.address) == (DELIVERED, None)
    assert outcome(registry, "sms", "brandname", DELIVERED) == 1
    assert registry.get_sample_value("motcua_sms_receipt_seconds_count", {"provider": "brandname"}) == 1
    metrics = notifier.settings.sms.metrics.registry
    assert metrics.get_sample_value("motcua_sms_gateway_requests_total",
                                    {"provider": "brandname", "outcome": "accepted"}) == 1
    assert metrics.get_sample_value("motcua_sms_gateway_parts_total",
                                    {"provider": "brandname", "encoding": "GSM-7"}) == 1


def test_a_forged_report_is_refused_and_a_refused_message_dead_letters(gateway, receiver, make_notifier, new_uow,
                                                                      sessions):
    notifier = make_notifier(brandname_settings(gateway.start(), receiver))
    receiver.state.update(notifier=notifier, new_uow=new_uow)
    plan_once(notifier, new_uow(), event(dossier_received(email=None)))
    notifier.dispatch()
    [message] = gateway.messages.values()
    message.callback_url = message.callback_url.split("?")[0]  # a forger does not know the token
    assert gateway.report(message.sms_id, token="guessed") == 401
    assert rows(sessions, "sms")[0].status == SENDING
    message.callback_url += "?token=report-token"
    assert gateway.report(message.sms_id, status="4", delivered=False) == 200  # the carrier refused it
    [refused] = rows(sessions, "sms")
    assert (refused.status, refused.reason) == (PERMANENT, "receipt 4")
    assert refused.dead_lettered_at is not None


def test_a_retry_after_a_lost_answer_is_one_message_one_charge(gateway, make_notifier, new_uow, sessions, clock):
    notifier = make_notifier(brandname_settings(gateway.start()))
    plan_once(notifier, new_uow(), event(dossier_received(email=None)))
    gateway.faults.delay = 1.5  # the gateway takes it but answers after our 1 s timeout
    assert notifier.dispatch() == 1
    [lost] = rows(sessions, "sms")
    assert (lost.status, lost.reason) == (TEMPORARY, "send ReadTimeout")
    gateway.faults.delay = 0
    clock.advance(60)
    assert notifier.dispatch() == 1
    assert rows(sessions, "sms")[0].status == DELIVERED  # no callback configured: accepted is delivered
    requests_ = [r.body for r in gateway.http.requests]
    assert len(requests_) == 2 and requests_[0]["RequestId"] == requests_[1]["RequestId"]
    assert len(gateway.messages) == 1 and gateway.billed_parts() == 1


@pytest.mark.parametrize("fault, reason, status", [
    ("down", "send ConnectionError", TEMPORARY),
    ("outage", "send HTTP 503", TEMPORARY),
    ("garbage", "send HTTP 200 not JSON", TEMPORARY),
    ("wrong keys", "gateway code '101'", TEMPORARY),
    ("unknown brandname", "gateway code '104'", PERMANENT),
])
def test_the_gateway_failing_is_retried_or_refused_by_its_code(gateway, make_notifier, new_uow, sessions, fault,
                                                               reason, status):
    more = {"brandname": "OTHER"} if fault == "unknown brandname" else {}
    notifier = make_notifier(brandname_settings(gateway, **more))
    if fault != "down":
        gateway.start()
    gateway.faults.outages = fault == "outage"
    gateway.faults.garbage = fault == "garbage"
    if fault == "wrong keys":
        gateway.api_key = "rotated"
    plan_once(notifier, new_uow(), event(dossier_received(email=None)))
    notifier.dispatch()
    [failed] = rows(sessions, "sms")
    assert (failed.status, failed.reason) == (status, reason)
    assert (failed.dead_lettered_at is not None) == (status == PERMANENT)
    outcome_label = {"down": "unreachable", "outage": "retry", "garbage": "garbage", "wrong keys": "retry",
                     "unknown brandname": "refused"}[fault]
    assert notifier.settings.sms.metrics.registry.get_sample_value(
        "motcua_sms_gateway_requests_total", {"provider": "brandname", "outcome": outcome_label}) == 1


def provider(unicode=False, max_segments=3):
    return BrandnameSms("brandname", "http://127.0.0.1:9/send", "k", "s", "MOTCUA", unicode=unicode,
                        max_segments=max_segments)


def test_content_follows_the_gateways_rules():
    accented = "Hồ sơ 000.00.06.H56-260224-0001 đã được tiếp nhận. Hẹn trả kết quả: 27/02/2026."
    message = Outgoing("sms", PHONE, "e1.sms", sms.unaccent(accented), accented=accented)
    assert provider().text_of(message) == "Ho so 000.00.06.H56-260224-0001 da duoc tiep nhan. Hen tra ket qua: 27/02/2026."
    unicode_text = provider(unicode=True).text_of(message)
    assert unicode_text == accented and provider(unicode=True).request_body(message)["IsUnicode"] == "1"
    assert sms.measure(unicode_text).encoding == "UCS-2"
    long = accented * 3  # 3 UCS-2 parts would not hold it: sent unaccented, which fits in 2 GSM-7 parts
    message = Outgoing("sms", PHONE, "e2.sms", sms.unaccent(long), accented=long)
    text = provider(unicode=True).text_of(message)
    assert sms.measure(text).encoding == "GSM-7" and sms.measure(text).segments <= 3
    assert provider(unicode=True).request_body(message)["IsUnicode"] == "0"
    cut = provider(max_segments=1).text_of(message)
    assert sms.measure(cut).segments == 1 and cut.endswith("...")
