"""The gateway container alone, over real HTTP: the services behind it are replaced by mocks."""
from __future__ import annotations

import logging
import unicodedata
from datetime import timedelta

import eventlet
import pytest
import requests
from nameko.exceptions import UnknownService
from sqlalchemy import create_engine, select
from sqlalchemy.orm import Session

from motcua.errors import Forbidden, IllegalTransition, NotFound
from motcua.faults import TransientFailure
from motcua.identity import Caller, issue_token, verify_token
from services.gateway.errors import ServiceUnavailable
from services.gateway.models import AuditEntry
from tests.gateway.conftest import AGENCY, SERVICES

APPLICANT = {"full_name": "Lê Văn Bình", "id_number": "038090001234", "phone": "0912345678"}
DOSSIER = {"code": f"{AGENCY}-260302-0001", "status": "submitted", "status_code": 1, "history": []}


def token(api, username, agency, *roles):
    return issue_token(Caller(username, agency, roles), api.config["TOKEN_SIGNING_KEY"], timedelta(minutes=5))


def bearer(value: str) -> dict:
    return {"Authorization": f"Bearer {value}"}


def receptionist(api) -> dict:
    return bearer(token(api, f"receptionist@{AGENCY}", AGENCY, "receptionist"))


def audit_entries(api, **where) -> list[AuditEntry]:
    engine = create_engine(api.db_url)
    with Session(engine) as session:
        query = select(AuditEntry).filter_by(**where).order_by(AuditEntry.id)
        entries = list(session.scalars(query))
    engine.dispose()
    return entries


def submit(api, body, headers=None):
    return requests.post(f"{api.url}/api/v1/dossiers", json=body, headers=headers, timeout=10)


# -- JSON bodies and validation ------------------------------------------------------------------------


def test_a_body_without_json_content_type_is_415(api):
    response = requests.post(f"{api.url}/api/v1/dossiers", data='{"channel": "online"}',
                             headers={"Content-Type": "text/plain"}, timeout=10)
    assert response.status_code == 415
    assert response.json()["error"]["code"] == "unsupported_media_type"


def test_invalid_json_is_400(api):
    response = requests.post(f"{api.url}/api/v1/dossiers", data="{oops",
                             headers={"Content-Type": "application/json"}, timeout=10)
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "invalid_json"


def test_a_bad_phone_is_400_naming_the_field(api):
    response = submit(api, {"procedure_code": "1.001193", "channel": "online",
                            "applicant": {**APPLICANT, "phone": "12345"}})
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "validation_error"
    assert response.json()["error"]["field"] == "applicant.phone"
    api.intake.submit_dossier.assert_not_called()


# -- submission ----------------------------------------------------------------------------------------


def test_online_submission_needs_no_token_and_reaches_intake_in_nfc(api):
    api.intake.submit_dossier.return_value = DOSSIER
    decomposed = unicodedata.normalize("NFD", APPLICANT["full_name"])
    response = submit(api, {"procedure_code": "1.001193", "channel": "online",
                            "applicant": {**APPLICANT, "full_name": decomposed}},
                      headers={"Idempotency-Key": "retry-me-1"})
    assert response.status_code == 201
    assert response.json() == DOSSIER
    (payload,), kwargs = api.intake.submit_dossier.call_args
    assert payload["applicant"]["full_name"] == APPLICANT["full_name"]
    assert kwargs == {"caller_token": None, "idempotency_key": "retry-me-1"}
    assert response.headers["Idempotency-Key"] == "retry-me-1"


def test_a_command_without_a_key_gets_one_to_retry_with_even_when_it_fails(api):
    """A client that sent no Idempotency-Key learns the one its command ran under, from a 503 too."""
    api.intake.submit_dossier.side_effect = ServiceUnavailable("intake did not answer in time")
    response = submit(api, {"procedure_code": "1.001193", "channel": "online", "applicant": APPLICANT})
    assert response.status_code == 503
    key = response.headers["Idempotency-Key"]
    assert len(key) == 32 and api.intake.submit_dossier.call_args.kwargs["idempotency_key"] == key


def test_a_key_too_long_is_refused_naming_the_header(api):
    response = submit(api, {"procedure_code": "1.001193", "channel": "online", "applicant": APPLICANT},
                      headers={"Idempotency-Key": "k" * 129})
    assert response.status_code == 400 and response.json()["error"]["field"] == "Idempotency-Key"
    assert "Idempotency-Key" not in response.headers
    api.intake.submit_dossier.assert_not_called()


