"""Who is calling: a signed caller context (a short-lived JWT) that every service verifies itself."""
from __future__ import annotations

import time
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone

import jwt

from motcua.db import utcnow
from motcua.errors import Forbidden, Unauthorized

ALGORITHM = "HS256"
STAFF_ROLES = ("receptionist", "specialist", "leader", "agency_admin")
USERNAME_MAX = 120  # every service records who acted (history, tasks, documents) in this many characters


@dataclass(frozen=True)
class Caller:
    username: str
    agency_code: str | None
    roles: tuple[str, ...] = field(default_factory=tuple)
    # The token's identity and lifetime (jti, iat, exp): what logout revokes; not part of who calls.
    token_id: str | None = field(default=None, compare=False)
    issued_at: datetime | None = field(default=None, compare=False)
    expires_at: datetime | None = field(default=None, compare=False)

    @property
    def is_admin(self) -> bool:
        return "admin" in self.roles

    def has_role(self, *roles: str) -> bool:
        return self.is_admin or any(role in self.roles for role in roles)

    @property
    def is_system(self) -> bool:
        """An agency's own system (motcua.worker): takes its agency's tasks, nothing else."""
        return "system" in self.roles and self.agency_code is not None

    def require(self, *roles: str, agency_code: str | None = None, allow_system: bool = False) -> None:
        """Refuse unless the caller has one of `roles` in `agency_code` (platform admins pass).
        An agency's system passes the role check only where the check opts in (its own tasks)."""
        if self.is_admin:
            return
        system_allowed = allow_system and self.is_system
        if roles and not system_allowed and not any(role in self.roles for role in roles):
            raise Forbidden(f"requires role {' or '.join(roles)}")
        if agency_code is not None and agency_code != self.agency_code:
            raise Forbidden("not allowed for another agency's records")


def issue_token(caller: Caller, secret: str, ttl: timedelta) -> str:
    now = utcnow()
    claims = {"sub": caller.username, "agency": caller.agency_code, "roles": list(caller.roles),
              "iat": int(now.timestamp()), "exp": int((now + ttl).timestamp()), "jti": uuid.uuid4().hex}
    return jwt.encode(claims, secret, algorithm=ALGORITHM)


# Verified tokens by (secret, token), each kept while it is valid: every call of a console carries the
# same token, and checking its signature and claims again costs more than the rest of a simple read.
# Only a successful verification is kept, so a forged or tampered token is checked (and refused) each time.
_VERIFIED: dict[tuple[str, str], Caller] = {}
_VERIFIED_MAX = 4096


def verify_token(token: str | None, secret: str) -> Caller:
    if not token:
        raise Unauthorized("authentication required")
    key = (secret, token)
    caller = _VERIFIED.get(key)
    if caller is not None:
        # PyJWT's own rule: a token is expired once `exp` <= now.
        if caller.expires_at.timestamp() > time.time():
            return caller
        _VERIFIED.pop(key, None)
        raise Unauthorized("token expired")
    caller = _verify(token, secret)
    if len(_VERIFIED) >= _VERIFIED_MAX:
        now = time.time()
        for stale in [k for k, c in _VERIFIED.items() if c.expires_at.timestamp() <= now]:
            _VERIFIED.pop(stale, None)
        if len(_VERIFIED) >= _VERIFIED_MAX:
            _VERIFIED.clear()
    _VERIFIED[key] = caller
    return caller


def authorised(token: str | None, secret: str, *roles: str) -> Caller:
    """The verified caller of an RPC, holding one of `roles` (platform admins pass): what every entrypoint
    that serves staff or operators asks first, so none answers a call that carries no caller."""
    caller = verify_token(token, secret)
    caller.require(*roles)
    return caller


def _verify(token: str, secret: str) -> Caller:
    try:
        # Only HS256: a token saying `alg: none` (or any other algorithm) is refused, not trusted.
        claims = jwt.decode(token, secret, algorithms=[ALGORITHM],
                            options={"require": ["exp", "iat", "sub", "jti"]})
    except jwt.ExpiredSignatureError:
        raise Unauthorized("token expired") from None
    except jwt.InvalidTokenError:
        raise Unauthorized("invalid token") from None
    roles = claims.get("roles") or ()
    if not isinstance(claims["sub"], str) or not isinstance(roles, list | tuple):
        raise Unauthorized("invalid token")
    return Caller(claims["sub"], claims.get("agency"), tuple(roles), token_id=str(claims["jti"]),
                  issued_at=_moment(claims["iat"]), expires_at=_moment(claims["exp"]))


def _moment(seconds) -> datetime:
    try:
        return datetime.fromtimestamp(int(seconds), timezone.utc)
    except (TypeError, ValueError, OverflowError):
        raise Unauthorized("invalid token") from None
