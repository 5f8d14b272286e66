"""SQLAlchemy Core helpers the services' repositories share: a read path's statement on its own, and
several writes as one PostgreSQL statement. Each statement costs a service ~150–400 µs of CPU (the
driver's round trip under eventlet, SQLAlchemy's execution), whatever it does."""
from __future__ import annotations

import json
from functools import cache
from typing import Callable, Sequence

from sqlalchemy import (JSON, ColumnElement, Connection, Engine, Row, Select, Table, Text, TypeDecorator, bindparam, cast,
                        column, func, insert, select, text, update)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session
from sqlalchemy.sql.dml import Insert, Update, UpdateBase
from sqlalchemy.types import TypeEngine

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


def write_alone(engine: Engine, statement: UpdateBase) -> None:
    """One write that needs no transaction around it (its own is atomic), in autocommit mode: one round
    trip, where `engine.begin()` costs three (psycopg sends BEGIN on its own, then the statement, then
    COMMIT)."""
    with engine.connect() as connection:
        connection.execution_options(isolation_level="AUTOCOMMIT").execute(statement)


def last_results(connection: Connection, statements: list[str], count: int) -> list[list[tuple]]:
    """PostgreSQL: `statements` sent as one text, and the rows of the last `count` of them. The simple
    query protocol runs them in order in one round trip, inside the connection's transaction, each with
    a snapshot of its own (a statement after a lock sees what the lock's previous holder committed). The
    text takes no parameter: only values the caller made and checked may be written into it."""
    with connection.execution_options(no_parameters=True).exec_driver_sql("; ".join(statements)) as result:
        cursor = result.cursor
        for _ in statements[:-count]:
            cursor.nextset()
        rows = [cursor.fetchall()]
        for _ in range(count - 1):
            cursor.nextset()
            rows.append(cursor.fetchall())
    return rows


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


# Writing many rows (a batch of events): executemany runs the statement once per row, each run a round
# trip through the green driver's wait and an execution of its own in the database; a multi-VALUES
# statement (SQLAlchemy's for RETURNING) has a placeholder per value, which psycopg parses anew every
# time once the text passes its 4 kB cache. On PostgreSQL, past `FEW_ROWS` rows, the statements below
# take the rows as one array per column instead (`_arrays`): one short statement, sent, parsed and run
# once, whatever the number of rows. A few rows (the live path's batches of one or two events) go the
# plain way: the arrays cost ~50 µs more of a service's CPU for one row, ~280 µs less for 64 (inbox claims).
FEW_ROWS = 8


def insert_rows(table: Table, dialect: str, names: Sequence[str], order_by: Sequence[str] = (),
                many: bool = False) -> Insert:
    """An INSERT of rows of `table`'s columns `names` that takes `.on_conflict_do_…()` and `.returning()`;
    `many` on PostgreSQL: an INSERT … SELECT over the arrays, in `order_by`'s order (an upsert locks its
    rows in key order, so two writers cannot deadlock); the few rows of the other path are inserted as
    given, so pass them in that order. Build it in a function of (dialect, many) and run it with
    `execute_rows`."""
    if not (many and dialect == "postgresql"):
        return upsert_insert(table, dialect)
    each = _arrays([(name, table.c[name].type) for name in names])
    return postgresql.insert(table).from_select(
        list(names), select(*(each[name] for name in names)).order_by(*(each[name] for name in order_by)))


def update_rows(table: Table, dialect: str, key: str, names: Sequence[str], many: bool = False) -> Update:
    """An UPDATE of rows of `table`, each found by its column `key` (the row's `"key"` value: a parameter
    may not bear a column's name), setting the columns `names`."""
    if not (many and dialect == "postgresql"):
        return update(table).where(table.c[key] == bindparam("key"))  # SET: the other keys of the rows
    each = _arrays([("key", table.c[key].type), *((name, table.c[name].type) for name in names)])
    return update(table).where(table.c[key] == each["key"]).values({name: each[name] for name in names})


