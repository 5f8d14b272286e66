"""SQLAlchemy Core helpers the services' repositories share: a read path's statement on its own, and
several writes as one PostgreSQL statement. Each statement costs a service ~150–400 µs of CPU (the
driver's round trip under eventlet, SQLAlchemy's execution), whatever it does."""
from __future__ import annotations

from sqlalchemy import Connection, Row, Select, Table, insert, text
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


# Above this many rows, `insert_numbered` draws the ids first (see there).
MANY_ROWS = 64


def insert_numbered(connection: Connection, table: Table, rows: list[dict]) -> list[int]:
    """INSERT `rows` into `table`, returning their new ids (`table.c.id`) in `rows`' order.

    A few rows (a command's events): one multi-row INSERT … RETURNING. Many on PostgreSQL (a history
    import's batch): that statement has a placeholder per value, and psycopg parses the text of one so
    long on every execution (its cache stops at 4 kB), about 3 µs a value: 40 ms for a batch's 1,800
    outbox rows. So the ids are drawn from the table's sequence first, and the rows sent with them by the
    driver's pipelined executemany, whose short statement is parsed once."""
    if not rows:
        return []
    if connection.dialect.name != "postgresql" or len(rows) <= MANY_ROWS:
        return list(connection.execute(
            insert(table).returning(table.c.id, sort_by_parameter_order=True), rows).scalars())
    ids = sorted(connection.execute(_NEXT_IDS, {"table": table.name, "n": len(rows)}).scalars())
    connection.execute(insert(table), [{**row, "id": id_} for row, id_ in zip(rows, ids)])
    return ids


_NEXT_IDS = text("SELECT nextval(pg_get_serial_sequence(:table, 'id')) FROM generate_series(1, :n)")
