"""Fixtures of the workflow tests: the real catalogue, a migrated SQLite database per test, and the
service's worker over it with a clock the test moves."""
from __future__ import annotations

import shutil

import pytest
from nameko.testing.services import worker_factory
from sqlalchemy.orm import sessionmaker

from motcua import migrate
from motcua.db import make_engine
from motcua.revocation import AccessCache
from services.workflow.models import Base
from services.workflow.processes import load_processes
from services.workflow.repository import WorkflowUnitOfWork
from services.workflow.service import WorkflowService
from tests.infra import VERIFYING
from tests.workflow.support import CATALOG_DIR, MONDAY, Clock


@pytest.fixture(scope="session")
def catalog():
    return load_processes(CATALOG_DIR, "Asia/Ho_Chi_Minh")


@pytest.fixture(scope="session")
def migrated_template(tmp_path_factory):
    """The workflow database migrated once by alembic; each test gets a copy."""
    path = tmp_path_factory.mktemp("workflow-db") / "template.db"
    migrate.upgrade("workflow", f"sqlite:///{path}")
    return path


@pytest.fixture
def db_url(migrated_template, tmp_path):
    path = tmp_path / "workflow.db"
    shutil.copy(migrated_template, path)
    return f"sqlite:///{path}"


@pytest.fixture
def uow(db_url):
    engine = make_engine(db_url)
    unit = WorkflowUnitOfWork(sessionmaker(bind=engine, expire_on_commit=False)(), "workflow", Base.metadata)
    yield unit
    unit.close()
    engine.dispose()


@pytest.fixture
def clock():
    return Clock(MONDAY)


@pytest.fixture
def service(uow, catalog, clock):
    return worker_factory(WorkflowService, revocations=AccessCache(5),
                          db=uow, catalog=catalog, clock=clock, config=dict(VERIFYING))
