"""The timeliness report (form II.06a): hand-computed cases, the invariant, input checks."""
import random
from datetime import date, timedelta

import pytest

from motcua.errors import ValidationFailed, load_valid
from services.reporting import projections, schemas, timeliness
from tests.reporting.factory import AGENCY_NAMES, JUSTICE, LAND_OFFICE, VN, lifecycle, memory_database, vn

MARCH = (date(2026, 3, 1), date(2026, 3, 31))
AFTER_MARCH = vn(2026, 5, 1, 12)


def d(n):
    return f"000.00.06.H56-2603{n:02d}-00{n:02d}"


def record_all(uow, *lives):
    for events in lives:
        for evt in events:
            projections.record(uow, [evt], VN)


@pytest.fixture
def march():
    """Dossiers around March 2026; each line says where it must be counted."""
    uow = memory_database()()

    def life(n, received, due, finished=None, channel="online", agency=JUSTICE):
        return lifecycle(d(n), submitted=received - timedelta(hours=1), received=received, due=due,
                         finished=finished, channel=channel, agency=agency)

    record_all(
        uow,
        life(1, vn(2026, 3, 2, 10), vn(2026, 3, 5, 17), vn(2026, 3, 4, 9)),                   # online, early
        life(2, vn(2026, 3, 3, 10), vn(2026, 3, 6, 17), vn(2026, 3, 6, 9), "counter"),        # counter, on time
        life(3, vn(2026, 3, 10, 10), vn(2026, 3, 12, 17), vn(2026, 3, 13, 8), "postal"),      # postal, late
        life(4, vn(2026, 2, 25, 10), vn(2026, 3, 2, 17), vn(2026, 2, 27, 9)),                 # done before: out
        life(5, vn(2026, 2, 26, 10), vn(2026, 3, 4, 17), vn(2026, 3, 3, 9), "counter"),       # carried, early
        life(6, vn(2026, 2, 27, 10), vn(2026, 3, 10, 17)),                                    # carried, overdue
        life(7, vn(2026, 3, 30, 10), vn(2026, 4, 3, 17)),                                     # online, within
        life(8, vn(2026, 3, 25, 10), vn(2026, 4, 1, 17), vn(2026, 4, 2, 9)),                  # online, within
        life(9, vn(2026, 4, 1, 10), vn(2026, 4, 3, 17)),                                      # after: out
        life(10, vn(2026, 2, 28, 23, 30), vn(2026, 3, 2, 17)),                                # carried, overdue
        # received 1 March 00:30 local = 28 Feb UTC: in the period; finished on its due date, local
        life(11, vn(2026, 3, 1, 0, 30), vn(2026, 3, 3, 17), vn(2026, 3, 3, 0, 30)),           # online, on time
        life(12, vn(2026, 3, 5, 10), vn(2026, 3, 9, 17), vn(2026, 3, 20, 9), "counter", LAND_OFFICE),  # late
        lifecycle(d(13), submitted=vn(2026, 3, 5, 8)),                                        # never received
        lifecycle(d(14), submitted=vn(2026, 3, 5, 8), refused=vn(2026, 3, 5, 9)),             # refused
    )
    return uow


def test_march_by_hand(march):
    result = timeliness.report(march.session, *MARCH, VN, AGENCY_NAMES, AFTER_MARCH)
    assert result["from"] == "2026-03-01" and result["to"] == "2026-03-31"
    assert result["as_of"] == "2026-04-01T00:00:00+07:00"
    justice, land = result["rows"]
    assert justice["agency_code"] == JUSTICE and justice["agency_name"] == "Sở Tư pháp"
    assert justice["received"] == {"total": 9, "online": 4, "counter_postal": 2, "carried_over": 3,
                                   "counter": 1, "postal": 1, "online_pct": 66.67, "postal_pct": 16.67}
    assert justice["resolved"] == {"total": 5, "early": 2, "on_time": 2, "late": 1,
                                   "early_pct": 40.0, "on_time_pct": 40.0, "late_pct": 20.0}
    assert justice["in_progress"] == {"total": 4, "within_deadline": 2, "overdue": 2,
                                      "within_deadline_pct": 50.0, "overdue_pct": 50.0}
    assert land["agency_code"] == LAND_OFFICE
    assert land["received"]["total"] == land["received"]["counter"] == land["received"]["counter_postal"] == 1
    assert land["resolved"]["late"] == 1 and land["resolved"]["late_pct"] == 100.0
    totals = result["totals"]
    assert {k: totals["received"][k] for k in ("total", "online", "counter_postal", "carried_over")} == {
        "total": 10, "online": 4, "counter_postal": 3, "carried_over": 3}
    assert (totals["resolved"]["total"], totals["resolved"]["early"], totals["resolved"]["on_time"],
            totals["resolved"]["late"]) == (6, 2, 2, 2)
    assert totals["resolved"]["late_pct"] == 33.33
    assert (totals["in_progress"]["within_deadline"], totals["in_progress"]["overdue"]) == (2, 2)


def test_overdue_is_judged_at_now_inside_the_period():
    uow = memory_database()()
    record_all(uow,
               lifecycle(d(1), submitted=vn(2026, 3, 2, 8), received=vn(2026, 3, 2, 9), due=vn(2026, 3, 5, 17)),
               lifecycle(d(2), submitted=vn(2026, 3, 2, 8), received=vn(2026, 3, 2, 9), due=vn(2026, 3, 20, 17)))
    result = timeliness.report(uow.session, *MARCH, VN, AGENCY_NAMES, vn(2026, 3, 10, 12))
    assert result["as_of"] == "2026-03-10T12:00:00+07:00"
    assert result["totals"]["in_progress"] == {"total": 2, "within_deadline": 1, "overdue": 1,
                                               "within_deadline_pct": 50.0, "overdue_pct": 50.0}


