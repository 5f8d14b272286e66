"""Dossiers in intake's database, and intake's unit of work.

One statement loads a dossier with everything its rules and views need (its row, JSON lists included,
joined with the agencies involved); saving writes only the columns that changed (nothing when nothing
did) and the agencies that joined. The applicant's ID number and phone are stored encrypted
(`sealing.py`): sealed on the way in, opened on the way out, in clear only in memory. Several events may
be applied in one transaction: a dossier is read once per transaction (then kept), saved after each
change, and read again after a rollback.
"""
from __future__ import annotations

import weakref
from datetime import date, datetime
from functools import cache, cached_property

from sqlalchemy import bindparam, event, func, insert, select, update
from sqlalchemy.dialects import postgresql
from sqlalchemy.orm import Session

from motcua.idempotency import CommandUnitOfWork
from motcua.sql import insert_numbered, one_statement, read_rows, upsert_insert
from services.intake.domain import Dossier, dossier_code
from services.intake.models import dossier_agencies, dossier_counters, dossiers, shipments
from services.intake.sealing import DataKeys, environment_data_keys

COLUMNS = tuple(c.name for c in dossiers.columns if c.name != "id")
# The agencies involved, gathered in the dossier's row in the order they joined (one row to read, its
# JSON lists parsed once): an array on PostgreSQL, a comma-separated list on SQLite.
_JOINED = (select(dossier_agencies.c.agency_code).where(dossier_agencies.c.dossier_id == dossiers.c.id)
           .order_by(dossier_agencies.c.id))
_INVOLVED = {
    "postgresql": select(func.array_agg(postgresql.aggregate_order_by(dossier_agencies.c.agency_code,
                                                                       dossier_agencies.c.id)))
    .where(dossier_agencies.c.dossier_id == dossiers.c.id),
    "sqlite": select(func.group_concat(_JOINED.correlate(dossiers).subquery().c.agency_code, ",")),
}


@cache
def _by_code(dialect: str, locked: bool):
    """A dossier's row with the agencies involved (`involved`), built once per dialect."""
    involved = _INVOLVED[dialect].scalar_subquery().label("involved")
    query = select(dossiers, involved).where(dossiers.c.code == bindparam("code"))
    return query.with_for_update(of=dossiers) if locked else query


def _involved(value) -> tuple[str, ...]:
    if not value:
        return ()
    return tuple(value.split(",")) if isinstance(value, str) else tuple(value)


