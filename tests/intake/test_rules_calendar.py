"""The official calendar in intake's appointments (docs/rules.md, "Working calendar")."""
from dataclasses import replace
from datetime import date, datetime, timezone
from decimal import Decimal
from types import SimpleNamespace
from zoneinfo import ZoneInfo

from motcua.calendar import Decision
from services.intake import dossiers
from services.intake.calendar_decisions import _new_due
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


def test_a_new_day_off_moves_appointments_as_the_unit_counts_them(catalog):
    # Hypothetical decision: Thu 12/3/2026 declared a day off. A calendar-day appointment due that day
    # (its close) rolls to the next working day's close (art. 148); a working-day one received Tue 10/3
    # 09:00 with 3 days (due Fri 13/3 09:00) counts its remaining time from 12/3 again -> Mon 16/3 09:00.
    before = catalog[1]
    after = before.with_decisions(before.decisions.merged([(Decision(date(2026, 3, 12), "day_off", "test"), False)]))
    by_calendar_days = SimpleNamespace(received_at=vn(2026, 3, 2, 10), due_at=vn(2026, 3, 12, 17))
    assert _new_due(by_calendar_days, "calendar_days", before, after, date(2026, 3, 12)) == vn(2026, 3, 13, 17)
    by_working_days = SimpleNamespace(received_at=vn(2026, 3, 10, 9), due_at=before.due_at(vn(2026, 3, 10, 9), 3))
    assert by_working_days.due_at == vn(2026, 3, 13, 9)
    assert _new_due(by_working_days, "working_days", before, after, date(2026, 3, 12)) == vn(2026, 3, 16, 9)
