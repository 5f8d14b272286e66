"""History from the old system (`motcua history import`, docs/history-format.md) on SQLite: a file built
from a province's published table gives, once reporting has applied what intake published, the II.06a
report equal to the table cell by cell; a second import changes nothing; bad rows are reported with
their line and reason while the rest go in; CSV and JSON Lines give the same dossiers; the live code
sequence skips imported codes; personal data lands only in intake's sealed columns."""
from __future__ import annotations

import csv
import io
import json
from datetime import datetime, timedelta

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from motcua import migrate
from motcua.contracts.envelope import parse_event
from motcua.db import make_engine
from services.intake import dossiers as intake_dossiers
from services.intake.catalog import Catalog
from services.intake.history import APPLICANT_COLUMNS, Importer, import_rows, read_rows
from services.intake.models import Base, dossiers, outbox
from services.intake.repository import IntakeUnitOfWork
from services.reporting import projections, timeliness
from tests.intake import published_table as table
from tests.reporting.factory import memory_database

NOW = datetime(2026, 12, 6, 9, tzinfo=table.VN)


@pytest.fixture(scope="module")
def catalog(tmp_path_factory):
    return Catalog.load(table.catalogue(tmp_path_factory.mktemp("province") / "catalog"))


@pytest.fixture
def engine(tmp_path):
    url = f"sqlite:///{tmp_path / 'intake.db'}"
    migrate.upgrade("intake", url)
    return make_engine(url)


def run(engine, catalog, text: str, fmt: str = "jsonl"):
    importer = Importer(catalog, table.VN, "tracking-test-key", "search-test-key")
    return import_rows(importer, read_rows(io.StringIO(text), fmt),
                       lambda: IntakeUnitOfWork(Session(engine), "intake", Base.metadata), batch_size=200)


def jsonl(rows: list[dict]) -> str:
    return "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows)


def as_csv(rows: list[dict]) -> str:
    """The same rows as the CSV form: applicant_<x> columns, steps as a JSON cell."""
    columns = ["code", "procedure_code", "agency_code", "channel", "status", "submitted_at", "received_at", "due_at",
               "finished_at", "returned_at", "paused_at", "note", *(f"applicant_{n}" for n in APPLICANT_COLUMNS),
               "steps"]
    out = io.StringIO()
    writer = csv.DictWriter(out, columns)
    writer.writeheader()
    for row in rows:
        flat = {k: v for k, v in row.items() if k not in ("applicant", "steps")}
        flat.update({f"applicant_{k}": v for k, v in (row.get("applicant") or {}).items()})
        flat["steps"] = json.dumps(row.get("steps") or [], ensure_ascii=False)
        writer.writerow(flat)
    return out.getvalue()


def published_events(engine) -> list:
    with engine.connect() as connection:
        return [parse_event(payload) for payload in
                connection.execute(select(outbox.c.payload).order_by(outbox.c.id)).scalars()]


def count(engine, table_) -> int:
    with engine.connect() as connection:
        return connection.execute(select(func.count()).select_from(table_)).scalar_one()


def test_the_report_of_an_imported_period_equals_the_table_the_old_system_published(engine, catalog):
    outcome = run(engine, catalog, jsonl(table.history_rows()))
    assert (outcome.imported, outcome.present, outcome.refused) == (1297, 0, [])
    events = published_events(engine)
    assert all(event.data["imported"] for event in events)
    reporting = memory_database()()
    projections.record(reporting, events, table.VN)
    names = {code: agency["name"] for code, agency in catalog.agencies.items()}
    report = timeliness.report(reporting.session, *table.PERIOD, table.VN, names, NOW)
    table.assert_report_equals_published(report)
    assert report["totals"]["received"]["carried_over"] == 0  # all of it received in the period


def test_importing_the_same_file_again_changes_nothing(engine, catalog):
    text = jsonl(table.history_rows()[:300])
    assert run(engine, catalog, text).imported == 300
    before = (count(engine, dossiers), count(engine, outbox))
    again = run(engine, catalog, text)
    assert (again.imported, again.present, again.refused) == (0, 300, [])
    assert (count(engine, dossiers), count(engine, outbox)) == before


