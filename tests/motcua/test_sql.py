"""The shared SQL helpers on both dialects the services run on (motcua/sql.py)."""
from datetime import datetime, timezone

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from motcua.db import UnitOfWork, make_engine
from motcua.sql import MANY_ROWS
from services.intake.models import Base, outbox
from tests import infra


@pytest.fixture(params=["sqlite", "postgresql"])
def engine(request, tmp_path):
    """Intake's migrated database (its outbox is the table the helpers number)."""
    with infra.migrated_database(request, "intake", request.param, tmp_path) as url:
        engine = make_engine(url)
        yield engine
        engine.dispose()


@pytest.mark.parametrize("count", [3, MANY_ROWS + 1, 700])
def test_events_get_their_ids_in_emit_order_however_many_one_transaction_writes(engine, count):
    """A few events (a command's) and many (a history import's batch, numbered from the sequence
    first): the relay is handed each row with the id it was stored under, in the order emitted."""
    for round_ in range(2):  # the second transaction's ids follow the first's
        handed = []
        uow = UnitOfWork(Session(engine), "intake", Base.metadata, on_commit=handed.extend)
        emitted = [uow.emit("result_ready", {"dossier_code": f"D{round_}-{i}", "agency_code": "000.00.06.H56",
                                             "finished_at": datetime.now(timezone.utc)}) for i in range(count)]
        uow.commit()
        uow.close()
        with engine.connect() as connection:
            stored = connection.execute(select(outbox.c.id, outbox.c.event_id).order_by(outbox.c.id)).all()
        assert [row.event_id for row in stored[-count:]] == emitted
        assert [(row.id, row.payload["event_id"]) for row in handed] == [tuple(row) for row in stored[-count:]]
        assert len(stored) == count * (round_ + 1)
