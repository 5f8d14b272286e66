"""Tests for motcua.calendar (working days, office hours, due dates).

Expected values are computed by hand in the comments. Default office hours:
07:00-11:30 (4.5 h) and 13:30-17:00 (3.5 h), Asia/Ho_Chi_Minh; 1 day = 8 h.
"""

import re
from datetime import date, datetime, time, timedelta, timezone
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from motcua.calendar import Decision, Decisions, OfficeHours, WorkingCalendar, load_decisions, parse_days
from motcua.catalog import CatalogError

VN = ZoneInfo("Asia/Ho_Chi_Minh")
UTC = timezone.utc
CAL = WorkingCalendar()
CUTOFF = time(15)


def vn(*args) -> datetime:
    return datetime(*args, tzinfo=VN)


# ---------------------------------------------------------------- working days


def test_tet_2026_days_off():
    # holidays VN 0.109 lists Mon 16 .. Fri 20 Feb 2026 (Lunar New Year's Eve .. 4th day).
    for day in range(16, 21):
        assert not CAL.is_working_day(date(2026, 2, day))
    assert CAL.is_working_day(date(2026, 2, 13))  # Fri before
    assert not CAL.is_working_day(date(2026, 2, 14))  # Sat
    assert not CAL.is_working_day(date(2026, 2, 15))  # Sun
    assert CAL.is_working_day(date(2026, 2, 23))  # Mon after


def test_tet_2025_days_off():
    # 27-31 Jan 2025 (29 Tết .. 3rd day; the 4th day fell on Sat 1 Feb and moved to Mon 27 Jan).
    for day in range(27, 32):
        assert not CAL.is_working_day(date(2025, 1, day))
    assert CAL.is_working_day(date(2025, 2, 3))


def test_swapped_saturday_2026():
    # "Day off (substituted from 08/22/2026)" on Mon 31 Aug: Sat 22 Aug is worked.
    assert date(2026, 8, 22).weekday() == 5
    assert CAL.is_working_day(date(2026, 8, 22))
    assert not CAL.is_working_day(date(2026, 8, 31))
    assert not CAL.is_working_day(date(2026, 9, 1))
    assert not CAL.is_working_day(date(2026, 9, 2))
    assert not CAL.is_working_day(date(2026, 8, 29))  # an ordinary Saturday
    assert CAL.working_weekend_days(2026) == [date(2026, 8, 22)]
    assert CAL.working_weekend_days(2025) == [date(2025, 4, 26)]  # for the day off Fri 2 May 2025


def test_cross_year_swap_2018_2019():
    # Day off Mon 31 Dec 2018 was swapped from Sat 5 Jan 2019 (listed in the 2018 data).
    assert not CAL.is_working_day(date(2018, 12, 31))
    assert CAL.is_working_day(date(2019, 1, 5))


def test_years_far_ahead_computed_lazily():
    # 1 Jan 2040 is a Sunday; holidays observes it on Mon 2 Jan.
    assert not CAL.is_working_day(date(2040, 1, 1))
    assert not CAL.is_working_day(date(2040, 1, 2))
    assert CAL.is_working_day(date(2040, 1, 3))
    assert CAL.is_working_day(date(2100, 3, 2))  # an ordinary Tuesday


# ------------------------------------------------------------------- due dates


def test_due_across_tet_2026():
    # Fri 13 Feb 10:00 + 3 days = 24 h.
    # Fri: 10:00-11:30 1.5 h + 13:30-17:00 3.5 h = 5 h -> 19 h left.
    # Sat 14 .. Sun 22 not working (weekend + Tết 16-20).
    # Mon 23: 8 h -> 11 h; Tue 24: 8 h -> 3 h; Wed 25: 07:00 + 3 h = 10:00.
    assert CAL.due_at(vn(2026, 2, 13, 10), 3) == vn(2026, 2, 25, 10)


def test_due_on_swapped_saturday():
    # Fri 21 Aug 2026 09:00 + 1 day: Fri 2.5 h + 3.5 h = 6 h, 2 h left;
    # Sat 22 is a working day: 07:00 + 2 h = 09:00.
    assert CAL.due_at(vn(2026, 8, 21, 9), 1) == vn(2026, 8, 22, 9)


def test_due_over_national_day_2026_ends_at_17():
    # Fri 28 Aug 17:30 (after hours) -> Sat 29, Sun 30 weekend, Mon 31 (swap), Tue 1, Wed 2 off
    # -> counting starts Thu 3 Sep 07:00; 8 h ends exactly at 17:00 that day.
    assert CAL.next_working_moment(vn(2026, 8, 28, 17, 30)) == vn(2026, 9, 3, 7)
    assert CAL.due_at(vn(2026, 8, 28, 17, 30), 1) == vn(2026, 9, 3, 17)


