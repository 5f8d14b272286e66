"""Staff accounts (tài khoản): argon2 password hashes, logins, tokens, the demo accounts.

Argon2 is C-level blocking (~0.1 s a hash): every hash and verification goes through
`eventlet.tpool`, so one login does not stall every other request of the process.
"""
from __future__ import annotations

import functools
import logging
from datetime import timedelta
from pathlib import Path

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from eventlet import tpool
from sqlalchemy import select
from sqlalchemy.orm import Session

from motcua.catalog import load_agencies, load_data
from motcua.config import is_production
from motcua.db import make_engine
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


def token_response(caller: Caller, signing_pem: str, ttl_seconds: int) -> dict:
    return {"access_token": issue_token(caller, signing_pem, timedelta(seconds=ttl_seconds)),
            "token_type": "bearer", "expires_in": ttl_seconds}


def demo_accounts(demo: dict, agencies: list[dict]) -> list[tuple[str, str | None, list[str]]]:
    """(username, agency code, roles) of every demo account: demo-users.yaml over agencies.yaml."""
    accounts = [(name, None, ["admin"]) for name in demo["admins"]]
    for agency in agencies:
        accounts += [(f"{role}@{agency['code']}", agency["code"], [role]) for role in demo["roles_per_agency"]]
    return accounts


def seed_demo_accounts(db_url: str, catalog_dir) -> int:
    """Create the demo accounts that do not exist yet; the number created. Never in production."""
    if is_production():
        log.warning("MOTCUA_ENV=production: demo accounts refused")
        return 0
    demo = load_data(Path(catalog_dir) / "demo-users.yaml", DemoUsersSchema())
    wanted = demo_accounts(demo, load_agencies(catalog_dir))
    engine = make_engine(db_url)
    try:
        with Session(engine) as session:
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
    finally:
        engine.dispose()
    log.info("created %d demo accounts", len(missing))
    return len(missing)
