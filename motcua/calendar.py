"""Working calendar and due-date arithmetic for Motcua.

Plain Python (no nameko, no I/O at import time).

The rule implemented here (binding contract):

    the allowance is days x 8 working hours; counting starts at ``start``, or at
    the next office period if ``start`` is outside office hours, or at the next
    working day's opening if a cut-off is given and ``start`` is later than it on
    a working day; only office hours of working days count (default periods
    07:00-11:30 and 13:30-17:00, Asia/Ho_Chi_Minh, or the agency's own); working
    days are Monday-Friday minus Vietnam's public holidays and days off
    (``holidays``, country VN, which also names the Saturday each day off was
    swapped from), plus the Saturdays made working days by such a swap; the due
    moment is the instant the allowance is used up (an allowance that ends
    exactly at 17:00 is due at 17:00 that day, not the next morning).

Conventions:

* Every datetime passed in must be timezone-aware (``ValueError`` otherwise);
  every datetime returned is aware, in the calendar's time zone.
* Office periods are half-open ``[open, close)`` when deciding where counting
  starts (a start at exactly 11:30 or 17:00 moves to the next period), but a due
  moment may be exactly a period's close (11:30 stays 11:30, 17:00 stays 17:00).
* A working day is always worth 8 hours of allowance, whatever the agency's
  periods add up to (the contract says "days x 8 working hours").
* Working-day data: the ``holidays`` package (country VN, names pinned to
  ``en_US``) for days off; the weekend days each "Day off (substituted from
  MM/DD/YYYY)" was swapped from become working days. The official decisions
  (``Decisions``: deploy/catalog/calendar.yaml, each with its document number)
  win over the
  package, which is a default, not the authority. A year not among the decided
  years is provisional.
* Other units: calendar days per Civil Code 2015 art. 147-148
  (``add_calendar_days``) and working hours (``due(..., "working_hours")``).
"""

from __future__ import annotations

import re
import threading
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta, tzinfo
from decimal import Decimal, InvalidOperation
from os import PathLike
from typing import Iterable
from zoneinfo import ZoneInfo

from marshmallow import Schema, ValidationError, fields, validate, validates_schema

from motcua.catalog import load_data

__all__ = [
    "DEFAULT_TZ",
    "HOURS_PER_DAY",
    "OfficeHours",
    "WorkingCalendar",
    "DECISION_KINDS",
    "Decision",
    "Decisions",
    "UNITS",
    "load_decisions",
    "parse_days",
]

DEFAULT_TZ = "Asia/Ho_Chi_Minh"
HOURS_PER_DAY = 8
_MINUTES_PER_DAY = HOURS_PER_DAY * 60

# Safety net against a misconfigured override table (e.g. years of days off).
_MAX_CONSECUTIVE_DAYS_OFF = 366 * 2

# "Day off (substituted from 08/22/2026)" (en_US, MM/DD/YYYY).
_SUBSTITUTED_EN = re.compile(r"substituted from (\d{1,2})/(\d{1,2})/(\d{4})", re.IGNORECASE)
# "Ngày nghỉ (thay cho ngày 22/08/2026)" (vi, DD/MM/YYYY) -- only if en_US is
# ever unavailable; we always ask the package for en_US.
_SUBSTITUTED_VI = re.compile(r"thay cho ngày (\d{1,2})/(\d{1,2})/(\d{4})", re.IGNORECASE)


# --------------------------------------------------------------------------- days


