"""`python -m bench.history`: the throughput of `motcua history import` on PostgreSQL and RabbitMQ.

    python -m bench.history [--rows 20000] [--format jsonl|csv] [--batch 500] [--no-reporting] [--keep]

Writes a file of `--rows` past dossiers of the demo province (docs/history-format.md: every final status,
channels mixed, an applicant and one or two steps each), makes fresh intake and reporting databases and a
fresh vhost, starts reporting (a container in this process, consuming as it would in production), then
runs the command as an operator would (`python -m motcua.cli history import FILE`, its own process) and
times it: the import (rows/s, events/s, the command's CPU), then how long reporting takes to have applied
every event the import published, then the same file again (everything skipped). Prints the machine.
"""
from __future__ import annotations

import eventlet

eventlet.monkey_patch()  # reporting's container runs in this process (nameko needs it patched, STACK.md)

import argparse  # noqa: E402
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import date, datetime, time as clock, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from sqlalchemy import create_engine, func, select

from bench.report import machine
from motcua.config import ROOT
from motcua.progress import progress

ZONE = ZoneInfo("Asia/Ho_Chi_Minh")
AGENCIES = ("000.20.01.H56", "000.20.02.H56", "000.00.06.H56", "000.12.01.H56", "000.15.01.H56")
PROCEDURES = ("1.001193", "1.004873", "1.012786", "2.000635", "1.013978")
LIFE = ("returned", "returned", "returned", "result_ready", "processing", "refused", "withdrawn", "received",
        "supplement_requested", "stopped")


