"""Dossiers on PostgreSQL, where the repository's statements differ from SQLite's: a submission's row and
its agency in one statement, a change and the agencies that join in one, the agencies read in the
dossier's row as an array, a staff view read in autocommit."""
from datetime import timedelta

import pytest
from sqlalchemy.orm import Session

from motcua.db import make_engine
from services.intake import dossiers
from services.intake.repository import COLUMNS
from services.intake.sealing import environment_data_keys
from tests import infra
from tests.intake.test_dossiers import COMMUNE, LAND_OFFICE, MONDAY_9AM, RECEPTIONIST, outbox, submit
from tests.intake.test_repository import assigned, fresh, later, statements_of


@pytest.fixture(scope="module")
def pg_engine(postgres):
    urls = infra.create_service_databases(names=("intake",))
    engine = make_engine(urls["intake"])
    # The data keys are read once per engine (test_repository shows when): here, so that each test
    # counts only its own statements.
    environment_data_keys().keys(Session(engine))
    yield engine
    engine.dispose()
    infra.drop_databases(urls)


@pytest.fixture
def statements(pg_engine):
    yield from statements_of(pg_engine)


def test_a_dossiers_life_in_few_statements_reads_back_as_saved(pg_engine, policy, statements):
    uow = fresh(pg_engine)
    dossier = submit(uow, policy, now=MONDAY_9AM + timedelta(days=7))
    assert statements == ["INSERT INTO dossier_counters", "WITH inserted AS", "INSERT INTO outbox"]
    dossiers.receive(uow, policy, dossier.code, RECEPTIONIST, later(169))
    statements.clear()
    dossiers.task_assigned(uow, assigned(dossier.code))  # processing starts, the land office joins
    dossiers.task_assigned(uow, assigned(dossier.code, agency=COMMUNE, step="Ký"))  # involved already
    uow.commit()
    assert statements == ["SELECT dossiers.id, dossiers.code,", "WITH write_0 AS", "INSERT INTO outbox"]
    uow.close()

    statements.clear()
    reader = fresh(pg_engine)
    again = reader.dossiers.get(dossier.code, for_update=False)
    assert statements == ["SELECT dossiers.id, dossiers.code,"]  # on its own connection, in autocommit
    assert not reader.session.in_transaction()
    assert {key: getattr(again, key) for key in COLUMNS} == {key: getattr(dossier, key) for key in COLUMNS}
    assert again.agencies == dossier.agencies == (COMMUNE, LAND_OFFICE)
    assert [e["data"]["dossier_version"] for e in outbox(reader)][-3:] == [1, 2, 3]
    reader.close()