def test_a_bad_row_is_reported_with_its_line_and_reason_and_the_rest_go_in(engine, catalog):
    good = table.history_rows()[:4]
    unknown_agency = {**good[0], "code": "X-1", "agency_code": "000.99.99.H56"}
    no_due = {key: value for key, value in {**good[0], "code": "X-2"}.items() if key != "due_at"}
    backwards = {**good[0], "code": "X-3", "finished_at": "2019-01-01T08:00:00+07:00"}
    bad_status = {**good[0], "code": "X-4", "status": "lost"}
    lines = [jsonl([good[0]]), jsonl([unknown_agency]), "{not json\n", jsonl([no_due]), "\n",
             jsonl([backwards, good[1], bad_status]), jsonl(good[2:])]
    outcome = run(engine, catalog, "".join(lines))
    assert outcome.imported == 4
    assert [line for line, _ in outcome.refused] == [2, 3, 4, 6, 8]
    reasons = dict(outcome.refused)
    assert reasons[2] == "agency_code: no agency 000.99.99.H56 in the catalogue"
    assert reasons[3].startswith("not JSON")
    assert reasons[4].startswith("due_at: a received dossier has its appointment")
    assert reasons[6] == "finished_at: earlier than steps"
    assert reasons[8].startswith("status: Must be one of")


def test_csv_and_json_lines_give_the_same_dossiers(tmp_path, catalog):
    rows = table.history_rows()[:40]
    rows[3] = {**rows[3], "channel": "2", "status": "10"}  # the old systems' numbers (online, returned)
    views = []
    for fmt, text in (("jsonl", jsonl(rows)), ("csv", as_csv(rows))):
        url = f"sqlite:///{tmp_path / f'{fmt}.db'}"
        migrate.upgrade("intake", url)
        engine = make_engine(url)
        assert run(engine, catalog, text, fmt).imported == 40
        with Session(engine) as session:
            uow = IntakeUnitOfWork(session, "intake", Base.metadata)
            views.append([intake_dossiers.view(uow.dossiers.get(row["code"], for_update=False), table.VN, catalog)
                          for row in rows])
    assert views[0] == views[1]
    assert (views[0][3]["channel"], views[0][3]["status_code"]) == ("online", 10)
    for row, view in zip(rows, views[0]):  # the round trip: what the file says is what intake holds
        assert view["status"] == {"10": "returned"}.get(row["status"], row["status"])
        assert {key: view[key] for key in ("code", "procedure_code", "agency_code", "submitted_at", "received_at",
                                           "due_at")} == {key: row[key] for key in (
            "code", "procedure_code", "agency_code", "submitted_at", "received_at", "due_at")}
        assert (view["result_ready_at"], view["returned_at"]) == (row.get("finished_at"), row.get("returned_at"))
        assert {key: view["applicant"][key] for key in row["applicant"]} == row["applicant"]
        assert view["agencies"] == [row["agency_code"]]
        assert [h["action"] for h in view["history"]][:2] == ["submit", "receive"]


def test_a_csv_row_with_more_cells_than_the_header_is_refused(engine, catalog):
    text = as_csv(table.history_rows()[:2]).splitlines()
    text[2] += ",extra"
    outcome = run(engine, catalog, "\n".join(text) + "\n", "csv")
    assert (outcome.imported, [line for line, _ in outcome.refused]) == (1, [3])


def test_the_live_sequence_skips_imported_codes(engine, catalog):
    today = NOW.date()
    row = {**table.history_rows()[0], "code": f"000.20.01.H56-{today:%y%m%d}-0041", "agency_code": "000.20.01.H56"}
    assert run(engine, catalog, jsonl([row])).imported == 1
    with Session(engine) as session:
        uow = IntakeUnitOfWork(session, "intake", Base.metadata)
        assert uow.dossiers.next_code("000.20.01.H56", today) == f"000.20.01.H56-{today:%y%m%d}-0042"
        assert uow.dossiers.next_code("000.20.01.H56", today - timedelta(days=1)).endswith("-0001")


def test_personal_data_stays_sealed_in_intake_and_off_the_bus(engine, catalog):
    row = table.history_rows()[0]
    run(engine, catalog, jsonl([row]))
    with engine.connect() as connection:
        stored = connection.execute(select(dossiers.c.applicant_id_number, dossiers.c.applicant_phone)).one()
    assert row["applicant"]["id_number"] not in stored and row["applicant"]["phone"] not in stored
    payloads = json.dumps([event.data for event in published_events(engine)], default=str, ensure_ascii=False)
    for value in row["applicant"].values():
        assert value not in payloads
    with Session(engine) as session:
        dossier = IntakeUnitOfWork(session, "intake", Base.metadata).dossiers.get(row["code"], for_update=False)
    assert (dossier.applicant_id_number, dossier.applicant_phone) == (row["applicant"]["id_number"],
                                                                      row["applicant"]["phone"])
