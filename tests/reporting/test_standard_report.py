"""The standard report at full depth: every figure equals the length of its drill-down list, per
agency, per field, rolled up the agency tree; the paused group; withdrawals; CSV and XLSX exports."""
import base64
import csv
import io
import random
from datetime import date

import pytest
from openpyxl import load_workbook
from pypdf import PdfReader

from motcua.errors import ValidationFailed
from services.reporting import exports, projections, timeliness
from tests.reporting.factory import AGENCY_NAMES, JUSTICE, LAND_OFFICE, VN, lifecycle, memory_database, random_lives, vn

PROVINCE, LAND_DEPT = "000.00.00.H56", "000.00.12.H56"
NAMES = {**AGENCY_NAMES, PROVINCE: "Ủy ban nhân dân tỉnh", LAND_DEPT: "Sở Nông nghiệp và Môi trường"}
PARENTS = {PROVINCE: None, JUSTICE: PROVINCE, LAND_DEPT: PROVINCE, LAND_OFFICE: LAND_DEPT}
NOW = vn(2026, 4, 20, 10)


@pytest.fixture(scope="module")
def mixed():
    uow = memory_database()()
    for life in random_lives(random.Random(11), 160, vn(2026, 1, 5, 8), 100, agencies=(JUSTICE, LAND_OFFICE)):
        for evt in life:
            projections.record(uow, [evt], VN)
    return uow.session


def figure(row: dict, cell: str) -> int:
    group, _, part = cell.partition(".")
    return row[group] if not part else row[group][part]


@pytest.mark.parametrize("period", [(date(2026, 2, 1), date(2026, 2, 28)), (date(2026, 3, 10), date(2026, 4, 30)),
                                    (date(2026, 1, 20), date(2026, 1, 20))])
def test_every_figure_equals_the_length_of_its_list(mixed, period):
    args = (mixed, *period, VN, NAMES, NOW)
    checked = 0
    for by in ("agency", "field"):
        result = timeliness.report(*args, by=by, parents=PARENTS)
        groups = [(row[f"{by}_code"], row, False) for row in result["rows"]] + [(None, result["totals"], False)]
        groups += [(row["agency_code"], row, True) for row in result.get("rollup", [])]
        for key, row, rollup in groups:
            for cell in timeliness.CELLS:
                listed = timeliness.drill_down(*args, cell, by=by, key=key, rollup=rollup, parents=PARENTS)
                assert listed["count"] == len(listed["dossiers"]) == figure(row, cell), (by, key, rollup, cell)
                checked += figure(row, cell)
            assert figure(row, "received.total") == figure(row, "resolved.total") + row["withdrawn"] \
                + row["stopped"] + figure(row, "paused.total") + figure(row, "in_progress.total")
    assert checked > 0


def test_the_mix_has_something_in_every_group(mixed):
    totals = timeliness.report(mixed, date(2026, 2, 1), date(2026, 3, 31), VN, NAMES, NOW)["totals"]
    missing = [cell for cell in ("received.online", "received.counter", "received.postal", "received.carried_over",
                 "resolved.early", "resolved.late", "withdrawn", "stopped", "paused.supplement",
                 "in_progress.overdue")
               if figure(totals, cell) == 0]
    assert not missing


def test_the_rollup_adds_each_agency_to_its_parents(mixed):
    result = timeliness.report(mixed, date(2026, 1, 1), date(2026, 4, 30), VN, NAMES, NOW, parents=PARENTS)
    rolled = {row["agency_code"]: row for row in result["rollup"]}
    own = {row["agency_code"]: row for row in result["rows"]}
    assert [(row["agency_code"], row["depth"]) for row in result["rollup"]] == [
        (PROVINCE, 0), (JUSTICE, 1), (LAND_DEPT, 1), (LAND_OFFICE, 2)]
    assert rolled[LAND_DEPT]["received"] == own[LAND_OFFICE]["received"]  # the department has none of its own
    assert rolled[PROVINCE]["resolved"] == result["totals"]["resolved"]
    only = timeliness.report(mixed, date(2026, 1, 1), date(2026, 4, 30), VN, NAMES, NOW, agency=LAND_DEPT,
                             parents=PARENTS)
    assert [row["agency_code"] for row in only["rows"]] == [LAND_DEPT, LAND_OFFICE]
    assert only["totals"]["received"] == own[LAND_OFFICE]["received"]
    assert [row["agency_code"] for row in only["rollup"]] == [LAND_DEPT, LAND_OFFICE]


