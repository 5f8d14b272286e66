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
    assert catalog.procedure("1.001022").unit == "calendar_days"
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
])
def test_a_broken_procedure_names_file_line_and_reason(catalog_dir, old, new, reason):
    line = break_file(catalog_dir, old, new)
    with pytest.raises(CatalogError) as error:
        Catalog.load(catalog_dir)
    message = str(error.value)
    assert "procedures.yaml:" in message and reason in message
    reported = int(message.split("procedures.yaml:")[1].split(":")[0])
    assert line <= reported <= line + 3, message


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
