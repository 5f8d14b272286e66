"""The official calendar's decisions recorded after calendar.yaml (the province's admin, through the
API), as every service that counts working time keeps them in its own database: intake, which records
them and publishes `calendar_decided`, and workflow, which applies that event. One table shape, one way
to read and write it."""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import Boolean, Column, Date, MetaData, String, Table, select

from motcua.calendar import Decision
from motcua.db import UTCDateTime


def calendar_decisions_table(metadata: MetaData) -> Table:
    return Table(
        "calendar_decisions", metadata,
        Column("day", Date, primary_key=True),
        Column("kind", String(16), nullable=False),
        Column("source", String(500), nullable=False),
        Column("decided_year", Boolean, nullable=False),
        Column("decided_by", String(128), nullable=False),
        Column("decided_at", UTCDateTime(), nullable=False),
    )


def recorded(session, table: Table) -> list[tuple[Decision, bool]]:
    """Each decision, by date, with whether it completes its year's calendar (`Decisions.merged`)."""
    rows = session.execute(select(table).order_by(table.c.day)).all()
    return [(Decision(r.day, r.kind, r.source), r.decided_year) for r in rows]


def record(session, table: Table, decision: Decision, decided_year: bool, decided_by: str,
           decided_at: datetime) -> None:
    """Keep `decision`, replacing an earlier one about the same day."""
    session.execute(table.delete().where(table.c.day == decision.date))
    session.execute(table.insert().values(day=decision.date, kind=decision.kind, source=decision.source,
                                          decided_year=decided_year, decided_by=decided_by,
                                          decided_at=decided_at))
