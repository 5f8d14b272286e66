"""Chống dò mật khẩu: after too many failed logins for one username, or from one address, within a
window, every login for it is answered 429 (Retry-After) until the oldest failures leave the window,
even with the right password.

Failures are rows in the gateway database, so every gateway instance sees the same count; keys are
keyed hashes, so neither a typed username nor an address is stored in clear. While throttled, attempts
add no rows: a key never holds more rows than its limit.
"""
from __future__ import annotations

import hashlib
import hmac
import math
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from services.gateway.models import LoginFailure


@dataclass(frozen=True)
class ThrottlePolicy:
    max_per_username: int = 5
    max_per_address: int = 20  # looser: an agency's officers may share one address (NAT)
    window: timedelta = timedelta(minutes=5)

    @classmethod
    def from_config(cls, config: dict) -> "ThrottlePolicy":
        return cls(int(config.get("LOGIN_MAX_FAILURES", cls.max_per_username)),
                   int(config.get("LOGIN_MAX_FAILURES_PER_ADDRESS", cls.max_per_address)),
                   timedelta(seconds=float(config.get("LOGIN_WINDOW_SECONDS", cls.window.total_seconds()))))


def _key(secret: str, kind: str, value: str) -> str:
    return hmac.new(secret.encode(), f"login:{kind}:{value}".encode(), hashlib.sha256).hexdigest()


def pseudonym(secret: str, username: str) -> str:
    """How the audit log names a login attempt for a username no account has: what was typed may be
    a citizen's ID number, phone or a password typed into the wrong box, so never in clear."""
    return "unknown:" + _key(secret, "user", username.casefold())[:16]


def keys(policy: ThrottlePolicy, secret: str, username: str, remote_addr: str | None) -> dict[str, int]:
    """The throttle keys of one attempt, each with its limit."""
    found = {_key(secret, "user", username.casefold()): policy.max_per_username}
    if remote_addr:
        found[_key(secret, "addr", remote_addr)] = policy.max_per_address
    return found


def retry_after(session: Session, policy: ThrottlePolicy, limits: dict[str, int], now: datetime) -> int | None:
    """Seconds until a login may be tried again, or None when it may be tried now."""
    since = now - policy.window
    wait = 0.0
    for key, limit in limits.items():
        failures = list(session.scalars(select(LoginFailure.at).where(LoginFailure.key == key, LoginFailure.at > since)
                                        .order_by(LoginFailure.at)))
        if len(failures) >= limit:
            # Free again when enough of the failures have left the window to be under the limit.
            freed_at = failures[len(failures) - limit] + policy.window
            wait = max(wait, (freed_at - now).total_seconds())
    return max(1, math.ceil(wait)) if wait > 0 else None


def record_failure(session: Session, policy: ThrottlePolicy, limits: dict[str, int], now: datetime) -> None:
    session.execute(delete(LoginFailure).where(LoginFailure.at <= now - policy.window))
    session.add_all(LoginFailure(key=key, at=now) for key in limits)
    session.commit()


def clear_username(session: Session, secret: str, username: str) -> None:
    """A successful login forgets the username's failures (not the address's)."""
    session.execute(delete(LoginFailure).where(LoginFailure.key == _key(secret, "user", username.casefold())))
    session.commit()
