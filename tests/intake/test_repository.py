"""Dossiers in the database (SQLite): stored and read back whole, in one statement; a command is one
read, one write and its outbox row; workflow's events share a transaction; nothing is written that
did not change."""
from datetime import timedelta

import pytest
from nameko.testing.services import worker_factory
from sqlalchemy import event
from sqlalchemy.orm import Session

from motcua.contracts import make_event
from motcua.contracts.envelope import parse_event
from motcua.revocation import AccessCache
from services.intake import dossiers
from services.intake.models import Base
from services.intake.repository import COLUMNS, IntakeUnitOfWork
from services.intake.service import IntakeService
from tests.intake.test_dossiers import LAND_OFFICE, MONDAY_9AM, RECEPTIONIST, outbox, proof, submit

PDF = {"key": "don_de_nghi", "filename": "don.pdf", "content_base64": "JVBERi0xLjQKJSVFT0YK"}


def statements_of(engine):
    """The SQL statements the engine runs while the fixture lasts, as their first words."""
    seen = []
    listener = lambda conn, cursor, statement, *_: seen.append(" ".join(statement.split()[:3]))  # noqa: E731
    event.listen(engine, "before_cursor_execute", listener)
    yield seen
    event.remove(engine, "before_cursor_execute", listener)


@pytest.fixture
def statements(engine):
    yield from statements_of(engine)


def fresh(engine) -> IntakeUnitOfWork:
    return IntakeUnitOfWork(Session(engine, expire_on_commit=False), "intake", Base.metadata)


def later(hours):
    return MONDAY_9AM + timedelta(hours=hours)


def assigned(code, agency=LAND_OFFICE, step="Thẩm định"):
    return {"dossier_code": code, "agency_code": agency, "step": step, "assigned_at": later(2)}


def test_a_dossier_reads_back_as_it_was_saved(uow, policy, engine):
    dossier = submit(uow, policy)
    dossiers.request_supplement(uow, dossier.code, ["Đơn", "CCCD"], "ghi chú", RECEPTIONIST, later(1))
    dossiers.supplement(uow, policy, dossier.code, None, proof(), later(2), uploads=[PDF])
    dossiers.receive(uow, policy, dossier.code, RECEPTIONIST, later(3))
    dossiers.reschedule(uow, dossier.code, dossier.due_at + timedelta(days=2), "Chờ đo đạc", RECEPTIONIST, later(4))
    dossiers.task_assigned(uow, assigned(dossier.code))
    uow.commit()
    other = fresh(engine)
    again = other.dossiers.get(dossier.code, for_update=False)
    assert {key: getattr(again, key) for key in COLUMNS} == {key: getattr(dossier, key) for key in COLUMNS}
    assert again.agencies == dossier.agencies == (dossier.agency_code, LAND_OFFICE)
    assert again.supplements[0].items == ("Đơn", "CCCD") and again.documents[0].id == 1
    other.close()


def test_a_command_is_one_read_one_write_and_its_event(uow, policy, statements):
    dossier = submit(uow, policy)
    # the data keys (sealing.py) are read once per engine, by its first dossier, then kept
    assert statements == ["INSERT INTO dossier_counters", "SELECT data_keys.id, data_keys.wrapped,",
                          "INSERT INTO dossiers", "INSERT INTO dossier_agencies", "INSERT INTO outbox"]
    statements.clear()
    submit(uow, policy)
    assert statements == ["INSERT INTO dossier_counters", "INSERT INTO dossiers", "INSERT INTO dossier_agencies",
                          "INSERT INTO outbox"]
    statements.clear()
    dossiers.receive(uow, policy, dossier.code, RECEPTIONIST, later(1))
    assert statements == ["SELECT dossiers.id, dossiers.code,", "UPDATE dossiers SET", "INSERT INTO outbox"]
    statements.clear()
    dossiers.view(dossiers.get_for_staff(fresh(uow.session.get_bind()), dossier.code, RECEPTIONIST, policy.tree),
                  policy.calendar.tz, policy.catalog)
    assert statements == ["SELECT dossiers.id, dossiers.code,"]  # the staff view: one read, no write


def test_workflow_events_share_a_transaction_and_write_only_what_changed(uow, policy, engine, statements):
    dossier = submit(uow, policy)
    dossiers.receive(uow, policy, dossier.code, RECEPTIONIST, later(1))
    statements.clear()
    batch = fresh(engine)  # several events, one transaction: the dossier is read once
    dossiers.task_assigned(batch, assigned(dossier.code))
    dossiers.task_assigned(batch, assigned(dossier.code, step="Ký"))  # involved already, processing already
    dossiers.result_ready(batch, {"dossier_code": dossier.code, "agency_code": LAND_OFFICE, "finished_at": later(3)})
    batch.commit()
    assert [s for s in statements if s.startswith("SELECT")] == ["SELECT dossiers.id, dossiers.code,"]
    assert [e["data"]["dossier_version"] for e in outbox(batch)] == [1, 2, 3, 4]
    statements.clear()
    dossiers.task_assigned(batch, assigned(dossier.code, step="Lưu"))  # a new transaction: read again
    batch.commit()
    assert statements == ["SELECT dossiers.id, dossiers.code,"]  # nothing changed, nothing written
    stored = fresh(engine).dossiers.get(dossier.code, for_update=False)
    assert (stored.status, stored.version, stored.agencies) == ("result_ready", 4, (dossier.agency_code, LAND_OFFICE))
    batch.close()


def test_a_rolled_back_change_is_read_again_as_stored(uow, policy):
    dossier = submit(uow, policy)
    dossiers.task_assigned(uow, assigned(dossier.code))  # nothing to do while only submitted…
    dossier.status = "received"  # …but a change the transaction then abandons
    uow.rollback()
    assert uow.dossiers.get(dossier.code) is dossier and dossier.status == "submitted"


def test_a_step_completed_without_documents_costs_intake_nothing(uow, statements):
    service = worker_factory(IntakeService, revocations=AccessCache(5), db=uow)
    completed = parse_event(make_event("workflow", "task_completed", {
        "dossier_code": "000.20.01.H56-260302-0001", "task_id": "t1", "agency_code": LAND_OFFICE, "step": "x",
        "step_index": 0, "completed_at": MONDAY_9AM, "completed_by": "chuyenvien", "outcome": "approved",
        "timeliness": "on_time"}))
    service.on_task_completed(completed)
    assert statements == []  # not even the inbox
