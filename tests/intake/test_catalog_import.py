"""`motcua catalog import`: a province's procedure and agency lists as the national procedure database
publishes them (tests/intake/fixtures/*-h57.csv: a title row, the headings, unreadable rows on purpose),
read into a catalogue that loads, and re-imported as new versions."""
import json
from datetime import date
from decimal import Decimal
from pathlib import Path

import openpyxl
import pytest

from motcua.catalog import CatalogError
from motcua.cli import main
from motcua.errors import NotFound
from services.intake import catalog_import as importer
from services.intake.catalog import Catalog, FeeTier

FIXTURES = Path(__file__).parent / "fixtures"
PROCEDURES = FIXTURES / "procedures-h57.csv"
AGENCIES = FIXTURES / "agencies-h57.csv"
JAN, MARCH = date(2026, 1, 1), date(2026, 3, 1)
UNREADABLE = {  # (sheet, row as the spreadsheet numbers it, column)
    ("agencies-h57.csv", 13, "level"),  # "Huyện": no such level since the 2025 reform
    ("procedures-h57.csv", 10, "time"),  # "Theo quy định của pháp luật"
    ("procedures-h57.csv", 11, "fee"),  # a licence fee and an appraisal fee: which one?
    ("procedures-h57.csv", 12, "agency"),  # "Ủy ban nhân dân cấp xã": no commune named
    ("procedures-h57.csv", 13, "time"),  # "03 tháng"
    ("procedures-h57.csv", 13, "online_level"),  # "Mức độ 2"
    ("procedures-h57.csv", 14, "code"),  # "1.26"
}


def _plan(directory, when=JAN, procedures=PROCEDURES, agencies=AGENCIES, province="Tỉnh Bến Thủy"):
    return importer.plan(directory, when, importer.read_sheet(procedures),
                         importer.read_sheet(agencies, columns=importer.AGENCY_COLUMNS) if agencies else None,
                         procedures_sheet=procedures.name, agencies_sheet=agencies.name if agencies else "",
                         province=province)


@pytest.fixture
def province(tmp_path) -> Path:
    directory = tmp_path / "catalog"
    importer.apply(_plan(directory), directory, skip_unreadable=True)
    return directory


def _edited(tmp_path, source: Path, *replacements) -> Path:
    text = source.read_text(encoding="utf-8")
    for old, new in replacements:
        assert old in text
        text = text.replace(old, new)
    target = tmp_path / source.name
    target.write_text(text, encoding="utf-8")
    return target


def test_a_first_import_reads_every_column_and_names_every_row_it_cannot(tmp_path):
    plan = _plan(tmp_path / "catalog")
    assert {(p.sheet, p.row, p.column) for p in plan.problems} == UNREADABLE
    assert [c.code for c in plan.new] == ["1.001193", "1.004873", "2.000635", "2.000815", "1.012786",
                                          "2.001417", "1.001612"]
    assert len(plan.agencies_new) == 10 and not plan.retired and not plan.changed
    # the longer time "when verification is needed" is not dropped silently
    assert [(n.row, n.column) for n in plan.notes] == [(4, "time")]
    assert plan.without_process == sorted(c.code for c in plan.new)


def test_apply_refuses_while_a_row_is_unreadable_and_writes_nothing(tmp_path):
    directory = tmp_path / "catalog"
    with pytest.raises(CatalogError, match="7 unreadable"):
        importer.apply(_plan(directory), directory)
    assert not directory.exists()


