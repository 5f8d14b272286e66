"""The national portal (Cổng Dịch vụ công Quốc gia, DVCQG) connector: pushes every dossier and its
processing history in the portal's own format, retries with exponential backoff, keeps a re-send queue,
reconciles what the portal holds with ours.

The queue is `dvcqg_pushes` (one row per dossier): the projection marks a dossier's new version
(its number of stored events) in the transaction that stores the event (`projections.mark_for_portal`,
an upsert beside the ORM, as the dossiers' rows are written: so both are read here afresh,
`populate_existing`).
`push_due` claims due rows (a lease, SKIP LOCKED on PostgreSQL, so several instances can push), asks
intake for what only intake holds (the applicant's identity, the documents, the fees, the result
documents: `IntakeRecords`, one RPC per batch) and the gateway for the officers' full names and titles
(`Officers`, one RPC per batch), and puts them straight into the request (reporting stores none of it), builds the rest from the projection and the event store as of that version, sends it, and
records the outcome:
  error_code "00"                    → pushed (once per version; a repeat is harmless: the portal keys
                                       dossiers by MaHoSo and progress lines by time, content, handler)
  connection error, timeout, 408,
  429, 5xx, a body that is no JSON,
  intake or the gateway not answering → retried: next attempt after BASE · 2^(attempts-1), at most MAX
  any other error code, other 4xx    → rejected: a permanent failure, kept visible (state, last_error,
                                       the gauge), tried again only when the dossier changes
`reconcile` queues dossiers that have no row yet and looks pushed ones up on the portal (TraCuuHoSo):
missing there, or its status, dates or number of progress lines differ from ours → pushed again.

The wire protocol is the portal adapter's (as provincial systems speak it, docs/connections.md), simulated
by `motcua/simulators/dvcqg.py`: a session from `POST {url}{auth path}` with the province's account,
then `POST {url}{integration path}` with `service` DongBoHoSoMC (the dossier), CapNhatTienDoHoSoMC (its
QuaTrinhXuLy) or TraCuuHoSo; field names and values as the portal has them (MaHoSo, MaTTHC,
TrangThaiHoSo 1-10, KenhThucHien 1-3, dates `yyyyMMddHHmmss` in the province's time).
"""
from __future__ import annotations

import functools
import logging
import re
import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Protocol
from zoneinfo import ZoneInfo

import requests
from prometheus_client import CollectorRegistry, Counter, Histogram
from sqlalchemy import func, insert, literal, or_, select
from sqlalchemy.orm import Session

from motcua import keys
from motcua.config import env, is_production
from motcua.db import UnitOfWork
from motcua.http import CallFailed, post_json
from motcua.identity import portal_sync_token
from services.reporting import facts, projections
from services.reporting.models import DossierFact, PortalPush, StoredEvent

log = logging.getLogger(__name__)

CHANNEL_CODES = {"counter": "1", "online": "2", "postal": "3"}  # KenhThucHien: trực tiếp, trực tuyến, BCCI
APPLICANT_TYPES = {"individual": "1", "organisation": "2", "business": "2"}  # LoaiDoiTuong: công dân, doanh nghiệp
PORTAL_DATE = "%Y%m%d%H%M%S"  # yyyyMMddHHmmss, the province's local time
OK = "00"
SESSION_EXPIRED = "401"  # error_code, compared as text (the portal sends it as a string or a number)
# One line of the processing history (QuaTrinhXuLy) per event: its title, the keys of the handler and
# of the content.
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
    "task_rescheduled": ("Điều chỉnh thời hạn bước xử lý theo quyết định về ngày làm việc", None, "step"),
    "supplement_needed": ("Đề nghị bổ sung hồ sơ", "requested_by", "items"),
    "payment_required": ("Xác định nghĩa vụ tài chính", None, "note"),
    "payment_requested": ("Thông báo nghĩa vụ tài chính", None, "note"),
    "payment_received": ("Hoàn thành nghĩa vụ tài chính", "confirmed_by", "receipt_number"),
    "processing_stopped": ("Dừng xử lý", "stopped_by", "reason"),
    "dossier_stopped": ("Thông báo dừng xử lý", None, "reason"),
    "delay_predicted": ("Dự báo trễ hạn", None, None),
    "dossier_rated": ("Đánh giá mức độ hài lòng", None, None),
    "postal_shipment_updated": ("Bưu chính công ích", None, "shipment_status"),
    "payment_refunded": ("Hoàn phí thanh toán trực tuyến", None, "amount_vnd"),
    "fee_paid": ("Nộp lệ phí trực tuyến", None, "receipt_number"),
}
# ChucDanh: the officer's own title (the gateway's account); for an account without one, the position
# as the event shows it (the step's role; the counter's officer for the counter's decisions).
TITLES = {"receptionist": "Cán bộ tiếp nhận", "specialist": "Chuyên viên", "leader": "Lãnh đạo",
          "agency_admin": "Quản trị đơn vị", "system": "Hệ thống chuyên ngành"}
