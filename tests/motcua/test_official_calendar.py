"""The official calendar (deploy/catalog/calendar.yaml): each decision with its source, the Civil Code's
calendar days, working hours, provisional years, and the properties any calendar must keep.

Every expected value is worked by hand in the comment next to it (docs/rules.md, "Working calendar")."""
from datetime import date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from motcua.calendar import Decision, WorkingCalendar, load_decisions

ROOT = Path(__file__).resolve().parents[2]
OFFICIAL = ROOT / "deploy" / "catalog" / "calendar.yaml"
DECISIONS = load_decisions(OFFICIAL)
CAL = WorkingCalendar(decisions=DECISIONS)
VN = ZoneInfo("Asia/Ho_Chi_Minh")


def vn(*args) -> datetime:
    return datetime(*args, tzinfo=VN)


def source_of(day: date) -> str:
    return next(d.source for d in DECISIONS.decisions if d.date == day)


# ------------------------------------------------------------------ the decisions and their sources

@pytest.mark.parametrize("day, working, document", [
    # 2025: Tết Ất Tỵ, and 30/4-1/5 with Friday 2/5 swapped for Saturday 26/4
    (date(2025, 1, 27), False, "8726/VPCP-KGVX, 26/11/2024"),
    (date(2025, 1, 31), False, "8726/VPCP-KGVX, 26/11/2024"),
    (date(2025, 4, 26), True, "8726/VPCP-KGVX, 26/11/2024"),
    (date(2025, 5, 2), False, "8726/VPCP-KGVX, 26/11/2024"),
    # 2026: the New Year swap the holidays package misses: Friday 2/1 off, Saturday 10/1 worked
    (date(2026, 1, 2), False, "12729/VPCP-KGVX, 25/12/2025"),
    (date(2026, 1, 10), True, "12729/VPCP-KGVX, 25/12/2025"),
    # Tết Bính Ngọ and Quốc khánh: the VPCP letter's number is recorded as not verified
    (date(2026, 2, 16), False, "số hiệu chưa xác minh"),
    (date(2026, 2, 20), False, "số hiệu chưa xác minh"),
    (date(2026, 8, 22), True, "số hiệu chưa xác minh"),
    (date(2026, 8, 31), False, "số hiệu chưa xác minh"),
])
def test_each_decision_is_in_force_with_its_source(day, working, document):
    assert CAL.is_working_day(day) is working
    assert document in source_of(day)


def test_the_2026_new_year_swap_moves_a_due_date_the_package_gets_wrong():
    package_only = WorkingCalendar()
    # Wed 31/12/2025 16:00 + 1 working day: 1 h on Wed; Thu 1/1 holiday; Fri 2/1 off by the decision;
    # Mon 5/1 7 h -> 16:00. The package alone counts Fri 2/1: 7 h on Fri -> Fri 16:00.
    assert CAL.due_at(vn(2025, 12, 31, 16), 1) == vn(2026, 1, 5, 16)
    assert package_only.due_at(vn(2025, 12, 31, 16), 1) == vn(2026, 1, 2, 16)


def test_decided_years():
    assert DECISIONS.decided_years == {2025, 2026}


# ------------------------------------------------------------------ units

def test_calendar_days_across_tet_follow_the_civil_code():
    # Art. 147(2): received Tue 10/2/2026, that day not counted; 10 days = 11/2..20/2; Fri 20/2 is Tết,
    # Sat 21/Sun 22 weekend -> art. 148: the close of the next working day, Mon 23/2 17:00.
    assert CAL.due(vn(2026, 2, 10, 9), 10, "calendar_days") == vn(2026, 2, 23, 17)
    # Received Mon 2/3/2026 (any hour): 3..12/3, Thu 12/3 a working day -> due at its close, 17:00.
    assert CAL.due(vn(2026, 3, 2, 16, 45), 10, "calendar_days") == vn(2026, 3, 12, 17)
    # Last day Sat 22/8/2026, a swapped working Saturday: it is a working day, the period ends there.
    assert CAL.due(vn(2026, 8, 12, 9), 10, "calendar_days") == vn(2026, 8, 22, 17)
    # Last day Mon 31/8/2026, swapped off; 1/9, 2/9 National Day -> Thu 3/9 17:00.
    assert CAL.due(vn(2026, 8, 21, 9), 10, "calendar_days") == vn(2026, 9, 3, 17)
    with pytest.raises(ValueError, match="whole days"):
        CAL.due(vn(2026, 3, 2, 9), "1.5", "calendar_days")


