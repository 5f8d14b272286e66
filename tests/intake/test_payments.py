"""Online payment end to end over HTTP (embedded bus, SQLite) against the local payment platform
(motcua/simulators/payment.py): a dossier awaiting payment (status 6) is paid online, the platform's signed
notification resumes it and attaches the electronic receipt, once; a forged or wrong-amount
notification is refused; a lost notification is applied by the daily reconciliation; the platform
down is 503."""
from __future__ import annotations

import time
from datetime import datetime, timedelta, timezone
from types import SimpleNamespace
from urllib.parse import parse_qs, urlsplit
from zoneinfo import ZoneInfo

import pytest
import requests
from sqlalchemy import create_engine
from sqlalchemy.orm import Session

from motcua.metrics import metrics_for
from services.intake import dossiers
from services.intake.models import Base
from services.intake.payments import signed
from services.intake.repository import IntakeUnitOfWork
from motcua.simulators.payment import DEFAULT_SECRET, PaymentSimulator
from tests.documents import required_uploads
from tests.infra import free_port, gateway_token, intake_behind_gateway

COMMUNE = "000.20.01.H56"
APPLICANT = {"full_name": "Trần Thị Bình", "id_number": "038190012345", "phone": "0987654321"}
PROOF = {"key": "4321", "id_number": APPLICANT["id_number"]}
FEE = 150_000


@pytest.fixture(scope="module")
def api(tmp_path_factory):
    port = free_port()
    gateway_url = f"http://127.0.0.1:{port}"
    platform = PaymentSimulator(ipn_url=f"{gateway_url}/api/v1/payments/ipn").start()
    settings = {"INTAKE_PAYMENT_URL": platform.url, "INTAKE_PAYMENT_RETURN_URL": f"{gateway_url}/api/v1/payments/return",
                "INTAKE_PAYMENT_TIMEOUT_SECONDS": "1"}
    with intake_behind_gateway(tmp_path_factory, "intake-payments", settings, port=port) as (url, intake, _g, config):
        counter = gateway_token(f"receptionist@{COMMUNE}", COMMUNE, "receptionist", ttl=600)
        admin = gateway_token("admin", None, "admin", ttl=600)
        yield SimpleNamespace(url=url, platform=platform, intake=intake, db=config["DB_URLS"]["intake"],
                              counter={"Authorization": f"Bearer {counter}"},
                              admin={"Authorization": f"Bearer {admin}"})
    platform.stop()


def awaiting_payment(api) -> str:
    """A dossier received, processing, and paused by a step that fixed a fee (status 6)."""
    submitted = requests.post(f"{api.url}/api/v1/dossiers", timeout=10, json={
        "procedure_code": "1.012786", "channel": "online", "applicant": APPLICANT,
        "documents": required_uploads("1.012786")})
    code = submitted.json()["code"]
    received = requests.post(f"{api.url}/api/v1/dossiers/{code}/receive", headers=api.counter, timeout=10)
    assert received.status_code == 200, received.text
    now = datetime.now(timezone.utc)
    uow = IntakeUnitOfWork(Session(create_engine(api.db), expire_on_commit=False), "intake", Base.metadata)
    try:
        dossiers.task_assigned(uow, {"dossier_code": code, "agency_code": COMMUNE, "step": "Thẩm định",
                                     "assigned_at": now})
        dossiers.payment_required(uow, {"dossier_code": code, "agency_code": COMMUNE, "amount_vnd": FEE,
                                        "note": "Lệ phí", "required_at": now})
        uow.commit()
    finally:
        uow.close()
    return code


def dossier(api, code) -> dict:
    return requests.get(f"{api.url}/api/v1/dossiers/{code}", headers=api.counter, timeout=10).json()


def order(api, code) -> dict:
    started = requests.post(f"{api.url}/api/v1/dossiers/{code}/payments", json=PROOF, timeout=10)
    assert started.status_code == 200, started.text
    return started.json()


def pay(api, url: str, result: str = "00") -> requests.Response:
    return requests.get(f"{url}&sim_result={result}", allow_redirects=False, timeout=20)


def notifications(api, outcome) -> float:
    return metrics_for(api.intake).registry.get_sample_value("motcua_payment_notifications_total",
                                                             {"outcome": outcome}) or 0


