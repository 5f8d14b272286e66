"""Đánh giá mức độ hài lòng: once per dossier, only after its result was returned, the applicant proving it
with the ID number; the rating leaves through the outbox as `dossier_rated` (no comment, no personal data)."""
from datetime import timedelta

import pytest

from motcua.contracts.events import schema_for
from motcua.errors import Conflict, Forbidden, Unauthorized
from services.intake import dossiers
from tests.intake.test_dossiers import APPLICANT, COMMUNE, MONDAY_9AM, RECEPTIONIST, outbox, proof, submit


def returned(uow, policy):
    dossier = submit(uow, policy)
    dossiers.receive(uow, policy, dossier.code, RECEPTIONIST, MONDAY_9AM)
    finished = MONDAY_9AM + timedelta(days=1)
    dossiers.result_ready(uow, {"dossier_code": dossier.code, "agency_code": COMMUNE, "finished_at": finished})
    return dossiers.return_result(uow, dossier.code, "counter", RECEPTIONIST, finished)


def test_the_applicant_rates_a_returned_dossier_once(uow, policy):
    dossier = returned(uow, policy)
    at = MONDAY_9AM + timedelta(days=2)
    rated = dossiers.rate(uow, dossier.code, 5, "  Cán bộ tận tình ", None, proof(), at)
    assert (rated.rating, rated.rating_comment, rated.rated_at, rated.status) == (5, "Cán bộ tận tình", at, "returned")
    assert (rated.history[-1].action, rated.history[-1].actor) == ("rate", "applicant")
    event = outbox(uow)[-1]
    assert event["event_type"] == "dossier_rated"
    assert event["data"]["rating"] == 5 and event["data"]["agency_code"] == COMMUNE
    assert "comment" not in event["data"] and APPLICANT["id_number"] not in str(event["data"])
    schema_for("dossier_rated")[1].load(event["data"])  # the versioned contract accepts it
    with pytest.raises(Conflict) as again:
        dossiers.rate(uow, dossier.code, 1, None, None, proof(), at)
    assert again.value.field == "rating"


def test_only_a_returned_dossier_is_rated(uow, policy):
    dossier = submit(uow, policy)
    with pytest.raises(Conflict) as refused:
        dossiers.rate(uow, dossier.code, 4, None, None, proof(), MONDAY_9AM)
    assert refused.value.field == "status"


def test_the_applicant_proves_it_with_the_id_number(uow, policy):
    dossier = returned(uow, policy)
    with pytest.raises(Unauthorized):
        dossiers.rate(uow, dossier.code, 4, None, None, None, MONDAY_9AM)
    with pytest.raises(Forbidden):
        dossiers.rate(uow, dossier.code, 4, None, None, proof(id_number="012345678901"), MONDAY_9AM)