COUNTER_HANDLERS = frozenset({"received_by", "refused_by", "returned_by", "rescheduled_by", "confirmed_by"})
# An appointment moved by a calendar decision (a day off the Government added) is no apology of an
# agency: it reads as what it is.
CALENDAR_RESCHEDULED = "Điều chỉnh ngày hẹn trả theo lịch làm việc"
SAFE_ERROR_CODE = re.compile(r"^[A-Za-z0-9_.-]{1,40}$")
OFFICERS_CHUNK = 200  # the gateway's `officers` answers that many usernames per call
# What reconciliation compares: the portal's copy differs from ours in one of these → pushed again.
COMPARED = ("TrangThaiHoSo", "NgayTiepNhan", "NgayHenTra", "NgayKetThucXuLy", "NgayTra", "NgayTuChoi")


@dataclass(frozen=True)
class PortalSettings:
    url: str  # the adapter's base URL
    username: str | None = None  # the province's account on the adapter
    password: str | None = None
    agency_code: str = ""  # madonvi: the province's code on the portal
    auth_path: str = "/api/auth"
    integration_path: str = "/api/integration"
    timeout: float = 10.0
    batch: int = 100
    retry_base: float = 5.0  # seconds before the first retry; doubled at each failure
    retry_max: float = 3600.0
    lease: float = 120.0  # a claimed row is due again after this if its pusher died


def settings_from_env() -> PortalSettings | None:
    """DVCQG_URL (unset: the connector is off), DVCQG_USERNAME, DVCQG_PASSWORD, DVCQG_AGENCY_CODE,
    DVCQG_AUTH_PATH, DVCQG_INTEGRATION_PATH, DVCQG_TIMEOUT, DVCQG_BATCH, DVCQG_RETRY_BASE_SECONDS,
    DVCQG_RETRY_MAX_SECONDS."""
    url = env("DVCQG_URL")
    if url is None:
        return None
    if is_production() and not (env("DVCQG_USERNAME") and env("DVCQG_PASSWORD") and env("DVCQG_AGENCY_CODE")):
        raise SystemExit("DVCQG_URL is set: production needs DVCQG_USERNAME, DVCQG_PASSWORD and DVCQG_AGENCY_CODE, "
                         "the province's own account on the portal's adapter")
    if is_production():
        caller_token()  # refuses to start without reporting's own token for intake and the gateway
    return PortalSettings(url=url.rstrip("/"), username=env("DVCQG_USERNAME"), password=env("DVCQG_PASSWORD"),
                          agency_code=env("DVCQG_AGENCY_CODE", ""),
                          auth_path=env("DVCQG_AUTH_PATH", "/api/auth"),
                          integration_path=env("DVCQG_INTEGRATION_PATH", "/api/integration"),
                          timeout=float(env("DVCQG_TIMEOUT", "10")), batch=int(env("DVCQG_BATCH", "100")),
                          retry_base=float(env("DVCQG_RETRY_BASE_SECONDS", "5")),
                          retry_max=float(env("DVCQG_RETRY_MAX_SECONDS", "3600")))


# The timers of ReportingService (seconds); they do nothing while DVCQG_URL is unset.
PUSH_INTERVAL = float(env("DVCQG_PUSH_INTERVAL", "5"))
RECONCILE_INTERVAL = float(env("DVCQG_RECONCILE_INTERVAL", "600"))


class IntakeRecords(Protocol):
    """The port to intake for what only intake holds: {code: record} (services/intake/portal.py), codes it
    does not know left out; raises when intake does not answer."""

    def __call__(self, codes: list[str]) -> dict[str, dict]: ...


class Officers(Protocol):
    """The port to the gateway's accounts: {username: {full_name, title}} of those among `usernames` that
    have a full name (others left out); raises when the gateway does not answer."""

    def __call__(self, usernames: list[str]) -> dict[str, dict]: ...


