"""The public postal service in intake's rules (bưu chính công ích): what the applicant asks for at
submission, the shipments it owes and when, the carrier's news in the history, a result delivered by post
returned (status 10, method postal)."""
import pytest

from motcua.errors import Conflict, ValidationFailed
from services.intake import dossiers
from tests.intake.test_dossiers import APPLICANT, MONDAY_9AM, RECEPTIONIST, outbox, submission
from tests.intake.test_rules_step_outcomes import LAND_OFFICE, utc


def by_post(uow, policy, **asked):
    dossier = dossiers.submit(uow, policy, {**submission(), "postal": asked}, None, MONDAY_9AM)
    uow.commit()
    return dossier


def test_a_pickup_is_owed_at_submission_and_a_delivery_once_the_result_is_ready(uow, policy):
    dossier = by_post(uow, policy, pickup=True, delivery=True)
    assert dossier.postal_services == ("pickup", "delivery")
    assert uow.shipments.owed == {(dossier.code, "pickup"): MONDAY_9AM}
    dossiers.receive(uow, policy, dossier.code, RECEPTIONIST, MONDAY_9AM)
    dossiers.task_assigned(uow, {"dossier_code": dossier.code, "agency_code": LAND_OFFICE, "step": "Thẩm định",
                                 "assigned_at": MONDAY_9AM})
    dossiers.result_ready(uow, {"dossier_code": dossier.code, "agency_code": LAND_OFFICE,
                                "finished_at": utc(2026, 3, 5, 2)})
    uow.commit()
    assert uow.shipments.owed[(dossier.code, "delivery")] == utc(2026, 3, 5, 2)

    dossier.shipment_updated("delivery", "picked_up", "EB000000001VN", "6", utc(2026, 3, 5, 4))
    dossier.shipment_updated("delivery", "delivered", "EB000000001VN", "14", utc(2026, 3, 6, 3))
    dossier.shipment_updated("delivery", "delivered", "EB000000001VN", "14", utc(2026, 3, 6, 3))  # a repeat
    dossiers.publish(uow, dossier)
    uow.commit()
    assert (dossier.status, dossier.return_method, dossier.returned_at) == ("returned", "postal", utc(2026, 3, 6, 3))
    events = [(e["event_type"], e["data"].get("shipment_status")) for e in outbox(uow)[-3:]]
    assert events == [("postal_shipment_updated", "picked_up"), ("postal_shipment_updated", "delivered"),
                      ("result_returned", None)]
    returned = outbox(uow)[-1]["data"]
    assert (returned["method"], returned["returned_by"], returned["status_code"]) == ("postal", "vnpost", 10)
    assert [h.note for h in dossier.history if h.action == "postal"] == [
        "delivery picked_up EB000000001VN", "delivery delivered EB000000001VN"]


def test_only_what_was_asked_and_only_with_an_address(uow, policy):
    dossier = by_post(uow, policy, delivery=True)
    assert uow.shipments.owed == {}  # no pickup asked: nothing owed at submission
    with pytest.raises(Conflict):
        dossier.shipment_updated("pickup", "picked_up", None, "6", MONDAY_9AM)
    with pytest.raises(ValidationFailed) as refused:
        dossiers.submit(uow, policy, {**submission(), "applicant": {**APPLICANT, "address": None},
                                      "postal": {"pickup": True}}, None, MONDAY_9AM)
    assert refused.value.field == "applicant.address"


def test_a_result_delivered_before_it_is_ready_returns_nothing(uow, policy):
    dossier = by_post(uow, policy, delivery=True)
    dossier.shipment_updated("delivery", "delivered", None, "14", MONDAY_9AM)  # news out of order
    assert dossier.status == "submitted" and dossier.returned_at is None
