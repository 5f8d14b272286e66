"""The report's pre-aggregated counters agree with the plain GROUP BY over the dossiers' rows."""
import random
from datetime import date, timedelta

import pytest
from sqlalchemy import select
from sqlalchemy.orm import sessionmaker

from motcua.db import make_engine
from services.reporting import aggregates, projections, seed, timeliness
from services.reporting.models import AGENCY_COLUMNS, ReportAgencyCount, ReportCount
from tests import infra
from tests.reporting.factory import (
    JUSTICE,
    LAND_OFFICE,
    VN,
    memory_database,
    random_lives,
    vn,
)

PARENTS = {JUSTICE: None, LAND_OFFICE: JUSTICE}
NAMES = {JUSTICE: "Sở Tư pháp", LAND_OFFICE: "Văn phòng Đăng ký đất đai"}


def both(session, date_from, date_to, now, names=NAMES, parents=PARENTS, **kwargs):
    args = (session, date_from, date_to, VN, names, now)
    return aggregates.report(*args, parents=parents, **kwargs), timeliness.report(*args, parents=parents, **kwargs)


def counters(session) -> dict:
    """Both counter tables' non-zero counts (the by-agency one per column)."""
    fine = {(r.grain, r.day, r.bucket, r.agency_code, r.field_code, r.channel): r.n
            for r in session.scalars(select(ReportCount).execution_options(populate_existing=True)) if r.n}
    by_agency = {(r.grain, r.day, r.agency_code, column): getattr(r, column)
                 for r in session.scalars(select(ReportAgencyCount).execution_options(populate_existing=True))
                 for column in AGENCY_COLUMNS if getattr(r, column)}
    return {**fine, **by_agency}


@pytest.mark.parametrize("seed_value", range(3))
def test_counters_kept_by_the_projection_give_the_group_by_report(seed_value):
    rng = random.Random(seed_value)
    lives = random_lives(rng, 150, vn(2026, 1, 5, 8), days=60, reschedules=True)
    uow = memory_database()()
    for evt in rng.sample([evt for life in lives for evt in life], sum(map(len, lives))):  # any order
        projections.record(uow, [evt], VN)
    after_all = vn(2026, 6, 1, 12)
    periods = [(date(2026, 1, 1), date(2026, 12, 31), after_all),  # the year, not over yet
               (date(2026, 1, 20), date(2026, 2, 10), after_all),  # a past period
               (date(2026, 2, 1), date(2026, 2, 28), after_all),
               (date(2025, 12, 1), date(2025, 12, 31), after_all)]  # before anything
    for date_from, date_to, now in periods:
        for kwargs in ({}, {"by": "field"}, {"agency": LAND_OFFICE}, {"agency": JUSTICE}):
            from_counters, from_rows = both(uow.session, date_from, date_to, now, **kwargs)
            assert from_counters == from_rows, (date_from, date_to, kwargs)
    live = counters(uow.session)
    projections.rebuild_all(uow, VN)  # a replay rebuilds the same counters
    assert counters(uow.session) == live


def seeded_set_agrees(url: str, count: int, seed_value: int) -> None:
    """`count` seeded dossiers: the counters' report equals the GROUP BY, by agency and by field."""
    engine = make_engine(url)
    catalogue = seed.Catalogue.load()
    now = vn(2026, 11, 23, 10)
    seed.seed(engine, count, catalogue, VN, now, rng=random.Random(seed_value), batch=97)
    with sessionmaker(bind=engine)() as session:
        for date_from, date_to in ((date(2025, 1, 1), date(2025, 12, 31)), (date(2026, 1, 1), date(2026, 12, 31)),
                                   (now.date() - timedelta(days=45), now.date() - timedelta(days=10))):
            for by in ("agency", "field"):
                from_counters, from_rows = both(session, date_from, date_to, now, by=by, names=catalogue.names,
                                                parents=catalogue.parents)
                assert from_counters == from_rows
                assert from_rows["totals"]["received"]["total"] > 0
    engine.dispose()


def test_seeded_counters_agree_with_the_group_by_on_sqlite(tmp_path):
    from motcua import migrate
    url = f"sqlite:///{tmp_path / 'reporting.db'}"
    migrate.upgrade("reporting", url)
    seeded_set_agrees(url, 3000, 7)


def test_seeded_counters_agree_with_the_group_by_on_postgresql(postgres):
    urls = infra.create_service_databases(names=("reporting",))
    try:
        seeded_set_agrees(urls["reporting"], 3000, 11)
    finally:
        infra.drop_databases(urls)
