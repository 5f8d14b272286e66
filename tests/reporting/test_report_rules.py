"""The report's rules as a legal officer checks them (issue 13, section 4; docs/rules.md "The report and
the catalogue"): a stopped dossier closes in the period it stopped; percentages round half up to two
decimals; "Đang giải quyết" in the exports is everything unresolved, paused ones also shown apart; the
II.06a XLSX laid out as the official form."""
import csv
import io
import re
from datetime import date

import pytest
from openpyxl import load_workbook

from services.reporting import aggregates, exports, projections, timeliness
from tests.reporting.factory import AGENCY_NAMES, JUSTICE, VN, lifecycle, memory_database, vn

NOW = vn(2026, 6, 1, 10)
MARCH, APRIL, MAY = ((date(2026, m, 1), date(2026, m, d)) for m, d in ((3, 31), (4, 30), (5, 31)))


@pytest.fixture()
def stopped_in_april():
    """S-1 received in March, stopped on 10 April (status 8); O-1 received in March, still open."""
    uow = memory_database()()
    for evt in (lifecycle("S-1", submitted=vn(2026, 3, 2, 8), received=vn(2026, 3, 2, 9), due=vn(2026, 5, 29, 17),
                          stopped=vn(2026, 4, 10, 15))
                + lifecycle("O-1", submitted=vn(2026, 3, 3, 8), received=vn(2026, 3, 3, 9), due=vn(2026, 5, 29, 17))):
        projections.record(uow, [evt], VN)
    return uow.session


def both(session, period) -> list[dict]:
    """The report by the plain GROUP BY and by the pre-aggregated counters: they must agree."""
    args = (session, *period, VN, AGENCY_NAMES, NOW)
    return [timeliness.report(*args)["totals"], aggregates.report(*args)["totals"]]


def test_a_stopped_dossier_is_closed_in_the_period_it_stopped_and_never_carried_over(stopped_in_april):
    march, april, may = (both(stopped_in_april, period) for period in (MARCH, APRIL, MAY))
    for totals in march:  # before its stop it was being handled
        assert (totals["stopped"], totals["in_progress"]["total"]) == (0, 2)
    for totals in april:  # carried over from March, closed in April: out of "in progress", counted as stopped
        assert totals["received"]["carried_over"] == 2
        assert (totals["stopped"], totals["in_progress"]["total"], totals["paused"]["total"]) == (1, 1, 0)
    for totals in may:  # gone: only the open one is carried over into May
        assert (totals["received"]["carried_over"], totals["stopped"], totals["in_progress"]["total"]) == (1, 0, 1)
    listed = timeliness.drill_down(stopped_in_april, *APRIL, VN, AGENCY_NAMES, NOW, "stopped")
    assert [d["code"] for d in listed["dossiers"]] == ["S-1"] and listed["dossiers"][0]["status_code"] == 8


@pytest.mark.parametrize(("part", "total", "expected"), [
    (1, 32, 3.13),     # 3.125: half up (Python's round gives 3.12)
    (5, 800, 0.63),    # 0.625 → 0.63 (round: 0.62)
    (1, 8, 12.5), (2, 3, 66.67), (1, 3, 33.33), (1032, 1057, 97.63), (0, 5, 0.0), (3, 0, 0.0), (7, 7, 100.0),
])
def test_percentages_round_half_up_to_two_decimals(part, total, expected):
    assert timeliness.percent(part, total) == expected


def test_the_report_shares_use_that_rounding():
    uow = memory_database()()
    for n in range(32):  # 32 received online in March, one of them early, the others on time
        received = vn(2026, 3, 2, 9)
        due = vn(2026, 3, 20, 17)
        finished = vn(2026, 3, 10, 9) if n == 0 else vn(2026, 3, 20, 9)
        for evt in lifecycle(f"R-{n:02d}", submitted=received, received=received, due=due, finished=finished):
            projections.record(uow, [evt], VN)
    for totals in both(uow.session, MARCH):
        assert totals["resolved"]["early_pct"] == 3.13 and totals["resolved"]["on_time_pct"] == 96.88


def test_being_handled_in_the_exports_includes_the_paused_ones_also_shown_apart():
    uow = memory_database()()
    for evt in (lifecycle("P-1", submitted=vn(2026, 3, 2, 8), received=vn(2026, 3, 2, 9), due=vn(2026, 3, 30, 17),
                          supplement=(vn(2026, 3, 3, 10), None, None))
                + lifecycle("O-1", submitted=vn(2026, 3, 3, 8), received=vn(2026, 3, 3, 9), due=vn(2026, 3, 30, 17))):
        projections.record(uow, [evt], VN)
    report = timeliness.report(uow.session, *MARCH, VN, AGENCY_NAMES, vn(2026, 3, 10, 10))
    header, *_, totals = list(csv.reader(io.StringIO(exports.to_csv(report))))
    value = dict(zip(header, totals))
    assert value["Số hồ sơ đang giải quyết: tổng số"] == "2"
    assert value["Số hồ sơ đang giải quyết: trong hạn"] == "1"
    assert value["Số hồ sơ đang giải quyết: trong đó tạm dừng: chờ bổ sung"] == "1"


def test_the_xlsx_is_laid_out_as_form_ii_06a(stopped_in_april):
    report = timeliness.report(stopped_in_april, *APRIL, VN, AGENCY_NAMES, NOW)
    sheet = load_workbook(io.BytesIO(exports.to_xlsx(report, "Sở Tư pháp", date(2026, 6, 1)))).active
    rows = [list(row) for row in sheet.iter_rows(values_only=True)]
    text = [str(v) for row in rows for v in row if v is not None]
    assert rows[0][0] == "Đơn vị báo cáo: Sở Tư pháp" and "Mẫu II.06a/VPCP/KSTT" in text
    assert "TÌNH HÌNH, KẾT QUẢ GIẢI QUYẾT THỦ TỤC HÀNH CHÍNH" in text
    assert "Kỳ báo cáo: từ ngày 01/04/2026 đến ngày 30/04/2026" in text
    top, sub, numbers = rows[6], rows[7], rows[8]
    assert top[:4] == ["STT", "Mã cơ quan", "Cơ quan", "Số hồ sơ nhận giải quyết"]
    groups = [v for v in top[3:] if v]  # the first level, each merged over its columns
    assert groups == ["Số hồ sơ nhận giải quyết", "Số hồ sơ đã giải quyết", "Số hồ sơ đang giải quyết",
                      "Số hồ sơ rút, dừng giải quyết"]
    assert len(sheet.merged_cells.ranges) >= 4 + 3
    assert sub[3] == "Tổng số" and "Trước hạn" in sub and "Dừng giải quyết" in sub
    assert numbers == [f"({n})" for n in range(1, len(numbers) + 1)]
    assert rows[9][:3] == [1, JUSTICE, AGENCY_NAMES[JUSTICE]] and rows[10][2] == "Tổng cộng"
    stopped_column = sub.index("Dừng giải quyết")
    assert rows[9][stopped_column] == 1
    assert any(re.fullmatch(r"……, ngày 01 tháng 06 năm 2026", v) for v in text)
    assert {"NGƯỜI LẬP BIỂU", "THỦ TRƯỞNG CƠ QUAN, ĐƠN VỊ", "(Ký, ghi rõ họ tên, đóng dấu)"} <= set(text)
    assert not [v for v in text if re.search(r"\d{4}-\d{2}-\d{2}", v)]  # no raw ISO date or timestamp
