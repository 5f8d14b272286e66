"""Nhật ký thao tác và truy cập: every staff action and every staff read of personal data through the
gateway (who, when, from where, on what, allowed or denied), and the refusals the owning services
report (`access_denied` events); queryable by a platform admin.
"""
from __future__ import annotations

import logging
from contextlib import contextmanager
from datetime import datetime, time, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import func, select
from sqlalchemy.exc import SQLAlchemyError

from motcua.db import UnitOfWork, utcnow
from motcua.errors import Forbidden, NotFound
from motcua.identity import Caller
from services.gateway.models import AuditEntry

log = logging.getLogger(__name__)

ALLOWED, DENIED = "allowed", "denied"


def record(uow: UnitOfWork, caller: Caller, action: str, remote_addr: str | None,
           dossier_code: str | None = None, task_id=None, outcome: str = ALLOWED, detail: str | None = None) -> None:
    """The action is already committed by the service that owns it: a failed audit write is logged
    loudly rather than answered as a 500, which would tell the officer their action failed."""
    try:
        uow.session.add(AuditEntry(
            at=utcnow(), username=caller.username[:128], agency_code=caller.agency_code, action=action,
            dossier_code=dossier_code, task_id=None if task_id is None else str(task_id)[:64],
            remote_addr=remote_addr, outcome=outcome, source="gateway", detail=(detail or None) and detail[:256]))
        uow.commit()
    except SQLAlchemyError as exc:
        uow.session.rollback()
        log.error("AUDIT WRITE FAILED: %s by %s on %s (%s)", action, caller.username,
                  dossier_code or task_id or "-", type(exc).__name__)


@contextmanager
def audited(uow: UnitOfWork, caller: Caller, action: str, remote_addr: str | None,
            dossier_code: str | None = None, task_id=None, detail: str | None = None):
    """Audit what the block does for `caller`: allowed when it returns; denied when the owning
    service refuses (403) or hides (404) the record; other failures (400, 409) change nothing."""
    try:
        yield
    except (Forbidden, NotFound) as exc:
        uow.session.rollback()
        why = f"{detail}: {exc.message}" if detail else exc.message
        record(uow, caller, action, remote_addr, dossier_code, task_id, outcome=DENIED, detail=why)
        raise
    record(uow, caller, action, remote_addr, dossier_code, task_id, detail=detail)


def record_denied_by_service(uow: UnitOfWork, event) -> None:
    """An `access_denied` event of a service (applied once, through the inbox) as an audit entry."""
    data = event.data
    username = data["username"] or f"unverified:{data['claimed_username'] or '-'}"
    uow.session.add(AuditEntry(
        at=data["denied_at"], username=username[:128], agency_code=data["agency_code"],
        action=data["action"][:64], dossier_code=data["dossier_code"], task_id=data["task_id"],
        remote_addr=None, outcome=DENIED, source=event.source[:32], detail=data["reason"][:256]))


def query(uow: UnitOfWork, filters: dict, tz: ZoneInfo) -> dict:
    """The audit log, newest first, filtered and paginated (dates are the province's local days)."""
    where = []
    for name in ("username", "dossier_code", "action", "outcome", "agency_code"):
        if filters.get(name):
            where.append(getattr(AuditEntry, name) == filters[name])
    if filters.get("date_from"):
        where.append(AuditEntry.at >= datetime.combine(filters["date_from"], time(), tz))
    if filters.get("date_to"):
        where.append(AuditEntry.at < datetime.combine(filters["date_to"] + timedelta(days=1), time(), tz))
    total = uow.session.scalar(select(func.count()).select_from(AuditEntry).where(*where))
    page, size = filters["page"], filters["page_size"]
    rows = uow.session.scalars(select(AuditEntry).where(*where).order_by(AuditEntry.at.desc(), AuditEntry.id.desc())
                               .offset((page - 1) * size).limit(size)).all()
    uow.session.rollback()  # a read: give the connection back
    return {"total": total, "page": page, "page_size": size, "items": [
        {"id": e.id, "at": e.at.astimezone(tz).isoformat(), "username": e.username, "agency_code": e.agency_code,
         "action": e.action, "outcome": e.outcome, "source": e.source, "dossier_code": e.dossier_code,
         "task_id": e.task_id, "remote_addr": e.remote_addr, "detail": e.detail} for e in rows]}
