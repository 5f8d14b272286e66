"""In-memory stand-ins of the kit's adapters, for rule tests that need no database and no broker.

A service's fake unit of work subclasses `FakeUnitOfWork` and adds fake repositories (dicts); the
rules under test run against it exactly as against `motcua.db.UnitOfWork`."""
from __future__ import annotations

import contextlib
from datetime import datetime
from typing import Any, Callable, Iterator

from motcua.contracts import Event, make_event
from motcua.idempotency import Command, StoredResult


class FakeUnitOfWork:
    """Records what the rules emit and how often they commit; applies an event once per consumer."""

    def __init__(self, source: str = "test"):
        self.source = source
        self.events: list[dict] = []          # committed events, in the wire format (make_event)
        self.pending: list[dict] = []         # emitted, not yet committed
        self.commits = 0
        self.applied: set[tuple[str, str]] = set()
        self._after_commit: list[Callable[[], None]] = []
        self.command_results = FakeCommandResults()
        self._commit_held = False

    def emit(self, event_type: str, data: dict, exchange: str | None = None, routing_key: str | None = None,
             event_id: str | None = None) -> str:
        payload = make_event(self.source, event_type, data)  # the contract is checked as for real
        if event_id:
            payload["event_id"] = event_id
        self.pending.append({**payload, "exchange": exchange, "routing_key": routing_key})
        return payload["event_id"]

    def after_commit(self, callback: Callable[[], None]) -> None:
        self._after_commit.append(callback)

    @contextlib.contextmanager
    def held_commit(self) -> Iterator[None]:
        self._commit_held = True
        try:
            yield
        finally:
            self._commit_held = False

    def commit(self) -> None:
        if self._commit_held:
            return
        self.commits += 1
        self.command_results.commit()
        self.events.extend(self.pending)
        self.pending = []
        callbacks, self._after_commit = self._after_commit, []
        for callback in callbacks:
            callback()

    def rollback(self) -> None:
        self.pending = []
        self.command_results.rollback()
        self._after_commit = []

    def apply_once(self, event: Event, consumer: str, apply: Callable[["FakeUnitOfWork", Event], None]) -> bool:
        if (event.event_id, consumer) in self.applied:
            return False
        apply(self, event)
        self.applied.add((event.event_id, consumer))
        self.commit()
        return True

    def emitted(self, event_type: str | None = None) -> list[dict]:
        """The data of the committed events (of one type)."""
        return [e["data"] for e in self.events if event_type is None or e["event_type"] == event_type]


class FakeCommandResults:
    """`motcua.idempotency.CommandResults` in memory: rows added in the current transaction are kept
    apart until the fake unit of work commits (and dropped when it rolls back)."""

    def __init__(self):
        self.rows: dict[tuple[str, str], StoredResult] = {}  # committed
        self._pending: dict[tuple[str, str], StoredResult] = {}

    def add(self, command: Command, result: Any, now: datetime) -> bool:
        if self.find(command.scope, command.key) is not None:
            return False
        self._pending[command.scope, command.key] = StoredResult(command.name, command.fingerprint, result, now)
        return True

    def find(self, scope: str, key: str) -> StoredResult | None:
        return self._pending.get((scope, key)) or self.rows.get((scope, key))

    def take_over(self, command: Command, result: Any, now: datetime, expired_before: datetime) -> bool:
        row = self.find(command.scope, command.key)
        if row is None or row.created_at > expired_before:
            return False
        self._pending[command.scope, command.key] = StoredResult(command.name, command.fingerprint, result, now)
        return True

    def commit(self) -> None:
        self.rows.update(self._pending)
        self._pending = {}

    def rollback(self) -> None:
        self._pending = {}
