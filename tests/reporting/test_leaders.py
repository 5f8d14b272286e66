"""Leaders' figures, the per-day series and the public statistics, on hand-built dossiers."""
import random
from datetime import date

from services.reporting import aggregates, leaders, projections, timeliness
from tests.reporting.factory import (
    JUSTICE,
    LAND_OFFICE,
    VN,
    all_facts,
    lifecycle,
    memory_database,
    random_lives,
    vn,
)
from tests.reporting.test_standard_report import LAND_DEPT, NAMES, PARENTS, PROVINCE

NOW = vn(2026, 3, 20, 15)


def session_with(*lives):
    uow = memory_database()()
    for life in lives:
        for evt in life:
            projections.record(uow, [evt], VN)
    return uow.session


def dossiers():
    return session_with(
        # this morning, online, still open
        lifecycle("A-1", submitted=vn(2026, 3, 20, 8), received=vn(2026, 3, 20, 9), due=vn(2026, 3, 25, 17)),
        # this month, counter, resolved early after 2 days
        lifecycle("A-2", submitted=vn(2026, 3, 2, 8), received=vn(2026, 3, 2, 9), due=vn(2026, 3, 6, 17),
                  finished=vn(2026, 3, 4, 9), channel="counter"),
        # this month, online, resolved late after 10 days
        lifecycle("A-3", submitted=vn(2026, 3, 3, 8), received=vn(2026, 3, 3, 9), due=vn(2026, 3, 5, 17),
                  finished=vn(2026, 3, 13, 9)),
        # January, land office, overdue now
        lifecycle("B-1", submitted=vn(2026, 1, 10, 8), received=vn(2026, 1, 10, 9), due=vn(2026, 1, 20, 17),
                  agency=LAND_OFFICE),
        # January, land office, on time after 4 days
        lifecycle("B-2", submitted=vn(2026, 1, 12, 8), received=vn(2026, 1, 12, 9), due=vn(2026, 1, 16, 17),
                  finished=vn(2026, 1, 16, 9), agency=LAND_OFFICE, channel="postal"))


def test_today_month_and_year():
    board = leaders.dashboard(dossiers(), VN, NAMES, PARENTS, NOW)
    assert board["as_of"] == "2026-03-20T15:00:00+07:00"
    today, month, year = (board["periods"][p] for p in ("today", "month", "year"))
    assert (today["from"], month["from"], year["from"]) == ("2026-03-20", "2026-03-01", "2026-01-01")
    assert today["totals"]["received"] == 1 and today["totals"]["resolved"]["total"] == 0
    assert today["totals"]["average_processing_days"] is None
    assert month["totals"]["received"] == 3 and month["totals"]["resolved"] == {
        "total": 2, "early": 1, "on_time": 0, "late": 1}
    assert month["totals"]["online_share_pct"] == 66.67 and month["totals"]["average_processing_days"] == 6.0
    assert month["totals"]["in_progress"] == 2 and month["totals"]["overdue_now"] == 1  # A-1 and B-1 (carried)
    year_by = {a["agency_code"]: a for a in year["agencies"]}
    assert year_by[LAND_OFFICE]["on_time_rate"] == 100.0 and year_by[JUSTICE]["on_time_rate"] == 50.0
    assert year_by[LAND_OFFICE]["average_processing_days"] == 4.0
    assert [a["agency_code"] for a in year["ranked_by_on_time"]] == [LAND_OFFICE, JUSTICE]
    assert year["totals"]["overdue_now"] == 1 and year["totals"]["received"] == 5
    assert year["slowest_procedures"] == [{"procedure_code": "1.004873",
                                           "procedure_name": "Thủ tục cấp Giấy xác nhận tình trạng hôn nhân",
                                           "resolved": 3, "average_processing_days": 5.33, "late": 1}]
    only_land = leaders.dashboard(dossiers(), VN, NAMES, PARENTS, NOW, agency=LAND_DEPT)
    assert [a["agency_code"] for a in only_land["periods"]["year"]["agencies"]] == [LAND_DEPT, LAND_OFFICE]
    assert only_land["periods"]["year"]["totals"]["received"] == 2


def test_any_period_has_the_same_figures_as_the_quick_pick_of_that_window():
    year = leaders.dashboard(dossiers(), VN, NAMES, PARENTS, NOW)["periods"]["year"]
    chosen = leaders.period(dossiers(), date(2026, 1, 1), date(2026, 3, 20), VN, NAMES, PARENTS, NOW)
    assert chosen.pop("as_of") is not None
    assert chosen == year
    january = leaders.period(dossiers(), date(2026, 1, 1), date(2026, 1, 31), VN, NAMES, PARENTS, NOW)
    assert january["totals"]["received"] == 2  # B-1 and B-2


def test_the_daily_series_cuts_days_at_local_midnight():
    session = session_with(
        lifecycle("C-1", submitted=vn(2026, 3, 2, 0, 10), received=vn(2026, 3, 2, 0, 20), due=vn(2026, 3, 6, 17),
                  finished=vn(2026, 3, 3, 23, 50)),  # 2 March 00:20 local is 1 March in UTC
        lifecycle("C-2", submitted=vn(2026, 3, 2, 8), received=vn(2026, 3, 2, 9), due=vn(2026, 3, 3, 17),
                  finished=vn(2026, 3, 4, 9), channel="postal"))
    series = leaders.series(session, date(2026, 3, 1), date(2026, 3, 4))
    days = {d["date"]: d for d in series["days"]}
    assert list(days) == ["2026-03-01", "2026-03-02", "2026-03-03", "2026-03-04"]
    assert days["2026-03-01"]["received"] == {"online": 0, "counter": 0, "postal": 0}
    assert days["2026-03-02"]["received"] == {"online": 1, "counter": 0, "postal": 1}
    assert days["2026-03-03"]["resolved"] == {"early": 1, "on_time": 0, "late": 0}
    assert days["2026-03-04"]["resolved"] == {"early": 0, "on_time": 0, "late": 1}


