"""The gateway's notification routes (services/gateway/api_notify.py) over real HTTP, with the
services behind the gateway replaced by mocks (the fixture of tests/gateway/test_http.py)."""
import requests

from motcua.errors import Forbidden, NotFound, Unauthorized
from tests.gateway.test_http import AGENCY, audit_entries, bearer, token

CODE = f"{AGENCY}-260302-0001"


def admin(api):
    return bearer(token(api, "admin", None, "admin"))


def receptionist(api):
    return bearer(token(api, f"receptionist@{AGENCY}", AGENCY, "receptionist"))


def test_a_dossiers_notifications_are_for_who_may_see_the_dossier(api):
    url = f"{api.url}/api/v1/dossiers/{CODE}/notifications"
    assert requests.get(url, timeout=10).status_code == 401
    api.notify.list_deliveries.return_value = [{"id": 1, "recipient": "n***@example.com"}]
    response = requests.get(url, headers=receptionist(api), timeout=10)
    assert response.status_code == 200 and response.json() == [{"id": 1, "recipient": "n***@example.com"}]
    assert api.intake.get_dossier.call_args.args == (CODE,)  # intake decides who may see the dossier
    assert api.notify.list_deliveries.call_args.kwargs["caller_token"]  # and notify checks the caller again
    api.intake.get_dossier.side_effect = Forbidden("not your agency")
    assert requests.get(url, headers=receptionist(api), timeout=10).status_code == 403


def test_dead_letters_and_resend_are_for_the_platform_admin_and_audited(api):
    url = f"{api.url}/api/v1/notifications/dead-letters"
    assert requests.get(url, headers=receptionist(api), timeout=10).status_code == 403
    api.notify.list_dead_letters.return_value = []
    headers = admin(api)
    assert requests.get(f"{url}?limit=5", headers=headers, timeout=10).json() == []
    api.notify.list_dead_letters.assert_called_once_with(headers["Authorization"].removeprefix("Bearer "), 5)
    bad = requests.get(f"{url}?limit=0", headers=admin(api), timeout=10)
    assert bad.status_code == 400 and bad.json()["error"]["field"] == "limit"

    resend = f"{api.url}/api/v1/notifications/deliveries/7/resend"
    assert requests.post(resend, headers=receptionist(api), timeout=10).status_code == 403
    api.notify.resend.return_value = {"id": 7, "dossier_code": CODE, "status": "created"}
    answer = requests.post(resend, headers={**headers, "Idempotency-Key": "resend-7"}, timeout=10)
    assert answer.json()["status"] == "created"
    api.notify.resend.assert_called_once_with(7, caller_token=headers["Authorization"].removeprefix("Bearer "),
                                              idempotency_key="resend-7")
    assert [(e.action, e.dossier_code, e.task_id) for e in audit_entries(api, action="notification.resend")] == [
        ("notification.resend", CODE, "7")]


def test_preview_is_for_staff(api):
    url = f"{api.url}/api/v1/notifications/preview"
    body = {"event_type": "dossier_received", "channel": "sms"}
    assert requests.post(url, json=body, timeout=10).status_code == 401
    api.notify.preview.return_value = {"channel": "sms", "text": "Ho so", "segments": 1}
    headers = receptionist(api)
    assert requests.post(url, json=body, headers=headers, timeout=10).json()["segments"] == 1
    api.notify.preview.assert_called_once_with("dossier_received", "sms",
                                               caller_token=headers["Authorization"].removeprefix("Bearer "),
                                               agency_code=None)


def test_a_carriers_receipt_passes_its_token_on(api):
    api.notify.delivery_receipt.return_value = {"id": 3, "status": "delivered"}
    response = requests.post(f"{api.url}/api/v1/notifications/receipts/vnpt", json={"id": "m-1", "status": "DELIVRD"},
                             headers={"X-Receipt-Token": "t0k"}, timeout=10)
    assert response.json() == {"id": 3, "status": "delivered"}
    api.notify.delivery_receipt.assert_called_once_with("vnpt", "t0k", {"id": "m-1", "status": "DELIVRD"})


def test_a_brandname_gateways_report_by_get_passes_on_and_a_forged_one_is_refused_and_audited(api):
    api.notify.delivery_receipt.return_value = {"id": 4, "status": "delivered"}
    report = {"SMSID": "abc", "SendStatus": "5", "SendSuccess": "1", "SendFailed": "0", "phonenumber": "0912345678"}
    url = f"{api.url}/api/v1/notifications/receipts/brandname"
    response = requests.get(url, params={**report, "token": "t0k"}, timeout=10)
    assert response.json() == {"id": 4, "status": "delivered"}
    api.notify.delivery_receipt.assert_called_once_with("brandname", "t0k", report)

    api.notify.delivery_receipt.side_effect = Unauthorized("unknown provider or wrong receipt token")
    assert requests.get(url, params={**report, "token": "guess"}, timeout=10).status_code == 401
    [entry] = audit_entries(api, action="notification.receipt")
    assert (entry.username, entry.outcome, entry.detail) == (
        "carrier:brandname", "denied", "unknown provider or wrong receipt token")
    assert "0912345678" not in str(vars(entry))


def test_citizens_choose_with_the_tracking_key(api):
    url = f"{api.url}/api/v1/track/{CODE}/notifications"
    api.reporting.track.return_value = {"code": CODE, "status": "received", "dossier_version": 2, "run_version": 0}
    api.notify.set_preferences.return_value = {"sms": {"enabled": False}}
    response = requests.put(f"{url}?key=5678", json={"sms": False}, timeout=10)
    assert response.json() == {"sms": {"enabled": False}}
    api.reporting.track.assert_called_once_with(CODE, "5678")
    api.notify.set_preferences.assert_called_once_with(CODE, {"sms": False}, source="tracking")

    api.reporting.track.side_effect = NotFound("no such dossier")
    assert requests.get(f"{url}?key=0000", timeout=10).status_code == 404
    assert requests.put(f"{url}?key=0000", json={"sms": True}, timeout=10).status_code == 404
    assert api.notify.get_preferences.call_count == 0 and api.notify.set_preferences.call_count == 1
    assert requests.get(url, timeout=10).json()["error"]["field"] == "key"