def test_the_imported_catalogue_loads_with_the_parsed_terms(province):
    catalog = Catalog.load(province)
    birth = catalog.procedure("1.001193", on=JAN)
    assert (birth.version, birth.processing_days, birth.unit, birth.cutoff.strftime("%H:%M"), birth.fee) == \
        (1, Decimal(0), "working_days", "15:00", 0)
    assert [d["kind"] for d in birth.documents] == ["original", "original"]
    marital = catalog.procedure("1.004873", on=JAN)
    assert [(d["kind"], d["required"]) for d in marital.documents] == [("original", True), ("copy", False)]
    assert catalog.procedure("2.000635", on=JAN).fee_unit == "copy"
    certified = catalog.procedure("2.000815", on=JAN)
    assert (certified.fee_tiers, certified.fee_cap, certified.fee_for(5)) == \
        ((FeeTier(2000, 2), FeeTier(1000)), 200000, 7000)
    land = catalog.procedure("1.012786", on=JAN)
    assert (land.agency_code, land.level, land.terms("counter").fee, land.terms("online").fee) == \
        ("000.12.01.H57", "unit", 100000, 50000)
    record = catalog.procedure("2.001417", on=JAN)
    assert (record.terms("counter").days, record.terms("online").days, record.fee) == (10, 7, 200000)
    residence = catalog.procedure("1.001612", on=JAN)  # 'Cấp Xã' at a ward's police, which serves communes
    assert (residence.agency_code, residence.field_name) == ("000.15.01.H57", "Đăng ký và quản lý cư trú")
    agencies = catalog.agencies
    assert agencies["000.15.01.H57"]["serves"] == ["000.20.01.H57", "000.20.02.H57"]
    assert agencies["000.15.02.H57"]["serves"] == ["000.20.03.H57"]  # named by the commune's name
    assert agencies["000.12.01.H57"]["parent_code"] == "000.00.12.H57"  # the parent named by its name
    assert "000.20.04.H57" not in agencies  # its row is unreadable
    assert (province / "calendar.yaml").exists()


def test_the_same_sheets_again_change_nothing(province):
    plan = _plan(province, when=MARCH)
    assert plan.unchanged and {(p.sheet, p.row, p.column) for p in plan.problems} == UNREADABLE


def test_a_reimport_adds_changes_and_retires_as_versions_from_a_date(province, tmp_path):
    procedures = _edited(
        tmp_path, PROCEDURES,
        ("03 ngày làm việc; trường hợp cần xác minh", "05 ngày làm việc; trường hợp cần xác minh"),
        ("3,2.000635,Thủ tục cấp bản sao Trích lục hộ tịch", "3,2.000636,Thủ tục cấp bản sao Giấy khai sinh"))
    agencies = _edited(tmp_path, AGENCIES, ("Ủy ban nhân dân xã Nghi Phong,000.00.00.H57,Huyện",
                                            "Ủy ban nhân dân xã Nghi Phong,000.00.00.H57,Xã"),
                       ("000.00.15.H57,Công an tỉnh,", "000.00.15.H57,Công an tỉnh Bến Thủy,"))
    plan = _plan(province, when=MARCH, procedures=procedures, agencies=agencies)
    assert [c.code for c in plan.new] == ["2.000636"]
    assert [(c.code, c.fields) for c in plan.changed] == [
        ("1.004873", {"processing_time": ((Decimal(3), "working_days"), (Decimal(5), "working_days"))})]
    assert [c.code for c in plan.retired] == ["2.000635"]
    assert [c.code for c in plan.agencies_new] == ["000.20.04.H57"]
    assert [(c.code, c.fields) for c in plan.agencies_changed] == [
        ("000.00.15.H57", {"name": ("Công an tỉnh", "Công an tỉnh Bến Thủy")})]
    shown = json.loads(json.dumps(plan.view()))  # what the CLI's --json and the console's RPC carry
    assert shown["procedures"]["changed"][0]["fields"] == {
        "processing_time": {"before": [3, "working_days"], "after": [5, "working_days"]}}
    assert shown["procedures"]["retired"] == [{"code": "2.000635", "name": "Thủ tục cấp bản sao Trích lục hộ tịch",
                                               "fields": {}}]
    importer.apply(plan, province, skip_unreadable=True)

    catalog = Catalog.load(province)
    # a dossier received in February keeps version 1 (3 days); one received from March gets version 2
    assert catalog.procedure("1.004873", on=date(2026, 2, 27)).processing_days == 3
    assert catalog.procedure("1.004873", on=MARCH).version == 2
    assert catalog.procedure("1.004873", version=1).processing_days == 3
    assert catalog.procedure("1.004873", version=2).processing_days == 5
    assert catalog.procedure("2.000635", on=date(2026, 2, 27)).version == 1
    with pytest.raises(NotFound, match="not in force"):
        catalog.procedure("2.000635", on=MARCH)
    assert catalog.procedure("2.000635", version=1).fee == 8000  # its dossiers still read their version
    assert "2.000635" not in [p.code for p in catalog.current(MARCH)]
    assert [p.code for p in catalog.search("trich luc", on=MARCH)] == []
    assert catalog.agencies["000.00.15.H57"]["name"] == "Công an tỉnh Bến Thủy"

    # the original sheet brings the retired procedure back as a new version and retires the other
    back = _plan(province, when=date(2026, 4, 1))
    assert [c.code for c in back.changed] == ["1.004873", "2.000635"]
    assert [c.code for c in back.retired] == ["2.000636"]
    # its row unreadable again, the commune is not retired: a row in the sheet is never read as gone
    assert back.agencies_retired == [] and ("agencies-h57.csv", 13, "level") in {
        (p.sheet, p.row, p.column) for p in back.problems}


