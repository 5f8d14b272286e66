"""Chống dò: guesses are throttled (and anonymous submissions counted, `for_anonymous_submissions`). After too many failed tries at one secret within a window (a
username's password, or a dossier's tracking key or applicant's ID number), or from one address,
every try at it is answered 429 (Retry-After) until the oldest failures leave the window, even a
right one.

Failures are rows in the gateway database, so every gateway instance sees the same count; keys are
keyed hashes, so neither a typed username, a dossier code nor an address is stored in clear. While
throttled, tries add no rows: a key never holds more rows than its limit.

A login is counted before its password is evaluated (`claim`): under a lock per key, its failures in
the window are counted and, under the limits, the try is written as a failure, all in one transaction;
a right password then takes its rows back (`signed_in`). So concurrent tries cannot all pass the check
before any is recorded: 40 at once against a limit of 5 evaluate 5 passwords at most.

Logins are limited per account (from any address) and per address (one address trying many
accounts), separately: an account that signed in from an address lately (`KNOWN_FOR`) is held to its
own limit only there, so one person guessing behind an office's NAT does not lock the office's
officers out of their own accounts, while the guesser is still stopped by both limits.

An applicant's proofs of a dossier (its tracking key, the ID number) are limited per address and
dossier (`max_per_pair`: one guesser is stopped after a few misses), per address across dossiers, and
per dossier from any address (`max_per_subject`, looser: many addresses guessing together). So a
stranger's misses from one address lock only that address out of the dossier, never its owner, and
codes being sequential no longer lets anyone lock anyone out. The owner's own browser (it proved the
key before, or submitted the dossier: `proof_keys(owner=True)`) is held to no limit when tracking: it
knows the key already, so it guesses nothing.
"""
from __future__ import annotations

import functools
import hashlib
import hmac
import math
import re
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import bindparam, delete, exists, insert, select
from sqlalchemy.engine import Connection
from sqlalchemy.orm import Session

from motcua.sql import last_results, upsert_insert
from services.gateway.models import FailedAttempt, KnownSignIn

# Rows older than this are purged whichever policy wrote them, so no window may be longer.
RETENTION = timedelta(days=1)
# How long an account's sign-in from an address exempts it there from the address's limit: long enough
# to span a holiday, so the office's officers are known on the morning after.
KNOWN_FOR = timedelta(days=30)


@dataclass(frozen=True)
class ThrottlePolicy:
    """`scope` names what is guessed; a subject is the username, or the dossier code."""

    scope: str
    max_per_subject: int
    max_per_address: int  # looser: officers share an agency's address, citizens a carrier's (NAT)
    window: timedelta
    max_per_pair: int | None = None  # one address at one subject (proofs): tighter than the subject's

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
        return cls("proof", config["PROOF_MAX_FAILURES_PER_DOSSIER"], config["PROOF_MAX_FAILURES_PER_ADDRESS"],
                   timedelta(seconds=config["PROOF_WINDOW_SECONDS"]), max_per_pair=config["PROOF_MAX_FAILURES"])

    @classmethod
    def for_anonymous_submissions(cls, config: dict) -> "ThrottlePolicy":
        """Dossiers submitted without an account (online, anyone may): every one counts, per client
        address only (there is no subject to guess), `SUBMISSIONS_PER_ADDRESS` within the window.
        Receptionists' counter and postal submissions carry a token and are not counted."""
        limit = config["SUBMISSIONS_PER_ADDRESS"]
        return cls("submission", limit, limit, timedelta(seconds=config["SUBMISSION_WINDOW_SECONDS"]))

    @classmethod
    def for_signature_checks(cls, config: dict) -> "ThrottlePolicy":
        """Kiểm tra chữ ký số without an account: each check parses a PDF of up to 5 MB and its
        signatures' certificates in intake, so anyone's checks count per client address,
        `SIGNATURE_CHECKS_PER_ADDRESS` within the window (staff signed in are not counted)."""
        limit = config["SIGNATURE_CHECKS_PER_ADDRESS"]
        return cls("signature_check", limit, limit, timedelta(seconds=config["SIGNATURE_CHECK_WINDOW_SECONDS"]))


def _key(secret: str, scope: str, kind: str, value: str) -> str:
    return hmac.new(secret.encode(), f"{scope}:{kind}:{value}".encode(), hashlib.sha256).hexdigest()


