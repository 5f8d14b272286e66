"""Intake behind the real gateway over HTTP (embedded bus, SQLite): the calendar endpoint's contract,
the catalogue, and the reception decisions' routes."""
from __future__ import annotations

import base64
import hashlib
import io
import json
import uuid
from datetime import datetime, timedelta
from types import SimpleNamespace
from zoneinfo import ZoneInfo

import eventlet
import pytest
import sqlalchemy
import requests
from nameko.containers import ServiceContainer
from nameko.testing.services import replace_dependencies, worker_factory
from openpyxl import load_workbook
from sqlalchemy import create_engine, text

from motcua import embedded
from motcua.config import catalog_dir, nameko_config
from motcua.faults import TransientFailure
from motcua.revocation import AccessCache
from motcua.rpc import TimedRpcProxy, TimedServiceProxy
from services.gateway.accounts import seed_demo_accounts
from services.gateway.service import GatewayService
from services.intake.service import IntakeService
from tests.documents import required_uploads
from tests.infra import free_port, gateway_token, migrated_sqlite_urls
from tests.intake.test_forms import hand_overs, text_of

COMMUNE = "000.20.01.H56"
APPLICANT = {"full_name": "Trần Thị Bình", "id_number": "038190012345", "phone": "0987654321"}


def staff_hand_overs(code, caller_token):
    """Workflow's answer, which it gives only to a staff caller: intake passes the officer's token on."""
    assert caller_token
    return hand_overs(code)


@pytest.fixture(scope="module")
def api(tmp_path_factory):
    embedded.install()
    vhost = f"intake-http-{uuid.uuid4().hex[:8]}"
    port = free_port()
    config = {**nameko_config(f"embedded:///{vhost}"), "DB_URLS": migrated_sqlite_urls(tmp_path_factory.mktemp("db")),
              "WEB_SERVER_ADDRESS": f"127.0.0.1:{port}", "METRICS_PORTS": {}}
    seed_demo_accounts(config["DB_URLS"]["gateway"], catalog_dir())  # the gateway honours accounts' tokens only
    engine = create_engine(config["DB_URLS"]["gateway"])  # the receptionist's name, as the forms print it
    with engine.begin() as connection:
        connection.execute(text("UPDATE users SET full_name = 'Lê Thị Hoa', title = 'Công chức Bộ phận Một cửa' "
                                "WHERE username = :username"), {"username": f"receptionist@{COMMUNE}"})
    engine.dispose()
    containers = [ServiceContainer(cls, config) for cls in (IntakeService, GatewayService)]
    workflow = SimpleNamespace(dossier_history=staff_hand_overs)  # workflow is not started here: its hand-overs
    replace_dependencies(containers[0], workflow=workflow)
    for container in containers:
        container.start()
    receptionist = gateway_token(f"receptionist@{COMMUNE}", COMMUNE, "receptionist", ttl=600)
    admin = gateway_token("admin", None, "admin", ttl=600)
    yield SimpleNamespace(url=f"http://127.0.0.1:{port}", staff={"Authorization": f"Bearer {receptionist}"},
                          admin={"Authorization": f"Bearer {admin}"}, db=config["DB_URLS"]["intake"])
    for container in containers:
        container.stop()
    embedded.reset(vhost)


def due(api, **params):
    return requests.get(f"{api.url}/api/v1/calendar/due", params=params, timeout=10)