def test_a_paused_dossier_and_a_withdrawn_one_by_hand():
    uow = memory_database()()
    for evt in (lifecycle("P-1", submitted=vn(2026, 3, 2, 8), received=vn(2026, 3, 2, 9), due=vn(2026, 3, 5, 17),
                          supplement=(vn(2026, 3, 3, 10), None, None))
                + lifecycle("P-2", submitted=vn(2026, 3, 2, 8), received=vn(2026, 3, 2, 9), due=vn(2026, 3, 5, 17),
                            supplement=(vn(2026, 3, 3, 10), None, None), withdrawn=vn(2026, 3, 20, 9))
                + lifecycle("P-3", submitted=vn(2026, 3, 2, 8), received=vn(2026, 3, 2, 9), due=vn(2026, 3, 5, 17),
                            supplement=(vn(2026, 4, 3, 10), None, None))):
        projections.record(uow, [evt], VN)
    march = timeliness.report(uow.session, date(2026, 3, 1), date(2026, 3, 31), VN, NAMES, NOW)["totals"]
    assert march["paused"] == {"total": 1, "supplement": 1, "awaiting_payment": 0}
    assert march["withdrawn"] == 1
    assert march["in_progress"]["overdue"] == 1  # P-3 was paused only in April
    early_march = timeliness.report(uow.session, date(2026, 3, 1), date(2026, 3, 10), VN, NAMES, NOW)["totals"]
    assert early_march["withdrawn"] == 0 and early_march["paused"]["total"] == 2


def test_bad_drill_down_inputs_name_their_field(mixed):
    with pytest.raises(ValidationFailed) as error:
        timeliness.drill_down(mixed, date(2026, 3, 1), date(2026, 3, 31), VN, NAMES, NOW, "received.nope")
    assert error.value.field == "cell"
    with pytest.raises(ValidationFailed) as error:
        timeliness.report(mixed, date(2026, 3, 1), date(2026, 3, 31), VN, NAMES, NOW, by="procedure")
    assert error.value.field == "by"


def test_csv_and_xlsx_exports_carry_the_figures_under_vietnamese_headers(mixed):
    result = timeliness.report(mixed, date(2026, 2, 1), date(2026, 3, 31), VN, NAMES, NOW, parents=PARENTS)
    lines = list(csv.reader(io.StringIO(exports.to_csv(result))))
    assert lines[0][:3] == ["Mã cơ quan", "Cơ quan", "Số hồ sơ nhận giải quyết: tổng số"]
    assert "Số hồ sơ đã giải quyết: trước hạn" in lines[0]
    assert "Số hồ sơ đang giải quyết: trong đó tạm dừng: chờ bổ sung" in lines[0]
    assert len(lines) == 1 + len(result["rows"]) + 1
    early = lines[0].index("Số hồ sơ đã giải quyết: trước hạn")
    assert [int(line[early]) for line in lines[1:]] == [row["resolved"]["early"] for row in result["rows"]] \
        + [result["totals"]["resolved"]["early"]]
    assert lines[-1][1] == "Tổng cộng"

    made = exports.to_xlsx(result, NAMES[PROVINCE], date(2026, 4, 20))
    sheet = load_workbook(io.BytesIO(made), read_only=True).active
    cells = [list(row) for row in sheet.iter_rows(values_only=True)]
    table = cells[9:9 + len(lines) - 1]  # under the title, the period, the two-level header and the numbers
    assert [[_value(v) for v in row[1:]] for row in table] == [[_value(v) for v in line] for line in lines[1:]]
    assert [row[0] for row in table] == [*range(1, len(result["rows"]) + 1), None]  # numbered, totals not


def test_the_pdf_export_is_the_form_with_its_figures(mixed):
    result = timeliness.report(mixed, date(2026, 2, 1), date(2026, 3, 31), VN, NAMES, NOW, parents=PARENTS)
    made = exports.as_file(result, "pdf", NAMES[PROVINCE], date(2026, 4, 20))
    assert made["content_type"] == "application/pdf" and made["filename"] == "II.06a_agency_2026-02-01_2026-03-31.pdf"
    text = " ".join(" ".join(page.extract_text().split())
                    for page in PdfReader(io.BytesIO(base64.b64decode(made["content_base64"]))).pages)
    for expected in (exports.TITLE, exports.FORM, f"Đơn vị báo cáo: {NAMES[PROVINCE]}",
                     "Kỳ báo cáo: từ ngày 01/02/2026 đến ngày 31/03/2026", "Trong đó tạm dừng: chờ bổ sung",
                     "ngày 20 tháng 04 năm 2026", "THỦ TRƯỞNG CƠ QUAN, ĐƠN VỊ", "Tổng cộng"):
        assert expected in text, expected
    for row in result["rows"]:
        assert row["agency_code"] in text
    totals = exports._figures(result["totals"])
    assert " ".join(str(figure) for figure in totals[:4]) in text  # the totals' line, in the form's order


def _value(v):
    """A cell as a number where it is one (CSV has only text, XLSX keeps 50.0 as 50), else as text."""
    try:
        return float(v)
    except (TypeError, ValueError):
        return "" if v is None else v
