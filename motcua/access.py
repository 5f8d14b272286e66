"""Phân quyền theo cơ quan: who may see and act on an agency's records, checked by the service that
owns them, and the refusals it reports to the audit log (nhật ký truy cập).

Roles (vai trò) are scoped to one agency (cơ quan). A caller acts for their own agency; leaders
(lãnh đạo) and agency admins (quản trị đơn vị) also oversee the agency's sub-tree (đơn vị trực thuộc,
`parent_code` in agencies.yaml); a platform admin (`admin`) acts for every agency.

A service that refuses a caller records an `access_denied` event through its outbox
(`record_denial`); the gateway, which owns the audit log, consumes it.
"""
from __future__ import annotations

import functools
import inspect
import logging
from collections.abc import Iterable

import jwt

from motcua.db import UnitOfWork, utcnow
from motcua.errors import Forbidden, Unauthorized
from motcua.identity import Caller, verify_caller

log = logging.getLogger(__name__)

# Roles that oversee the agency's sub-agencies as well as the agency itself.
OVERSIGHT_ROLES = ("leader", "agency_admin")
# The longest text of a refusal that travels in the event (messages name no personal data).
MAX_REASON = 200


class AgencyTree:
    """Agencies and their parents (cơ quan cấp trên): `AgencyTree({"child": "parent", "root": None})`."""

    def __init__(self, parents: dict[str, str | None]):
        self.parents = dict(parents)

    @classmethod
    def from_agencies(cls, agencies: Iterable[dict]) -> "AgencyTree":
        """From agencies.yaml's records (dicts with `code` and `parent_code`)."""
        return cls({a["code"]: a.get("parent_code") for a in agencies})

    def ancestors(self, code: str | None) -> list[str]:
        """The agency's parents, nearest first (a cycle in the data ends the walk)."""
        found: list[str] = []
        current = self.parents.get(code) if code else None
        while current is not None and current not in found and current != code:
            found.append(current)
            current = self.parents.get(current)
        return found

    def within(self, code: str | None, root: str | None) -> bool:
        """`code` is `root` or one of its sub-agencies, however deep."""
        if code is None or root is None:
            return False
        return code == root or root in self.ancestors(code)

    def subtree(self, root: str) -> set[str]:
        """`root` and every agency below it."""
        return {code for code in self.parents if self.within(code, root)} | {root}


def scope_of(caller: Caller, tree: AgencyTree) -> set[str] | None:
    """The agencies whose records the caller may read: None means every agency (platform admin)."""
    if caller.is_admin:
        return None
    if caller.agency_code is None:
        return set()
    if any(role in caller.roles for role in OVERSIGHT_ROLES):
        return tree.subtree(caller.agency_code)
    return {caller.agency_code}


def may_read(caller: Caller, agency_codes: Iterable[str], tree: AgencyTree) -> bool:
    """May the caller read a record handled by any of `agency_codes` (e.g. a dossier's involved
    agencies, or a task's agency)? Own agency for every staff role; the sub-tree for leaders and
    agency admins; everything for a platform admin."""
    scope = scope_of(caller, tree)
    return scope is None or any(code in scope for code in agency_codes)


def may_manage(caller: Caller, agency_code: str | None, tree: AgencyTree) -> bool:
    """May the caller manage the accounts of `agency_code`? Platform admins: any; agency admins:
    their agency and its sub-tree; nobody else."""
    if caller.is_admin:
        return True
    return "agency_admin" in caller.roles and tree.within(agency_code, caller.agency_code)


def denial(action: str, reason: str, caller: Caller | None = None, dossier_code: str | None = None,
           task_id=None, claimed_username: str | None = None) -> dict:
    """The `access_denied` event's data (contract AccessDeniedV1): who, on what, why; no personal data."""
    return {"action": action, "reason": reason[:MAX_REASON], "denied_at": utcnow(),
            "username": caller.username if caller else None,
            "agency_code": caller.agency_code if caller else None,
            "roles": list(caller.roles) if caller else [],
            "claimed_username": None if caller else (claimed_username or None),
            "dossier_code": dossier_code, "task_id": None if task_id is None else str(task_id)}


def record_denial(uow: UnitOfWork, data: dict) -> None:
    """Record a refusal in its own transaction: whatever the refused call had begun is rolled back,
    the `access_denied` event is written to the outbox and committed (the relay publishes it; the
    gateway writes it to the audit log). A failure to record is logged, never raised instead of
    the refusal itself."""
    try:
        uow.session.rollback()
        uow.emit("access_denied", data)
        uow.commit()
    except Exception as exc:  # the caller must still get the refusal
        uow.session.rollback()
        log.error("ACCESS-DENIED RECORD FAILED: %s (%s)", data["action"], type(exc).__name__)
        return
    log.warning("access denied: %s by %s (%s)", data["action"], data["username"] or "an unverified caller",
                data["reason"])


def audit_refusals(method):
    """Decorate a service's RPC method (under `@rpc`): when it refuses its caller (Unauthorized: a
    forged, tampered or expired `caller_token`; Forbidden: not the caller's to see or do), the refusal
    is recorded as an `access_denied` event through the service's outbox (`self.db`), then raised.

    The method's `code` / `dossier_code` and `task_id` arguments name the record; the caller is the
    verified token (`verify_caller`), or, for a token that does not verify, the `sub` it claims.
    """
    signature = inspect.signature(method)

    @functools.wraps(method)
    def entrypoint(service, *args, **kwargs):
        try:
            return method(service, *args, **kwargs)
        except (Unauthorized, Forbidden) as exc:
            given = signature.bind_partial(service, *args, **kwargs).arguments
            token = given.get("caller_token")
            caller = _verified(token, service.config)
            code = given.get("code") or given.get("dossier_code")
            record_denial(service.db, denial(
                f"{service.name}.{method.__name__}", exc.message, caller,
                dossier_code=code if isinstance(code, str) else None, task_id=given.get("task_id"),
                claimed_username=None if caller else unverified_subject(token)))
            raise

    entrypoint.__signature__ = signature  # nameko checks the call's arguments against the real method
    return entrypoint


def _verified(token, config: dict) -> Caller | None:
    if not isinstance(token, str) or not token:
        return None
    try:
        return verify_caller(config, token)
    except Exception:  # any token that does not verify, whatever the reason: unverified
        return None


def unverified_subject(token) -> str | None:
    """The `sub` a refused token claims, unverified, for the audit log only (never trusted)."""
    if not isinstance(token, str) or not token:
        return None
    try:
        sub = jwt.decode(token, options={"verify_signature": False}).get("sub")
    except jwt.InvalidTokenError:
        return None
    return sub[:128] if isinstance(sub, str) else None
