"""SQLAlchemy Core helpers the services' repositories share: a read path's statement on its own, and
several writes as one PostgreSQL statement. Each statement costs a service ~150–400 µs of CPU (the
driver's round trip under eventlet, SQLAlchemy's execution), whatever it does."""
from __future__ import annotations

from sqlalchemy import Row, Select, Table
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session
from sqlalchemy.sql.dml import Insert, UpdateBase

_UPSERT_INSERTS = {"postgresql": postgresql.insert, "sqlite": sqlite.insert}


def upsert_insert(table: Table, dialect: str) -> Insert:
    """An INSERT into `table` that takes `.on_conflict_do_nothing()` / `.on_conflict_do_update()` on
    `dialect` (PostgreSQL or SQLite, by `session.get_bind().dialect.name`)."""
    return _UPSERT_INSERTS[dialect](table)


def has_upsert(dialect: str) -> bool:
    return dialect in _UPSERT_INSERTS


def read_rows(session: Session, query, params: dict) -> list[Row]:
    """A read path's rows. Outside a transaction, on a connection of its own in autocommit mode: the read
    costs its statement alone (no BEGIN, no ROLLBACK and, after a rollback, no DEALLOCATE ALL of
    psycopg's prepared statements), and the session is left as it was. Inside one (a command reading
    what it wrote, a test), in that transaction."""
    if session.in_transaction():
        return session.connection().execute(query, params).all()
    with session.get_bind().connect() as connection:
        return connection.execution_options(isolation_level="AUTOCOMMIT").execute(query, params).all()


def one_statement(writes: list[UpdateBase | Select]) -> UpdateBase | Select:
    """PostgreSQL: `writes` (INSERT, UPDATE or DELETE, in order; the last may be a SELECT of what they
    return) as one statement, all but the last as data-modifying CTEs, each executed exactly once whether
    the last reads it or not. Parameters of the same name take the same value. All parts see the snapshot
    the statement started with (a part never reads another's rows, except through RETURNING); foreign keys
    are checked at the statement's end, so a row may reference one another part inserts."""
    *ctes, statement = writes
    for i, cte in enumerate(ctes):
        statement = statement.add_cte(cte.cte(f"write_{i}"))
    return statement
