"""Submission and reception rules (dossier codes, who may submit, due dates, the first decisions) on
in-memory fakes: no database."""
from datetime import datetime, timezone

import pytest

from motcua.errors import Forbidden, IllegalTransition, NotFound, ValidationFailed
from motcua.identity import Caller
from services.intake import dossiers
from tests.intake.test_dossiers import (APPLICANT, COMMUNE, LAND_OFFICE, MONDAY_9AM, RECEPTIONIST, outbox, submission,
                                        submit)


def test_code_day_is_the_local_day(uow, policy):
    late_evening_utc = datetime(2026, 3, 2, 18, 0, tzinfo=timezone.utc)  # 01:00 on 3 March in Vietnam
    assert submit(uow, policy, now=late_evening_utc).code == f"{COMMUNE}-260303-0001"


def test_submission_event_carries_personal_data_only_in_the_contact_for_notify(uow, policy):
    submit(uow, policy)
    [event] = outbox(uow)
    assert event["event_type"] == "dossier_submitted"
    contact = event["data"].pop("contact")  # online: notify sends the code by SMS/e-mail at once
    assert (contact["phone"], contact["email"]) == (APPLICANT["phone"], APPLICANT["email"])
    text = str(event)
    for secret in (APPLICANT["id_number"], APPLICANT["phone"], APPLICANT["email"], APPLICANT["address"]):
        assert secret not in text
    assert event["data"]["applicant_masked"] == "Nguyễn V. A."


def test_counter_submission_needs_a_receptionist_of_the_receiving_agency(uow, policy):
    with pytest.raises(Forbidden):
        submit(uow, policy, channel="counter")
    other = Caller("receptionist@000.20.02.H56", "000.20.02.H56", ("receptionist",))
    with pytest.raises(Forbidden):
        submit(uow, policy, channel="counter", caller=other)
    assert submit(uow, policy, channel="counter", caller=RECEPTIONIST).channel == "counter"


def test_online_every_mandatory_document_comes_with_the_dossier_at_the_counter_the_officer_may_ask_later(
        uow, policy):
    """Thành phần hồ sơ bắt buộc: online, a dossier lacking one is refused naming each (key and the
    catalogue's name), nothing recorded; at the counter it is taken, and its view says what is missing."""
    payload = submission()
    lacking = {**payload, "documents": [u for u in payload["documents"] if u["key"] != "xac_nhan_niem_yet"]}
    with pytest.raises(ValidationFailed) as refused:
        dossiers.submit(uow, policy, lacking, None, MONDAY_9AM)
    assert refused.value.field == "documents"
    assert refused.value.details["missing"] == [{"key": "xac_nhan_niem_yet", "name": policy.catalog.procedure(
        "1.012786").document("xac_nhan_niem_yet")["name"]}]
    assert "xac_nhan_niem_yet" in refused.value.message
    assert outbox(uow) == []  # nothing submitted, nothing published
    optional_only = submission("2.000720")  # its mandatory one given, the optional ones (bien_ban_hop…) not
    assert [u["key"] for u in optional_only["documents"]] == ["giay_de_nghi"]
    assert dossiers.submit(uow, policy, optional_only, None, MONDAY_9AM).channel == "online"

    at_counter = submit(uow, policy, channel="counter", caller=RECEPTIONIST)
    assert at_counter.documents == ()
    view = dossiers.view(at_counter, policy.calendar.tz, policy.catalog)
    assert [d["key"] for d in view["documents_missing"]] == ["don_de_nghi", "xac_nhan_niem_yet"]


def test_receive_fixes_the_due_date_in_working_days(uow, policy):
    dossier = submit(uow, policy)
    received = dossiers.receive(uow, policy, dossier.code, RECEPTIONIST, MONDAY_9AM)
    assert received.status == "received" and received.status_code == 2
    # 10 working days from Monday 2 March 09:00 → Monday 16 March 09:00 (no holidays in between)
    assert received.due_at == datetime(2026, 3, 16, 2, 0, tzinfo=timezone.utc)
    event = outbox(uow)[-1]
    assert event["event_type"] == "dossier_received"
    assert datetime.fromisoformat(event["data"]["due_at"]) == received.due_at