def test_working_hours():
    # Mon 2/3/2026 10:00 + 4 h: 1.5 h to 11:30, lunch, 2.5 h from 13:30 -> 16:00.
    assert CAL.due(vn(2026, 3, 2, 10), 4, "working_hours") == vn(2026, 3, 2, 16)
    # Fri 9/1/2026 16:00 + 2 h: 1 h on Fri; Sat 10/1 is a swapped working day -> Sat 08:00.
    assert CAL.due(vn(2026, 1, 9, 16), 2, "working_hours") == vn(2026, 1, 10, 8)
    # 16 working hours are two working days.
    assert CAL.due(vn(2026, 3, 2, 9), 16, "working_hours") == CAL.due(vn(2026, 3, 2, 9), 2)
    with pytest.raises(ValueError, match="unknown unit"):
        CAL.due(vn(2026, 3, 2, 9), 1, "fortnights")


def test_a_same_day_answer_on_a_swapped_working_saturday():
    # Received Sat 10/1/2026 09:00 (a working day by 12729/VPCP-KGVX): due that Saturday at 17:00.
    assert CAL.close_of_day(vn(2026, 1, 10, 9), cutoff=None) == vn(2026, 1, 10, 17)


# ------------------------------------------------------------------ provisional years

def test_a_span_touching_an_undecided_year_is_provisional():
    assert not CAL.is_provisional(vn(2026, 3, 2, 9), CAL.due(vn(2026, 3, 2, 9), 10))
    # Wed 23/12/2026 + 10 working days reaches January 2027, not decided yet.
    due = CAL.due(vn(2026, 12, 23, 9), 10)
    assert due.year == 2027 and CAL.is_provisional(vn(2026, 12, 23, 9), due)
    # The admin records 2027's New Year as decided (a hypothetical decision): the span is no longer provisional.
    recorded = [(Decision(date(2027, 1, 1), "day_off", "a test decision"), True)]
    decided = CAL.with_decisions(DECISIONS.merged(recorded))
    assert not decided.is_provisional(vn(2026, 12, 23, 9), due)
    # A later decision about a day replaces the earlier one, and does not decide its year by itself.
    swapped = DECISIONS.merged([(Decision(date(2026, 1, 10), "day_off", "a test correction"), False)])
    assert not CAL.with_decisions(swapped).is_working_day(date(2026, 1, 10))
    assert swapped.decided_years == DECISIONS.decided_years
    assert [d.source for d in swapped.decisions if d.date == date(2026, 1, 10)] == ["a test correction"]


# ------------------------------------------------------------------ properties

PROPS = settings(max_examples=150, deadline=None)
starts = st.datetimes(min_value=datetime(2025, 1, 1), max_value=datetime(2027, 6, 30), timezones=st.just(VN))
hours = st.integers(min_value=0, max_value=8 * 40).map(lambda quarter: timedelta(minutes=15 * quarter))


@PROPS
@given(start=starts, amount=hours.filter(bool))
def test_a_due_date_never_lands_on_a_day_off(start, amount):
    due = CAL.add_working_time(start, amount)
    assert CAL.is_working_day(due.date())


@PROPS
@given(start=starts, days=st.integers(min_value=0, max_value=60))
def test_calendar_days_never_end_on_a_day_off(start, days):
    assert CAL.is_working_day(CAL.add_calendar_days(start, days).date())


@PROPS
@given(start=starts, a=hours, b=hours)
def test_adding_working_time_is_monotonic_and_additive(start, a, b):
    first = CAL.add_working_time(start, a)
    assert CAL.add_working_time(start, a + b) >= first
    if a and b:  # counting b more from the first due moment continues where the first allowance stopped
        assert CAL.add_working_time(start, a + b) == CAL.add_working_time(first, b)
    # and the office time between the counting start and the due moment is exactly the allowance
    assert CAL.working_time_between(CAL.next_working_moment(start), first) == a


def test_docs_quote_the_worked_examples_the_code_computes():
    # docs/rules.md quotes these results; the tests above compute them.
    doc = (ROOT / "docs" / "rules.md").read_text(encoding="utf-8")
    for quoted in ("**due 2026-01-05 16:00**", '**`{"due_at": "2027-01-07T09:00:00+07:00", "provisional": true}`**',
                   "**due 2026-01-10 08:00**", "**due 2026-01-10 17:00**", "**due Mon 2026-02-23 17:00**"):
        assert quoted in doc
