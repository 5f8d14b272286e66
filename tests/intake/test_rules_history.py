"""The old system's dossier as the events its life implies (`Dossier.imported`), in memory: for each
final status the events the live platform would have published, in its order, each with its own time,
the resulting status and version, marked `imported`, valid against its contract, with no personal data
but the masked name; the steps make their agencies involved. And the row checks (`HistoryRecordV1`)."""
from __future__ import annotations

import pytest

from motcua.contracts import make_event
from services.intake.catalog import Catalog
from services.intake.domain import IMPORTED, Dossier
from services.intake.history import HistoryRecordV1, Importer, reason
from tests.intake.conftest import CATALOG_DIR
from tests.intake.published_table import VN

APPLICANT = {"full_name": "Trần Thị Bình", "id_number": "001190000123", "phone": "0912345678"}
BASE = {"code": "000.20.02.H56-200302-0007", "procedure_code": "1.004873", "agency_code": "000.20.02.H56",
        "channel": "counter", "submitted_at": "2020-03-02 08:10", "received_at": "2020-03-02T08:30:00+07:00",
        "due_at": "2020-03-05T17:00:00+07:00", "applicant": APPLICANT,
        "steps": [{"agency_code": "000.20.02.H56", "step": "Thẩm định", "started_at": "2020-03-02T09:00:00+07:00",
                   "finished_at": "2020-03-03T10:00:00+07:00", "outcome": "approved"},
                  {"agency_code": "000.15.02.H56", "step": "Xác minh", "started_at": "2020-03-03T10:00:00+07:00"}]}
LIVES = {
    "submitted": ({"received_at": None, "due_at": None, "steps": []}, ["dossier_submitted"]),
    "received": ({"steps": []}, ["dossier_submitted", "dossier_received"]),
    "refused": ({"received_at": None, "due_at": None, "steps": [], "finished_at": "2020-03-02T09:00:00+07:00"},
                ["dossier_submitted", "dossier_refused"]),
    "processing": ({}, ["dossier_submitted", "dossier_received", "dossier_processing_started"]),
    "supplement_requested": ({"paused_at": "2020-03-04T08:00:00+07:00"},
                             ["dossier_submitted", "dossier_received", "dossier_processing_started",
                              "supplement_requested"]),
    "awaiting_payment": ({"paused_at": "2020-03-04T08:00:00+07:00", "amount_vnd": "50000"},
                         ["dossier_submitted", "dossier_received", "dossier_processing_started", "payment_requested"]),
    "withdrawn": ({"received_at": None, "due_at": None, "steps": [], "finished_at": "2020-03-02T09:00:00+07:00"},
                  ["dossier_submitted", "dossier_withdrawn"]),
    "stopped": ({"finished_at": "2020-03-04T09:00:00+07:00"},
                ["dossier_submitted", "dossier_received", "dossier_processing_started", "dossier_stopped"]),
    "result_ready": ({"finished_at": "2020-03-04T09:00:00+07:00"},
                     ["dossier_submitted", "dossier_received", "dossier_processing_started", "dossier_result_ready"]),
    "returned": ({"finished_at": "2020-03-04T09:00:00+07:00", "returned_at": "2020-03-06T09:00:00+07:00",
                  "return_method": "postal"},
                 ["dossier_submitted", "dossier_received", "dossier_processing_started", "dossier_result_ready",
                  "result_returned"]),
}


@pytest.fixture(scope="module")
def importer():
    return Importer(Catalog.load(CATALOG_DIR), VN, "tracking-test-key", "search-test-key")


def imported(importer, **changes) -> Dossier:
    row = {key: value for key, value in {**BASE, **changes}.items() if value is not None}
    checked = importer.check(row)
    assert not isinstance(checked, str), checked
    record, procedure = checked
    return Dossier.imported(record=record, procedure=procedure, **importer._applicant(record))