@pytest.mark.parametrize("params, expected", [
    # inside office hours: 1 day = 8 working hours later
    ({"start": "2026-03-02T09:00:00+07:00", "days": "1"}, "2026-03-03T09:00:00+07:00"),
    # an allowance that ends exactly at 17:00 is due at 17:00, not the next morning
    ({"start": "2026-03-02T07:00:00+07:00", "days": "1"}, "2026-03-02T17:00:00+07:00"),
    # at lunch: counting starts at 13:30; half a day = 4 h → 17:30 does not exist → next morning 07:30
    ({"start": "2026-03-02T12:00:00+07:00", "days": "0.5"}, "2026-03-03T07:30:00+07:00"),
    # after the cut-off: from the next working day's opening
    ({"start": "2026-03-02T15:30:00+07:00", "days": "1", "cutoff": "15:00"}, "2026-03-03T17:00:00+07:00"),
    # the start may be given in any offset; the answer is in the province's
    ({"start": "2026-03-02T02:00:00+00:00", "days": "1"}, "2026-03-03T09:00:00+07:00"),
    # the provincial police keeps 07:30-11:30, 13:30-17:30
    ({"start": "2026-03-02T07:00:00+07:00", "days": "1", "agency": "000.00.15.H56"}, "2026-03-02T17:30:00+07:00"),
])
def test_calendar_due_follows_the_contract(api, params, expected):
    response = due(api, **params)
    assert response.status_code == 200, response.text
    assert response.json() == {"due_at": expected, "provisional": False}


@pytest.mark.parametrize("params, expected", [
    # calendar days (Civil Code art. 147-148): Tue 10/2/2026 not counted, the 10th day Fri 20/2 is Tết,
    # then the weekend: the close of Mon 23/2
    ({"start": "2026-02-10T09:00:00+07:00", "days": "10", "unit": "calendar_days"},
     {"due_at": "2026-02-23T17:00:00+07:00", "provisional": False}),
    # working hours: Fri 9/1/2026 16:00 + 2 h, Sat 10/1 a swapped working day (12729/VPCP-KGVX)
    ({"start": "2026-01-09T16:00:00+07:00", "days": "2", "unit": "working_hours"},
     {"due_at": "2026-01-10T08:00:00+07:00", "provisional": False}),
    # Wed 23/12/2026 + 10 working days reaches 2027, a year not decided yet
    ({"start": "2026-12-23T09:00:00+07:00", "days": "10"},
     {"due_at": "2027-01-07T09:00:00+07:00", "provisional": True}),
])
def test_calendar_due_units_and_provisional_years(api, params, expected):
    response = due(api, **params)
    assert response.status_code == 200, response.text
    assert response.json() == expected


def test_calendar_due_accepts_an_unencoded_plus(api):
    response = requests.get(f"{api.url}/api/v1/calendar/due?start=2026-03-02T09:00:00+07:00&days=1", timeout=10)
    assert response.json() == {"due_at": "2026-03-03T09:00:00+07:00", "provisional": False}


@pytest.mark.parametrize("params, field", [
    ({"days": "1"}, "start"),
    ({"start": "2026-03-02T09:00:00", "days": "1"}, "start"),
    ({"start": "yesterday", "days": "1"}, "start"),
    ({"start": "2026-03-02T09:00:00+07:00"}, "days"),
    ({"start": "2026-03-02T09:00:00+07:00", "days": "0.3"}, "days"),
    ({"start": "2026-03-02T09:00:00+07:00", "days": "-1"}, "days"),
    ({"start": "2026-03-02T09:00:00+07:00", "days": "NaN"}, "days"),
    ({"start": "2026-03-02T09:00:00+07:00", "days": "1", "cutoff": "3pm"}, "cutoff"),
    ({"start": "2026-03-02T09:00:00+07:00", "days": "1", "unit": "weeks"}, "unit"),
    ({"start": "2026-03-02T09:00:00+07:00", "days": "1.5", "unit": "calendar_days"}, "days"),
    ({"start": "2026-03-02T09:00:00+07:00", "days": "1", "agency": "000.99.99.H56"}, "agency"),
])
def test_calendar_due_names_the_bad_parameter(api, params, field):
    response = due(api, **params)
    assert response.status_code == 400
    assert response.json()["error"]["field"] == field


def test_the_catalogue_lists_15_procedures_with_their_terms(api):
    procedures = requests.get(f"{api.url}/api/v1/procedures", timeout=10).json()
    assert len(procedures) >= 15
    first = procedures[0]
    for key in ("code", "name", "field", "agency_code", "processing_time", "fee", "online_level",
                "version", "level", "cutoff", "channels", "effective_from"):
        assert key in first
    found = requests.get(f"{api.url}/api/v1/procedures", params={"q": "cap phieu ly lich tu phap"}, timeout=10)
    assert [p["code"] for p in found.json()] == ["2.000505"]
    old = requests.get(f"{api.url}/api/v1/procedures/1.004873/versions/1", timeout=10).json()
    assert "so_ho_khau" in [d["key"] for d in old["documents"]]
    assert requests.get(f"{api.url}/api/v1/procedures/1.004873/versions/9", timeout=10).status_code == 404