def parse_days(value) -> Decimal:
    """Parse a time allowance in working days; halves allowed.

    ``"1.5"`` -> ``Decimal("1.5")``, ``3`` -> ``Decimal("3")``, ``0.5`` ->
    ``Decimal("0.5")``. Raises ``ValueError`` for negatives, non-finite values,
    values that are not a multiple of 0.5, booleans and anything unparsable.
    """
    if isinstance(value, bool):
        raise ValueError(f"not a number of days: {value!r}")
    if isinstance(value, Decimal):
        d = value
    elif isinstance(value, int):
        d = Decimal(value)
    elif isinstance(value, float):
        d = Decimal(repr(value))
    elif isinstance(value, str):
        try:
            d = Decimal(value.strip())
        except InvalidOperation:
            raise ValueError(f"not a number of days: {value!r}") from None
    else:
        raise ValueError(f"not a number of days: {value!r}")
    if not d.is_finite():
        raise ValueError(f"not a finite number of days: {value!r}")
    if d < 0:
        raise ValueError(f"negative number of days: {value!r}")
    twice = d * 2
    if twice != twice.to_integral_value():
        raise ValueError(f"days must be a multiple of 0.5: {value!r}")
    return Decimal(int(twice)) / 2


# -------------------------------------------------------------------- office hours


@dataclass(frozen=True)
class OfficeHours:
    """The office periods of one working day, as local wall-clock times.

    Validated: at least one period, each ``start < end``, ordered and
    non-overlapping (a period may begin exactly where the previous one ends).
    """

    periods: tuple[tuple[time, time], ...] = ((time(7), time(11, 30)), (time(13, 30), time(17)))

    def __post_init__(self) -> None:
        periods = tuple((p[0], p[1]) for p in self.periods)
        object.__setattr__(self, "periods", periods)
        if not periods:
            raise ValueError("office hours need at least one period")
        previous_end: time | None = None
        for start, end in periods:
            if not isinstance(start, time) or not isinstance(end, time):
                raise ValueError(f"office period bounds must be datetime.time: {(start, end)!r}")
            if start.tzinfo is not None or end.tzinfo is not None:
                raise ValueError("office period bounds are local wall-clock times (no tzinfo)")
            if not start < end:
                raise ValueError(f"office period must start before it ends: {start}-{end}")
            if previous_end is not None and start < previous_end:
                raise ValueError(f"office periods must be ordered and non-overlapping: {start} < {previous_end}")
            previous_end = end

    @property
    def opening(self) -> time:
        return self.periods[0][0]

    @property
    def closing(self) -> time:
        return self.periods[-1][1]

    @classmethod
    def from_strings(cls, *periods: str) -> "OfficeHours":
        """``OfficeHours.from_strings("07:30-11:30", "13:00-17:00")``."""
        parsed = []
        for text in periods:
            try:
                a, b = text.split("-")
                parsed.append((time.fromisoformat(a.strip()), time.fromisoformat(b.strip())))
            except ValueError:
                raise ValueError(f"bad office period {text!r}, expected 'HH:MM-HH:MM'") from None
        return cls(tuple(parsed))


# ------------------------------------------------------------ official decisions


UNITS = ("working_days", "calendar_days", "working_hours")
DECISION_KINDS = ("day_off", "working_day")


@dataclass(frozen=True)
class Decision:
    """One official decision about one date: a day off (ngày nghỉ) or a working day (ngày làm việc,
    e.g. a Saturday worked in exchange for a swapped day off: hoán đổi ngày làm việc), with the document
    that decided it (số hiệu văn bản, ngày ban hành)."""

    date: date
    kind: str
    source: str


@dataclass(frozen=True)
class Decisions:
    """The official calendar as data: every recorded decision, and the years the Government has
    decided (their Tết and swaps announced); a year not listed is provisional."""

    decisions: tuple[Decision, ...] = ()
    decided_years: frozenset[int] = frozenset()

    def dates(self, kind: str) -> frozenset[date]:
        return frozenset(d.date for d in self.decisions if d.kind == kind)

    def merged(self, recorded: Iterable[tuple[Decision, bool]]) -> "Decisions":
        """These decisions and those recorded later (the admin's, through the API), each a decision and
        whether it completes its year's calendar; a later decision about a date replaces the earlier."""
        by_date = {d.date: d for d in self.decisions}
        years = set(self.decided_years)
        for decision, decided_year in recorded:
            by_date[decision.date] = decision
            if decided_year:
                years.add(decision.date.year)
        return Decisions(tuple(sorted(by_date.values(), key=lambda d: d.date)), frozenset(years))


