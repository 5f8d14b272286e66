"""intake's `national_portal_records` (issue 15): the applicants' identity for the national portal is
answered to reporting's own token (`motcua tokens reporting`) or a platform admin's alone, checked by
intake itself; anyone else on the bus is refused and the refusal audited."""
import base64
from datetime import timedelta

import pytest
from nameko.testing.services import worker_factory

from motcua.errors import Forbidden, Unauthorized
from motcua.identity import portal_sync_token
from motcua.revocation import AccessCache
from services.intake import dossiers
from services.intake.service import IntakeService
from tests.documents import completed
from tests.infra import TOKENS, VERIFYING, gateway_token
from tests.intake.test_dossiers import APPLICANT, outbox, submission
from tests.intake.test_rules_step_outcomes import MONDAY_9AM

PDF = base64.b64encode(b"%PDF-1.4 don\n%%EOF\n").decode()
REPORTING = portal_sync_token(TOKENS["TOKEN_SIGNING_KEY"], timedelta(hours=6))


@pytest.fixture
def service(uow, policy):
    return worker_factory(IntakeService, db=uow, rules=policy, revocations=AccessCache(5), config=VERIFYING)


@pytest.fixture
def code(uow, policy):
    dossier = dossiers.submit(uow, policy, {**submission(), "documents": completed("1.012786", [
        {"key": "don_de_nghi", "filename": "don.pdf", "content_base64": PDF}])}, None, MONDAY_9AM)
    uow.commit()
    return dossier.code


def test_reporting_and_a_platform_admin_get_the_applicants_identity(service, code):
    for token in (REPORTING, gateway_token("admin", None, "admin")):
        found = service.national_portal_records([code, "000.00.00.H56-000000-0000"], caller_token=token)
        assert list(found) == [code]
        assert found[code]["applicant"]["id_number"] == APPLICANT["id_number"]


@pytest.mark.parametrize("token, refusal", [
    (None, Unauthorized),
    ("not.a.token", Unauthorized),
    (gateway_token("0912345678", None, "applicant"), Forbidden),  # a citizen
    (gateway_token("receptionist@000.00.06.H56", "000.00.06.H56", "receptionist"), Forbidden),  # staff
    (gateway_token("system@000.00.06.H56", "000.00.06.H56", "system"), Forbidden),  # an agency's worker
])
def test_anyone_else_is_refused_and_audited(service, uow, code, token, refusal):
    before = len(outbox(uow))
    with pytest.raises(refusal):
        service.national_portal_records([code], caller_token=token)
    denied = [event for event in outbox(uow)[before:] if event["event_type"] == "access_denied"]
    assert [event["data"]["action"] for event in denied] == ["intake.national_portal_records"]
