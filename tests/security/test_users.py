"""Quản lý tài khoản: agency admins manage their agency's and sub-agencies' accounts only; only the
platform admin grants admin; errors name the field; every change ends the account's tokens; audited."""
from __future__ import annotations

import time

import requests
from sqlalchemy import create_engine, text

from motcua.idempotency import fingerprint

from tests.security.conftest import (
    COMMUNE,
    DEPARTMENT,
    LAND_OFFICE,
    OTHER_COMMUNE,
    audit_entries,
    bearer,
    login,
    signed_in,
)


def users(api, method, path="", headers=None, **kwargs):
    return requests.request(method, f"{api.url}/api/v1/users{path}", headers=headers, timeout=30, **kwargs)


def new_user(username, agency, roles, password="mat-khau-dai-1"):
    return {"username": username, "password": password, "agency_code": agency, "roles": roles}


def test_an_agency_admin_creates_accounts_in_its_agency_and_sub_agencies_only(api):
    admin = signed_in(api, f"agency_admin@{DEPARTMENT}")
    created = users(api, "POST", headers=admin, json=new_user("cv.nguyen@land", LAND_OFFICE, ["specialist"]))
    assert created.status_code == 201, created.text
    assert created.json() == {"username": "cv.nguyen@land", "agency_code": LAND_OFFICE, "roles": ["specialist"],
                              "active": True, "full_name": None, "title": None,
                              "created_at": created.json()["created_at"]}
    assert "password" not in created.text and "argon2" not in created.text
    assert login(api, "cv.nguyen@land", "mat-khau-dai-1").status_code == 200
    refused = users(api, "POST", headers=admin, json=new_user("cv.other@commune", COMMUNE, ["specialist"]))
    assert refused.status_code == 403 and refused.json()["error"]["field"] == "agency_code"
    [entry] = audit_entries(api, action="user.create", outcome="denied")[-1:]
    assert entry.username == f"agency_admin@{DEPARTMENT}" and "cv.other@commune" in entry.detail
    assert audit_entries(api, action="user.create", outcome="allowed")[-1].detail == "user cv.nguyen@land"


def test_only_the_platform_admin_grants_admin(api):
    agency_admin = signed_in(api, f"agency_admin@{COMMUNE}")
    response = users(api, "POST", headers=agency_admin, json=new_user("boss@commune", COMMUNE, ["admin"]))
    assert response.status_code == 403 and response.json()["error"]["field"] == "roles"
    response = users(api, "PATCH", f"/receptionist@{COMMUNE}", headers=agency_admin, json={"roles": ["admin"]})
    assert response.status_code == 403 and response.json()["error"]["field"] == "roles"
    platform_admin = signed_in(api, "admin")
    response = users(api, "POST", headers=platform_admin, json=new_user("ops.admin", None, ["admin"]))
    assert response.status_code == 201 and response.json()["roles"] == ["admin"]
    # and an agency admin cannot touch an admin's account
    assert users(api, "PATCH", "/ops.admin", headers=agency_admin, json={"active": False}).status_code == 403


def test_validation_errors_name_the_field(api):
    admin = signed_in(api, "admin")
    cases = [
        ({**new_user("x1@c", COMMUNE, ["specialist"]), "password": "short"}, "password", 400),
        (new_user("x2@c", COMMUNE, ["wizard"]), "roles.0", 400),
        (new_user("x3@c", COMMUNE, []), "roles", 400),
        (new_user("x4@c", "999.99.99.H56", ["specialist"]), "agency_code", 400),
        (new_user("x5@c", None, ["specialist"]), "agency_code", 400),
        (new_user("bad name", COMMUNE, ["specialist"]), "username", 400),
        # longer than the services record who acted in (intake's history, workflow's tasks)
        (new_user("a" * 121, COMMUNE, ["specialist"]), "username", 400),
        ({**new_user("x6@c", COMMUNE, ["leader"]), "extra": 1}, "extra", 400),
        (new_user(f"leader@{COMMUNE}", COMMUNE, ["leader"]), "username", 409),  # taken
    ]
    for body, field, status in cases:
        response = users(api, "POST", headers=admin, json=body)
        assert response.status_code == status, (body, response.text)
        assert response.json()["error"]["field"] == field, (body, response.text)
    response = users(api, "PATCH", f"/specialist@{COMMUNE}", headers=admin, json={"active": "maybe"})
    assert response.status_code == 400 and response.json()["error"]["field"] == "active"
    assert users(api, "PATCH", "/nobody", headers=admin, json={"active": False}).status_code == 404


def test_staff_without_the_admin_role_manage_nobody(api):
    leader = signed_in(api, f"leader@{COMMUNE}")
    assert users(api, "GET", headers=leader).status_code == 403
    assert users(api, "POST", headers=leader, json=new_user("y@c", COMMUNE, ["specialist"])).status_code == 403
    assert users(api, "PATCH", f"/specialist@{COMMUNE}", headers=leader, json={"active": False}).status_code == 403


def test_the_list_is_scoped_to_what_the_admin_manages(api):
    listed = users(api, "GET", headers=signed_in(api, f"agency_admin@{DEPARTMENT}")).json()
    agencies = {u["agency_code"] for u in listed}
    assert agencies == {DEPARTMENT, LAND_OFFICE}
    everyone = users(api, "GET", headers=signed_in(api, "admin")).json()
    assert len(everyone) > len(listed) and any(u["username"] == "admin" for u in everyone)
    one = users(api, "GET", "?agency=" + OTHER_COMMUNE, headers=signed_in(api, "admin")).json()
    assert {u["agency_code"] for u in one} == {OTHER_COMMUNE}