def pseudonym(secret: str, username: str) -> str:
    """How the audit log names a login attempt for a username no account has: what was typed may be
    a citizen's ID number, phone or a password typed into the wrong box, so never in clear."""
    return "unknown:" + _key(secret, "login", "user", username.casefold())[:16]


def keys(policy: ThrottlePolicy, secret: str, subject: str, remote_addr: str | None,
         known_here: bool = False) -> dict[str, int | None]:
    """The throttle keys of one try, each with its limit (usernames compared case-insensitively). A
    subject `known_here` (signed in from this address lately) counts against the address, but is
    not held to the address's limit (None)."""
    found: dict[str, int | None] = {_subject_key(policy, secret, subject): policy.max_per_subject}
    for key, limit in address_keys(policy, secret, remote_addr).items():
        found[key] = None if known_here else limit
    return found


def proof_keys(policy: ThrottlePolicy, secret: str, code: str, remote_addr: str | None,
               owner: bool = False) -> dict[str, int | None]:
    """The throttle keys of one proof of dossier `code`: the dossier, the address at the dossier, the
    address; each with its limit, none for the `owner`'s browser (its misses still count)."""
    found = {_subject_key(policy, secret, code): policy.max_per_subject}
    if remote_addr:
        found[_pair_key(policy, secret, code, remote_addr)] = policy.max_per_pair
    found.update(address_keys(policy, secret, remote_addr))
    return {key: None if owner else limit for key, limit in found.items()}


def address_keys(policy: ThrottlePolicy, secret: str, remote_addr: str | None) -> dict[str, int]:
    """The throttle key of the client's address with its limit (none without an address)."""
    return {_key(secret, policy.scope, "addr", remote_addr): policy.max_per_address} if remote_addr else {}


def _pair_key(policy: ThrottlePolicy, secret: str, subject: str, remote_addr: str) -> str:
    return _key(secret, policy.scope, "pair", f"{remote_addr} {subject.casefold()}")


def known_here(reader: Session | Connection, policy: ThrottlePolicy, secret: str, subject: str,
               remote_addr: str | None, now: datetime) -> bool:
    """Whether `subject` signed in from `remote_addr` within `KNOWN_FOR`."""
    if not remote_addr:
        return False
    return bool(reader.scalar(select(exists().where(KnownSignIn.key == _pair_key(policy, secret, subject, remote_addr),
                                                    KnownSignIn.at > now - KNOWN_FOR))))


def _subject_key(policy: ThrottlePolicy, secret: str, subject: str) -> str:
    return _key(secret, policy.scope, "user", subject.casefold())


def retry_after(reader: Session | Connection, policy: ThrottlePolicy, limits: dict[str, int | None],
                now: datetime) -> int | None:
    """Seconds until a try may be made again, or None when it may be made now: ONE statement for
    every key of the try (a key holds at most its limit of rows in the window)."""
    parameters = {f"key{n}": key for n, key in enumerate(limits)}
    return _wait(policy, limits, reader.execute(_failures_since(len(limits)),
                                                {**parameters, "since": now - policy.window}), now)


def _wait(policy: ThrottlePolicy, limits: dict[str, int | None], rows, now: datetime) -> int | None:
    """`retry_after` of the keys' failures in the window (`rows`: key and time of each)."""
    failures: dict[str, list[datetime]] = {key: [] for key in limits}
    for key, at in rows:
        failures[key].append(at)
    wait = 0.0
    for key, limit in limits.items():
        if limit is not None and len(failures[key]) >= limit:
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


_TABLE = FailedAttempt.__tablename__
_HEX_DIGEST = re.compile(r"[0-9a-f]{64}")  # what a throttle key is (`_key`): safe to write into SQL text
_RECORD = insert(FailedAttempt.__table__).returning(FailedAttempt.__table__.c.id, sort_by_parameter_order=True)
# Expired rows are purged by a try's transaction at most this often per process: the purge scans the
# table (no index leads with `at`), and rows a little past RETENTION count for no window anyway.
PURGE_EVERY = timedelta(minutes=1)
_last_purge: list[datetime] = []


def _purge_due(now: datetime) -> bool:
    """Whether this try's transaction purges the expired rows (and, if so, the next minute's do not)."""
    if _last_purge and abs(now - _last_purge[0]) < PURGE_EVERY:
        return False
    _last_purge[:] = [now]
    return True


def record_failure(session: Session, limits: dict[str, int | None], now: datetime) -> list[int]:
    """A try that counts against its keys (a failed guess, an anonymous submission): one row per key
    (one statement), committed; the rows' ids."""
    if _purge_due(now):
        session.execute(delete(FailedAttempt).where(FailedAttempt.at <= now - RETENTION))
    ids = list(session.scalars(_RECORD, [{"key": key, "at": now} for key in limits]))
    session.commit()
    return ids


