"""Nhật ký thao tác và truy cập: every staff action and every staff read of personal data through the
gateway (who, when, from where, on what, allowed or denied), and the refusals the owning services
report (`access_denied` events); queryable by a platform admin.
"""
from __future__ import annotations

import logging
import time
from contextlib import contextmanager
from datetime import datetime, time as day_start, timedelta
from typing import Callable
from zoneinfo import ZoneInfo

import eventlet
from eventlet.event import Event as GreenEvent
from sqlalchemy import func, insert, select
from sqlalchemy.engine import Engine

from motcua.db import UnitOfWork, utcnow
from motcua.errors import Forbidden, NotFound
from motcua.identity import Caller
from services.gateway.errors import AuditUnavailable
from services.gateway.models import AuditEntry

log = logging.getLogger(__name__)

ALLOWED, DENIED = "allowed", "denied"


class AuditWriter:
    """Group commit of the audit log: a request hands its row over and waits until the batch holding
    it is committed, then answers; so no request answers as audited without its row stored, and a
    crash loses no row of an answered request. One flusher writes each batch (the rows handed over
    while the previous batch was being written, and those of the next `linger` seconds, at most
    `max_batch`) as ONE multi-row INSERT and ONE commit. A failed batch fails every request in it
    (`AuditUnavailable`): none of them answers as if audited."""

    def __init__(self, engine: Engine, max_batch: int = 64, linger: float = 0.005, timeout: float = 10.0,
                 observe: Callable[[int, bool], None] = lambda rows, stored: None):
        """`observe(rows, stored)`: told of every batch (its size, whether it was committed)."""
        self.engine = engine
        self.observe = observe
        self.max_batch = max_batch  # 64 rows × 11 columns stay under SQLite's 999 parameters
        self.linger = linger
        self.timeout = timeout
        self._pending: list[tuple[dict, GreenEvent]] = []
        self._wakeup = GreenEvent()
        self._running = False

    def write(self, row: dict) -> None:
        """Store `row` (an audit_log row), or raise AuditUnavailable: returns once it is committed."""
        if not self._running:  # not started (tests, tools) or stopping: a batch of one
            self._flush([(row, None)])
            return
        stored = GreenEvent()
        self._pending.append((row, stored))
        if not self._wakeup.ready():
            self._wakeup.send(True)
        with eventlet.Timeout(self.timeout, AuditUnavailable("the audit log did not answer in time")):
            stored.wait()  # raises what the flusher sent

    def run(self) -> None:
        """The flusher (a managed thread): batch after batch until stopped and drained."""
        self._running = True
        while self._running or self._pending:
            if not self._pending:
                self._wakeup.wait()
                self._wakeup = GreenEvent()
                continue
            if self.linger and self._running:
                eventlet.sleep(self.linger)
            batch, self._pending = self._pending[:self.max_batch], self._pending[self.max_batch:]
            try:
                self._flush(batch)
            except AuditUnavailable as failure:
                for _row, stored in batch:
                    stored.send_exception(failure)
            else:
                for _row, stored in batch:
                    stored.send(None)

    def pending(self) -> int:
        """Rows handed over and not yet committed."""
        return len(self._pending)

    def stop(self) -> None:
        self._running = False
        if not self._wakeup.ready():
            self._wakeup.send(True)

    def _flush(self, batch: list[tuple[dict, GreenEvent | None]]) -> None:
        started = time.perf_counter()
        try:
            with self.engine.begin() as connection:
                # executemany: one cached statement (a multi-VALUES one is compiled again per row count)
                connection.execute(_INSERT, [row for row, _stored in batch])
        except Exception as exc:  # the database is away, a constraint, a killed connection: all alike
            self.observe(len(batch), False)
            log.error("AUDIT WRITE FAILED: a batch of %d rows (%s); their requests fail",
                      len(batch), type(exc).__name__)
            raise AuditUnavailable("the audit log could not be written") from None
        self.observe(len(batch), True)
        log.debug("audit batch of %d rows in %.1f ms", len(batch), 1000 * (time.perf_counter() - started))


