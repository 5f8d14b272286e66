"""The national portal (Cổng Dịch vụ công Quốc gia, DVCQG) connector: pushes every dossier and its
processing history, retries with exponential backoff, keeps a re-send queue, reconciles.

The queue is `dvcqg_pushes` (one row per dossier): the projection marks a dossier's new version
(its number of stored events) in the transaction that stores the event (`projections.mark_for_portal`,
an upsert beside the ORM, as the dossiers' rows are written: so both are read here afresh,
`populate_existing`).
`push_due` claims due rows (a lease, SKIP LOCKED on PostgreSQL, so several instances can push),
builds each payload from the projection and the event store as of that version, POSTs it, and records
the outcome:
  2xx                                → pushed (exactly once per version: the portal also gets an
                                       Idempotency-Key `code:version` for a reply lost on the way)
  connection error, timeout, 408,
  429, 5xx                           → retried: next attempt after BASE · 2^(attempts-1), at most MAX
  other 4xx                          → rejected: a permanent failure, kept visible (state, last_error,
                                       the gauge), tried again only when the dossier changes
`reconcile` queues dossiers that have no row yet and pulls the portal's status of pushed dossiers
back: missing there, another version or another status → pushed again.

The wire protocol (a portal endpoint or the province's gateway to it):
  POST {url}/dossiers          JSON payload (see `payload`), `Authorization: Bearer {token}`
  GET  {url}/dossiers/{code}   → {"code", "version", "status"}; 404 when the portal does not know it
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import requests
from sqlalchemy import func, insert, literal, or_, select
from sqlalchemy.orm import Session

from motcua.calendar import local_iso
from motcua.config import env
from motcua.db import UnitOfWork
from services.reporting import facts, projections
from services.reporting.models import DossierFact, PortalPush, StoredEvent

# DOMAIN.md: dossier status codes → the DVCQG value.
DVCQG_STATUS = {1: "receiving", 2: "new", 3: "denied", 4: "processing", 5: "waiting", 6: "paying",
                7: "cancelled", 8: "unresolved", 9: "releasing", 10: "done"}
CHANNEL_CODES = {"counter": 1, "online": 2, "postal": 3}
# Fields DVCQG wants that reporting does not hold: the applicant's identity is intake's (docs/reporting.md),
# documents, fees, result documents and the flags are not in the events yet. Sent as null and listed.
ABSENT = ("applicant.name", "applicant.id_number", "applicant.type", "documents", "fees", "result_documents",
          "flags.digitised", "flags.paid_online", "flags.vneid_verified")
# One line of the processing history per event: its title, and the keys of the handler and the content.
HISTORY = {
    "dossier_submitted": ("Nộp hồ sơ", None, None),
    "dossier_received": ("Tiếp nhận hồ sơ", "received_by", None),
    "dossier_refused": ("Từ chối tiếp nhận", "refused_by", "reason"),
    "task_assigned": ("Chuyển xử lý", None, "step"),
    "dossier_processing_started": ("Bắt đầu xử lý", None, None),
    "task_completed": ("Xử lý xong bước", "completed_by", "note"),
    "supplement_requested": ("Yêu cầu bổ sung hồ sơ", "requested_by", "items"),
    "dossier_supplemented": ("Bổ sung hồ sơ", None, None),
    "result_ready": ("Có kết quả giải quyết", None, None),
    "dossier_result_ready": ("Hồ sơ đã xử lý xong", None, None),
    "result_returned": ("Trả kết quả", "returned_by", "method"),
    "dossier_withdrawn": ("Rút hồ sơ", "withdrawn_by", "reason"),
    "dossier_rescheduled": ("Xin lỗi và hẹn lại ngày trả kết quả", "rescheduled_by", "reason"),
    "task_overdue": ("Bước xử lý quá hạn", None, "step"),
    "dossier_overdue": ("Hồ sơ quá hạn", None, None),
    "dossier_transferred": ("Chuyển xử lý liên thông", "transferred_by", "note"),
    "supplement_needed": ("Đề nghị bổ sung hồ sơ", "requested_by", "items"),
    "payment_required": ("Xác định nghĩa vụ tài chính", None, "note"),
    "payment_requested": ("Thông báo nghĩa vụ tài chính", None, "note"),
    "payment_received": ("Hoàn thành nghĩa vụ tài chính", "confirmed_by", "receipt_number"),
    "processing_stopped": ("Dừng xử lý", "stopped_by", "reason"),
    "dossier_stopped": ("Thông báo dừng xử lý", None, "reason"),
    "delay_predicted": ("Dự báo trễ hạn", None, None),
    "dossier_rated": ("Đánh giá mức độ hài lòng", None, None),
}
# An appointment moved by a calendar decision (a day off the Government added) is no apology of an
# agency: it reads as what it is.
CALENDAR_RESCHEDULED = "Điều chỉnh ngày hẹn trả theo lịch làm việc"
SAFE_ERROR_CODE = re.compile(r"^[A-Za-z0-9_.-]{1,40}$")
RETRY_STATUSES = (408, 429)


@dataclass(frozen=True)
class PortalSettings:
    url: str
    token: str | None = None
    timeout: float = 10.0
    batch: int = 100
    retry_base: float = 5.0  # seconds before the first retry; doubled at each failure
    retry_max: float = 3600.0
    lease: float = 120.0  # a claimed row is due again after this if its pusher died


def settings_from_env() -> PortalSettings | None:
    """DVCQG_URL (unset: the connector is off), DVCQG_TOKEN, DVCQG_TIMEOUT, DVCQG_BATCH,
    DVCQG_RETRY_BASE_SECONDS, DVCQG_RETRY_MAX_SECONDS."""
    url = env("DVCQG_URL")
    if url is None:
        return None
    return PortalSettings(url=url.rstrip("/"), token=env("DVCQG_TOKEN"), timeout=float(env("DVCQG_TIMEOUT", "10")),
                          batch=int(env("DVCQG_BATCH", "100")),
                          retry_base=float(env("DVCQG_RETRY_BASE_SECONDS", "5")),
                          retry_max=float(env("DVCQG_RETRY_MAX_SECONDS", "3600")))


# The timers of ReportingService (seconds); they do nothing while DVCQG_URL is unset.
PUSH_INTERVAL = float(env("DVCQG_PUSH_INTERVAL", "5"))
RECONCILE_INTERVAL = float(env("DVCQG_RECONCILE_INTERVAL", "600"))


@dataclass(frozen=True)
class Outcome:
    kind: str  # "pushed" / "retry" / "rejected"
    error: str | None = None


class PortalClient:
    """HTTP to the portal. Errors are described by status and class only: no URL, no body."""

    def __init__(self, settings: PortalSettings):
        self.settings = settings
        self.http = requests.Session()
        if settings.token:
            self.http.headers["Authorization"] = f"Bearer {settings.token}"

    def push(self, payload: dict) -> Outcome:
        try:
            response = self.http.post(f"{self.settings.url}/dossiers", json=payload, timeout=self.settings.timeout,
                                      headers={"Idempotency-Key": f"{payload['code']}:{payload['version']}"})
        except requests.RequestException as error:
            return Outcome("retry", type(error).__name__)
        if response.ok:
            return Outcome("pushed")
        error = f"HTTP {response.status_code}{_error_code(response)}"
        if response.status_code >= 500 or response.status_code in RETRY_STATUSES:
            return Outcome("retry", error)
        return Outcome("rejected", error)

    def status(self, code: str) -> dict | None:
        """The portal's view of a dossier, None if it does not know it; raises on any other failure."""
        response = self.http.get(f"{self.settings.url}/dossiers/{requests.utils.quote(code, safe='')}",
                                 timeout=self.settings.timeout)
        if response.status_code == 404:
            return None
        response.raise_for_status()
        return response.json()

    def close(self) -> None:
        self.http.close()