def test_due_across_new_year():
    # Wed 31 Dec 2025 16:00 + 1 day: 1 h on Wed, Thu 1 Jan off,
    # Fri 2 Jan: 4.5 h (07:00-11:30) then 2.5 h from 13:30 -> 16:00.
    assert CAL.due_at(vn(2025, 12, 31, 16), 1) == vn(2026, 1, 2, 16)


def test_after_hours_start():
    # Tue 10 Mar 2026 18:00 -> Wed 11 Mar 07:00; + 1 day = Wed 17:00.
    assert CAL.next_working_moment(vn(2026, 3, 10, 18)) == vn(2026, 3, 11, 7)
    assert CAL.due_at(vn(2026, 3, 10, 18), 1) == vn(2026, 3, 11, 17)
    # before opening: Tue 06:00 -> Tue 07:00
    assert CAL.next_working_moment(vn(2026, 3, 10, 6)) == vn(2026, 3, 10, 7)
    # exactly at closing is outside [open, close): Tue 17:00 -> Wed 07:00
    assert CAL.next_working_moment(vn(2026, 3, 10, 17)) == vn(2026, 3, 11, 7)
    # weekend: Sat 14 Mar 10:00 -> Mon 16 Mar 07:00
    assert CAL.next_working_moment(vn(2026, 3, 14, 10)) == vn(2026, 3, 16, 7)


def test_lunch_start():
    # Tue 12:00 -> 13:30. + 0.5 day = 4 h: 13:30-17:00 is 3.5 h, 0.5 h left -> Wed 07:30.
    assert CAL.next_working_moment(vn(2026, 3, 10, 12)) == vn(2026, 3, 10, 13, 30)
    assert CAL.due_at(vn(2026, 3, 10, 12), "0.5") == vn(2026, 3, 11, 7, 30)
    # exactly 11:30 -> 13:30
    assert CAL.next_working_moment(vn(2026, 3, 10, 11, 30)) == vn(2026, 3, 10, 13, 30)


def test_cutoff():
    # Tue 15:30 with a 15:00 cut-off -> Wed 07:00.
    assert CAL.next_working_moment(vn(2026, 3, 10, 15, 30), cutoff=CUTOFF) == vn(2026, 3, 11, 7)
    assert CAL.due_at(vn(2026, 3, 10, 15, 30), 1, cutoff=CUTOFF) == vn(2026, 3, 11, 17)
    # without the cut-off counting starts at 15:30: 1.5 h Tue, 6.5 h Wed: 4.5 h + 2 h -> 15:30.
    assert CAL.due_at(vn(2026, 3, 10, 15, 30), 1) == vn(2026, 3, 11, 15, 30)
    # before / exactly at the cut-off: unaffected.
    assert CAL.next_working_moment(vn(2026, 3, 10, 14, 59), cutoff=CUTOFF) == vn(2026, 3, 10, 14, 59)
    assert CAL.next_working_moment(vn(2026, 3, 10, 15), cutoff=CUTOFF) == vn(2026, 3, 10, 15)
    # Fri 13 Mar 15:30 -> Mon 16 Mar 07:00.
    assert CAL.next_working_moment(vn(2026, 3, 13, 15, 30), cutoff=CUTOFF) == vn(2026, 3, 16, 7)
    # Fri 13 Feb 2026 15:30 (eve of Tết) -> Mon 23 Feb 07:00.
    assert CAL.next_working_moment(vn(2026, 2, 13, 15, 30), cutoff=CUTOFF) == vn(2026, 2, 23, 7)
    # same-day procedure helper: by the cut-off -> today's 17:00, after -> next working day's.
    assert CAL.close_of_day(vn(2026, 3, 10, 9), cutoff=CUTOFF) == vn(2026, 3, 10, 17)
    assert CAL.close_of_day(vn(2026, 3, 10, 15, 1), cutoff=CUTOFF) == vn(2026, 3, 11, 17)


def test_allowance_ending_at_period_end_stays_there():
    # Tue 07:00 + 1 day = 4.5 h + 3.5 h -> 17:00 Tue, not Wed 07:00.
    assert CAL.due_at(vn(2026, 3, 10, 7), 1) == vn(2026, 3, 10, 17)
    # Tue 07:30 + 0.5 day = 4 h -> 11:30 exactly, not 13:30.
    assert CAL.due_at(vn(2026, 3, 10, 7, 30), "0.5") == vn(2026, 3, 10, 11, 30)
    # Tue 13:00 (lunch -> 13:30) + 2 days = 16 h: 3.5 Tue, 8 Wed, 4.5 Thu -> Thu 11:30.
    assert CAL.due_at(vn(2026, 3, 10, 13), 2) == vn(2026, 3, 12, 11, 30)


