"""Phiên đăng nhập: which verified tokens the gateway still honours.

A token is refused once it was revoked by logout (its `jti` in `revoked_tokens`, kept until it would
have expired anyway), or when it was issued before its account's `tokens_valid_after` (roles,
activity or password changed since), or when it names no account (a deleted one; an agency system's
token, made by the operators for its worker's direct calls to workflow, has no business here) unless it
is a citizen's, signed in through VNeID (`api_vneid.py`), whose account is the national provider's.

Every request is checked, so the answer is cached (`motcua.revocation.AccessCache`) for a few seconds: a revocation or
an account change takes effect at once on the gateway instance that made it, and on the others when
its event (`token_revoked`, `account_changed`) reaches them, or when their cached answer expires.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import bindparam, delete, exists, select
from sqlalchemy.engine import Connection

from motcua.db import UnitOfWork
from motcua.errors import Unauthorized
from motcua.identity import Caller
from motcua.revocation import TokenState
from services.gateway.models import RevokedToken, User


@dataclass(frozen=True)
class AccountState:
    """What of an account decides whether its tokens are honoured."""

    active: bool
    tokens_valid_after: datetime | None


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
