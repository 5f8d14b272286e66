"""IDOR over HTTP: another agency's dossier or task by its code or id is refused by the service that
owns it, and the attempt is audited twice: at the HTTP edge (who, from where) and by the owner's
`access_denied` event. Leaders and agency admins of a parent agency see their sub-agencies' dossiers."""
from __future__ import annotations

import requests

from tests.e2e.client import Api
from tests.security.conftest import (
    COMMUNE,
    LAND_OFFICE,
    OTHER_COMMUNE,
    PROVINCE,
    audit_entries,
    signed_in,
    submit,
    wait_for_audit,
)


def get(platform, path, headers):
    return requests.get(f"{platform.url}{path}", headers=headers, timeout=30)


def test_another_agencys_dossier_is_refused_and_audited_at_the_edge_and_by_intake(platform):
    code = submit(platform)["code"]
    outsider = f"receptionist@{OTHER_COMMUNE}"
    headers = signed_in(platform, outsider)
    for path in (f"/api/v1/dossiers/{code}", f"/api/v1/dossiers/{code}/forms/01",
                 f"/api/v1/dossiers/{code}/documents/1"):
        response = get(platform, path, headers)
        assert response.status_code == 403, path
        assert response.json()["error"]["code"] == "forbidden"
        assert "038190012345" not in response.text and "0987654321" not in response.text
    edge = audit_entries(platform, username=outsider, dossier_code=code, source="gateway")
    assert {(e.action, e.outcome) for e in edge} == {
        ("dossier.read", "denied"), ("dossier.form.01", "denied"), ("dossier.document", "denied")}
    assert all(e.remote_addr == "127.0.0.1" and e.agency_code == OTHER_COMMUNE for e in edge)
    owner = wait_for_audit(platform, username=outsider, dossier_code=code, source="intake",
                           action="intake.get_dossier")
    assert owner[0].outcome == "denied" and owner[0].detail == "this dossier is not handled by your agency"


def test_an_action_on_another_agencys_dossier_is_refused_and_audited(platform):
    code = submit(platform)["code"]
    outsider = f"receptionist@{OTHER_COMMUNE}"
    response = requests.post(f"{platform.url}/api/v1/dossiers/{code}/receive", json={},
                             headers=signed_in(platform, outsider), timeout=30)
    assert response.status_code == 403
    [entry] = audit_entries(platform, username=outsider, dossier_code=code, action="dossier.receive")
    assert entry.outcome == "denied"
    wait_for_audit(platform, username=outsider, dossier_code=code, action="intake.receive_dossier")
    status = get(platform, f"/api/v1/dossiers/{code}", signed_in(platform, f"receptionist@{COMMUNE}")).json()["status"]
    assert status == "submitted"


def test_own_agency_reads_are_allowed_and_audited(platform):
    code = submit(platform)["code"]
    officer = f"specialist@{COMMUNE}"
    response = get(platform, f"/api/v1/dossiers/{code}", signed_in(platform, officer))
    assert response.status_code == 200 and response.json()["code"] == code
    [entry] = audit_entries(platform, username=officer, dossier_code=code)
    assert (entry.action, entry.outcome, entry.source) == ("dossier.read", "allowed", "gateway")


def test_the_parent_agencys_leader_and_agency_admin_see_the_sub_agencys_dossier(platform):
    code = submit(platform)["code"]
    for overseer in (f"leader@{PROVINCE}", f"agency_admin@{PROVINCE}"):
        assert get(platform, f"/api/v1/dossiers/{code}", signed_in(platform, overseer)).status_code == 200, overseer
    # the parent's other roles, and the sub-agency's peers, do not
    assert get(platform, f"/api/v1/dossiers/{code}", signed_in(platform, f"specialist@{PROVINCE}")).status_code == 403
    assert get(platform, f"/api/v1/dossiers/{code}", signed_in(platform, f"leader@{OTHER_COMMUNE}")).status_code == 403


def test_search_is_scoped_to_the_agency_and_the_leaders_sub_tree(platform):
    code = submit(platform)["code"]

    def found(username):
        response = requests.post(f"{platform.url}/api/v1/dossiers/search", json={"code": code},
                                 headers=signed_in(platform, username), timeout=30)
        assert response.status_code == 200, response.text
        return [item["code"] for item in response.json()["items"]]

    assert found(f"receptionist@{COMMUNE}") == [code]
    assert found(f"leader@{PROVINCE}") == [code]
    assert found(f"receptionist@{OTHER_COMMUNE}") == []
    assert found(f"specialist@{PROVINCE}") == []
    [entry] = audit_entries(platform, username=f"receptionist@{OTHER_COMMUNE}", action="dossier.search")[-1:]
    assert entry.outcome == "allowed"  # a search is a read of personal data: audited even when empty


def test_another_agencys_task_by_id_is_refused_and_audited(platform):
    """A real task of the land office, asked for by another commune's specialist: workflow refuses it."""
    api = Api(platform.url)
    code = api.submit()["code"]
    api.receive(code)
    task = api.open_task(code, LAND_OFFICE, "specialist")  # 1.012786 starts at the land office
    outsider = f"specialist@{OTHER_COMMUNE}"
    read = api.call("GET", f"/api/v1/tasks/{task['id']}", user=outsider)
    assert (read.status_code, read.json()["error"]["code"]) == (403, "forbidden")
    for attempt in ("complete", "claim"):
        response = api.call("POST", f"/api/v1/tasks/{task['id']}/{attempt}", user=outsider,
                            json={"outcome": "approve", "note": "x"})
        assert (response.status_code, response.json()["error"]["code"]) == (403, "forbidden")
    at_the_edge = audit_entries(platform, username=outsider, task_id=str(task["id"]), source="gateway")
    assert {(e.action, e.outcome) for e in at_the_edge} == {
        ("task.read", "denied"), ("task.approve", "denied"), ("task.claim", "denied")}
    by_workflow = wait_for_audit(platform, username=outsider, task_id=str(task["id"]), source="workflow")
    assert all(e.outcome == "denied" for e in by_workflow)
    # the task is untouched: still open, unclaimed, in the land office's inbox
    assert api.open_task(code, LAND_OFFICE, "specialist")["assignee"] is None