def test_half_days():
    # 0.5 day = 4 h: Tue 07:00 -> 11:00; 1.5 days = 12 h: Tue 8 h + Wed 4 h -> Wed 11:00.
    assert CAL.due_at(vn(2026, 3, 10, 7), Decimal("0.5")) == vn(2026, 3, 10, 11)
    assert CAL.due_at(vn(2026, 3, 10, 7), 1.5) == vn(2026, 3, 11, 11)
    assert CAL.due_at(vn(2026, 3, 10, 7), "1.5") == vn(2026, 3, 11, 11)
    # 0 days: the counting start itself.
    assert CAL.due_at(vn(2026, 3, 10, 18), 0) == vn(2026, 3, 11, 7)


def test_twenty_days_land_certificate():
    # Mon 2 Mar 2026 07:00 + 20 days: 20 full working days Mon 2 .. Fri 27 Mar (no holidays)
    # -> due Fri 27 Mar 17:00.
    assert CAL.due_at(vn(2026, 3, 2, 7), 20) == vn(2026, 3, 27, 17)
    # 20 days from Mon 13 Apr 2026 07:00: Apr 13-17 (5), 20-24 (5), Mon 27 off (Hung Kings observed),
    # 28-29 (2), Thu 30 Apr + Fri 1 May off, May 4-8 (5) -> 17, May 11-13 (3) -> Wed 13 May 17:00.
    assert CAL.due_at(vn(2026, 4, 13, 7), 20) == vn(2026, 5, 13, 17)


def test_timezone_handling():
    # 00:00 UTC = 07:00 in Vietnam; + 1 day -> 17:00 VN = 10:00 UTC.
    due = CAL.due_at(datetime(2026, 3, 10, 0, tzinfo=UTC), 1)
    assert due == datetime(2026, 3, 10, 10, tzinfo=UTC)
    assert due.tzinfo == VN and due.hour == 17


def test_naive_datetimes_rejected():
    naive = datetime(2026, 3, 10, 9)
    with pytest.raises(ValueError):
        CAL.due_at(naive, 1)
    with pytest.raises(ValueError):
        CAL.next_working_moment(naive)
    with pytest.raises(ValueError):
        CAL.add_working_time(naive, timedelta(hours=1))
    with pytest.raises(ValueError):
        CAL.working_time_between(naive, vn(2026, 3, 11, 9))
    with pytest.raises(ValueError):
        CAL.working_time_between(vn(2026, 3, 9, 9), naive)
    with pytest.raises(ValueError):
        CAL.add_calendar_days(naive, 3)
    with pytest.raises(ValueError):
        CAL.is_working_day(naive)


def test_parse_days():
    assert parse_days("1.5") == Decimal("1.5")
    assert parse_days(3) == Decimal(3)
    assert parse_days(0.5) == Decimal("0.5")
    assert parse_days(Decimal("2.0")) == Decimal(2)
    assert parse_days(" 10 ") == Decimal(10)
    assert parse_days(0) == Decimal(0)
    for bad in ("-1", -0.5, "0.25", 1.2, "abc", "", True, None, "nan", "inf", [1]):
        with pytest.raises(ValueError):
            parse_days(bad)
    with pytest.raises(ValueError):
        CAL.due_at(vn(2026, 3, 10, 7), "0.3")
    with pytest.raises(ValueError):
        CAL.due_at(vn(2026, 3, 10, 7), -1)
    with pytest.raises(ValueError):
        CAL.add_working_time(vn(2026, 3, 10, 7), timedelta(hours=-1))


def test_working_time_between():
    # a full working week Mon 9 .. Fri 13 Mar 2026: 5 x 8 h
    assert CAL.working_time_between(vn(2026, 3, 9), vn(2026, 3, 14)) == timedelta(hours=40)
    # Tết week Mon 16 .. Fri 20 Feb 2026: nothing
    assert CAL.working_time_between(vn(2026, 2, 14), vn(2026, 2, 23)) == timedelta(0)
    # Tue 10:00 -> Tue 14:00: 1.5 h + 0.5 h
    assert CAL.working_time_between(vn(2026, 3, 10, 10), vn(2026, 3, 10, 14)) == timedelta(hours=2)
    # reversed or empty interval: zero
    assert CAL.working_time_between(vn(2026, 3, 11), vn(2026, 3, 10)) == timedelta(0)
    assert CAL.working_days_between(vn(2026, 3, 10, 7), vn(2026, 3, 11, 11)) == Decimal("1.5")