def test_a_fee_paid_online_resumes_the_dossier_once_with_its_electronic_receipt(api):
    code = awaiting_payment(api)
    made = order(api, code)
    assert (made["amount_vnd"], made["currency"]) == (FEE, "VND")
    asked = parse_qs(urlsplit(made["payment_url"]).query)
    assert asked["vnp_Amount"] == [str(FEE * 100)] and asked["vnp_SecureHash"][0]
    assert order(api, code)["order_id"] == made["order_id"]  # the pending order again, not a second one

    back = pay(api, made["payment_url"])
    assert back.status_code == 302
    assert api.platform.ipn_answers[-1] == {"RspCode": "00", "Message": "Confirm Success"}
    paid = dossier(api, code)
    assert paid["status"] == "processing" and paid["payment"]["receipt_number"].startswith("BL-")
    [receipt] = [d for d in paid["documents"] if d["key"] == "receipt:bien_lai"]
    assert receipt["content_type"] == "application/pdf" and receipt["uploaded_by"] == "payment-platform"
    assert paid["history"][-1]["actor"] == "payment-platform"
    lag = metrics_for(api.intake).registry.get_sample_value("motcua_payment_settle_lag_seconds_count")
    assert lag >= 1

    returned = requests.get(back.headers["Location"], timeout=10).json()
    assert (returned["status"], returned["platform_says"], returned["dossier_code"]) == ("paid", "paid", code)

    # The platform repeats its notification: answered as settled, applied once.
    ipn = back.headers["Location"].replace("/return?", "/ipn?")
    assert requests.get(ipn, timeout=10).json()["RspCode"] == "02"
    assert len(dossier(api, code)["history"]) == len(paid["history"])
    # The dossier owes nothing more: no new order.
    assert requests.post(f"{api.url}/api/v1/dossiers/{code}/payments", json=PROOF, timeout=10).status_code == 409


def test_a_forged_or_wrong_amount_notification_is_refused_and_the_forgery_audited(api):
    code = awaiting_payment(api)
    made = order(api, code)
    params = {"vnp_TmnCode": "MOTCUA01", "vnp_TxnRef": made["order_id"], "vnp_Amount": str(FEE * 100),
              "vnp_CurrCode": "VND", "vnp_ResponseCode": "00", "vnp_TransactionStatus": "00",
              "vnp_TransactionNo": "99999999", "vnp_PayDate": "20261206093000"}
    forged = signed(params, b"not the platform's secret")
    assert requests.get(f"{api.url}/api/v1/payments/ipn", params=forged, timeout=10).json()["RspCode"] == "97"
    tampered = {**signed(params, DEFAULT_SECRET.encode()), "vnp_Amount": "100"}  # signature of another amount
    assert requests.get(f"{api.url}/api/v1/payments/ipn", params=tampered, timeout=10).json()["RspCode"] == "97"
    short = signed({**params, "vnp_Amount": str(FEE * 100 - 100)}, DEFAULT_SECRET.encode())
    assert requests.get(f"{api.url}/api/v1/payments/ipn", params=short, timeout=10).json()["RspCode"] == "04"
    dollars = signed({**params, "vnp_CurrCode": "USD"}, DEFAULT_SECRET.encode())
    assert requests.get(f"{api.url}/api/v1/payments/ipn", params=dollars, timeout=10).json()["RspCode"] == "04"
    unknown = signed({**params, "vnp_TxnRef": "no-such-order"}, DEFAULT_SECRET.encode())
    assert requests.get(f"{api.url}/api/v1/payments/ipn", params=unknown, timeout=10).json()["RspCode"] == "01"
    assert dossier(api, code)["status"] == "awaiting_payment"
    assert notifications(api, "forged") >= 2 and notifications(api, "wrong_amount") >= 2
    deadline = time.monotonic() + 10  # intake's access_denied event reaches the gateway's audit log
    while time.monotonic() < deadline:
        denied = requests.get(f"{api.url}/api/v1/audit", headers=api.admin, timeout=10, params={
            "action": "intake.payment_notification", "outcome": "denied"}).json()
        if denied["total"] >= 2:
            break
        time.sleep(0.2)
    assert denied["total"] >= 2