def test_overdue_is_judged_by_local_dates_like_timeliness():
    uow = memory_database()()
    received = {"submitted": vn(2026, 3, 2, 8), "received": vn(2026, 3, 2, 9)}
    record_all(uow,
               lifecycle(d(1), **received, due=vn(2026, 3, 10, 10)),        # due 10:00 today: not yet late
               lifecycle(d(2), **received, due=vn(2026, 3, 9, 17)),         # due yesterday: overdue
               lifecycle(d(3), **received, due=vn(2026, 3, 10, 0, 0)),      # due at today's first instant
               lifecycle(d(4), **received, due=vn(2026, 3, 9, 23, 59)))     # the last minute of yesterday
    result = timeliness.report(uow.session, *MARCH, VN, AGENCY_NAMES, vn(2026, 3, 10, 14))
    assert result["as_of"] == "2026-03-10T14:00:00+07:00"
    assert result["totals"]["in_progress"] == {"total": 4, "within_deadline": 2, "overdue": 2,
                                               "within_deadline_pct": 50.0, "overdue_pct": 50.0}
    # 9 March 23:59 local is 9 March 16:59 UTC, 10 March 00:00 local is 9 March 17:00 UTC: local dates count
    early_morning = timeliness.report(uow.session, *MARCH, VN, AGENCY_NAMES, vn(2026, 3, 10, 0, 30))
    assert early_morning["totals"]["in_progress"]["overdue"] == 2


def test_one_agency_and_an_agency_without_dossiers(march):
    only = timeliness.report(march.session, *MARCH, VN, AGENCY_NAMES, AFTER_MARCH, agency=LAND_OFFICE)
    assert [row["agency_code"] for row in only["rows"]] == [LAND_OFFICE]
    assert only["totals"]["received"]["total"] == 1
    names = {**AGENCY_NAMES, "000.20.01.H56": "UBND xã"}
    empty = timeliness.report(march.session, *MARCH, VN, names, AFTER_MARCH, agency="000.20.01.H56")
    assert empty["rows"][0]["received"]["total"] == 0 and empty["rows"][0]["resolved"]["early_pct"] == 0.0
    with pytest.raises(ValidationFailed) as error:
        timeliness.report(march.session, *MARCH, VN, AGENCY_NAMES, AFTER_MARCH, agency="999.99.99.H56")
    assert error.value.field == "agency"


def test_received_equals_resolved_plus_in_progress_on_every_row():
    rng = random.Random(7)
    uow = memory_database()()
    lives = []
    for n in range(80):
        received = vn(2026, 1, 1, 7) + timedelta(hours=rng.randrange(0, 24 * 120))
        due = received + timedelta(days=rng.randrange(0, 20))
        finished = received + timedelta(hours=rng.randrange(1, 24 * 30)) if rng.random() < 0.7 else None
        lives.append(lifecycle(f"{JUSTICE}-X-{n:04d}", submitted=received, received=received, due=due,
                               finished=finished, channel=rng.choice(("online", "counter", "postal")),
                               agency=rng.choice((JUSTICE, LAND_OFFICE))))
    record_all(uow, *lives)
    for first, days in ((date(2026, 1, 1), 30), (date(2026, 2, 10), 0), (date(2026, 3, 1), 45), (date(2025, 6, 1), 700)):
        result = timeliness.report(uow.session, first, first + timedelta(days=days), VN, AGENCY_NAMES,
                                   vn(2026, 3, 15, 12))
        for row in result["rows"] + [result["totals"]]:
            assert row["received"]["total"] == row["resolved"]["total"] + row["in_progress"]["total"]
            assert row["resolved"]["total"] == row["resolved"]["early"] + row["resolved"]["on_time"] \
                + row["resolved"]["late"]
            assert row["in_progress"]["total"] == row["in_progress"]["within_deadline"] \
                + row["in_progress"]["overdue"]
        assert result["totals"]["received"]["total"] > 0


def test_percentages_as_the_press_quotes_them():
    assert (timeliness.percent(1032, 1057), timeliness.percent(25, 1057)) == (97.63, 2.37)
    assert timeliness.percent(1, 32) == 3.13  # half up, as spreadsheets round (round() gives 3.12)
    assert timeliness.percent(0, 0) == 0.0


@pytest.mark.parametrize("query, field", [
    ({"from": "2026-03-01"}, "to"),
    ({"from": "01/03/2026", "to": "2026-03-31"}, "from"),
    ({"from": "2026-03-01", "to": "2026-02-28"}, "to"),
    ({"from": "2026-02-30", "to": "2026-03-31"}, "from"),
])
def test_bad_periods_name_their_field(query, field):
    with pytest.raises(ValidationFailed) as error:
        load_valid(schemas.report_query, query)
    assert error.value.field == field


def test_a_good_period_loads_as_dates():
    assert load_valid(schemas.report_query, {"from": "2026-03-01", "to": "2026-03-01", "agency": None}) == {
        "date_from": date(2026, 3, 1), "date_to": date(2026, 3, 1), "agency": None, "by": "agency"}