@pytest.mark.parametrize("channel", ["counter", "postal"])
def test_counter_and_postal_need_a_token(api, channel):
    response = submit(api, {"procedure_code": "1.001193", "channel": channel, "applicant": APPLICANT})
    assert response.status_code == 401
    api.intake.submit_dossier.assert_not_called()


def test_counter_submission_by_a_specialist_is_403(api):
    specialist = bearer(token(api, f"specialist@{AGENCY}", AGENCY, "specialist"))
    response = submit(api, {"procedure_code": "1.001193", "channel": "counter", "applicant": APPLICANT},
                      headers=specialist)
    assert response.status_code == 403
    api.intake.submit_dossier.assert_not_called()


def test_counter_submission_by_a_receptionist_is_passed_on_and_audited(api):
    api.intake.submit_dossier.return_value = {**DOSSIER, "code": f"{AGENCY}-260302-0002"}
    headers = receptionist(api)
    response = submit(api, {"procedure_code": "1.001193", "channel": "counter", "applicant": APPLICANT},
                      headers=headers)
    assert response.status_code == 201
    assert api.intake.submit_dossier.call_args.kwargs["caller_token"] == headers["Authorization"][7:]
    [entry] = audit_entries(api, dossier_code=f"{AGENCY}-260302-0002")
    assert (entry.username, entry.agency_code, entry.action, entry.remote_addr) == (
        f"receptionist@{AGENCY}", AGENCY, "dossier.submit", "127.0.0.1")


# -- login ---------------------------------------------------------------------------------------------


def test_a_bad_password_is_401(api):
    response = requests.post(f"{api.url}/api/v1/auth/token", json={"username": "admin", "password": "nope"},
                             timeout=10)
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "unauthorized"


def test_the_demo_password_gets_a_bearer_token(api):
    response = requests.post(f"{api.url}/api/v1/auth/token",
                             json={"username": f"leader@{AGENCY}", "password": "demo"}, timeout=10)
    assert response.status_code == 200
    body = response.json()
    assert body["token_type"] == "bearer" and body["expires_in"] == 900
    caller = verify_token(body["access_token"], api.config["TOKEN_VERIFY_KEY"])
    assert caller == Caller(f"leader@{AGENCY}", AGENCY, ("leader",))


# -- staff actions -------------------------------------------------------------------------------------


def test_reading_a_dossier_needs_a_token(api):
    assert requests.get(f"{api.url}/api/v1/dossiers/X-1", timeout=10).status_code == 401
    garbage = requests.get(f"{api.url}/api/v1/dossiers/X-1", headers=bearer("garbage"), timeout=10)
    assert garbage.status_code == 401
    api.intake.get_dossier.assert_not_called()


def test_receive_answers_the_updated_dossier_and_is_audited(api):
    code = f"{AGENCY}-260302-0003"
    api.intake.receive_dossier.return_value = {**DOSSIER, "code": code, "status": "received", "status_code": 2}
    headers = receptionist(api)
    response = requests.post(f"{api.url}/api/v1/dossiers/{code}/receive", headers={**headers, "Idempotency-Key": "r-1"},
                             timeout=10)
    assert response.status_code == 200 and response.json()["status_code"] == 2
    api.intake.receive_dossier.assert_called_once_with(code, caller_token=headers["Authorization"][7:],
                                                       idempotency_key="r-1")
    assert [e.action for e in audit_entries(api, dossier_code=code)] == ["dossier.receive"]


def test_a_refused_action_is_audited_as_denied(api):
    code = f"{AGENCY}-260302-0004"
    api.intake.refuse_dossier.side_effect = Forbidden("not allowed for another agency's records")
    response = requests.post(f"{api.url}/api/v1/dossiers/{code}/refuse", json={"reason": "thiếu giấy tờ"},
                             headers=receptionist(api), timeout=10)
    assert response.status_code == 403
    [entry] = audit_entries(api, dossier_code=code)
    assert (entry.action, entry.outcome, entry.detail) == ("dossier.refuse", "denied",
                                                           "not allowed for another agency's records")


def test_refuse_needs_a_reason(api):
    response = requests.post(f"{api.url}/api/v1/dossiers/X-1/refuse", json={}, headers=receptionist(api),
                             timeout=10)
    assert response.status_code == 400 and response.json()["error"]["field"] == "reason"


