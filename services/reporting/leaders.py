"""Leaders' figures: today / this month / this year per agency, a per-day series for charts, and the
public statistics per agency ("Sở Y tế: 594 received, 443 resolved, 430 early = 97.07 %").

One read path per figure: the counts, the average processing times (received → result ready, calendar
time, over the dossiers resolved in the period) and the per-day series come from the standard report's
pre-aggregated counters (aggregates.py), so a leader's figure, the public one and the official report's
are the same number, each with its drill-down list. Only the slowest procedures are read from the
dossiers' rows (the counters have no procedure: it would multiply their rows for one list of five).
"""
from __future__ import annotations

from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import and_, case, func, select
from sqlalchemy.orm import Session

from motcua.access import AgencyTree
from services.reporting import aggregates, timeliness
from services.reporting.models import DossierFact as F

SLOWEST = 5


def periods(today: date) -> dict[str, tuple[date, date]]:
    return {"today": (today, today), "month": (today.replace(day=1), today),
            "year": (today.replace(month=1, day=1), today)}


def dashboard(session: Session, zone: ZoneInfo, agency_names: dict[str, str], parents: dict[str, str | None],
              now: datetime, agency: str | None = None) -> dict:
    """Today / this month / this year (any other period: `period`)."""
    today = now.astimezone(zone).date()
    result = {"as_of": None, "periods": {}}
    for name, (first, last) in periods(today).items():
        block = period(session, first, last, zone, agency_names, parents, now, agency=agency)
        result["as_of"] = block.pop("as_of")
        result["periods"][name] = block
    return result


def period(session: Session, first: date, last: date, zone: ZoneInfo, agency_names: dict[str, str],
           parents: dict[str, str | None], now: datetime, agency: str | None = None, by: str = "agency") -> dict:
    """One period's figures (any from/to a leader picks), a row per agency or per field (lĩnh vực); each
    row's `key` is what the drill-down and the report take with the same `by`."""
    figures = aggregates.figures(session, first, last, zone, agency_names, now, agency=agency, by=by, parents=parents)
    report = figures.report
    rows = [_figures(row, figures.average_days.get(row[f"{by}_code"]))
            | {"key": row[f"{by}_code"], "agency_code": row.get("agency_code"),
               "agency_name": row.get("agency_name") or row[f"{by}_code"]}
            for row in report["rows"]]
    return {
        "from": first.isoformat(), "to": last.isoformat(), "by": by, "as_of": report["as_of"],
        "totals": _figures(report["totals"], figures.overall_days),
        "agencies": rows,
        "ranked_by_on_time": sorted((a for a in rows if a["resolved"]["total"]),
                                    key=lambda a: (-a["on_time_rate"], a["key"] or "")),
        "slowest_procedures": _slowest(session, timeliness.Period.of(first, last, zone, now), agency, parents),
    }


def _figures(row: dict, average_days: float | None) -> dict:
    resolved = row["resolved"]
    return {
        "received": row["received"]["online"] + row["received"]["counter_postal"],
        "resolved": {key: resolved[key] for key in ("total", "early", "on_time", "late")},
        "in_progress": row["in_progress"]["total"] + row["paused"]["total"],
        "overdue_now": row["in_progress"]["overdue"],
        "online_share_pct": row["received"]["online_pct"],
        # on time in the law's sense: early or on the due date
        "on_time_rate": timeliness.percent(resolved["early"] + resolved["on_time"], resolved["total"]),
        "average_processing_days": average_days,
    }


def _days(session: Session):
    """Days from reception to result, as SQL on either database."""
    if session.get_bind().dialect.name == "postgresql":
        return func.extract("epoch", F.finished_at - F.received_at) / 86400.0
    return func.julianday(F.finished_at) - func.julianday(F.received_at)


def _resolved_in(window: timeliness.Period, agency: str | None, parents: dict):
    condition = and_(F.finished_at >= window.start, F.finished_at < window.end, F.received_at.is_not(None))
    if agency is not None:
        condition = and_(condition, F.agency_code.in_(AgencyTree(parents).subtree(agency)))
    return condition


def _slowest(session, window, agency, parents) -> list[dict]:
    days = func.avg(_days(session))
    query = (select(F.procedure_code, func.max(F.procedure_name), func.count(), days,
                    func.sum(case((F.timeliness == "late", 1), else_=0)))
             .where(_resolved_in(window, agency, parents)).group_by(F.procedure_code)
             .order_by(days.desc(), F.procedure_code).limit(SLOWEST))
    return [{"procedure_code": code, "procedure_name": name, "resolved": count,
             "average_processing_days": round(float(avg), 2), "late": int(late or 0)}
            for code, name, count, avg, late in session.execute(query)]


def series(session: Session, date_from: date, date_to: date, agency: str | None = None,
           parents: dict | None = None) -> dict:
    """Per local day: dossiers received (online / counter / postal) and resolved (early / on time /
    late), from the counters' days (cut at the province's local midnight)."""
    counted = aggregates.daily(session, date_from, date_to, agency=agency, parents=parents)
    days = []
    for n in range((date_to - date_from).days + 1):
        day = date_from + timedelta(days=n)
        found = counted.get(day, {"received": {}, "resolved": {}})
        days.append({"date": day.isoformat(),
                     "received": {channel: found["received"].get(channel, 0) for channel in ("online", "counter", "postal")},
                     "resolved": {kind: found["resolved"].get(kind, 0) for kind in aggregates.KINDS}})
    return {"from": date_from.isoformat(), "to": date_to.isoformat(), "days": days}


def public_statistics(session: Session, date_from: date, date_to: date, zone: ZoneInfo,
                      agency_names: dict[str, str], parents: dict, now: datetime) -> dict:
    """Per agency (rolled up the tree), what anyone may see: counts and shares, no dossier at all."""
    report = aggregates.report(session, date_from, date_to, zone, agency_names, now, parents=parents)
    return {"from": report["from"], "to": report["to"], "as_of": report["as_of"], "agencies": [
        {"agency_code": row["agency_code"], "agency_name": row["agency_name"], "parent_code": row["parent_code"],
         "received": row["received"]["total"], "resolved": row["resolved"]["total"],
         "early": row["resolved"]["early"], "on_time": row["resolved"]["on_time"], "late": row["resolved"]["late"],
         "early_pct": row["resolved"]["early_pct"], "on_time_pct": row["resolved"]["on_time_pct"],
         "late_pct": row["resolved"]["late_pct"], "in_progress": row["in_progress"]["total"],
         "overdue": row["in_progress"]["overdue"], "online_pct": row["received"]["online_pct"]}
        for row in report["rollup"]]}
