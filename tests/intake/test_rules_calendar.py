"""The official calendar in intake's appointments (docs/rules.md, "Working calendar")."""
from dataclasses import replace
from datetime import datetime, timezone
from decimal import Decimal
from zoneinfo import ZoneInfo

from services.intake import dossiers
from services.intake.catalog import Catalog, Terms
from services.intake.domain import Schedule
from tests.intake.test_catalog import break_file, catalog_dir  # noqa: F401 (a fixture)
from tests.intake.test_dossiers import RECEPTIONIST, submit

VN = ZoneInfo("Asia/Ho_Chi_Minh")


def vn(*args) -> datetime:
    return datetime(*args, tzinfo=VN)


def test_a_same_day_procedure_on_a_swapped_working_saturday_is_due_that_saturday(uow, policy):
    # Birth registration (1.001193, trong ngày, cut-off 15:00) received Sat 10/1/2026 09:00 +07, a
    # working day by Công văn 12729/VPCP-KGVX: due that Saturday at the close, 17:00.
    saturday_9am = datetime(2026, 1, 10, 2, 0, tzinfo=timezone.utc)
    dossier = submit(uow, policy, procedure="1.001193", now=saturday_9am)
    received = dossiers.receive(uow, policy, dossier.code, RECEPTIONIST, saturday_9am)
    assert received.due_at.astimezone(policy.calendar.tz).isoformat() == "2026-01-10T17:00:00+07:00"


def in_calendar_days(procedure, days: int):
    """The procedure as if its time were `days` calendar days on every channel."""
    terms = {channel: Terms(Decimal(days), "calendar_days", t.fee) for channel, t in procedure.channels.items()}
    return replace(procedure, processing_days=Decimal(days), unit="calendar_days", cutoff=None, channels=terms)


def test_calendar_days_resume_rolls_the_new_last_day_past_a_day_off(catalog):
    calendar = catalog[1]
    schedule = Schedule(in_calendar_days(catalog[0].procedure("1.001193"), 10), calendar)
    # Received Mon 2/3/2026: days 3..12/3, due Thu 12/3 17:00 (Civil Code art. 147-148).
    due = schedule.due("counter", vn(2026, 3, 2, 10))
    assert due == vn(2026, 3, 12, 17)
    # Paused Mon 2/3 10:00 to Wed 4/3 10:00: two days more; the last day would be Sat 14/3 -> Mon 16/3.
    assert schedule.resumed("counter", due, vn(2026, 3, 2, 10), vn(2026, 3, 4, 10)) == vn(2026, 3, 16, 17)
    # A pause within one day moves nothing.
    assert schedule.resumed("counter", due, vn(2026, 3, 2, 10), vn(2026, 3, 2, 15)) == due


def test_a_procedure_in_working_hours_is_counted_in_the_offices_hours(catalog_dir, catalog):
    # 1.001193 rewritten, for the test, as "4 working hours": loaded, and received Fri 9/1/2026 16:00,
    # after its 15:00 cut-off, counting starts on the swapped working Saturday 10/1 at 07:00 -> 11:00.
    break_file(catalog_dir, "processing_time: {value: 0, unit: working_days}  # trong ngày",
               "processing_time: {value: 4, unit: working_hours}")
    procedure = Catalog.load(catalog_dir).procedure("1.001193")
    assert procedure.unit == "working_hours"
    assert Schedule(procedure, catalog[1]).due("counter", vn(2026, 1, 9, 16)) == vn(2026, 1, 10, 11)