@pytest.mark.parametrize("status", LIVES)
def test_each_final_status_is_the_events_of_its_life(importer, status):
    changes, expected = LIVES[status]
    dossier = imported(importer, status=status, **changes)
    events = dossier.collect_events()
    assert [event_type for event_type, _ in events] == expected
    assert (dossier.status, dossier.version) == (status, len(expected))
    assert [data["dossier_version"] for _, data in events] == list(range(1, len(expected) + 1))
    for event_type, data in events:
        assert data["imported"] is True and data["code"] == BASE["code"]
        make_event("intake", event_type, data)  # valid against its contract, as the outbox checks
        if "contact" in data:
            assert data["contact"] == {"full_name": "Trần T. B.", "email": None, "phone": None}
    assert all(entry.actor == IMPORTED for entry in dossier.history)
    assert events[0][1]["submitted_at"].isoformat() == "2020-03-02T08:10:00+07:00"  # local time when no offset


def test_the_steps_make_their_agencies_involved_and_join_the_history(importer):
    dossier = imported(importer, status="processing")
    assert dossier.agencies == ("000.20.02.H56", "000.15.02.H56")
    steps = [entry for entry in dossier.history if entry.action == "step"]
    assert [(s.agency_code, s.note) for s in steps] == [("000.20.02.H56", "Thẩm định · approved"),
                                                        ("000.15.02.H56", "Xác minh")]
    started = next(entry for entry in dossier.history if entry.action == "start_processing")
    assert started.at.isoformat() == "2020-03-02T09:00:00+07:00"


def test_a_resolved_dossier_keeps_the_appointment_it_was_judged_against(importer):
    dossier = imported(importer, status="returned", finished_at="2020-03-06T09:00:00+07:00",
                       returned_at="2020-03-06T10:00:00+07:00")
    ready = dict(dossier.collect_events())["dossier_result_ready"]
    assert ready["due_at"].isoformat() == "2020-03-05T17:00:00+07:00"
    assert ready["finished_at"].isoformat() == "2020-03-06T09:00:00+07:00"
    assert (dossier.return_method, dossier.appointed_at) == ("counter", dossier.due_at)


@pytest.mark.parametrize("changes, why", [
    ({"status": "result_ready"}, "finished_at: a dossier result_ready says when: give finished_at"),
    ({"status": "processing", "received_at": None, "steps": []},
     "received_at: a dossier processing was received: give received_at"),
    ({"status": "refused", "finished_at": "2020-03-02T09:00:00+07:00", "steps": []},
     "received_at: a dossier refused was not received"),
    ({"status": "supplement_requested"}, "paused_at: a dossier supplement_requested says since when: give paused_at"),
    ({"status": "processing", "channel": "fax"}, "channel: Must be one of: online, counter, postal."),
    ({"status": "processing", "submitted_at": "yesterday"}, "submitted_at: Not a valid datetime."),
    ({"status": "returned", "finished_at": "2020-03-04T09:00:00+07:00", "returned_at": "2020-03-04T08:00:00+07:00"},
     "returned_at: earlier than finished_at"),
    ({"status": "processing", "applicant": {**APPLICANT, "phone": "12"}},
     "applicant.phone: must be a Vietnamese phone number: 0 or +84 then 9 digits"),
    ({"status": "processing", "procedure_code": "9.999999"}, "procedure_code: no procedure 9.999999 in the catalogue"),
    ({"status": "processing", "code": "bad code!"}, "code: 1-40 letters, digits and . _ / -"),
])
def test_a_row_that_cannot_be_a_dossier_is_refused_saying_why(importer, changes, why):
    row = {key: value for key, value in {**BASE, **changes}.items() if value is not None}
    assert importer.check(row) == why


def test_reasons_name_nested_fields():
    assert reason({"steps": {1: {"started_at": ["Missing data for required field."]}}}) == (
        "steps.1.started_at: Missing data for required field.")
    assert HistoryRecordV1(VN).fields["steps"].inner.schema.zone == VN