def execute_rows(connection: Connection, statement: Callable[[str, bool], UpdateBase], rows: list[dict]):
    """Run `statement(dialect, many)` (an `insert_rows` / `update_rows` statement, cached) for `rows`
    (dicts of the same keys, at least one): as arrays on PostgreSQL past `FEW_ROWS`, else as executemany."""
    dialect = connection.dialect.name
    if dialect == "postgresql" and len(rows) > FEW_ROWS:
        return connection.execute(statement(dialect, True),
                                  {f"each_{name}": [row[name] for row in rows] for name in rows[0]})
    return connection.execute(statement(dialect, False), rows)


class _JsonColumn(TypeDecorator):
    """A JSON column's values as one JSON array (one text parameter): an array of JSON texts would be
    escaped value by value by the driver, in Python. Each value is first what the column's own type
    makes of it (a TypeDecorator over JSON)."""

    impl = Text
    cache_ok = True

    def __init__(self, column_type: TypeEngine):
        super().__init__()
        self.column_type = column_type

    def process_bind_param(self, value, dialect):
        if isinstance(self.column_type, TypeDecorator):
            value = [self.column_type.process_bind_param(item, dialect) for item in value]
        return (dialect._json_serializer or json.dumps)(value)


def _is_json(type_: TypeEngine) -> bool:
    return isinstance(type_.impl_instance if isinstance(type_, TypeDecorator) else type_, JSON)


def _arrays(columns: list[tuple[str, TypeEngine]]):
    """The rows as a FROM of typed columns: `ROWS FROM (unnest(:each_a), json_array_elements(:each_b), …)`,
    one array per column (JSON columns as one JSON array, cast back to their type)."""
    functions, binds = [], []
    for name, type_ in columns:
        if _is_json(type_):
            functions.append(f"json_array_elements(CAST(:each_{name} AS JSON))")
            binds.append(bindparam(f"each_{name}", type_=_JsonColumn(type_)))
        else:
            functions.append(f"unnest(:each_{name})")  # the dialect casts it to its array type
            binds.append(bindparam(f"each_{name}", type_=postgresql.ARRAY(type_, dimensions=1)))
    names = ", ".join(name for name, _ in columns)
    each = text(f"SELECT * FROM ROWS FROM ({', '.join(functions)}) AS each({names})").bindparams(*binds).columns(
        *(column(name, Text if _is_json(type_) else type_) for name, type_ in columns)).subquery("each")
    return {name: cast(each.c[name], type_) if _is_json(type_) else each.c[name] for name, type_ in columns}


# Above this many rows, `insert_numbered` draws the ids first (see there).
MANY_ROWS = 64


def insert_numbered(connection: Connection, table: Table, rows: list[dict]) -> list[int]:
    """INSERT `rows` into `table`, returning their new ids (`table.c.id`) in `rows`' order.

    A few rows (a command's events): one multi-row INSERT … RETURNING. Many on PostgreSQL (a history
    import's batch): that statement has a placeholder per value, and psycopg parses the text of one so
    long on every execution (its cache stops at 4 kB), about 3 µs a value: 40 ms for a batch's 1,800
    outbox rows. So the ids are drawn from the table's sequence first (RETURNING of an INSERT … SELECT
    promises no order), and the rows sent with them as arrays (`insert_rows`)."""
    if not rows:
        return []
    if connection.dialect.name != "postgresql" or len(rows) <= MANY_ROWS:
        return list(connection.execute(
            insert(table).returning(table.c.id, sort_by_parameter_order=True), rows).scalars())
    ids = sorted(connection.execute(_NEXT_IDS, {"table": table.name, "n": len(rows)}).scalars())
    names = ("id", *rows[0])
    execute_rows(connection, lambda dialect, many: _insert_with_ids(table, names, dialect, many),
                 [{**row, "id": id_} for row, id_ in zip(rows, ids)])
    return ids


@cache
def _insert_with_ids(table: Table, names: tuple[str, ...], dialect: str, many: bool) -> Insert:
    return insert_rows(table, dialect, names, many=many)


_NEXT_IDS = text("SELECT nextval(pg_get_serial_sequence(:table, 'id')) FROM generate_series(1, :n)")
