"""Nhật ký chống sửa đổi: the audit log is a hash chain. `motcua audit verify` finds it intact, and names
the first broken link when a row is changed, removed or re-hashed without the key; concurrent writers
(two gateway instances' batched writers and the access_denied consumer) on PostgreSQL never fork it;
the migration links the rows it finds."""
from __future__ import annotations

import hashlib
from datetime import datetime, timezone
from types import SimpleNamespace

import eventlet
import pytest
from alembic import command
from sqlalchemy import text
from sqlalchemy.orm import Session

from motcua import cli, migrate
from motcua.db import UnitOfWork, make_engine
from motcua.identity import Caller
from motcua.keys import new_key
from services.gateway import audit
from services.gateway.models import Base
from tests import infra

CALLER = Caller("specialist@X", "X", ("specialist",))


def write(engine, count: int, prefix: str = "D") -> None:
    """`count` rows through the batched writer, as many requests at once."""
    writer = audit.AuditWriter(engine, max_batch=8, linger=0.001)
    flusher = eventlet.spawn(writer.run)
    eventlet.sleep(0)
    pool = eventlet.GreenPool(count)
    list(pool.imap(lambda n: writer.write(audit.row(CALLER, "dossier.read", "10.0.0.1", dossier_code=f"{prefix}-{n}")),
                   range(count)))
    writer.stop()
    flusher.wait()


def denied_by_service(engine, n: int) -> None:
    """An `access_denied` event of intake, recorded as the gateway's consumer does (its own transaction)."""
    unit = UnitOfWork(Session(engine, expire_on_commit=False), "gateway", Base.metadata)
    event = SimpleNamespace(source="intake", data={
        "denied_at": datetime.now(timezone.utc), "username": None, "claimed_username": f"someone-{n}",
        "agency_code": "X", "action": "get_dossier", "dossier_code": f"S-{n}", "task_id": None,
        "reason": "not your agency"})
    audit.record_denied_by_service(unit, event)
    unit.commit()
    unit.close()


def verified(engine) -> dict:
    with engine.connect() as connection:
        return audit.verify(connection, audit.chain_key(), batch=7)  # a small batch: several reads


@pytest.fixture
def gateway_db(tmp_path, monkeypatch):
    url = f"sqlite:///{tmp_path / 'gateway.db'}"
    migrate.upgrade("gateway", url)
    monkeypatch.setenv("GATEWAY_DB_URL", url)
    engine = make_engine(url)
    yield engine
    engine.dispose()


def tamper(engine, statement: str, **params) -> None:
    with engine.begin() as connection:
        connection.execute(text(statement), params)


def test_an_intact_log_verifies_and_the_command_prints_its_head(gateway_db, capsys):
    write(gateway_db, 20)
    denied_by_service(gateway_db, 1)
    found = verified(gateway_db)
    assert found["rows"] == 21 and "broken_at" not in found
    assert cli.main(["audit", "verify"]) == 0
    assert f"audit log intact: 21 row(s); head hash {found['head_hash']}" in capsys.readouterr().out


@pytest.mark.parametrize("change, why", [
    ("UPDATE audit_log SET outcome = 'denied', detail = 'not your agency' WHERE chain_seq = 8", "its content"),
    ("UPDATE audit_log SET at = '2026-01-01 00:00:00' WHERE chain_seq = 8", "its content"),
    ("DELETE FROM audit_log WHERE chain_seq = 8", "row(s) 8…8 of the chain are missing"),
    ("UPDATE audit_log SET chain_seq = 99 WHERE chain_seq = 8", "row(s) 8…8 of the chain are missing"),  # moved
])
def test_a_changed_or_removed_row_is_the_first_broken_link(gateway_db, capsys, change, why):
    write(gateway_db, 12)
    assert "broken_at" not in verified(gateway_db)
    tamper(gateway_db, change)
    found = verified(gateway_db)
    assert found["why"].startswith(why) and found["rows"] == 7
    assert cli.main(["audit", "verify"]) == 1
    assert f"(link {found['broken_at']['chain_seq']}): {found['why']}" in capsys.readouterr().out