def submit(api):
    body = {"procedure_code": "1.012786", "channel": "online", "applicant": APPLICANT,
            "documents": required_uploads("1.012786")}
    response = requests.post(f"{api.url}/api/v1/dossiers", json=body, timeout=10)
    assert response.status_code == 201, response.text
    return response.json()["code"]


def post(api, code, action, body, headers=None):
    return requests.post(f"{api.url}/api/v1/dossiers/{code}/{action}", json=body, headers=headers, timeout=10)


def test_supplement_and_withdrawal_over_http(api):
    code = submit(api)
    assert post(api, code, "receive", {}, api.staff).status_code == 200
    asked = post(api, code, "request-supplement", {"items": ["Bản sao CCCD"]}, api.staff)
    assert asked.status_code == 200 and asked.json()["status_code"] == 5
    assert asked.json()["supplements"][0]["items"] == ["Bản sao CCCD"]
    assert post(api, code, "request-supplement", {"items": []}, api.staff).json()["error"]["field"] == "items"
    key = APPLICANT["phone"][-4:]
    no_key = post(api, code, "supplement", {"id_number": APPLICANT["id_number"]})
    assert (no_key.status_code, no_key.json()["error"]["field"]) == (401, "key")
    wrong_key = post(api, code, "supplement", {"key": "0000", "id_number": APPLICANT["id_number"]})
    assert (wrong_key.status_code, wrong_key.json()["error"]["code"]) == (404, "not_found")
    wrong = post(api, code, "supplement", {"key": key, "id_number": "038190099999"})
    assert wrong.status_code == 403
    done = post(api, code, "supplement", {"key": key, "id_number": APPLICANT["id_number"]})
    assert done.status_code == 200
    assert set(done.json()) == {"code", "status", "status_code", "due_at", "allowed_actions"}  # nothing personal
    assert done.json()["status"] == "received"
    again = post(api, code, "supplement", {"key": key, "id_number": APPLICANT["id_number"]})
    assert again.status_code == 409
    assert again.json()["error"]["allowed"] == ["request_supplement", "withdraw", "reschedule"]
    withdrawn = post(api, code, "withdraw", {"reason": "Không còn nhu cầu"}, api.staff)
    assert (withdrawn.status_code, withdrawn.json()["status_code"]) == (200, 7)
    assert withdrawn.json()["history"][-1]["actor"] == f"receptionist@{COMMUNE}"


PDF = b"%PDF-1.4\n% a small test file\n%%EOF\n"
PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 64


def test_an_online_submission_missing_a_mandatory_document_is_refused_naming_each_and_storing_nothing(api):
    def dossiers_stored():
        with create_engine(api.db).connect() as connection:
            return connection.scalar(text("SELECT count(*) FROM dossiers"))

    before = dossiers_stored()
    dossier = {"procedure_code": "1.012786", "channel": "online", "applicant": APPLICANT}
    files = {"don_de_nghi": ("don.pdf", PDF, "application/pdf")}
    response = requests.post(f"{api.url}/api/v1/dossiers", data={"dossier": json.dumps(dossier)}, files=files,
                             timeout=10)
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert (error["code"], error["field"]) == ("validation_error", "documents")
    assert error["missing"] == [{"key": "xac_nhan_niem_yet", "name": "Giấy xác nhận của Ủy ban nhân dân cấp xã "
                                 "về việc niêm yết thông báo mất Giấy chứng nhận"}]
    bare = requests.post(f"{api.url}/api/v1/dossiers", json=dossier, timeout=10)  # none at all: both named
    assert bare.status_code == 400 and [d["key"] for d in bare.json()["error"]["missing"]] == [
        "don_de_nghi", "xac_nhan_niem_yet"]
    assert dossiers_stored() == before  # nothing written, not even a code taken
    assert requests.post(f"{api.url}/api/v1/dossiers", json={**dossier, "documents": required_uploads("1.012786")},
                         timeout=10).status_code == 201


