"""notify's repositories over a unit of work's session, one SQL statement per batch.

`DeliveryRepository` hands out and takes back plain `Delivery` objects (delivery.py). Where a write
must be decided by the database itself (which rows are due, whether a claim still holds), the
statement's condition mirrors the object's rule (`Delivery.is_due`, `Delivery.holds`):
tests/notify/test_repository.py runs the same scenarios against the in-memory fake, SQLite and
PostgreSQL to keep them equal.
"""
from __future__ import annotations

from datetime import datetime, timedelta
from functools import cached_property, lru_cache

from sqlalchemy import (
    Boolean,
    Integer,
    and_,
    bindparam,
    case,
    func,
    null,
    or_,
    select,
    tuple_,
    update,
)
from sqlalchemy.orm import Session

from motcua.db import UTCDateTime
from motcua.idempotency import CommandUnitOfWork
from motcua.sql import upsert_insert
from services.notify.delivery import SENDING, WAITING_STATUSES, Delivery
from services.notify.models import DELIVERY_KEY, deliveries, preferences
from services.notify.preferences import LEGAL_BASIS, Choice

# What the moves of a Delivery change after it was planned; `address` and `context` only ever go
# to NULL (erased once delivered or skipped).
_MOVING = ("provider", "status", "reason", "attempts", "resends", "segments", "next_attempt_at", "lease_until",
           "provider_ref", "sent_at", "dead_lettered_at", "updated_at", "delivered_at")


def _waiting(table):
    return and_(table.c.status.in_(WAITING_STATUSES), table.c.dead_lettered_at.is_(None))


def _in_flight(table):
    return and_(table.c.status == SENDING, table.c.sent_at.is_(None))


def _due(table, now):
    """`Delivery.is_due(now)` in SQL."""
    return or_(and_(_waiting(table), table.c.next_attempt_at <= now),
               and_(_in_flight(table), table.c.lease_until <= now))


def _oldest_first(table):
    return table.c.next_attempt_at, table.c.id


def _due_at(table):
    """`Delivery.due_at` of a waiting or in-flight row."""
    return case((table.c.status == SENDING, table.c.lease_until), else_=table.c.next_attempt_at)


def _to_come(table, now, limited: set[str]):
    """Rows that will fall due, except those of a rate-limited provider already due: they wait for
    its next token, not for a time of their own."""
    condition = or_(_waiting(table), _in_flight(table))
    if limited:
        condition = and_(condition, or_(table.c.provider.not_in(list(limited)), _due_at(table) > now))
    return condition


