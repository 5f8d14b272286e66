"""The postal service connector (services/intake/postal.py) against its simulator
(motcua/simulators/postal.py), on intake's database: orders made in the carrier's format, the carrier's
signed news applied, a forged one refused, the carrier down, slow, answering garbage or refusing."""
import json
from datetime import timedelta

import pytest
from prometheus_client import CollectorRegistry

from motcua.errors import NotFound, Unauthorized
from motcua.simulators.http import Answer, JsonServer
from motcua.simulators.postal import PostalSimulator
from services.intake import dossiers, postal
from services.intake.models import shipments
from tests.infra import free_port
from tests.intake.test_dossiers import APPLICANT, MONDAY_9AM, submission

SECRET = "postal-test-secret"
NAMES = {"000.20.01.H56": "UBND xã Đông Sơn"}


@pytest.fixture
def carrier():
    simulator = PostalSimulator(callback_secret=SECRET, port=free_port())
    yield simulator
    simulator.stop()


def settings(carrier, **more):
    return postal.PostalSettings(**{"url": carrier.url, "username": "motcua", "password": "motcua-dev",
                                    "callback_secret": SECRET, "province_name": "Tỉnh Thanh Hóa",
                                    "office_phone": "02373852000", "timeout": 0.5,
                                    "retry_base": 5, "retry_max": 60, **more})


def client_of(carrier, **more):
    return postal.PostalClient(settings(carrier, **more), postal.PostalMetrics(CollectorRegistry()))


def picked_up_later(uow, policy):
    dossier = dossiers.submit(uow, policy, {**submission(), "postal": {"pickup": True, "delivery": True}}, None,
                              MONDAY_9AM)
    uow.commit()
    return dossier


def rows(uow):
    uow.rollback()
    return [dict(r) for r in uow.session.execute(shipments.select().order_by(shipments.c.id)).mappings()]


@pytest.fixture
def callbacks():
    """Our callback URL, played here by a server handing each news to `apply_callback` (the gateway's
    POST /api/v1/postal/callbacks does the same over RPC)."""
    state = {}

    def handle(request):
        try:
            answer = postal.apply_callback(state["uow"], state["settings"], state["metrics"],
                                           request.headers.get("X-Postal-Signature"), request.raw.decode(),
                                           MONDAY_9AM + timedelta(days=1))
        except Unauthorized:
            state["uow"].rollback()
            return Answer(401, {"error": "unauthorized"})
        return Answer(200, answer)

    server = JsonServer(handle, free_port()).start()
    server.state = state
    yield server
    server.stop()


def test_a_pickup_is_ordered_in_the_carriers_format_and_its_signed_news_reach_the_history(
        uow, policy, carrier, callbacks):
    dossier = picked_up_later(uow, policy)
    client = client_of(carrier.start())
    assert postal.send_due(uow, client, NAMES, MONDAY_9AM) == {"ordered": 1, "retry": 0, "rejected": 0}

    [order] = carrier.orders.values()
    assert {key: order[key] for key in ("senderName", "senderPhone", "senderAddress", "receiverName",
                                        "receiverAddress", "saleOrderCode", "serviceCode", "sendType")} == {
        "senderName": APPLICANT["full_name"], "senderPhone": APPLICANT["phone"], "senderAddress": APPLICANT["address"],
        "receiverName": NAMES["000.20.01.H56"], "receiverAddress": "UBND xã Đông Sơn, Tỉnh Thanh Hóa",
        "saleOrderCode": f"{dossier.code}/pickup", "serviceCode": "ETN011", "sendType": "1"}
    [row] = rows(uow)
    assert (row["kind"], row["state"], row["carrier_id"], row["item_code"]) == (
        "pickup", "ordered", "00000001", "EB000000001VN")
    assert APPLICANT["phone"] not in json.dumps({k: str(v) for k, v in row.items()})  # the queue holds no contact

    carrier.callback_url = callbacks.url
    callbacks.state.update(uow=uow, settings=client.settings, metrics=client.metrics)
    assert carrier.advance("00000001", "6") == 200
    assert carrier.advance("00000001", "6") == 200  # a repeat
    assert carrier.advance("00000001", "3") == 200  # "processing": no news for the dossier
    assert carrier.advance("00000001", "6", secret="guessed") == 401
    stored = uow.dossiers.get(dossier.code, for_update=False)
    assert [h.note for h in stored.history if h.action == "postal"] == [
        "pickup ordered EB000000001VN", "pickup picked_up EB000000001VN"]
    registry = client.metrics.registry
    for outcome, count in (("applied", 1), ("repeated", 1), ("ignored", 1), ("forged", 1)):
        assert registry.get_sample_value("motcua_postal_callbacks_total", {"outcome": outcome}) == count, outcome
    assert registry.get_sample_value("motcua_postal_requests_total", {"call": "order", "outcome": "ok"}) == 1
    assert registry.get_sample_value("motcua_postal_order_lag_seconds_count") == 1
    with pytest.raises(NotFound):
        body = json.dumps({"originalID": "99999999", "status": 6})
        postal.apply_callback(uow, client.settings, client.metrics, postal.signature(SECRET, body.encode()), body,
                              MONDAY_9AM)