class _DecisionSchema(Schema):
    date = fields.Date(required=True)
    kind = fields.Str(required=True, validate=validate.OneOf(DECISION_KINDS))
    source = fields.Str(required=True, validate=validate.Length(min=8))


class _CalendarFileSchema(Schema):
    decided_years = fields.List(fields.Int(validate=validate.Range(min=1900, max=9999)), load_default=list)
    decisions = fields.List(fields.Nested(_DecisionSchema), load_default=list)

    @validates_schema
    def _one_decision_per_date(self, data, **_):
        seen: set[date] = set()
        for index, decision in enumerate(data.get("decisions", [])):
            if decision["date"] in seen:
                raise ValidationError({"decisions": {index: {"date": ["a second decision for this date"]}}})
            seen.add(decision["date"])


def load_decisions(path: str | PathLike) -> Decisions:
    """Read ``calendar.yaml`` (see deploy/catalog/calendar.yaml); errors name the file and line.

    Format::

        decided_years: [2025, 2026]
        decisions:
          - {date: 2026-01-02, kind: day_off, source: "Công văn 12729/VPCP-KGVX, 25/12/2025"}
    """
    data = load_data(path, _CalendarFileSchema())
    return Decisions(tuple(Decision(**d) for d in data["decisions"]), frozenset(data["decided_years"]))


# ---------------------------------------------------------------------- calendar


def _require_aware(value: datetime, name: str) -> None:
    if not isinstance(value, datetime):
        raise ValueError(f"{name} must be a datetime, got {type(value).__name__}")
    if value.tzinfo is None or value.tzinfo.utcoffset(value) is None:
        raise ValueError(f"{name} must be timezone-aware: {value!r}")


def _substituted_from(name: str) -> date | None:
    m = _SUBSTITUTED_EN.search(name)
    if m:
        month, day, year = (int(g) for g in m.groups())
        return date(year, month, day)
    m = _SUBSTITUTED_VI.search(name)
    if m:
        day, month, year = (int(g) for g in m.groups())
        return date(year, month, day)
    return None