class PortalMetrics:
    """`motcua_dvcqg_requests_total{service,outcome}` (ok, refused, retry, garbage, unreachable),
    `motcua_dvcqg_request_seconds{service}`, and `motcua_dvcqg_lag_seconds`: from a dossier's newest
    event to the portal's acceptance of it."""

    def __init__(self, registry: CollectorRegistry | None = None):
        registry = registry or CollectorRegistry()
        self.requests = Counter("motcua_dvcqg_requests", "Calls to the national portal's adapter",
                                ["service", "outcome"], registry=registry)
        self.seconds = Histogram("motcua_dvcqg_request_seconds", "Duration of a call to the portal",
                                 ["service"], registry=registry)
        self.lag = Histogram("motcua_dvcqg_lag_seconds", "From a dossier's newest event to the portal having it",
                             buckets=(1, 5, 15, 60, 300, 900, 3600, 4 * 3600, 24 * 3600, float("inf")),
                             registry=registry)


@dataclass(frozen=True)
class Outcome:
    kind: str  # "pushed" / "retry" / "rejected"
    error: str | None = None


class PortalError(Exception):
    """A call that did not get the portal's "00": `outcome` says whether time may cure it."""

    def __init__(self, outcome: Outcome):
        super().__init__(outcome.error)
        self.outcome = outcome


class PortalClient:
    """The portal adapter's HTTP protocol. Errors are described by status, error code and class only: no
    URL, no body, no message (the portal's messages may quote what it was sent)."""

    def __init__(self, settings: PortalSettings, metrics: PortalMetrics | None = None):
        self.settings = settings
        self.metrics = metrics or PortalMetrics()
        self.http = requests.Session()
        self.session: str | None = None

    def push(self, dossier: dict, progress: list[dict], updating: bool) -> Outcome:
        """The dossier (DongBoHoSoMC), then its processing history (CapNhatTienDoHoSoMC)."""
        try:
            self.call("DongBoHoSoMC", {"isUpdating": "True" if updating else "False", "data": [dossier]})
            if progress:
                self.call("CapNhatTienDoHoSoMC", {"data": progress})
        except PortalError as failed:
            return failed.outcome
        return Outcome("pushed")

    def lookup(self, code: str) -> dict | None:
        """The portal's copy of a dossier (TraCuuHoSo), None if it does not know it; PortalError otherwise."""
        found = self.call("TraCuuHoSo", {"mahoso": code}).get("result") or []
        return found[0] if found and isinstance(found[0], dict) else None

    def call(self, service: str, data: dict) -> dict:
        """One integration call with a session, logging in again once when the portal says it expired."""
        for attempt in (1, 2):
            if self.session is None:
                self.session = self._login()
            answer = self._post(service, self.settings.integration_path,
                                {"session": self.session, "madonvi": self.settings.agency_code, "service": service,
                                 **data})
            code = str(answer.get("error_code"))
            if code == OK:
                self.metrics.requests.labels(service, "ok").inc()
                return answer
            if code == SESSION_EXPIRED and attempt == 1:
                self.session = None  # expired: once more with a new one
                continue
            self.metrics.requests.labels(service, "refused").inc()
            raise PortalError(Outcome("rejected", f"{service} {_safe(code)}"))
        raise AssertionError("unreachable")

    def _login(self) -> str:
        settings = self.settings
        answer = self._post("login", settings.auth_path, {"username": settings.username or "",
                                                          "password": settings.password or ""})
        if str(answer.get("error_code")) not in ("0", OK) or not isinstance(answer.get("session"), str):
            self.metrics.requests.labels("login", "refused").inc()
            raise PortalError(Outcome("rejected", f"login {_safe(str(answer.get('error_code')))}"))
        return answer["session"]

    def _post(self, service: str, path: str, body: dict) -> dict:
        try:
            return post_json(self.http, f"{self.settings.url}{path}", body, call=service,
                             timeout=self.settings.timeout, seconds=self.metrics.seconds.labels(service))
        except CallFailed as failure:
            if failure.answer is not None and str(failure.answer.get("error_code")) == SESSION_EXPIRED:
                return failure.answer  # `call` logs in again
            self.metrics.requests.labels(service, failure.outcome).inc()
            code = _safe(str(failure.answer.get("error_code"))) if failure.answer is not None else ""
            raise PortalError(Outcome("retry" if failure.passing else "rejected",
                                      f"{failure.reason} {code}".rstrip())) from None

    def close(self) -> None:
        self.http.close()