class DeliveryRepository:
    def __init__(self, session: Session):
        self.session = session

    def _load(self, query) -> list[Delivery]:
        return [Delivery.from_row(row) for row in self.session.execute(query).mappings()]

    # --- planning ----------------------------------------------------------------------------------

    def add_new(self, owed: list[Delivery]) -> None:
        """All the messages a batch of events owes in one INSERT; one whose key (event, channel, recipient) is
        already in the log stays as it is (the second guard after the inbox)."""
        if owed:
            self.session.execute(_insert_new(self.session.get_bind().dialect.name),
                                 [{name: value for name, value in d.as_row().items() if name != "id"} for d in owed])

    # --- dispatching -------------------------------------------------------------------------------

    def claim_due(self, now: datetime, lease: timedelta, limit: int,
                  budgets: dict[str, int]) -> tuple[list[Delivery], datetime | None]:
        """Claim up to `limit` due rows, oldest first, in one statement (`Delivery.claim` in SQL):
        PostgreSQL skips rows another dispatcher is claiming at this moment (SKIP LOCKED) and
        re-checks the condition on each row it locks, so two dispatchers never claim the same try.
        `budgets`: providers under a rate limit → how many of their rows this round may take.

        Returns the rows claimed, oldest first, and (when it claimed any) when the next of the rows
        it left falls due, as `next_due` tells it (None: none to come)."""
        with_budget = tuple(sorted(name for name, budget in budgets.items() if budget > 0))
        statement = _claim_statement(tuple(sorted(budgets)), with_budget)
        rows = self.session.execute(statement, {
            "now": now, "lease_until": now + lease, "limit": limit,
            **{f"budget_{n}": budgets[name] for n, name in enumerate(with_budget)}}).mappings().all()
        claimed = sorted((Delivery.from_row(row) for row in rows), key=lambda d: (d.next_attempt_at, d.id))
        return claimed, rows[0]["rest_due_at"] if rows else None

    def renew(self, claimed: list[Delivery], now: datetime, lease: timedelta) -> set[int]:
        """Extend the leases of the claims that still hold (`Delivery.holds`) in one statement;
        returns their ids (a row taken over by another dispatcher is not among them)."""
        if not claimed:
            return set()
        held = self.session.execute(
            update(deliveries)
            .where(tuple_(deliveries.c.id, deliveries.c.attempts).in_([(d.id, d.attempts) for d in claimed]),
                   _in_flight(deliveries))
            .values(lease_until=now + lease, updated_at=now).returning(deliveries.c.id)).scalars()
        return set(held)

    def record(self, changed: list[Delivery]) -> None:
        """Write what the moves made of these rows: one UPDATE, executed for all of them at once."""
        if changed:
            self.session.execute(_record_statement(), [
                {"b_id": d.id, "b_keep": d.address is not None, **{f"b_{name}": getattr(d, name) for name in _MOVING}}
                for d in changed])

    def next_due(self, now: datetime, limited: set[str]) -> datetime | None:
        """When the next row falls due (`Delivery.due_at`), leaving out the rows of the rate-limited
        providers in `limited` that are due already."""
        return self.session.execute(_next_due_statement(tuple(sorted(limited))), {"now": now}).scalar()

    # --- receipts ----------------------------------------------------------------------------------

    def receipts_overdue(self, now: datetime, timeout: timedelta) -> list[Delivery]:
        """Rows whose receipt did not come within `timeout`, locked as `by_reference` locks them: a
        receipt arriving meanwhile is applied before or after, never lost (PostgreSQL re-checks the
        condition on each locked row)."""
        return self._load(select(deliveries).where(
            deliveries.c.status == SENDING, deliveries.c.sent_at.is_not(None), deliveries.c.sent_at <= now - timeout)
            .order_by(deliveries.c.id).with_for_update())

    def earliest_receipt_wait(self) -> datetime | None:
        """When the longest-waiting message still awaiting a receipt was accepted."""
        return self.session.execute(select(func.min(deliveries.c.sent_at)).where(
            deliveries.c.status == SENDING, deliveries.c.sent_at.is_not(None))).scalar()

    def by_reference(self, provider: str, reference: str) -> Delivery | None:
        found = self._load(select(deliveries).where(deliveries.c.provider == provider,
                                                    deliveries.c.provider_ref == reference)
                           .order_by(deliveries.c.id).limit(1).with_for_update())
        return found[0] if found else None

    # --- officers and citizens ---------------------------------------------------------------------

    def get(self, delivery_id: int) -> Delivery | None:
        """One row, locked until the transaction ends."""
        found = self._load(select(deliveries).where(deliveries.c.id == delivery_id).with_for_update())
        return found[0] if found else None

    def waiting_of(self, dossier_code: str, channels: list[str]) -> list[Delivery]:
        """A dossier's rows still queued on these channels (`Delivery.waiting`), locked."""
        return self._load(select(deliveries).where(
            deliveries.c.dossier_code == dossier_code, deliveries.c.channel.in_(channels), _waiting(deliveries))
            .order_by(deliveries.c.id).with_for_update())

    def of_dossier(self, dossier_code: str) -> list[Delivery]:
        """A dossier's deliveries, oldest first."""
        return self._load(select(deliveries).where(deliveries.c.dossier_code == dossier_code)
                          .order_by(deliveries.c.created_at, deliveries.c.id))

    def dead_letters(self, limit: int) -> list[Delivery]:
        return self._load(select(deliveries).where(deliveries.c.dead_lettered_at.is_not(None))
                          .order_by(deliveries.c.dead_lettered_at.desc(), deliveries.c.id.desc()).limit(limit))

    def open_dead_letters(self) -> dict[tuple, float]:
        """Dead letters waiting for an officer, by channel (a scrape-time gauge)."""
        rows = self.session.execute(select(deliveries.c.channel, func.count())
                                    .where(deliveries.c.dead_lettered_at.is_not(None))
                                    .group_by(deliveries.c.channel))
        return {(channel,): count for channel, count in rows}


