"""Nhật ký thao tác: every staff action done through the gateway, written once the service said yes."""
from __future__ import annotations

import logging

from sqlalchemy.exc import SQLAlchemyError

from motcua.db import UnitOfWork, utcnow
from motcua.identity import Caller
from services.gateway.models import AuditEntry

log = logging.getLogger(__name__)


def record(uow: UnitOfWork, caller: Caller, action: str, remote_addr: str | None,
           dossier_code: str | None = None, task_id=None) -> None:
    """The action is already committed by the service that owns it: a failed audit write is logged
    loudly rather than answered as a 500, which would tell the officer their action failed."""
    try:
        uow.session.add(AuditEntry(
            at=utcnow(), username=caller.username, agency_code=caller.agency_code, action=action,
            dossier_code=dossier_code, task_id=None if task_id is None else str(task_id), remote_addr=remote_addr))
        uow.commit()
    except SQLAlchemyError as exc:
        uow.session.rollback()
        log.error("AUDIT WRITE FAILED: %s by %s on %s (%s)", action, caller.username,
                  dossier_code or task_id or "-", type(exc).__name__)
