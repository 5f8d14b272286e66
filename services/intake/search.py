"""Staff search of dossiers (tra cứu hồ sơ), scoped to the caller's agency: by code, applicant name
without diacritics, ID number or phone (through keyed hashes, never compared in clear), status,
procedure, submission dates, overdue; paginated."""
from __future__ import annotations

import hashlib
import hmac
from datetime import datetime, time, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import func, select

from motcua.access import AgencyTree, scope_of
from motcua.calendar import local_iso
from motcua.db import UnitOfWork
from motcua.identity import Caller
from motcua.privacy import mask_name
from services.intake.catalog import fold
from services.intake.models import Dossier, DossierAgency

OPEN_STATUSES = ("received", "processing")  # the clock runs: these can be overdue


def normalise_phone(phone: str) -> str:
    """+84912345678 → 0912345678: one form to store and to search (the contract admits both)."""
    return "0" + phone[3:] if phone.startswith("+84") else phone


def lookup_hash(secret: str, kind: str, value: str) -> str:
    """Keyed hash of an ID number or a phone: equal values match, the value is not recoverable
    without the secret."""
    return hmac.new(secret.encode(), f"{kind}:{value}".encode(), hashlib.sha256).hexdigest()


def applicant_keys(secret: str, applicant: dict) -> dict:
    """The searchable columns of an applicant."""
    return {"applicant_id_hash": lookup_hash(secret, "id", applicant["id_number"]),
            "applicant_phone_hash": lookup_hash(secret, "phone", normalise_phone(applicant["phone"])),
            "applicant_name_folded": " ".join(fold(applicant["full_name"]).split())[:200]}


def search(uow: UnitOfWork, secret: str, tz: ZoneInfo, filters: dict, caller: Caller, now: datetime,
           tree: AgencyTree | None = None) -> dict:
    """Dossiers an agency involved in: the caller's own, or (leaders, agency admins) its sub-tree's."""
    caller.require("receptionist", "specialist", "leader", "agency_admin")
    query = select(Dossier)
    scope = scope_of(caller, tree or AgencyTree({}))
    if scope is not None:
        involved = select(DossierAgency.dossier_id).where(DossierAgency.agency_code.in_(sorted(scope)))
        query = query.where(Dossier.id.in_(involved))
    if filters.get("code"):
        query = query.where(Dossier.code.startswith(filters["code"], autoescape=True))
    if filters.get("name"):
        folded = " ".join(fold(filters["name"]).split())
        query = query.where(Dossier.applicant_name_folded.contains(folded, autoescape=True))
    if filters.get("id_number"):
        query = query.where(Dossier.applicant_id_hash == lookup_hash(secret, "id", filters["id_number"]))
    if filters.get("phone"):
        query = query.where(Dossier.applicant_phone_hash == lookup_hash(secret, "phone",
                                                                        normalise_phone(filters["phone"])))
    if filters.get("status"):
        query = query.where(Dossier.status == filters["status"])
    if filters.get("procedure_code"):
        query = query.where(Dossier.procedure_code == filters["procedure_code"])
    if filters.get("date_from"):
        query = query.where(Dossier.submitted_at >= datetime.combine(filters["date_from"], time(), tz))
    if filters.get("date_to"):
        query = query.where(Dossier.submitted_at < datetime.combine(filters["date_to"] + timedelta(days=1), time(), tz))
    if filters.get("overdue") is not None:
        late = Dossier.status.in_(OPEN_STATUSES) & (Dossier.due_at < now)
        query = query.where(late if filters["overdue"] else ~late)
    total = uow.session.scalar(select(func.count()).select_from(query.subquery()))
    page, size = filters.get("page", 1), filters.get("page_size", 20)
    rows = uow.session.scalars(query.order_by(Dossier.submitted_at.desc(), Dossier.id.desc())
                               .offset((page - 1) * size).limit(size)).all()
    return {"total": total, "page": page, "page_size": size, "items": [
        {"code": d.code, "procedure_code": d.procedure_code, "procedure_name": d.procedure_name,
         "agency_code": d.agency_code, "status": d.status, "status_code": d.status_code,
         "applicant": mask_name(d.applicant_name), "submitted_at": local_iso(d.submitted_at, tz),
         "due_at": local_iso(d.due_at, tz),
         "overdue": d.status in OPEN_STATUSES and d.due_at is not None and d.due_at < now}
        for d in rows]}