def test_add_calendar_days():
    # Civil Code art. 147-148: Fri 13 Feb 2026 not counted, 14..18 Feb are the 5 days; Wed 18 is Tết,
    # the next working day is Mon 23 Feb (21/22 weekend): due at its close.
    assert CAL.add_calendar_days(vn(2026, 2, 13, 10), 5) == vn(2026, 2, 23, 17)
    # 2026-03-10 03:00 UTC = 10:00 VN; 11..25 Mar -> Wed 25 Mar at the close of working hours
    assert CAL.add_calendar_days(datetime(2026, 3, 10, 3, tzinfo=UTC), 15) == vn(2026, 3, 25, 17)
    with pytest.raises(ValueError):
        CAL.add_calendar_days(vn(2026, 3, 10), -1)
    with pytest.raises(ValueError):
        CAL.add_calendar_days(vn(2026, 3, 10), 1.5)


# ------------------------------------------------------------- configuration


def test_office_hours_validation():
    with pytest.raises(ValueError):
        OfficeHours(())
    with pytest.raises(ValueError):
        OfficeHours(((time(11), time(7)),))  # reversed
    with pytest.raises(ValueError):
        OfficeHours(((time(7), time(12)), (time(11), time(17))))  # overlapping
    with pytest.raises(ValueError):
        OfficeHours(((time(13), time(17)), (time(7), time(11))))  # out of order
    # touching periods are allowed
    OfficeHours(((time(7), time(12)), (time(12), time(16))))


def test_agency_office_hours():
    # 07:30-11:30 and 13:00-17:00 (4 h + 4 h).
    hours = OfficeHours.from_strings("07:30-11:30", "13:00-17:00")
    cal = WorkingCalendar(office_hours=hours)
    assert cal.next_working_moment(vn(2026, 3, 10, 7)) == vn(2026, 3, 10, 7, 30)
    assert cal.next_working_moment(vn(2026, 3, 10, 12)) == vn(2026, 3, 10, 13)
    # Tue 07:30 + 0.5 day = 11:30; + 1 day = 17:00; Tue 12:00 + 1 day: 4 h Tue, 4 h Wed -> Wed 11:30
    assert cal.due_at(vn(2026, 3, 10, 7, 30), "0.5") == vn(2026, 3, 10, 11, 30)
    assert cal.due_at(vn(2026, 3, 10, 7, 30), 1) == vn(2026, 3, 10, 17)
    assert cal.due_at(vn(2026, 3, 10, 12), 1) == vn(2026, 3, 11, 11, 30)


def test_decisions_in_constructor():
    # Hypothetical decisions (not a claim about any real one): Fri 2 Jan 2026 off, Sat 10 Jan worked.
    cal = WorkingCalendar(decisions=Decisions((Decision(date(2026, 1, 10), "working_day", "test only"),
                                               Decision(date(2026, 1, 2), "day_off", "test only"))))
    assert not cal.is_working_day(date(2026, 1, 2))
    assert cal.is_working_day(date(2026, 1, 10))
    assert CAL.is_working_day(date(2026, 1, 2)) and not CAL.is_working_day(date(2026, 1, 10))
    # Wed 31 Dec 2025 16:00 + 1 day: 1 h Wed; Thu 1, Fri 2 off, Sat 3/Sun 4 weekend;
    # Mon 5 Jan: 7 h -> 16:00.
    assert cal.due_at(vn(2025, 12, 31, 16), 1) == vn(2026, 1, 5, 16)


def test_decisions_from_yaml(tmp_path):
    path = tmp_path / "calendar.yaml"
    path.write_text(
        "decided_years: [2026]\n"
        "decisions:\n"
        "  - {date: 2026-01-10, kind: working_day, source: 'a test decision'}\n"
        "  - {date: '2026-01-02', kind: day_off, source: 'a test decision'}\n",
        encoding="utf-8",
    )
    loaded = load_decisions(path)
    assert loaded.dates("working_day") == {date(2026, 1, 10)} and loaded.dates("day_off") == {date(2026, 1, 2)}
    assert loaded.decided_years == {2026}
    cal = WorkingCalendar.from_yaml(path)
    assert not cal.is_working_day(date(2026, 1, 2))
    assert cal.is_working_day(date(2026, 1, 10))
    assert str(cal.tz) == "Asia/Ho_Chi_Minh"

    empty = tmp_path / "empty.yaml"
    empty.write_text("", encoding="utf-8")
    assert WorkingCalendar.from_yaml(empty).is_working_day(date(2026, 1, 2))


