"""Staff accounts (tài khoản): argon2 password hashes, logins, tokens, the demo accounts.

Argon2 is C-level blocking (~0.1 s a hash): every hash and verification goes through
`eventlet.tpool`, so one login does not stall every other request of the process.
"""
from __future__ import annotations

import contextlib
import functools
import logging
from datetime import timedelta
from pathlib import Path

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from eventlet import tpool
from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from motcua.catalog import load_agencies, load_data
from motcua.config import is_production
from motcua.db import UnitOfWork, make_engine, utcnow
from motcua.errors import Unauthorized
from motcua.identity import Caller, issue_token
from services.gateway.models import User
from services.gateway.schemas import DemoUsersSchema

log = logging.getLogger(__name__)

_hasher = PasswordHasher()


def hash_password(password: str) -> str:
    return tpool.execute(_hasher.hash, password)


def verify_password(password_hash: str, password: str) -> bool:
    try:
        return tpool.execute(_hasher.verify, password_hash, password)
    except (VerificationError, InvalidHashError):
        return False


@functools.cache
def _unknown_user_hash() -> str:
    return hash_password("no such user")


def authenticate(session: Session, username: str, password: str) -> Caller:
    """The caller behind a username and password, or Unauthorized (same answer, same time, for both)."""
    user = session.scalar(select(User).where(User.username == username))
    if user is None:
        # Verify anyway: an unknown name must not answer faster than a wrong password.
        verify_password(_unknown_user_hash(), password)
        raise Unauthorized("wrong username or password")
    if not verify_password(user.password_hash, password) or not user.active:
        raise Unauthorized("wrong username or password")
    return Caller(user.username, user.agency_code, tuple(user.roles))


def active_caller(session: Session, username: str) -> Caller | None:
    """The caller of an active account (staff single sign-on: the province's provider vouched for the
    name; roles and agency stay this platform's), or None."""
    user = session.scalar(select(User).where(User.username == username[:128]))
    return Caller(user.username, user.agency_code, tuple(user.roles)) if user is not None and user.active else None


def token_response(caller: Caller, signing_pem: str, ttl_seconds: int) -> dict:
    return {"access_token": issue_token(caller, signing_pem, timedelta(seconds=ttl_seconds)),
            "token_type": "bearer", "expires_in": ttl_seconds}


def demo_accounts(demo: dict, agencies: list[dict]) -> list[tuple[str, str | None, list[str]]]:
    """(username, agency code, roles) of every demo account: demo-users.yaml over agencies.yaml."""
    accounts = [(name, None, ["admin"]) for name in demo["admins"]]
    for agency in agencies:
        accounts += [(f"{role}@{agency['code']}", agency["code"], [role]) for role in demo["roles_per_agency"]]
    return accounts


def _demo(catalog_dir) -> tuple[dict, list[tuple[str, str | None, list[str]]]]:
    demo = load_data(Path(catalog_dir) / "demo-users.yaml", DemoUsersSchema())
    return demo, demo_accounts(demo, load_agencies(catalog_dir))


def how_to_sign_in(catalog_dir) -> str:
    """The demo accounts in one line, for a newcomer: who may sign in, as what, with which password."""
    demo, accounts = _demo(catalog_dir)
    example = next(name for name, agency, _roles in accounts if agency)
    return (f"demo accounts (password {demo['password']!r}): {', '.join(demo['admins'])}, and for every agency "
            f"code C in agencies.yaml {', '.join(f'{role}@C' for role in demo['roles_per_agency'])} "
            f"(e.g. {example})")


def seed_demo_accounts(db_url: str, catalog_dir) -> int:
    """Create the demo accounts that do not exist yet; the number created. Never in production."""
    if is_production():
        log.warning("MOTCUA_ENV=production: demo accounts refused")
        return 0
    demo, wanted = _demo(catalog_dir)
    with session_on(db_url) as session:
        existing = set(session.scalars(select(User.username)))
        missing = [account for account in wanted if account[0] not in existing]
        if not missing:
            return 0
        # Every demo account has the same published password: one hash serves them all and
        # saves seconds at every fresh start.
        password_hash = hash_password(demo["password"])
        session.add_all(User(username=name, password_hash=password_hash, agency_code=agency, roles=roles)
                        for name, agency, roles in missing)
        session.commit()
    log.info("created %d demo accounts", len(missing))
    return len(missing)


@contextlib.contextmanager
def session_on(db_url: str):
    """A session on the gateway's database for an operator's command (its own engine, disposed after)."""
    engine = make_engine(db_url)
    try:
        with Session(engine) as session:
            yield session
    finally:
        engine.dispose()

REMOVE_DEMO = "motcua accounts remove-demo"
ADD_ADMIN = "motcua accounts add-admin <username>"


def demo_leftovers(session: Session, catalog_dir) -> list[str]:
    """The accounts production refuses, by username: the demo accounts (demo-users.yaml over
    agencies.yaml), and any account whose password is the demo password. The seeder hashes it once
    for all its accounts, and argon2's random salt makes every other hash unique, so the hashes
    shared by several accounts are the only ones to verify (demo accounts of another catalogue too)."""
    demo, wanted = _demo(catalog_dir)
    names = {name for name, _agency, _roles in wanted}
    shared = session.scalars(select(User.password_hash).group_by(User.password_hash)
                             .having(func.count() > 1)).all()
    demo_hashes = [digest for digest in shared if verify_password(digest, demo["password"])]
    return list(session.scalars(select(User.username).where(User.username.in_(names)
                                                           | User.password_hash.in_(demo_hashes))
                                .order_by(User.username)))


def refuse_demo_accounts(db_url: str, catalog_dir) -> None:
    """Production's start: stop, saying how to remove them, while any demo account or the demo
    password is left (a database seeded in development, then switched to production)."""
    with session_on(db_url) as session:
        left = demo_leftovers(session, catalog_dir)
    if left:
        shown = ", ".join(left[:5]) + (f" and {len(left) - 5} more" if len(left) > 5 else "")
        raise SystemExit(f"MOTCUA_ENV=production refuses to start while demo accounts or accounts with the demo "
                         f"password exist ({shown}): remove them with `{REMOVE_DEMO}` (create your own "
                         f"platform admin first with `{ADD_ADMIN}`)")


def remove_demo_accounts(db_url: str, catalog_dir) -> list[str]:
    """Delete what `refuse_demo_accounts` refuses; the usernames removed. Each removal ends the
    account's tokens everywhere (`account_changed` through the gateway's outbox, relayed by the next
    gateway to start), so a demo token cannot outlive its account on direct RPC either."""
    from services.gateway.models import Base

    with session_on(db_url) as session:
        uow = UnitOfWork(session, "gateway", Base.metadata)
        left = demo_leftovers(session, catalog_dir)
        session.execute(delete(User).where(User.username.in_(left)))
        now = utcnow()
        for username in left:
            uow.emit("account_changed", {"username": username, "changed_at": now})
        uow.commit()
    return left
