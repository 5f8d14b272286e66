"""The gateway's own data: staff accounts (tài khoản cán bộ) and the audit log of staff actions."""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, BigInteger, Index, Integer, String
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from motcua.db import ServiceBase, reliability_tables, utcnow


class Base(ServiceBase, DeclarativeBase):
    """Declarative base of the gateway database."""


# The gateway emits no events today; the tables keep every service database the same shape.
reliability_tables(Base.metadata)


class User(Base):
    """A login: a platform admin (no agency) or a staff member of one agency."""

    __tablename__ = "users"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    username: Mapped[str] = mapped_column(String(128), unique=True)
    password_hash: Mapped[str] = mapped_column(String(256))
    agency_code: Mapped[str | None] = mapped_column(String(32))
    roles: Mapped[list[str]] = mapped_column(JSON, default=list)
    active: Mapped[bool] = mapped_column(default=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class AuditEntry(Base):
    """One staff action done through the gateway (nhật ký thao tác): who, when, where from, on what."""

    __tablename__ = "audit_log"
    __table_args__ = (Index("ix_audit_log_dossier", "dossier_code"),
                      Index("ix_audit_log_user_at", "username", "at"))

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    at: Mapped[datetime] = mapped_column(default=utcnow)
    username: Mapped[str] = mapped_column(String(128))
    agency_code: Mapped[str | None] = mapped_column(String(32))
    action: Mapped[str] = mapped_column(String(64))
    dossier_code: Mapped[str | None] = mapped_column(String(64))
    task_id: Mapped[str | None] = mapped_column(String(64))
    remote_addr: Mapped[str | None] = mapped_column(String(64))
