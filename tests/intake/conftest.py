"""Intake's fixtures: a migrated SQLite database, a unit of work on it, the shipped catalogue."""
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


@pytest.fixture
def engine(tmp_path):
    url = f"sqlite:///{tmp_path / 'intake.db'}"
    migrate.upgrade("intake", url)
    return make_engine(url)


@pytest.fixture
def uow(engine):
    unit = IntakeUnitOfWork(Session(engine, expire_on_commit=False), "intake", Base.metadata)
    yield unit
    unit.close()


@pytest.fixture(scope="module")
def policy(tmp_path_factory):
    catalog_dir = ROOT / "deploy" / "catalog"
    calendar = WorkingCalendar.from_yaml(catalog_dir / "calendar.yaml")
    return dossiers.Policy(Catalog.load(catalog_dir), calendar, "s3cret",
                           LocalBlobStore(tmp_path_factory.mktemp("blobs")))
