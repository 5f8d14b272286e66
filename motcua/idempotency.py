"""Idempotent commands: a repeat with the same `Idempotency-Key` gets the first result, not a second effect.

The gateway gives every state-changing request a key (the client's `Idempotency-Key`, or one it makes
and sends back). The service that owns the state runs the command through `run_once`, which stores
the command's result under the key (a row of its `command_results` table) in the command's own
transaction, just before its one commit: a command is done with its key or not at all.

A repeat is rare, so nothing is read before the command runs (one INSERT is all a key costs). A repeat
then meets the first call's work: after the first committed, the repeat's command fails on the state
the first left (a dossier already received: 409) or, repeated afresh (a second submission), stops at
the key's row; while the first runs, the repeat waits on what the first holds (the dossier's row lock,
or the key's row). Either way it rolls back whatever it did and answers the first call's stored result.
A command that failed stored nothing: its repeat is judged again, like any other request.

Keys belong to a scope (`account_scope`: the caller's account; `applicant_scope`: an applicant without
one, by a keyed hash of who they say they are), so nobody reads another's result by guessing a key.
The same key for another command or another body is refused (409 naming `Idempotency-Key`). A key is
kept for `ttl` (the `MOTCUA_IDEMPOTENCY_KEY_HOURS` setting, 24 h): after that it names a new command,
and `ForgetExpiredKeys` deletes it.
"""
from __future__ import annotations

import contextlib
import functools
import hashlib
import hmac
import json
import logging
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import cached_property
from typing import Any, Callable, Iterator

import eventlet
from nameko.extensions import DependencyProvider
from sqlalchemy import JSON, Column, Index, MetaData, String, Table, bindparam, delete, select, update
from sqlalchemy.orm import Session

from motcua.db import Database, UnitOfWork, UTCDateTime, utcnow
from motcua.errors import Conflict, ValidationFailed
from motcua.sql import upsert_insert

log = logging.getLogger(__name__)

HEADER = "Idempotency-Key"
MAX_KEY_LENGTH = 128
DEFAULT_TTL = timedelta(hours=24)
PURGE_SECONDS = 3600  # how often a service forgets its expired keys


def valid_key(key: str | None) -> str | None:
    """A client's key as given, None when it sent none; refused when longer than the table keeps."""
    key = key or None
    if key is not None and (len(key) > MAX_KEY_LENGTH or not key.isprintable()):
        raise ValidationFailed(f"at most {MAX_KEY_LENGTH} printable characters", field=HEADER)
    return key


def key_or_new(key: str | None) -> str:
    """The client's key, or a new one the gateway sends back so that the client can retry with it."""
    return valid_key(key) or uuid.uuid4().hex


def fingerprint(request: Any) -> str:
    """What identifies a command's request whatever the order of its JSON keys."""
    canonical = json.dumps(request, sort_keys=True, separators=(",", ":"), default=str, ensure_ascii=False)
    return hashlib.sha256(canonical.encode()).hexdigest()


def account_scope(username: str) -> str:
    return f"account:{username}"


def applicant_scope(secret: str, identity: str) -> str:
    """An applicant without an account, by a keyed hash of who they say they are (their phone when
    submitting, their ID number when proving a dossier is theirs): never the value itself."""
    return "applicant:" + hmac.new(secret.encode(), identity.encode(), hashlib.sha256).hexdigest()[:40]


@dataclass(frozen=True)
class Command:
    """One state-changing call under a key: which command, for whom, with what request."""

    key: str
    name: str
    scope: str
    fingerprint: str

    @classmethod
    def of(cls, key: str | None, name: str, scope: str, request: Any) -> "Command | None":
        """The command under `key`; None without a key (then nothing is recorded)."""
        key = valid_key(key)
        return None if key is None else cls(key, name, scope, fingerprint([name, request]))


@dataclass(frozen=True)
class StoredResult:
    name: str
    fingerprint: str
    result: Any
    created_at: datetime

    def expired(self, now: datetime, ttl: timedelta) -> bool:
        return self.created_at <= now - ttl

    def answer(self, command: Command) -> Any:
        """The first result, for a repeat of the same request; a Conflict for another request."""
        if (self.name, self.fingerprint) != (command.name, command.fingerprint):
            raise Conflict("this Idempotency-Key was used for a different request", field=HEADER,
                           details={"command": self.name})
        return self.result


def command_results_table(metadata: MetaData) -> Table:
    """The results of a service's commands by key: one table in each service that owns commands."""
    return Table(
        "command_results", metadata,
        Column("scope", String(160), primary_key=True),
        Column("key", String(MAX_KEY_LENGTH), primary_key=True),
        Column("command", String(64), nullable=False),
        Column("fingerprint", String(64), nullable=False),
        Column("result", JSON, nullable=True),  # null only in a failed command's look (never committed)
        Column("created_at", UTCDateTime(), nullable=False),
        Index("ix_command_results_created_at", "created_at"),
    )


@functools.cache
def _adding(table: Table, dialect: str):
    """`CommandResults.add`'s statement, built once per table (no statement built per command)."""
    return upsert_insert(table, dialect).on_conflict_do_nothing().returning(table.c.key)


