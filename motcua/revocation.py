"""Thu hồi token at the services: a token the gateway refuses is refused on direct RPC too.

The gateway announces a logout (`token_revoked`: the token's id) and a change of an account's roles,
activity or password (`account_changed`: its earlier tokens end) through its outbox. Every service that
verifies tokens mixes in `Revocations`: it consumes both events from its own durable inbox (nothing is
lost while it is down: they wait in its queue) and keeps them in two tables of its own database, and
`verified_caller` refuses a revoked token, or one issued no later than its account's last change, in
one statement read in the call's own transaction. Rows outlive every token they could refuse, no more:
a token's revocation until the token expires, an account's change for the longest lifetime a token
may have (`TokenLimits`); each write purges what has become moot.
"""
from __future__ import annotations

from datetime import timedelta

from sqlalchemy import Column, MetaData, String, Table, bindparam, delete, exists, select
from sqlalchemy.orm import Session

from motcua.bus import event_handler
from motcua.contracts import Event
from motcua.db import UnitOfWork, UTCDateTime, utcnow
from motcua.errors import Unauthorized
from motcua.identity import Caller, TokenLimits, verify_caller


def revocation_tables(metadata: MetaData) -> tuple[Table, Table]:
    """The revoked tokens' ids and the accounts' last changes, as a service keeps them."""
    tokens = Table(
        "revoked_token_ids", metadata,
        Column("token_id", String(64), primary_key=True),
        Column("expires_at", UTCDateTime(), nullable=False, index=True),
    )
    accounts = Table(
        "account_changes", metadata,
        Column("username", String(128), primary_key=True),
        Column("changed_at", UTCDateTime(), nullable=False, index=True),
    )
    return tokens, accounts


def _tables(metadata: MetaData) -> tuple[Table, Table]:
    return metadata.tables["revoked_token_ids"], metadata.tables["account_changes"]


def check(session: Session, metadata: MetaData, caller: Caller) -> None:
    """Unauthorized if the caller's token was revoked or its account changed since it was issued."""
    tokens, accounts = _tables(metadata)
    revoked, changed_at = session.execute(
        select(exists().where(tokens.c.token_id == bindparam("token_id")),
               select(accounts.c.changed_at).where(accounts.c.username == bindparam("username")).scalar_subquery()),
        {"token_id": caller.token_id, "username": caller.username}).one()
    if revoked:
        raise Unauthorized("token revoked")
    # Tokens carry whole seconds: one issued in the second of the change is refused too (as the gateway does).
    if changed_at is not None and caller.issued_at is not None and caller.issued_at <= changed_at:
        raise Unauthorized("token no longer valid: sign in again")


def record_token_revoked(uow: UnitOfWork, event: Event) -> None:
    tokens, _accounts = _tables(uow.metadata)
    session, data = uow.session, event.data
    session.execute(delete(tokens).where(tokens.c.expires_at < utcnow()))
    if session.execute(select(tokens.c.token_id).where(tokens.c.token_id == data["token_id"])).first() is None:
        session.execute(tokens.insert().values(token_id=data["token_id"], expires_at=data["expires_at"]))


def record_account_changed(uow: UnitOfWork, event: Event, limits: TokenLimits) -> None:
    """The account's latest change (events may arrive out of order: an earlier one never wins)."""
    _tokens, accounts = _tables(uow.metadata)
    session, data = uow.session, event.data
    longest = timedelta(seconds=max(limits.max_seconds, limits.max_system_seconds))
    session.execute(delete(accounts).where(accounts.c.changed_at < utcnow() - longest))
    known = session.execute(select(accounts.c.changed_at).where(accounts.c.username == data["username"])).scalar()
    if known is None:
        session.execute(accounts.insert().values(username=data["username"], changed_at=data["changed_at"]))
    elif known < data["changed_at"]:
        session.execute(accounts.update().where(accounts.c.username == data["username"])
                        .values(changed_at=data["changed_at"]))


class Revocations:
    """Mixed into a service that verifies tokens (it has `name`, `db` and `config`, and its models
    declare `revocation_tables`): the gateway's revocations, applied once each, and `verified_caller`."""

    @event_handler("gateway", "token_revoked")
    def on_token_revoked(self, event):
        self.db.apply_once(event, f"{self.name}.on_token_revoked", record_token_revoked)

    @event_handler("gateway", "account_changed")
    def on_account_changed(self, event):
        limits = TokenLimits.of(self.config)
        self.db.apply_once(event, f"{self.name}.on_account_changed",
                           lambda uow, e: record_account_changed(uow, e, limits))

    def verified_caller(self, token) -> Caller:
        """The caller of this call: its token verified (signature, lifetime, cap), then not revoked."""
        caller = verify_caller(self.config, token)
        check(self.db.session, self.db.metadata, caller)
        return caller

    def authorised(self, token, *roles: str) -> Caller:
        """The verified caller of an RPC, holding one of `roles` (platform admins pass): what every
        entrypoint that serves staff or operators asks first, so none answers a call without a caller."""
        caller = verify_caller(self.config, token)
        caller.require(*roles)  # before the revocation's read: a caller without the role costs no statement
        check(self.db.session, self.db.metadata, caller)
        return caller