def test_documents_as_multipart_and_base64_are_checked_hashed_and_served_to_involved_staff(api):
    # at the counter an incomplete dossier is taken (its officer asks for the rest): the missing one is shown
    dossier = {"procedure_code": "1.012786", "channel": "counter", "applicant": APPLICANT}
    files = {"don_de_nghi": ("don.pdf", PDF, "application/pdf")}
    response = requests.post(f"{api.url}/api/v1/dossiers", data={"dossier": json.dumps(dossier)}, files=files,
                             headers=api.staff, timeout=10)
    assert response.status_code == 201, response.text
    code = response.json()["code"]
    view = requests.get(f"{api.url}/api/v1/dossiers/{code}", headers=api.staff, timeout=10).json()
    [document] = view["documents"]
    assert (document["key"], document["sha256"], document["content_type"]) == (
        "don_de_nghi", hashlib.sha256(PDF).hexdigest(), "application/pdf")
    assert [m["key"] for m in view["documents_missing"]] == ["xac_nhan_niem_yet"]

    download = requests.get(f"{api.url}/api/v1/dossiers/{code}/documents/{document['id']}", headers=api.staff,
                            timeout=10)
    assert (download.status_code, download.content) == (200, PDF)
    assert download.headers["Content-Type"] == "application/pdf"
    outsider = gateway_token("specialist@000.00.15.H56", "000.00.15.H56", "specialist")
    denied = requests.get(f"{api.url}/api/v1/dossiers/{code}/documents/{document['id']}",
                          headers={"Authorization": f"Bearer {outsider}"}, timeout=10)
    assert denied.status_code == 403
    assert requests.get(f"{api.url}/api/v1/dossiers/{code}/documents/{document['id']}", timeout=10).status_code == 401

    # the missing one comes with the supplement, as base64 JSON
    post(api, code, "request-supplement", {"items": ["Giấy xác nhận niêm yết"]}, api.staff)
    upload = {"key": "xac_nhan_niem_yet", "filename": "niem-yet.png", "content_base64": base64.b64encode(PNG).decode()}
    supplied = post(api, code, "supplement", {"documents": [upload]}, api.staff)
    assert supplied.status_code == 200, supplied.text
    assert supplied.json()["documents_missing"] == []
    assert [d["content_type"] for d in supplied.json()["documents"]] == ["application/pdf", "image/png"]


@pytest.mark.parametrize("document, field", [
    ({"key": "khong_co", "filename": "x.pdf", "content": PDF}, "documents.0.key"),
    ({"key": "don_de_nghi", "filename": "x.exe", "content": b"MZ\x90\x00"}, "documents.0.content"),
    ({"key": "don_de_nghi", "filename": "x.pdf", "content": b"%PDF-" + b"0" * (5 * 1024 * 1024)},
     "documents.0.content"),
    ({"key": "don_de_nghi", "filename": "x.pdf", "content": None}, "documents.0.content_base64"),
])
def test_a_bad_document_is_refused_naming_it(api, document, field):
    dossier = {"procedure_code": "1.012786", "channel": "online", "applicant": APPLICANT}
    if document["content"] is None:  # not base64, in a JSON body
        body = {**dossier, "documents": [{"key": document["key"], "filename": "x", "content_base64": "%%%"}]}
        response = requests.post(f"{api.url}/api/v1/dossiers", json=body, timeout=10)
    else:
        files = {document["key"]: (document["filename"], document["content"], "application/octet-stream")}
        response = requests.post(f"{api.url}/api/v1/dossiers", data={"dossier": json.dumps(dossier)}, files=files,
                                 timeout=30)
    assert response.status_code == 400, response.text
    assert response.json()["error"]["field"] == field


