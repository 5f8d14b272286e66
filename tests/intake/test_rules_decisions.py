"""Reception decisions beyond receive/refuse: supplement requests (clock paused), supplements
(clock resumed or restarted), withdrawal; each with who, when and which agency. In-memory fakes."""
from datetime import datetime, timezone

import pytest

from motcua.errors import Forbidden, IllegalTransition, NotFound, Unauthorized, ValidationFailed, WrongKey
from services.intake import dossiers
from tests.intake.test_dossiers import (
    APPLICANT, COMMUNE, MONDAY_9AM, RECEPTIONIST, XA_RECEPTIONIST, outbox, proof, submit)


def utc(*args):
    return datetime(*args, tzinfo=timezone.utc)


def test_supplement_pauses_the_clock_and_resumes_with_the_paused_working_time(uow, policy):
    dossier = submit(uow, policy)  # 10 working days, commune
    dossiers.receive(uow, policy, dossier.code, RECEPTIONIST, MONDAY_9AM)
    assert dossier.due_at == utc(2026, 3, 16, 2)  # Monday 16 March 09:00
    asked_at = utc(2026, 3, 3, 2)  # Tuesday 09:00
    paused = dossiers.request_supplement(uow, dossier.code, ["Bản sao CCCD", " Sơ đồ thửa đất "],
                                         "nộp bổ sung tại Bộ phận Một cửa", RECEPTIONIST, asked_at)
    assert (paused.status, paused.status_code, paused.paused_at) == ("supplement_requested", 5, asked_at)
    event = outbox(uow)[-1]
    assert event["event_type"] == "supplement_requested"
    assert event["data"]["items"] == ["Bản sao CCCD", "Sơ đồ thửa đất"]
    assert event["data"]["contact"]["phone"] == APPLICANT["phone"]
    # supplied Thursday 5 March 10:00: 6 h (Tue) + 8 h (Wed) + 3 h (Thu) of working time stood still
    resumed = dossiers.supplement(uow, policy, dossier.code, None, proof(), utc(2026, 3, 5, 3))
    assert (resumed.status, resumed.status_code, resumed.paused_at) == ("received", 2, None)
    # Monday 16 March 09:00 + 17 working hours → Wednesday 18 March 10:00
    assert resumed.due_at == utc(2026, 3, 18, 3)
    event = outbox(uow)[-1]
    assert (event["event_type"], event["data"]["status"]) == ("dossier_supplemented", "received")
    assert datetime.fromisoformat(event["data"]["due_at"]) == resumed.due_at
    [request] = resumed.supplements
    assert (request.requested_by, request.supplemented_by, request.agency_code) == (
        RECEPTIONIST.username, "applicant", COMMUNE)
    assert (request.due_before, request.due_after) == (utc(2026, 3, 16, 2), utc(2026, 3, 18, 3))
    assert [(h.action, h.actor, h.agency_code) for h in resumed.history][-2:] == [
        ("request_supplement", RECEPTIONIST.username, COMMUNE), ("supplement", "applicant", COMMUNE)]


def test_a_supplement_over_a_weekend_adds_only_working_time(uow, policy):
    dossier = submit(uow, policy)
    dossiers.receive(uow, policy, dossier.code, RECEPTIONIST, MONDAY_9AM)
    dossiers.request_supplement(uow, dossier.code, ["Đơn"], None, RECEPTIONIST, utc(2026, 3, 6, 9))  # Fri 16:00
    resumed = dossiers.supplement(uow, policy, dossier.code, RECEPTIONIST, None, utc(2026, 3, 9, 0, 30))  # Mon 07:30
    assert resumed.due_at == utc(2026, 3, 16, 3, 30)  # + 1 h Friday + 30 min Monday


def test_a_procedure_that_restarts_the_clock_counts_its_whole_time_again(uow, policy):
    permit = "1.009994"  # construction permit: 15 working days, on_supplement: restart
    dossier = submit(uow, policy, procedure=permit)
    dossiers.receive(uow, policy, dossier.code, XA_RECEPTIONIST, MONDAY_9AM)
    dossiers.request_supplement(uow, dossier.code, ["Bản vẽ"], None, XA_RECEPTIONIST, utc(2026, 3, 3, 2))
    resumed = dossiers.supplement(uow, policy, dossier.code, XA_RECEPTIONIST, None, utc(2026, 3, 10, 2))
    assert resumed.due_at == utc(2026, 3, 31, 2)  # 15 working days from Tuesday 10 March 09:00


def test_a_supplement_asked_before_reception_returns_to_the_counter(uow, policy):
    dossier = submit(uow, policy)
    dossiers.request_supplement(uow, dossier.code, ["Đơn"], None, RECEPTIONIST, MONDAY_9AM)
    resumed = dossiers.supplement(uow, policy, dossier.code, None, proof(), utc(2026, 3, 4, 2))
    assert (resumed.status, resumed.due_at) == ("submitted", None)
    assert dossiers.receive(uow, policy, dossier.code, RECEPTIONIST, utc(2026, 3, 4, 2)).due_at == utc(2026, 3, 18, 2)


