"""The unit of work: outbox rows commit with the business change; the inbox applies an event once."""
from datetime import datetime, timezone

import pytest
from sqlalchemy import String, create_engine, event as sqlalchemy_event, func, select
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column

from motcua.contracts import make_event, parse_event
from motcua.db import ServiceBase, UnitOfWork, reliability_tables


class Base(ServiceBase, DeclarativeBase):
    pass


outbox, inbox = reliability_tables(Base.metadata)


class Note(Base):
    __tablename__ = "notes"
    id: Mapped[int] = mapped_column(primary_key=True)
    text: Mapped[str] = mapped_column(String(50))


@pytest.fixture
def engine():
    engine = create_engine("sqlite://")
    Base.metadata.create_all(engine)
    return engine


def event(code="D1"):
    return parse_event(make_event("workflow", "result_ready", {
        "dossier_code": code, "agency_code": "000.00.06.H56", "finished_at": datetime.now(timezone.utc)}))


def rows(engine, table):
    with engine.connect() as connection:
        return connection.execute(select(func.count()).select_from(table)).scalar_one()


def test_events_are_written_only_with_the_commit(engine):
    woken = []
    uow = UnitOfWork(Session(engine), "workflow", Base.metadata, on_commit=lambda rows: woken.append([row.event_type for row in rows]))
    uow.session.add(Note(text="a"))
    uow.emit("result_ready", {"dossier_code": "D1", "agency_code": "000.00.06.H56",
                              "finished_at": datetime.now(timezone.utc)})
    uow.close()  # rolled back: neither the note nor its event exists
    assert rows(engine, outbox) == 0 and rows(engine, Note.__table__) == 0 and woken == []
    uow = UnitOfWork(Session(engine), "workflow", Base.metadata, on_commit=lambda rows: woken.append([row.event_type for row in rows]))
    uow.session.add(Note(text="b"))
    uow.emit("result_ready", {"dossier_code": "D1", "agency_code": "000.00.06.H56",
                              "finished_at": datetime.now(timezone.utc)})
    uow.commit()  # and the row is handed to the relay
    assert rows(engine, outbox) == 1 and rows(engine, Note.__table__) == 1 and woken == [["result_ready"]]


def test_an_event_that_breaks_its_contract_is_refused_before_it_is_stored(engine):
    uow = UnitOfWork(Session(engine), "workflow", Base.metadata)
    with pytest.raises(ValueError):
        uow.emit("result_ready", {"dossier_code": "D1"})
    with pytest.raises(ValueError):
        uow.emit("no_such_event", {})


def test_apply_once_applies_an_event_once_per_consumer(engine):
    duplicates = []
    applied = []

    def apply(uow, e):
        uow.session.add(Note(text=e.data["dossier_code"]))
        applied.append(e.event_id)

    e = event()
    for consumer in ("a", "a", "b"):
        uow = UnitOfWork(Session(engine), "workflow", Base.metadata, on_duplicate=duplicates.append)
        uow.apply_once(e, consumer, apply)
        uow.close()
    assert len(applied) == 2 and rows(engine, Note.__table__) == 2
    assert duplicates == ["a"]


def test_a_failed_apply_leaves_no_trace_so_a_retry_applies_it(engine):
    e = event()

    def explode(uow, _):
        uow.session.add(Note(text="half"))
        raise RuntimeError("boom")

    uow = UnitOfWork(Session(engine), "workflow", Base.metadata)
    with pytest.raises(RuntimeError):
        uow.apply_once(e, "a", explode)
    uow.close()
    assert rows(engine, inbox) == 0 and rows(engine, Note.__table__) == 0
    uow = UnitOfWork(Session(engine), "workflow", Base.metadata)
    assert uow.apply_once(e, "a", lambda u, ev: u.session.add(Note(text="whole")))
    uow.close()
    assert rows(engine, Note.__table__) == 1


def test_a_batch_claims_every_delivery_with_one_statement_and_each_answer_once(engine):
    seen, statements = event("D0"), []
    uow = UnitOfWork(Session(engine), "workflow", Base.metadata)
    uow.apply_once(seen, "reporting.result_ready", lambda unit, e: None)
    fresh, again = event("D1"), event("D2")
    uow = UnitOfWork(Session(engine), "workflow", Base.metadata)
    sqlalchemy_event.listen(engine, "before_cursor_execute", lambda *args: statements.append(args[2]))
    uow.claim_all([(seen, "reporting.result_ready"), (fresh, "reporting.result_ready"),
                   (fresh, "notify.plan"), (again, "reporting.result_ready"), (again, "reporting.result_ready")])
    assert len(statements) == 1 and statements[0].startswith("INSERT INTO inbox")
    assert not uow.claim(seen, "reporting.result_ready")  # applied by an earlier transaction
    assert uow.claim(fresh, "reporting.result_ready") and uow.claim(fresh, "notify.plan")
    assert uow.claim(again, "reporting.result_ready")
    assert not uow.claim(again, "reporting.result_ready")  # delivered twice in the batch: the repeat is one
    uow.commit()
    assert rows(engine, inbox) == 4


def test_a_unit_of_work_makes_its_session_only_when_the_work_needs_one(engine):
    made = []

    def make():
        made.append(Session(engine))
        return made[-1]

    untouched = UnitOfWork(make, "workflow", Base.metadata)
    untouched.commit()
    untouched.close()  # a worker answered from memory: no session, nothing for the garbage collector
    assert made == []
    used = UnitOfWork(make, "workflow", Base.metadata)
    used.session.add(Note(text="c"))
    used.commit()
    assert len(made) == 1 and used.session is made[0] and rows(engine, Note.__table__) == 1
