"""Reception anywhere in the province (Decree 118/2025/NĐ-CP, tiếp nhận hồ sơ không phụ thuộc địa giới
hành chính) end to end over HTTP, services in separate processes on real RabbitMQ and PostgreSQL: an
applicant of Hạc Thành has a dossier received at Quảng Phú, which numbers it, receives it, handles it
(routed there by the process) and counts it in its report line; tracking shows where it is."""
from datetime import datetime
from zoneinfo import ZoneInfo

import pytest

from tests.e2e.client import APPLICANT, Api

pytestmark = pytest.mark.e2e

HAC_THANH, QUANG_PHU = "000.20.01.H56", "000.20.02.H56"  # the applicant's ward; the commune chosen
EXTRACT_COPY = "2.000635"  # cấp bản sao trích lục hộ tịch: received anywhere, handled where received


def test_a_dossier_received_at_another_commune_is_routed_and_counted_there(platform):
    api = Api(platform.base_url)
    assert "phường Hạc Thành" in APPLICANT["address"]
    procedure = api.call("GET", f"/api/v1/procedures/{EXTRACT_COPY}").json()
    assert procedure["reception"] == "anywhere" and set(procedure["receiving_agencies"]) == {HAC_THANH, QUANG_PHU}

    refused = api.command("POST", "/api/v1/dossiers", json={
        "procedure_code": EXTRACT_COPY, "channel": "online", "applicant": APPLICANT,
        "documents": api.documents(EXTRACT_COPY), "receiving_agency_code": "000.12.01.H56"})  # the land office receives no civil-status copy
    assert refused.status_code == 400 and refused.json()["error"]["field"] == "receiving_agency_code", refused.text

    submitted = api.command("POST", "/api/v1/dossiers", json={
        "procedure_code": EXTRACT_COPY, "channel": "online", "applicant": APPLICANT,
        "documents": api.documents(EXTRACT_COPY), "receiving_agency_code": QUANG_PHU})
    assert submitted.status_code == 201, submitted.text
    code = submitted.json()["code"]
    assert code.startswith(f"{QUANG_PHU}-") and code.endswith("-0001")  # Quảng Phú's counter, its first today
    assert submitted.json()["agency_code"] == QUANG_PHU

    # Hạc Thành's counter may not receive what was handed to Quảng Phú; Quảng Phú's may.
    other = api.command("POST", f"/api/v1/dossiers/{code}/receive", user=f"receptionist@{HAC_THANH}", json={})
    assert other.status_code in (403, 404), other.text
    api.receive(code, agency=QUANG_PHU)

    task = api.open_task(code, QUANG_PHU, "specialist")  # routed by `serving: receiving`
    assert task["agency_code"] == QUANG_PHU
    hac_thanh_tasks = api.call("GET", "/api/v1/tasks?status=open", user=f"specialist@{HAC_THANH}").json()
    assert code not in [t["dossier_code"] for t in hac_thanh_tasks]
    assert api.complete(task, f"specialist@{QUANG_PHU}").status_code == 200
    api.wait_status(code, "result_ready")
    returned = api.command("POST", f"/api/v1/dossiers/{code}/return", user=f"receptionist@{QUANG_PHU}",
                           json={"method": "counter"})
    assert returned.status_code == 200, returned.text

    tracking = api.wait_tracked(code, "returned")
    agencies = {line.get("agency_code") for line in tracking["timeline"]} - {None}
    assert agencies == {QUANG_PHU}, tracking["timeline"]  # received and handled at Quảng Phú only

    today = datetime.now(ZoneInfo("Asia/Ho_Chi_Minh")).date().isoformat()  # report days are local
    report = api.call("GET", f"/api/v1/reports/timeliness?from={today}&to={today}", user="admin").json()
    rows = {row["agency_code"]: row for row in report["rows"]}
    assert rows[QUANG_PHU]["received"] == {**rows[QUANG_PHU]["received"], "total": 1, "online": 1}
    assert rows[QUANG_PHU]["resolved"]["total"] == 1
    assert HAC_THANH not in rows or rows[HAC_THANH]["received"]["total"] == 0
    # The list behind Quảng Phú's figure holds the dossier, and its leader may read it.
    listed = api.call("GET", f"/api/v1/reports/standard/dossiers?from={today}&to={today}&cell=received.total"
                             f"&key={QUANG_PHU}", user=f"leader@{QUANG_PHU}")
    assert listed.status_code == 200, listed.text
    assert [d["code"] for d in listed.json()["dossiers"]] == [code]