_INSERT = insert(AuditEntry.__table__)


def row(caller: Caller, action: str, remote_addr: str | None, dossier_code: str | None = None, task_id=None,
        outcome: str = ALLOWED, detail: str | None = None) -> dict:
    """An audit_log row of an action through the gateway (no personal data: who acted, on what)."""
    return {"at": utcnow(), "username": caller.username[:128], "agency_code": caller.agency_code,
            "action": action[:64], "dossier_code": dossier_code,
            "task_id": None if task_id is None else str(task_id)[:64], "remote_addr": remote_addr,
            "outcome": outcome, "source": "gateway", "detail": (detail or None) and detail[:256]}


def record(writer: AuditWriter, caller: Caller, action: str, remote_addr: str | None, **on) -> None:
    """Audit an action (its outcome decided): returns once the row is committed, or raises
    AuditUnavailable and the request fails; never answered as audited without its row."""
    writer.write(row(caller, action, remote_addr, **on))


@contextmanager
def audited(writer: AuditWriter, caller: Caller, action: str, remote_addr: str | None,
            release: Callable[[], None], dossier_code: str | None = None, task_id=None, detail: str | None = None):
    """Audit what the block does for `caller`: allowed when it returns; denied when the owning
    service refuses (403) or hides (404) the record; other failures (400, 409) change nothing.
    `release` ends the request's own transaction before the wait for the row (its reads, a refused
    action's half-work): the flusher may need the connection it holds (SQLite has one)."""
    on = {"dossier_code": dossier_code, "task_id": task_id}
    try:
        yield
    except (Forbidden, NotFound) as exc:
        release()
        why = f"{detail}: {exc.message}" if detail else exc.message
        record(writer, caller, action, remote_addr, outcome=DENIED, detail=why, **on)
        raise
    release()
    record(writer, caller, action, remote_addr, detail=detail, **on)


def record_denied_by_service(uow: UnitOfWork, event) -> None:
    """An `access_denied` event of a service (applied once, through the inbox) as an audit entry."""
    data = event.data
    username = data["username"] or f"unverified:{data['claimed_username'] or '-'}"
    uow.session.add(AuditEntry(
        at=data["denied_at"], username=username[:128], agency_code=data["agency_code"],
        action=data["action"][:64], dossier_code=data["dossier_code"], task_id=data["task_id"],
        remote_addr=None, outcome=DENIED, source=event.source[:32], detail=data["reason"][:256]))


def query(uow: UnitOfWork, filters: dict, tz: ZoneInfo) -> dict:
    """The audit log, newest first, filtered and paginated (dates are the province's local days)."""
    where = []
    for name in ("username", "dossier_code", "action", "outcome", "agency_code"):
        if filters.get(name):
            where.append(getattr(AuditEntry, name) == filters[name])
    if filters.get("date_from"):
        where.append(AuditEntry.at >= datetime.combine(filters["date_from"], day_start(), tz))
    if filters.get("date_to"):
        where.append(AuditEntry.at < datetime.combine(filters["date_to"] + timedelta(days=1), day_start(), tz))
    total = uow.session.scalar(select(func.count()).select_from(AuditEntry).where(*where))
    page, size = filters["page"], filters["page_size"]
    rows = uow.session.scalars(select(AuditEntry).where(*where).order_by(AuditEntry.at.desc(), AuditEntry.id.desc())
                               .offset((page - 1) * size).limit(size)).all()
    uow.session.rollback()  # a read: give the connection back
    return {"total": total, "page": page, "page_size": size, "items": [
        {"id": e.id, "at": e.at.astimezone(tz).isoformat(), "username": e.username, "agency_code": e.agency_code,
         "action": e.action, "outcome": e.outcome, "source": e.source, "dossier_code": e.dossier_code,
         "task_id": e.task_id, "remote_addr": e.remote_addr, "detail": e.detail} for e in rows]}