def _error_code(response: requests.Response) -> str:
    """The portal's error code, when it gives a short token one (never free text: it could echo data)."""
    try:
        body = response.json()
    except ValueError:
        return ""
    code = body.get("error_code") or body.get("code") if isinstance(body, dict) else None
    return f" {code}" if isinstance(code, str) and SAFE_ERROR_CODE.match(code) else ""


def payload(fact: DossierFact, events: list[StoredEvent], version: int, zone: ZoneInfo) -> dict:
    """What DVCQG gets for one dossier (DOMAIN.md "Sync to DVCQG"), from what reporting holds."""
    def iso(value: datetime | None) -> str | None:
        return local_iso(value, zone)

    history, supplements, steps = [], [], {}
    row = DossierFact(code=fact.code)  # the dossier as it stood after each event, in the order they happened
    for stored, data in projections.replay(row, events, zone):
        title, handler_key, content_key = HISTORY[stored.event_type]
        if stored.event_type == "dossier_rescheduled" and data.get("reason") == "calendar":
            title = CALENDAR_RESCHEDULED
        if stored.event_type == "task_assigned":
            steps[data["task_id"]] = data
        step = steps.get(data.get("task_id"), {})
        content = data.get(content_key) if content_key else None
        history.append({
            "event": stored.event_type, "title": title,
            "handler": data.get(handler_key) if handler_key else None,
            "department": data.get("agency_code") or row.current_agency_code,
            "step": data.get("step"),
            "at": iso(data[facts.WHEN[stored.event_type]]),
            "content": "; ".join(content) if isinstance(content, list) else content,
            "status": DVCQG_STATUS.get(row.status_code),
            "step_started_at": iso(step.get("assigned_at")), "step_due_at": iso(step.get("due_at")),
        })
        if stored.event_type == "supplement_requested":
            supplements.append({"requested_at": iso(data["requested_at"]), "items": data["items"],
                                "supplemented_at": None})
        elif stored.event_type == "dossier_supplemented" and supplements:
            supplements[-1]["supplemented_at"] = iso(data["supplemented_at"])
    return {
        "code": fact.code, "version": version,
        "procedure_code": fact.procedure_code, "procedure_name": fact.procedure_name, "field_code": fact.field_code,
        "channel": CHANNEL_CODES.get(fact.channel),
        "applicant": {"name": None, "id_number": None, "type": None},
        "status": DVCQG_STATUS[fact.status_code], "status_code": fact.status_code,
        "receiving_agency_code": fact.agency_code, "processing_agency_code": fact.current_agency_code,
        "submitted_at": iso(fact.submitted_at), "received_at": iso(fact.received_at),
        "appointment_at": iso(fact.due_at), "finished_at": iso(fact.finished_at),
        "returned_at": iso(fact.returned_at), "refused_at": iso(fact.refused_at),
        "withdrawn_at": iso(fact.withdrawn_at), "timeliness": fact.timeliness,
        "documents": None, "fees": None, "result_documents": None,
        "flags": {"digitised": None, "paid_online": None, "vneid_verified": None},
        "supplements": supplements, "history": history, "absent": list(ABSENT),
    }


