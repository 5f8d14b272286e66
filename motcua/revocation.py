"""Thu hồi token at the services: a token the gateway refuses is refused on direct RPC too.

The gateway announces a logout (`token_revoked`: the token's id) and a change of an account's roles,
activity or password (`account_changed`: its earlier tokens end) through its outbox. Every service that
verifies tokens mixes in `Revocations`: it consumes both events from its own durable inbox (nothing is
lost while it is down: they wait in its queue) and keeps them in two tables of its own database, and
`verified_caller` refuses a revoked token, or one issued no later than its account's last change, read
in one statement in the call's own transaction. Rows outlive every token they could refuse, no more:
a token's revocation until the token expires, an account's change for the longest lifetime a token
may have (`TokenLimits`); each write purges what has become moot.

Every staff call carries a token, so what was read is kept per instance (`AccessCache`, the gateway's
too) for `ACCESS_CACHE_SECONDS` (5 s): the instance that takes an event from the inbox applies it to
its cache at once (a revocation for good, an account's change by reading it again once committed); an
instance that did not take it (two instances share one inbox) reads the tables again when its cached
answer expires.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Callable

from nameko.extensions import DependencyProvider
from sqlalchemy import Column, MetaData, String, Table, bindparam, delete, exists, select
from sqlalchemy.orm import Session

from motcua.bus import event_handler
from motcua.contracts import Event
from motcua.db import UnitOfWork, UTCDateTime, utcnow
from motcua.errors import Unauthorized
from motcua.identity import Caller, TokenLimits, verify_caller


DEFAULT_ACCESS_CACHE_SECONDS = 5.0


def revocation_tables(metadata: MetaData) -> tuple[Table, Table]:
    """The revoked tokens' ids and the accounts' last changes, as a service keeps them."""
    tokens = Table(
        "revoked_token_ids", metadata,
        Column("token_id", String(64), primary_key=True),
        Column("expires_at", UTCDateTime(), nullable=False, index=True),
    )
    accounts = Table(
        "account_changes", metadata,
        Column("username", String(128), primary_key=True),
        Column("changed_at", UTCDateTime(), nullable=False, index=True),
    )
    return tokens, accounts


def _tables(metadata: MetaData) -> tuple[Table, Table]:
    return metadata.tables["revoked_token_ids"], metadata.tables["account_changes"]


@dataclass(frozen=True)
class TokenState:
    """A token's revocation and what of its holder's account decides (the gateway: the account's
    activity and `tokens_valid_after`, None without an account; a service: its last change or None)."""

    revoked: bool
    account: Any


def load_state(session: Session, metadata: MetaData, caller: Caller) -> TokenState:
    """The token's revocation and its account's last change, in one statement."""
    tokens, accounts = _tables(metadata)
    revoked, changed_at = session.execute(
        select(exists().where(tokens.c.token_id == bindparam("token_id")),
               select(accounts.c.changed_at).where(accounts.c.username == bindparam("username")).scalar_subquery()),
        {"token_id": caller.token_id, "username": caller.username}).one()
    return TokenState(bool(revoked), changed_at)


def judge(caller: Caller, state: TokenState) -> None:
    """Unauthorized if the caller's token was revoked or its account changed since it was issued."""
    if state.revoked:
        raise Unauthorized("token revoked")
    # Tokens carry whole seconds: one issued in the second of the change is refused too (as the gateway does).
    changed_at = state.account
    if changed_at is not None and caller.issued_at is not None and caller.issued_at <= changed_at:
        raise Unauthorized("token no longer valid: sign in again")


def check(session: Session, metadata: MetaData, caller: Caller) -> None:
    """Unauthorized if the caller's token was revoked or its account changed since it was issued (read
    from the tables, uncached)."""
    judge(caller, load_state(session, metadata, caller))


def record_token_revoked(uow: UnitOfWork, event: Event) -> None:
    tokens, _accounts = _tables(uow.metadata)
    session, data = uow.session, event.data
    session.execute(delete(tokens).where(tokens.c.expires_at < utcnow()))
    if session.execute(select(tokens.c.token_id).where(tokens.c.token_id == data["token_id"])).first() is None:
        session.execute(tokens.insert().values(token_id=data["token_id"], expires_at=data["expires_at"]))


def record_account_changed(uow: UnitOfWork, event: Event, limits: TokenLimits) -> None:
    """The account's latest change (events may arrive out of order: an earlier one never wins)."""
    _tokens, accounts = _tables(uow.metadata)
    session, data = uow.session, event.data
    longest = timedelta(seconds=max(limits.max_seconds, limits.max_system_seconds))
    session.execute(delete(accounts).where(accounts.c.changed_at < utcnow() - longest))
    known = session.execute(select(accounts.c.changed_at).where(accounts.c.username == data["username"])).scalar()
    if known is None:
        session.execute(accounts.insert().values(username=data["username"], changed_at=data["changed_at"]))
    elif known < data["changed_at"]:
        session.execute(accounts.update().where(accounts.c.username == data["username"])
                        .values(changed_at=data["changed_at"]))


