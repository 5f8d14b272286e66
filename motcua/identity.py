"""Who is calling: a signed caller context (a short-lived JWT) that every service verifies itself."""
from __future__ import annotations

import functools
import time
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from motcua.db import utcnow
from motcua.errors import Forbidden, Unauthorized

SYSTEM_ROLE = "system"  # an agency's own system (motcua.worker), its token made by an operator
# Reporting's own identity towards intake and the gateway when it pushes to the national portal
# (DVCQG): it alone reads the applicants' records for the portal and the officers' names.
PORTAL_SYNC_ROLE = "portal_sync"
SERVICE_ROLES = frozenset({(SYSTEM_ROLE,), (PORTAL_SYNC_ROLE,)})  # tokens of a system, not a person
CITIZEN_ROLE = "citizen"  # a citizen signed in through VNeID (services/gateway/vneid.py): no account row here
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
    # A citizen signed in through the national identity provider (VNeID): the identity it verified,
    # which intake takes as the applicant's instead of a tracking key (role `citizen`, no agency).
    # Personal data: never in a caller's repr (a log line of `%r`, a traceback's locals).
    citizen_id: str | None = field(default=None, repr=False)
    citizen_name: str | None = field(default=None, repr=False)

    @property
    def is_citizen(self) -> bool:
        return CITIZEN_ROLE in self.roles and self.agency_code is None and self.citizen_id is not None

    @property
    def is_portal_sync(self) -> bool:
        """Reporting's own identity for the national portal push: no account behind it (an operator made
        it, `motcua tokens reporting`); revoked like any token."""
        return self.roles == (PORTAL_SYNC_ROLE,) and self.agency_code is None

    @property
    def is_admin(self) -> bool:
        return "admin" in self.roles

    def has_role(self, *roles: str) -> bool:
        return self.is_admin or any(role in self.roles for role in roles)

    @property
    def is_system(self) -> bool:
        """An agency's own system (motcua.worker): takes its agency's tasks, nothing else."""
        return SYSTEM_ROLE in self.roles and self.agency_code is not None

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


# Ed25519 (RFC 8037): the gateway signs with the private key, every other process holds only the
# public key, so no service and no agency worker can make a token.
ALGORITHM = "EdDSA"
# The longest lifetimes a verifier accepts, whatever a token says (exp − iat): a staff member's sign-in
# and an agency system's operator-made token. Settings MOTCUA_TOKEN_MAX_SECONDS, MOTCUA_SYSTEM_TOKEN_MAX_DAYS.
DEFAULT_MAX_SECONDS = 12 * 3600
DEFAULT_SYSTEM_MAX_SECONDS = 366 * 86400
CLOCK_SKEW_SECONDS = 60  # a token issued this far in the future (the signer's clock ahead) still passes


@dataclass(frozen=True)
class TokenLimits:
    max_seconds: int = DEFAULT_MAX_SECONDS
    max_system_seconds: int = DEFAULT_SYSTEM_MAX_SECONDS

    @classmethod
    def of(cls, config: dict) -> "TokenLimits":
        return cls(int(config.get("TOKEN_MAX_SECONDS", DEFAULT_MAX_SECONDS)),
                   int(config.get("SYSTEM_TOKEN_MAX_SECONDS", DEFAULT_SYSTEM_MAX_SECONDS)))

    def allows(self, caller: Caller) -> bool:
        """Is the token's lifetime within the server's cap (a system's longer one for a system alone)?"""
        cap = self.max_system_seconds if caller.roles in SERVICE_ROLES else self.max_seconds
        return (caller.expires_at - caller.issued_at).total_seconds() <= cap


@functools.cache
def signing_key(pem: str) -> Ed25519PrivateKey:
    """The private key of a PEM text; ValueError unless it is an Ed25519 private key."""
    key = serialization.load_pem_private_key(pem.encode(), password=None)
    if not isinstance(key, Ed25519PrivateKey):
        raise ValueError("not an Ed25519 private key")
    return key


@functools.cache
def verify_key(pem: str) -> Ed25519PublicKey:
    """The public key of a PEM text; ValueError unless it is an Ed25519 public key."""
    key = serialization.load_pem_public_key(pem.encode())
    if not isinstance(key, Ed25519PublicKey):
        raise ValueError("not an Ed25519 public key")
    return key


def issue_token(caller: Caller, signing_pem: str, ttl: timedelta) -> str:
    """A token for `caller`, signed with the private key of `signing_pem` (the gateway's; an operator's)."""
    now = utcnow()
    claims = {"sub": caller.username, "agency": caller.agency_code, "roles": list(caller.roles),
              "iat": int(now.timestamp()), "exp": int((now + ttl).timestamp()), "jti": uuid.uuid4().hex}
    if caller.citizen_id is not None:
        claims["cid"], claims["cname"] = caller.citizen_id, caller.citizen_name
    return jwt.encode(claims, signing_key(signing_pem), algorithm=ALGORITHM)


