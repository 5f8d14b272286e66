"""Pre-aggregated counters for the standard report: `report_counts`, counts per receiving agency × field ×
local day × channel × bucket, kept by the projection code at every change of a dossier's row (the
difference between its old and new contributions) and rebuilt by a replay. The report of any period
then reads a few rows per agency, field and day instead of every dossier; the leaders' dashboard, the
daily series and the public statistics read the same counters (one read path per figure).

Two kinds of bucket:
- flows, counted on the local day they happened: `received` (with the channel), `resolved.<timeliness>`
  (result ready), `withdrawn`, `stopped` (dừng xử lý: closed that day, never carried over);
  `resolved.seconds` sums instead of counting (reception → result ready, for the leaders' average
  processing time). A period's figure is the sum over its days.
- stocks, as an entry and an exit: `<stock>.in.<class>` on the day the dossier enters the state,
  `<stock>.out.<class>` on the day it leaves it (never before the entry). Dossiers in the state at a
  local midnight T = entries before T − exits before T. `open` (received, not closed) gives the
  carried-over (at the period's start) and the open dossiers at its end; `supp` (awaiting a supplement)
  the paused ones; `open_due`/`supp_due` the same with the due date before T (overdue, for a past
  period); `now.open_due`/`now.supp_due` the currently open or paused ones on their due day (overdue now,
  for a period that is not over). `class` is the current status: normal, or awaiting_payment.

Every count is kept twice: on its day (grain "day") and on its month (grain "month", day = the 1st), so
a sum "before day T" reads the months before T's month and the days of T's month only: a year's report
reads about a thousand times fewer rows than there are dossiers, whatever their number.

The by-agency report (the official II.06a, the leaders' figures) reads `report_agency_counts` instead: the
same counts summed over fields, a column per bucket that `cells` reads (received per channel), on three
grains (day, month, year), so a sum "before day T" reads per agency the years before T's year, then
the months of T's year before T's month or the year less its later months, and likewise for the days
(`_signed_ranges`): at most about twenty rows per agency, however many dossiers and fields (a
province: 1,000 agencies × 39 fields). It is kept by the
same `apply` in the same transaction as `report_counts`, and rebuilt with it on a replay.

Each formula matches the cell conditions of `timeliness.Period.cells` exactly as long as a dossier's
instants are not before its reception and not after now (events come in the order of their dossier's
life); `tests/reporting/test_aggregates.py` checks every cell against the plain GROUP BY.
"""
from __future__ import annotations

from collections import Counter
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from functools import cache
from zoneinfo import ZoneInfo

from sqlalchemy import (
    Connection,
    and_,
    case,
    delete,
    func,
    or_,
    select,
    text,
)
from sqlalchemy.orm import Session

from motcua.access import AgencyTree
from motcua.sql import execute_rows, insert_rows
from services.reporting.models import AGENCY_COLUMNS, ReportAgencyCount, ReportCount
from services.reporting.timeliness import (
    BASE_CELLS,
    Period,
    assemble,
    check_query,
)

Key = tuple[str, str, str, date, str]  # agency_code, field_code, channel, day, bucket
KINDS = ("early", "on_time", "late")
CLASSES = ("normal", "awaiting_payment")
FLOWS = ("received", *(f"resolved.{kind}" for kind in KINDS), "withdrawn", "stopped")
RESOLVED_SECONDS = "resolved.seconds"
T = ReportCount.__table__
A = ReportAgencyCount.__table__
# bucket name as `cells` reads it (received per channel) → its column in `report_agency_counts`
AGENCY_BUCKETS = dict(zip(
    ("received.online", "received.counter", "received.postal",
     *(f"resolved.{kind}" for kind in KINDS), RESOLVED_SECONDS, "withdrawn", "stopped",
     *(f"{stock}.{way}.{cls}" for stock in ("open", "supp") for way in ("in", "out") for cls in CLASSES),
     "open_due.in", "open_due.out", "supp_due.in", "supp_due.out", "now.open_due", "now.supp_due"),
    AGENCY_COLUMNS, strict=True))