def test_a_lost_notification_is_applied_by_the_reconciliation_and_the_platform_down_is_503(api):
    code = awaiting_payment(api)
    made = order(api, code)
    api.platform.send_ipn = False
    try:
        pay(api, made["payment_url"])
    finally:
        api.platform.send_ipn = True
    assert dossier(api, code)["status"] == "awaiting_payment"
    today = datetime.now(ZoneInfo("Asia/Ho_Chi_Minh")).date().isoformat()
    reconciled = requests.post(f"{api.url}/api/v1/payments/reconcile", headers=api.admin, json={"date": today},
                               timeout=20)
    assert reconciled.status_code == 200, reconciled.text
    assert reconciled.json()["applied"] == [made["order_id"]] and reconciled.json()["missing_at_platform"] == []
    assert dossier(api, code)["status"] == "processing"
    again = requests.post(f"{api.url}/api/v1/payments/reconcile", headers=api.admin, json={"date": today},
                          timeout=20).json()
    assert again["applied"] == [] and again["matched"] >= 1  # idempotent

    for fault in ("down", "slow", "garbage"):
        api.platform.faults.play(fault, seconds=2.0)
        try:
            failed = requests.post(f"{api.url}/api/v1/payments/reconcile", headers=api.admin, json={"date": today},
                                   timeout=20)
        finally:
            api.platform.faults.clear()
        assert failed.status_code == 503, (fault, failed.text)
    refused = requests.post(f"{api.url}/api/v1/payments/reconcile", headers=api.counter, json={"date": today},
                            timeout=10)
    assert refused.status_code == 403


def test_a_cancelled_payment_leaves_the_dossier_waiting_and_the_counter_can_still_confirm_cash(api):
    code = awaiting_payment(api)
    made = order(api, code)
    pay(api, made["payment_url"], result="24")
    assert api.platform.ipn_answers[-1]["RspCode"] == "00"
    assert dossier(api, code)["status"] == "awaiting_payment"
    cash = requests.post(f"{api.url}/api/v1/dossiers/{code}/confirm-payment", headers=api.counter, timeout=10,
                         json={"receipt_number": "BL-2026-0099"})
    assert cash.status_code == 200 and cash.json()["status"] == "processing"


@pytest.fixture
def refunds(api):
    """A paid dossier whose processing was then stopped (the fee due back), and intake's refund round as
    its timer runs it (`send(now)`), with its own unit of work and metrics."""
    from prometheus_client import CollectorRegistry

    from services.intake import online_payments
    from services.intake.payments import PaymentMetrics, PaymentSettings, PlatformAdapter
    code = awaiting_payment(api)
    made = order(api, code)
    pay(api, made["payment_url"])
    assert dossier(api, code)["status"] == "processing"
    uow = IntakeUnitOfWork(Session(create_engine(api.db), expire_on_commit=False), "intake", Base.metadata)
    stop = {"dossier_code": code, "agency_code": COMMUNE, "stopped_by": f"leader@{COMMUNE}",
            "reason": "Không đủ điều kiện", "stopped_at": datetime.now(timezone.utc)}
    online_payments.processing_stopped(uow, stop, refund_on=frozenset({"stopped"}))
    uow.commit()
    platform = PlatformAdapter(PaymentSettings(
        api.platform.url, "MOTCUA01", DEFAULT_SECRET.encode(), "", 1.0, frozenset({"stopped"})))
    metrics = PaymentMetrics(CollectorRegistry())
    try:
        yield SimpleNamespace(code=code, order_id=made["order_id"], uow=uow, platform=platform, metrics=metrics,
                              send=lambda now, on=platform: online_payments.send_refunds(uow, on, now, metrics),
                              module=online_payments)
    finally:
        uow.close()


def refund_lines(api, code: str) -> list[tuple]:
    return [(line["actor"], line["status"], line["note"])
            for line in dossier(api, code)["history"] if line["action"] == "refund"]


def refunds_of(api, order_id: str) -> int:
    """How many refunds of the order the platform made (the simulator serves the whole module)."""
    return sum(r["vnp_TxnRef"] == order_id for r in api.platform.refunds)


def order_row(api, order_id: str):
    from services.intake.models import payment_orders
    with create_engine(api.db).connect() as connection:
        return connection.execute(payment_orders.select().where(payment_orders.c.order_id == order_id)).one()


def test_a_paid_dossier_whose_processing_is_stopped_is_refunded_once(api, refunds):
    now = datetime.now(timezone.utc)
    api.platform.faults.down = True
    try:  # the platform away: the refund stays due, and is not asked again before its delay
        assert refunds.send(now) == 0
    finally:
        api.platform.faults.clear()
    assert refunds.send(now + timedelta(seconds=5)) == 0
    assert order_row(api, refunds.order_id).status == "refund_due"
    later = now + timedelta(minutes=1)
    assert refunds.send(later) == 1
    assert refunds.send(later + timedelta(hours=1)) == 0  # once
    assert refunds_of(api, refunds.order_id) == 1
    assert dossier(api, refunds.code)["status"] == "stopped"
    # the refund is a line of the dossier's history (intake's), once, in the platform's name
    assert refund_lines(api, refunds.code) == [("payment-platform", "stopped", f"{refunds.order_id} {FEE} VND")]
    assert refunds.metrics.refunds.labels("failed")._value.get() == 1


