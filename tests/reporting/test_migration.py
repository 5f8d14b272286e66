"""Upgrading a reporting database whose events were stored before they carried their owner's state: the
migration numbers them and gives them the status the old projection gave, and `make replay` then gives
every dossier the row the new projection gives the same events as their owners now publish them."""
import json
import random

import pytest
from alembic import command
from sqlalchemy import insert, select
from sqlalchemy.orm import sessionmaker

from motcua import migrate
from motcua.contracts.events import schema_for
from motcua.db import make_engine
from services.reporting import cli, projections
from services.reporting.models import DossierFact, StoredEvent
from tests import infra
from tests.reporting.factory import VN, all_facts, memory_database, random_lives, vn

BEFORE = "a8096112f188"  # the last revision whose events lacked their versions
NEW_KEYS = {"intake": ("dossier_version", "status", "status_code", "due_at"), "workflow": ("run_version",)}
# What intake's events carried before, under the names the contract now uses for the dossier's state.
HAD = {"dossier_received": ("due_at",), "dossier_result_ready": ("due_at",),
       "dossier_supplemented": ("status", "due_at"), "payment_received": ("due_at",)}


@pytest.fixture(params=["sqlite", "postgresql"])
def old_database(request, tmp_path):
    """A reporting database migrated up to the revision before the versions."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'reporting.db'}"
        command.upgrade(migrate.alembic_config("reporting", url), BEFORE)
        yield url
        return
    request.getfixturevalue("postgres")
    urls = infra.create_service_databases(names=("reporting",), migrate=False)
    command.upgrade(migrate.alembic_config("reporting", urls["reporting"]), BEFORE)
    yield urls["reporting"]
    infra.drop_databases(urls)


def as_stored_before(evt) -> dict:
    """The row the old projection stored for `evt`: its wire data without personal keys nor the new keys."""
    new = set(NEW_KEYS[evt.source]) - set(HAD.get(evt.event_type, ()))
    data = {k: v for k, v in schema_for(evt.event_type)[1].dump(evt.data).items()
            if k not in projections.PERSONAL_KEYS and k not in new}
    return {"event_id": evt.event_id, "event_type": evt.event_type, "version": evt.version, "source": evt.source,
            "occurred_at": evt.occurred_at, "dossier_code": projections.dossier_code(evt.data), "data": data}


def test_old_events_get_their_versions_and_a_replay_gives_the_new_projection(old_database, capsys):
    lives = random_lives(random.Random(8), 40, vn(2026, 2, 2, 8), 30, reschedules=True)
    events = [evt for life in lives for evt in life]
    engine = make_engine(old_database)
    with engine.begin() as connection:
        connection.execute(insert(StoredEvent.__table__), [as_stored_before(evt) for evt in events])
        # the old projection's rows (their content does not matter: the replay rebuilds them)
        connection.exec_driver_sql("INSERT INTO dossier_facts (code, status, status_code, supplements) "
                                   "SELECT DISTINCT dossier_code, 'submitted', 1, 0 FROM events")
    migrate.upgrade("reporting", old_database)

    with sessionmaker(bind=engine)() as session:
        migrated = {stored.event_id: stored.data for stored in session.scalars(select(StoredEvent))}
        counted = {row.code: row.stored_events for row in session.scalars(select(DossierFact))}
    for evt in events:  # what the owners publish now, as the factory tells it
        published = schema_for(evt.event_type)[1].dump(evt.data)
        assert {k: migrated[evt.event_id][k] for k in NEW_KEYS[evt.source]} == {
            k: published[k] for k in NEW_KEYS[evt.source]}, evt.event_type
    assert counted == {life[0].data["code"]: len(life) for life in lives}

    cli.main(["replay", "--db-url", old_database])
    assert json.loads(capsys.readouterr().out) == {"dossiers": len(lives), "events": len(events)}
    live = memory_database()()
    for evt in events:
        projections.record(live, [evt], VN)
    with sessionmaker(bind=engine)() as session:
        assert all_facts(session) == all_facts(live.session)
    engine.dispose()
