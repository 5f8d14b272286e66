"""Staff search of dossiers (tra cứu hồ sơ), scoped to the caller's agency: by code, applicant name
without diacritics, ID number or phone (through keyed hashes, never compared in clear), status,
procedure, submission dates, overdue, mandatory documents missing; paginated. Each item names the
mandatory documents its dossier lacks (`documents_missing`): the counter's queue flags them."""
from __future__ import annotations

import hashlib
import hmac
from datetime import datetime, time, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import func, select

from motcua.access import AgencyTree, scope_of
from motcua.calendar import local_iso
from motcua.db import UnitOfWork
from motcua.errors import Forbidden, ValidationFailed
from motcua.identity import Caller
from motcua.privacy import mask_name
from motcua.text import fold, normalise_phone
from services.intake.catalog import Catalog
from services.intake.documents import missing
from services.intake.models import dossier_agencies, dossiers

OPEN_STATUSES = ("received", "processing")  # the clock runs: these can be overdue
# The most dossiers the missing-documents filter reads and judges in the service for one search.
MAX_JUDGED = 10_000
_LISTED = select(dossiers.c.code, dossiers.c.procedure_code, dossiers.c.procedure_version, dossiers.c.procedure_name,
                 dossiers.c.agency_code, dossiers.c.status, dossiers.c.status_code, dossiers.c.applicant_name,
                 dossiers.c.submitted_at, dossiers.c.due_at, dossiers.c.documents)


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
           catalog: Catalog, tree: AgencyTree | None = None) -> dict:
    """Dossiers an agency involved in: the caller's own, or (leaders, agency admins) its sub-tree's."""
    caller.require("receptionist", "specialist", "leader", "agency_admin")
    d = dossiers.c
    query = _LISTED
    scope = scope_of(caller, tree or AgencyTree({}))
    if scope is not None:
        involved = select(dossier_agencies.c.dossier_id).where(dossier_agencies.c.agency_code.in_(sorted(scope)))
        query = query.where(d.id.in_(involved))
    if filters.get("code"):
        query = query.where(d.code.startswith(filters["code"], autoescape=True))
    if filters.get("name"):
        folded = " ".join(fold(filters["name"]).split())
        query = query.where(d.applicant_name_folded.contains(folded, autoescape=True))
    if filters.get("id_number"):
        query = query.where(d.applicant_id_hash == lookup_hash(secret, "id", filters["id_number"]))
    if filters.get("phone"):
        query = query.where(d.applicant_phone_hash == lookup_hash(secret, "phone", normalise_phone(filters["phone"])))
    if filters.get("status"):
        query = query.where(d.status == filters["status"])
    if filters.get("procedure_code"):
        query = query.where(d.procedure_code == filters["procedure_code"])
    if filters.get("date_from"):
        query = query.where(d.submitted_at >= datetime.combine(filters["date_from"], time(), tz))
    if filters.get("date_to"):
        query = query.where(d.submitted_at < datetime.combine(filters["date_to"] + timedelta(days=1), time(), tz))
    if filters.get("overdue") is not None:
        late = d.status.in_(OPEN_STATUSES) & (d.due_at < now)
        query = query.where(late if filters["overdue"] else ~late)
    if filters.get("documents_missing") is not None:
        query = _by_completeness(uow, query, catalog, filters["documents_missing"])
    return _page(uow, query, filters.get("page", 1), filters.get("page_size", 20), tz, now, catalog)


def my_dossiers(uow: UnitOfWork, secret: str, tz: ZoneInfo, caller: Caller, now: datetime, catalog: Catalog,
                page: int = 1, page_size: int = 20) -> dict:
    """Hồ sơ của tôi: a citizen signed in with VNeID sees the dossiers whose applicant is the identity
    VNeID verified (matched through the ID number's keyed hash), whoever submitted them."""
    if not caller.is_citizen:
        raise Forbidden("sign in with VNeID to list your dossiers")
    d = dossiers.c
    query = _LISTED.where(d.applicant_id_hash == lookup_hash(secret, "id", caller.citizen_id))
    return _page(uow, query, page, page_size, tz, now, catalog)


def _documents_missing(row, catalog: Catalog) -> list[dict]:
    """The mandatory documents of the row's procedure version its dossier has not got."""
    return missing(row.documents, catalog.procedure(row.procedure_code, version=row.procedure_version))


def _by_completeness(uow: UnitOfWork, query, catalog: Catalog, lacking: bool):
    """`query` narrowed to the dossiers lacking a mandatory document (or, `lacking` False, to the complete
    ones). Which documents are mandatory is the catalogue's, not the database's, so the matches are read
    and judged here: a queue or a scoped search is hundreds of rows, each a short JSON list. A search
    matching more than `MAX_JUDGED` dossiers (a province-wide one over years) is refused, naming the
    filter, rather than read whole into the service."""
    d = dossiers.c
    rows = uow.session.execute(query.with_only_columns(d.id, d.procedure_code, d.procedure_version, d.documents)
                               .limit(MAX_JUDGED + 1)).all()
    if len(rows) > MAX_JUDGED:
        raise ValidationFailed(f"more than {MAX_JUDGED:,} dossiers match: narrow the search (status, dates, "
                               "procedure) to filter them by missing documents", field="documents_missing")
    ids = [row.id for row in rows if bool(_documents_missing(row, catalog)) == lacking]
    return query.where(d.id.in_(ids))


def _page(uow: UnitOfWork, query, page: int, size: int, tz: ZoneInfo, now: datetime, catalog: Catalog) -> dict:
    """One page of `query` (a `_LISTED` select), newest first, with the total."""
    d = dossiers.c
    total = uow.session.scalar(select(func.count()).select_from(query.subquery()))
    rows = uow.session.execute(query.order_by(d.submitted_at.desc(), d.id.desc())
                               .offset((page - 1) * size).limit(size)).all()
    return {"total": total, "page": page, "page_size": size, "items": [
        {"code": row.code, "procedure_code": row.procedure_code, "procedure_name": row.procedure_name,
         "agency_code": row.agency_code, "status": row.status, "status_code": row.status_code,
         "applicant": mask_name(row.applicant_name), "submitted_at": local_iso(row.submitted_at, tz),
         "due_at": local_iso(row.due_at, tz),
         "overdue": row.status in OPEN_STATUSES and row.due_at is not None and row.due_at < now,
         "documents_missing": _documents_missing(row, catalog)}
        for row in rows]}
