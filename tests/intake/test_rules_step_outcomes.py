"""What workflow's step actions do to a dossier in intake: a supplement asked through the counter,
the payment pause (status 6) and its confirmation, a stop (status 8), a refused result, the draft of
form 04 when a delay is foreseen. Each is applied once and ignored when it comes too late."""
from datetime import datetime, timezone
from io import BytesIO

import pytest
from pypdf import PdfReader

from motcua.contracts.views import DossierViewV1
from motcua.errors import Conflict, Forbidden, IllegalTransition
from services.intake import dossiers, forms
from tests.intake.test_forms import no_entry, officers
from tests.intake.test_dossiers import APPLICANT, COMMUNE, MONDAY_9AM, RECEPTIONIST, XA_RECEPTIONIST, outbox, submit

LAND_OFFICE, TAX_OFFICE = "000.12.01.H56", "000.00.18.H56"


def _text(pdf: bytes) -> str:
    return " ".join("".join(page.extract_text() for page in PdfReader(BytesIO(pdf)).pages).split())


def utc(*args):
    return datetime(*args, tzinfo=timezone.utc)


def processing(uow, policy):
    dossier = submit(uow, policy)  # 1.012786: 10 working days at the commune
    dossiers.receive(uow, policy, dossier.code, RECEPTIONIST, MONDAY_9AM)
    dossiers.task_assigned(uow, {"dossier_code": dossier.code, "agency_code": LAND_OFFICE, "step": "Thẩm định",
                                 "assigned_at": MONDAY_9AM})
    uow.commit()
    assert dossier.status == "processing"
    return dossier


def test_a_step_asks_the_counter_and_form_02_goes_out_in_its_name(uow, policy):
    dossier = processing(uow, policy)
    dossiers.supplement_needed(uow, {"dossier_code": dossier.code, "agency_code": LAND_OFFICE, "task_id": "t1",
                                     "items": ["Sơ đồ thửa đất"], "note": "", "requested_by": "chuyenvien",
                                     "requested_at": utc(2026, 3, 3, 2)})
    uow.commit()
    assert (dossier.status, dossier.status_code, dossier.paused_at) == ("supplement_requested", 5, utc(2026, 3, 3, 2))
    event = outbox(uow)[-1]
    assert (event["event_type"], event["data"]["items"]) == ("supplement_requested", ["Sơ đồ thửa đất"])
    assert dossier.history[-1].actor == f"chuyenvien ({LAND_OFFICE})"


def test_payment_pauses_and_the_counters_confirmation_resumes_with_the_unpaid_time_added(uow, policy):
    dossier = processing(uow, policy)
    due = dossier.due_at
    dossiers.payment_required(uow, {"dossier_code": dossier.code, "agency_code": TAX_OFFICE, "task_id": "t2",
                                    "amount_vnd": 12_500_000, "note": "Lệ phí trước bạ",
                                    "required_at": utc(2026, 3, 3, 2)})  # Tuesday 09:00
    uow.commit()
    assert (dossier.status, dossier.status_code, dossier.payment_amount_vnd) == ("awaiting_payment", 6, 12_500_000)
    event = outbox(uow)[-1]
    assert (event["event_type"], event["data"]["amount_vnd"]) == ("payment_requested", 12_500_000)
    assert event["data"]["contact"]["phone"] == APPLICANT["phone"]  # notify tells the applicant

    with pytest.raises(Forbidden):  # another agency's counter
        dossiers.confirm_payment(uow, policy, dossier.code, "BL-1", XA_RECEPTIONIST, utc(2026, 3, 4, 2))
    paid = dossiers.confirm_payment(uow, policy, dossier.code, "BL-0042", RECEPTIONIST, utc(2026, 3, 4, 2))
    assert (paid.status, paid.status_code, paid.payment_receipt) == ("processing", 4, "BL-0042")
    assert paid.due_at == utc(2026, 3, 17, 2)  # one working day (Tuesday 09:00 → Wednesday 09:00) later
    assert paid.due_at > due
    event = outbox(uow)[-1]
    assert (event["event_type"], event["data"]["receipt_number"]) == ("payment_received", "BL-0042")
    with pytest.raises(IllegalTransition):
        dossiers.confirm_payment(uow, policy, dossier.code, "BL-0042", RECEPTIONIST, utc(2026, 3, 4, 3))


def test_a_late_payment_request_after_withdrawal_is_ignored(uow, policy):
    dossier = processing(uow, policy)
    dossiers.withdraw(uow, dossier.code, "đổi ý", RECEPTIONIST, None, utc(2026, 3, 3, 1))
    dossiers.payment_required(uow, {"dossier_code": dossier.code, "agency_code": TAX_OFFICE, "task_id": "t2",
                                    "amount_vnd": 1, "required_at": utc(2026, 3, 3, 2)})
    assert dossier.status == "withdrawn"


