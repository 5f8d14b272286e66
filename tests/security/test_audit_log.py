"""Nhật ký: the platform admin queries the audit log (filters, pages); anyone else gets 403, audited."""
from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

import requests

from tests.security.conftest import COMMUNE, audit_entries, signed_in

DOSSIER = f"{COMMUNE}-261201-0042"


def audit(api, headers, **params):
    return requests.get(f"{api.url}/api/v1/audit", params=params, headers=headers, timeout=30)


def test_only_the_platform_admin_reads_the_audit_log(api):
    for user in (f"leader@{COMMUNE}", f"agency_admin@{COMMUNE}"):
        response = audit(api, signed_in(api, user))
        assert response.status_code == 403 and response.json()["error"]["code"] == "forbidden"
        assert audit_entries(api, username=user, action="audit.read")[-1].outcome == "denied"
    assert requests.get(f"{api.url}/api/v1/audit", timeout=10).status_code == 401


def test_the_audit_log_is_filtered_and_paginated(api):
    officer = signed_in(api, f"specialist@{COMMUNE}")
    api.intake.get_dossier.return_value = {"code": DOSSIER}
    for _ in range(3):
        assert requests.get(f"{api.url}/api/v1/dossiers/{DOSSIER}", headers=officer, timeout=10).status_code == 200
    admin = signed_in(api, "admin")
    page = audit(api, admin, dossier_code=DOSSIER, page_size=2).json()
    assert page["total"] == 3 and page["page"] == 1 and len(page["items"]) == 2
    item = page["items"][0]
    assert {k: item[k] for k in ("username", "agency_code", "action", "outcome", "source", "dossier_code",
                                 "remote_addr")} == {
        "username": f"specialist@{COMMUNE}", "agency_code": COMMUNE, "action": "dossier.read", "outcome": "allowed",
        "source": "gateway", "dossier_code": DOSSIER, "remote_addr": "127.0.0.1"}
    assert item["at"].endswith("+07:00")
    second = audit(api, admin, dossier_code=DOSSIER, page_size=2, page=2).json()
    assert len(second["items"]) == 1 and second["items"][0]["id"] < item["id"]
    today = datetime.now(ZoneInfo("Asia/Ho_Chi_Minh")).date().isoformat()  # the province's day
    assert audit(api, admin, username=f"specialist@{COMMUNE}", action="dossier.read", **{"from": today, "to": today}
                 ).json()["total"] >= 3
    assert audit(api, admin, action="auth.token", outcome="allowed").json()["total"] >= 2
    assert audit(api, admin, dossier_code=DOSSIER, **{"from": "2020-01-01", "to": "2020-01-02"}).json()["total"] == 0


def test_bad_audit_queries_name_the_field(api):
    admin = signed_in(api, "admin")
    for params, field in (({"page": "0"}, "page"), ({"from": "yesterday"}, "from"), ({"outcome": "maybe"}, "outcome"),
                          ({"from": "2026-12-02", "to": "2026-12-01"}, "from"), ({"colour": "red"}, "colour"),
                          ({"page_size": "100000"}, "page_size")):
        response = audit(api, admin, **params)
        assert response.status_code == 400 and response.json()["error"]["field"] == field, params
