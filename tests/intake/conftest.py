"""Intake's fixtures. The rule tests (`test_rules_*.py`) run the service layer and the aggregate against
in-memory fakes (no database, no files); the others against a migrated SQLite database."""
import pytest
from sqlalchemy.orm import Session

from motcua import migrate
from motcua.calendar import WorkingCalendar
from motcua.config import ROOT
from motcua.db import make_engine
from services.intake import dossiers
from services.intake.blobs import LocalBlobStore
from services.intake.catalog import Catalog
from services.intake.models import Base
from services.intake.repository import IntakeUnitOfWork
from tests.intake.fakes import FakeBlobStore, FakeIntakeUnitOfWork

CATALOG_DIR = ROOT / "deploy" / "catalog"


def rules_only(request) -> bool:
    return request.module.__name__.rsplit(".", 1)[-1].startswith("test_rules_")


@pytest.fixture
def engine(tmp_path):
    url = f"sqlite:///{tmp_path / 'intake.db'}"
    migrate.upgrade("intake", url)
    return make_engine(url)


@pytest.fixture
def uow(request):
    if rules_only(request):
        yield FakeIntakeUnitOfWork()
        return
    unit = IntakeUnitOfWork(Session(request.getfixturevalue("engine"), expire_on_commit=False), "intake",
                            Base.metadata)
    yield unit
    unit.close()


@pytest.fixture(scope="session")
def catalog():
    return Catalog.load(CATALOG_DIR), WorkingCalendar.from_yaml(CATALOG_DIR / "calendar.yaml")


@pytest.fixture(scope="module")
def policy(request, catalog, tmp_path_factory):
    store = FakeBlobStore() if rules_only(request) else LocalBlobStore(tmp_path_factory.mktemp("blobs"))
    return dossiers.Policy(*catalog, "tracking-test-key", "search-test-key", store)
