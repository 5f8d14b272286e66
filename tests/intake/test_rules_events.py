"""Intake owns the dossier's state: every event it publishes about a dossier carries the status it led to,
its code, the appointment in force after it and the dossier's version (1 at submission, one more per
event, in emit order, also when several are applied in one transaction). In-memory fakes."""
from datetime import datetime, timedelta, timezone

from motcua.contracts.events import EVENT_SCHEMAS, STATUS_CODES, DossierEvent
from services.intake import dossiers
from tests.intake.test_dossiers import MONDAY_9AM, RECEPTIONIST, outbox, proof, submission, submit

LAND_OFFICE = "000.12.01.H56"
DOSSIER_EVENTS = {name for name, (_, schema) in EVENT_SCHEMAS.items() if isinstance(schema, DossierEvent)}


def later(hours):
    return MONDAY_9AM + timedelta(hours=hours)


def workflow(code, **data):
    return {"dossier_code": code, "agency_code": LAND_OFFICE, **data}


def every_life(uow, policy) -> list:
    """Dossiers taken down every path on which intake publishes an event."""
    long = submit(uow, policy)
    dossiers.request_supplement(uow, long.code, ["Đơn"], None, RECEPTIONIST, later(1))  # before reception
    dossiers.supplement(uow, policy, long.code, None, proof(), later(2))
    dossiers.receive(uow, policy, long.code, RECEPTIONIST, later(3))
    dossiers.reschedule(uow, long.code, long.due_at + timedelta(days=3), "Chờ xác minh", RECEPTIONIST, later(4))
    dossiers.task_assigned(uow, workflow(long.code, step="Thẩm định", assigned_at=later(5)))
    dossiers.supplement_needed(uow, workflow(long.code, items=["Sơ đồ"], requested_by="chuyenvien",
                                             requested_at=later(6)))
    uow.commit()
    dossiers.supplement(uow, policy, long.code, RECEPTIONIST, None, later(7))
    dossiers.payment_required(uow, workflow(long.code, amount_vnd=500_000, required_at=later(8)))
    uow.commit()
    dossiers.confirm_payment(uow, policy, long.code, "BL-1", RECEPTIONIST, later(9))
    dossiers.result_ready(uow, workflow(long.code, finished_at=later(10)))
    uow.commit()
    dossiers.return_result(uow, long.code, "counter", RECEPTIONIST, later(11))
    dossiers.rate(uow, long.code, 5, None, None, proof(), later(12))

    refused = submit(uow, policy)
    dossiers.refuse(uow, refused.code, "Không thuộc thẩm quyền", RECEPTIONIST, later(1))
    withdrawn = submit(uow, policy)
    dossiers.withdraw(uow, withdrawn.code, None, None, proof(), later(1))
    stopped = submit(uow, policy)
    dossiers.receive(uow, policy, stopped.code, RECEPTIONIST, later(1))
    dossiers.processing_stopped(uow, workflow(stopped.code, stopped_by="chuyenvien", reason="Quá hạn bổ sung",
                                              stopped_at=later(2)))
    uow.commit()
    receipt = {"key": "receipt:bien_lai", "filename": "bl.pdf", "content_type": "application/pdf", "size": 9,
               "sha256": "c" * 64}
    stopped.fee_paid(500_000, "BL-1", receipt, later(2))  # its fee paid online
    stopped.payment_refunded("ORDER-1", 500_000, "RF-1", later(3))  # the platform returned an online payment
    stopped.payment_refunded("ORDER-1", 500_000, "RF-1", later(4))  # the same refund again: nothing more
    dossiers.publish(uow, stopped)
    uow.commit()
    posted = dossiers.submit(uow, policy, {**submission(), "postal": {"delivery": True}}, None, MONDAY_9AM)
    dossiers.receive(uow, policy, posted.code, RECEPTIONIST, later(1))
    dossiers.result_ready(uow, workflow(posted.code, finished_at=later(2)))
    posted.shipment_updated("delivery", "delivered", "EB000000001VN", "14", later(3))  # the carrier's news
    dossiers.publish(uow, posted)
    uow.commit()
    return [long, refused, withdrawn, stopped, posted]


def test_every_event_about_a_dossier_carries_its_state_and_version(uow, policy):
    lives = every_life(uow, policy)
    events = outbox(uow)
    assert {e["event_type"] for e in events} == DOSSIER_EVENTS  # every kind intake can publish, seen here
    for dossier in lives:
        own = [e["data"] for e in events if e["data"]["code"] == dossier.code]
        assert [e["dossier_version"] for e in own] == list(range(1, len(own) + 1))
        assert dossier.version == len(own) == len(dossier.history)
        received = False
        for data, entry in zip(own, dossier.history):
            assert (data["status"], data["status_code"]) == (entry.status, STATUS_CODES[entry.status])
            received = received or entry.action == "receive"
            assert (data["due_at"] is not None) == received  # no appointment before reception
        assert (own[-1]["status"], own[-1]["due_at"]) == (
            dossier.status, dossier.due_at and dossier.due_at.isoformat())


def test_events_applied_in_one_transaction_get_consecutive_versions_in_order(uow, policy):
    dossier = submit(uow, policy)
    dossiers.receive(uow, policy, dossier.code, RECEPTIONIST, MONDAY_9AM)
    finished = datetime(2026, 3, 4, 2, tzinfo=timezone.utc)
    dossiers.task_assigned(uow, workflow(dossier.code, step="Thẩm định", assigned_at=MONDAY_9AM))
    dossiers.task_assigned(uow, workflow(dossier.code, step="Ký", assigned_at=MONDAY_9AM))  # nothing to publish
    dossiers.result_ready(uow, workflow(dossier.code, finished_at=finished))
    uow.commit()
    assert uow.commits == 3
    assert [(e["event_type"], e["data"]["dossier_version"], e["data"]["status"]) for e in outbox(uow)] == [
        ("dossier_submitted", 1, "submitted"), ("dossier_received", 2, "received"),
        ("dossier_processing_started", 3, "processing"), ("dossier_result_ready", 4, "result_ready")]


def test_what_publishes_nothing_moves_no_version(uow, policy):
    dossier = submit(uow, policy)
    dossiers.receive(uow, policy, dossier.code, RECEPTIONIST, MONDAY_9AM)
    dossiers.delay_predicted(uow, workflow(dossier.code, current_agency_code=LAND_OFFICE, proposed_due_at=later(300)))
    dossiers.task_completed(uow, workflow(dossier.code, completed_by="chuyenvien", completed_at=later(1), documents=[
        {"key": "bien_ban", "filename": "bb.pdf", "content_type": "application/pdf", "size": 9, "sha256": "b" * 64}]))
    uow.commit()
    assert (dossier.version, len(outbox(uow))) == (2, 2)
    assert dossier.proposed_due_at == later(300) and dossier.documents[-1].key == "step:bien_ban"