BUCKET_INDEX = {bucket: index for index, bucket in enumerate(AGENCY_BUCKETS)}  # its place in a `Before` vector
SECONDS = BUCKET_INDEX[RESOLVED_SECONDS]
# The cells that are a flow: the bucket's count before the period's end less that before its start.
FLOW_CELLS = tuple((cell, BUCKET_INDEX[cell]) for cell in (
    "received.online", "received.counter", "received.postal", *(f"resolved.{kind}" for kind in KINDS),
    "withdrawn", "stopped"))
# One row's counts before the period's start, before as_of's day and before its end: each a vector of
# the buckets' counts in `AGENCY_BUCKETS` order (a column of `report_agency_counts` each).
Before = tuple[tuple[int, ...], tuple[int, ...], tuple[int, ...]]


def contributions(fact, zone: ZoneInfo) -> Counter:
    """The counts one dossier's row (a DossierFact or anything with its attributes) adds to the table."""
    out: Counter = Counter()
    received = fact.received_at
    if received is None:  # only received dossiers are in the report
        return out
    dims = (fact.agency_code or "", fact.field_code or "", fact.channel or "")

    def add(bucket: str, at: datetime) -> None:
        out[(*dims, at.astimezone(zone).date(), bucket)] += 1

    closed, paused, due = fact.closed_at, fact.paused_at, fact.due_at
    cls = fact.status if fact.status in CLASSES[1:] else "normal"
    add("received", received)
    if fact.finished_at is not None and fact.timeliness in KINDS:
        add(f"resolved.{fact.timeliness}", fact.finished_at)
        # summed, not counted: the leaders' average processing time (reception → result, calendar time)
        out[(*dims, fact.finished_at.astimezone(zone).date(), RESOLVED_SECONDS)] += \
            round((fact.finished_at - received).total_seconds())
    if fact.withdrawn_at is not None and fact.finished_at is None:
        add("withdrawn", fact.withdrawn_at)
    if fact.status == "stopped" and closed is not None:
        add("stopped", closed)
    add(f"open.in.{cls}", received)
    if closed is not None:
        add(f"open.out.{cls}", max(received, closed))
    pause_ends = [at for at in (fact.pause_ended_at, closed) if at is not None]
    if paused is not None:
        add(f"supp.in.{cls}", paused)
        if pause_ends:
            add(f"supp.out.{cls}", max(paused, min(pause_ends)))
    if cls == "normal" and due is not None:
        add("open_due.in", max(received, due))
        if closed is not None:
            add("open_due.out", max(received, due, closed))
        else:
            add("now.open_due", due)
        if paused is not None:
            add("supp_due.in", max(paused, due))
            if pause_ends:
                add("supp_due.out", max(paused, due, min(pause_ends)))
            else:
                add("now.supp_due", due)
    return out


COUNT_KEYS = ("grain", "day", "bucket", "agency_code", "field_code", "channel")
AGENCY_KEYS = ("grain", "day", "agency_code")


def apply(connection: Connection, delta: Counter) -> None:
    """Add `delta` to the counters: one upsert of many rows per table (rows in key order, so concurrent
    writers lock them in one order), none when nothing changed."""
    fine, by_agency = rows(delta)
    if fine:
        execute_rows(connection, _add_counts, fine)
    if by_agency:
        execute_rows(connection, _add_agency_counts, by_agency)


