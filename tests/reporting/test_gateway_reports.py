"""The report routes over real HTTP: the gateway container in front of the reporting service's real
entrypoints (worker_factory on a reporting database), the other services mocked."""
import csv
import io
import random

import pytest
import requests
from nameko.testing.services import worker_factory
from openpyxl import load_workbook
from sqlalchemy import select

from motcua.errors import Forbidden, Unauthorized
from services.gateway.pages_http import SESSION_COOKIE
from services.reporting import projections
from services.reporting.dependencies import ProvinceData
from services.reporting.models import Base
from services.reporting.service import ReportingService
from tests.gateway.conftest import api, gateway  # noqa: F401 (fixtures)
from tests.gateway.test_http import bearer, token
from tests.reporting.factory import JUSTICE, LAND_OFFICE, TRACKING_KEY, VN, memory_database, random_lives, vn
from tests.reporting.test_standard_report import NAMES, PARENTS, PROVINCE
from motcua.keys import new_token_pair
from motcua.revocation import AccessCache
from tests.infra import VERIFYING
from tests.security.conftest import token_for

RPCS = ("timeliness_report", "report_drill_down", "report_export", "leaders_dashboard", "leaders_period", "daily_series",
        "public_statistics")


@pytest.fixture
def reporting(api):  # noqa: F811
    uow = memory_database()()
    for life in random_lives(random.Random(5), 60, vn(2026, 1, 5, 8), 80):
        for evt in life:
            projections.record(uow, [evt], VN)
    service = worker_factory(ReportingService, revocations=AccessCache(5),
                             db=uow, province=ProvinceData(VN, NAMES, PARENTS),
                             config={"TRACKING_KEY": TRACKING_KEY, **VERIFYING})  # the gateway's tokens verify
    for name in RPCS:
        getattr(api.reporting, name).side_effect = getattr(service, name)
    api.reporting_db = uow
    return api


def leader(api, agency=JUSTICE):  # noqa: F811
    return bearer(token(api, f"leader@{agency}", agency, "leader"))


def receptionist(api, agency):  # noqa: F811
    return bearer(token(api, f"receptionist@{agency}", agency, "receptionist"))


def get(api, path, **kwargs):  # noqa: F811
    return requests.get(f"{api.url}{path}", timeout=10, **kwargs)


def test_the_report_and_the_list_behind_a_figure(reporting):
    path = "/api/v1/reports/standard?from=2026-02-01&to=2026-03-31"
    assert get(reporting, path).status_code == 401
    report = get(reporting, path, headers=leader(reporting)).json()
    assert [row["agency_code"] for row in report["rollup"]] == [PROVINCE, JUSTICE, "000.00.12.H56", LAND_OFFICE]
    late = report["rows"][0]["resolved"]["late"]
    listed = get(reporting, f"/api/v1/reports/standard/dossiers?from=2026-02-01&to=2026-03-31&cell=resolved.late"
                            f"&key={JUSTICE}", headers=leader(reporting)).json()
    assert listed["count"] == len(listed["dossiers"]) == late > 0
    assert {d["timeliness"] for d in listed["dossiers"]} == {"late"}
    rolled = get(reporting, f"/api/v1/reports/standard/dossiers?from=2026-02-01&to=2026-03-31&cell=received.total"
                            f"&key={PROVINCE}&rollup=true", headers=leader(reporting, PROVINCE)).json()
    assert rolled["count"] == report["rollup"][0]["received"]["total"] == report["totals"]["received"]["total"]
    by_field = get(reporting, path + "&by=field", headers=leader(reporting)).json()
    assert [row["field_code"] for row in by_field["rows"]] == ["HT"]


@pytest.mark.parametrize("query, field", [("from=2026-03-01&to=2026-02-01", "to"), ("to=2026-02-01", "from"),
                                          ("from=2026-03-01&to=2026-03-02&by=street", "by"),
                                          ("from=2026-03-01&to=2026-03-02&agency=999", "agency")])
def test_bad_report_queries_are_400_naming_the_field(reporting, query, field):
    response = get(reporting, f"/api/v1/reports/standard?{query}", headers=leader(reporting))
    assert response.status_code == 400 and response.json()["error"]["field"] == field
    drill = get(reporting, "/api/v1/reports/standard/dossiers?from=2026-03-01&to=2026-03-02&cell=received.x",
                headers=leader(reporting))
    assert drill.status_code == 400 and drill.json()["error"]["field"] == "cell"