class DossierRepository:
    def __init__(self, session: Session, data_keys: DataKeys | None = None):
        """`data_keys`: those of another KEK than the environment's (a test's)."""
        self.session = session
        self.data_keys = data_keys or environment_data_keys()
        self._identity: dict[str, Dossier] = {}  # one object per dossier for this unit of work's life
        self._stored: dict[str, tuple[dict, tuple[str, ...]]] = {}  # code -> its columns and agencies as stored
        self._read: dict[str, bool] = {}  # code -> locked, for what this transaction has read
        # A weak reference: a strong one would make session and repository a cycle, which only the
        # cyclic garbage collector frees (a full session per worker left for it to find).
        session.info[DossierRepository] = weakref.ref(self)

    def get(self, code: str, for_update: bool = True) -> Dossier | None:
        """The dossier, or None. `for_update` locks its row until commit, so two decisions (two
        receptionists, two workflow events handled at once) never both pass the status check. A read
        without the lock outside a transaction (a staff view) runs on its own, in autocommit."""
        if code in self._read and (self._read[code] or not for_update):
            return self._identity[code]
        query, params = _by_code(self._dialect(), for_update), {"code": code}
        in_transaction = for_update or self.session.in_transaction()
        rows = self._connection().execute(query, params).all() if for_update else read_rows(self.session, query, params)
        if not rows:
            self._identity.pop(code, None)
            return None
        state = dict(rows[0]._mapping)
        self.data_keys.opened(self.session, state)
        agencies = _involved(state.pop("involved"))
        dossier = self._identity.get(code)
        if dossier is None:
            dossier = self._identity[code] = Dossier(**state, agencies=agencies)
        else:  # the same object as before, as stored now
            vars(dossier).update(state, agencies=agencies, events=[])
        self._stored[code] = ({key: state[key] for key in COLUMNS}, agencies)
        if in_transaction:  # what an autocommit read saw may change before the next read
            self._read[code] = for_update
        return dossier

    def received_at_agency(self, agency_code: str, start: datetime, end: datetime) -> list[tuple[str, datetime]]:
        """(code, received_at) of the dossiers `agency_code` received in [start, end), in order of receipt."""
        query = (select(dossiers.c.code, dossiers.c.received_at)
                 .where(dossiers.c.agency_code == agency_code, dossiers.c.received_at >= start,
                        dossiers.c.received_at < end)
                 .order_by(dossiers.c.received_at, dossiers.c.code))
        return [(row.code, row.received_at) for row in read_rows(self.session, query, {})]

    def next_code(self, agency_code: str, day: date) -> str:
        """The next dossier code: gap-free per agency per day, safe across instances. The counter row
        is incremented (one upsert) in the submitting transaction, so a rolled-back submission gives its
        number back and two instances serialize on the row lock."""
        number = self._connection().execute(_next_number(self._dialect()), {"agency_code": agency_code,
                                                                           "day": day}).scalar_one()
        return dossier_code(agency_code, day, number)

    def existing(self, codes: list[str]) -> set[str]:
        """Those of `codes` already in intake (one statement): what a history import skips."""
        query = select(dossiers.c.code).where(dossiers.c.code.in_(bindparam("codes", expanding=True)))
        return {row.code for row in self._connection().execute(query, {"codes": list(codes)})}

    def skip_numbers(self, numbers: dict[tuple[str, date], int]) -> None:
        """The live sequence of each (agency, day) goes on past `number`: imported codes of the live shape
        are never handed out again (one statement per 500)."""
        rows = [{"agency_code": agency, "day": day, "number": number} for (agency, day), number in numbers.items()]
        statement = _skip_numbers(self._dialect())
        for start in range(0, len(rows), 500):
            self._connection().execute(statement, rows[start:start + 500])

    def add(self, dossier: Dossier) -> None:
        """Store a new dossier and its agencies: one statement on PostgreSQL."""
        state = {key: getattr(dossier, key) for key in COLUMNS}
        stored = self.data_keys.sealed(self.session, dossier.code, state)
        params = {**{f"new_{key}": value for key, value in stored.items()},
                  **{f"agency_{i}": code for i, code in enumerate(dossier.agencies)}}
        if self._dialect() == "postgresql":
            dossier.id = self._connection().execute(_add(len(dossier.agencies)), params).scalar_one()
        else:
            dossier.id = self._connection().execute(_insert_dossier("sqlite"), params).scalar_one()
            self._insert_agencies(dossier.id, dossier.agencies)
        self._identity[dossier.code], self._read[dossier.code] = dossier, True
        self._stored[dossier.code] = (state, dossier.agencies)

    def add_all(self, new: list[Dossier]) -> None:
        """Store many new dossiers (a history import's batch): their rows, then their agencies, each by
        one INSERT (`insert_numbered`), personal columns sealed as `add` seals them."""
        if not new:
            return
        states = [{key: getattr(dossier, key) for key in COLUMNS} for dossier in new]
        rows = [self.data_keys.sealed(self.session, dossier.code, state) for dossier, state in zip(new, states)]
        ids = insert_numbered(self._connection(), dossiers, rows)
        self._connection().execute(insert(dossier_agencies), [
            {"dossier_id": id_, "agency_code": code} for dossier, id_ in zip(new, ids) for code in dossier.agencies])
        for dossier, id_, state in zip(new, ids, states):
            dossier.id = id_
            self._identity[dossier.code], self._read[dossier.code] = dossier, True
            self._stored[dossier.code] = (state, dossier.agencies)

    def save(self, dossier: Dossier) -> None:
        """Write what changed since the dossier was read or last saved: its changed columns and the
        agencies that joined, one statement at most on PostgreSQL (nothing when nothing changed)."""
        columns, agencies = self._stored[dossier.code]
        changed = {key: value for key in COLUMNS if (value := getattr(dossier, key)) != columns[key]}
        joined = [code for code in dossier.agencies if code not in agencies]
        stored = self.data_keys.sealed(self.session, dossier.code, changed)
        params = {"dossier_id": dossier.id, **{f"new_{key}": value for key, value in stored.items()},
                  **{f"agency_{i}": code for i, code in enumerate(joined)}}
        if self._dialect() == "postgresql":
            if changed or joined:
                self._connection().execute(_save(tuple(changed), len(joined)), params)
        else:
            if changed:
                self._connection().execute(_update(tuple(changed)), params)
            self._insert_agencies(dossier.id, joined)
        self._stored[dossier.code] = ({**columns, **changed}, dossier.agencies)

    def _insert_agencies(self, dossier_id: int, codes) -> None:
        """SQLite: each agency's row (PostgreSQL writes them with the dossier's)."""
        if codes:
            self._connection().execute(_join("sqlite", ""), [{"dossier_id": dossier_id, "agency": code}
                                                             for code in codes])

    def _connection(self):
        return self.session.connection()

    def _dialect(self) -> str:
        return self.session.get_bind().dialect.name


# Statements built once per shape (building one costs more than its cached compilation). Parameters:
# `new_<column>` for the dossier's columns, `dossier_id`, `agency<suffix>` for an agency that joins.

@cache
def _next_number(dialect: str):
    table = dossier_counters
    return (upsert_insert(table, dialect).values(agency_code=bindparam("agency_code"), day=bindparam("day"), last_value=1)
            .on_conflict_do_update(index_elements=[table.c.agency_code, table.c.day],
                                   set_={"last_value": table.c.last_value + 1})
            .returning(table.c.last_value))


