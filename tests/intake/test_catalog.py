"""The catalogue loads from files and refuses a broken one with file:line: reason."""
import shutil

import pytest

from motcua.catalog import CatalogError
from motcua.config import ROOT
from motcua.text import fold
from services.intake.catalog import Catalog

SOURCE = ROOT / "deploy" / "catalog"


@pytest.fixture
def catalog_dir(tmp_path):
    shutil.copytree(SOURCE, tmp_path / "catalog")
    return tmp_path / "catalog"


def test_the_demo_catalogue_has_15_real_procedures_with_their_terms():
    catalog = Catalog.load(SOURCE)
    current = catalog.current(None)
    assert len(current) >= 15
    for procedure in current:
        assert procedure.documents and procedure.required_documents
        assert set(procedure.channels) == {"online", "counter", "postal"}
        assert procedure.level == catalog.agencies[procedure.agency_code]["level"]
    birth = catalog.procedure("1.001193")
    assert (birth.cutoff.strftime("%H:%M"), birth.fee, birth.online_level) == ("15:00", 0, "full")
    assert catalog.procedure("2.000505").unit == "calendar_days"  # judicial record: "không quá 10 ngày"
    bundle = catalog.procedure("2.000986")  # newborn bundle (Decree 63/2024): 3 working days, not 10 calendar
    assert (bundle.processing_days, bundle.unit) == (3, "working_days")
    assert catalog.procedure("1.009994").on_supplement == "restart"
    assert {d["kind"] for p in current for d in p.documents} == {"original", "copy", "original_or_copy"}


def break_file(catalog_dir, old, new, name="procedures.yaml"):
    path = catalog_dir / name
    text = path.read_text(encoding="utf-8")
    assert old in text
    path.write_text(text.replace(old, new, 1), encoding="utf-8")
    return text[:text.index(old)].count("\n") + 1  # the line of the change


@pytest.mark.parametrize("old, new, reason", [
    ("agency_code: 000.20.02.H56\n    processing_time: {value: 3",
     "agency_code: 000.99.02.H56\n    processing_time: {value: 3",
     "unknown agency 000.99.02.H56"),
    ("level: department\n    agency_code: 000.00.15.H56", "level: commune\n    agency_code: 000.00.15.H56",
     "is of level department, not commune"),
    ("processing_time: {value: 10, unit: calendar_days}", "processing_time: {value: 2.5, unit: calendar_days}",
     "calendar days are whole days"),
    ("processing_time: {value: 15, unit: working_days}", "processing_time: {value: 1.25, unit: working_days}",
     "multiple of 0.5"),
    ("{key: ban_sao, name:", "{key: ban_chinh, name:", "duplicate document key"),
    ("    version: 2\n    effective_from: 2023-01-01", "    version: 3\n    effective_from: 2023-01-01",
     "expected version 2 after 1"),
    ("    version: 2\n    effective_from: 2023-01-01", "    version: 2\n    effective_from: 2015-01-01",
     "must take effect after the previous one"),
    ("online_level: full\n    channels:\n      online: {fee: 0}",
     "online_level: full\n    channels:\n      kiosk: {fee: 0}",
     "Must be one of"),
    ("fee_tiers: [{pages: 2, per_page: 2000}, {per_page: 1000}]",
     "fee_tiers: [{pages: 2, per_page: 2000}, {pages: 5, per_page: 1000}]", "the last tier has no pages"),
    ("fee_tiers: [{pages: 2, per_page: 2000}, {per_page: 1000}]",
     "fee_tiers: [{per_page: 2000}, {per_page: 1000}]", "required but on the last tier"),
    ("fee: 2000\n    fee_unit: page\n    fee_tiers", "fee: 2000\n    fee_unit: copy\n    fee_tiers",
     "fee_unit must be page"),
    ("fee: 2000\n    fee_unit: page\n    fee_tiers", "fee: 3000\n    fee_unit: page\n    fee_tiers",
     "must be the first tier's per_page (2000)"),
    ("fee: 8000\n    fee_unit: copy", "fee: 8000\n    fee_unit: copy\n    fee_cap: 1000", "a cap needs fee_tiers"),
    ("level: department\n    agency_code: 000.00.15.H56",
     "level: department\n    reception: anywhere\n    agency_code: 000.00.15.H56",
     "only a commune-level procedure is received anywhere"),
    ("level: commune\n    reception: anywhere", "level: commune\n    reception: everywhere", "Must be one of"),
])
def test_a_broken_procedure_names_file_line_and_reason(catalog_dir, old, new, reason):
    line = break_file(catalog_dir, old, new)
    with pytest.raises(CatalogError) as error:
        Catalog.load(catalog_dir)
    message = str(error.value)
    assert "procedures.yaml:" in message and reason in message
    reported = int(message.split("procedures.yaml:")[1].split(":")[0])
    assert line <= reported <= line + 3, message