class CommandResults:
    """The `command_results` rows of one transaction's session."""

    def __init__(self, session: Session, table: Table):
        self.session = session
        self.table = table

    def add(self, command: Command, result: Any, now: datetime) -> bool:
        """Store `result` under the command's key: True, or False if the key has a row already. While
        another transaction holds a new row of that key, PostgreSQL waits for it to end."""
        insert = _adding(self.table, self.session.get_bind().dialect.name)
        return self.session.execute(insert, {
            "scope": command.scope, "key": command.key, "command": command.name,
            "fingerprint": command.fingerprint, "result": result, "created_at": now}).first() is not None

    def find(self, scope: str, key: str) -> StoredResult | None:
        t = self.table
        row = self.session.execute(select(t.c.command, t.c.fingerprint, t.c.result, t.c.created_at)
                                   .where(t.c.scope == scope, t.c.key == key)).first()
        return None if row is None else StoredResult(*row)

    def take_over(self, command: Command, result: Any, now: datetime, expired_before: datetime) -> bool:
        """Store `result` in an expired key's row: True unless someone renewed it meanwhile."""
        t = self.table
        renewed = self.session.execute(
            update(t).where(t.c.scope == command.scope, t.c.key == command.key, t.c.created_at <= expired_before)
            .values(command=command.name, fingerprint=command.fingerprint, result=result, created_at=now))
        return renewed.rowcount == 1

    def purge(self, expired_before: datetime) -> int:
        """Forget the keys older than the time they are kept; how many went."""
        t = self.table
        return self.session.execute(delete(t).where(t.c.created_at <= bindparam("cutoff")),
                                    {"cutoff": expired_before}).rowcount


class CommandUnitOfWork(UnitOfWork):
    """The kit's unit of work for a service that owns commands: its `command_results`, and a commit
    that `run_once` holds back until the command's result is stored beside its effects."""

    _commit_held = False

    @cached_property
    def command_results(self) -> CommandResults:
        return CommandResults(self.session, self._outbox.metadata.tables["command_results"])

    @contextlib.contextmanager
    def held_commit(self) -> Iterator[None]:
        """Inside, a command's own commit only writes its outbox rows; `run_once` commits after."""
        self._commit_held = True
        try:
            yield
        finally:
            self._commit_held = False

    def commit(self) -> None:
        if self._commit_held:
            self.flush_events()
            return
        super().commit()


def run_once(uow, command: Command | None, run: Callable[[], Any], now: datetime,
             ttl: timedelta = DEFAULT_TTL) -> Any:
    """`run()` carried out once per key (see the module docstring): its result, or the first one's.
    `run` changes the state through `uow` and may commit (held until its result is stored with it);
    without a key (`command` None) it simply runs."""
    if command is None:
        return run()
    try:
        with uow.held_commit():
            result = run()
        first = _first_result(uow.command_results, command, result, now, ttl)
    except Exception:
        uow.rollback()
        first = _done_before(uow, command, now, ttl)
        if first is None:
            raise
        return first.answer(command)
    if first is not None:
        uow.rollback()  # the first call's effects stand, not this repeat's
        return first.answer(command)
    uow.commit()
    return result


def _first_result(results: CommandResults, command: Command, result: Any, now: datetime,
                  ttl: timedelta) -> StoredResult | None:
    """None once `result` is stored under the key; else what an earlier call under it stored."""
    while not results.add(command, result, now):
        stored = results.find(command.scope, command.key)
        if stored is not None and not stored.expired(now, ttl):
            return stored
        if stored is not None and results.take_over(command, result, now, now - ttl):
            return None
    return None


def _done_before(uow, command: Command, now: datetime, ttl: timedelta) -> StoredResult | None:
    """After the command failed: what a call under its key stored (waiting for one still running),
    or None if none did and the failure is the answer. Leaves nothing written."""
    stored = _first_result(uow.command_results, command, None, now, ttl)
    uow.rollback()
    return stored


def ttl_of(config: dict) -> timedelta:
    """How long keys are kept, from a service's nameko config."""
    return timedelta(hours=float(config.get("IDEMPOTENCY_KEY_HOURS", DEFAULT_TTL.total_seconds() / 3600)))


class ForgetExpiredKeys(DependencyProvider):
    """Declared beside a service's `Database` of `CommandUnitOfWork`s: once an hour, in a thread of
    its own, deletes the keys older than the time they are kept, so the table holds about a day of
    commands. Several instances may do it at once (a row goes once); a failure (the database away)
    waits for the next hour."""

    def setup(self):
        self.database = next(d for d in self.container.dependencies if isinstance(d, Database))
        self.ttl = ttl_of(self.container.config)
        self.thread = None

    def start(self):
        self.thread = self.container.spawn_managed_thread(self._run, identifier="forget-expired-keys")

    def stop(self):
        thread, self.thread = self.thread, None  # a second stop (a second signal) finds nothing to do
        if thread is not None:
            thread.kill()

    def kill(self):
        self.stop()

    def _run(self):
        while True:
            eventlet.sleep(PURGE_SECONDS)
            self.forget(utcnow())

    def forget(self, now: datetime) -> int:
        uow = self.database.unit_of_work()
        try:
            forgotten = uow.command_results.purge(now - self.ttl)
            uow.commit()
            return forgotten
        except Exception as exc:  # transient: the next hour tries again
            log.warning("expired idempotency keys not deleted (%s)", type(exc).__name__)
            return 0
        finally:
            uow.close()