def _safe(code: str) -> str:
    """The portal's error code when it is a short token (never free text: it could echo data)."""
    return code if SAFE_ERROR_CODE.match(code or "") else "?"


def portal_date(value: datetime | str | None, zone: ZoneInfo) -> str:
    """yyyyMMddHHmmss in the province's time; "" for no date (as the portal's optional dates are sent)."""
    if value is None:
        return ""
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    return value.astimezone(zone).strftime(PORTAL_DATE)


def handlers(events: list[StoredEvent]) -> set[str]:
    """The usernames of the officers who acted in a dossier's events (the QuaTrinhXuLy's NguoiXuLy)."""
    named = ((stored.data or {}).get(HISTORY.get(stored.event_type, (None, None))[1] or "") for stored in events)
    return {name for name in named if isinstance(name, str) and name}


def payload(fact: DossierFact, events: list[StoredEvent], zone: ZoneInfo, agency_names: dict[str, str],
            record: dict, officers: dict[str, dict]) -> tuple[dict, list[dict]]:
    """What the portal gets for one dossier: the hồ sơ (DongBoHoSoMC) and its QuaTrinhXuLy lines
    (CapNhatTienDoHoSoMC), from what reporting holds, intake's `record` (services/intake/portal.py) and the
    gateway's `officers` (full name and title by username; an account without a full name keeps its
    username and the step's role)."""
    def when(value) -> str:
        return portal_date(value, zone)

    def agency(code: str | None) -> str:
        return agency_names.get(code, code or "")

    progress, supplements, steps = [], [], {}
    row = DossierFact(code=fact.code)  # the dossier as it stood after each event, in the order they happened
    for stored, data in projections.replay(row, events, zone):
        title, handler_key, content_key = HISTORY[stored.event_type]
        if stored.event_type == "dossier_rescheduled" and data.get("reason") == "calendar":
            title = CALENDAR_RESCHEDULED
        if stored.event_type == "task_assigned":
            steps[data["task_id"]] = data
        elif stored.event_type == "task_rescheduled" and data["task_id"] in steps:
            steps[data["task_id"]] = {**steps[data["task_id"]], "due_at": data["due_at"]}
        step = steps.get(data.get("task_id"), {})
        content = data.get(content_key) if content_key else None
        content = "; ".join(content) if isinstance(content, list) else content
        handler = data.get(handler_key) if handler_key else None
        officer = officers.get(handler) or {}
        title_of = officer.get("title") or (
            TITLES["receptionist"] if handler_key in COUNTER_HANDLERS else TITLES.get(step.get("role"), ""))
        progress.append({
            "MaHoSo": fact.code, "NguoiXuLy": officer.get("full_name") or handler or "Hệ thống một cửa",
            "ChucDanh": title_of if handler else "",
            "ThoiDiemXuLy": when(data[facts.WHEN[stored.event_type]]),
            "PhongBanXuLy": agency(data.get("agency_code") or row.current_agency_code),
            "NoiDungXuLy": f"{title}: {content}" if content else title,
            "TrangThai": str(row.status_code),
            "NgayBatDau": when(step.get("assigned_at")), "NgayKetThucTheoQuyDinh": when(step.get("due_at")),
        })
        if stored.event_type == "supplement_requested":
            supplements.append({"HoSoBoSungId": str(len(supplements) + 1),
                                "NguoiYeuCauBoSung": data.get("requested_by") or "",
                                "NoiDungBoSung": "; ".join(data["items"]), "NgayBoSung": when(data["requested_at"]),
                                "NgayTiepNhanBoSung": "", "TrangThaiBoSung": "0"})
        elif stored.event_type == "dossier_supplemented" and supplements:
            supplements[-1].update(NgayTiepNhanBoSung=when(data["supplemented_at"]), TrangThaiBoSung="1")
    applicant = record["applicant"]
    dossier = {
        "MaHoSo": fact.code, "MaTTHC": fact.procedure_code, "TenTTHC": fact.procedure_name or "",
        "MaLinhVuc": fact.field_code or "", "TenLinhVuc": record.get("field_name") or "",
        "KenhThucHien": CHANNEL_CODES.get(fact.channel, ""),
        "ChuHoSo": applicant["name"], "SoGiayToChuHoSo": applicant["id_number"],
        "LoaiDoiTuong": APPLICANT_TYPES.get(applicant.get("type"), "1"), "MaDoiTuong": applicant.get("tax_code") or "",
        "Email": applicant.get("email") or "", "SoDienThoai": applicant.get("phone") or "",
        "TrichYeuHoSo": fact.procedure_name or "",
        "NgayNopHoSo": when(fact.submitted_at), "NgayTiepNhan": when(fact.received_at),
        "NgayHenTra": when(fact.due_at), "TrangThaiHoSo": str(fact.status_code),
        "NgayKetThucXuLy": when(fact.finished_at), "NgayTra": when(fact.returned_at),
        "NgayTuChoi": when(fact.refused_at),
        "HinhThuc": "1" if record.get("return_method") == "postal" else "0",  # result by post (BCCI)
        "DonViXuLy": agency(fact.current_agency_code or fact.agency_code), "NoiNopHoSo": agency(fact.agency_code),
        "TaiLieuNop": [{"TepDinhKemId": str(d["id"]), "TenTepDinhKem": d["name"], "IsDeleted": "False",
                        "MaThanhPhanHoSo": d["key"], "DuongDanTaiTepTin": "", "DuocSoHoa": "1",
                        "DuocTaiSuDung": "0", "DuocLayTuKhoDMQG": "0"} for d in record["documents"]],
        "DanhSachLePhi": [{"TenPhiLePhi": f["name"], "MaPhiLePhi": f"{fact.procedure_code}-{f['kind']}",
                           "HinhThucThu": "1" if f.get("paid_at") else "0", "Gia": str(f["amount_vnd"]),
                           "LoaiPhiLePhi": "1" if f["kind"] == "fee" else "2"} for f in record["fees"]],
        "DanhSachHoSoBoSung": supplements,
        "DanhSachGiayToKetQua": [{"TenGiayTo": d["name"], "MaThanhPhanHoSo": d["key"], "GiayToId": str(d["id"]),
                                  "DuongDanTepTinKetQua": "", "MaGiayToKetQua": d["sha256"][:32]}
                                 for d in record["result_documents"]],
        "HoSoCoThanhPhanSoHoa": "1" if record["flags"]["digitised"] else "0",
        "TaiKhoanDuocXacThucVoiVNeID": "1" if record["flags"]["vneid_verified"] else "0",
        "DuocThanhToanTrucTuyen": "1" if record["flags"]["paid_online"] else "0",
    }
    return dossier, progress