def test_unknown_procedure_is_not_found(uow, policy):
    with pytest.raises(NotFound) as error:
        submit(uow, policy, procedure="9.999999")
    assert error.value.field == "procedure_code"


def test_illegal_transition_names_the_allowed_actions(uow, policy):
    dossier = submit(uow, policy)
    dossiers.receive(uow, policy, dossier.code, RECEPTIONIST, MONDAY_9AM)
    with pytest.raises(IllegalTransition) as error:
        dossiers.refuse(uow, dossier.code, "thiếu giấy tờ", RECEPTIONIST, MONDAY_9AM)
    assert error.value.details["allowed"] == ["request_supplement", "withdraw", "reschedule"]
    with pytest.raises(IllegalTransition):
        dossiers.return_result(uow, dossier.code, "counter", RECEPTIONIST, MONDAY_9AM)


def test_refusal_needs_a_reason_and_records_it(uow, policy):
    dossier = submit(uow, policy)
    with pytest.raises(ValidationFailed) as error:
        dossiers.refuse(uow, dossier.code, "  ", RECEPTIONIST, MONDAY_9AM)
    assert error.value.field == "reason"
    refused = dossiers.refuse(uow, dossier.code, "Hồ sơ không thuộc thẩm quyền", RECEPTIONIST, MONDAY_9AM)
    assert (refused.status, refused.status_code, refused.refusal_reason) == ("refused", 3, "Hồ sơ không thuộc thẩm quyền")
    assert [h.action for h in refused.history] == ["submit", "refuse"]
    assert refused.history[-1].actor == RECEPTIONIST.username


def test_lifecycle_tolerates_reordered_workflow_events(uow, policy):
    dossier = submit(uow, policy)
    dossiers.receive(uow, policy, dossier.code, RECEPTIONIST, MONDAY_9AM)
    finished = datetime(2026, 3, 10, 3, 0, tzinfo=timezone.utc)
    dossiers.result_ready(uow, {"dossier_code": dossier.code, "agency_code": COMMUNE, "finished_at": finished})
    # a task_assigned that arrives late must not move the dossier back to processing
    dossiers.task_assigned(uow, {"dossier_code": dossier.code, "agency_code": LAND_OFFICE, "step": "x",
                                 "assigned_at": MONDAY_9AM})
    uow.commit()
    assert dossier.status == "result_ready" and dossier.status_code == 9
    assert LAND_OFFICE in set(dossier.agencies)
    returned = dossiers.return_result(uow, dossier.code, "counter", RECEPTIONIST, finished)
    assert (returned.status, returned.status_code) == ("returned", 10)


def test_staff_of_an_uninvolved_agency_cannot_read_the_dossier(uow, policy):
    dossier = submit(uow, policy)
    outsider = Caller("specialist@000.00.15.H56", "000.00.15.H56", ("specialist",))
    with pytest.raises(Forbidden):
        dossiers.get_for_staff(uow, dossier.code, outsider, policy.tree)
    dossiers.receive(uow, policy, dossier.code, RECEPTIONIST, MONDAY_9AM)
    dossiers.task_assigned(uow, {"dossier_code": dossier.code, "agency_code": LAND_OFFICE, "step": "x",
                                 "assigned_at": MONDAY_9AM})
    uow.commit()
    land = Caller("specialist@" + LAND_OFFICE, LAND_OFFICE, ("specialist",))
    assert dossiers.get_for_staff(uow, dossier.code, land, policy.tree).status == "processing"


