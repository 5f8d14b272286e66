"""processes.yaml: the real file loads; a broken copy refuses to load, naming file, line and reason."""
from __future__ import annotations

import shutil
from decimal import Decimal
from unittest.mock import MagicMock

import pytest

from motcua.catalog import CatalogError
from services.workflow.dependencies import ProcessCatalog
from services.workflow.processes import load_processes
from tests.workflow.support import CATALOG_DIR, COMMUNE, LAND, LAND_DEPT, LAND_OFFICE


def test_the_shipped_processes_load(catalog):
    assert {"1.001193", "1.000656", "1.004873", "2.000635", LAND} <= set(catalog.processes)
    land = catalog.process(LAND)
    assert [s.agency_code for s in land.steps] == [LAND_OFFICE, LAND_DEPT, COMMUNE]
    assert [s.allowance for s in land.steps] == [Decimal(6), Decimal(3), Decimal(1)]
    assert [s.role for s in land.steps] == ["specialist", "leader", "specialist"]
    assert catalog.calendar.tz.key == "Asia/Ho_Chi_Minh"


@pytest.fixture
def broken(tmp_path):
    """A copy of the catalogue whose processes.yaml the test edits: returns (path, edit)."""
    directory = tmp_path / "catalog"
    shutil.copytree(CATALOG_DIR, directory)
    path = directory / "processes.yaml"

    def edit(old: str, new: str, occurrence: int = 1) -> int:
        """Replace the `occurrence`-th line containing `old`; returns that line's number (1-based)."""
        lines = path.read_text(encoding="utf-8").splitlines(keepends=True)
        hits = [i for i, line in enumerate(lines) if old in line]
        index = hits[occurrence - 1]
        lines[index] = lines[index].replace(old, new)
        path.write_text("".join(lines), encoding="utf-8")
        return index + 1

    return directory, path, edit


@pytest.mark.parametrize("old, new, occurrence, reason", [
    # the second step of the land process names an agency that agencies.yaml does not know
    ("agency_code: 000.00.12.H56", "agency_code: 000.00.99.H56", 1,
     "processes.4.steps.1.agency_code: unknown agency 000.00.99.H56"),
    ("allowance: 3", "allowance: 0.3", 1, "processes.4.steps.1.allowance: days must be a multiple of 0.5"),
    ("allowance: 6", "allowance: 0", 1, "processes.4.steps.0.allowance: a step needs a positive allowance"),
    ("role: leader", "role: clerk", 1, "processes.2.steps.1.role: Must be one of"),
    ('procedure_code: "1.000656"', "procedure_code: 1.000656", 1, "processes.1.procedure_code: Not a valid string"),
    ('procedure_code: "1.000656"', 'procedure_code: "1.001193"', 1, "processes.1.procedure_code: duplicate process"),
])
def test_a_broken_file_names_file_line_and_reason(broken, old, new, occurrence, reason):
    directory, path, edit = broken
    line = edit(old, new, occurrence)
    with pytest.raises(CatalogError) as caught:
        load_processes(directory, "Asia/Ho_Chi_Minh")
    assert str(caught.value).startswith(f"{path}:{line}: {reason}")


def test_the_service_refuses_to_start_on_a_broken_file(broken):
    directory, _, edit = broken
    edit("agency_code: 000.12.01.H56", "agency_code: 000.12.09.H56")
    # Held here: nameko keeps only a weak reference to the container.
    container = MagicMock(config={"CATALOG_DIR": str(directory), "TIME_ZONE": "Asia/Ho_Chi_Minh"})
    provider = ProcessCatalog().bind(container, "catalog")
    with pytest.raises(CatalogError, match="unknown agency 000.12.09.H56"):
        provider.setup()
