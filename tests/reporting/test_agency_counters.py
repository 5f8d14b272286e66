"""The by-agency counters (`report_agency_counts`) hold exactly `report_counts` summed over fields, on day,
month and year grains; the by-agency report read from them equals the plain GROUP BY for any period and
any agency's subtree; the migration that adds them fills them from `report_counts` and matches the model."""
import random
from collections import Counter
from datetime import date, timedelta
from fractions import Fraction
from math import floor

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import delete, select
from sqlalchemy.orm import sessionmaker

from motcua import migrate
from motcua.db import make_engine
from services.reporting import aggregates, seed, timeliness
from services.reporting.models import AGENCY_COLUMNS, Base, ReportAgencyCount, ReportCount
from tests import infra
from tests.reporting.factory import VN, vn

NOW = vn(2026, 11, 23, 10)
BEFORE_AGENCY_COUNTS = "b8d0f2a4c6e5"


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def seeded(request, tmp_path_factory):
    """A migrated reporting database with 4,000 seeded dossiers over two years, and its catalogue."""
    with infra.migrated_database(request, "reporting", request.param, tmp_path_factory.mktemp("agency")) as url:
        engine = make_engine(url)
        catalogue = seed.Catalogue.load()
        seed.seed(engine, 4000, catalogue, VN, NOW, rng=random.Random(3), batch=613)
        yield url, engine, catalogue
        engine.dispose()


def by_agency(session) -> dict[tuple, int]:
    """Every non-zero by-agency counter as (grain, day, agency, column) → n."""
    found = {}
    for row in session.scalars(select(ReportAgencyCount).execution_options(populate_existing=True)):
        for column in AGENCY_COLUMNS:
            if getattr(row, column):
                found[(row.grain, row.day, row.agency_code, column)] = getattr(row, column)
    return found


def summed_over_fields(session) -> dict[tuple, int]:
    """`report_counts` summed over fields into the by-agency columns, with the year grain from the months."""
    found: Counter = Counter()
    for row in session.scalars(select(ReportCount)):
        column = aggregates.AGENCY_BUCKETS.get(f"received.{row.channel}" if row.bucket == "received" else row.bucket)
        if column is None:
            continue
        found[(row.grain, row.day, row.agency_code, column)] += row.n
        if row.grain == "month":
            found[("year", row.day.replace(month=1), row.agency_code, column)] += row.n
    return {key: n for key, n in found.items() if n}


def test_the_by_agency_counters_are_the_fine_ones_summed_over_fields(seeded):
    _, engine, _ = seeded
    with sessionmaker(bind=engine)() as session:
        coarse = by_agency(session)
        assert coarse == summed_over_fields(session)
        assert {grain for grain, *_ in coarse} == {"day", "month", "year"}


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(first=st.dates(date(2024, 10, 1), date(2027, 1, 31)), length=st.integers(0, 500),
       pick=st.integers(0, 10_000), whole=st.booleans())
def test_the_by_agency_report_equals_the_group_by_for_any_period(seeded, first, length, pick, whole):
    _, engine, catalogue = seeded
    agencies = sorted(code for code, parent in catalogue.parents.items() if parent is None or pick % 3)
    agency = agencies[pick % len(agencies)] if pick % 2 else None
    args = (first, first + timedelta(days=length), VN, catalogue.names, NOW)
    with sessionmaker(bind=engine)() as session:
        from_counters = aggregates.figures(session, *args, agency=agency, parents=catalogue.parents)
        assert from_counters.report == timeliness.report(session, *args, agency=agency, parents=catalogue.parents)
        if whole:  # the leaders' average days: the same read by field (report_counts) agrees overall
            by_field = aggregates.figures(session, *args, by="field", parents=catalogue.parents)
            if agency is None:
                assert from_counters.overall_days == by_field.overall_days


def test_the_migration_fills_them_from_report_counts_and_matches_the_model(seeded, tmp_path):
    url, engine, _ = seeded
    with sessionmaker(bind=engine)() as session:
        expected = by_agency(session)
    copy = f"sqlite:///{tmp_path / 'copy.db'}"
    source, target = make_engine(url), make_engine(copy)
    migrate.upgrade("reporting", copy)
    with source.connect() as reading, target.begin() as writing:
        fine = [dict(row._mapping) for row in reading.execute(select(ReportCount.__table__))]
        writing.execute(delete(ReportAgencyCount.__table__))
        writing.execute(ReportCount.__table__.insert(), fine)
    config = migrate.alembic_config("reporting", copy)
    command.downgrade(config, BEFORE_AGENCY_COUNTS)
    command.upgrade(config, "head")
    with sessionmaker(bind=target)() as session:
        assert by_agency(session) == expected
    with target.connect() as connection:
        differences = compare_metadata(MigrationContext.configure(connection), Base.metadata)
    assert [d for d in differences if "report_agency_counts" in repr(d)] == []
    source.dispose()
    target.dispose()


@given(total=st.integers(1, 10**9), share=st.fractions(0, 1))
def test_percent_rounds_half_up_exactly_as_the_fraction_does(total, share):
    part = min(total, int(share * total))
    assert timeliness.percent(part, total) == floor(Fraction(10_000 * part, total) + Fraction(1, 2)) / 100


def test_percent_rounds_the_halves_up():
    assert (timeliness.percent(1, 32), timeliness.percent(1, 8), timeliness.percent(0, 5)) == (3.13, 12.5, 0.0)
