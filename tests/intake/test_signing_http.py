"""Signed results end to end over HTTP (embedded bus, SQLite): an officer completes a step with a PDF
through the gateway, intake has it signed by the local CSC signing service with the officer's agency's
certificate and keeps the signed copy; anyone then checks it at the public verification API. When the
signing service is down, the completion answers 503 and nothing reaches workflow."""
from __future__ import annotations

import base64
import hashlib
from pathlib import Path
from types import SimpleNamespace

import pytest
import requests

from motcua.metrics import metrics_for
from services.intake.blobs import LocalBlobStore
from motcua.simulators.signing import SigningSimulator
from tests.documents import completed, required_uploads
from tests.infra import gateway_token, intake_behind_gateway
from tests.intake.test_signing import result_pdf

COMMUNE = "000.20.01.H56"
APPLICANT = {"full_name": "Trần Thị Bình", "id_number": "038190012345", "phone": "0987654321"}


class FakeWorkflow:
    """Workflow's two calls the completion route makes; the completion's details are what it keeps."""

    def __init__(self):
        self.dossier_code, self.completed = None, []

    def get_task(self, task_id, caller_token):
        return {"id": task_id, "dossier_code": self.dossier_code}

    def complete_task(self, task_id, outcome, note, caller_token, details=None, idempotency_key=None):
        self.completed.append(details)
        return {"id": task_id, "dossier_code": self.dossier_code, "status": "done", "outcome": outcome}


@pytest.fixture(scope="module")
def api(tmp_path_factory):
    simulator = SigningSimulator().start()
    workflow = FakeWorkflow()
    settings = {"INTAKE_SIGNING": "csc", "INTAKE_SIGNING_URL": simulator.url, "INTAKE_SIGNING_TIMEOUT_SECONDS": "2"}
    with intake_behind_gateway(tmp_path_factory, "intake-signing", settings,
                               gateway_fakes={"workflow": workflow}) as (url, intake, _gateway, config):
        officer = gateway_token(f"receptionist@{COMMUNE}", COMMUNE, "receptionist", ttl=600)
        yield SimpleNamespace(url=url, staff={"Authorization": f"Bearer {officer}"}, workflow=workflow,
                              simulator=simulator, blobs=LocalBlobStore(Path(config["BLOB_DIR"])), intake=intake)
    simulator.stop()


def complete_with(api, pdf: bytes) -> requests.Response:
    response = requests.post(f"{api.url}/api/v1/dossiers", json={
        "procedure_code": "1.012786", "channel": "online", "applicant": APPLICANT,
        "documents": required_uploads("1.012786")}, timeout=10)
    assert response.status_code == 201, response.text
    api.workflow.dossier_code = response.json()["code"]
    document = {"key": "giay_chung_nhan", "filename": "gcn.pdf", "content_base64": base64.b64encode(pdf).decode()}
    return requests.post(f"{api.url}/api/v1/tasks/t-1/complete", headers=api.staff, timeout=20,
                         json={"outcome": "approve", "note": "Đã ký", "documents": [document]})


def test_a_completed_steps_pdf_is_kept_signed_and_the_public_verification_names_the_agency(api):
    original = result_pdf()
    completed = complete_with(api, original)
    assert completed.status_code == 200, completed.text
    [ref] = api.workflow.completed[-1]["documents"]
    assert ref["sha256"] != hashlib.sha256(original).hexdigest()  # the signed copy, not the upload
    signed = api.blobs.get(ref["sha256"])
    assert signed.startswith(original[:8]) and len(signed) == ref["size"] > len(original)

    # multipart, as the portal's form sends it; no account needed
    checked = requests.post(f"{api.url}/api/v1/signatures/verify", timeout=10,
                            files={"document": ("gcn.pdf", signed, "application/pdf")})
    assert checked.status_code == 200, checked.text
    [signature] = checked.json()["signatures"]
    assert signature["valid"] and signature["trusted"] and signature["agency_code"] == COMMUNE
    assert signature["signed_at"] and checked.json()["sha256"] == ref["sha256"]

    unsigned = requests.post(f"{api.url}/api/v1/signatures/verify", timeout=10,
                             json={"content_base64": base64.b64encode(original).decode()})
    assert unsigned.json() == {"signed": False, "signatures": [], "sha256": hashlib.sha256(original).hexdigest()}
    registry = metrics_for(api.intake).registry  # the connection's own counters, in intake's registry
    assert registry.get_sample_value("motcua_signing_requests_total", {"outcome": "signed"}) >= 1
    assert registry.get_sample_value("motcua_signature_verifications_total", {"result": "valid"}) >= 1
    assert registry.get_sample_value("motcua_signature_verifications_total", {"result": "unsigned"}) >= 1


@pytest.mark.parametrize("body, field", [
    ({"content_base64": "not base64!"}, "content_base64"),
    ({"content_base64": base64.b64encode(b"MZ\x90\x00").decode()}, "content_base64"),
    ({}, "content_base64"),
])
def test_the_verification_names_what_is_wrong_with_the_input(api, body, field):
    answer = requests.post(f"{api.url}/api/v1/signatures/verify", json=body, timeout=10)
    assert answer.status_code == 400, answer.text
    assert answer.json()["error"]["field"] == field


def test_with_the_signing_service_down_the_completion_is_503_and_reaches_no_workflow(api):
    done_before = len(api.workflow.completed)
    api.simulator.faults.down = True
    try:
        completed = complete_with(api, result_pdf("Ket qua 2"))
    finally:
        api.simulator.faults.clear()
    assert completed.status_code == 503, completed.text
    assert "Retry-After" in completed.headers
    assert len(api.workflow.completed) == done_before


def test_a_certified_copy_carries_the_certifying_officers_own_signature(api):
    original = result_pdf("Ban chinh giay khai sinh")
    submitted = requests.post(f"{api.url}/api/v1/dossiers", timeout=10, json={
        "procedure_code": "1.012786", "channel": "online", "applicant": APPLICANT,
        "documents": completed("1.012786", [{"key": "don_de_nghi", "filename": "don.pdf",
                                             "content_base64": base64.b64encode(original).decode()}])})
    code = submitted.json()["code"]
    document = requests.get(f"{api.url}/api/v1/dossiers/{code}", headers=api.staff, timeout=10).json()["documents"][0]
    outsider = {"Authorization": f"Bearer {gateway_token('specialist@000.00.15.H56', '000.00.15.H56', 'specialist')}"}
    refused = requests.post(f"{api.url}/api/v1/dossiers/{code}/documents/{document['id']}/certify", headers=outsider,
                            timeout=20)
    assert refused.status_code == 403, refused.text

    certified = requests.post(f"{api.url}/api/v1/dossiers/{code}/documents/{document['id']}/certify",
                              headers=api.staff, timeout=20)
    assert certified.status_code == 200, certified.text
    [copy] = [d for d in certified.json()["documents"] if d["key"] == "certified:don_de_nghi"]
    assert copy["uploaded_by"] == f"receptionist@{COMMUNE}"
    signed = requests.get(f"{api.url}/api/v1/dossiers/{code}/documents/{copy['id']}", headers=api.staff,
                          timeout=10).content
    [signature] = requests.post(f"{api.url}/api/v1/signatures/verify", timeout=10, json={
        "content_base64": base64.b64encode(signed).decode()}).json()["signatures"]
    assert signature["valid"] and signature["signer_id"] == f"receptionist@{COMMUNE}"
    assert signature["agency_code"] == COMMUNE