def rows(delta: Counter) -> tuple[list[dict], list[dict]]:
    """The rows `delta` adds to `report_counts` (day and month grains) and to `report_agency_counts`
    (day, month and year grains, summed over fields, a column per bucket), in key order."""
    fine: Counter = Counter()
    by_agency: dict[tuple, Counter] = {}
    for (agency, field, channel, day, bucket), n in delta.items():
        if not n:
            continue
        starts = (("day", day), ("month", day.replace(day=1)), ("year", day.replace(month=1, day=1)))
        for grain, start in starts[:2]:
            fine[(grain, start, bucket, agency, field, channel)] += n
        column = AGENCY_BUCKETS.get(f"received.{channel}" if bucket == "received" else bucket)
        if column is not None:  # what the report never reads (received on no known channel) is not kept
            for grain, start in starts:
                by_agency.setdefault((grain, start, agency), Counter())[column] += n
    return ([{"grain": grain, "day": day, "bucket": bucket, "agency_code": agency, "field_code": field,
              "channel": channel, "n": n}
             for (grain, day, bucket, agency, field, channel), n in sorted(fine.items()) if n],
            [{"grain": grain, "day": day, "agency_code": agency, **{c: counts[c] for c in AGENCY_COLUMNS}}
             for (grain, day, agency), counts in sorted(by_agency.items()) if any(counts.values())])


def load(connection: Connection, delta: Counter, by_field: bool = True) -> None:
    """`apply` for bulk loads (the seeder): on PostgreSQL the rows are COPYed into temporary tables and
    added in one INSERT … SELECT … ON CONFLICT per table, instead of an upsert per row. Without
    `by_field`, `report_counts` is left out (a benchmark of the by-agency report only: that table's rows
    are most of a big seeding's time)."""
    if connection.dialect.name != "postgresql":
        apply(connection, delta)
        return
    fine, by_agency = rows(delta)
    if not by_field:
        fine = []
    cursor = connection.connection.driver_connection.cursor()
    with cursor:
        for table, found, keys, columns in (
                (T, fine, COUNT_KEYS, ("n",)), (A, by_agency, AGENCY_KEYS, AGENCY_COLUMNS)):
            if not found:
                continue
            names = (*keys, *columns)
            cursor.execute(f"CREATE TEMP TABLE {table.name}_load (LIKE {table.name}) ON COMMIT DROP")
            with cursor.copy(f"COPY {table.name}_load ({', '.join(names)}) FROM STDIN") as copy:
                for row in found:
                    copy.write_row([row[name] for name in names])
            added = ", ".join(f"{name} = {table.name}.{name} + excluded.{name}" for name in columns)
            cursor.execute(f"INSERT INTO {table.name} ({', '.join(names)}) SELECT {', '.join(names)} "
                           f"FROM {table.name}_load ORDER BY {', '.join(keys)} "
                           f"ON CONFLICT ({', '.join(keys)}) DO UPDATE SET {added}")
            cursor.execute(f"DROP TABLE {table.name}_load")


@cache
def _add_counts(dialect: str, many: bool):
    """The counters' upsert, built once per database kind (building one costs more than running it)."""
    statement = insert_rows(T, dialect, (*COUNT_KEYS, "n"), order_by=COUNT_KEYS, many=many)
    return statement.on_conflict_do_update(index_elements=[T.c[key] for key in COUNT_KEYS],
                                           set_={"n": T.c.n + statement.excluded.n})


@cache
def _add_agency_counts(dialect: str, many: bool):
    """The by-agency counters' upsert: every column adds."""
    statement = insert_rows(A, dialect, (*AGENCY_KEYS, *AGENCY_COLUMNS), order_by=AGENCY_KEYS, many=many)
    return statement.on_conflict_do_update(
        index_elements=[A.c[key] for key in AGENCY_KEYS],
        set_={column: A.c[column] + statement.excluded[column] for column in AGENCY_COLUMNS})


def clear(session: Session) -> None:
    session.execute(delete(ReportCount))
    session.execute(delete(ReportAgencyCount))


@dataclass(frozen=True)
class Figures:
    """The standard report, and from the same read the average processing days of the dossiers resolved in
    the period per row key (None: over all of them)."""

    report: dict
    average_days: dict[str | None, float]
    overall_days: float | None