class WorkingCalendar:
    """Working days and office hours of one agency (or the province default)."""

    def __init__(
        self,
        tz: str | tzinfo = DEFAULT_TZ,
        office_hours: OfficeHours = OfficeHours(),
        decisions: Decisions = Decisions(),
    ) -> None:
        self._tz: tzinfo = ZoneInfo(tz) if isinstance(tz, str) else tz
        if not isinstance(office_hours, OfficeHours):
            raise ValueError("office_hours must be an OfficeHours")
        self.office_hours = office_hours
        self.decisions = decisions
        # The official decisions win over the package's guesses (DOMAIN: the package has missed swaps).
        self.extra_working_days = decisions.dates("working_day")
        self.extra_days_off = decisions.dates("day_off")
        # year -> (package days off, weekend days made working by a swap, from that year's data)
        self._package: dict[int, tuple[frozenset[date], frozenset[date]]] = {}
        # year -> (days off, working weekend days) for dates *in* that year
        self._years: dict[int, tuple[frozenset[date], frozenset[date]]] = {}
        self._lock = threading.Lock()

    @classmethod
    def from_yaml(
        cls,
        path: str | PathLike,
        tz: str | tzinfo = DEFAULT_TZ,
        office_hours: OfficeHours = OfficeHours(),
    ) -> "WorkingCalendar":
        """Calendar with the official decisions in ``path`` (see ``load_decisions``)."""
        return cls(tz=tz, office_hours=office_hours, decisions=load_decisions(path))

    def with_office_hours(self, office_hours: OfficeHours) -> "WorkingCalendar":
        """The same days (decisions, time zone) with an agency's own office hours."""
        return WorkingCalendar(tz=self._tz, office_hours=office_hours, decisions=self.decisions)

    def with_decisions(self, decisions: Decisions) -> "WorkingCalendar":
        """The same office hours and time zone under other decisions."""
        return WorkingCalendar(tz=self._tz, office_hours=self.office_hours, decisions=decisions)

    @property
    def tz(self) -> tzinfo:
        return self._tz

    def __repr__(self) -> str:
        return (
            f"WorkingCalendar(tz={getattr(self._tz, 'key', self._tz)!r}, "
            f"office_hours={self.office_hours!r}, "
            f"decisions={len(self.decisions.decisions)}, decided_years={sorted(self.decisions.decided_years)})"
        )

    # ------------------------------------------------------------ working days

    def _package_year(self, year: int) -> tuple[frozenset[date], frozenset[date]]:
        cached = self._package.get(year)
        if cached is not None:
            return cached
        import holidays  # lazy: no holiday computation at import time

        try:
            h = holidays.country_holidays("VN", years=year, language="en_US")
            items = list(h.items())
        except (ValueError, NotImplementedError, OverflowError):  # pragma: no cover - far-off years
            items = []
            h = None
        off = frozenset(d for d, _ in items)
        swapped = {s for _, name in items for part in name.split(";") if (s := _substituted_from(part))}
        # holidays also keeps the swapped-from weekend days as `weekend_workdays`; use both sources.
        swapped.update(getattr(h, "weekend_workdays", ()) or ())
        result = (off, frozenset(d for d in swapped if d.weekday() >= 5))
        self._package[year] = result
        return result

    def _year(self, year: int) -> tuple[frozenset[date], frozenset[date]]:
        cached = self._years.get(year)
        if cached is not None:
            return cached
        with self._lock:
            cached = self._years.get(year)
            if cached is not None:
                return cached
            off, _ = self._package_year(year)
            # A swap may cross a year boundary (day off 2018-12-31 for Saturday 2019-01-05),
            # so look at the neighbouring years' data too.
            working_weekend: set[date] = set()
            for y in (year - 1, year, year + 1):
                if 1 <= y <= 9999:
                    working_weekend.update(d for d in self._package_year(y)[1] if d.year == year)
            working_weekend -= off
            result = (off, frozenset(working_weekend))
            self._years[year] = result
            return result

    def is_working_day(self, d: date) -> bool:
        """Mon-Fri minus VN holidays/days off, plus swapped working Saturdays; overrides win.

        An aware datetime is accepted and reduced to its local date.
        """
        if isinstance(d, datetime):
            _require_aware(d, "d")
            d = d.astimezone(self._tz).date()
        if d in self.extra_days_off:
            return False
        if d in self.extra_working_days:
            return True
        off, working_weekend = self._year(d.year)
        if d in off:
            return False
        if d.weekday() >= 5:
            return d in working_weekend
        return True

    def next_working_day(self, d: date) -> date:
        """The first working day strictly after ``d``."""
        for _ in range(_MAX_CONSECUTIVE_DAYS_OFF):
            d = d + timedelta(days=1)
            if self.is_working_day(d):
                return d
        raise RuntimeError(f"no working day within {_MAX_CONSECUTIVE_DAYS_OFF} days after {d}")

    def days_off(self, year: int) -> list[date]:
        """Weekdays (Mon-Fri) of ``year`` that are not working days (holidays, swaps, overrides)."""
        d = date(year, 1, 1)
        out = []
        while d.year == year:
            if d.weekday() < 5 and not self.is_working_day(d):
                out.append(d)
            d += timedelta(days=1)
        return out

    def working_weekend_days(self, year: int) -> list[date]:
        """Saturdays/Sundays of ``year`` that are working days (swaps and overrides)."""
        d = date(year, 1, 1)
        out = []
        while d.year == year:
            if d.weekday() >= 5 and self.is_working_day(d):
                out.append(d)
            d += timedelta(days=1)
        return out

    # ------------------------------------------------------------ office time

    def _local(self, value: datetime, name: str) -> datetime:
        _require_aware(value, name)
        return value.astimezone(self._tz)

    def _at(self, d: date, t: time) -> datetime:
        return datetime.combine(d, t, tzinfo=self._tz)

    def working_periods(self, d: date) -> list[tuple[datetime, datetime]]:
        """The office periods of ``d`` as aware local datetimes (empty if not a working day)."""
        if not self.is_working_day(d):
            return []
        return [(self._at(d, s), self._at(d, e)) for s, e in self.office_hours.periods]

    def _opening(self, d: date) -> datetime:
        return self._at(d, self.office_hours.opening)

    def next_working_moment(self, at: datetime, cutoff: time | None = None) -> datetime:
        """Where counting starts for something received at ``at``.

        ``at`` itself if it lies inside an office period (half-open ``[open, close)``)
        of a working day; otherwise the opening of the next office period. With a
        ``cutoff``, a receipt later than the cut-off on a working day starts at the
        next working day's opening (exactly at the cut-off is not later).
        """
        local = self._local(at, "at")
        if cutoff is not None and cutoff.tzinfo is not None:
            raise ValueError("cutoff is a local wall-clock time (no tzinfo)")
        d = local.date()
        if self.is_working_day(d):
            if cutoff is not None and local.time() > cutoff:
                return self._opening(self.next_working_day(d))
            for start, end in self.working_periods(d):
                if local < start:
                    return start
                if local < end:
                    return local
        return self._opening(self.next_working_day(d))

    def add_working_time(self, start: datetime, amount: timedelta, cutoff: time | None = None) -> datetime:
        """The instant at which ``amount`` of office time, counted from
        ``next_working_moment(start, cutoff)``, is used up.

        An amount that ends exactly at a period's close is due at that close.
        ``amount == 0`` returns the counting start itself.
        """
        if not isinstance(amount, timedelta):
            raise ValueError(f"amount must be a timedelta, got {type(amount).__name__}")
        if amount < timedelta(0):
            raise ValueError(f"amount must not be negative: {amount}")
        cur = self.next_working_moment(start, cutoff)
        remaining = amount
        if not remaining:
            return cur
        d = cur.date()
        while True:
            for p_start, p_end in self.working_periods(d):
                if p_end <= cur:
                    continue
                begin = max(p_start, cur)
                available = p_end - begin
                if remaining <= available:
                    return begin + remaining
                remaining -= available
            d = self.next_working_day(d)
            cur = self._opening(d)

    def due_at(
        self,
        start: datetime,
        days: Decimal | float | int | str,
        cutoff: time | None = None,
    ) -> datetime:
        """Due moment for an allowance of ``days`` working days (x 8 h; halves allowed)."""
        n = parse_days(days)
        minutes = int(n * _MINUTES_PER_DAY)  # exact: n is a multiple of 0.5
        return self.add_working_time(start, timedelta(minutes=minutes), cutoff)

    def working_time_between(self, a: datetime, b: datetime) -> timedelta:
        """Office time of working days inside ``[a, b)``; zero if ``b <= a``."""
        la = self._local(a, "a")
        lb = self._local(b, "b")
        total = timedelta(0)
        if lb <= la:
            return total
        d = la.date()
        last = lb.date()
        while d <= last:
            for p_start, p_end in self.working_periods(d):
                lo = max(p_start, la)
                hi = min(p_end, lb)
                if hi > lo:
                    total += hi - lo
            d += timedelta(days=1)
        return total

    def recounted(self, anchor: datetime, due: datetime, before: "WorkingCalendar") -> datetime:
        """`due`, as `before` counted it, counted again under this calendar from `anchor` (a calendar
        decision's day, or a later start): the working time `before` left between them is kept, so a
        day made off moves it later and a day made working earlier."""
        return self.add_working_time(anchor, before.working_time_between(anchor, due))

    def working_days_between(self, a: datetime, b: datetime) -> Decimal:
        """``working_time_between`` expressed in 8-hour days (may be fractional)."""
        seconds = Decimal(self.working_time_between(a, b) // timedelta(microseconds=1)) / Decimal(10**6)
        return seconds / Decimal(HOURS_PER_DAY * 3600)

    def close_of_day(self, at: datetime, cutoff: time | None = None) -> datetime:
        """Closing time of the working day on which counting starts (for same-day
        procedures: received by the cut-off -> due at today's close, else the next
        working day's close)."""
        begin = self.next_working_moment(at, cutoff)
        return self._at(begin.date(), self.office_hours.closing)

    def add_calendar_days(self, start: datetime, days: int) -> datetime:
        """Due moment of a period of ``days`` calendar days (thời hạn tính bằng ngày), as the Civil
        Code 2015 counts it: art. 147(2) the day of the event is not counted, counting starts the next
        day; art. 148 the period ends at the close of working hours of its last day (the work is done
        at an agency), and when that day is a weekly day off or a holiday, at the close of the next
        working day. ``days`` must be a non-negative int; 0 is the close of the day of the event
        (rolled the same way)."""
        if isinstance(days, bool) or not isinstance(days, int):
            raise ValueError(f"days must be an int, got {days!r}")
        if days < 0:
            raise ValueError(f"days must not be negative: {days}")
        last = self._local(start, "start").date() + timedelta(days=days)
        if not self.is_working_day(last):
            last = self.next_working_day(last)
        return self._at(last, self.office_hours.closing)

    def due(self, start: datetime, amount, unit: str = "working_days", cutoff: time | None = None) -> datetime:
        """Due moment of ``amount`` in ``unit``: working days (x 8 h, halves allowed), calendar days
        (Civil Code art. 147-148, a whole number) or working hours (giờ làm việc, halves allowed)."""
        if unit == "working_days":
            return self.due_at(start, amount, cutoff=cutoff)
        n = parse_days(amount)
        if unit == "working_hours":
            return self.add_working_time(start, timedelta(minutes=int(n * 60)), cutoff)
        if unit == "calendar_days":
            if n != n.to_integral_value():
                raise ValueError(f"calendar days are whole days: {amount!r}")
            return self.add_calendar_days(start, int(n))
        raise ValueError(f"unknown unit {unit!r}, expected one of {', '.join(UNITS)}")

    def is_provisional(self, start: datetime, end: datetime) -> bool:
        """Whether the span touches a year the Government has not decided yet (its Tết and swaps may
        still move a due date): the answer is then provisional (tạm tính)."""
        first, last = sorted((self._local(start, "start").year, self._local(end, "end").year))
        return any(year not in self.decisions.decided_years for year in range(first, last + 1))


def timeliness(finished_at: datetime, due_at: datetime, tz: tzinfo) -> str:
    """Early (trước hạn), on time (đúng hạn) or late (trễ hạn): the law compares local dates, not instants."""
    finished, due = finished_at.astimezone(tz).date(), due_at.astimezone(tz).date()
    return "early" if finished < due else "on_time" if finished == due else "late"


def local_iso(value: datetime | None, tz: tzinfo) -> str | None:
    """An aware instant as ISO 8601 with the province's offset, as every API answers."""
    return value.astimezone(tz).isoformat() if value is not None else None


def overdue_before(now: datetime, tz: tzinfo) -> datetime:
    """Whatever is due before this instant is overdue at `now`: the start of now's local day.
    Like `timeliness`, the law compares dates: due today and still open is not late yet."""
    return datetime.combine(now.astimezone(tz).date(), time.min, tzinfo=tz)
