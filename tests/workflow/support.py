"""Helpers of the workflow tests: the real catalogue, events as intake sends them, callers."""
from __future__ import annotations

from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import select

from motcua.config import ROOT
from motcua.contracts import make_event, parse_event
from motcua.identity import Caller
from services.workflow.models import runs, tasks
from services.workflow.process_run import ProcessRun, Task
from tests.infra import gateway_token

TZ = ZoneInfo("Asia/Ho_Chi_Minh")
CATALOG_DIR = ROOT / "deploy" / "catalog"
MONDAY = datetime(2026, 3, 2, 9, 0, tzinfo=TZ)  # an ordinary working Monday
LAND = "1.012786"  # re-issue of a lost land certificate: 3 steps in 3 agencies
LAND_OFFICE, LAND_DEPT, COMMUNE = "000.12.01.H56", "000.00.12.H56", "000.20.01.H56"


def received(code: str = "000.20.01.H56-260302-0001", procedure_code: str = LAND,
             received_at: datetime = MONDAY, due_at: datetime | None = None, form: dict | None = None,
             dossier_version: int | None = None, agency_code: str = COMMUNE):
    """A `dossier_received` event as intake publishes it (`agency_code`: the receiving agency)."""
    return parse_event(make_event("intake", "dossier_received", {
        "code": code, "procedure_code": procedure_code, "procedure_name": "Thủ tục thử",
        "field_code": "DD", "agency_code": agency_code, "channel": "online", "received_at": received_at,
        "due_at": due_at or received_at + timedelta(days=30), "received_by": f"receptionist@{agency_code}",
        "form": form or {}, "contact": {"full_name": "Nguyễn Văn A"}, "dossier_version": dossier_version,
    }))


class Clock:
    """The time the service sees; tests move it."""

    def __init__(self, now: datetime):
        self.now = now

    def __call__(self) -> datetime:
        return self.now


def staff(agency_code: str, role: str = "specialist") -> Caller:
    return Caller(f"{role}@{agency_code}", agency_code, (role,))


ADMIN = Caller("admin", None, ("admin",))


def token(caller: Caller) -> str:
    return gateway_token(caller.username, caller.agency_code, *caller.roles, ttl=3600)


CONTACT = {"full_name": "Nguyễn Văn A"}


def intake_event(event_type: str, **data):
    """Any other intake event, as intake publishes it."""
    return parse_event(make_event("intake", event_type, data))


def supplement_requested(code: str, requested_at: datetime, dossier_version: int | None = None,
                         due_at: datetime | None = None):
    return intake_event("supplement_requested", code=code, agency_code=COMMUNE, requested_at=requested_at,
                        requested_by=f"receptionist@{COMMUNE}", items=["Bản sao sổ hộ khẩu"], contact=CONTACT,
                        dossier_version=dossier_version, due_at=due_at)


def supplemented(code: str, supplemented_at: datetime, due_at: datetime | None = None,
                 dossier_version: int | None = None):
    return intake_event("dossier_supplemented", code=code, supplemented_at=supplemented_at, status="processing",
                        due_at=due_at, dossier_version=dossier_version)


def rescheduled(code: str, rescheduled_at: datetime, old_due_at: datetime, new_due_at: datetime,
                dossier_version: int | None = None):
    return intake_event("dossier_rescheduled", code=code, agency_code=COMMUNE, rescheduled_at=rescheduled_at,
                        rescheduled_by=f"leader@{COMMUNE}", old_due_at=old_due_at, new_due_at=new_due_at,
                        reason="Chờ kết quả đo đạc", contact=CONTACT, dossier_version=dossier_version)


def withdrawn(code: str, withdrawn_at: datetime, dossier_version: int | None = None):
    return intake_event("dossier_withdrawn", code=code, withdrawn_at=withdrawn_at, withdrawn_by="citizen",
                        reason="", dossier_version=dossier_version)


def stopped(code: str, stopped_at: datetime, dossier_version: int | None = None):
    """Intake's record of a stop a step decided (`processing_stopped`)."""
    return intake_event("dossier_stopped", code=code, agency_code=COMMUNE, stopped_at=stopped_at,
                        reason="Không bổ sung đúng hạn", contact=CONTACT, dossier_version=dossier_version)


def payment_received(code: str, paid_at: datetime, due_at: datetime | None = None,
                     dossier_version: int | None = None):
    return intake_event("payment_received", code=code, paid_at=paid_at, confirmed_by=f"receptionist@{COMMUNE}",
                        receipt_number="BL-0042", due_at=due_at, dossier_version=dossier_version)


def calendar_decided(day: date, kind: str = "day_off", decided_year: bool = False):
    """A `calendar_decided` event as intake publishes it (the admin's decision through the API)."""
    return parse_event(make_event("intake", "calendar_decided", {
        "date": day, "kind": kind, "source": "Công văn 999/VPCP-KGVX, 04/03/2026 (thử)",
        "decided_year": decided_year, "decided_by": "admin", "decided_at": datetime(2026, 3, 4, 8, 0, tzinfo=TZ)}))


def at(day: int, hour: int, minute: int = 0) -> datetime:
    """A local time in March 2026 (2 March is a Monday)."""
    return datetime(2026, 3, day, hour, minute, tzinfo=TZ)


def stored_tasks(session, **equals) -> list[Task]:
    """Tasks as stored, in the order they were assigned; with `equals`, those whose columns hold these values."""
    query = (select(tasks).where(*(tasks.c[name] == value for name, value in equals.items()))
             .order_by(tasks.c.assigned_at, tasks.c.step_index))
    return [Task(**row._mapping) for row in session.execute(query)]


def stored_run(session, dossier_code: str) -> ProcessRun | None:
    """A run as stored, with its tasks."""
    row = session.execute(select(runs).where(runs.c.dossier_code == dossier_code)).first()
    return None if row is None else ProcessRun(**row._mapping, tasks=stored_tasks(session, dossier_code=dossier_code))