def system_token(agency_code: str, signing_pem: str, lifetime: timedelta) -> str:
    """An agency system's token (for its worker), made by an operator holding the signing key."""
    return issue_token(Caller(f"system@{agency_code}", agency_code, (SYSTEM_ROLE,)), signing_pem, lifetime)


def portal_sync_token(signing_pem: str, lifetime: timedelta) -> str:
    """Reporting's token for its national portal push (`motcua tokens reporting`), made by an operator."""
    return issue_token(Caller("service@reporting", None, (PORTAL_SYNC_ROLE,)), signing_pem, lifetime)


def verify_caller(config: dict, token: str | None) -> Caller:
    """The caller of a service's call: its token verified with the process's public key and limits."""
    return verify_token(token, config["TOKEN_VERIFY_KEY"], TokenLimits.of(config))


def token_holder(config: dict, token: str | None) -> str | None:
    """Whose token this is, its signature checked but not its lifetime nor its revocation (an ended
    console session's officer, whose typed input is kept for them alone); None for a forged one."""
    if not token:
        return None
    try:
        claims = jwt.decode(token, verify_key(config["TOKEN_VERIFY_KEY"]), algorithms=[ALGORITHM],
                            options={"require": ["sub"], "verify_exp": False, "verify_iat": False})
    except jwt.InvalidTokenError:
        return None
    return claims["sub"] if isinstance(claims["sub"], str) else None


# Verified tokens by (key, limits, token), each kept while it is valid: every call of a console carries
# the same token, and checking its signature and claims again costs more than the rest of a simple read.
# Only a successful verification is kept, so a forged or tampered token is checked (and refused) each time.
_VERIFIED: dict[tuple[str, TokenLimits, str], Caller] = {}
_VERIFIED_MAX = 4096


def verify_token(token: str | None, verify_pem: str, limits: TokenLimits = TokenLimits()) -> Caller:
    if not token:
        raise Unauthorized("authentication required")
    key = (verify_pem, limits, token)
    caller = _VERIFIED.get(key)
    if caller is not None:
        # PyJWT's own rule: a token is expired once `exp` <= now.
        if caller.expires_at.timestamp() > time.time():
            return caller
        _VERIFIED.pop(key, None)
        raise Unauthorized("token expired")
    caller = _verify(token, verify_pem)
    if not limits.allows(caller):
        raise Unauthorized("token lifetime exceeds the maximum")
    if len(_VERIFIED) >= _VERIFIED_MAX:
        now = time.time()
        for stale in [k for k, c in _VERIFIED.items() if c.expires_at.timestamp() <= now]:
            _VERIFIED.pop(stale, None)
        if len(_VERIFIED) >= _VERIFIED_MAX:
            _VERIFIED.clear()
    _VERIFIED[key] = caller
    return caller


def _verify(token: str, verify_pem: str) -> Caller:
    try:
        # Only EdDSA with the platform's public key: an HS256 token (whatever its secret), `alg: none`
        # or any other algorithm is refused, not trusted.
        claims = jwt.decode(token, verify_key(verify_pem), algorithms=[ALGORITHM],
                            options={"require": ["exp", "iat", "sub", "jti"], "verify_iat": False})
    except jwt.ExpiredSignatureError:
        raise Unauthorized("token expired") from None
    except jwt.InvalidTokenError:
        raise Unauthorized("invalid token") from None
    roles = claims.get("roles") or ()
    if not isinstance(claims["sub"], str) or not isinstance(roles, list | tuple):
        raise Unauthorized("invalid token")
    issued_at = _moment(claims["iat"])
    if issued_at.timestamp() > time.time() + CLOCK_SKEW_SECONDS:  # its lifetime would start later than it says
        raise Unauthorized("invalid token")
    citizen_id, citizen_name = claims.get("cid"), claims.get("cname")
    if not isinstance(citizen_id, str | None) or not isinstance(citizen_name, str | None):
        raise Unauthorized("invalid token")
    return Caller(claims["sub"], claims.get("agency"), tuple(roles), token_id=str(claims["jti"]),
                  issued_at=issued_at, expires_at=_moment(claims["exp"]), citizen_id=citizen_id,
                  citizen_name=citizen_name)


def _moment(seconds) -> datetime:
    try:
        return datetime.fromtimestamp(int(seconds), timezone.utc)
    except (TypeError, ValueError, OverflowError):
        raise Unauthorized("invalid token") from None
