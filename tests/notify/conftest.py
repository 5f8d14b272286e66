"""notify test fixtures: a migrated SQLite database, contract-checked events, a Notifier with a
fake clock, and real local servers (SMTP, an HTTP carrier) run as subprocesses."""
from __future__ import annotations

import json
import mailbox
import socket
import subprocess
import sys
import time
from datetime import datetime, timedelta, timezone
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from prometheus_client import CollectorRegistry
from sqlalchemy import select
from sqlalchemy.orm import sessionmaker

from motcua import migrate
from motcua.contracts import make_event, parse_event
from motcua.db import make_engine
from services.notify.delivery import Delivery
from services.notify.domain import PLANNER, Notifier, NotifyMetrics
from services.notify.models import Base, deliveries
from services.notify.repository import NotifyUnitOfWork
from services.notify.settings import load_settings
from tests.gateway.conftest import api, gateway  # noqa: F401 (the gateway with mocked services, for test_api)
from tests.infra import free_port

HERE = Path(__file__).parent
TZ = ZoneInfo("Asia/Ho_Chi_Minh")
SECRET = b"notify-test-secret"
SENDER = "Motcua <no-reply@motcua.test>"
AGENCY = "000.00.06.H56"
AGENCY_NAMES = {AGENCY: "Sở Tư pháp"}
EMAIL = "nguyen.thi.anh@example.com"
PHONE = "0912345678"
CODE = "000.00.06.H56-260224-0001"
CONTACT = {"full_name": "Nguyễn Thị Ánh", "email": EMAIL, "phone": PHONE}


def plan_once(notifier: Notifier, uow, event) -> bool:
    """One event as the service's batch consumer plans it: claimed in the inbox (`notify.plan`), then
    planned and committed; False for a repeat."""
    return uow.apply_once(event, PLANNER, lambda uow, event: notifier.plan_new(uow, [event]))


def dossier_received(email: str | None = EMAIL, phone: str | None = PHONE, code: str = CODE) -> dict:
    """A dossier_received event as it comes off the wire (envelope + data)."""
    return make_event("intake", "dossier_received", {
        "code": code, "procedure_code": "1.001193", "procedure_name": "Đăng ký khai sinh",
        "field_code": "HT", "agency_code": AGENCY, "channel": "online",
        "received_at": datetime(2026, 2, 24, 2, 5, tzinfo=timezone.utc),   # 09:05 in Hà Nội
        "due_at": datetime(2026, 2, 27, 9, 0, tzinfo=timezone.utc),        # 16:00 in Hà Nội
        "received_by": "receptionist@000.00.06.H56", "form": {},
        "contact": {**CONTACT, "email": email, "phone": phone},
    })


def dossier_submitted(channel: str = "online", code: str = CODE) -> dict:
    """A dossier_submitted event: online it carries the contact (the code by SMS/e-mail), at the counter not."""
    return make_event("intake", "dossier_submitted", {
        "code": code, "procedure_code": "1.001193", "procedure_name": "Đăng ký khai sinh",
        "field_code": "HT", "agency_code": AGENCY, "channel": channel,
        "submitted_at": datetime(2026, 2, 24, 1, 50, tzinfo=timezone.utc), "applicant_masked": "N*** T*** Á**",
        "tracking_key": "tk", "contact": CONTACT if channel == "online" else None,
    })


def dossier_result_ready(email: str | None = EMAIL, phone: str | None = None, code: str = CODE) -> dict:
    return make_event("intake", "dossier_result_ready", {
        "code": code, "procedure_name": "Đăng ký khai sinh", "agency_code": AGENCY,
        "finished_at": datetime(2026, 2, 26, 8, 30, tzinfo=timezone.utc),
        "due_at": datetime(2026, 2, 27, 9, 0, tzinfo=timezone.utc),
        "contact": {**CONTACT, "email": email, "phone": phone},
    })


def supplement_requested(code: str = CODE) -> dict:
    return make_event("intake", "supplement_requested", {
        "code": code, "agency_code": AGENCY, "requested_at": datetime(2026, 2, 24, 3, 0, tzinfo=timezone.utc),
        "requested_by": "receptionist@000.00.06.H56", "items": ["Bản sao giấy chứng sinh", "Tờ khai có chữ ký"],
        "note": "", "contact": CONTACT,
    })


def dossier_withdrawn(code: str = CODE) -> dict:
    return make_event("intake", "dossier_withdrawn", {
        "code": code, "withdrawn_at": datetime(2026, 2, 24, 4, 0, tzinfo=timezone.utc),
        "withdrawn_by": "receptionist@000.00.06.H56", "reason": "Người nộp xin rút"})


LAND_OFFICE = "000.12.01.H56"
OFFICE_EMAILS = {AGENCY: "vanphong.sotuphap@example.gov.vn"}  # the land office has none


def dossier_rescheduled(code: str = CODE) -> dict:
    return make_event("intake", "dossier_rescheduled", {
        "code": code, "agency_code": AGENCY, "rescheduled_at": datetime(2026, 2, 26, 2, 0, tzinfo=timezone.utc),
        "rescheduled_by": "receptionist@000.00.06.H56", "old_due_at": datetime(2026, 2, 27, 9, 0, tzinfo=timezone.utc),
        "new_due_at": datetime(2026, 3, 4, 9, 0, tzinfo=timezone.utc),  # 16:00 in Hà Nội
        "reason": "Chờ kết quả xác minh của Công an phường", "contact": CONTACT})


def dossier_overdue(code: str = CODE) -> dict:
    return make_event("workflow", "dossier_overdue", {
        "dossier_code": code, "agency_code": AGENCY, "current_agency_code": LAND_OFFICE,
        "due_at": datetime(2026, 2, 27, 9, 0, tzinfo=timezone.utc),
        "detected_at": datetime(2026, 2, 27, 9, 1, tzinfo=timezone.utc)})