def test_a_refund_whose_answer_was_lost_is_marked_refunded_not_refunded_twice(api, refunds):
    """The platform refunded, then the answer never came (the process died, the connection dropped): the
    next round's request is answered "refunded already" (94) and the order is marked, not paid twice."""
    refunds.platform.refund(refunds.order_id, FEE, order_row(api, refunds.order_id).transaction_no,
                            datetime.now(timezone.utc))
    assert refunds.send(datetime.now(timezone.utc)) == 1
    assert order_row(api, refunds.order_id).status == "refunded"
    assert refunds_of(api, refunds.order_id) == 1
    assert refund_lines(api, refunds.code) == [("payment-platform", "stopped", f"{refunds.order_id} {FEE} VND")]


def test_two_instances_refund_an_order_once(api, refunds):
    """intake runs its refund timer in every instance: the second's round, while the first is at the
    platform with the order, finds it claimed."""
    now = datetime.now(timezone.utc)
    other = IntakeUnitOfWork(Session(create_engine(api.db), expire_on_commit=False), "intake", Base.metadata)
    rounds = []

    class SlowPlatform:  # the first instance's call: the other instance's round runs meanwhile
        def refund(self, *args):
            rounds.append(refunds.module.send_refunds(other, refunds.platform, now, refunds.metrics))
            return refunds.platform.refund(*args)

    try:
        assert refunds.send(now, on=SlowPlatform()) == 1
    finally:
        other.close()
    assert rounds == [0]
    assert refunds_of(api, refunds.order_id) == 1


def test_a_refund_the_platform_refuses_is_left_to_the_counter_not_asked_forever(api, refunds):
    """A signed refusal (here 91: the platform knows no such payment of that amount) would be answered
    the same every round: the order is `refund_refused` with the platform's code, counted, not retried."""
    from services.intake.models import payment_orders
    with create_engine(api.db).begin() as connection:  # an order whose amount the platform does not know
        connection.execute(payment_orders.update().where(payment_orders.c.order_id == refunds.order_id)
                           .values(amount_vnd=FEE + 1))
    now = datetime.now(timezone.utc)
    assert refunds.send(now) == 0
    row = order_row(api, refunds.order_id)
    assert (row.status, row.refund_note) == ("refund_refused",
                                             "the payment platform refused the refund (vnp_ResponseCode 91)")
    assert refunds.send(now + timedelta(days=1)) == 0 and refunds_of(api, refunds.order_id) == 0
    assert refunds.metrics.refunds.labels("refused")._value.get() == 1
    assert refund_lines(api, refunds.code) == []


def test_a_level_4_procedures_fee_is_paid_online_right_after_submission(api):
    """Issue 15: a fee due at submission (lệ phí of a level-4 procedure) was counter-only; it is offered
    online from submission on, settled once, a line of the history with its receipt, the status unchanged."""
    submitted = requests.post(f"{api.url}/api/v1/dossiers", timeout=10, json={
        "procedure_code": "2.000635", "channel": "online", "applicant": APPLICANT,
        "documents": required_uploads("2.000635")})  # 8,000 VND a copy
    assert submitted.status_code == 201, submitted.text
    code = submitted.json()["code"]
    made = order(api, code)
    assert (made["purpose"], made["amount_vnd"]) == ("fee", 8_000)
    assert order(api, code)["order_id"] == made["order_id"]  # the same pending order again
    redirected = pay(api, made["payment_url"])
    assert redirected.status_code == 302
    assert api.platform.ipn_answers[-1]["RspCode"] == "00"
    view = requests.get(f"{api.url}/api/v1/dossiers/{code}", headers={
        "Authorization": "Bearer " + gateway_token("receptionist@000.20.02.H56", "000.20.02.H56", "receptionist",
                                                   ttl=600)}, timeout=10).json()
    assert view["status"] == "submitted"  # the counter still receives it
    [paid] = [line for line in view["history"] if line["action"] == "pay_fee"]
    assert paid["actor"] == "payment-platform" and paid["note"].startswith("receipt BL-")
    assert [d["key"] for d in view["documents"]].count("receipt:bien_lai") == 1
    again = requests.post(f"{api.url}/api/v1/dossiers/{code}/payments", json=PROOF, timeout=10)
    assert again.status_code == 409 and again.json()["error"]["field"] == "status"  # paid: nothing more due
    pay(api, made["payment_url"])  # the platform repeats its notification: "already confirmed"
    assert api.platform.ipn_answers[-1]["RspCode"] == "02"


