"""notify's repositories in memory, for rule tests without a database.

Each mirrors its SQL twin in services/notify/repository.py (test_repository.py runs the same
scenarios against both): rows are stored as copies, so an object handed out changes the log only
when it is recorded, as with a database.
"""
from __future__ import annotations

import copy
import itertools
from datetime import datetime, timedelta

from motcua.fakes import FakeUnitOfWork
from services.notify.delivery import Delivery
from services.notify.preferences import Choice


class FakeDeliveryRepository:
    def __init__(self, rows: dict[int, dict], ids: itertools.count):
        self.rows = rows
        self.ids = ids

    def _all(self) -> list[Delivery]:
        return [Delivery.from_row(copy.deepcopy(row)) for _id, row in sorted(self.rows.items())]

    def _store(self, delivery: Delivery) -> None:
        self.rows[delivery.id] = copy.deepcopy(delivery.as_row())

    def add_new(self, owed: list[Delivery]) -> None:
        keys = {(r["event_id"], r["channel"], r["recipient_hash"]) for r in self.rows.values()}
        for delivery in owed:
            key = (delivery.event_id, delivery.channel, delivery.recipient_hash)
            if key not in keys:
                keys.add(key)
                row = copy.deepcopy(delivery.as_row())
                row["id"] = next(self.ids)
                self.rows[row["id"]] = row

    def claim_due(self, now: datetime, lease: timedelta, limit: int,
                  budgets: dict[str, int]) -> tuple[list[Delivery], datetime | None]:
        taken = dict.fromkeys(budgets, 0)
        claimed = []
        for delivery in sorted((d for d in self._all() if d.is_due(now)), key=lambda d: (d.next_attempt_at, d.id)):
            if len(claimed) == limit:
                break
            if delivery.provider in budgets:
                if taken[delivery.provider] >= budgets[delivery.provider]:
                    continue
                taken[delivery.provider] += 1
            claimed.append(delivery)
        ids = {d.id for d in claimed}
        rest_due_at = self._next_due(now, set(budgets), lambda d: d.id not in ids)
        for delivery in claimed:
            delivery.claim(now, lease)
            self._store(delivery)
        return claimed, rest_due_at if claimed else None

    def _next_due(self, now: datetime, limited: set[str], among=lambda d: True) -> datetime | None:
        return min((d.due_at for d in self._all() if d.due_at and among(d)
                    and not (d.provider in limited and d.due_at <= now)), default=None)

    def renew(self, claimed: list[Delivery], now: datetime, lease: timedelta) -> set[int]:
        held = set()
        for delivery in claimed:
            stored = Delivery.from_row(copy.deepcopy(self.rows[delivery.id]))
            if stored.holds(delivery.attempts):
                stored.renew(now, lease)
                self._store(stored)
                held.add(delivery.id)
        return held

    def record(self, changed: list[Delivery]) -> None:
        for delivery in changed:
            self._store(delivery)

    def next_due(self, now: datetime, limited: set[str]) -> datetime | None:
        return self._next_due(now, limited)

    def receipts_overdue(self, now: datetime, timeout: timedelta) -> list[Delivery]:
        return [d for d in self._all() if d.receipt_overdue(now, timeout)]

    def earliest_receipt_wait(self) -> datetime | None:
        return min((d.sent_at for d in self._all() if d.awaiting_receipt), default=None)

    def by_reference(self, provider: str, reference: str) -> Delivery | None:
        return next((d for d in self._all() if d.provider == provider and d.provider_ref == reference), None)

    def get(self, delivery_id: int) -> Delivery | None:
        return next((d for d in self._all() if d.id == delivery_id), None)

    def waiting_of(self, dossier_code: str, channels: list[str]) -> list[Delivery]:
        return [d for d in self._all() if d.dossier_code == dossier_code and d.channel in channels and d.waiting]

    def of_dossier(self, dossier_code: str) -> list[Delivery]:
        return sorted((d for d in self._all() if d.dossier_code == dossier_code), key=lambda d: (d.created_at, d.id))

    def dead_letters(self, limit: int) -> list[Delivery]:
        dead = sorted((d for d in self._all() if d.dead_letter), key=lambda d: (d.dead_lettered_at, d.id),
                      reverse=True)
        return dead[:limit]

    def open_dead_letters(self) -> dict[tuple, float]:
        counts: dict[tuple, float] = {}
        for delivery in self._all():
            if delivery.dead_letter:
                counts[(delivery.channel,)] = counts.get((delivery.channel,), 0) + 1
        return counts


class FakePreferenceRepository:
    def __init__(self, recorded: list[tuple[str, Choice]]):
        self._recorded = recorded

    def recorded(self, dossier_code: str) -> list[Choice]:
        return sorted((c for code, c in self._recorded if code == dossier_code), key=lambda c: c.recorded_at)

    def recorded_for(self, dossier_codes: set[str]) -> dict[str, list[Choice]]:
        return {code: self.recorded(code) for code in dossier_codes}

    def add(self, dossier_code: str, choices: list[Choice]) -> None:
        self._recorded.extend((dossier_code, choice) for choice in choices)


class FakeNotifyUnitOfWork(FakeUnitOfWork):
    """`FakeUnitOfWork` with notify's repositories over a `FakeNotifyLog` shared by every unit."""

    def __init__(self, log: "FakeNotifyLog"):
        super().__init__("notify")
        self.log = log
        self.applied = log.applied  # one inbox for the service
        self.deliveries = FakeDeliveryRepository(log.rows, log.ids)
        self.preferences = FakePreferenceRepository(log.choices)

    def commit(self) -> None:
        super().commit()
        self.log.commits += 1

    def close(self) -> None:
        self.rollback()


class FakeNotifyLog:
    """notify's database in memory: the delivery log, the choices, and how many commits it saw."""

    def __init__(self):
        self.rows: dict[int, dict] = {}
        self.ids = itertools.count(1)
        self.choices: list[tuple[str, Choice]] = []
        self.applied: set[tuple[str, str]] = set()
        self.commits = 0

    def unit_of_work(self) -> FakeNotifyUnitOfWork:
        return FakeNotifyUnitOfWork(self)

    def deliveries(self) -> list[Delivery]:
        return FakeDeliveryRepository(self.rows, self.ids)._all()