def push_due(uow: UnitOfWork, client: PortalClient, zone: ZoneInfo, now: datetime) -> dict:
    """Push one batch of due dossiers; returns how many were pushed, will be retried, were rejected."""
    settings = client.settings
    session = uow.session
    rows = session.scalars(select(PortalPush).where(PortalPush.state == "pending", PortalPush.next_attempt_at <= now)
                           .order_by(PortalPush.next_attempt_at, PortalPush.dossier_code).limit(settings.batch)
                           .with_for_update(skip_locked=True).execution_options(populate_existing=True)).all()
    claimed = []
    for row in rows:
        fact = session.get(DossierFact, row.dossier_code, populate_existing=True)
        if fact is not None:
            claimed.append(payload(fact, projections.dossier_events(session, row.dossier_code), row.version, zone))
        row.next_attempt_at = now + timedelta(seconds=settings.lease)
    uow.commit()
    counts = {"pushed": 0, "retry": 0, "rejected": 0}
    for body in claimed:
        outcome = client.push(body)
        _record(session, body["code"], body["version"], outcome, now, settings)
        uow.commit()
        counts[outcome.kind] += 1
    return counts


def _record(session: Session, code: str, version: int, outcome: Outcome, now: datetime,
            settings: PortalSettings) -> None:
    row = session.get(PortalPush, code, with_for_update=True, populate_existing=True)
    if outcome.kind == "pushed":
        row.pushed_version, row.pushed_at = version, now
        if row.version == version:  # else a newer version arrived meanwhile: it stays pending, due now
            row.state, row.attempts, row.last_error = "pushed", 0, None
        return
    if row.version != version:
        return  # the failure was of an older version; the newer one is due already
    row.attempts += 1
    row.last_error = outcome.error
    if outcome.kind == "rejected":
        row.state = "rejected"
    else:
        delay = min(settings.retry_base * 2 ** (row.attempts - 1), settings.retry_max)
        row.next_attempt_at = now + timedelta(seconds=delay)