def task_overdue(code: str = CODE, agency: str = AGENCY) -> dict:
    return make_event("workflow", "task_overdue", {
        "task_id": "t-1", "dossier_code": code, "agency_code": agency, "step": "Thẩm định hồ sơ", "step_index": 0,
        "due_at": datetime(2026, 2, 26, 9, 0, tzinfo=timezone.utc),
        "detected_at": datetime(2026, 2, 26, 9, 1, tzinfo=timezone.utc), "escalated_to_role": "leader"})


def event(payload: dict):
    return parse_event(payload)


def read_mbox(path: Path) -> list[EmailMessage]:
    """The messages of an mbox file, parsed with the modern email API."""
    if not path.exists():
        return []
    box = mailbox.mbox(path, create=False)
    try:
        return [message_from_bytes(box.get_bytes(key), policy=policy.default) for key in box.keys()]
    finally:
        box.close()


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()] if path.exists() else []


def read_maildir(maildir: Path) -> list[EmailMessage]:
    if not maildir.exists():
        return []
    box = mailbox.Maildir(maildir, create=False)
    return [message_from_bytes(box.get_bytes(key), policy=policy.default) for key in box.keys()]


class FakeClock:
    """The Notifier's clock: moved on by the test, so backoffs pass without waiting."""

    def __init__(self):
        self.now = datetime.now(timezone.utc)

    def __call__(self):
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


@pytest.fixture
def notify_db_url(tmp_path) -> str:
    url = f"sqlite:///{tmp_path / 'notify.db'}"
    migrate.upgrade("notify", url)
    return url


@pytest.fixture
def sessions(notify_db_url):
    engine = make_engine(notify_db_url)
    yield sessionmaker(bind=engine, expire_on_commit=False)
    engine.dispose()


@pytest.fixture
def new_uow(sessions):
    """A fresh unit of work per call, as nameko gives one per worker."""
    units = []

    def make() -> NotifyUnitOfWork:
        unit = NotifyUnitOfWork(sessions(), "notify", Base.metadata)
        units.append(unit)
        return unit

    yield make
    for unit in units:
        unit.close()


@pytest.fixture
def mbox_path(tmp_path) -> Path:
    return tmp_path / "mail" / "mailbox.mbox"


@pytest.fixture
def sms_outbox(mbox_path) -> Path:
    return mbox_path.with_name("sms-outbox.jsonl")


@pytest.fixture
def registry() -> CollectorRegistry:
    return CollectorRegistry()


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


def smtp_config(mbox_path: Path, host: str | None = None, port: int = 25) -> dict:
    return {"host": host, "port": port, "sender": SENDER, "mailbox": str(mbox_path)}


@pytest.fixture
def make_notifier(mbox_path, registry, new_uow, clock):
    metrics = NotifyMetrics(registry)

    def make(notify: dict | None = None, smtp: dict | None = None, jitter=lambda: 0.5) -> Notifier:
        """`notify`: the NOTIFY settings (providers, webhooks, retry...) as in NOTIFY_CONFIG."""
        settings = load_settings({"SMTP": smtp or smtp_config(mbox_path), "NOTIFY": notify or {}})
        return Notifier(settings=settings, unit_of_work=new_uow, sender=SENDER, tz=TZ, secret=SECRET,
                        metrics=metrics, agency_names=AGENCY_NAMES, agency_emails=OFFICE_EMAILS, clock=clock,
                        jitter=jitter)
    return make


def rows(sessions, channel: str | None = None) -> list[Delivery]:
    with sessions() as session:
        query = select(deliveries).order_by(deliveries.c.id)
        if channel:
            query = query.where(deliveries.c.channel == channel)
        return [Delivery.from_row(row) for row in session.execute(query).mappings()]


def outcome(registry: CollectorRegistry, channel: str, provider: str, status: str) -> float:
    return registry.get_sample_value("motcua_notifications_total",
                                     {"channel": channel, "provider": provider, "status": status}) or 0.0


def wait_port(port: int, process: subprocess.Popen, what: str, timeout: float = 15) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            if process.poll() is not None or time.monotonic() > deadline:
                process.kill()
                pytest.fail(f"{what} did not start: {process.communicate()[1].decode(errors='replace')}")
            time.sleep(0.05)


class LocalServer:
    """A test server in its own process (tests/notify/smtp_server.py or carrier.py) on a local port."""

    def __init__(self, script: str, port: int, *args: str):
        self.script, self.port, self.args = script, port, args
        self.process: subprocess.Popen | None = None

    def start(self) -> "LocalServer":
        self.process = subprocess.Popen([sys.executable, str(HERE / self.script), "--port", str(self.port),
                                         *self.args], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        wait_port(self.port, self.process, self.script)
        return self

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=10)


@pytest.fixture
def local_servers():
    """Start servers with `local_servers(script, *args, port=None)`; all stopped after the test."""
    started: list[LocalServer] = []

    def start(script: str, *args: str, port: int | None = None, run: bool = True) -> LocalServer:
        server = LocalServer(script, port or free_port(), *args)
        started.append(server)
        return server.start() if run else server
    yield start
    for server in started:
        server.stop()


@pytest.fixture(scope="session")
def certificate(tmp_path_factory) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1/localhost, made by the openssl CLI."""
    directory = tmp_path_factory.mktemp("tls")
    cert, key = directory / "cert.pem", directory / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-keyout", str(key),
                    "-out", str(cert), "-subj", "/CN=localhost",
                    "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost"], check=True, capture_output=True)
    return cert, key
