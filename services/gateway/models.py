"""The gateway's own data: staff accounts (tài khoản cán bộ), the audit log of staff actions and reads,
revoked tokens and failed logins (login throttling)."""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, BigInteger, Index, Integer, String
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from motcua.db import ServiceBase, reliability_tables, utcnow
from motcua.idempotency import command_results_table


class Base(ServiceBase, DeclarativeBase):
    """Declarative base of the gateway database."""


# Its outbox: the sessions' events (token_revoked, account_changed) for the other gateway instances;
# its inbox: the `access_denied` events it wrote to the audit log.
reliability_tables(Base.metadata)
# The results of its own commands (accounts) by idempotency key.
command_results_table(Base.metadata)


class User(Base):
    """A login: a platform admin (no agency) or a staff member of one agency."""

    __tablename__ = "users"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    username: Mapped[str] = mapped_column(String(128), unique=True)
    password_hash: Mapped[str] = mapped_column(String(256))
    agency_code: Mapped[str | None] = mapped_column(String(32))
    roles: Mapped[list[str]] = mapped_column(JSON, default=list)
    active: Mapped[bool] = mapped_column(default=True)
    # how the forms name the officer (họ và tên, chức danh): never the username (Circular 03/2025, Annex I)
    full_name: Mapped[str | None] = mapped_column(String(200), default=None)
    title: Mapped[str | None] = mapped_column(String(200), default=None)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    # Tokens issued before this moment are refused (set when roles, activity or password change).
    tokens_valid_after: Mapped[datetime | None] = mapped_column(default=None)


class AuditEntry(Base):
    """One staff action done through the gateway (nhật ký thao tác): who, when, where from, on what;
    a link of the log's hash chain (audit.py: `chain_hash` covers the previous link and this row)."""

    __tablename__ = "audit_log"
    __table_args__ = (Index("ix_audit_log_dossier", "dossier_code"),
                      Index("ix_audit_log_user_at", "username", "at"),
                      Index("ix_audit_log_at", "at"),
                      Index("ux_audit_log_chain_seq", "chain_seq", unique=True))  # one row per link: no fork

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    at: Mapped[datetime] = mapped_column(default=utcnow)
    username: Mapped[str] = mapped_column(String(128))
    agency_code: Mapped[str | None] = mapped_column(String(32))
    action: Mapped[str] = mapped_column(String(64))
    dossier_code: Mapped[str | None] = mapped_column(String(64))
    task_id: Mapped[str | None] = mapped_column(String(64))
    remote_addr: Mapped[str | None] = mapped_column(String(64))
    outcome: Mapped[str] = mapped_column(String(16), default="allowed", server_default="allowed")  # allowed | denied
    source: Mapped[str] = mapped_column(String(32), default="gateway", server_default="gateway")  # who saw it: gateway, intake, …
    detail: Mapped[str | None] = mapped_column(String(256))  # e.g. why it was denied; never personal data
    # the hash chain (audit.py): this row's place in it (1, 2, 3…) and its link
    chain_seq: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"))
    chain_hash: Mapped[str] = mapped_column(String(64))


class RevokedToken(Base):
    """An access token revoked by logout (thu hồi), kept until it would have expired anyway."""

    __tablename__ = "revoked_tokens"

    token_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    username: Mapped[str] = mapped_column(String(128))
    expires_at: Mapped[datetime] = mapped_column(index=True)
    revoked_at: Mapped[datetime] = mapped_column(default=utcnow)


class FailedAttempt(Base):
    """One failed guess (a login, a dossier's tracking key or ID number), under a keyed hash of what
    was guessed or of the remote address (never in clear): shared by every gateway instance, so the
    throttle holds however many there are."""

    __tablename__ = "failed_attempts"
    __table_args__ = (Index("ix_failed_attempts_key_at", "key", "at"),)

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    key: Mapped[str] = mapped_column(String(64))
    at: Mapped[datetime] = mapped_column(default=utcnow)


class KnownSignIn(Base):
    """An account signed in from an address lately, under a keyed hash of both (never in clear): there
    the address's limit of failed logins does not stand between the account and its owner (an office
    behind one NAT)."""

    __tablename__ = "known_sign_ins"

    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    at: Mapped[datetime] = mapped_column(index=True)


class KeptInput(Base):
    """What an officer typed into a console form posted after their session had ended (nội dung đang
    nhập giữ lại): kept here, not in a cookie (a cookie holds ~4 KB; a long note would not fit), for
    the page the form was on, shown there again after the new sign-in (`kept_input.py`)."""

    __tablename__ = "kept_inputs"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)  # a keyed hash of the cookie's secret
    username: Mapped[str | None] = mapped_column(String(128))  # the expired token's officer, when it says
    page: Mapped[str] = mapped_column(String(2048))
    action: Mapped[str] = mapped_column(String(2048))
    fields: Mapped[dict] = mapped_column(JSON)
    left_out: Mapped[list[str]] = mapped_column(JSON, default=list)  # too long to keep, or files
    expires_at: Mapped[datetime] = mapped_column(index=True)
