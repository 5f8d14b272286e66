"""Anonymous submission (issue 12: 1,383 submissions from one address, each with a 20 MB free-form
`form` that travelled the bus): limited per client address at the gateway (429 with Retry-After), and
the declaration bounded before it leaves the gateway, then read by its procedure's fields in intake."""
from __future__ import annotations

import pytest
import requests

from motcua import embedded
from motcua.config import catalog_dir
from motcua.contracts.rpc import MAX_DECLARATION_BYTES
from services.gateway.accounts import seed_demo_accounts
from tests.documents import required_uploads
from tests.infra import gateway_token, migrated_sqlite_urls
from tests.security.conftest import APPLICANT, COMMUNE, bearer, forget_failed_attempts, mocked_gateway

LIMIT = 3
SUBMISSION = {"procedure_code": "1.012786", "channel": "online", "applicant": APPLICANT, "form": {},
              "documents": required_uploads("1.012786")}


@pytest.fixture(scope="module")
def limited(tmp_path_factory):
    """The gateway alone (intake mocked), allowing LIMIT anonymous submissions per address a minute."""
    embedded.install()
    urls = migrated_sqlite_urls(tmp_path_factory.mktemp("submissions"))
    seed_demo_accounts(urls["gateway"], catalog_dir())
    gateway = mocked_gateway(urls, SUBMISSIONS_PER_ADDRESS=LIMIT, SUBMISSION_WINDOW_SECONDS=60,
                             SIGNATURE_CHECKS_PER_ADDRESS=LIMIT, SIGNATURE_CHECK_WINDOW_SECONDS=60)
    yield gateway
    gateway.container.stop()


@pytest.fixture
def gateway(limited):
    limited.intake.reset_mock(return_value=True, side_effect=True)
    limited.intake.submit_dossier.return_value = {"code": f"{COMMUNE}-260302-0001", "status": "submitted"}
    forget_failed_attempts(limited)
    return limited


def post(gateway, body=None, **kwargs) -> requests.Response:
    return requests.post(f"{gateway.url}/api/v1/dossiers", json=body or SUBMISSION, timeout=30, **kwargs)


def test_anonymous_submissions_from_one_address_are_limited(gateway):
    assert [post(gateway).status_code for _ in range(LIMIT)] == [201] * LIMIT
    refused = post(gateway)
    assert refused.status_code == 429 and int(refused.headers["Retry-After"]) > 0
    assert gateway.intake.submit_dossier.call_count == LIMIT  # the refused one never reached intake
    # the portal's form is the same submission: refused too, the form shown again with Retry-After
    page = requests.post(f"{gateway.url}/thu-tuc/1.012786/nop-ho-so", timeout=30, data={
        **{f"applicant.{name}": value for name, value in APPLICANT.items() if name != "email"},
        "idempotency_key": "k" * 32})
    assert page.status_code == 429 and "Retry-After" in page.headers
    assert gateway.intake.submit_dossier.call_count == LIMIT
    # a receptionist at the counter carries a token: not an anonymous submission, not counted
    counter = post(gateway, {**SUBMISSION, "channel": "counter"},
                   headers=bearer(gateway_token(f"receptionist@{COMMUNE}", COMMUNE, "receptionist")))
    assert counter.status_code == 201


def test_a_bad_submission_is_refused_before_it_counts(gateway):
    for _ in range(LIMIT + 2):
        assert post(gateway, {**SUBMISSION, "channel": "fax"}).status_code == 400
    assert post(gateway).status_code == 201


@pytest.mark.parametrize("form, field", [
    ({"notes": "x" * (20 * 1024 * 1024)}, "form"),  # the attack's 20 MB declaration
    ({"notes": "x" * (MAX_DECLARATION_BYTES + 1)}, "form"),
    ({"nested": {"a": [1, 2, 3]}}, "form"),
])
def test_an_oversize_declaration_never_leaves_the_gateway(gateway, form, field):
    response = post(gateway, {**SUBMISSION, "form": form})
    # 400 naming the declaration (or 413, should a body limit of the edge refuse it before parsing)
    assert response.status_code in (400, 413)
    assert response.status_code == 413 or response.json()["error"]["field"] == field
    assert gateway.intake.submit_dossier.call_count == 0


def test_a_declaration_is_checked_against_its_procedures_fields(platform):
    """Through the real intake: a field the procedure does not declare, or a value outside its field's
    bounds, is a 400 naming it; a declaration of its own fields is kept as the catalogue reads it."""
    land = {**SUBMISSION, "procedure_code": "1.013978", "documents": required_uploads("1.013978")}
    unknown = post(platform, {**land, "form": {"land_area_m2": 120, "remarks": "free text"}})
    assert unknown.status_code == 400 and unknown.json()["error"]["field"] == "form.remarks"
    negative = post(platform, {**land, "form": {"land_area_m2": -1}})
    assert negative.status_code == 400 and negative.json()["error"]["field"] == "form.land_area_m2"
    wrong_type = post(platform, {**land, "form": {"fee_exempt": "có"}})
    assert wrong_type.status_code == 400 and wrong_type.json()["error"]["field"] == "form.fee_exempt"
    empty_only = post(platform, {**SUBMISSION, "form": {"land_area_m2": 120}})  # 1.012786 declares no field
    assert empty_only.status_code == 400 and empty_only.json()["error"]["field"] == "form.land_area_m2"
    accepted = post(platform, {**land, "form": {"land_area_m2": "120.5", "land_price_vnd_per_m2": 2_000_000}})
    assert accepted.status_code == 201, accepted.text


def test_anonymous_signature_checks_from_one_address_are_limited(gateway):
    """Each check parses a PDF of up to 5 MB in intake: anyone's count per address, staff's do not."""
    gateway.intake.verify_signature.return_value = {"signed": False, "signatures": []}

    def check(**kwargs):
        return requests.post(f"{gateway.url}/api/v1/signatures/verify", timeout=30,
                             json={"content_base64": "JVBERi0xLjQK"}, **kwargs)

    assert [check().status_code for _ in range(LIMIT)] == [200] * LIMIT
    refused = check()
    assert refused.status_code == 429 and int(refused.headers["Retry-After"]) > 0
    assert gateway.intake.verify_signature.call_count == LIMIT  # the refused one never reached intake
    staff = check(headers=bearer(gateway_token(f"receptionist@{COMMUNE}", COMMUNE, "receptionist")))
    assert staff.status_code == 200
