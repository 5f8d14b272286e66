"""The suite's PostgreSQL databases (`tests.infra.create_service_databases`): copies of a migrated
template, at this tree's head, each its own; a template whose migration fails is not left behind; another
checkout's template is kept while it is used."""
import time

import pytest
from sqlalchemy import create_engine, text

from motcua import migrate
from tests import infra


def test_each_copy_is_at_head_and_its_own(postgres):
    first, second = infra.create_service_databases(), infra.create_service_databases()
    try:
        assert set(first) == set(second) == set(infra.SERVICES)
        assert all(migrate.schema_ready(service, url) for service, url in first.items())
        engine = create_engine(first["intake"])
        with engine.begin() as connection:
            connection.execute(text("CREATE TABLE written_in_the_first (id integer)"))
        engine.dispose()
        engine = create_engine(second["intake"])
        with engine.connect() as connection:
            assert connection.execute(text("SELECT to_regclass('written_in_the_first')")).scalar() is None
        engine.dispose()
    finally:
        infra.drop_databases(first)
        infra.drop_databases(second)


def test_a_template_whose_migration_fails_is_dropped_not_copied(postgres, monkeypatch):
    # Another key names another template: this one is made here, and its migration fails.
    monkeypatch.setenv("GATEWAY_AUDIT_KEY", "a key of this test's own, for a template of its own")

    def failing(service, url):
        raise RuntimeError("the migration failed")

    monkeypatch.setattr(migrate, "upgrade", failing)
    with pytest.raises(RuntimeError, match="the migration failed"):
        infra.create_service_databases(names=("gateway",))
    engine = infra._admin_engine()
    with engine.connect() as connection:
        left = connection.execute(text("SELECT count(*) FROM pg_database WHERE starts_with(datname, :stem)"),
                                  {"stem": infra.template_stem()}).scalar()  # neither built nor building
    engine.dispose()
    assert left == 0


def template_exists(name: str) -> bool:
    engine = infra._admin_engine()
    with engine.connect() as connection:
        found = connection.execute(text("SELECT count(*) FROM pg_database WHERE datname = :name"),
                                   {"name": name}).scalar()
    engine.dispose()
    return found == 1


def test_another_checkouts_template_is_kept_while_used_and_dropped_once_unused(postgres, monkeypatch):
    # Another key names another template, as other code would: another checkout's, made a moment ago.
    monkeypatch.setenv("GATEWAY_AUDIT_KEY", "another checkout's key, for a template of its own")
    infra.drop_databases(infra.create_service_databases(names=("gateway",)))
    theirs = infra.template_stem() + "gateway"
    monkeypatch.undo()
    infra.drop_databases(infra.create_service_databases(names=("gateway",)))
    assert template_exists(theirs)  # used a moment ago: kept
    engine = infra._admin_engine()
    with engine.connect() as connection:  # … and not since, for over the time templates are kept
        unused_since = int(time.time()) - infra.KEEP_UNUSED_TEMPLATES_SECONDS - 1
        connection.exec_driver_sql(f"COMMENT ON DATABASE \"{theirs}\" IS '{unused_since}'")
    engine.dispose()
    infra.drop_databases(infra.create_service_databases(names=("gateway",)))
    assert not template_exists(theirs)
