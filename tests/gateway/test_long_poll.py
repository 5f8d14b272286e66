"""Push instead of polling, over real HTTP: a dossier or a task inbox answers its ETag; with
If-None-Match and `Prefer: wait` the request is held (no worker, no connection, no RPC) until intake's
or workflow's event says it changed, then answers 200, or 304 when the wait ends."""
from __future__ import annotations

import time
from datetime import datetime, timedelta, timezone

import eventlet
import pytest
import requests
from nameko.standalone.events import event_dispatcher

from motcua.contracts import make_event
from motcua.identity import Caller, issue_token
from tests.documents import required_uploads
from tests.gateway.conftest import AGENCY, SERVICES

PARENT = "000.00.00.H56"  # the commune's parent: its leader oversees the commune's tasks
CODE = f"{AGENCY}-260302-0101"
NOW = datetime(2026, 3, 2, 8, tzinfo=timezone.utc)


@pytest.fixture
def api(gateway):
    for name in SERVICES:
        getattr(gateway, name).reset_mock(return_value=True, side_effect=True)
    return gateway


def headers(api, username=f"receptionist@{AGENCY}", agency=AGENCY, role="receptionist", **extra) -> dict:
    token = issue_token(Caller(username, agency, (role,)), api.config["TOKEN_SIGNING_KEY"], timedelta(minutes=5))
    return {"Authorization": f"Bearer {token}", **extra}


def dossier(version: int, status: str = "received") -> dict:
    return {"code": CODE, "status": status, "dossier_version": version, "history": []}


def dossier_event(api, code: str, version: int) -> None:
    """Intake tells that a dossier changed (as its outbox relay publishes it)."""
    event_dispatcher(api.config)("intake", "dossier_processing_started", make_event("intake", "dossier_processing_started", {
        "code": code, "started_at": NOW, "status": "processing", "status_code": 4, "dossier_version": version}))


def task_event(api, agency: str) -> None:
    event_dispatcher(api.config)("workflow", "task_assigned", make_event("workflow", "task_assigned", {
        "dossier_code": CODE, "task_id": "t-1", "agency_code": agency, "step": "Thẩm định", "step_index": 0,
        "assigned_at": NOW, "due_at": NOW + timedelta(days=2), "role": "specialist", "run_version": 1}))


def get(api, path: str, **kwargs) -> requests.Response:
    return requests.get(f"{api.url}{path}", timeout=40, **kwargs)


def test_a_dossier_answers_its_etag_and_304_when_the_client_has_it(api):
    api.intake.get_dossier.return_value = dossier(3)
    first = get(api, f"/api/v1/dossiers/{CODE}", headers=headers(api))
    assert first.status_code == 200 and first.json() == dossier(3)
    etag = first.headers["ETag"]
    assert etag.startswith('"v3-') and "Preference-Applied" not in first.headers
    again = get(api, f"/api/v1/dossiers/{CODE}", headers=headers(api, **{"If-None-Match": etag}))
    assert (again.status_code, again.content, again.headers["ETag"]) == (304, b"", etag)


def test_a_held_dossier_answers_as_soon_as_intake_changes_it(api):
    api.intake.get_dossier.return_value = dossier(3)
    etag = get(api, f"/api/v1/dossiers/{CODE}", headers=headers(api)).headers["ETag"]
    poll = eventlet.spawn(get, api, f"/api/v1/dossiers/{CODE}",
                          headers=headers(api, **{"If-None-Match": etag, "Prefer": "wait=20"}))
    eventlet.sleep(0.5)
    assert api.intake.get_dossier.call_count == 2  # read once, then held: no polling of intake
    dossier_event(api, f"{AGENCY}-260302-0999", 9)  # another dossier: still held
    dossier_event(api, CODE, 3)  # a version the client has already: still held
    eventlet.sleep(0.3)
    assert not poll.dead and api.intake.get_dossier.call_count == 2
    api.intake.get_dossier.return_value = dossier(4, "processing")
    started = time.monotonic()
    dossier_event(api, CODE, 4)
    answer = poll.wait()
    assert time.monotonic() - started < 2
    assert answer.status_code == 200 and answer.json()["status"] == "processing"
    assert answer.headers["ETag"].startswith('"v4-') and answer.headers["Preference-Applied"] == "wait"
    assert api.intake.get_dossier.call_count == 3


def test_a_held_dossier_ends_304_when_the_wait_ends(api):
    api.intake.get_dossier.return_value = dossier(5)
    etag = get(api, f"/api/v1/dossiers/{CODE}", headers=headers(api)).headers["ETag"]
    started = time.monotonic()
    answer = get(api, f"/api/v1/dossiers/{CODE}", headers=headers(api, **{"If-None-Match": etag, "Prefer": "wait=1"}))
    assert 0.9 < time.monotonic() - started < 3
    assert (answer.status_code, answer.headers["ETag"], answer.headers["Preference-Applied"]) == (304, etag, "wait")
    assert api.intake.get_dossier.call_count == 2