def test_forms_over_http(api):
    code = submit(api)
    form = f"{api.url}/api/v1/dossiers/{code}/forms"
    assert requests.get(f"{form}/01", headers=api.staff, timeout=10).status_code == 409
    post(api, code, "receive", {}, api.staff)
    receipt = requests.get(f"{form}/01", headers=api.staff, timeout=10)
    assert receipt.status_code == 200 and receipt.headers["Content-Type"] == "application/pdf"
    assert receipt.content.startswith(b"%PDF")
    # the officer by the gateway account's full name and title, asked by intake with the caller's token
    assert "Lê Thị Hoa Công chức Bộ phận Một cửa" in text_of(receipt.content)
    assert "receptionist@" not in text_of(receipt.content)
    assert requests.get(f"{form}/01", timeout=10).status_code == 401
    assert requests.get(f"{form}/99", headers=api.staff, timeout=10).json()["error"]["field"] == "form"
    sheet = requests.get(f"{form}/06", headers=api.staff, timeout=10)
    assert sheet.status_code == 200 and "Văn phòng Đăng ký đất đai" in text_of(sheet.content)

    assert requests.get(f"{form}/04", headers=api.staff, timeout=10).status_code == 409  # no apology yet
    current = requests.get(f"{api.url}/api/v1/dossiers/{code}", headers=api.staff, timeout=10).json()["due_at"]
    later = (datetime.fromisoformat(current) + timedelta(days=5)).isoformat()
    for body, field in (({"new_due_at": "2026-03-20T16:00:00", "reason": "x"}, "new_due_at"),
                        ({"new_due_at": later}, "reason"),
                        ({"new_due_at": current, "reason": "x"}, "new_due_at")):
        refused = post(api, code, "reschedule", body, api.staff)
        assert (refused.status_code, refused.json()["error"]["field"]) == (400, field)
    assert post(api, code, "reschedule", {"new_due_at": later, "reason": "x"}).status_code == 401
    moved = post(api, code, "reschedule", {"new_due_at": later, "reason": "Chờ xác minh nguồn gốc đất"}, api.staff)
    assert moved.status_code == 200 and moved.json()["due_at"] == later
    assert moved.json()["reschedules"][0]["late_apology"] is False
    apology = text_of(requests.get(f"{form}/04", headers=api.staff, timeout=10).content)
    assert code in apology and APPLICANT["full_name"] in apology and "Chờ xác minh nguồn gốc đất" in apology


def test_the_log_book_over_http(api):
    code = submit(api)
    post(api, code, "receive", {}, api.staff)
    today = datetime.now(ZoneInfo("Asia/Ho_Chi_Minh")).date().isoformat()  # the province's day
    book = f"{api.url}/api/v1/agencies/{COMMUNE}/log-book"
    pdf = requests.get(book, params={"from": today, "to": today}, headers=api.staff, timeout=10)
    assert pdf.status_code == 200 and pdf.headers["Content-Type"] == "application/pdf", pdf.text
    assert "SỔ THEO DÕI HỒ SƠ" in text_of(pdf.content) and code in text_of(pdf.content)
    sheet = requests.get(book, params={"from": today, "to": today, "format": "xlsx"}, headers=api.staff, timeout=10)
    assert sheet.status_code == 200 and "attachment" in sheet.headers["Content-Disposition"]
    rows = list(load_workbook(io.BytesIO(sheet.content)).active.iter_rows(values_only=True))
    assert rows[2][0] == "SỔ THEO DÕI HỒ SƠ" and code in {row[1] for row in rows[5:]}
    for params, field in (({"from": today}, "to"), ({"from": today, "to": "2000-01-01"}, "to"),
                          ({"from": today, "to": today, "format": "doc"}, "format")):
        refused = requests.get(book, params=params, headers=api.staff, timeout=10)
        assert (refused.status_code, refused.json()["error"]["field"]) == (400, field)
    assert requests.get(book, params={"from": today, "to": today}, timeout=10).status_code == 401
    other = requests.get(f"{api.url}/api/v1/agencies/000.20.02.H56/log-book", params={"from": today, "to": today},
                         headers=api.staff, timeout=10)
    assert other.status_code == 403