def report(session: Session, date_from: date, date_to: date, zone: ZoneInfo, agency_names: dict[str, str],
           now: datetime, agency: str | None = None, by: str = "agency",
           parents: dict[str, str | None] | None = None) -> dict:
    """`timeliness.report` from the counters: the same figures, reading rows per day instead of dossiers."""
    return figures(session, date_from, date_to, zone, agency_names, now, agency, by, parents).report


def figures(session: Session, date_from: date, date_to: date, zone: ZoneInfo, agency_names: dict[str, str],
            now: datetime, agency: str | None = None, by: str = "agency",
            parents: dict[str, str | None] | None = None) -> Figures:
    """The report and the average processing days, in one read of the counters."""
    check_query(agency, by, agency_names)
    period = Period.of(date_from, date_to, zone, now)
    start, end = period.date_from, period.end.astimezone(zone).date()
    as_of_day = period.as_of_day.astimezone(zone).date()
    points = (start, as_of_day, end)
    subtree = None if agency is None else AgencyTree(parents or {}).subtree(agency)
    reader = _agency_sums if by == "agency" else _field_sums
    sums = reader(session, points, subtree)
    current = period.as_of < period.end  # the period is not over: overdue is judged now, on today's date
    found, resolved = {}, {}
    for code in sorted(sums, key=lambda value: value or ""):
        before = sums[code]
        counts = cells(before, current)
        if any(counts[name] for name in BASE_CELLS):  # as the GROUP BY: only rows with counted dossiers
            found[None if code == "" else code] = counts
        resolved[None if code == "" else code] = (sum(counts[f"resolved.{kind}"] for kind in KINDS),
                                                  before[2][SECONDS] - before[0][SECONDS])
    return Figures(assemble(found, period, zone, agency_names, agency=agency, by=by, parents=parents),
                   {code: _days(*pair) for code, pair in resolved.items() if pair[0]},
                   _days(sum(n for n, _ in resolved.values()), sum(s for _, s in resolved.values())))


def _days(resolved: int, seconds: int) -> float | None:
    """Average days from reception to result, as the leaders read it (2 decimals)."""
    return round(seconds / resolved / 86400, 2) if resolved else None


def daily(session: Session, date_from: date, date_to: date, agency: str | None = None,
          parents: dict[str, str | None] | None = None) -> dict[date, dict[str, dict[str, int]]]:
    """Per local day of the period that counted any: received per channel and resolved per timeliness."""
    resolved = {f"resolved.{kind}": kind for kind in KINDS}
    query = (select(T.c.day, T.c.bucket, T.c.channel, func.sum(T.c.n).label("n"))
             .where(T.c.grain == "day", T.c.day >= date_from, T.c.day <= date_to,
                    T.c.bucket.in_(("received", *resolved)))
             .group_by(T.c.day, T.c.bucket, T.c.channel))
    if agency is not None:
        query = query.where(T.c.agency_code.in_(AgencyTree(parents or {}).subtree(agency)))
    days: dict[date, dict[str, dict[str, int]]] = {}
    for row in session.execute(query):
        group, kind = ("received", row.channel) if row.bucket == "received" else ("resolved", resolved[row.bucket])
        kinds = days.setdefault(row.day, {"received": {}, "resolved": {}})[group]
        kinds[kind] = kinds.get(kind, 0) + int(row.n)
    return days