def test_routed_while_paused_resumes_processing(uow, policy):
    dossier = submit(uow, policy)
    dossiers.receive(uow, policy, dossier.code, RECEPTIONIST, MONDAY_9AM)
    dossiers.request_supplement(uow, dossier.code, ["Đơn"], None, RECEPTIONIST, MONDAY_9AM)
    dossiers.task_assigned(uow, {"dossier_code": dossier.code, "agency_code": COMMUNE, "step": "x",
                                 "assigned_at": MONDAY_9AM})
    uow.commit()
    assert dossier.status == "supplement_requested"
    assert dossiers.supplement(uow, policy, dossier.code, RECEPTIONIST, None, MONDAY_9AM).status == "processing"


def test_supplement_request_rules(uow, policy):
    dossier = submit(uow, policy)
    with pytest.raises(ValidationFailed) as error:
        dossiers.request_supplement(uow, dossier.code, ["  "], None, RECEPTIONIST, MONDAY_9AM)
    assert error.value.field == "items"
    with pytest.raises(Forbidden):
        dossiers.request_supplement(uow, dossier.code, ["Đơn"], None, XA_RECEPTIONIST, MONDAY_9AM)
    with pytest.raises(IllegalTransition) as error:
        dossiers.supplement(uow, policy, dossier.code, RECEPTIONIST, None, MONDAY_9AM)
    assert error.value.details["allowed"] == ["receive", "refuse", "request_supplement", "withdraw"]


def test_the_applicant_proves_the_tracking_key_then_the_id_number(uow, policy):
    dossier = submit(uow, policy)
    with pytest.raises(Unauthorized) as error:
        dossiers.withdraw(uow, dossier.code, None, None, None, MONDAY_9AM)
    assert error.value.field == "key"
    with pytest.raises(Unauthorized) as error:
        dossiers.withdraw(uow, dossier.code, None, None, proof(id_number=None), MONDAY_9AM)
    assert error.value.field == "id_number"
    # a wrong key is answered exactly as a code that does not exist, whatever the ID number
    with pytest.raises(WrongKey) as wrong_key:
        dossiers.withdraw(uow, dossier.code, None, None, proof(key="0000"), MONDAY_9AM)
    with pytest.raises(NotFound) as unknown:
        dossiers.withdraw(uow, dossier.code[:-4] + "9999", None, None, proof(key="0000"), MONDAY_9AM)
    assert (wrong_key.value.message, wrong_key.value.field) == (
        unknown.value.message.replace("9999", dossier.code[-4:]), unknown.value.field)
    with pytest.raises(Forbidden) as error:
        dossiers.withdraw(uow, dossier.code, None, None, proof(id_number="001203004999"), MONDAY_9AM)
    assert error.value.field == "id_number" and "001203004999" not in error.value.message
    with pytest.raises(Forbidden):
        dossiers.withdraw(uow, dossier.code, None, XA_RECEPTIONIST, None, MONDAY_9AM)


def test_withdrawal_on_request_then_nothing_more(uow, policy):
    dossier = submit(uow, policy)
    dossiers.receive(uow, policy, dossier.code, RECEPTIONIST, MONDAY_9AM)
    dossiers.request_supplement(uow, dossier.code, ["Đơn"], None, RECEPTIONIST, MONDAY_9AM)
    withdrawn = dossiers.withdraw(uow, dossier.code, "Không có nhu cầu nữa", None, proof(),
                                  utc(2026, 3, 3, 2))
    assert (withdrawn.status, withdrawn.status_code, withdrawn.paused_at) == ("withdrawn", 7, None)
    event = outbox(uow)[-1]
    assert (event["event_type"], event["data"]["withdrawn_by"]) == ("dossier_withdrawn", "applicant")
    with pytest.raises(IllegalTransition) as error:
        dossiers.receive(uow, policy, dossier.code, RECEPTIONIST, MONDAY_9AM)
    assert error.value.details["allowed"] == []
    dossiers.result_ready(uow, {"dossier_code": dossier.code, "agency_code": COMMUNE, "finished_at": MONDAY_9AM})
    assert withdrawn.status == "withdrawn"


def test_returned_result_carries_the_contact_for_notify(uow, policy):
    dossier = submit(uow, policy)
    dossiers.receive(uow, policy, dossier.code, RECEPTIONIST, MONDAY_9AM)
    dossiers.result_ready(uow, {"dossier_code": dossier.code, "agency_code": COMMUNE, "finished_at": MONDAY_9AM})
    dossiers.return_result(uow, dossier.code, "postal", RECEPTIONIST, MONDAY_9AM)
    event = outbox(uow)[-1]
    assert event["event_type"] == "result_returned"
    assert event["data"]["contact"]["email"] == APPLICANT["email"]


