"""Nhật ký thao tác và truy cập: every staff action and every staff read of personal data through the
gateway (who, when, from where, on what, allowed or denied), and the refusals the owning services
report (`access_denied` events); queryable by a platform admin.

Tamper-evident (chống sửa đổi): the rows form a hash chain. Row n carries `chain_seq` n and
`chain_hash` = HMAC-SHA-256 under `GATEWAY_AUDIT_KEY` of row n-1's `chain_hash` and row n's own content,
so changing, removing or reordering a row breaks every link from it on, and without the key (which stays
with the gateway, never in its database) nobody with write access to the table can forge new links.
`motcua audit verify` walks the chain and names the first broken link; it ends by printing the head
(count and last hash): noted elsewhere, it shows later that no row was cut from the end either.
`motcua audit rekey` rotates the key: the chain, verified under the old key, re-linked under the new.

One chain for every writer: each appends under a PostgreSQL advisory lock held to its commit (every
gateway instance's batched writer, and the `access_denied` consumer), reading the head and inserting
its rows in order inside it; the unique `chain_seq` refuses a fork should anything append unlocked.
SQLite (one process, one connection) needs no lock.
"""
from __future__ import annotations

import hashlib
import hmac
import json
import logging
import time
from contextlib import contextmanager
from datetime import datetime, time as day_start, timedelta, timezone
from typing import Callable
from zoneinfo import ZoneInfo

import eventlet
from eventlet.event import Event as GreenEvent
from sqlalchemy import bindparam, func, insert, select, update
from sqlalchemy.engine import Connection, Engine

from motcua.db import UnitOfWork, utcnow
from motcua.errors import Forbidden, NotFound
from motcua.identity import Caller
from motcua.keys import key_setting
from motcua.sql import last_results
from services.gateway.errors import AuditUnavailable
from services.gateway.models import AuditEntry

log = logging.getLogger(__name__)

ALLOWED, DENIED = "allowed", "denied"
KEY_SETTING = "GATEWAY_AUDIT_KEY"
NEW_KEY_SETTING = "GATEWAY_AUDIT_KEY_NEW"  # the key `motcua audit rekey` re-links the chain under
# What a link covers: every column of a row but its id (an autoincrement: the chain has its own order).
CHAINED = ("at", "username", "agency_code", "action", "dossier_code", "task_id", "remote_addr", "outcome",
           "source", "detail")
# The advisory lock every appender takes (any fixed 64-bit number no other lock of the database uses).
CHAIN_LOCK = int.from_bytes(hashlib.sha256(b"motcua.audit_log.chain").digest()[:8], "big", signed=True)
_TABLE = AuditEntry.__table__
_HEAD = select(_TABLE.c.chain_seq, _TABLE.c.chain_hash).order_by(_TABLE.c.chain_seq.desc()).limit(1)
_INSERT = insert(_TABLE)
_LOCK = select(func.pg_advisory_xact_lock(CHAIN_LOCK))
_RELINK = update(_TABLE).where(_TABLE.c.id == bindparam("row_id")).values(chain_hash=bindparam("new_hash"))


def chain_key() -> bytes:
    return key_setting(KEY_SETTING)


def _canonical(value):
    if isinstance(value, datetime):  # the same instant reads back the same, whatever the database's zone
        return value.astimezone(timezone.utc).isoformat(timespec="microseconds")
    return value


def link(key: bytes, previous: str, seq: int, entry) -> str:
    """The chain hash of row `seq` (`entry`: a mapping of its columns) after the row whose hash is `previous`."""
    content = json.dumps([seq, *(_canonical(entry[name]) for name in CHAINED)], ensure_ascii=False,
                         separators=(",", ":"))
    return hmac.new(key, f"{previous}\n{content}".encode(), hashlib.sha256).hexdigest()


def _lock_chain(connection: Connection) -> None:
    """Take the appenders' lock until the connection's transaction ends (SQLite: its one connection is it)."""
    if connection.dialect.name == "postgresql":
        connection.execute(_LOCK)


# PostgreSQL: the lock and the head in ONE round trip (no parameters, so the simple query protocol takes
# both; the lock's number is our constant). In READ COMMITTED each statement of it takes its own
# snapshot, so the head is read once the lock is held and sees every append committed before it.
_LOCKED_HEAD = [f"SELECT pg_advisory_xact_lock({CHAIN_LOCK})",
                f"SELECT chain_seq, chain_hash FROM {_TABLE.name} ORDER BY chain_seq DESC LIMIT 1"]


