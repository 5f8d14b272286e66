"""Leaders' figures: today / this month / this year per agency, a per-day series for charts, and the
public statistics per agency ("Sở Y tế: 594 received, 443 resolved, 430 early = 97.07 %").

The counts come from the standard report (timeliness.report), so a leader's figure and the report's
agree and each has its drill-down list; average processing times and the slowest procedures are
averages over the dossiers resolved in the period (received → result ready, calendar time).
"""
from __future__ import annotations

from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import and_, case, func, select
from sqlalchemy.orm import Session

from services.reporting import timeliness
from services.reporting.models import DossierFact as F

SLOWEST = 5


def periods(today: date) -> dict[str, tuple[date, date]]:
    return {"today": (today, today), "month": (today.replace(day=1), today),
            "year": (today.replace(month=1, day=1), today)}


def dashboard(session: Session, zone: ZoneInfo, agency_names: dict[str, str], parents: dict[str, str | None],
              now: datetime, agency: str | None = None) -> dict:
    today = now.astimezone(zone).date()
    result = {"as_of": None, "periods": {}}
    for name, (first, last) in periods(today).items():
        report = timeliness.report(session, first, last, zone, agency_names, now, agency=agency, parents=parents)
        result["as_of"] = report["as_of"]
        window = timeliness.Period.of(first, last, zone, now)
        average = _average_days(session, window, F.agency_code, agency, parents)
        agencies = [_figures(row, average.get(row["agency_code"])) | {"agency_code": row["agency_code"],
                                                                       "agency_name": row["agency_name"]}
                    for row in report["rows"]]
        result["periods"][name] = {
            "from": first.isoformat(), "to": last.isoformat(),
            "totals": _figures(report["totals"], _overall_days(session, window, agency, parents)),
            "agencies": agencies,
            "ranked_by_on_time": sorted((a for a in agencies if a["resolved"]["total"]),
                                        key=lambda a: (-a["on_time_rate"], a["agency_code"])),
            "slowest_procedures": _slowest(session, window, agency, parents),
        }
    return result


def _figures(row: dict, average_days: float | None) -> dict:
    resolved = row["resolved"]
    return {
        "received": row["received"]["online"] + row["received"]["counter_postal"],
        "resolved": {key: resolved[key] for key in ("total", "early", "on_time", "late")},
        "in_progress": row["in_progress"]["total"] + row["paused"]["total"],
        "overdue_now": row["in_progress"]["overdue"],
        "online_share_pct": row["received"]["online_pct"],
        # on time in the law's sense: early or on the due date
        "on_time_rate": round(100 * (resolved["early"] + resolved["on_time"]) / resolved["total"], 2)
        if resolved["total"] else 0.0,
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
        condition = and_(condition, F.agency_code.in_(timeliness.subtree(agency, parents)))
    return condition


def _average_days(session, window, key, agency, parents) -> dict[str, float]:
    query = select(key, func.avg(_days(session))).where(_resolved_in(window, agency, parents)).group_by(key)
    return {code: round(float(days), 2) for code, days in session.execute(query)}


def _overall_days(session, window, agency, parents) -> float | None:
    days = session.scalar(select(func.avg(_days(session))).where(_resolved_in(window, agency, parents)))
    return round(float(days), 2) if days is not None else None


def _slowest(session, window, agency, parents) -> list[dict]:
    days = func.avg(_days(session))
    query = (select(F.procedure_code, func.max(F.procedure_name), func.count(), days,
                    func.sum(case((F.timeliness == "late", 1), else_=0)))
             .where(_resolved_in(window, agency, parents)).group_by(F.procedure_code)
             .order_by(days.desc(), F.procedure_code).limit(SLOWEST))
    return [{"procedure_code": code, "procedure_name": name, "resolved": count,
             "average_processing_days": round(float(avg), 2), "late": int(late or 0)}
            for code, name, count, avg, late in session.execute(query)]


def series(session: Session, date_from: date, date_to: date, zone: ZoneInfo, now: datetime,
           agency: str | None = None, parents: dict | None = None) -> dict:
    """Per local day: dossiers received (online / counter / postal) and resolved (early / on time /
    late). Days are cut at local midnight in Python from each instant, so either database works."""
    start = datetime.combine(date_from, time.min, tzinfo=zone)
    end = datetime.combine(date_to + timedelta(days=1), time.min, tzinfo=zone)
    days = {(date_from + timedelta(days=n)).isoformat(): {
        "received": {"online": 0, "counter": 0, "postal": 0}, "resolved": {"early": 0, "on_time": 0, "late": 0}}
        for n in range((date_to - date_from).days + 1)}
    scope = F.agency_code.in_(timeliness.subtree(agency, parents or {})) if agency else True
    for column, kind, group in ((F.received_at, F.channel, "received"), (F.finished_at, F.timeliness, "resolved")):
        query = select(column, kind).where(column >= start, column < end, kind.is_not(None), scope)
        for at, value in session.execute(query.execution_options(yield_per=10_000)):
            days[at.astimezone(zone).date().isoformat()][group][value] += 1
    return {"from": date_from.isoformat(), "to": date_to.isoformat(),
            "days": [{"date": day, **figures} for day, figures in days.items()]}


def public_statistics(session: Session, date_from: date, date_to: date, zone: ZoneInfo,
                      agency_names: dict[str, str], parents: dict, now: datetime) -> dict:
    """Per agency (rolled up the tree), what anyone may see: counts and shares, no dossier at all."""
    report = timeliness.report(session, date_from, date_to, zone, agency_names, now, parents=parents)
    return {"from": report["from"], "to": report["to"], "as_of": report["as_of"], "agencies": [
        {"agency_code": row["agency_code"], "agency_name": row["agency_name"], "parent_code": row["parent_code"],
         "received": row["received"]["total"], "resolved": row["resolved"]["total"],
         "early": row["resolved"]["early"], "on_time": row["resolved"]["on_time"], "late": row["resolved"]["late"],
         "early_pct": row["resolved"]["early_pct"], "on_time_pct": row["resolved"]["on_time_pct"],
         "late_pct": row["resolved"]["late_pct"], "in_progress": row["in_progress"]["total"],
         "overdue": row["in_progress"]["overdue"], "online_pct": row["received"]["online_pct"]}
        for row in report["rollup"]]}