def test_deactivation_role_change_and_password_reset_end_current_tokens(api):
    admin = signed_in(api, f"agency_admin@{OTHER_COMMUNE}")
    assert users(api, "POST", headers=admin, json=new_user("tmp@oc", OTHER_COMMUNE, ["specialist"])).status_code == 201
    api.reporting.timeliness_report.return_value = {"rows": [], "totals": {}}
    report = f"{api.url}/api/v1/reports/timeliness?from=2026-12-01&to=2026-12-01"

    def session_of(password):
        response = login(api, "tmp@oc", password)
        assert response.status_code == 200, response.text
        return bearer(response.json()["access_token"])

    session = session_of("mat-khau-dai-1")
    assert requests.get(report, headers=session, timeout=10).status_code == 200
    time.sleep(1.1)  # tokens carry whole seconds: one from the same second as a change is refused too
    changed = users(api, "PATCH", "/tmp@oc", headers=admin, json={"roles": ["specialist", "leader"]})
    assert changed.status_code == 200 and changed.json()["roles"] == ["leader", "specialist"]
    assert requests.get(report, headers=session, timeout=10).status_code == 401
    # password reset: the new password works, the old one does not
    assert users(api, "PATCH", "/tmp@oc", headers=admin, json={"password": "mat-khau-moi-2"}).status_code == 200
    assert login(api, "tmp@oc", "mat-khau-dai-1").status_code == 401
    time.sleep(1.1)
    session = session_of("mat-khau-moi-2")
    assert requests.get(report, headers=session, timeout=10).status_code == 200
    assert users(api, "PATCH", "/tmp@oc", headers=admin, json={"active": False}).status_code == 200
    assert requests.get(report, headers=session, timeout=10).status_code == 401
    assert login(api, "tmp@oc", "mat-khau-moi-2").status_code == 401
    actions = [e.action for e in audit_entries(api, username=f"agency_admin@{OTHER_COMMUNE}", outcome="allowed")]
    assert {"user.create", "user.update:roles", "user.update:password", "user.update:active"} <= set(actions)


def test_an_officers_full_name_and_title_change_without_ending_their_tokens(api):
    """What the forms print (Circular 03/2025: officers by full name and title), not who may do what."""
    admin = signed_in(api, f"agency_admin@{OTHER_COMMUNE}")
    body = {**new_user("hoa.le@oc", OTHER_COMMUNE, ["receptionist"]), "full_name": "Lê Thị Hoa", "title": "Công chức"}
    created = users(api, "POST", headers=admin, json=body)
    assert created.status_code == 201 and (created.json()["full_name"], created.json()["title"]) == ("Lê Thị Hoa", "Công chức")
    token = login(api, "hoa.le@oc", "mat-khau-dai-1").json()["access_token"]
    time.sleep(1.1)  # a revocation would refuse tokens of the second of the change and before
    renamed = users(api, "PATCH", "/hoa.le@oc", headers=admin, json={"title": "Công chức Bộ phận Một cửa"})
    assert renamed.status_code == 200 and renamed.json()["title"] == "Công chức Bộ phận Một cửa"
    assert users(api, "GET", headers=bearer(token)).status_code != 401  # the token still holds
    for field, value in (("full_name", ""), ("title", "x" * 201)):
        refused = users(api, "PATCH", "/hoa.le@oc", headers=admin, json={field: value})
        assert (refused.status_code, refused.json()["error"]["field"]) == (400, field)


def test_an_admin_cannot_lock_themselves_out(api):
    admin = signed_in(api, f"agency_admin@{COMMUNE}")
    response = users(api, "PATCH", f"/agency_admin@{COMMUNE}", headers=admin, json={"active": False})
    assert response.status_code == 403 and response.json()["error"]["field"] == "username"


def test_a_repeated_account_command_answers_the_first_result_and_keeps_no_password_digest(api):
    """A creation whose answer was lost, repeated under its Idempotency-Key: 201 with the same body, not
    409 "username taken"; another account under the same key is refused naming the header."""
    admin = signed_in(api, f"agency_admin@{DEPARTMENT}")
    once = {**admin, "Idempotency-Key": "create-cv-tran"}
    body = new_user("cv.tran@land", LAND_OFFICE, ["specialist"])
    first = users(api, "POST", headers=once, json=body)
    again = users(api, "POST", headers=once, json=body)
    assert first.status_code == again.status_code == 201 and first.json() == again.json()
    assert again.headers["Idempotency-Key"] == "create-cv-tran"
    other = users(api, "POST", headers=once, json=new_user("cv.le@land", LAND_OFFICE, ["specialist"]))
    assert other.status_code == 409 and other.json()["error"]["field"] == "Idempotency-Key"
    change = {**admin, "Idempotency-Key": "deactivate-cv-tran"}
    for _ in range(2):
        changed = users(api, "PATCH", "/cv.tran@land", headers=change, json={"active": False})
        assert changed.status_code == 200 and changed.json()["active"] is False
    assert len(audit_entries(api, action="user.create", outcome="allowed")) >= 2  # each attempt is audited
    engine = create_engine(api.db_url)
    with engine.connect() as connection:
        stored = connection.execute(text("SELECT fingerprint FROM command_results WHERE key = :key"),
                                    {"key": "create-cv-tran"}).scalar()
    engine.dispose()
    without_password = {**{k: v for k, v in body.items() if k != "password"}, "active": True,  # as validated
                        "full_name": None, "title": None}
    assert stored == fingerprint(["gateway.create_user", [without_password]])