def test_a_dossier_keeps_the_procedure_version_it_was_received_under(uow, policy):
    marital = "1.004873"
    old = submit(uow, policy, procedure=marital, now=utc(2022, 12, 30, 2))
    new = submit(uow, policy, procedure=marital, now=MONDAY_9AM)
    assert (old.procedure_version, new.procedure_version) == (1, 2)
    received = dossiers.receive(uow, policy, old.code, XA_RECEPTIONIST, MONDAY_9AM)
    assert received.procedure_version == 1
    assert policy.catalog.procedure(marital, version=1).document("so_ho_khau") is not None
    assert policy.catalog.procedure(marital, on=MONDAY_9AM.date()).document("so_ho_khau") is None


def test_online_terms_apply_to_online_dossiers(policy):
    business = policy.catalog.procedure("2.000720")
    assert (business.terms("counter").fee, business.terms("online").fee) == (100000, 0)


def test_a_new_appointment_apologises_moves_the_due_date_and_records_who_when_why(uow, policy):
    dossier = submit(uow, policy)
    dossiers.receive(uow, policy, dossier.code, RECEPTIONIST, MONDAY_9AM)
    old_due = dossier.due_at  # Monday 16 March 09:00
    new_due = utc(2026, 3, 20, 9)
    moved = dossiers.reschedule(uow, dossier.code, new_due, " Chờ kết quả đo đạc thửa đất ", RECEPTIONIST,
                                utc(2026, 3, 13, 2))
    assert (moved.status, moved.due_at) == ("received", new_due)  # the status does not move
    [apology] = moved.reschedules
    assert (apology.old_due_at, apology.new_due_at, apology.reason, apology.late_apology) == (
        old_due, new_due, "Chờ kết quả đo đạc thửa đất", False)
    assert (moved.history[-1].action, moved.history[-1].actor, moved.history[-1].agency_code) == (
        "reschedule", RECEPTIONIST.username, COMMUNE)
    event = outbox(uow)[-1]
    assert event["event_type"] == "dossier_rescheduled"
    assert datetime.fromisoformat(event["data"]["old_due_at"]) == old_due
    assert datetime.fromisoformat(event["data"]["new_due_at"]) == new_due
    assert event["data"]["contact"]["full_name"] == APPLICANT["full_name"]
    assert dossiers.view(moved, policy.calendar.tz, policy.catalog)["reschedules"][0]["new_due_at"] == \
        "2026-03-20T16:00:00+07:00"

    # after the appointment passed: still accepted, recorded as a late apology
    late = dossiers.reschedule(uow, dossier.code, utc(2026, 3, 27, 9), "Chờ ý kiến Sở Tài nguyên", RECEPTIONIST,
                               utc(2026, 3, 23, 2))
    assert late.reschedules[-1].late_apology is True and late.due_at == utc(2026, 3, 27, 9)


def test_new_appointment_rules(uow, policy):
    dossier = submit(uow, policy)
    with pytest.raises(IllegalTransition) as error:  # not received yet: no appointment to move
        dossiers.reschedule(uow, dossier.code, utc(2026, 4, 1, 2), "lý do", RECEPTIONIST, MONDAY_9AM)
    assert "reschedule" not in error.value.details["allowed"]
    dossiers.receive(uow, policy, dossier.code, RECEPTIONIST, MONDAY_9AM)
    with pytest.raises(ValidationFailed) as error:  # not later than the current appointment
        dossiers.reschedule(uow, dossier.code, dossier.due_at, "lý do", RECEPTIONIST, MONDAY_9AM)
    assert error.value.field == "new_due_at"
    with pytest.raises(ValidationFailed) as error:
        dossiers.reschedule(uow, dossier.code, utc(2026, 4, 1, 2), "  ", RECEPTIONIST, MONDAY_9AM)
    assert error.value.field == "reason"
    with pytest.raises(Forbidden):  # another agency's counter
        dossiers.reschedule(uow, dossier.code, utc(2026, 4, 1, 2), "lý do", XA_RECEPTIONIST, MONDAY_9AM)
    dossiers.request_supplement(uow, dossier.code, ["Sơ đồ thửa đất"], None, RECEPTIONIST, MONDAY_9AM)
    paused = dossiers.reschedule(uow, dossier.code, utc(2026, 4, 1, 2), "lý do", RECEPTIONIST, MONDAY_9AM)
    assert paused.status == "supplement_requested"  # allowed while paused; the pause still counts on resume
    dossiers.withdraw(uow, dossier.code, None, RECEPTIONIST, None, MONDAY_9AM)
    with pytest.raises(IllegalTransition):
        dossiers.reschedule(uow, dossier.code, utc(2026, 4, 2, 2), "lý do", RECEPTIONIST, MONDAY_9AM)
