"""One dossier through its whole life over HTTP, services in separate processes, real RabbitMQ + PostgreSQL."""
import time
from datetime import datetime
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import create_engine, text

from tests.e2e.client import APPLICANT, COMMUNE, LAND_STEPS, Api, mails_for
from tests.infra import wait_for

pytestmark = pytest.mark.e2e




def count(url, sql, **params):
    engine = create_engine(url)
    with engine.connect() as connection:
        value = connection.execute(text(sql), params).scalar_one()
    engine.dispose()
    return value


def test_dossier_travels_from_submission_to_return(platform, pg_urls):
    api = Api(platform.base_url)
    submitted = api.submit(key="e2e-lifecycle-1")
    code = submitted["code"]
    assert (submitted["status"], submitted["status_code"]) == ("submitted", 1)
    assert code.startswith(f"{COMMUNE}-") and len(code.rsplit("-", 1)[1]) == 4
    assert api.submit(key="e2e-lifecycle-1")["code"] == code  # a retried POST is the same dossier

    # encrypted at rest (intake's sealing.py): not in intake's row, yet found by search and shown to staff
    stored = count(pg_urls["intake"], "SELECT count(*) FROM dossiers WHERE code = :code AND applicant_id_number"
                   " NOT LIKE '%' || :id || '%' AND applicant_phone NOT LIKE '%' || :phone || '%'", code=code,
                   id=APPLICANT["id_number"], phone=APPLICANT["phone"][1:])
    assert stored == 1
    found = api.call("POST", "/api/v1/dossiers/search", user=f"receptionist@{COMMUNE}",
                     json={"id_number": APPLICANT["id_number"]}).json()
    assert [item["code"] for item in found["items"]] == [code]
    shown = api.call("GET", f"/api/v1/dossiers/{code}", user=f"receptionist@{COMMUNE}").json()["applicant"]
    assert (shown["id_number"], shown["phone"]) == (APPLICANT["id_number"], APPLICANT["phone"])

    received = api.receive(code)
    assert (received["status"], received["status_code"]) == ("received", 2)
    assert received["due_at"]

    # another agency's officer cannot complete the land office's task
    first = api.open_task(code, *LAND_STEPS[0])
    assert api.complete(first, f"specialist@{COMMUNE}").status_code in (403, 404)

    api.process_land_dossier(code)
    ready = api.wait_status(code, "result_ready")
    assert ready["status_code"] == 9

    response = api.call("POST", f"/api/v1/dossiers/{code}/return", user=f"receptionist@{COMMUNE}",
                        json={"method": "counter"})
    assert response.status_code == 200, response.text
    assert (response.json()["status"], response.json()["status_code"]) == ("returned", 10)

    tracking = api.wait_tracked(code, "returned")
    assert tracking["status_code"] == 10 and tracking["received_at"] and tracking["due_at"]
    assert [step["status"] for step in tracking["timeline"]][0] == "submitted"
    public = str(tracking)
    for secret in (APPLICANT["id_number"], APPLICANT["phone"], APPLICANT["address"], APPLICANT["full_name"]):
        assert secret not in public
    wrong = api.call("GET", f"/api/v1/track/{code}?key=0000")
    unknown = api.call("GET", f"/api/v1/track/{COMMUNE}-000101-0001?key={APPLICANT['phone'][-4:]}")
    assert wrong.status_code == unknown.status_code == 404
    assert wrong.json()["error"]["code"] == unknown.json()["error"]["code"]

    today = datetime.now(ZoneInfo("Asia/Ho_Chi_Minh")).date().isoformat()  # report days are local
    report = api.call("GET", f"/api/v1/reports/timeliness?from={today}&to={today}&agency={COMMUNE}",
                      user=f"leader@{COMMUNE}").json()
    [row] = [r for r in report["rows"] if r["agency_code"] == COMMUNE]
    # a fresh platform: this dossier is the only one, received online and resolved early (the same
    # day, ten working days before its due date)
    assert row["received"] == {**row["received"], "total": 1, "online": 1, "counter_postal": 0, "carried_over": 0}
    assert row["resolved"] == {**row["resolved"], "total": 1, "early": 1, "on_time": 0, "late": 0}
    assert row["in_progress"] == {**row["in_progress"], "total": 0, "within_deadline": 0, "overdue": 0}

    mailbox_path = platform.log_dir / "var" / "mailbox.mbox"
    # submitted (the code at once), received (the appointment), result ready
    assert wait_for(lambda: len(mails_for(mailbox_path, code)) == 3)

    logs = platform.logs()
    for secret in (APPLICANT["id_number"], APPLICANT["phone"], APPLICANT["email"], APPLICANT["address"],
                   f"key={APPLICANT['phone'][-4:]}"):
        assert secret not in logs, "personal data in a log line"


def test_a_service_killed_mid_flow_loses_nothing_and_repeats_nothing(platform, pg_urls):
    api = Api(platform.base_url)
    code = api.submit()["code"]
    # workflow dies (SIGKILL, no goodbye) before the reception reaches it
    platform.kill("workflow")
    api.receive(code)
    time.sleep(1)
    platform.start("workflow")
    first = api.open_task(code, *LAND_STEPS[0], timeout=90)
    assert api.complete(first, f"{LAND_STEPS[0][1]}@{LAND_STEPS[0][0]}").status_code == 200

    # intake dies while the rest of the process runs; its events wait in its durable queues
    platform.kill("intake")
    for agency, role in LAND_STEPS[1:]:
        task = api.open_task(code, agency, role)
        assert api.complete(task, f"{role}@{agency}").status_code == 200
    platform.start("intake")
    platform.wait_healthy()
    api.wait_status(code, "result_ready", timeout=90)

    tasks = count(pg_urls["workflow"], "SELECT count(*) FROM tasks WHERE dossier_code = :code", code=code)
    assert tasks == len(LAND_STEPS)  # one task per step: no step started twice
    actions = count(pg_urls["intake"], "SELECT count(*) FROM dossiers d, json_array_elements(d.history) a "
                                       "WHERE d.code = :code AND a->>'action' IN ('start_processing', 'result_ready')",
                    code=code)
    assert actions == 2
    # every event of this life reached reporting once: submitted, received, processing started,
    # 3 × task assigned, 3 × task completed, result ready (workflow), result ready (intake)
    assert wait_for(lambda: count(pg_urls["reporting"], "SELECT count(*) FROM events WHERE dossier_code = :code",
                                  code=code) == 11)
    mailbox_path = platform.log_dir / "var" / "mailbox.mbox"
    assert wait_for(lambda: len(mails_for(mailbox_path, code)) == 3)
    time.sleep(1)
    assert len(mails_for(mailbox_path, code)) == 3
