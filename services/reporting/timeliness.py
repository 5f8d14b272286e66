"""The standard report (form II.06a/VPCP/KSTT, "Tình hình, kết quả giải quyết TTHC"), one row per
receiving agency or per field (lĩnh vực), with the agency-tree roll-up, and the drill-down behind
every figure.

Only received dossiers count. For a period [from, to] of local dates (province time zone):
  received    = online + counter + postal (received in the period) + carried_over (received before
                it, not closed before it)
  resolved    = result ready in the period: early / on_time / late, by local dates
  withdrawn   = withdrawn by the applicant in the period (rút hồ sơ)
  stopped     = stopped in the period (dừng xử lý, status 8): closed then, as a withdrawn one is, so
                never in progress nor carried over afterwards
  paused      = open at the end of the period and paused then: awaiting a supplement (asked before
                the end, not supplied by then; the latest supplement of a dossier is the one known),
                awaiting payment (on the dossier's current status)
  in_progress = the other dossiers open at the end of `to`: overdue if its due date (local) is before
                the local date of `as_of` (now, or the end of `to` for a past period), else
                within_deadline; by dates like timeliness: due today and still open is not overdue
so received.total == resolved.total + withdrawn + stopped + paused.total + in_progress.total on every row.

Every figure is the count of one CELL, a condition on a dossier's row; the drill-down lists the rows
that meet the same condition, so a figure always equals the length of its list.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import and_, case, func, or_, select
from sqlalchemy.orm import Session

from motcua.access import AgencyTree
from motcua.calendar import local_iso, overdue_before
from motcua.contracts.rpc import REPORT_BASE_CELLS, REPORT_CELLS, REPORT_GROUPINGS, REPORT_SUM_CELLS
from motcua.errors import ValidationFailed
from services.reporting.models import DossierFact as F

BASE_CELLS, SUM_CELLS, CELLS = REPORT_BASE_CELLS, REPORT_SUM_CELLS, REPORT_CELLS
GROUPINGS = dict(zip(REPORT_GROUPINGS, (F.agency_code, F.field_code), strict=True))
PAUSED = {"paused.awaiting_payment": "awaiting_payment"}
DRILL_LIMIT = 10_000


@dataclass(frozen=True)
class Period:
    date_from: date
    date_to: date
    start: datetime
    end: datetime
    as_of: datetime
    as_of_day: datetime

    @classmethod
    def of(cls, date_from: date, date_to: date, zone: ZoneInfo, now: datetime) -> "Period":
        start = datetime.combine(date_from, time.min, tzinfo=zone)
        end = datetime.combine(date_to + timedelta(days=1), time.min, tzinfo=zone)
        as_of = min(now, end)
        # Overdue is judged on local dates: due on an earlier day than as_of's. The day's boundary is
        # computed here, so the SQL stays a plain instant comparison (SQLite and PostgreSQL alike).
        as_of_day = overdue_before(as_of, zone)
        return cls(date_from, date_to, start, end, as_of, as_of_day)

    def counted(self):
        """Received by the end of the period and not closed before it."""
        return and_(F.received_at < self.end, or_(F.closed_at.is_(None), F.closed_at >= self.start))

    def cells(self) -> dict:
        new = F.received_at >= self.start
        open_at_end = or_(F.closed_at.is_(None), F.closed_at >= self.end)
        paused = {name: and_(open_at_end, F.status == status) for name, status in PAUSED.items()}
        # a supplement is known with its dates: asked before the end, not supplied (or withdrawn) by then
        # (IS NOT NULL first: a NULL inside the NOT below would make `running` unknown, not true)
        paused["paused.supplement"] = and_(open_at_end, F.paused_at.is_not(None), F.paused_at < self.end,
                                           or_(F.pause_ended_at.is_(None), F.pause_ended_at >= self.end))
        running = and_(open_at_end, ~or_(*paused.values()))
        base = {
            "received.online": and_(new, F.channel == "online"),
            "received.counter": and_(new, F.channel == "counter"),
            "received.postal": and_(new, F.channel == "postal"),
            "received.carried_over": F.received_at < self.start,
            **{f"resolved.{kind}": and_(F.finished_at < self.end, F.timeliness == kind)
               for kind in ("early", "on_time", "late")},
            "withdrawn": and_(F.withdrawn_at < self.end, F.finished_at.is_(None)),
            "stopped": and_(F.status == "stopped", F.closed_at < self.end),
            **paused,
            "in_progress.within_deadline": and_(running, or_(F.due_at.is_(None), F.due_at >= self.as_of_day)),
            "in_progress.overdue": and_(running, F.due_at < self.as_of_day),
        }
        return {**base, **{name: or_(*(base[part] for part in parts)) for name, parts in SUM_CELLS.items()}}


def report(session: Session, date_from: date, date_to: date, zone: ZoneInfo, agency_names: dict[str, str],
           now: datetime, agency: str | None = None, by: str = "agency",
           parents: dict[str, str | None] | None = None) -> dict:
    """The report's rows (one per agency or field with dossiers), the agency-tree roll-up and totals.
    `agency` limits it to that agency and the agencies under it (`parents`: code → parent code)."""
    check_query(agency, by, agency_names)
    period = Period.of(date_from, date_to, zone, now)
    cells = period.cells()
    key = GROUPINGS[by]
    query = (select(key.label("key"), *(func.sum(case((cells[name], 1), else_=0)).label(name)
                                        for name in BASE_CELLS))
             .where(period.counted()).group_by(key).order_by(key))
    if agency is not None:
        query = query.where(F.agency_code.in_(AgencyTree(parents or {}).subtree(agency)))
    found = {row.key: {name: int(row._mapping[name] or 0) for name in BASE_CELLS} for row in session.execute(query)}
    return assemble(found, period, zone, agency_names, agency=agency, by=by, parents=parents)


def assemble(found: dict[str | None, dict[str, int]], period: Period, zone: ZoneInfo, agency_names: dict[str, str],
             agency: str | None = None, by: str = "agency", parents: dict[str, str | None] | None = None) -> dict:
    """The report from the counts of every base cell per row key (`found`, sorted by key)."""
    date_from, date_to = period.date_from, period.date_to
    if by == "agency" and agency is not None and agency not in found:
        found[agency] = dict.fromkeys(BASE_CELLS, 0)  # an agency asked for by name always gets its row
        found = dict(sorted(found.items(), key=lambda item: item[0] or ""))
    columns = zip(*([counts[name] for name in BASE_CELLS] for counts in found.values()))
    totals = dict(zip(BASE_CELLS, map(sum, columns))) if found else dict.fromkeys(BASE_CELLS, 0)
    result = {
        "from": date_from.isoformat(),
        "to": date_to.isoformat(),
        "as_of": local_iso(period.as_of, zone),
        "by": by,
        "rows": [{f"{by}_code": code, **({"agency_name": agency_names.get(code)} if by == "agency" else {}),
                  **_shape(counts)} for code, counts in found.items()],
        "totals": _shape(totals),
    }
    if by == "agency":
        result["rollup"] = _rollup(found, agency_names, parents or {}, agency)
    return result


def drill_down(session: Session, date_from: date, date_to: date, zone: ZoneInfo, agency_names: dict[str, str],
               now: datetime, cell: str, by: str = "agency", key: str | None = None, rollup: bool = False,
               agency: str | None = None, parents: dict[str, str | None] | None = None,
               scope: set[str] | None = None) -> dict:
    """The dossiers behind one figure: `cell` (e.g. "resolved.late") of the row `key` (an agency or
    field code; None: the totals), of the roll-up row when `rollup` (the agency and those under it).
    `scope`: the receiving agencies whose dossiers the caller may see (None: every one). A figure is a
    count anyone on staff may read; the codes behind it are dossiers, listed only within the scope."""
    check_query(agency, by, agency_names)
    if cell not in CELLS:
        raise ValidationFailed(f"unknown figure; one of {', '.join(CELLS)}", field="cell")
    period = Period.of(date_from, date_to, zone, now)
    query = select(F).where(period.counted(), period.cells()[cell]).order_by(F.received_at, F.code)
    if agency is not None:
        query = query.where(F.agency_code.in_(AgencyTree(parents or {}).subtree(agency)))
    if scope is not None:
        query = query.where(F.agency_code.in_(sorted(scope)))
    if key is not None:
        if rollup and by == "agency":
            query = query.where(F.agency_code.in_(AgencyTree(parents or {}).subtree(key)))
        else:
            query = query.where(GROUPINGS[by] == key)
    total = session.scalar(select(func.count()).select_from(query.order_by(None).subquery()))
    rows = session.scalars(query.limit(DRILL_LIMIT))
    return {"cell": cell, "by": by, "key": key, "rollup": rollup, "count": total, "truncated": total > DRILL_LIMIT,
            "dossiers": [_listed(fact, zone) for fact in rows]}


def _listed(fact: F, zone: ZoneInfo) -> dict:
    """One line of a drill-down list: what identifies the dossier and its dates, nothing personal."""
    return {"code": fact.code, "agency_code": fact.agency_code, "field_code": fact.field_code,
            "procedure_code": fact.procedure_code, "channel": fact.channel, "status_code": fact.status_code,
            "received_at": local_iso(fact.received_at, zone), "due_at": local_iso(fact.due_at, zone),
            "finished_at": local_iso(fact.finished_at, zone), "timeliness": fact.timeliness,
            "overdue_noticed_at": local_iso(fact.overdue_noticed_at, zone)}


def check_query(agency: str | None, by: str, agency_names: dict[str, str]) -> None:
    if agency is not None and agency not in agency_names:
        raise ValidationFailed("unknown agency", field="agency")
    if by not in GROUPINGS:
        raise ValidationFailed(f"one of {', '.join(GROUPINGS)}", field="by")


def _rollup(found: dict[str, dict], agency_names: dict[str, str], parents: dict[str, str | None],
            top: str | None) -> list[dict]:
    """Each agency's own figures plus those of every agency under it, for every agency of the tree
    (from the root, or from `top`) that has dossiers in its subtree; depth-first, parents first."""
    rolled: dict[str, list[int]] = {}
    for code, counts in found.items():
        values = [counts[name] for name in BASE_CELLS]
        seen = set()
        node = code
        while node is not None and node not in seen:  # a cycle in the data must not hang the report
            seen.add(node)
            total = rolled.get(node)
            rolled[node] = values if total is None else [a + b for a, b in zip(total, values)]
            node = None if node == top else parents.get(node)
    children: dict[str | None, list[str]] = {}
    for code in rolled:
        parent = parents.get(code) if code != top and parents.get(code) in rolled else None
        children.setdefault(parent, []).append(code)
    rows = []

    def walk(code: str, depth: int) -> None:
        rows.append({"agency_code": code, "agency_name": agency_names.get(code), "parent_code": parents.get(code),
                     "depth": depth, **_shape(dict(zip(BASE_CELLS, rolled[code])))})
        for child in sorted(children.get(code, ())):
            walk(child, depth + 1)

    for root in sorted(children.get(None, ())):
        walk(root, 0)
    return rows


def _shape(c: dict[str, int]) -> dict:
    online, counter, postal = c["received.online"], c["received.counter"], c["received.postal"]
    early, on_time, late = c["resolved.early"], c["resolved.on_time"], c["resolved.late"]
    within, overdue = c["in_progress.within_deadline"], c["in_progress.overdue"]
    new, resolved, in_progress = online + counter + postal, early + on_time + late, within + overdue
    # Percentages with 2 decimals, as the press quotes them ("1,032 early = 97.63 %").
    return {
        "received": {"total": new + c["received.carried_over"], "online": online, "counter_postal": counter + postal,
                     "counter": counter, "postal": postal, "carried_over": c["received.carried_over"],
                     "online_pct": percent(online, new), "postal_pct": percent(postal, new)},
        "resolved": {"total": resolved, "early": early, "on_time": on_time, "late": late,
                     "early_pct": percent(early, resolved), "on_time_pct": percent(on_time, resolved),
                     "late_pct": percent(late, resolved)},
        "withdrawn": c["withdrawn"],
        "stopped": c["stopped"],
        "paused": {"total": c["paused.supplement"] + c["paused.awaiting_payment"],
                   "supplement": c["paused.supplement"], "awaiting_payment": c["paused.awaiting_payment"]},
        "in_progress": {"total": in_progress, "within_deadline": within, "overdue": overdue,
                        "within_deadline_pct": percent(within, in_progress),
                        "overdue_pct": percent(overdue, in_progress)},
    }


def percent(part: int, total: int) -> float:
    """100 × part / total rounded half up to 2 decimals, as officials and spreadsheets round (ROUND in
    Excel): 1/32 = 3.125 % → 3.13, where Python's round() gives 3.12 (binary float, half to even).
    Exact: floor(10,000 × part / total + 1/2) in integers, so no binary approximation decides the half
    (and a report of 1,000 agencies does not pay for Fractions). 0.0 when total is 0."""
    if not total:
        return 0.0
    return (20_000 * part + total) // (2 * total) / 100