def _locked_head(connection: Connection) -> tuple[int, str]:
    """The chain's head (seq, hash; (0, "") when empty), read holding the appenders' lock (one round trip)."""
    if connection.dialect.name == "postgresql":
        [rows] = last_results(connection, _LOCKED_HEAD, 1)
        head = rows[0] if rows else None
    else:
        head = connection.execute(_HEAD).first()
    return (head[0], head[1]) if head else (0, "")


def append(connection: Connection, rows: list[dict], key: bytes) -> None:
    """`rows` appended to the chain, in order, in the connection's transaction (see the module: the lock
    is held until that transaction ends, so commit soon)."""
    seq, previous = _locked_head(connection)
    linked = []
    for entry in rows:
        seq += 1
        previous = link(key, previous, seq, entry)
        linked.append({**entry, "chain_seq": seq, "chain_hash": previous})
    # executemany: one cached statement (a multi-VALUES one is compiled again per row count)
    connection.execute(_INSERT, linked)


def _in_chain_order(connection: Connection, batch: int):
    """The rows in chain order, read `batch` at a time, as lists."""
    seq = 0
    while rows := connection.execute(select(_TABLE).where(_TABLE.c.chain_seq > seq)
                                     .order_by(_TABLE.c.chain_seq).limit(batch)).all():
        yield rows
        seq = rows[-1].chain_seq


def verify(connection: Connection, key: bytes, batch: int = 1000) -> dict:
    """Walk the chain: {"rows", "head_hash"} when intact, or also {"broken_at": id and seq of the first
    row whose link fails, "why"}."""
    previous, seq = "", 0
    for rows in _in_chain_order(connection, batch):
        for entry in rows:
            found = {"rows": seq, "head_hash": previous, "broken_at": {"id": entry.id, "chain_seq": entry.chain_seq}}
            if entry.chain_seq != seq + 1:
                return {**found, "why": f"row(s) {seq + 1}…{entry.chain_seq - 1} of the chain are missing before it"}
            if not hmac.compare_digest(link(key, previous, entry.chain_seq, entry._mapping), entry.chain_hash):
                return {**found, "why": "its content, or the previous row's hash, was changed"}
            previous, seq = entry.chain_hash, entry.chain_seq
    return {"rows": seq, "head_hash": previous}


def rekey(connection: Connection, old_key: bytes, new_key: bytes, batch: int = 1000) -> dict:
    """The whole chain re-linked under `new_key`, in the caller's transaction, holding the appenders' lock
    (they wait until it commits): only if it verifies under `old_key` first (re-linking a broken chain
    would hide the break); what `verify` found under the old key, and under the new one when done."""
    _lock_chain(connection)
    found = verify(connection, old_key, batch)
    if "broken_at" in found:
        return found
    previous = ""
    for rows in _in_chain_order(connection, batch):
        links = []
        for entry in rows:
            previous = link(new_key, previous, entry.chain_seq, entry._mapping)
            links.append({"row_id": entry.id, "new_hash": previous})
        connection.execute(_RELINK, links)
    return verify(connection, new_key, batch)


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
        self.key = chain_key()  # production refuses a missing, weak or published GATEWAY_AUDIT_KEY here
        self.observe = observe
        self.max_batch = max_batch  # 64 rows × 13 columns stay under SQLite's 999 parameters
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
                append(connection, [row for row, _stored in batch], self.key)
        except Exception as exc:  # the database is away, a constraint, a killed connection: all alike
            self.observe(len(batch), False)
            log.error("AUDIT WRITE FAILED: a batch of %d rows (%s); their requests fail",
                      len(batch), type(exc).__name__)
            raise AuditUnavailable("the audit log could not be written") from None
        self.observe(len(batch), True)
        log.debug("audit batch of %d rows in %.1f ms", len(batch), 1000 * (time.perf_counter() - started))



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
    append(uow.session.connection(), [{
        "at": data["denied_at"], "username": username[:128], "agency_code": data["agency_code"],
        "action": data["action"][:64], "dossier_code": data["dossier_code"], "task_id": data["task_id"],
        "remote_addr": None, "outcome": DENIED, "source": event.source[:32], "detail": data["reason"][:256]}],
        chain_key())


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