class PreferenceRepository:
    def __init__(self, session: Session):
        self.session = session

    def recorded(self, dossier_code: str) -> list[Choice]:
        """A dossier's choices in the order they were made."""
        return self.recorded_for({dossier_code})[dossier_code]

    def recorded_for(self, dossier_codes: set[str]) -> dict[str, list[Choice]]:
        """The choices of several dossiers (a batch of events) in one statement, each in its order."""
        found: dict[str, list[Choice]] = {code: [] for code in dossier_codes}
        if dossier_codes:
            for code, *choice in self.session.execute(_choices_of_dossiers(), {"codes": sorted(dossier_codes)}):
                found[code].append(Choice(*choice))
        return found

    def add(self, dossier_code: str, choices: list[Choice]) -> None:
        if choices:
            self.session.execute(preferences.insert().values([
                {"dossier_code": dossier_code, "channel": c.channel, "opted_out": c.opted_out,
                 "legal_basis": LEGAL_BASIS, "source": c.source, "recorded_at": c.recorded_at} for c in choices]))


class NotifyUnitOfWork(CommandUnitOfWork):
    """The kit's unit of work (with its command results) and notify's repositories over its session."""

    @cached_property
    def deliveries(self) -> DeliveryRepository:  # made with the session, when first needed
        return DeliveryRepository(self.session)

    @cached_property
    def preferences(self) -> PreferenceRepository:
        return PreferenceRepository(self.session)



# Statements built once (each costs a millisecond of CPU to build); values are bound at each call.

@lru_cache(maxsize=2)
def _insert_new(dialect: str):
    """INSERT … ON CONFLICT DO NOTHING on the delivery's key. RETURNING makes SQLAlchemy send the
    rows of an executemany as one INSERT … VALUES (…), (…) ("insertmanyvalues"), not one per row."""
    return upsert_insert(deliveries, dialect).on_conflict_do_nothing(index_elements=DELIVERY_KEY).returning(deliveries.c.id)


@lru_cache(maxsize=1)
def _record_statement():
    keep = bindparam("b_keep", type_=Boolean)
    return (update(deliveries).where(deliveries.c.id == bindparam("b_id"))
            .values({**{name: bindparam(f"b_{name}") for name in _MOVING},
                     "address": case((keep, deliveries.c.address), else_=null()),
                     "context": case((keep, deliveries.c.context), else_=null())}))


@lru_cache(maxsize=1)
def _choices_of_dossiers():
    p = preferences.c
    return (select(p.dossier_code, p.channel, p.opted_out, p.source, p.recorded_at)
            .where(p.dossier_code.in_(bindparam("codes", expanding=True))).order_by(p.recorded_at, p.id))


@lru_cache(maxsize=32)
def _next_due_statement(limited: tuple[str, ...]):
    now = bindparam("now", type_=UTCDateTime())
    return select(func.min(_due_at(deliveries))).where(_to_come(deliveries, now, set(limited)))


@lru_cache(maxsize=32)
def _claim_statement(limited: tuple[str, ...], with_budget: tuple[str, ...]):
    """The claiming UPDATE for one set of rate-limited providers (those with a budget this round in
    `with_budget`), built once: the time, lease, limit and budgets are bound at each round."""
    now = bindparam("now", type_=UTCDateTime())
    due = deliveries.alias("due")
    pick = select(due.c.id).where(_due(due, now))
    if limited:
        within = [due.c.provider.not_in(list(limited))]
        for n, provider in enumerate(with_budget):
            ranked = deliveries.alias(f"provider_due_{n}")
            within.append(due.c.id.in_(
                select(ranked.c.id).where(_due(ranked, now), ranked.c.provider == provider)
                .order_by(*_oldest_first(ranked)).limit(bindparam(f"budget_{n}", type_=Integer))))
        pick = pick.where(or_(*within))
    # Materialized: evaluated once. Inlined, PostgreSQL may run the subquery again for each row the
    # UPDATE visits, and each run, seeing the rows just claimed as no longer due, picks others.
    picked = (pick.order_by(*_oldest_first(due)).limit(bindparam("limit", type_=Integer))
              .with_for_update(skip_locked=True).cte("picked").prefix_with("MATERIALIZED"))
    rest = deliveries.alias("rest")
    rest_due_at = (select(func.min(_due_at(rest)))
                   .where(_to_come(rest, now, set(limited)), rest.c.id.not_in(select(picked.c.id)))
                   .scalar_subquery())
    return (update(deliveries).where(deliveries.c.id.in_(select(picked.c.id)), _due(deliveries, now))
            .values(status=SENDING, attempts=deliveries.c.attempts + 1,
                    lease_until=bindparam("lease_until", type_=UTCDateTime()), updated_at=now)
            .returning(*deliveries.c, rest_due_at.label("rest_due_at")))