def test_exports_download_as_csv_xlsx_and_pdf(reporting):
    base = "/api/v1/reports/standard/export?from=2026-02-01&to=2026-03-31"
    as_csv = get(reporting, base + "&format=csv", headers=leader(reporting))
    assert as_csv.status_code == 200 and as_csv.headers["Content-Type"].startswith("text/csv")
    assert 'filename="II.06a_agency_2026-02-01_2026-03-31.csv"' in as_csv.headers["Content-Disposition"]
    lines = list(csv.reader(io.StringIO(as_csv.content.decode("utf-8-sig"))))
    assert lines[0][0] == "Mã cơ quan" and lines[-1][1] == "Tổng cộng"
    as_xlsx = get(reporting, base + "&format=xlsx&by=field", headers=leader(reporting))
    sheet = load_workbook(io.BytesIO(as_xlsx.content), read_only=True).active
    rows = list(sheet.iter_rows(values_only=True))
    assert rows[0][0].startswith("Đơn vị báo cáo: Ủy ban nhân dân tỉnh")  # the province: no agency asked
    assert rows[6][:3] == ("STT", "Mã lĩnh vực", "Lĩnh vực")
    as_pdf = get(reporting, base + "&format=pdf", headers=leader(reporting))
    assert as_pdf.headers["Content-Type"] == "application/pdf" and as_pdf.content[:5] == b"%PDF-"
    assert get(reporting, base + "&format=ods", headers=leader(reporting)).json()["error"]["field"] == "format"


def test_leaders_series_and_public_statistics(reporting):
    board = get(reporting, "/api/v1/reports/leaders", headers=leader(reporting)).json()
    assert set(board["periods"]) == {"today", "month", "year"}
    series = get(reporting, "/api/v1/reports/daily?from=2026-02-01&to=2026-02-07", headers=leader(reporting)).json()
    assert len(series["days"]) == 7
    public = get(reporting, "/api/v1/public/statistics?from=2026-01-01&to=2026-03-31")  # no token needed
    assert public.status_code == 200
    province = public.json()["agencies"][0]
    assert province["agency_code"] == PROVINCE and province["received"] > 0
    assert "dossiers" not in public.text and "X-0" not in public.text


DRILL_ALL = "/api/v1/reports/standard/dossiers?from=2026-01-01&to=2026-04-30&cell=received.total"


def test_a_drill_down_lists_only_the_dossiers_of_the_callers_agency_scope(reporting):
    """Issue 12: another agency's receptionist saw every dossier code of the first in a drill-down."""
    every = get(reporting, DRILL_ALL, headers=leader(reporting, PROVINCE)).json()  # the province's leader: all
    assert {d["agency_code"] for d in every["dossiers"]} == {JUSTICE, LAND_OFFICE}
    justice = {d["code"] for d in every["dossiers"] if d["agency_code"] == JUSTICE}

    outsider = get(reporting, DRILL_ALL + f"&key={JUSTICE}", headers=receptionist(reporting, LAND_OFFICE)).json()
    assert (outsider["count"], outsider["dossiers"]) == (0, [])  # the figure's codes are not theirs to see
    everything = get(reporting, DRILL_ALL, headers=receptionist(reporting, LAND_OFFICE)).json()
    assert {d["agency_code"] for d in everything["dossiers"]} == {LAND_OFFICE}
    assert not justice & {d["code"] for d in everything["dossiers"]}
    rolled = get(reporting, DRILL_ALL + f"&key={PROVINCE}&rollup=true",
                 headers=receptionist(reporting, LAND_OFFICE)).json()
    assert {d["agency_code"] for d in rolled["dossiers"]} == {LAND_OFFICE}

    own = get(reporting, DRILL_ALL + f"&key={JUSTICE}", headers=receptionist(reporting, JUSTICE)).json()
    assert {d["code"] for d in own["dossiers"]} == justice and own["count"] == len(justice)
    # the page of the leaders' dashboard lists the same as the API
    page = requests.get(f"{reporting.url}/lanh-dao/ho-so?from=2026-01-01&to=2026-04-30&cell=received.total"
                        f"&key={JUSTICE}", timeout=10, allow_redirects=False,
                        cookies={SESSION_COOKIE: token(reporting, f"receptionist@{LAND_OFFICE}", LAND_OFFICE,
                                                          "receptionist")})
    assert page.status_code == 200 and not any(code in page.text for code in justice)


def test_reports_refuse_a_direct_call_without_a_staff_token(reporting):
    """Past the gateway, reporting itself checks its caller: no token, a citizen's, a forged one."""
    rpc = reporting.reporting.report_drill_down.side_effect
    with pytest.raises(Unauthorized):
        rpc("2026-01-01", "2026-04-30", "received.total", caller_token=None)
    with pytest.raises(Unauthorized):
        rpc("2026-01-01", "2026-04-30", "received.total",
            caller_token=token_for(new_token_pair()[0], "admin", None, "admin"))
    with pytest.raises(Forbidden):
        rpc("2026-01-01", "2026-04-30", "received.total",
            caller_token=token(reporting, "citizen", None, "applicant"))
    outbox = Base.metadata.tables["outbox"]
    denied = reporting.reporting_db.session.execute(select(outbox.c.payload).where(
        outbox.c.event_type == "access_denied").order_by(outbox.c.id)).scalars().all()
    assert denied[-1]["data"]["action"] == "reporting.report_drill_down"  # recorded for the audit log
    for name in ("timeliness_report", "leaders_dashboard", "daily_series", "report_export"):
        with pytest.raises(Unauthorized):
            getattr(reporting.reporting, name).side_effect(
                *(("2026-01-01", "2026-04-30") if name != "leaders_dashboard" else ()),
                **({"format": "csv"} if name == "report_export" else {}), caller_token=None)