def test_staff_search_over_http(api):
    code = submit(api)
    url = f"{api.url}/api/v1/dossiers/search"
    found = requests.post(url, json={"code": code, "phone": "+84987654321", "name": "tran thi"}, headers=api.staff,
                          timeout=10)
    assert found.status_code == 200, found.text
    assert [item["code"] for item in found.json()["items"]] == [code]
    bad = requests.post(url, json={"page_size": 0}, headers=api.staff, timeout=10)
    assert bad.json()["error"]["field"] == "page_size"
    assert requests.post(url, json={}, timeout=10).status_code == 401


def test_a_workflow_that_does_not_answer_frees_the_intake_worker_at_the_rpc_deadline():
    """intake asks workflow (form 06) and the gateway (officers' names) through timed proxies: a service
    that is down fails the call as transient at the deadline (the officer is told to try again)."""
    assert isinstance(IntakeService.workflow, TimedRpcProxy) and isinstance(IntakeService.gateway, TimedRpcProxy)
    slow = TimedServiceProxy(SimpleNamespace(dossier_history=lambda code, caller_token: eventlet.sleep(5)),
                             "workflow", 0.2)
    service = worker_factory(IntakeService, revocations=AccessCache(5), workflow=slow)
    with pytest.raises(TransientFailure, match="workflow did not answer in time"):
        service._hand_overs("000.20.01.H56-260302-0001", caller_token="t")
    answering = worker_factory(IntakeService, revocations=AccessCache(5), workflow=SimpleNamespace(
        dossier_history=staff_hand_overs))
    assert answering._hand_overs("000.20.01.H56-260302-0001", caller_token="t")[1]["agency_code"] == "000.00.18.H56"


def test_a_calendar_decision_through_the_api_moves_an_open_dossiers_appointment(api):
    code = submit(api)
    received = post(api, code, "receive", {}, api.staff).json()
    due_at = datetime.fromisoformat(received["due_at"])
    # The day the appointment falls on is declared a day off (a hypothetical decision, for the test).
    decision = {"date": due_at.date().isoformat(), "kind": "day_off", "source": "Công văn thử nghiệm (test)"}
    denied = requests.post(f"{api.url}/api/v1/calendar/decisions", json=decision, headers=api.staff, timeout=10)
    assert denied.status_code == 403
    missing = requests.post(f"{api.url}/api/v1/calendar/decisions", json={**decision, "source": ""},
                            headers=api.admin, timeout=10)
    assert (missing.status_code, missing.json()["error"]["field"]) == (400, "source")

    recorded = requests.post(f"{api.url}/api/v1/calendar/decisions", json=decision, headers=api.admin, timeout=10)
    assert recorded.status_code == 201, recorded.text
    assert code in recorded.json()["rescheduled"]
    view = requests.get(f"{api.url}/api/v1/dossiers/{code}", headers=api.staff, timeout=10).json()
    moved = datetime.fromisoformat(view["due_at"])
    # the allowance's last hours now fall on the next working day, at the same hour
    assert moved.date() > due_at.date() and moved.time() == due_at.time()
    assert view["history"][-1]["note"] == "calendar: Công văn thử nghiệm (test)"
    assert view["history"][-1]["actor"] == "admin"
    engine = sqlalchemy.create_engine(api.db)
    with engine.connect() as connection:
        rows = connection.execute(sqlalchemy.text(
            "SELECT payload FROM outbox WHERE event_type IN ('dossier_rescheduled', 'calendar_decided') "
            "ORDER BY id")).scalars().all()
    engine.dispose()
    events = [json.loads(r) if isinstance(r, str) else r for r in rows]
    assert any(e["data"]["code"] == code and e["data"]["reason"] == "calendar" for e in events[:-1])
    # then the decision itself, for the services that count working time (workflow's step deadlines)
    assert events[-1]["event_type"] == "calendar_decided"
    assert {k: events[-1]["data"][k] for k in ("date", "kind", "source", "decided_year", "decided_by")} == {
        **decision, "decided_year": False, "decided_by": "admin"}
    # counted at once: a due date spanning that day skips it
    start = due_at.replace(hour=7, minute=0)
    assert datetime.fromisoformat(due(api, start=start.isoformat(), days="1").json()["due_at"]).date() > due_at.date()
