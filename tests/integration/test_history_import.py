"""`motcua history import` on real RabbitMQ + PostgreSQL: the file built from a province's published
table goes into intake through the command, its events out through intake's outbox; reporting's II.06a
report for the period then equals the table cell by cell, public tracking shows an imported dossier
with its own times, workflow starts no process and notify messages nobody; importing the file again
changes nothing anywhere; a bad row is reported with its line while the rest go in."""
from __future__ import annotations

import json
from datetime import timedelta

from nameko.containers import ServiceContainer
from nameko.testing.services import entrypoint_hook
from sqlalchemy import create_engine, func, select

from motcua import cli
from motcua.config import nameko_config
from motcua.identity import Caller, issue_token
from services.intake.models import dossier_counters, dossiers, outbox
from services.notify.models import deliveries
from services.notify.service import NotifyService
from services.reporting.models import DossierFact
from services.reporting.service import ReportingService
from services.workflow.models import runs
from services.workflow.service import WorkflowService
from tests import infra
from tests.intake import published_table as table


def scalar(url: str, query):
    engine = create_engine(url)
    try:
        with engine.connect() as connection:
            return connection.execute(query).scalar_one()
    finally:
        engine.dispose()


def counted(url: str, table_) -> int:
    return scalar(url, select(func.count()).select_from(table_))


def test_an_imported_history_reports_tracks_and_imports_once(amqp_uri, pg_urls, tmp_path, monkeypatch, capsys):
    catalog = table.catalogue(tmp_path / "catalog")
    for name, value in (("AMQP_URI", amqp_uri), ("INTAKE_DB_URL", pg_urls["intake"]),
                        ("MOTCUA_CATALOG_DIR", str(catalog))):
        monkeypatch.setenv(name, value)
    rows = table.history_rows()
    path = tmp_path / "history.jsonl"
    bad = {**rows[0], "code": "OLD-0001", "agency_code": "000.99.99.H56"}
    path.write_text("".join(json.dumps(row, ensure_ascii=False) + "\n" for row in [*rows[:10], bad, *rows[10:]]),
                    encoding="utf-8")
    config = {**nameko_config(amqp_uri), "DB_URLS": pg_urls, "CATALOG_DIR": str(catalog), "METRICS_PORTS": {}}
    containers = [ServiceContainer(service, config) for service in (ReportingService, WorkflowService, NotifyService)]
    for container in containers:
        container.start()
    try:
        assert cli.main(["history", "import", str(path)]) == 1  # one row refused
        out, err = capsys.readouterr()
        assert "imported 1297 dossier(s); 0 already there (skipped); 1 row(s) refused" in out
        assert "line 11: agency_code: no agency 000.99.99.H56 in the catalogue" in err
        events = counted(pg_urls["intake"], outbox)
        assert scalar(pg_urls["intake"], select(func.count()).select_from(outbox)
                      .where(outbox.c.published_at.is_(None))) == 0  # published by the command itself
        assert infra.wait_for(lambda: scalar(pg_urls["reporting"], select(func.sum(DossierFact.stored_events)))
                              == events, timeout=120)

        admin = issue_token(Caller("admin", None, ("admin",)), config["TOKEN_SIGNING_KEY"], timedelta(hours=1))
        with entrypoint_hook(containers[0], "timeliness_report") as report:
            table.assert_report_equals_published(report(*(d.isoformat() for d in table.PERIOD), admin))

        row = rows[-1]  # a dossier still in progress when the old system exported it
        with entrypoint_hook(containers[0], "track") as track:
            tracked = track(row["code"], row["applicant"]["phone"][-4:])
        assert (tracked["status"], tracked["status_code"], tracked["current_agency_code"]) == (
            "processing", 4, row["agency_code"])
        assert tracked["received_at"] == row["received_at"] and tracked["due_at"] == row["due_at"]
        assert [line["status"] for line in tracked["timeline"]] == ["submitted", "received", "processing"]
        assert tracked["timeline"][0]["at"] == row["submitted_at"]

        assert counted(pg_urls["workflow"], runs) == 0
        assert counted(pg_urls["notify"], deliveries) == 0

        facts = counted(pg_urls["reporting"], DossierFact)
        counters = counted(pg_urls["intake"], dossier_counters)
        assert cli.main(["history", "import", str(path)]) == 1
        assert "imported 0 dossier(s); 1297 already there (skipped); 1 row(s) refused" in capsys.readouterr().out
        assert (counted(pg_urls["intake"], dossiers), counted(pg_urls["intake"], outbox),
                counted(pg_urls["intake"], dossier_counters)) == (1297, events, counters)
        assert (counted(pg_urls["reporting"], DossierFact),
                scalar(pg_urls["reporting"], select(func.sum(DossierFact.stored_events)))) == (facts, events)
    finally:
        for container in containers:
            container.stop()