def _field_sums(session: Session, points: tuple[date, ...], subtree) -> dict[str, tuple[tuple[int, ...], ...]]:
    """Per field, its buckets' counts before each of `points` (`Before`), from `report_counts`."""
    before = [_before(T, day, ("month", "day")) for day in points]
    query = (select(T.c.field_code.label("key"), T.c.bucket, T.c.channel,
                    *(func.sum(case((condition, T.c.n), else_=0)).label(f"p{i}") for i, condition in enumerate(before)))
             .where(or_(*before)).group_by(T.c.field_code, T.c.bucket, T.c.channel))
    if subtree is not None:
        query = query.where(T.c.agency_code.in_(subtree))
    sums: dict[str, list[list[int]]] = {}
    for row in session.execute(query):  # the channel matters for what was received only
        column = BUCKET_INDEX.get(f"received.{row.channel}" if row.bucket == "received" else row.bucket)
        if column is None:  # a bucket the report does not read (received on no known channel)
            continue
        found = sums.setdefault(row.key, [[0] * len(AGENCY_BUCKETS) for _ in points])
        for at, count in zip(found, (row.p0, row.p1, row.p2)):
            at[column] += int(count)
    return {key: tuple(map(tuple, found)) for key, found in sums.items()}


def _agency_sums(session: Session, points: tuple[date, ...], subtree) -> dict[str, tuple[tuple[int, ...], ...]]:
    """Per agency, its buckets' counts before each of `points` (`Before`), from `report_agency_counts`:
    one statement (`_AGENCY_SUMS`, made once), each point reading at most about twenty rows per agency."""
    distinct = sorted(set(points))
    parameters = {f"{name}{index}": value for index, day in enumerate(distinct)
                  for name, value in _signed_ranges(day).items()}
    with _without_parallel_workers(session):
        rows = session.execute(_AGENCY_SUMS[len(distinct)], parameters).all()  # fetched at once
    at = {(row[0], row[1]): row[2:] for row in rows}  # by position: 23 columns
    none = (0,) * len(AGENCY_COLUMNS)
    which = [distinct.index(day) for day in points]
    # a subtree's agencies picked here, not by an IN of up to a thousand codes: every agency costs a
    # few rows anyway, and the list made PostgreSQL's plan three times slower than the whole province
    return {key: tuple(at.get((key, index), none) for index in which)
            for key in {key for key, _ in at if subtree is None or key in subtree}}


def _signed_ranges(day: date) -> dict[str, date]:
    """The rows of `report_agency_counts` whose counts, added or subtracted, make those before `day`, as
    half-open ranges [lo, hi) of `day` per grain (an empty range: lo = hi). Within `day`'s year, the
    months before its month, or the whole year less the months from its month on, whichever reads
    fewer rows; within its month likewise the days before it, or the month less the days from it on:
    December 31st reads the years up to its own and subtracts its day, two rows where summing the
    parts would read forty.

    Added: years before `year_hi`, months in [month_lo, month_hi), days in [day_lo, day_hi); subtracted:
    months in [less_month_lo, less_month_hi), days in [less_day_lo, less_day_hi)."""
    one = timedelta(days=1)
    year, month = day.replace(month=1, day=1), day.replace(day=1)
    next_year = year.replace(year=year.year + 1)
    next_month = (month + timedelta(days=31)).replace(day=1)
    months_less = 12 - month.month + 1 < month.month - 1  # the year less its months from `month` on
    days_less = (next_month - day).days < day.day - 1  # the month less its days from `day` on
    # `month` itself is counted by its days when they are subtracted from it
    month_end = month + one if days_less else month
    return {
        "year_hi": year + one if months_less else year,
        "month_lo": month if months_less else year, "month_hi": month if months_less else month_end,
        "less_month_lo": month_end if months_less else month, "less_month_hi": next_year if months_less else month,
        "day_lo": day if days_less else month, "day_hi": day,
        "less_day_lo": day, "less_day_hi": next_month if days_less else day,
    }


