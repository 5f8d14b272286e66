"""Dossiers in intake's database, and intake's unit of work.

One statement loads a dossier with everything its rules and views need (its row, JSON lists included,
joined with the agencies involved); saving writes only the columns that changed (nothing when nothing
did) and the agencies that joined. Several events may be applied in one transaction: a dossier is read
once per transaction (then kept), saved after each change, and read again after a rollback.
"""
from __future__ import annotations

from datetime import date

from sqlalchemy import bindparam, event, insert, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from motcua.db import UnitOfWork
from services.intake.domain import Dossier, dossier_code
from services.intake.models import dossier_agencies, dossier_counters, dossiers

COLUMNS = tuple(c.name for c in dossiers.columns if c.name != "id")
# A dossier's row with the agencies involved (one row each), built once.
_BY_CODE = (select(dossiers, dossier_agencies.c.agency_code.label("involved_agency"))
            .outerjoin(dossier_agencies, dossier_agencies.c.dossier_id == dossiers.c.id)
            .where(dossiers.c.code == bindparam("code")).order_by(dossier_agencies.c.id))
_BY_CODE_LOCKED = _BY_CODE.with_for_update(of=dossiers)


class DossierRepository:
    def __init__(self, session: Session):
        self.session = session
        self._identity: dict[str, Dossier] = {}  # one object per dossier for this unit of work's life
        self._stored: dict[str, tuple[dict, tuple[str, ...]]] = {}  # code -> its columns and agencies as stored
        self._read: dict[str, bool] = {}  # code -> locked, for what this transaction has read
        session.info[DossierRepository] = self

    def get(self, code: str, for_update: bool = True) -> Dossier | None:
        """The dossier, or None. `for_update` locks its row until commit, so two decisions (two
        receptionists, two workflow events handled at once) never both pass the status check."""
        if code in self._read and (self._read[code] or not for_update):
            return self._identity[code]
        rows = self.session.execute(_BY_CODE_LOCKED if for_update else _BY_CODE, {"code": code}).all()
        if not rows:
            self._identity.pop(code, None)
            return None
        state = {key: value for key, value in rows[0]._mapping.items() if key != "involved_agency"}
        agencies = tuple(row.involved_agency for row in rows if row.involved_agency is not None)
        dossier = self._identity.get(code)
        if dossier is None:
            dossier = self._identity[code] = Dossier(**state, agencies=agencies)
        else:  # the same object as before, as stored now
            vars(dossier).update(state, agencies=agencies, events=[])
        self._stored[code] = ({key: state[key] for key in COLUMNS}, agencies)
        self._read[code] = for_update
        return dossier

    def by_idempotency_key(self, key: str) -> Dossier | None:
        code = self.session.scalar(select(dossiers.c.code).where(dossiers.c.idempotency_key == key))
        return None if code is None else self.get(code, for_update=False)

    def next_code(self, agency_code: str, day: date) -> str:
        """The next dossier code: gap-free per agency per day, safe across instances. The counter row
        is incremented (one upsert) in the submitting transaction, so a rolled-back submission gives its
        number back and two instances serialize on the row lock."""
        table = dossier_counters
        number = self.session.execute(
            self._insert(table).values(agency_code=agency_code, day=day, last_value=1)
            .on_conflict_do_update(index_elements=[table.c.agency_code, table.c.day],
                                   set_={"last_value": table.c.last_value + 1})
            .returning(table.c.last_value)).scalar_one()
        return dossier_code(agency_code, day, number)

    def add(self, dossier: Dossier) -> bool:
        """Store a new dossier; False, storing nothing, when its idempotency key was taken meanwhile by a
        concurrent submission (the caller rolls back and answers with that one)."""
        state = {key: getattr(dossier, key) for key in COLUMNS}
        dossier.id = self.session.execute(
            self._insert(dossiers).values(**state)
            .on_conflict_do_nothing(index_elements=[dossiers.c.idempotency_key]).returning(dossiers.c.id)
        ).scalar()
        if dossier.id is None:
            return False
        self._insert_agencies(dossier.id, dossier.agencies)
        self._identity[dossier.code], self._read[dossier.code] = dossier, True
        self._stored[dossier.code] = (state, dossier.agencies)
        return True

    def save(self, dossier: Dossier) -> None:
        """Write what changed since the dossier was read or last saved: one UPDATE at most."""
        columns, agencies = self._stored[dossier.code]
        changed = {key: value for key in COLUMNS if (value := getattr(dossier, key)) != columns[key]}
        if changed:
            self.session.execute(update(dossiers).where(dossiers.c.id == dossier.id).values(**changed))
        self._insert_agencies(dossier.id, [code for code in dossier.agencies if code not in agencies])
        self._stored[dossier.code] = ({**columns, **changed}, dossier.agencies)

    def _insert_agencies(self, dossier_id: int, codes) -> None:
        if codes:
            self.session.execute(insert(dossier_agencies),
                                 [{"dossier_id": dossier_id, "agency_code": code} for code in codes])

    def _insert(self, table):
        """INSERT with ON CONFLICT, in the dialect's own construct (PostgreSQL, SQLite)."""
        return (postgresql if self.session.get_bind().dialect.name == "postgresql" else sqlite).insert(table)


@event.listens_for(Session, "after_commit")
@event.listens_for(Session, "after_soft_rollback")
def _transaction_ended(session: Session, *_) -> None:
    """What a transaction read may change before the next one: however it ended (the kit's commit, a
    rollback inside `apply_once`, a batch's), its repository reads again. Listened to once for all
    sessions: listening per session would cost each unit of work more than the reads it saves."""
    repository = session.info.get(DossierRepository)
    if repository is not None:
        repository._read.clear()


class IntakeUnitOfWork(UnitOfWork):
    """The kit's unit of work with intake's repository over its session."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.dossiers = DossierRepository(self.session)