def test_a_row_re_hashed_without_the_key_does_not_pass(gateway_db):
    write(gateway_db, 5)
    with gateway_db.connect() as connection:
        row = connection.execute(text("SELECT * FROM audit_log WHERE chain_seq = 3")).one()
        previous = connection.execute(text("SELECT chain_hash FROM audit_log WHERE chain_seq = 2")).scalar_one()
    forged = audit.link(hashlib.sha256(b"a guessed key").digest(), previous, 3,
                        {**row._mapping, "at": datetime.fromisoformat(str(row.at)).replace(tzinfo=timezone.utc),
                         "username": "someone-else"})
    tamper(gateway_db, "UPDATE audit_log SET username = 'someone-else', chain_hash = :h WHERE chain_seq = 3", h=forged)
    assert verified(gateway_db)["broken_at"]["chain_seq"] == 3


def test_the_migration_links_the_rows_it_finds(empty_database):
    url = empty_database("gateway")
    command.upgrade(migrate.alembic_config("gateway", url), "e5f3a7b9c1d4")  # before the chain
    engine = make_engine(url)
    for n in range(5):
        tamper(engine, "INSERT INTO audit_log (at, username, action, outcome, source) VALUES "
                       "(:at, 'admin', 'audit.read', 'allowed', 'gateway')",
               at=datetime(2026, 12, n + 1, 1, 2, 3, 456789, tzinfo=timezone.utc))
    migrate.upgrade("gateway", url)
    assert verified(engine) == {"rows": 5, "head_hash": verified(engine)["head_hash"]}
    write(engine, 3)  # and the writer goes on from the migrated head
    assert verified(engine)["rows"] == 8 and "broken_at" not in verified(engine)
    engine.dispose()


@pytest.fixture(scope="module")
def pg_gateway(postgres):
    urls = infra.create_service_databases(names=("gateway",))
    yield urls["gateway"]
    infra.drop_databases(urls)


def test_concurrent_writers_on_postgresql_never_fork_the_chain(pg_gateway):
    """Two gateway instances (each its engine and batched writer) and the access_denied consumer, at once."""
    engines = [make_engine(pg_gateway) for _ in range(3)]
    pool = eventlet.GreenPool()
    for n, engine in enumerate(engines[:2]):
        pool.spawn(write, engine, 60, prefix=f"G{n}")
    pool.spawn(lambda: [denied_by_service(engines[2], n) for n in range(10)])
    pool.waitall()
    found = verified(engines[0])
    assert found["rows"] == 130 and "broken_at" not in found
    with engines[0].connect() as connection:
        assert connection.execute(text("SELECT count(*) FROM audit_log")).scalar_one() == 130
    for engine in engines:
        engine.dispose()


def test_production_refuses_a_missing_or_weak_audit_key(gateway_db, monkeypatch):
    monkeypatch.setenv("MOTCUA_ENV", "production")
    monkeypatch.delenv(audit.KEY_SETTING, raising=False)
    with pytest.raises(SystemExit, match="GATEWAY_AUDIT_KEY must be set"):
        audit.AuditWriter(gateway_db)  # what the gateway's AuditLog makes when it starts
    monkeypatch.setenv(audit.KEY_SETTING, "audit-secret")
    with pytest.raises(SystemExit, match="GATEWAY_AUDIT_KEY is weaker than 256 random bits"):
        audit.AuditWriter(gateway_db)


def test_rotating_the_key_relinks_a_chain_that_verifies_and_refuses_a_broken_one(gateway_db, monkeypatch, capsys):
    write(gateway_db, 10)
    head = verified(gateway_db)["head_hash"]
    new = new_key()
    monkeypatch.setenv(audit.NEW_KEY_SETTING, new)
    assert cli.main(["audit", "rekey"]) == 0
    assert "audit log intact: 10 row(s)" in capsys.readouterr().out
    assert verified(gateway_db)["broken_at"]["chain_seq"] == 1  # no link holds under the old key
    monkeypatch.setenv(audit.KEY_SETTING, new)
    assert verified(gateway_db)["rows"] == 10 and verified(gateway_db)["head_hash"] != head
    # a broken chain is not re-linked (that would hide the break): refused, nothing changed
    tamper(gateway_db, "UPDATE audit_log SET remote_addr = '10.9.9.9' WHERE chain_seq = 4")
    monkeypatch.setenv(audit.NEW_KEY_SETTING, new_key())
    assert cli.main(["audit", "rekey"]) == 1
    assert "BROKEN at row id 4 (link 4)" in capsys.readouterr().out
    assert verified(gateway_db)["broken_at"]["chain_seq"] == 4