def test_an_illegal_transition_is_409_with_the_allowed_actions(api):
    api.intake.return_result.side_effect = IllegalTransition("not ready", details={"allowed": ["refuse"]})
    response = requests.post(f"{api.url}/api/v1/dossiers/X-1/return", json={"method": "counter"},
                             headers=receptionist(api), timeout=10)
    assert response.status_code == 409
    assert response.json()["error"] == {"code": "illegal_transition", "message": "not ready", "field": None,
                                        "allowed": ["refuse"]}


def test_tasks_are_listed_and_completed_through_workflow(api):
    headers = bearer(token(api, f"specialist@{AGENCY}", AGENCY, "specialist"))
    raw = headers["Authorization"][7:]
    api.workflow.list_tasks.return_value = [{"id": "t-1", "status": "open"}]
    api.workflow.complete_task.return_value = {"id": "t-1", "status": "done"}
    listed = requests.get(f"{api.url}/api/v1/tasks?status=open", headers=headers, timeout=10)
    assert listed.json() == [{"id": "t-1", "status": "open"}]
    api.workflow.list_tasks.assert_called_once_with(caller_token=raw, status="open", role=None, assignee=None)
    done = requests.post(f"{api.url}/api/v1/tasks/t-1/complete", json={"outcome": "approve", "note": "đạt"},
                         headers=headers, timeout=10)
    assert done.status_code == 200 and done.json()["status"] == "done"
    api.workflow.complete_task.assert_called_once_with("t-1", "approve", "đạt", caller_token=raw, details=None,
                                                       idempotency_key=done.headers["Idempotency-Key"])
    assert [(e.action, e.outcome) for e in audit_entries(api, task_id="t-1")] == [("task.approve", "allowed")]


# -- public and read-only views ------------------------------------------------------------------------


def test_a_procedure_carries_the_steps_of_its_process(api):
    api.intake.get_procedure.return_value = {"code": "1.001193", "name": "Đăng ký khai sinh"}
    steps = [{"name": "Thẩm định", "agency_code": AGENCY, "allowance": {"value": 1, "unit": "day"}}]
    api.workflow.get_process.return_value = {"procedure_code": "1.001193", "steps": steps}
    response = requests.get(f"{api.url}/api/v1/procedures/1.001193", timeout=10)
    assert response.json() == {"code": "1.001193", "name": "Đăng ký khai sinh", "steps": steps}


def test_a_procedures_process_comes_from_workflow_and_unknown_is_404(api):
    process = {"procedure_code": "1.001193", "steps": [{"name": "Thẩm định", "agency_code": AGENCY}]}
    api.workflow.get_process.return_value = process
    response = requests.get(f"{api.url}/api/v1/procedures/1.001193/process", timeout=10)
    assert response.status_code == 200 and response.json() == process
    api.workflow.get_process.assert_called_once_with("1.001193")
    api.workflow.get_process.side_effect = NotFound("no process (quy trình) for procedure 9.999999")
    missing = requests.get(f"{api.url}/api/v1/procedures/9.999999/process", timeout=10)
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "not_found"


def test_tracking_passes_the_key_and_unknown_is_404(api, caplog):
    api.reporting.track.side_effect = NotFound("no such dossier")
    with caplog.at_level(logging.INFO, logger="nameko.web.server"):
        response = requests.get(f"{api.url}/api/v1/track/X-1?key=5678", timeout=10)
    # the access log has the request, not the key: the phone's last digits
    assert '"GET /api/v1/track/X-1?[redacted] HTTP/1.1" 404' in caplog.text and "5678" not in caplog.text
    assert response.status_code == 404 and response.json()["error"]["code"] == "not_found"
    api.reporting.track.assert_called_once_with("X-1", "5678")
    missing = requests.get(f"{api.url}/api/v1/track/X-1", timeout=10)
    assert missing.status_code == 400 and missing.json()["error"]["field"] == "key"


def test_the_timeliness_report_is_for_staff(api):
    url = f"{api.url}/api/v1/reports/timeliness?from=2026-01-01&to=2026-03-31"
    assert requests.get(url, timeout=10).status_code == 401
    api.reporting.timeliness_report.return_value = {"rows": [], "totals": {}}
    leader = token(api, f"leader@{AGENCY}", AGENCY, "leader")
    response = requests.get(url, headers=bearer(leader), timeout=10)
    assert response.json() == {"rows": [], "totals": {}}
    api.reporting.timeliness_report.assert_called_once_with("2026-01-01", "2026-03-31", caller_token=leader,
                                                            agency=None)
    bad = requests.get(f"{api.url}/api/v1/reports/timeliness?from=2026-13-01&to=2026-03-31",
                       headers=bearer(token(api, "admin", None, "admin")), timeout=10)
    assert bad.status_code == 400 and bad.json()["error"]["field"] == "from"