@dataclass(frozen=True)
class Claim:
    """A try counted before it is evaluated: `retry_after` seconds when throttled (nothing written),
    else the failure rows written for it (`rows`), which a right answer takes back."""

    retry_after: int | None
    rows: tuple[int, ...] = ()


def claim(session: Session, policy: ThrottlePolicy, limits: dict[str, int | None], now: datetime) -> Claim:
    """Count and claim one try atomically (see the module docstring); commits. On PostgreSQL a lock per
    key (transaction-scoped: the next try at the key counts once this one is written), then the count,
    then the try written unless it is one too many. SQLite needs no lock: a service holds its only
    connection (motcua.db.make_engine) for the whole transaction, so no other try counts in between."""
    if session.get_bind().dialect.name == "postgresql":
        return _claim_in_one_round_trip(session, policy, limits, now)
    wait = retry_after(session, policy, limits, now)
    if wait is not None:
        session.rollback()
        return Claim(wait)
    return Claim(None, tuple(record_failure(session, limits, now)))


def _claim_in_one_round_trip(session: Session, policy: ThrottlePolicy, limits: dict[str, int | None],
                             now: datetime) -> Claim:
    """`claim` on PostgreSQL: the locks, the count and the INSERT sent as one text (`last_results`: the
    count and the INSERT's own check see what the lock's previous holder committed), then COMMIT: two
    round trips and BEGIN, where one statement each took five. The INSERT writes nothing when a key is at
    its limit (a throttled try writes nothing, as before). Keys are taken in order, so two tries sharing both (a username and an
    address) cannot deadlock by each holding the lock the other waits for. The text holds only the keys
    (hex digests, checked), their limits (integers) and times the gateway made (aware), never anything
    a client sent."""
    keys = sorted(limits)
    if not all(_HEX_DIGEST.fullmatch(key) for key in keys) or now.utcoffset() is None:
        raise ValueError("throttle keys are hex digests and times are aware")
    listed = ", ".join(f"'{key}'" for key in keys)
    since = f"'{(now - policy.window).isoformat()}'::timestamptz"
    statements = [f"SELECT pg_advisory_xact_lock(hashtextextended('{key}', 0))" for key in keys]
    if _purge_due(now):
        statements.append(f"DELETE FROM {_TABLE} WHERE at <= '{(now - RETENTION).isoformat()}'::timestamptz")
    statements.append(f"SELECT key, at FROM {_TABLE} WHERE key IN ({listed}) AND at > {since}")
    limited = ", ".join(f"('{key}', {int(limit)})" for key, limit in sorted(limits.items()) if limit is not None)
    under_limits = (f" WHERE NOT EXISTS (SELECT FROM (VALUES {limited}) AS limited (key, most) WHERE (SELECT count(*) "
                    f"FROM {_TABLE} AS tried WHERE tried.key = limited.key AND tried.at > {since}) >= limited.most)"
                    if limited else "")
    statements.append(f"INSERT INTO {_TABLE} (key, at) SELECT key, '{now.isoformat()}'::timestamptz "
                      f"FROM unnest(ARRAY[{listed}]) AS key{under_limits} RETURNING id")
    failures, written = last_results(session.connection(), statements, 2)
    session.commit()  # the purge, and the try's rows unless it was throttled
    wait = _wait(policy, limits, failures, now)
    return Claim(wait) if wait is not None else Claim(None, tuple(row[0] for row in written))


def signed_in(session: Session, policy: ThrottlePolicy, secret: str, subject: str, remote_addr: str | None,
              claimed: Claim, now: datetime) -> None:
    """A right password: its try is no failure, the username's failures are forgotten (not the
    address's), and the account is known at the address from now on; commits."""
    session.execute(delete(FailedAttempt).where(
        FailedAttempt.id.in_(claimed.rows) | (FailedAttempt.key == _subject_key(policy, secret, subject))))
    if remote_addr:
        session.execute(delete(KnownSignIn).where(KnownSignIn.at <= now - KNOWN_FOR))
        pair = _pair_key(policy, secret, subject, remote_addr)
        session.execute(upsert_insert(KnownSignIn.__table__, session.get_bind().dialect.name)
                        .values(key=pair, at=now).on_conflict_do_update(index_elements=["key"], set_={"at": now}))
    session.commit()
