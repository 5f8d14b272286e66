"""Public tracking (tra cứu hồ sơ): anyone with the dossier code and the applicant's phone's last 4
digits sees where the dossier is; the name is masked, nothing else personal is shown."""
from __future__ import annotations

import hmac
from functools import partial
from zoneinfo import ZoneInfo

from sqlalchemy.orm import Session

from motcua.calendar import local_iso
from motcua.errors import NotFound, WrongKey
from motcua.privacy import tracking_key
from services.reporting.models import DossierFact
from services.reporting.projections import dossier_events, project

# One message for an unknown code and a wrong key: the answer must not reveal which codes exist.
NOT_FOUND = "no dossier with this code and key"


def track(session: Session, code: str, key: str, secret: str, zone: ZoneInfo) -> dict:
    fact = session.get(DossierFact, code)
    expected = tracking_key(secret, code, key)
    if fact is None or not fact.tracking_key:  # also a dossier submitted a moment ago, not projected yet
        raise NotFound(NOT_FOUND)
    if not hmac.compare_digest(fact.tracking_key, expected):
        raise WrongKey(NOT_FOUND)

    at = partial(local_iso, tz=zone)
    events = dossier_events(session, code)
    timeline = project(code, events, zone).timeline
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
        "timeline": [{**entry, "at": at(entry["at"])} for entry in timeline],
        "supplement_items": _asked_for(events) if fact.status == "supplement_requested" else [],
    }


def _asked_for(events) -> list[str]:
    """What the open supplement request lists (the applicant reads it where they supplement)."""
    requests = sorted((e for e in events if e.event_type == "supplement_requested"), key=lambda e: e.occurred_at)
    return list(requests[-1].data.get("items", [])) if requests else []