def push_due(uow: UnitOfWork, client: PortalClient, intake: IntakeRecords, officers: Officers, zone: ZoneInfo,
             agency_names: dict[str, str], now: datetime) -> dict:
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
            claimed.append((fact, projections.dossier_events(session, row.dossier_code), row.version,
                            row.pushed_version is not None))
        row.next_attempt_at = now + timedelta(seconds=settings.lease)
    uow.commit()
    counts = {"pushed": 0, "retry": 0, "rejected": 0}
    if not claimed:
        return counts
    records, error = _ask("intake", intake, [fact.code for fact, *_ in claimed])
    usernames = sorted(set().union(*(handlers(events) for _, events, *_ in claimed)))
    names, error = _ask("gateway", lambda names: _in_chunks(officers, names), usernames) if error is None else ({}, error)
    for fact, events, version, updating in claimed:
        record = records.get(fact.code) if error is None else None
        if record is None:
            outcome = Outcome("retry", error or "intake: unknown dossier")
        else:
            outcome = _pushed(client, fact, events, zone, agency_names, record, names, updating)
            if outcome.kind == "pushed":
                newest = max(event.occurred_at for event in events)
                client.metrics.lag.observe(max((now - _aware(newest, now)).total_seconds(), 0.0))
        _record(session, fact.code, version, outcome, now, settings)
        uow.commit()
        counts[outcome.kind] += 1
    return counts


def _pushed(client, fact, events, zone, agency_names, record, names, updating: bool) -> Outcome:
    """The portal's outcome of one dossier's push; a dossier whose history our payload cannot express
    (a defect of ours, not a passing fault) is rejected on its own row, logged by type only (a message
    could quote the applicant), and the batch's other dossiers go on."""
    try:
        dossier, progress = payload(fact, events, zone, agency_names, record, names)
    except Exception as error:
        log.error("national portal: dossier %s cannot be put in the portal's format (%s)",
                  fact.code, type(error).__name__)
        return Outcome("rejected", f"payload {type(error).__name__}")
    return client.push(dossier, progress, updating)