def test_a_stop_is_status_8_with_its_reason(uow, policy):
    dossier = processing(uow, policy)
    dossiers.processing_stopped(uow, {"dossier_code": dossier.code, "agency_code": LAND_OFFICE,
                                      "stopped_at": utc(2026, 3, 5, 2), "stopped_by": "chuyenvien",
                                      "reason": "Quá hạn bổ sung"})
    uow.commit()
    assert (dossier.status, dossier.status_code, dossier.stop_reason) == ("stopped", 8, "Quá hạn bổ sung")
    assert outbox(uow)[-1]["event_type"] == "dossier_stopped"
    assert dossiers.allowed_actions(dossier.status) == []
    notice = _text(forms.render("05", dossier, policy.catalog, policy.calendar.tz, lambda code: [], officers, no_entry))
    assert "THÔNG BÁO DỪNG GIẢI QUYẾT HỒ SƠ" in notice and "Quá hạn bổ sung" in notice and dossier.code in notice
    assert "Thanh Hóa, ngày 05 tháng 03 năm 2026" in notice and "ĐẠI DIỆN ỦY BAN NHÂN DÂN PHƯỜNG HẠC THÀNH" in notice
    assert forms.UNSIGNED in notice  # the land office's officer stopped it: the ward's representative signs by hand


def test_a_refused_result_is_ready_with_its_reason_and_returned_as_usual(uow, policy):
    dossier = processing(uow, policy)
    dossiers.result_ready(uow, {"dossier_code": dossier.code, "agency_code": LAND_OFFICE,
                                "finished_at": utc(2026, 3, 5, 2), "outcome": "refused", "reason": "Đất tranh chấp"})
    uow.commit()
    assert (dossier.status, dossier.result_outcome, dossier.result_note) == ("result_ready", "refused", "Đất tranh chấp")
    view = dossiers.view(dossier, policy.calendar.tz, policy.catalog)
    assert (view["result_outcome"], view["result_note"]) == ("refused", "Đất tranh chấp")


def test_a_foreseen_delay_shows_the_counter_the_appointment_to_propose(uow, policy):
    dossier = processing(uow, policy)
    dossiers.delay_predicted(uow, {"dossier_code": dossier.code, "agency_code": COMMUNE,
                                   "current_agency_code": LAND_OFFICE, "due_at": dossier.due_at,
                                   "proposed_due_at": utc(2026, 3, 20, 9), "detected_at": utc(2026, 3, 12, 2)})
    uow.commit()
    assert dossiers.view(dossier, policy.calendar.tz, policy.catalog)["proposed_due_at"] == "2026-03-20T16:00:00+07:00"
    assert "reschedule" in dossiers.allowed_actions(dossier.status)


def test_form_04_is_drafted_from_the_forecast_until_the_counter_issues_it(uow, policy):
    dossier = processing(uow, policy)
    with pytest.raises(Conflict):  # no apology is due yet
        forms.render("04", dossier, policy.catalog, policy.calendar.tz, lambda code: [], officers, no_entry)
    dossiers.delay_predicted(uow, {"dossier_code": dossier.code, "agency_code": COMMUNE,
                                   "current_agency_code": LAND_OFFICE, "due_at": dossier.due_at,
                                   "proposed_due_at": utc(2026, 3, 20, 9), "detected_at": utc(2026, 3, 12, 2)})
    draft = _text(forms.render("04", dossier, policy.catalog, policy.calendar.tz, lambda code: [], officers, no_entry))
    assert "DỰ THẢO" in draft and "20/03/2026" in draft and dossier.code in draft
    dossiers.reschedule(uow, dossier.code, utc(2026, 3, 23, 9), "Chờ đo đạc lại", RECEPTIONIST, utc(2026, 3, 12, 3))
    issued = _text(forms.render("04", dossier, policy.catalog, policy.calendar.tz, lambda code: [], officers, no_entry))
    assert "DỰ THẢO" not in issued and "23/03/2026" in issued and "Chờ đo đạc lại" in issued


def _unknown_keys(data, schema, path="") -> list[str]:
    """Keys of `data` that `schema` has no field for (a dump would drop them silently)."""
    unknown = []
    for key, value in data.items():
        field = schema.fields.get(key)
        if field is None:
            unknown.append(f"{path}{key}")
            continue
        nested = getattr(getattr(field, "inner", field), "schema", None)
        for item in (value if isinstance(value, list) else [value]):
            if nested is not None and isinstance(item, dict):
                unknown += _unknown_keys(item, nested, f"{path}{key}.")
    return unknown


def test_the_view_is_exactly_the_contracts_dossier_view(uow, policy):
    """Intake builds the view in the shape of motcua.contracts.views.DossierViewV1 (OpenAPI documents it),
    without dumping it: nothing it builds may be missing from the contract, nor the contract promise what
    it does not build, and the contract's dump of it changes nothing."""
    dossier = processing(uow, policy)
    dossiers.delay_predicted(uow, {"dossier_code": dossier.code, "agency_code": COMMUNE,
                                   "current_agency_code": LAND_OFFICE, "due_at": dossier.due_at,
                                   "proposed_due_at": utc(2026, 3, 20, 9), "detected_at": utc(2026, 3, 12, 2)})
    uow.commit()
    built = dossiers.view(dossier, policy.calendar.tz, policy.catalog)
    assert built["history"] and built["applicant"]
    assert _unknown_keys(built, DossierViewV1()) == []
    assert set(built) == set(DossierViewV1().fields)
    assert DossierViewV1().dump(built) == built
