"""Synthetic dossiers for the report's benchmarks: fills reporting's projection (`dossier_facts`) and its
counters (`report_counts`) with N dossiers spread over the catalogue's procedures, the agencies of each
procedure's level, and the two years before now, with a progress bar on stderr.

    python -m services.reporting.seed 1000000 [--db-url URL] [--days 730] [--seed 1]

Rows only, no events: a replay (which rebuilds from the event store) would remove them. Use a database
of its own (bench/report.py makes one). PostgreSQL gets COPY (rows and counters, batch by batch), SQLite
executemany in large batches; the counters come from the same `aggregates.contributions` as the live projection.
"""
from __future__ import annotations

import argparse
import json
import random
import secrets
import time
from collections import Counter
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from types import SimpleNamespace
from zoneinfo import ZoneInfo

import yaml
from sqlalchemy import insert
from sqlalchemy.engine import Engine

from motcua.calendar import timeliness
from motcua.catalog import load_agencies
from motcua.config import catalog_dir, db_url, env
from motcua.contracts.events import STATUS_CODES
from motcua.db import make_engine, utcnow
from motcua.progress import progress
from services.reporting import aggregates
from services.reporting.models import DossierFact

COLUMNS = ("code", *(c.name for c in DossierFact.__table__.columns if c.name != "code"))
CHANNELS = (("online", 0.45), ("counter", 0.45), ("postal", 0.10))


@dataclass(frozen=True)
class Catalogue:
    procedures: list[dict]  # code, name, field, level, days (legal time in working days)
    agencies_by_level: dict[str, list[str]]
    names: dict[str, str]
    parents: dict[str, str | None]

    @classmethod
    def load(cls, directory: Path | None = None) -> Catalogue:
        directory = Path(directory or catalog_dir())
        agencies = load_agencies(directory)
        by_level: dict[str, list[str]] = {}
        for agency in agencies:
            by_level.setdefault(agency["level"], []).append(agency["code"])
        raw = yaml.safe_load((directory / "procedures.yaml").read_text(encoding="utf-8"))["procedures"]
        latest = {p["code"]: p for p in sorted(raw, key=lambda p: p.get("version", 1))}
        procedures = [{"code": p["code"], "name": p["name"], "field": p["field"], "level": p["level"],
                       "days": float(p["processing_time"]["value"])} for p in latest.values()
                      if by_level.get(p["level"])]
        return cls(procedures, by_level, {a["code"]: a["name"] for a in agencies},
                   {a["code"]: a["parent_code"] for a in agencies})


def dossier(index: int, run: str, rng: random.Random, catalogue: Catalogue, zone: ZoneInfo, now: datetime,
            days: int) -> dict:
    """One synthetic dossier's projection row: most resolved, some late, refused, withdrawn, paused, open."""
    procedure = rng.choice(catalogue.procedures)
    agency = rng.choice(catalogue.agencies_by_level[procedure["level"]])
    received = now - timedelta(seconds=rng.randrange(days * 86400))
    channel = rng.choices([c for c, _ in CHANNELS], [w for _, w in CHANNELS])[0]
    row = dict.fromkeys(COLUMNS)
    row.update(code=f"{agency}-{received.astimezone(zone):%y%m%d}-{run}{index:08d}", agency_code=agency,
               procedure_code=procedure["code"], procedure_name=procedure["name"], field_code=procedure["field"],
               channel=channel, submitted_at=received - timedelta(minutes=rng.randrange(5, 120)), supplements=0,
               stored_events=0)
    fate = rng.random()
    if fate < 0.03:
        row.update(refused_at=received, status="refused")
        return _done(row)
    if fate < 0.04:
        row.update(submitted_at=received, status="submitted")
        return _done(row)
    legal = max(procedure["days"], 0.5) * 7 / 5  # working days as calendar days, roughly
    due = (received + timedelta(days=legal)).astimezone(zone).replace(hour=17, minute=0, second=0, microsecond=0)
    took = timedelta(days=legal * rng.uniform(0.2, 1.25))
    row.update(received_at=received, due_at=due, processing_started_at=received + timedelta(minutes=1),
               current_agency_code=agency, status="processing")
    if rng.random() < 0.10:  # a supplement asked: awaited still, or supplied (the due date moves)
        asked = received + took / 3
        waited = timedelta(hours=rng.randrange(4, 24 * 12))
        row.update(paused_at=asked, supplements=1)
        if asked + waited > now:
            row.update(status="supplement_requested")
            return _done(row)
        row.update(pause_ended_at=asked + waited, due_at=due + waited)
        took += waited
    if rng.random() < 0.02:
        withdrawn = received + took / 2
        if withdrawn <= now:
            row.update(withdrawn_at=withdrawn, status="withdrawn")
            return _done(row)
    finished = received + took
    if finished > now:  # still open; a few wait for a fee, or were stopped halfway (which closes them)
        state = rng.random()
        row["status"] = "awaiting_payment" if state < 0.02 else "stopped" if state < 0.03 else "processing"
        return _done(row, min(now, received + took / 2) if row["status"] == "stopped" else None)
    row.update(finished_at=finished, status="result_ready", timeliness=timeliness(finished, row["due_at"], zone))
    returned = finished + timedelta(hours=rng.randrange(1, 96))
    if rng.random() < 0.85 and returned <= now:
        row.update(returned_at=returned, status="returned")
    return _done(row)