def test_catalog_search_ignores_diacritics(policy):
    assert policy.catalog.search("dang ky khai sinh")[0].code == "1.001193"  # the name as typed first
    assert policy.catalog.search("dang ky khai si")[0].code == "1.001193"  # still typing
    assert "1.000656" in [p.code for p in policy.catalog.search("ĐĂNG KÝ KHAI TỬ")]


def test_due_date_skips_tet_2026(uow, policy):
    """Received Friday 13 Feb 2026 at 10:00, the eve of the Tết break (16–20 Feb are days off):
    3 working days for a marital-status certificate end on Wednesday 25 Feb at 10:00."""
    marital = "1.004873"
    receptionist = Caller("receptionist@000.20.02.H56", "000.20.02.H56", ("receptionist",))
    eve = datetime(2026, 2, 13, 3, 0, tzinfo=timezone.utc)
    dossier = submit(uow, policy, procedure=marital, now=eve)
    received = dossiers.receive(uow, policy, dossier.code, receptionist, eve)
    assert received.due_at == datetime(2026, 2, 25, 3, 0, tzinfo=timezone.utc)


def test_due_date_counts_a_swapped_working_saturday(uow, policy):
    """31 Aug 2026 is a day off swapped for Saturday 22 Aug, which becomes a working day:
    1 working day from Friday 21 Aug 09:00 is Saturday 22 Aug 09:00."""
    friday = datetime(2026, 8, 21, 2, 0, tzinfo=timezone.utc)
    dossier = submit(uow, policy, procedure="2.000635", now=friday)  # at Hạc Thành, the applicant's commune
    received = dossiers.receive(uow, policy, dossier.code, RECEPTIONIST, friday)
    assert received.due_at == datetime(2026, 8, 22, 2, 0, tzinfo=timezone.utc)


@pytest.mark.parametrize("received_local_hour, due_local", [
    (10, datetime(2026, 3, 2, 10, 0, tzinfo=timezone.utc)),   # Monday 10:00 → Monday 17:00 (+07)
    (16, datetime(2026, 3, 3, 10, 0, tzinfo=timezone.utc)),   # after the 15:00 cut-off → Tuesday 17:00
])
def test_birth_registration_is_due_within_the_day(uow, policy, received_local_hour, due_local):
    received_at = datetime(2026, 3, 2, received_local_hour - 7, 0, tzinfo=timezone.utc)
    dossier = submit(uow, policy, procedure="1.001193", now=received_at)
    assert dossiers.receive(uow, policy, dossier.code, RECEPTIONIST, received_at).due_at == due_local



def test_the_newborn_bundle_is_due_in_3_working_days_counted_after_the_cut_off(uow, policy):
    """Decree 63/2024, Quyết định 296/QĐ-VPCP: at most 3 working days, after 15:00 counted from the next
    working day. Received Friday 13 Mar 2026 at 16:00 → Monday to Wednesday → Wednesday 18 Mar, 17:00
    (not 10 calendar days, as the catalogue had it under the wrong code 1.001022)."""
    friday_4pm = datetime(2026, 3, 13, 9, 0, tzinfo=timezone.utc)
    dossier = submit(uow, policy, procedure="2.000986", now=friday_4pm)
    received = dossiers.receive(uow, policy, dossier.code, RECEPTIONIST, friday_4pm)
    assert received.due_at == datetime(2026, 3, 18, 10, 0, tzinfo=timezone.utc)


def test_a_judicial_record_certificate_is_due_in_10_calendar_days(uow, policy):
    """Law on Judicial Records 2009 art. 48, "không quá 10 ngày": calendar days, not working days."""
    tuesday = datetime(2026, 3, 10, 2, 0, tzinfo=timezone.utc)
    dossier = submit(uow, policy, procedure="2.000505", now=tuesday)
    police = Caller("receptionist@000.00.15.H56", "000.00.15.H56", ("receptionist",))
    received = dossiers.receive(uow, policy, dossier.code, police, tuesday)
    assert received.due_at.astimezone(timezone.utc).date() == datetime(2026, 3, 20).date()  # working days: 24 Mar