def _in_chunks(officers: Officers, usernames: list[str]) -> dict[str, dict]:
    """The gateway answers for OFFICERS_CHUNK usernames at most per call (services/gateway/users.py)."""
    found = {}
    for start in range(0, len(usernames), OFFICERS_CHUNK):
        found.update(officers(usernames[start:start + OFFICERS_CHUNK]))
    return found


def caller_token() -> str:
    """Reporting's token towards intake and the gateway for the push (REPORTING_SERVICE_TOKEN, made by an
    operator with `motcua tokens reporting`); outside production, one made here for an hour with the
    signing key (deploy/dev's when unset), as the example worker's is."""
    given = env("REPORTING_SERVICE_TOKEN")
    if given:
        return given
    if is_production():
        raise SystemExit("DVCQG_URL is set: production needs REPORTING_SERVICE_TOKEN, made by an operator with "
                         "`motcua tokens reporting`")
    # One token per half hour, not per push: each new one is one more entry in the callees' access caches.
    return _development_token(int(time.time() // 1800))


@functools.lru_cache(maxsize=1)
def _development_token(_half_hour: int) -> str:
    return portal_sync_token(keys.pem_setting(keys.TOKEN_SIGNING_KEY), timedelta(hours=1))


def _ask(service: str, port, argument) -> tuple[dict, str | None]:
    """A port's answer, or its failure as the row's error: intake or the gateway away or slow, neither
    the identity nor an officer's name is to be guessed, so the batch waits."""
    try:
        return port(argument), None
    except Exception as error:
        return {}, f"{service} {type(error).__name__}"


def _aware(value: datetime, like: datetime) -> datetime:
    """SQLite gives naive UTC datetimes back."""
    return value.replace(tzinfo=like.tzinfo) if value.tzinfo is None and like.tzinfo is not None else value


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
    queued = session.execute(insert(PortalPush).from_select(
        ["dossier_code", "version", "state", "attempts", "next_attempt_at"], missing)
        .returning(PortalPush.dossier_code)).all()  # psycopg's rowcount of an INSERT … SELECT is -1
    uow.commit()
    return len(queued)


def expected(fact: DossierFact, events: list[StoredEvent], zone: ZoneInfo) -> dict:
    """What the portal should show of a dossier we pushed: the compared fields and its number of progress
    lines (no identity is needed to compare, so intake is not asked)."""
    blank = {"applicant": {"name": "", "id_number": ""}, "documents": [], "fees": [], "result_documents": [],
             "flags": {"digitised": False, "vneid_verified": False, "paid_online": False}}
    dossier, progress = payload(fact, events, zone, {}, blank, {})
    return {**{key: dossier[key] for key in COMPARED}, "QuaTrinhXuLy": len(progress)}


def reconcile(uow: UnitOfWork, client: PortalClient, zone: ZoneInfo, now: datetime,
              limit: int | None = None) -> dict:
    """Queue missing dossiers, then look pushed ones up on the portal (least recently checked first) and
    queue again those whose copy differs from ours. Returns what it found."""
    queued = queue_missing(uow, now)
    session = uow.session
    rows = session.execute(
        select(PortalPush, DossierFact).join(DossierFact, DossierFact.code == PortalPush.dossier_code)
        .where(PortalPush.state == "pushed", PortalPush.pushed_version == PortalPush.version)
        .order_by(PortalPush.reconciled_at.is_not(None), PortalPush.reconciled_at)
        .limit(limit or client.settings.batch).execution_options(populate_existing=True)).all()
    counts = {"queued": queued, "checked": 0, "repaired": 0, "unreachable": 0}
    for row, fact in rows:
        try:
            remote = client.lookup(row.dossier_code)
        except PortalError:
            counts["unreachable"] += 1
            continue  # the portal is down or refuses: check again next time
        counts["checked"] += 1
        row.reconciled_at = now
        ours = expected(fact, projections.dossier_events(session, row.dossier_code), zone)
        theirs = None if remote is None else {**{key: remote.get(key, "") for key in COMPARED},
                                              "QuaTrinhXuLy": len(remote.get("QuaTrinhXuLy") or [])}
        if theirs != ours:
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