class AccessCache:
    """Token states known for `ttl` seconds, per token (its revocation) and per account.

    A revocation is known for good (a revoked token never comes back); that a token is *not* revoked,
    and an account's state, only for `ttl` seconds. `forget_account` and `revoked` apply a change at
    once. A state loaded from the database while a change was being applied is used once and not
    kept (`ticket`/`keep`), so a read that raced a logout cannot bring the old state back.
    """

    def __init__(self, ttl: float, clock: Callable[[], float] = time.monotonic, max_entries: int = 50_000):
        self.ttl = ttl
        self.clock = clock
        self.max_entries = max_entries
        self._not_revoked: dict[str, float] = {}  # token id → known until (clock)
        self._accounts: dict[str, tuple[float, Any]] = {}  # username → (known until, state)
        self._revoked: dict[str, float] = {}  # token id → the token's expiry (epoch seconds)
        self._changes = 0

    def known(self, caller: Caller) -> TokenState | None:
        """The token's state if known and fresh, else None (load it)."""
        if caller.token_id in self._revoked:
            return TokenState(True, None)
        now = self.clock()
        if self._not_revoked.get(caller.token_id, 0.0) <= now:
            return None
        until, account = self._accounts.get(caller.username, (0.0, None))
        return TokenState(False, account) if until > now else None

    def load(self, caller: Caller, read: Callable[[], TokenState]) -> TokenState:
        """The token's state as `read()` gives it now, kept unless a change was applied meanwhile."""
        ticket = self.ticket()
        state = read()
        self.keep(ticket, caller, state)
        return state

    def ticket(self) -> int:
        """Taken before loading a state from the database; `keep` needs it."""
        return self._changes

    def keep(self, ticket: int, caller: Caller, state: TokenState) -> None:
        """Remember a state loaded from the database, unless a change was applied since `ticket`."""
        if ticket != self._changes:
            return
        if state.revoked:
            self.revoked(caller.token_id, caller.expires_at)
            return
        if len(self._not_revoked) + len(self._accounts) >= self.max_entries:
            self._forget_stale()
        until = self.clock() + self.ttl
        self._not_revoked[caller.token_id] = until
        self._accounts[caller.username] = (until, state.account)

    def revoked(self, token_id: str, expires_at: datetime | None) -> None:
        """Logout: the token is refused from now on (until it would have expired anyway)."""
        self._changes += 1
        self._not_revoked.pop(token_id, None)
        self._revoked[token_id] = expires_at.timestamp() if expires_at is not None else time.time() + 86400
        if len(self._revoked) >= self.max_entries:
            wall = time.time()
            self._revoked = {jti: expiry for jti, expiry in self._revoked.items() if expiry >= wall}

    def forget_account(self, username: str) -> None:
        """Roles, activity or password changed: the account's state is read again."""
        self._changes += 1
        self._accounts.pop(username, None)

    def _forget_stale(self) -> None:
        now = self.clock()
        self._not_revoked = {jti: until for jti, until in self._not_revoked.items() if until > now}
        self._accounts = {name: entry for name, entry in self._accounts.items() if entry[0] > now}
        if len(self._not_revoked) + len(self._accounts) >= self.max_entries:  # all fresh: start over
            self._not_revoked, self._accounts = {}, {}


class RevocationCache(DependencyProvider):
    """A service instance's `AccessCache`, trusted `ACCESS_CACHE_SECONDS` (5 s by default)."""

    def setup(self):
        self.cache = AccessCache(float(self.container.config.get("ACCESS_CACHE_SECONDS", DEFAULT_ACCESS_CACHE_SECONDS)))

    def get_dependency(self, worker_ctx):
        return self.cache


class Revocations:
    """Mixed into a service that verifies tokens (it has `name`, `db` and `config`, and its models
    declare `revocation_tables`): the gateway's revocations, applied once each, and `verified_caller`."""

    revocations = RevocationCache()

    @event_handler("gateway", "token_revoked")
    def on_token_revoked(self, event):
        self.revocations.revoked(event.data["token_id"], event.data["expires_at"])  # for good: at once
        self.db.apply_once(event, f"{self.name}.on_token_revoked", record_token_revoked)

    @event_handler("gateway", "account_changed")
    def on_account_changed(self, event):
        limits = TokenLimits.of(self.config)
        username = event.data["username"]

        def apply(uow, e):
            record_account_changed(uow, e, limits)
            # read again once the change is in the table (a read before it is not kept: AccessCache.keep)
            uow.after_commit(lambda: self.revocations.forget_account(username))

        if not self.db.apply_once(event, f"{self.name}.on_account_changed", apply):
            self.revocations.forget_account(username)  # applied before: the table has it

    def verified_caller(self, token) -> Caller:
        """The caller of this call: its token verified (signature, lifetime, cap), then not revoked."""
        return self._current(verify_caller(self.config, token))

    def authorised(self, token, *roles: str) -> Caller:
        """The verified caller of an RPC, holding one of `roles` (platform admins pass): what every
        entrypoint that serves staff or operators asks first, so none answers a call without a caller."""
        caller = verify_caller(self.config, token)
        caller.require(*roles)  # before the revocation's check: a caller without the role costs nothing more
        return self._current(caller)

    def _current(self, caller: Caller) -> Caller:
        """The caller, unless its token was revoked or its account changed (cached: `AccessCache`)."""
        cache = self.revocations
        state = cache.known(caller) or cache.load(
            caller, lambda: load_state(self.db.session, self.db.metadata, caller))
        judge(caller, state)
        return caller