def test_the_inbox_is_held_until_a_task_of_the_agency_or_one_it_oversees_changes(api):
    api.workflow.list_tasks.return_value = []
    leader = headers(api, f"leader@{PARENT}", PARENT, "leader")
    etag = get(api, "/api/v1/tasks", headers=leader).headers["ETag"]
    poll = eventlet.spawn(get, api, "/api/v1/tasks", headers={**leader, "If-None-Match": etag, "Prefer": "wait=20"})
    eventlet.sleep(0.3)
    task_event(api, "000.20.02.H56")  # a commune the leader does not oversee
    eventlet.sleep(0.3)
    assert not poll.dead
    api.workflow.list_tasks.return_value = [{"id": "t-1", "dossier_code": CODE, "agency_code": AGENCY}]
    task_event(api, AGENCY)  # the commune below the leader's agency
    answer = poll.wait()
    assert answer.status_code == 200 and answer.json()[0]["id"] == "t-1"
    assert answer.headers["Preference-Applied"] == "wait" and answer.headers["ETag"] != etag


def test_held_requests_take_no_worker_and_starve_nobody(api):
    """More long polls than nameko's max_workers are held, and every other request still answers."""
    api.intake.get_dossier.return_value = dossier(6)
    api.intake.list_agencies.return_value = [{"code": AGENCY, "name": "UBND xã"}]
    api.workflow.list_tasks.return_value = []
    etag = get(api, f"/api/v1/dossiers/{CODE}", headers=headers(api)).headers["ETag"]
    held = api.config["max_workers"] * 2 + 5
    polls = [eventlet.spawn(get, api, f"/api/v1/dossiers/{CODE}",
                            headers=headers(api, **{"If-None-Match": etag, "Prefer": "wait=4"})) for _ in range(held)]
    eventlet.sleep(1)
    assert f'motcua_http_held_requests{{route="/api/v1/dossiers/<code>"}} {held}.0' in get(api, "/metrics").text
    assert get(api, "/health").json()["gateway"]["long_polls_held"] == held
    started = time.monotonic()
    assert get(api, "/api/v1/agencies").status_code == 200
    assert get(api, "/api/v1/tasks", headers=headers(api)).status_code == 200  # the token check's database
    assert time.monotonic() - started < 1
    assert all(poll.wait().status_code == 304 for poll in polls)


def test_a_wait_without_an_etag_answers_at_once(api):
    api.workflow.list_tasks.return_value = []
    answer = get(api, "/api/v1/tasks", headers=headers(api, Prefer="wait=20"))
    assert answer.status_code == 200 and answer.headers["Preference-Applied"] == "wait" and answer.headers["ETag"]


def test_on_the_platform_a_long_poll_answers_intakes_and_workflows_changes(tmp_path):
    """The real owners' events: the counter receives a dossier (intake's event wakes the officer's
    poll on it), and its first step reaches the land office's inbox (workflow's event wakes theirs)."""
    from tests.e2e.client import APPLICANT, COMMUNE, LAND_OFFICE
    from tests.infra import embedded_platform

    with embedded_platform(tmp_path) as base:
        def token(user: str) -> dict:
            answer = requests.post(f"{base}/api/v1/auth/token", json={"username": user, "password": "demo"}, timeout=30)
            return {"Authorization": f"Bearer {answer.json()['access_token']}"}

        submitted = requests.post(f"{base}/api/v1/dossiers", timeout=30, json={
            "procedure_code": "1.012786", "channel": "online", "applicant": APPLICANT, "form": {},
            "documents": required_uploads("1.012786")}).json()
        counter, land_office = token(f"receptionist@{COMMUNE}"), token(f"specialist@{LAND_OFFICE}")
        dossier_url, inbox_url = f"{base}/api/v1/dossiers/{submitted['code']}", f"{base}/api/v1/tasks?status=open"
        dossier_etag = requests.get(dossier_url, headers=counter, timeout=30).headers["ETag"]
        inbox_etag = requests.get(inbox_url, headers=land_office, timeout=30).headers["ETag"]
        polls = [eventlet.spawn(requests.get, url, timeout=40, headers={**headers, "If-None-Match": etag,
                                                                          "Prefer": "wait=25"})
                 for url, headers, etag in ((dossier_url, counter, dossier_etag), (inbox_url, land_office, inbox_etag))]
        eventlet.sleep(0.5)
        started = time.monotonic()
        assert requests.post(f"{dossier_url}/receive", headers=counter, json={}, timeout=30).status_code == 200
        dossier, inbox = (poll.wait() for poll in polls)
        assert time.monotonic() - started < 10  # the events, not the 25 s wait
        assert dossier.status_code == 200 and dossier.json()["status"] in ("received", "processing")
        assert inbox.status_code == 200 and submitted["code"] in {task["dossier_code"] for task in inbox.json()}
        assert dossier.headers["Preference-Applied"] == inbox.headers["Preference-Applied"] == "wait"
