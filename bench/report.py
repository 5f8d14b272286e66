"""`make bench-report`: the standard report (II.06a) for one year of the province, from the pre-aggregated
counters vs a plain GROUP BY over the same dossier rows, at growing numbers of dossiers, on PostgreSQL.

    python -m bench.report [--sizes 1000000,10000000 (the default)] [--runs 30] [--plain-runs 5] [--year 2025]
                           [--keep] [--by-agency-only]

Makes a fresh database (dropped at the end unless --keep), migrates it, seeds the first size with
`services.reporting.seed`, measures, tops it up to the next size, measures again. Prints the machine,
seeding time, p50/p95 of each way and their ratio, and whether both gave the same report.
"""
from __future__ import annotations

import argparse
import gc
import os
import platform
import random
import statistics
import time
import uuid
from datetime import date
from pathlib import Path
from zoneinfo import ZoneInfo

from sqlalchemy import create_engine, text
from sqlalchemy.orm import sessionmaker

from motcua import migrate
from motcua.db import make_engine, utcnow
from motcua.progress import progress
from services.reporting import aggregates, seed, timeliness

ADMIN_URL = os.environ.get("TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres")
ZONE = ZoneInfo("Asia/Ho_Chi_Minh")


def machine(engine) -> str:
    cpuinfo, meminfo = Path("/proc/cpuinfo").read_text(), Path("/proc/meminfo").read_text()
    cpu = next((line.split(":", 1)[1].strip() for line in cpuinfo.splitlines() if line.startswith("model name")), "?")
    memory = next((int(line.split()[1]) // 1024 ** 2 for line in meminfo.splitlines() if line.startswith("MemTotal")), 0)
    with engine.connect() as connection:
        server = connection.execute(text("SHOW server_version")).scalar()
    return (f"{os.cpu_count()} cores, {cpu}, {memory} GB RAM, Python {platform.python_version()}, "
            f"{platform.system()} {platform.release()}, PostgreSQL {server}")


def timed(runs: int, call) -> tuple[list[float], dict]:
    times, result = [], None
    for _ in range(runs):
        started = time.perf_counter()
        result = call()
        times.append((time.perf_counter() - started) * 1000)
    return times, result


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(share * (len(ordered) - 1)))]


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.report", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="1000000,10000000", help="comma-separated dossier counts, growing")
    parser.add_argument("--runs", type=int, default=30, help="report runs from the counters")
    parser.add_argument("--plain-runs", type=int, default=5, help="report runs of the plain GROUP BY")
    parser.add_argument("--year", type=int, default=date.today().year - 1)
    parser.add_argument("--keep", action="store_true", help="keep the database (its URL is printed)")
    parser.add_argument("--by-agency-only", action="store_true",
                        help="seed the by-agency counters only, not report_counts (read by the report by field, "
                             "not measured here; most of a 10M seeding's time)")
    args = parser.parse_args(argv)
    sizes = [int(size) for size in args.sizes.split(",")]

    name = f"motcua_bench_report_{uuid.uuid4().hex[:8]}"
    admin = create_engine(ADMIN_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.exec_driver_sql(f'CREATE DATABASE "{name}"')
    url = f"{ADMIN_URL.rsplit('/', 1)[0]}/{name}"
    migrate.upgrade("reporting", url)
    engine = make_engine(url)
    catalogue = seed.Catalogue.load()
    gc.collect()
    gc.freeze()  # as every service does once started (motcua/run.py): the catalogue is not walked again
    now = utcnow()
    rng = random.Random(2026)
    print(f"machine: {machine(engine)}")
    print(f"report: year {args.year} of the province, by agency with the roll-up; "
          f"{args.runs} runs from the counters, {args.plain_runs} of the plain GROUP BY")
    seeded = 0
    try:
        for size in sizes:
            started, added = time.perf_counter(), size - seeded
            stats = seed.seed(engine, added, catalogue, ZONE, now, rng=rng, by_field=not args.by_agency_only,
                              on_progress=lambda done, total, size=size: progress(f"seed to {size:,}", done, total))
            with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
                connection.exec_driver_sql("VACUUM ANALYZE dossier_facts")
                connection.exec_driver_sql("VACUUM ANALYZE report_counts")
                connection.exec_driver_sql("VACUUM ANALYZE report_agency_counts")
                counter_rows = connection.exec_driver_sql("SELECT count(*) FROM report_counts").scalar()
                agency_rows = connection.exec_driver_sql("SELECT count(*) FROM report_agency_counts").scalar()
            seeded = size
            print(f"\n{size:,} dossiers: seeded +{added:,} in "
                  f"{time.perf_counter() - started:.0f} s (rows {stats['facts_seconds']:.0f} s, counters "
                  f"{stats['counter_seconds']:.0f} s, then VACUUM ANALYZE); {counter_rows:,} counter rows, "
                  f"{agency_rows:,} by-agency rows")
            with sessionmaker(bind=engine)() as session:
                def run(module):
                    return lambda: module.report(session, date(args.year, 1, 1), date(args.year, 12, 31), ZONE,
                                                 catalogue.names, now, parents=catalogue.parents)
                fast, fast_report = timed(args.runs, run(aggregates))
                plain, plain_report = timed(args.plain_runs, run(timeliness))
            p50, p95 = percentile(fast, 0.5), percentile(fast, 0.95)
            plain50, plain95 = percentile(plain, 0.5), percentile(plain, 0.95)
            totals = plain_report["totals"]
            print(f"  counters:       p50 {p50:8.1f} ms   p95 {p95:8.1f} ms")
            print(f"  plain GROUP BY: p50 {plain50:8.1f} ms   p95 {plain95:8.1f} ms")
            print(f"  ratio (plain / counters): p50 {plain50 / p50:,.0f}x   p95 {plain95 / p95:,.0f}x   "
                  f"mean {statistics.mean(plain) / statistics.mean(fast):,.0f}x")
            print(f"  same report: {'yes' if fast_report == plain_report else 'NO'} "
                  f"(received {totals['received']['total']:,}, resolved {totals['resolved']['total']:,})")
    finally:
        engine.dispose()
        if args.keep:
            print(f"kept: {url}")
        else:
            with admin.connect() as connection:
                connection.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.dispose()


if __name__ == "__main__":
    main()