def test_the_carrier_down_slow_or_answering_garbage_is_retried_with_backoff_and_ordered_once(uow, policy, carrier):
    picked_up_later(uow, policy)
    client = client_of(carrier)  # not listening yet
    assert postal.send_due(uow, client, NAMES, MONDAY_9AM)["retry"] == 1
    [row] = rows(uow)
    assert (row["attempts"], row["last_error"], row["next_attempt_at"]) == (
        1, "token ConnectionError", MONDAY_9AM + timedelta(seconds=5))
    assert postal.send_due(uow, client, NAMES, MONDAY_9AM + timedelta(seconds=4))["retry"] == 0  # backing off
    carrier.start()
    carrier.faults.delay = 1.0
    now = MONDAY_9AM + timedelta(seconds=5)
    assert postal.send_due(uow, client, NAMES, now)["retry"] == 1
    assert rows(uow)[0]["last_error"] == "token ReadTimeout"
    assert rows(uow)[0]["next_attempt_at"] == now + timedelta(seconds=10)  # doubled
    carrier.faults.delay, carrier.faults.garbage = 0, 1
    now += timedelta(seconds=10)
    assert postal.send_due(uow, client, NAMES, now)["retry"] == 1
    assert rows(uow)[0]["last_error"] == "token HTTP 200 not JSON"
    now += timedelta(seconds=20)
    assert postal.send_due(uow, client, NAMES, now)["ordered"] == 1
    assert postal.send_due(uow, client, NAMES, now + timedelta(days=1))["ordered"] == 0
    assert len(carrier.orders) == 1 and rows(uow)[0]["state"] == "ordered"


def test_an_order_the_carrier_refuses_is_kept_visible_not_retried(uow, policy, carrier):
    picked_up_later(uow, policy)
    client = client_of(carrier.start(), office_phone="")  # no phone for the receiving office: refused
    assert postal.send_due(uow, client, NAMES, MONDAY_9AM) == {"ordered": 0, "retry": 0, "rejected": 1}
    [row] = rows(uow)
    assert (row["state"], row["last_error"]) == ("rejected", "order HTTP 400")
    assert postal.send_due(uow, client, NAMES, MONDAY_9AM + timedelta(days=1))["rejected"] == 0
    assert carrier.orders == {}


def test_a_wrong_account_is_refused(uow, policy, carrier):
    picked_up_later(uow, policy)
    assert postal.send_due(uow, client_of(carrier.start(), password="wrong"), NAMES, MONDAY_9AM)["rejected"] == 1
    assert rows(uow)[0]["last_error"] == "token HTTP 401"