def _agency_sums_statement(points: int):
    """The by-agency read of `points` distinct days (`_signed_ranges`' parameters suffixed by the point's
    index): per agency and point, each column's signed sum. Written once as text: built by the
    expression language each time it cost more than PostgreSQL's work, and its text, a quarter of the
    length, stays in psycopg's cache of parsed statements."""
    def part(i: int) -> str:
        month = f"day >= :month_lo{i} AND day < :month_hi{i}"
        days = f"day >= :day_lo{i} AND day < :day_hi{i}"
        return (f"SELECT {i} AS point, CASE WHEN grain = 'year' OR (grain = 'month' AND {month}) "
                f"OR (grain = 'day' AND {days}) THEN 1 ELSE -1 END AS sign, * FROM {A.name} "
                f"WHERE (grain = 'year' AND day < :year_hi{i}) "
                f"OR (grain = 'month' AND ({month} OR (day >= :less_month_lo{i} AND day < :less_month_hi{i}))) "
                f"OR (grain = 'day' AND ({days} OR (day >= :less_day_lo{i} AND day < :less_day_hi{i})))")
    sums = ", ".join(f"CAST(SUM(sign * {column}) AS BIGINT)" for column in AGENCY_COLUMNS)  # integers, not Decimals
    parts = " UNION ALL ".join(part(i) for i in range(points))
    return text(f"SELECT agency_code, point, {sums} FROM ({parts}) AS signed GROUP BY agency_code, point")


_AGENCY_SUMS = {points: _agency_sums_statement(points) for points in (1, 2, 3)}


@contextmanager
def _without_parallel_workers(session: Session):
    """PostgreSQL runs the statements inside without parallel workers, then as before (in this
    transaction only). The by-agency read is a few thousand rows by design: a worker's start (≈ 10 ms
    measured) costs more than it saves, and PostgreSQL's estimate of the grains' rows (a hundred times
    too many) starts one."""
    if session.get_bind().dialect.name != "postgresql":
        yield
        return
    setting = "max_parallel_workers_per_gather"
    before = session.execute(text(f"SELECT current_setting('{setting}'), set_config('{setting}', '0', true)")).scalar()
    try:
        yield
    finally:
        session.execute(text(f"SELECT set_config('{setting}', :before, true)"), {"before": before})


def _before(table, day: date, grains: tuple[str, ...]):
    """The rows of `table` whose counts happened before `day`: whole periods of its coarsest grain before
    the one holding `day`, then in each finer grain those before `day` inside the next coarser one."""
    starts = {"year": day.replace(month=1, day=1), "month": day.replace(day=1), "day": day}
    conditions, outer = [], None
    for grain in grains:
        inside = table.c.day < starts[grain] if outer is None else and_(table.c.day >= outer, table.c.day < starts[grain])
        conditions.append(and_(table.c.grain == grain, inside))
        outer = starts[grain]
    return or_(*conditions)


def cells(before: Before, current: bool) -> dict[str, int]:
    """The report's base cells of one row from its buckets' counts before the period's start, before
    as_of's day and before its end (`Before`)."""
    start, as_of, end = before
    b = BUCKET_INDEX

    def stock(name: str, at: tuple[int, ...], cls: str | None = None) -> int:
        """Dossiers in the state `name` (of one class, or of every class) at the vector's point."""
        if cls is None:
            return sum(stock(name, at, each) for each in CLASSES)
        return at[b[f"{name}.in.{cls}"]] - at[b[f"{name}.out.{cls}"]]

    running = stock("open", end, "normal") - stock("supp", end, "normal")
    if current:
        overdue = as_of[b["now.open_due"]] - as_of[b["now.supp_due"]]
    else:
        overdue = ((end[b["open_due.in"]] - end[b["open_due.out"]]) - (end[b["supp_due.in"]] - end[b["supp_due.out"]]))
    counts = {cell: end[column] - start[column] for cell, column in FLOW_CELLS}
    counts.update({
        "received.carried_over": stock("open", start),
        "paused.supplement": stock("supp", end),
        "paused.awaiting_payment": stock("open", end, "awaiting_payment"),
        "in_progress.within_deadline": running - overdue,
        "in_progress.overdue": overdue,
    })
    return counts