# -- failures ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("failure", [ServiceUnavailable("intake did not answer in time"), UnknownService("intake"),
                                     TransientFailure("intake cannot answer just now: try again shortly")])
def test_a_service_that_is_away_is_503_with_retry_after(api, failure):
    api.intake.list_agencies.side_effect = failure
    response = requests.get(f"{api.url}/api/v1/agencies", timeout=10)
    assert response.status_code == 503
    assert response.json()["error"]["code"] == "service_unavailable"
    assert int(response.headers["Retry-After"]) >= 1


def test_an_unexpected_error_is_500_and_logs_no_personal_data(api, caplog):
    api.intake.submit_dossier.side_effect = RuntimeError(f"cannot store {APPLICANT['id_number']}")
    with caplog.at_level(logging.INFO):
        response = submit(api, {"procedure_code": "1.001193", "channel": "online", "applicant": APPLICANT})
    assert response.status_code == 500
    assert response.json() == {"error": {"code": "internal_error", "message": "internal error", "field": None}}
    assert "RuntimeError" in caplog.text
    assert APPLICANT["id_number"] not in caplog.text and APPLICANT["phone"] not in caplog.text


def test_unknown_route_and_wrong_method_answer_json(api):
    unknown = requests.get(f"{api.url}/api/v1/nothing-here", timeout=10)
    assert unknown.status_code == 404 and unknown.json()["error"]["code"] == "not_found"
    wrong = requests.delete(f"{api.url}/api/v1/dossiers", timeout=10)
    assert wrong.status_code == 405 and wrong.json()["error"]["code"] == "method_not_allowed"
    assert "POST" in wrong.headers["Allow"]


# -- health, metrics, landing page ---------------------------------------------------------------------


def test_health_is_ok_when_every_service_answers(api):
    for name in SERVICES:
        getattr(api, name).health.return_value = {"status": "ok", "service": name}
    response = requests.get(f"{api.url}/health", timeout=10)
    assert response.status_code == 200
    assert response.json()["status"] == "ok"
    assert response.json()["services"] == {name: "ok" for name in SERVICES}


def test_health_is_503_naming_the_services_that_failed_and_asks_them_at_once(api):
    def slow_ok():
        eventlet.sleep(0.6)
        return {"status": "ok"}

    for name in ("intake", "workflow", "notify"):
        getattr(api, name).health.side_effect = slow_ok
    api.reporting.health.side_effect = ConnectionError("down")
    started = eventlet.hubs.get_hub().clock()
    response = requests.get(f"{api.url}/health", timeout=10)
    assert eventlet.hubs.get_hub().clock() - started < 1.2
    assert response.status_code == 503
    assert response.json()["failed"] == ["reporting"]
    assert response.json()["services"]["intake"] == "ok"


def test_the_instances_own_health_asks_no_service(api):
    """What Kubernetes probes (deploy/k8s): a service down leaves every gateway in rotation."""
    api.reporting.health.side_effect = ConnectionError("down")
    response = requests.get(f"{api.url}/health/self", timeout=10)
    assert response.status_code == 200
    assert response.json() == {"status": "ok", "service": "gateway", "checks": {"database": "ok"}}
    assert not api.reporting.health.called


def test_metrics_count_requests_by_route_template(api):
    api.intake.get_dossier.return_value = DOSSIER
    requests.get(f"{api.url}/api/v1/dossiers/{DOSSIER['code']}", headers=receptionist(api), timeout=10)
    text = requests.get(f"{api.url}/metrics", timeout=10).text
    assert 'motcua_http_requests_total{method="GET",route="/api/v1/dossiers/<code>",status="200"}' in text
    assert DOSSIER["code"] not in text
    assert "motcua_http_request_duration_seconds_bucket" in text


def test_the_landing_page_is_vietnamese_html(api):
    response = requests.get(f"{api.url}/", timeout=10)
    assert response.status_code == 200 and response.headers["Content-Type"].startswith("text/html")
    assert "Một cửa điện tử" in response.text and 'href="/api/v1/procedures"' in response.text