def queue_missing(uow: UnitOfWork, now: datetime) -> int:
    """Queue every dossier of the event store that has no row yet (e.g. stored before the connector)."""
    session = uow.session
    at = literal(now, PortalPush.__table__.c.next_attempt_at.type)
    missing = (select(StoredEvent.dossier_code, func.count(), literal("pending"), literal(0), at)
               .outerjoin(PortalPush, PortalPush.dossier_code == StoredEvent.dossier_code)
               .where(PortalPush.dossier_code.is_(None)).group_by(StoredEvent.dossier_code))
    result = session.execute(insert(PortalPush).from_select(
        ["dossier_code", "version", "state", "attempts", "next_attempt_at"], missing))
    uow.commit()
    return result.rowcount


def reconcile(uow: UnitOfWork, client: PortalClient, now: datetime, limit: int | None = None) -> dict:
    """Queue missing dossiers, then compare the portal's status of pushed ones (least recently checked
    first) with ours and queue again those that differ. Returns what it found."""
    queued = queue_missing(uow, now)
    session = uow.session
    rows = session.execute(
        select(PortalPush, DossierFact.status_code).join(DossierFact, DossierFact.code == PortalPush.dossier_code)
        .where(PortalPush.state == "pushed", PortalPush.pushed_version == PortalPush.version)
        .order_by(PortalPush.reconciled_at.is_not(None), PortalPush.reconciled_at)
        .limit(limit or client.settings.batch).execution_options(populate_existing=True)).all()
    counts = {"queued": queued, "checked": 0, "repaired": 0, "unreachable": 0}
    for row, status_code in rows:
        try:
            remote = client.status(row.dossier_code)
        except (requests.RequestException, ValueError):
            counts["unreachable"] += 1
            continue  # the portal is down: check again next time
        counts["checked"] += 1
        row.reconciled_at = now
        expected = {"version": row.version, "status": DVCQG_STATUS[status_code]}
        if remote is None or {key: remote.get(key) for key in expected} != expected:
            row.state, row.attempts, row.next_attempt_at = "pending", 0, now
            row.last_error = "reconcile: missing on the portal" if remote is None else "reconcile: portal differs"
            counts["repaired"] += 1
        uow.commit()
    return counts


def counts_by_state(session: Session) -> dict[str, int]:
    counts = dict.fromkeys(("pending", "pushed", "rejected"), 0)
    counts.update(session.execute(select(PortalPush.state, func.count()).group_by(PortalPush.state)).all())
    return counts


def summary(session: Session, limit: int = 100) -> dict:
    """The queue at a glance: rows per state, and the failing ones (rejected, or retrying) with their error."""
    failing = session.scalars(select(PortalPush).where(or_(PortalPush.state == "rejected", PortalPush.attempts > 0))
                              .order_by(PortalPush.dossier_code).limit(limit)
                              .execution_options(populate_existing=True))
    return {"states": counts_by_state(session),
            "failing": [{"code": row.dossier_code, "state": row.state, "version": row.version,
                         "attempts": row.attempts, "last_error": row.last_error,
                         "next_attempt_at": row.next_attempt_at.isoformat()} for row in failing]}
