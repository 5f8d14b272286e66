"""Public tracking (tra cứu hồ sơ): anyone with the dossier code and the applicant's phone's last 4
digits sees where the dossier is; the name is masked, nothing else personal is shown. One read of the
dossier's row: its timeline and the open supplement request's items are kept ready on it.

The answer says what it reflects: `dossier_version` and `run_version`, every intake and workflow event
of the dossier up to them (0: none). The gateway keeps an answer until it hears of a newer one."""
from __future__ import annotations

import hmac
from functools import partial
from zoneinfo import ZoneInfo

from sqlalchemy import bindparam, select
from sqlalchemy.orm import Session

from motcua.calendar import local_iso
from motcua.errors import NotFound, WrongKey
from motcua.privacy import tracking_key
from services.reporting.models import DossierFact as F

# One message for an unknown code and a wrong key: the answer must not reveal which codes exist.
NOT_FOUND = "no dossier with this code and key"
# The columns the answer shows, read by primary key (plain rows: no ORM object to build for a read).
TRACKED = select(F.code, F.procedure_code, F.procedure_name, F.status, F.status_code, F.submitted_at, F.received_at,
                 F.due_at, F.finished_at, F.returned_at, F.refused_at, F.current_agency_code, F.applicant_masked,
                 F.timeline, F.supplement_items, F.tracking_key, F.applied_dossier_version,
                 F.applied_run_version).where(F.code == bindparam("code"))


def track(session: Session, code: str, key: str, secret: str, zone: ZoneInfo) -> dict:
    fact = session.execute(TRACKED, {"code": code}).first()
    expected = tracking_key(secret, code, key)
    if fact is None or not fact.tracking_key:  # also a dossier submitted a moment ago, not projected yet
        raise NotFound(NOT_FOUND)
    if not hmac.compare_digest(fact.tracking_key, expected):
        raise WrongKey(NOT_FOUND)

    at = partial(local_iso, tz=zone)
    return {
        "code": fact.code,
        "procedure_code": fact.procedure_code,
        "procedure_name": fact.procedure_name,
        "status": fact.status,
        "status_code": fact.status_code,
        "submitted_at": at(fact.submitted_at),
        "received_at": at(fact.received_at),
        "due_at": at(fact.due_at),
        "finished_at": at(fact.finished_at),
        "returned_at": at(fact.returned_at),
        "refused_at": at(fact.refused_at),
        "current_agency_code": fact.current_agency_code,
        "applicant_name": fact.applicant_masked,
        "timeline": fact.timeline or [],
        # what the open supplement request lists (the applicant reads it where they supplement)
        "supplement_items": (fact.supplement_items or []) if fact.status == "supplement_requested" else [],
        "dossier_version": fact.applied_dossier_version or 0,
        "run_version": fact.applied_run_version or 0,
    }