def test_public_statistics_quote_each_agency_like_the_press():
    stats = leaders.public_statistics(dossiers(), date(2026, 1, 1), date(2026, 3, 31), VN, NAMES, PARENTS, NOW)
    by = {a["agency_code"]: a for a in stats["agencies"]}
    assert list(by) == [PROVINCE, JUSTICE, LAND_DEPT, LAND_OFFICE]
    quoted = ("agency_name", "received", "resolved", "early", "late", "early_pct", "late_pct")
    assert {key: by[JUSTICE][key] for key in quoted} == {
        "agency_name": "Sở Tư pháp", "received": 3, "resolved": 2, "early": 1, "late": 1, "early_pct": 50.0,
        "late_pct": 50.0}
    assert by[PROVINCE]["received"] == 5 and by[PROVINCE]["resolved"] == 3 and by[PROVINCE]["early_pct"] == 33.33
    assert "dossiers" not in repr(stats) and "A-1" not in repr(stats)


def test_the_dashboard_public_statistics_and_series_give_the_official_reports_figures():
    """One read path per figure: what a leader and the public read is what the standard report says, and
    what the plain GROUP BY over the dossiers' rows gives (timeliness.report)."""
    rng = random.Random(21)
    uow = memory_database()()
    events = [evt for life in random_lives(rng, 120, vn(2026, 1, 2, 8), 75, reschedules=True) for evt in life]
    for evt in rng.sample(events, len(events)):
        projections.record(uow, [evt], VN)
    rows = all_facts(uow.session).values()
    now = vn(2026, 5, 29, 16)  # after every event: the counters are exact for lives in the past
    board = leaders.dashboard(uow.session, VN, NAMES, PARENTS, now)
    for name, (first, last) in leaders.periods(now.date()).items():
        official = timeliness.report(uow.session, first, last, VN, NAMES, now, parents=PARENTS)
        assert aggregates.report(uow.session, first, last, VN, NAMES, now, parents=PARENTS) == official
        window = timeliness.Period.of(first, last, VN, now)
        resolved = [r for r in rows if r["finished_at"] and window.start <= r["finished_at"] < window.end]

        def average(dossiers):
            days = [(r["finished_at"] - r["received_at"]).total_seconds() / 86400 for r in dossiers]
            return round(sum(days) / len(days), 2) if days else None

        period = board["periods"][name]
        assert period["totals"] == leaders._figures(official["totals"], average(resolved))
        assert period["agencies"] == [
            leaders._figures(row, average([r for r in resolved if r["agency_code"] == row["agency_code"]]))
            | {"key": row["agency_code"], "agency_code": row["agency_code"], "agency_name": row["agency_name"]}
            for row in official["rows"]]
        series = leaders.series(uow.session, first, last)["days"]
        totals = official["totals"]
        for channel in ("online", "counter", "postal"):
            assert sum(day["received"][channel] for day in series) == totals["received"][channel]
        for kind in ("early", "on_time", "late"):
            assert sum(day["resolved"][kind] for day in series) == totals["resolved"][kind]
    assert board["periods"]["year"]["totals"]["resolved"]["total"] > 0 < board["periods"]["month"]["totals"]["in_progress"]
    # any period a leader picks, by field (lĩnh vực): the official report's rows by field, each its key
    first, last = date(2026, 2, 9), date(2026, 4, 17)
    by_field = leaders.period(uow.session, first, last, VN, NAMES, PARENTS, now, by="field")
    official = timeliness.report(uow.session, first, last, VN, NAMES, now, by="field", parents=PARENTS)
    assert (by_field["from"], by_field["to"], by_field["by"]) == ("2026-02-09", "2026-04-17", "field")
    assert official["rows"] and official["totals"]["resolved"]["total"] > 0
    assert [(row["key"], row["resolved"], row["overdue_now"]) for row in by_field["agencies"]] == [
        (row["field_code"], {key: row["resolved"][key] for key in ("total", "early", "on_time", "late")},
         row["in_progress"]["overdue"]) for row in official["rows"]]
    assert by_field["totals"]["resolved"]["total"] == official["totals"]["resolved"]["total"]

    first, last = date(2026, 1, 1), date(2026, 3, 31)
    stats = leaders.public_statistics(uow.session, first, last, VN, NAMES, PARENTS, now)
    official = timeliness.report(uow.session, first, last, VN, NAMES, now, parents=PARENTS)["rollup"]
    assert [(a["agency_code"], a["received"], a["resolved"], a["early"], a["on_time"], a["late"], a["in_progress"],
             a["overdue"]) for a in stats["agencies"]] == [
        (row["agency_code"], row["received"]["total"], row["resolved"]["total"], row["resolved"]["early"],
         row["resolved"]["on_time"], row["resolved"]["late"], row["in_progress"]["total"],
         row["in_progress"]["overdue"]) for row in official]
