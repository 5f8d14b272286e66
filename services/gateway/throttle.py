"""Chống dò: guesses are throttled (and anonymous submissions counted, `for_anonymous_submissions`). After too many failed tries at one secret within a window (a
username's password, or a dossier's tracking key or applicant's ID number), or from one address,
every try at it is answered 429 (Retry-After) until the oldest failures leave the window, even a
right one.

Failures are rows in the gateway database, so every gateway instance sees the same count; keys are
keyed hashes, so neither a typed username, a dossier code nor an address is stored in clear. While
throttled, tries add no rows: a key never holds more rows than its limit.
"""
from __future__ import annotations

import functools
import hashlib
import hmac
import math
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import bindparam, delete, select
from sqlalchemy.engine import Connection
from sqlalchemy.orm import Session

from services.gateway.models import FailedAttempt

# Rows older than this are purged whichever policy wrote them, so no window may be longer.
RETENTION = timedelta(days=1)


@dataclass(frozen=True)
class ThrottlePolicy:
    """`scope` names what is guessed; a subject is the username, or the dossier code."""

    scope: str
    max_per_subject: int
    max_per_address: int  # looser: officers share an agency's address, citizens a carrier's (NAT)
    window: timedelta

    def __post_init__(self):
        if not timedelta(0) < self.window <= RETENTION:
            raise ValueError(f"a {self.scope} throttle window must be positive and at most {RETENTION}")

    @classmethod
    def for_logins(cls, config: dict) -> "ThrottlePolicy":
        return cls("login", config["LOGIN_MAX_FAILURES"], config["LOGIN_MAX_FAILURES_PER_ADDRESS"],
                   timedelta(seconds=config["LOGIN_WINDOW_SECONDS"]))

    @classmethod
    def for_dossier_proofs(cls, config: dict) -> "ThrottlePolicy":
        """An applicant without an account proves a dossier is theirs by its tracking key (the phone's
        last 4 digits) or the ID number: few tries per dossier, so neither can be enumerated."""
        return cls("proof", config["PROOF_MAX_FAILURES"], config["PROOF_MAX_FAILURES_PER_ADDRESS"],
                   timedelta(seconds=config["PROOF_WINDOW_SECONDS"]))

    @classmethod
    def for_anonymous_submissions(cls, config: dict) -> "ThrottlePolicy":
        """Dossiers submitted without an account (online, anyone may): every one counts, per client
        address only (there is no subject to guess), `SUBMISSIONS_PER_ADDRESS` within the window.
        Receptionists' counter and postal submissions carry a token and are not counted."""
        limit = config["SUBMISSIONS_PER_ADDRESS"]
        return cls("submission", limit, limit, timedelta(seconds=config["SUBMISSION_WINDOW_SECONDS"]))


def _key(secret: str, scope: str, kind: str, value: str) -> str:
    return hmac.new(secret.encode(), f"{scope}:{kind}:{value}".encode(), hashlib.sha256).hexdigest()


def pseudonym(secret: str, username: str) -> str:
    """How the audit log names a login attempt for a username no account has: what was typed may be
    a citizen's ID number, phone or a password typed into the wrong box, so never in clear."""
    return "unknown:" + _key(secret, "login", "user", username.casefold())[:16]


def keys(policy: ThrottlePolicy, secret: str, subject: str, remote_addr: str | None) -> dict[str, int]:
    """The throttle keys of one try, each with its limit (usernames compared case-insensitively)."""
    return {_subject_key(policy, secret, subject): policy.max_per_subject,
            **address_keys(policy, secret, remote_addr)}


def address_keys(policy: ThrottlePolicy, secret: str, remote_addr: str | None) -> dict[str, int]:
    """The throttle key of the client's address with its limit (none without an address)."""
    return {_key(secret, policy.scope, "addr", remote_addr): policy.max_per_address} if remote_addr else {}


def _subject_key(policy: ThrottlePolicy, secret: str, subject: str) -> str:
    return _key(secret, policy.scope, "user", subject.casefold())


def retry_after(reader: Session | Connection, policy: ThrottlePolicy, limits: dict[str, int],
                now: datetime) -> int | None:
    """Seconds until a try may be made again, or None when it may be made now: ONE statement for
    every key of the try (a key holds at most its limit of rows in the window)."""
    failures: dict[str, list[datetime]] = {key: [] for key in limits}
    parameters = {f"key{n}": key for n, key in enumerate(limits)}
    for key, at in reader.execute(_failures_since(len(limits)), {**parameters, "since": now - policy.window}):
        failures[key].append(at)
    wait = 0.0
    for key, limit in limits.items():
        if len(failures[key]) >= limit:
            # Free again when enough of the failures have left the window to be under the limit.
            freed_at = sorted(failures[key])[len(failures[key]) - limit] + policy.window
            wait = max(wait, (freed_at - now).total_seconds())
    return max(1, math.ceil(wait)) if wait > 0 else None


@functools.cache
def _failures_since(keys: int):
    """The statement of `retry_after`, built once per number of keys (one or two): no rendering per call."""
    return (select(FailedAttempt.key, FailedAttempt.at)
            .where(FailedAttempt.key.in_([bindparam(f"key{n}") for n in range(keys)]),
                   FailedAttempt.at > bindparam("since", type_=FailedAttempt.at.type)))


def record_failure(session: Session, limits: dict[str, int], now: datetime) -> None:
    """A try that counts against its keys: a failed guess, or an anonymous submission."""
    session.execute(delete(FailedAttempt).where(FailedAttempt.at <= now - RETENTION))
    session.add_all(FailedAttempt(key=key, at=now) for key in limits)
    session.commit()


def clear_subject(session: Session, policy: ThrottlePolicy, secret: str, subject: str) -> None:
    """A right password forgets the username's failures (not the address's)."""
    session.execute(delete(FailedAttempt).where(FailedAttempt.key == _subject_key(policy, secret, subject)))
    session.commit()