@pytest.mark.parametrize("text, where", [
    ("decisions:\n  - {date: 2026-01-02, kind: holiday, source: 'a test decision'}\n", ":2: decisions.0.kind"),
    ("decisions:\n  - {date: 2026-01-02, kind: day_off}\n", ":2: decisions.0.source"),
    ("decisions:\n  - {date: 2026-01-02, kind: day_off, source: 'a test decision'}\n"
     "  - {date: 2026-01-02, kind: working_day, source: 'a test decision'}\n", ":3: decisions.1.date"),
    ("decided_years: [twenty]\n", ":1: decided_years.0"),
])
def test_a_bad_calendar_file_names_file_and_line(tmp_path, text, where):
    path = tmp_path / "calendar.yaml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(CatalogError, match=re.escape(f"{path}{where}")):
        load_decisions(path)


# ---------------------------------------------------------------- properties

PROPS = settings(max_examples=200, deadline=None)

starts = st.datetimes(
    min_value=datetime(2025, 1, 1),
    max_value=datetime(2027, 6, 30),
    timezones=st.sampled_from([VN, UTC]),
)
allowances = st.integers(min_value=0, max_value=40).map(lambda n: Decimal(n) / 2)  # 0 .. 20 days
cutoffs = st.sampled_from([None, time(15)])


def _in_office_time(cal: WorkingCalendar, moment: datetime) -> bool:
    local = moment.astimezone(cal.tz)
    return any(s <= local <= e for s, e in cal.working_periods(local.date()))


@PROPS
@given(a=starts, delta=st.timedeltas(min_value=timedelta(0), max_value=timedelta(days=20)),
       days=allowances, cutoff=cutoffs)
def test_monotone(a, delta, days, cutoff):
    b = a + delta
    assert CAL.due_at(a, days, cutoff) <= CAL.due_at(b, days, cutoff)


@PROPS
@given(start=starts, days=allowances, cutoff=cutoffs)
def test_due_lies_in_office_time_and_uses_exact_allowance(start, days, cutoff):
    due = CAL.due_at(start, days, cutoff)
    assert due.tzinfo == VN
    assert _in_office_time(CAL, due)
    begin = CAL.next_working_moment(start, cutoff)
    assert begin >= start
    assert _in_office_time(CAL, begin)
    assert CAL.working_time_between(begin, due) == timedelta(hours=8) * int(days * 2) / 2
    if cutoff is None:
        # nothing counts between start and the counting start
        assert CAL.working_time_between(start, due) == timedelta(hours=8) * int(days * 2) / 2


@PROPS
@given(start=starts, amount=st.timedeltas(min_value=timedelta(0), max_value=timedelta(hours=200)))
def test_add_working_time_inverse(start, amount):
    due = CAL.add_working_time(start, amount)
    assert CAL.working_time_between(start, due) == amount
    if amount:
        # the allowance is not used up any earlier: the last microsecond before due still counts
        assert CAL.working_time_between(start, due - timedelta(microseconds=1)) < amount


@PROPS
@given(a=starts, d1=st.timedeltas(min_value=timedelta(0), max_value=timedelta(days=15)),
       d2=st.timedeltas(min_value=timedelta(0), max_value=timedelta(days=15)))
def test_working_time_between_is_additive(a, d1, d2):
    b = a + d1
    c = b + d2
    assert CAL.working_time_between(a, c) == CAL.working_time_between(a, b) + CAL.working_time_between(b, c)


@PROPS
@given(start=starts, days=allowances.filter(lambda d: d > 0), cutoff=cutoffs,
       p_frac=st.floats(min_value=0, max_value=1, exclude_max=True),
       pause=st.timedeltas(min_value=timedelta(0), max_value=timedelta(days=20)))
def test_pause_and_resume(start, days, cutoff, p_frac, pause):
    allowance = timedelta(hours=8) * int(days * 2) / 2
    begin = CAL.next_working_moment(start, cutoff)
    due = CAL.add_working_time(begin, allowance)
    assert due == CAL.due_at(start, days, cutoff)
    p = begin + (due - begin) * p_frac  # pause somewhere inside processing
    assume(p < due)
    r = p + pause
    used = CAL.working_time_between(begin, p)
    remaining = allowance - used
    assert remaining > timedelta(0)
    new_due = CAL.add_working_time(r, remaining)
    assert new_due >= due
    assert CAL.working_time_between(begin, new_due) == allowance + CAL.working_time_between(p, r)
    assert _in_office_time(CAL, new_due)
