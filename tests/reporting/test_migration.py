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
from motcua.privacy import tracking_key
from services.reporting import cli, projections, tracking
from services.reporting.models import DossierFact, StoredEvent
from tests import infra
from tests.reporting.factory import PHONE, TRACKING_KEY, VN, all_facts, lifecycle, memory_database, random_lives, vn

CODE = "000.00.06.H56-260302-0001"

BEFORE = "a8096112f188"  # the last revision whose events lacked their versions
BEFORE_APPLIED = "bc9ddcdd0d5a"  # the last revision whose rows did not say which versions they reflect
NEW_KEYS = {"intake": ("dossier_version", "status", "status_code", "due_at"), "workflow": ("run_version",)}
# What intake's events carried before, under the names the contract now uses for the dossier's state.
HAD = {"dossier_received": ("due_at",), "dossier_result_ready": ("due_at",),
       "dossier_supplemented": ("status", "due_at"), "payment_received": ("due_at",)}


@pytest.fixture(params=["sqlite", "postgresql"])
def database_at(request, tmp_path):
    """`database_at(revision)`: a reporting database migrated up to `revision`."""
    made = []

    def at(revision: str) -> str:
        if request.param == "sqlite":
            url = f"sqlite:///{tmp_path / 'reporting.db'}"
        else:
            request.getfixturevalue("postgres")
            made.append(infra.create_service_databases(names=("reporting",), migrate=False))
            url = made[-1]["reporting"]
        command.upgrade(migrate.alembic_config("reporting", url), revision)
        return url

    yield at
    for urls in made:
        infra.drop_databases(urls)


@pytest.fixture
def old_database(database_at):
    """A reporting database migrated up to the revision before the versions."""
    return database_at(BEFORE)


def as_stored_before(evt) -> dict:
    """The row the old projection stored for `evt`: its wire data without personal keys nor the new keys."""
    return stored(evt, without=set(NEW_KEYS[evt.source]) - set(HAD.get(evt.event_type, ())))


def stored(evt, without=()) -> dict:
    """The event store's row of `evt`: its wire data without personal keys (nor the keys `without`)."""
    data = {k: v for k, v in schema_for(evt.event_type)[1].dump(evt.data).items()
            if k not in projections.PERSONAL_KEYS and k not in without}
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


def test_rows_from_before_claim_no_version_until_a_replay_fills_them(database_at, capsys):
    """A tracking answer says which versions it reflects (the gateway keeps it while none newer is
    announced): an upgraded row claims none, which is safe, until `make replay`."""
    life = lifecycle(CODE, submitted=vn(2026, 3, 2, 8), received=vn(2026, 3, 2, 9), due=vn(2026, 3, 5, 17))
    url = database_at(BEFORE_APPLIED)
    engine = make_engine(url)
    with engine.begin() as connection:  # the rows as that revision's code stored them: no versions column
        connection.execute(insert(StoredEvent.__table__), [stored(evt) for evt in life])
        connection.exec_driver_sql(
            "INSERT INTO dossier_facts (code, status, status_code, supplements, stored_events, tracking_key) "
            f"VALUES ('{CODE}', 'processing', 4, 0, {len(life)}, '{tracking_key(TRACKING_KEY, CODE, PHONE[-4:])}')")
    migrate.upgrade("reporting", url)
    with sessionmaker(bind=engine)() as session:
        view = tracking.track(session, CODE, PHONE[-4:], TRACKING_KEY, VN)
    assert (view["dossier_version"], view["run_version"]) == (0, 0)

    cli.main(["replay", "--db-url", url])
    capsys.readouterr()
    with sessionmaker(bind=engine)() as session:
        view = tracking.track(session, CODE, PHONE[-4:], TRACKING_KEY, VN)
    assert (view["dossier_version"], view["run_version"]) == (
        max(e.data["dossier_version"] for e in life if e.source == "intake"),
        max(e.data["run_version"] for e in life if e.source == "workflow"))
    command.downgrade(migrate.alembic_config("reporting", url), BEFORE_APPLIED)
    engine.dispose()
