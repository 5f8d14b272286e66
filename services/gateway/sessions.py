"""Phiên đăng nhập: which verified tokens the gateway still honours.

A token is refused once it was revoked by logout (its `jti` in `revoked_tokens`, kept until it would
have expired anyway), or when it was issued before its account's `tokens_valid_after` (roles,
activity or password changed since), or when it names no account (a deleted one; an agency system's
token, made by the operators for its worker's direct calls to workflow, has no business here) unless it
is a citizen's, signed in through VNeID (`api_vneid.py`), whose account is the national provider's.

Every request is checked, so the answer is cached (`AccessCache`) for a few seconds: a revocation or
an account change takes effect at once on the gateway instance that made it, and on the others when
its event (`token_revoked`, `account_changed`) reaches them, or when their cached answer expires.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import datetime
from typing import Callable

from sqlalchemy import bindparam, delete, exists, select
from sqlalchemy.engine import Connection

from motcua.db import UnitOfWork
from motcua.errors import Unauthorized
from motcua.identity import Caller
from services.gateway.models import RevokedToken, User


@dataclass(frozen=True)
class AccountState:
    """What of an account decides whether its tokens are honoured."""

    active: bool
    tokens_valid_after: datetime | None


@dataclass(frozen=True)
class TokenState:
    """A token's revocation and its holder's account (None: no account row)."""

    revoked: bool
    account: AccountState | None


def judge(caller: Caller, state: TokenState) -> None:
    """Unauthorized unless the caller's token is neither revoked nor outdated by an account change."""
    if state.revoked:
        raise Unauthorized("token revoked")
    account = state.account
    if account is None:
        if caller.is_citizen or caller.is_portal_sync:  # VNeID holds a citizen's account; an operator made
            return                                       # reporting's token: neither is a staff account
        raise Unauthorized("no such account")
    if not account.active:
        raise Unauthorized("account disabled")
    # Tokens carry whole seconds: one issued in the same second as the change is refused too.
    valid_after = account.tokens_valid_after
    if valid_after is not None and caller.issued_at is not None and caller.issued_at <= valid_after:
        raise Unauthorized("token no longer valid: sign in again")


# The token's state in ONE statement: its revocation and its holder's account (built once).
_OF_ACCOUNT = User.username == bindparam("username")
_TOKEN_STATE = select(exists().where(RevokedToken.token_id == bindparam("token_id")),
                      select(User.active).where(_OF_ACCOUNT).scalar_subquery(),
                      select(User.tokens_valid_after).where(_OF_ACCOUNT).scalar_subquery())


def load_state(connection: Connection, caller: Caller) -> TokenState:
    """The token's state, read from the database in one statement."""
    revoked, active, valid_after = connection.execute(
        _TOKEN_STATE, {"token_id": caller.token_id, "username": caller.username}).one()
    return TokenState(bool(revoked), None if active is None else AccountState(bool(active), valid_after))


def check_current(connection: Connection, caller: Caller) -> None:
    """Unauthorized unless the caller's token is current, read from the database (uncached)."""
    judge(caller, load_state(connection, caller))


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
        self._accounts: dict[str, tuple[float, AccountState | None]] = {}  # username → (known until, state)
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


def revoke(uow: UnitOfWork, caller: Caller, now: datetime) -> None:
    """Logout (đăng xuất): the token is refused from now on, by every gateway instance (the
    `token_revoked` event; the others' cached states expire anyway); expired revocations are purged."""
    session = uow.session
    _delete_expired(session, now)
    if session.get(RevokedToken, caller.token_id) is None:
        session.add(RevokedToken(token_id=caller.token_id, username=caller.username,
                                 expires_at=caller.expires_at or now, revoked_at=now))
    uow.emit("token_revoked", {"token_id": caller.token_id, "expires_at": caller.expires_at or now,
                               "revoked_at": now})
    uow.commit()


def purge_expired(uow: UnitOfWork, now: datetime) -> int:
    """Forget revocations of tokens that have expired anyway; how many were removed."""
    removed = _delete_expired(uow.session, now)
    uow.commit()
    return removed


def _delete_expired(session, now: datetime) -> int:
    return session.execute(delete(RevokedToken).where(RevokedToken.expires_at < now)).rowcount