@cache
def _skip_numbers(dialect: str):
    table = dossier_counters
    insert = upsert_insert(table, dialect).values(agency_code=bindparam("agency_code"), day=bindparam("day"),
                                                  last_value=bindparam("number"))
    larger = func.greatest if dialect == "postgresql" else func.max  # SQLite's max() of several is scalar
    return insert.on_conflict_do_update(index_elements=[table.c.agency_code, table.c.day],
                                        set_={"last_value": larger(table.c.last_value, insert.excluded.last_value)})


@cache
def _insert_dossier(dialect: str):
    return (upsert_insert(dossiers, dialect).values({key: bindparam(f"new_{key}", type_=dossiers.c[key].type)
                                                 for key in COLUMNS})
            .returning(dossiers.c.id))


@cache
def _add(agency_count: int):
    """PostgreSQL: the dossier's row, then each agency's with the new id, in one statement; its id."""
    inserted = _insert_dossier("postgresql").cte("inserted")
    agency = dossier_agencies.c.agency_code.type
    joins = [postgresql.insert(dossier_agencies).from_select(
        ["dossier_id", "agency_code"], select(inserted.c.id, bindparam(f"agency_{i}", type_=agency)))
        for i in range(agency_count)]
    return one_statement([*joins, select(inserted.c.id)])


@cache
def _update(columns: tuple[str, ...]):
    return (update(dossiers).where(dossiers.c.id == bindparam("dossier_id"))
            .values({key: bindparam(f"new_{key}", type_=dossiers.c[key].type) for key in columns}))


@cache
def _join(dialect: str, suffix: str):
    """An agency joins the dossier (parameters `dossier_id`, `agency<suffix>`)."""
    return upsert_insert(dossier_agencies, dialect).values(
        dossier_id=bindparam("dossier_id"),
        agency_code=bindparam(f"agency{suffix}", type_=dossier_agencies.c.agency_code.type))


@cache
def _save(columns: tuple[str, ...], agency_count: int):
    """PostgreSQL: the changed columns and the agencies that joined, one statement."""
    joins = [_join("postgresql", f"_{i}") for i in range(agency_count)]
    return one_statement([_update(columns), *joins] if columns else joins)


@event.listens_for(Session, "after_commit")
@event.listens_for(Session, "after_soft_rollback")
def _transaction_ended(session: Session, *_) -> None:
    """What a transaction read may change before the next one: however it ended (the kit's commit, a
    rollback inside `apply_once`, a batch's), its repository reads again. Listened to once for all
    sessions: listening per session would cost each unit of work more than the reads it saves."""
    reference = session.info.get(DossierRepository)
    repository = reference() if reference is not None else None
    if repository is not None:
        repository._read.clear()


class ShipmentRepository:
    """The shipments owed to the postal service (services/intake/postal.py), one row per dossier and kind."""

    def __init__(self, session: Session):
        self.session = session

    def owe(self, code: str, kind: str, at: datetime) -> None:
        """Owed once: a repeated event (or a second result ready) adds nothing."""
        statement = upsert_insert(shipments, self.session.get_bind().dialect.name).values(
            dossier_code=code, kind=kind, state="owed", attempts=0, owed_at=at, next_attempt_at=at)
        self.session.execute(statement.on_conflict_do_nothing(index_elements=["dossier_code", "kind"]))

    def claim_due(self, now: datetime, lease_until: datetime, limit: int) -> list[dict]:
        """Owed rows due now, leased (SKIP LOCKED: instances share them), in the order they fell due."""
        rows = self.session.execute(select(shipments).where(shipments.c.state == "owed",
                                                            shipments.c.next_attempt_at <= now)
                                    .order_by(shipments.c.next_attempt_at, shipments.c.id).limit(limit)
                                    .with_for_update(skip_locked=True)).mappings().all()
        if rows:
            self.session.execute(update(shipments).where(shipments.c.id.in_([r["id"] for r in rows]))
                                 .values(next_attempt_at=lease_until))
        return [dict(row) for row in rows]

    def record(self, shipment_id: int, **values) -> None:
        self.session.execute(update(shipments).where(shipments.c.id == shipment_id).values(**values))

    def by_carrier_id(self, carrier_id: str) -> dict | None:
        row = self.session.execute(select(shipments).where(shipments.c.carrier_id == carrier_id)
                                   .with_for_update()).mappings().first()
        return dict(row) if row else None


class IntakeUnitOfWork(CommandUnitOfWork):
    """The kit's unit of work (with its command results) and intake's repositories over its session."""

    @cached_property
    def dossiers(self) -> DossierRepository:  # made with the session, when first needed
        return DossierRepository(self.session)

    @cached_property
    def shipments(self) -> ShipmentRepository:
        return ShipmentRepository(self.session)