@pytest.mark.parametrize("pages, fee", [(1, 2_000), (2, 4_000), (3, 5_000), (10, 12_000), (196, 198_000),
                                       (197, 199_000), (198, 200_000), (199, 200_000), (500, 200_000)])
def test_a_certified_copy_costs_by_tiers_of_pages_with_a_cap(pages, fee):
    """Thông tư 226/2016/TT-BTC: 2,000 VND a page for the first two pages of the original, 1,000 VND a
    page from the third, at most 200,000 VND a copy."""
    copy = Catalog.load(SOURCE).procedure("2.000815")
    assert copy.fee_for(pages) == fee
    assert copy.summary()["fee_tiers"] == [{"per_page": 2000, "pages": 2}, {"per_page": 1000, "pages": None}]
    assert copy.summary()["fee_cap"] == 200_000


def test_flat_fees_stay_flat():
    catalog = Catalog.load(SOURCE)
    assert catalog.procedure("2.000635").fee_for(5) == 8_000  # a copy of an extract, whatever its pages
    assert catalog.procedure("2.000505").summary()["fee_tiers"] == []


def test_broken_office_hours_name_the_agency_line(catalog_dir):
    line = break_file(catalog_dir, '["07:30-11:30", "13:30-17:30"]', '["07:30-11:30", "11:00-17:30"]',
                      name="agencies.yaml")
    with pytest.raises(CatalogError) as error:
        Catalog.load(catalog_dir)
    assert f"agencies.yaml:{line}: agencies." in str(error.value) and "office_hours" in str(error.value)


def test_fold_is_how_people_type():
    assert fold("Đăng ký KHAI SINH, (bản sao)") .split() == ["dang", "ky", "khai", "sinh", "ban", "sao"]


def test_every_procedure_has_a_process_to_route_it():
    """workflow refuses a received dossier whose procedure has no process (processes.yaml)."""
    from services.workflow.processes import load_processes
    processes = load_processes(SOURCE, "Asia/Ho_Chi_Minh").processes
    assert set(Catalog.load(SOURCE).versions) <= set(processes)


def test_a_procedure_received_anywhere_is_handled_where_it_was_received():
    """Decree 118/2025/NĐ-CP: a dossier received at any commune is not routed back to one commune: no
    step of its process names a commune by code (it goes to `serving: receiving` or the declaration's)."""
    from services.workflow.processes import load_processes
    catalog, processes = Catalog.load(SOURCE), load_processes(SOURCE, "Asia/Ho_Chi_Minh").processes
    anywhere = sorted(code for code, versions in catalog.versions.items() if versions[-1].received_anywhere)
    assert anywhere == ["2.000635", "2.000815", "2.000884"]
    communes = {code for code, agency in catalog.agencies.items() if agency["level"] == "commune"}
    for code in anywhere:
        assert not {step.agency_code for step in processes[code].steps} & communes, code
