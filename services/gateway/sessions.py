"""Phiên đăng nhập: which verified tokens the gateway still honours.

A token is refused once it was revoked by logout (its `jti` in `revoked_tokens`, kept until it would
have expired anyway), or when it was issued before its account's `tokens_valid_after` (roles,
activity or password changed since). Tokens of callers without an account row (agencies' system
accounts, issued by the operators) are checked by signature and lifetime only.
"""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from motcua.errors import Unauthorized
from motcua.identity import Caller
from services.gateway.models import RevokedToken, User


def check_current(session: Session, caller: Caller) -> None:
    """Unauthorized unless the caller's token is neither revoked nor outdated by an account change."""
    revoked = session.scalar(select(RevokedToken.token_id).where(RevokedToken.token_id == caller.token_id))
    if revoked is not None:
        raise Unauthorized("token revoked")
    account = session.execute(select(User.active, User.tokens_valid_after)
                              .where(User.username == caller.username)).first()
    if account is None:
        return
    active, valid_after = account
    if not active:
        raise Unauthorized("account disabled")
    # Tokens carry whole seconds: one issued in the same second as the change is refused too.
    if valid_after is not None and caller.issued_at is not None and caller.issued_at <= valid_after:
        raise Unauthorized("token no longer valid: sign in again")


def revoke(session: Session, caller: Caller, now: datetime) -> None:
    """Logout (đăng xuất): the token is refused from now on; expired revocations are purged."""
    _delete_expired(session, now)
    if session.get(RevokedToken, caller.token_id) is None:
        session.add(RevokedToken(token_id=caller.token_id, username=caller.username,
                                 expires_at=caller.expires_at or now, revoked_at=now))
    session.commit()


def purge_expired(session: Session, now: datetime) -> int:
    """Forget revocations of tokens that have expired anyway; how many were removed."""
    removed = _delete_expired(session, now)
    session.commit()
    return removed


def _delete_expired(session: Session, now: datetime) -> int:
    return session.execute(delete(RevokedToken).where(RevokedToken.expires_at < now)).rowcount
