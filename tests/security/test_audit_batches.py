"""Nhật ký ghi theo lô: audit rows are written in batches (one INSERT, one commit for many requests),
and none is lost: a request answers only once the batch holding its row is committed, so a failed or
killed batch fails its requests (503, the data not given out) instead of answering unaudited."""
from __future__ import annotations

import contextlib

import eventlet
import pytest
import requests
from sqlalchemy import create_engine, delete, event, func, select
from sqlalchemy.orm import Session

from motcua.db import make_engine
from motcua.identity import Caller
from services.gateway.audit import AuditWriter, row
from services.gateway.dependencies import engine_of
from services.gateway.models import AuditEntry
from tests.security.conftest import COMMUNE, audit_entries, signed_in

DOSSIER = {"code": f"{COMMUNE}-261201-0500", "status": "received", "applicant": {"id_number": "038190012345"}}


@contextlib.contextmanager
def statements_of(engine, on=None):
    """The statements `engine` runs inside the block; `on(statement)` may raise to break one."""
    seen: list[str] = []

    def before(_conn, _cursor, statement, _params, _context, _many):
        seen.append(statement)
        if on is not None:
            on(statement, "before")

    def after(_conn, _cursor, statement, _params, _context, _many):
        if on is not None:
            on(statement, "after")

    event.listen(engine, "before_cursor_execute", before)
    event.listen(engine, "after_cursor_execute", after)
    try:
        yield seen
    finally:
        event.remove(engine, "before_cursor_execute", before)
        event.remove(engine, "after_cursor_execute", after)


def delete_audit_rows(api, codes) -> None:
    engine = create_engine(api.db_url)
    with Session(engine) as session:
        session.execute(delete(AuditEntry).where(AuditEntry.dossier_code.in_(codes)))
        session.commit()
    engine.dispose()


def read_dossiers(api, headers, codes) -> list[requests.Response]:
    api.intake.get_dossier.side_effect = lambda code, caller_token: {**DOSSIER, "code": code}
    pool = eventlet.GreenPool(len(codes))
    return list(pool.imap(lambda code: requests.get(f"{api.url}/api/v1/dossiers/{code}", headers=headers,
                                                     timeout=30), codes))


def test_concurrent_reads_each_get_exactly_one_row_in_few_batches(api):
    headers = signed_in(api, f"specialist@{COMMUNE}")
    codes = [f"{COMMUNE}-261201-{n:04d}" for n in range(600, 640)]
    with statements_of(engine_of(api.container)) as seen:
        answers = read_dossiers(api, headers, codes)
    assert [a.status_code for a in answers] == [200] * len(codes)
    for code in codes:
        [entry] = audit_entries(api, dossier_code=code)
        assert (entry.action, entry.outcome, entry.username) == ("dossier.read", "allowed", f"specialist@{COMMUNE}")
    inserts = [s for s in seen if s.startswith("INSERT INTO audit_log")]
    assert 1 <= len(inserts) < len(codes) / 2, len(inserts)  # one multi-row INSERT per batch


def refuse_the_insert(statement, when):
    if when == "before" and statement.startswith("INSERT INTO audit_log"):
        raise RuntimeError("the audit table is away")


def die_before_the_commit(statement, when):
    """The flusher's transaction dies mid-way: its INSERT ran, the connection is gone before the commit."""
    if when == "after" and statement.startswith("INSERT INTO audit_log"):
        raise ConnectionError("server closed the connection unexpectedly")


@pytest.mark.parametrize("failure", [refuse_the_insert, die_before_the_commit])
def test_a_failed_batch_fails_its_requests_and_gives_no_data_out(api, failure):
    headers = signed_in(api, f"specialist@{COMMUNE}")
    codes = [f"{COMMUNE}-261201-{n:04d}" for n in range(700, 710)]
    with statements_of(engine_of(api.container), on=failure):
        answers = read_dossiers(api, headers, codes)
    assert {a.status_code for a in answers} == {503}
    assert all(a.json()["error"]["code"] == "service_unavailable" for a in answers)
    assert all(DOSSIER["applicant"]["id_number"] not in a.text for a in answers)
    assert all(audit_entries(api, dossier_code=code) == [] for code in codes)  # none stored, none answered
    # the database back: the same reads are audited and answered
    assert [a.status_code for a in read_dossiers(api, headers, codes)] == [200] * len(codes)
    assert all(len(audit_entries(api, dossier_code=code)) == 1 for code in codes)
    delete_audit_rows(api, codes)


def test_the_writer_stores_every_row_of_many_writers_once(tmp_path):
    """The group commit alone: 100 greenthreads, each returns only when its row is committed."""
    from motcua import migrate

    url = f"sqlite:///{tmp_path / 'gateway.db'}"
    migrate.upgrade("gateway", url)
    engine = make_engine(url)
    writer = AuditWriter(engine, max_batch=16, linger=0.001)
    flusher = eventlet.spawn(writer.run)
    eventlet.sleep(0)
    caller = Caller("specialist@X", "X", ("specialist",))
    pool = eventlet.GreenPool(100)
    list(pool.imap(lambda n: writer.write(row(caller, "dossier.read", None, dossier_code=f"D-{n}")), range(100)))
    writer.stop()
    flusher.wait()
    with Session(engine) as session:
        codes = session.scalars(select(AuditEntry.dossier_code)).all()
        assert session.scalar(select(func.count()).select_from(AuditEntry)) == 100
    assert sorted(codes) == sorted(f"D-{n}" for n in range(100))
    engine.dispose()
