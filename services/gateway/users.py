"""Quản lý tài khoản: platform admins manage every account; agency admins (quản trị đơn vị) the
accounts of their agency and its sub-agencies only. Only a platform admin grants `admin`.
Every change of roles, activity or password ends the account's current tokens."""
from __future__ import annotations

import functools
from datetime import datetime

from marshmallow import RAISE, Schema, fields, validate
from sqlalchemy import select
from sqlalchemy.orm import Session

from motcua.access import AgencyTree, may_manage
from motcua.catalog import load_agencies
from motcua.db import UnitOfWork
from motcua.errors import Conflict, Forbidden, NotFound, ValidationFailed, load_valid
from motcua.identity import STAFF_ROLES, USERNAME_MAX, Caller
from services.gateway.accounts import hash_password, session_on
from services.gateway.models import User

ADMIN = "admin"
ASSIGNABLE_ROLES = (ADMIN, *STAFF_ROLES)


def _roles(**kwargs) -> fields.List:
    return fields.List(fields.Str(validate=validate.OneOf(ASSIGNABLE_ROLES)), validate=validate.Length(min=1, max=8),
                       **kwargs)


def _password(**kwargs) -> fields.Str:
    # At least 8 characters; bounded: an unbounded password would make the hasher the attacker's tool.
    return fields.Str(validate=validate.Length(min=8, max=1024), **kwargs)


def _person_text(**kwargs) -> fields.Str:
    """An officer's full name or title as the forms print it (None clears it)."""
    return fields.Str(allow_none=True, validate=validate.Length(min=1, max=200), **kwargs)


class NewUserSchema(Schema):
    class Meta:
        unknown = RAISE

    username = fields.Str(required=True, validate=[validate.Length(min=3, max=USERNAME_MAX),
                                                   validate.Regexp(r"^[A-Za-z0-9._@-]+$", error="letters, digits and . _ @ - only")])
    password = _password(required=True)
    agency_code = fields.Str(load_default=None, allow_none=True, validate=validate.Length(max=32))
    roles = _roles(required=True)
    active = fields.Bool(load_default=True)
    full_name = _person_text(load_default=None)
    title = _person_text(load_default=None)


class UserChangeSchema(Schema):
    class Meta:
        unknown = RAISE

    roles = _roles()
    active = fields.Bool()
    password = _password()
    full_name = _person_text()
    title = _person_text()


class UserQuerySchema(Schema):
    class Meta:
        unknown = RAISE

    agency = fields.Str(load_default=None, validate=validate.Length(max=32))


@functools.cache
def agency_tree(catalog_dir: str) -> AgencyTree:
    return AgencyTree.from_agencies(load_agencies(catalog_dir))


def view(user: User) -> dict:
    return {"username": user.username, "agency_code": user.agency_code, "roles": list(user.roles),
            "active": user.active, "full_name": user.full_name, "title": user.title,
            "created_at": user.created_at.isoformat()}


def _require_manager(caller: Caller) -> None:
    if not (caller.is_admin or "agency_admin" in caller.roles):
        raise Forbidden("requires an agency admin or the platform admin")


def _check_grant(caller: Caller, tree: AgencyTree, agency_code: str | None, roles: list[str]) -> None:
    if ADMIN in roles and not caller.is_admin:
        raise Forbidden("only the platform admin grants admin", field="roles")
    if agency_code is None and ADMIN not in roles:
        raise ValidationFailed("staff accounts belong to an agency", field="agency_code")
    if agency_code is not None and agency_code not in tree.parents:
        raise ValidationFailed("unknown agency", field="agency_code")
    if not may_manage(caller, agency_code, tree):
        raise Forbidden("not an agency you manage", field="agency_code")


def list_users(session: Session, caller: Caller, tree: AgencyTree, agency: str | None) -> list[dict]:
    _require_manager(caller)
    query = select(User).order_by(User.agency_code, User.username)
    if agency:
        query = query.where(User.agency_code == agency)
    users = [u for u in session.scalars(query) if may_manage(caller, u.agency_code, tree)]
    session.rollback()
    return [view(u) for u in users]


def create_user(uow: UnitOfWork, caller: Caller, tree: AgencyTree, data: dict, now: datetime) -> dict:
    _require_manager(caller)
    session = uow.session
    _check_grant(caller, tree, data["agency_code"], data["roles"])
    if session.scalar(select(User.id).where(User.username == data["username"])) is not None:
        raise Conflict("this username is taken", field="username")
    user = User(username=data["username"], password_hash=hash_password(data["password"]),
                agency_code=data["agency_code"], roles=sorted(set(data["roles"])), active=data["active"],
                full_name=data["full_name"], title=data["title"], created_at=now)
    session.add(user)
    uow.commit()
    return view(user)


def update_user(uow: UnitOfWork, caller: Caller, tree: AgencyTree, username: str, data: dict,
                now: datetime) -> dict:
    """A change of roles, activity or password ends the account's tokens, on every gateway instance
    (`account_changed`); a new full name or title (what forms print) does not."""
    _require_manager(caller)
    session = uow.session
    user = session.scalar(select(User).where(User.username == username))
    if user is None:
        raise NotFound(f"no user {username}", field="username")
    if not may_manage(caller, user.agency_code, tree) or (ADMIN in user.roles and not caller.is_admin):
        raise Forbidden("not an account you manage", field="username")
    if user.username == caller.username and ("roles" in data or data.get("active") is False):
        raise Forbidden("you cannot change your own roles or deactivate yourself", field="username")
    if "roles" in data:
        _check_grant(caller, tree, user.agency_code, data["roles"])
        user.roles = sorted(set(data["roles"]))
    if "active" in data:
        user.active = data["active"]
    if "password" in data:
        user.password_hash = hash_password(data["password"])
    for key in NAMING.intersection(data):
        setattr(user, key, data[key])
    if data.keys() - NAMING:
        user.tokens_valid_after = now
        uow.emit("account_changed", {"username": user.username, "changed_at": now})
    uow.commit()
    return view(user)


NAMING = frozenset({"full_name", "title"})
OFFICERS_MAX = 200  # usernames a form names: the counter's, each step's, each apology's


def officers(session, usernames: list[str]) -> dict[str, dict]:
    """{username: {full_name, title}} of the accounts among `usernames` that have a full name: how the
    forms name their signers (intake asks; an account without one is left to be written by hand)."""
    if not isinstance(usernames, list) or len(usernames) > OFFICERS_MAX or not all(isinstance(u, str) for u in usernames):
        raise ValidationFailed(f"a list of at most {OFFICERS_MAX} usernames", field="usernames")
    rows = session.execute(select(User.username, User.full_name, User.title)
                           .where(User.username.in_(usernames), User.full_name.is_not(None))).all()
    return {row.username: {"full_name": row.full_name, "title": row.title} for row in rows}


def add_admin(db_url: str, username: str, password: str) -> None:
    """An operator's command: a platform admin (no agency), e.g. the first one of a production
    database (the demo `admin` is refused there). Refused as the accounts API refuses it: a
    ValidationFailed naming the field, or Conflict for a username taken."""
    load_valid(NewUserSchema, {"username": username, "password": password, "roles": [ADMIN]})
    with session_on(db_url) as session:
        if session.scalar(select(User.id).where(User.username == username)) is not None:
            raise Conflict("an account with this username exists", field="username")
        session.add(User(username=username, password_hash=hash_password(password), roles=[ADMIN]))
        session.commit()