def _done(row: dict, stopped_at: datetime | None = None) -> dict:
    row["status_code"] = STATUS_CODES[row["status"]]
    row["closed_at"] = row["finished_at"] or row["withdrawn_at"] or stopped_at
    return row


def seed(engine: Engine, count: int, catalogue: Catalogue, zone: ZoneInfo, now: datetime,
         rng: random.Random | None = None, days: int = 730, batch: int = 50_000, on_progress=None,
         by_field: bool = True) -> dict:
    """Insert `count` dossiers received in the `days` before `now`, and add them to the counters (on
    PostgreSQL without `report_counts` unless `by_field`: `aggregates.load`)."""
    rng = rng or random.Random()
    run = secrets.token_hex(2)
    started, counter_seconds = time.perf_counter(), 0.0
    postgres = engine.dialect.name == "postgresql"
    for first in range(0, count, batch):
        rows = [dossier(index, run, rng, catalogue, zone, now, days) for index in range(first, min(first + batch, count))]
        counts: Counter = Counter()
        for row in rows:
            counts.update(aggregates.contributions(SimpleNamespace(**row), zone))
        if postgres:
            _copy(engine, rows)
        else:
            with engine.begin() as connection:
                connection.execute(insert(DossierFact.__table__), rows)
        counted = time.perf_counter()
        with engine.begin() as connection:  # a batch's counters at once (COPY on PostgreSQL)
            aggregates.load(connection, counts, by_field)
        counter_seconds += time.perf_counter() - counted
        if on_progress:
            on_progress(first + len(rows), count)
    return {"dossiers": count, "counter_seconds": round(counter_seconds, 1),
            "facts_seconds": round(time.perf_counter() - started - counter_seconds, 1),
            "seconds": round(time.perf_counter() - started, 1)}


def _copy(engine: Engine, rows: list[dict]) -> None:
    """PostgreSQL COPY of the rows (aware datetimes go as timestamptz, as the ORM stores them)."""
    connection = engine.raw_connection()
    try:
        cursor = connection.driver_connection.cursor()
        with cursor, cursor.copy(f"COPY dossier_facts ({', '.join(COLUMNS)}) FROM STDIN") as copy:
            for row in rows:
                copy.write_row([row[column] for column in COLUMNS])
        connection.commit()
    finally:
        connection.close()


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(prog="python -m services.reporting.seed", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("count", type=int)
    parser.add_argument("--db-url", default=db_url("reporting"))
    parser.add_argument("--days", type=int, default=730, help="received within this many days before now")
    parser.add_argument("--seed", type=int, default=None, help="random seed, for a repeatable set")
    args = parser.parse_args(argv)
    zone = ZoneInfo(env("MOTCUA_TZ", "Asia/Ho_Chi_Minh"))
    engine = make_engine(args.db_url)
    try:
        result = seed(engine, args.count, Catalogue.load(), zone, utcnow(), rng=random.Random(args.seed),
                      days=args.days, on_progress=lambda done, total: progress("seed", done, total))
    finally:
        engine.dispose()
    print(json.dumps(result))


if __name__ == "__main__":
    main()