def test_no_fee_no_online_payment_at_submission(api):
    submitted = requests.post(f"{api.url}/api/v1/dossiers", timeout=10, json={
        "procedure_code": "1.012786", "channel": "online", "applicant": APPLICANT,
        "documents": required_uploads("1.012786")})  # no fee
    started = requests.post(f"{api.url}/api/v1/dossiers/{submitted.json()['code']}/payments", json=PROOF, timeout=10)
    assert started.status_code == 409 and started.json()["error"]["field"] == "status"


def portal_order(api, code: str) -> str:
    """The portal's "Thanh toán trực tuyến" posted with the applicant's proof: the platform's URL of the
    page that sends the browser on (a meta refresh and a link: the portal's forms post only to itself)."""
    from html import unescape

    page = requests.post(f"{api.url}/ho-so/{code}/thanh-toan", timeout=10,
                         data={**PROOF, "idempotency_key": "0" * 32})
    assert page.status_code == 200, page.text
    url = unescape(page.text.split('id="den-cong-thanh-toan"', 1)[0].rsplit('href="', 1)[1].split('"', 1)[0])
    assert f'<meta http-equiv="refresh" content="0;url={url}' in unescape(page.text)
    assert url.startswith(api.platform.url) and parse_qs(urlsplit(url).query)["vnp_Amount"] == [str(FEE * 100)]
    return url


def return_page(api, platform_redirect: requests.Response) -> requests.Response:
    """The portal's return page with what the platform signed for the browser."""
    return requests.get(f"{api.url}/thanh-toan/ket-qua?{urlsplit(platform_redirect.headers['Location']).query}",
                        timeout=10)


def test_the_portals_button_pays_at_the_pause_and_the_return_page_says_confirmed_only_once_notified(api):
    """Issue 15: the portal's button makes the order and sends the browser to the platform; the signed
    return lands on a portal page that says "waiting" while the notification (IPN) has not settled the
    order, and "confirmed" once it has; a cancelled payment is said so; a forged return is refused."""
    code = awaiting_payment(api)
    url = portal_order(api, code)
    api.platform.send_ipn = False  # the browser comes back before the platform's notification
    try:
        back = pay(api, url)
    finally:
        api.platform.send_ipn = True
    waiting = return_page(api, back)
    assert waiting.status_code == 200 and 'data-outcome="waiting"' in waiting.text
    assert '<meta http-equiv="refresh" content="3">' in waiting.text  # it looks again by itself
    assert dossier(api, code)["status"] == "awaiting_payment"  # the return settles nothing
    ipn = back.headers["Location"].replace("/return?", "/ipn?")
    assert requests.get(ipn, timeout=10).json()["RspCode"] == "00"
    confirmed = return_page(api, back)
    assert 'data-outcome="confirmed"' in confirmed.text and "Thanh toán đã được xác nhận" in confirmed.text
    assert f'href="/tra-cuu?code={code}"' in confirmed.text and "refresh" not in confirmed.text
    assert dossier(api, code)["status"] == "processing"

    forged = back.headers["Location"].replace(f"vnp_Amount={FEE * 100}", f"vnp_Amount={FEE}")
    refused = requests.get(f"{api.url}/thanh-toan/ket-qua?{urlsplit(forged).query}", timeout=10)
    assert refused.status_code == 401 and "Xác nhận" not in refused.text

    cancelled_code = awaiting_payment(api)
    cancelled = return_page(api, pay(api, portal_order(api, cancelled_code), result="24"))
    assert 'data-outcome="failed"' in cancelled.text and "chưa thành công" in cancelled.text
    assert dossier(api, cancelled_code)["status"] == "awaiting_payment"


def test_the_platform_returns_the_browser_to_the_portal_by_default(monkeypatch):
    from services.intake.payments import PaymentSettings

    monkeypatch.setenv("INTAKE_PAYMENT_URL", "http://127.0.0.1:8092")
    monkeypatch.delenv("INTAKE_PAYMENT_RETURN_URL", raising=False)
    monkeypatch.setenv("GATEWAY_ADDRESS", "0.0.0.0:8123")
    assert PaymentSettings.from_env().return_url == "http://localhost:8123/thanh-toan/ket-qua"
