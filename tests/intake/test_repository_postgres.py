"""Dossiers on PostgreSQL, where the repository's statements differ from SQLite's: a submission's row and
its agency in one statement, a change and the agencies that join in one, the agencies read in the
dossier's row as an array, a staff view read in autocommit."""
from datetime import timedelta

import pytest
from sqlalchemy import select

from motcua.db import make_engine
from motcua.errors import Conflict
from services.intake import dossiers
from services.intake.models import dossier_agencies, dossiers as dossier_table
from services.intake.repository import COLUMNS
from tests import infra
from tests.intake.test_dossiers import COMMUNE, LAND_OFFICE, MONDAY_9AM, RECEPTIONIST, outbox, submit
from tests.intake.test_repository import assigned, fresh, later, statements_of


@pytest.fixture(scope="module")
def pg_engine(postgres):
    urls = infra.create_service_databases(names=("intake",))
    engine = make_engine(urls["intake"])
    yield engine
    engine.dispose()
    infra.drop_databases(urls)


@pytest.fixture
def statements(pg_engine):
    yield from statements_of(pg_engine)


def test_a_dossiers_life_in_few_statements_reads_back_as_saved(pg_engine, policy, statements):
    uow = fresh(pg_engine)
    dossier = submit(uow, policy, key="pg-life", now=MONDAY_9AM + timedelta(days=7))
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


def test_a_repeated_idempotency_key_answers_the_first_dossier_and_stores_nothing(pg_engine, policy):
    uow = fresh(pg_engine)
    first = submit(uow, policy, key="pg-retry", now=MONDAY_9AM + timedelta(days=14))
    again = submit(uow, policy, key="pg-retry", now=MONDAY_9AM + timedelta(days=14))
    assert again.code == first.code
    with pytest.raises(Conflict):
        submit(uow, policy, procedure="1.001193", key="pg-retry", now=MONDAY_9AM + timedelta(days=14))
    uow.rollback()
    following = submit(uow, policy, now=MONDAY_9AM + timedelta(days=14))
    assert following.code == first.code[:-4] + "0002"  # the repeats gave their numbers back
    stored = uow.session.execute(select(dossier_agencies.c.agency_code).join(
        dossier_table, dossier_table.c.id == dossier_agencies.c.dossier_id).where(
        dossier_table.c.idempotency_key == "pg-retry")).scalars().all()
    assert stored == [COMMUNE]
    uow.close()