def test_a_version_cannot_take_effect_before_the_one_in_force(province, tmp_path):
    procedures = _edited(tmp_path, PROCEDURES, ("03 ngày làm việc;", "04 ngày làm việc;"))
    plan = _plan(province, when=date(2025, 12, 1), procedures=procedures, agencies=None)
    assert any(p.column == "code" and "must take effect after" in p.reason for p in plan.problems)
    assert not plan.changed


def test_a_spreadsheet_reads_as_its_csv(tmp_path):
    import csv
    book = openpyxl.Workbook()
    sheet = book.active
    for index, row in enumerate(csv.reader(PROCEDURES.open(encoding="utf-8"))):
        if index == 2:
            row[1] = float(row[1])  # a spreadsheet that made "1.001193" a number
            row[0] = int(row[0])
        sheet.append(row)
    path = tmp_path / "procedures-h57.xlsx"
    book.save(path)
    assert importer.read_sheet(path) == importer.read_sheet(PROCEDURES)


def test_a_sheet_without_the_headings_is_refused(tmp_path):
    path = tmp_path / "other.csv"
    path.write_text("a,b,c\n1,2,3\n", encoding="utf-8")
    with pytest.raises(CatalogError, match="no heading row"):
        importer.read_sheet(path)


def test_the_command_prints_the_difference_and_applies_it(tmp_path, capsys):
    directory = tmp_path / "catalog"
    arguments = ["catalog", "import", "--catalog-dir", str(directory), "--province", "Tỉnh Bến Thủy",
                 "--procedures", str(PROCEDURES), "--agencies", str(AGENCIES), "--effective-from", "2026-01-01"]
    assert main(arguments + ["--json"]) == 1  # rows unreadable: a script notices
    shown = json.loads(capsys.readouterr().out)
    assert len(shown["procedures"]["new"]) == 7 and len(shown["unreadable"]) == 7
    assert main(arguments + ["--apply"]) == 2 and not directory.exists()
    assert main(arguments + ["--apply", "--skip-unreadable"]) == 0
    assert len(Catalog.load(directory).current(JAN)) == 7


def test_a_code_twice_is_read_once_and_the_second_row_named(tmp_path):
    procedures = _edited(tmp_path, PROCEDURES, ("12,1.26,", "12,1.001193,"))
    plan = _plan(tmp_path / "catalog", procedures=procedures)
    assert ("procedures-h57.csv", 14, "code", "the same code on an earlier row") in {
        (p.sheet, p.row, p.column, p.reason) for p in plan.problems}
    assert [c.code for c in plan.new].count("1.001193") == 1


def test_a_procedure_is_not_retired_by_its_first_version(province):
    text = (province / "procedures.yaml").read_text(encoding="utf-8")
    (province / "procedures.yaml").write_text(text.replace("  version: 1\n", "  version: 1\n  retired: true\n", 1),
                                              encoding="utf-8")
    with pytest.raises(CatalogError, match=r"procedures.yaml:\d+: procedures.0.retired: a procedure is retired by a later"):
        Catalog.load(province)