def rows(count: int, first: date = date(2023, 1, 2)) -> list[dict]:
    """`count` dossiers over the years after `first`, ~60 % returned, the other statuses after."""
    out, numbers = [], {}
    for serial in range(count):
        agency, status = AGENCIES[serial % len(AGENCIES)], LIFE[serial % len(LIFE)]
        day = first + timedelta(days=serial * 7 // 40 % 900)
        numbers[(agency, day)] = number = numbers.get((agency, day), 0) + 1
        received = datetime.combine(day, clock(8 + serial % 8, 10), ZONE)
        due = received + timedelta(days=7 + serial % 10)
        finished = received + timedelta(days=3 + serial % 12)
        row = {"code": f"{agency}-{day:%y%m%d}-{number:04d}", "procedure_code": PROCEDURES[serial % len(PROCEDURES)],
               "agency_code": agency, "channel": ("online", "counter", "postal")[serial % 3], "status": status,
               "submitted_at": (received - timedelta(minutes=20)).isoformat(),
               "applicant": {"full_name": "Lê Thị Hoa", "id_number": f"{serial:012d}", "phone": f"09{serial:08d}"}}
        if status in ("refused", "withdrawn"):
            row["finished_at"] = (received - timedelta(minutes=5)).isoformat()
        else:
            row.update(received_at=received.isoformat(), due_at=due.isoformat())
            if status != "received":
                row["steps"] = [{"agency_code": agency, "step": "Thụ lý",
                                 "started_at": (received + timedelta(hours=1)).isoformat(),
                                 "finished_at": (finished - timedelta(hours=2)).isoformat(), "outcome": "approved"},
                                {"agency_code": AGENCIES[(serial + 1) % len(AGENCIES)], "step": "Phê duyệt",
                                 "started_at": (finished - timedelta(hours=2)).isoformat()}]
            if status in ("returned", "result_ready", "stopped"):
                row["finished_at"] = finished.isoformat()
            if status == "returned":
                row["returned_at"] = (finished + timedelta(days=1)).isoformat()
            if status == "supplement_requested":
                row["paused_at"] = (finished - timedelta(hours=1)).isoformat()
        out.append(row)
    return out


def write(path: Path, data: list[dict], fmt: str) -> None:
    if fmt == "jsonl":
        path.write_text("".join(json.dumps(row, ensure_ascii=False) + "\n" for row in data), encoding="utf-8")
        return
    from tests.intake.test_history import as_csv  # the CSV form of the same rows, as the tests write it

    path.write_text(as_csv(data), encoding="utf-8")


def run_import(path: Path, env: dict, batch: int) -> tuple[float, float, str]:
    """Wall seconds, CPU seconds of the command, its summary line."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    # The command's progress bar and any error go to our stderr as they come (a long file takes minutes).
    done = subprocess.run([sys.executable, "-W", "ignore", "-m", "motcua.cli", "history", "import", str(path),
                           "--batch", str(batch)],
                          env=env, stdout=subprocess.PIPE, text=True, cwd=ROOT)
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode != 0:
        raise SystemExit(f"import failed ({done.returncode}): {done.stdout[-2000:]}")
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime), done.stdout.strip()


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.history", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=20000)
    parser.add_argument("--format", choices=("jsonl", "csv"), default="jsonl")
    parser.add_argument("--batch", type=int, default=500)
    parser.add_argument("--no-reporting", action="store_true", help="measure the import alone")
    parser.add_argument("--keep", action="store_true", help="keep the databases and the vhost")
    args = parser.parse_args(argv)

    from nameko.containers import ServiceContainer

    from motcua.config import nameko_config
    from services.intake.models import outbox
    from services.reporting.models import DossierFact
    from services.reporting.service import ReportingService
    from tests import infra

    infra.require_rabbitmq_for_bench()
    vhost = f"bench-history-{uuid.uuid4().hex[:8]}"
    infra.create_vhost(vhost)
    urls = infra.create_service_databases(names=("intake", "reporting"))
    directory = Path(tempfile.mkdtemp(prefix="bench-history-"))
    path = directory / f"history.{args.format}"
    write(path, rows(args.rows), args.format)
    env = {**os.environ, "AMQP_URI": infra.amqp_uri(vhost), "INTAKE_DB_URL": urls["intake"],
           "PSYCOPG_WAIT_FUNC": "wait_select", "PYTHONPATH": str(ROOT)}
    intake, reporting_db = create_engine(urls["intake"]), create_engine(urls["reporting"])
    print(f"machine: {machine(intake)}; load average before: {os.getloadavg()[0]:.2f} "
          "(shared with other engineers' work)")
    reporting = None
    if not args.no_reporting:
        config = {**nameko_config(infra.amqp_uri(vhost)), "DB_URLS": urls, "METRICS_PORTS": {}}
        reporting = ServiceContainer(ReportingService, config)
        reporting.start()
    try:
        own_cpu = time.process_time()  # this process: reporting's container (and the bench's polls)
        wall, cpu, summary = run_import(path, env, args.batch)
        with intake.connect() as connection:
            events = connection.execute(select(func.count()).select_from(outbox)).scalar_one()
        print(f"import of {args.rows} rows ({args.format}, batches of {args.batch}): {wall:.1f} s wall, "
              f"{args.rows / wall:.0f} rows/s, {events / wall:.0f} events/s published; command CPU {cpu:.1f} s "
              f"({cpu / args.rows * 1000:.2f} ms/row); load average after: {os.getloadavg()[0]:.2f}\n  {summary}")
        if reporting is not None:
            def applied() -> int:
                with reporting_db.connect() as connection:
                    total = func.coalesce(func.sum(DossierFact.stored_events), 0)
                    return connection.execute(select(total)).scalar_one()
            started = time.perf_counter()
            while (count := applied()) < events:
                progress("reporting applies", count, events)
                time.sleep(0.5)
            progress("reporting applies", events, events)
            behind = time.perf_counter() - started
            spent = time.process_time() - own_cpu
            print(f"reporting applied all {events} events {behind:.1f} s after the import ended "
                  f"({events / (wall + behind):.0f} events/s end to end); reporting's CPU {spent:.1f} s "
                  f"({spent / events * 1000:.2f} ms/event, {spent / args.rows * 1000:.2f} ms/dossier)")
        again, cpu_again, summary = run_import(path, env, args.batch)
        print(f"the same file again: {again:.1f} s wall, {args.rows / again:.0f} rows/s, CPU {cpu_again:.1f} s\n"
              f"  {summary}")
        print(f"1,000,000 rows: {1_000_000 / (args.rows / wall) / 60:.0f} min at this run's wall rate; "
              f"{1_000_000 * cpu / args.rows / 60:.0f} min of the command's CPU (a core to itself, the database "
              "and the broker keeping up on the others)")
    finally:
        if reporting is not None:
            reporting.stop()
        intake.dispose()
        reporting_db.dispose()
        if not args.keep:
            infra.drop_databases(urls)
            infra.delete_vhost(vhost)


if __name__ == "__main__":
    main()
