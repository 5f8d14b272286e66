"""Một cửa liên thông end to end on real RabbitMQ and PostgreSQL, each service its own process:
the newborn bundle's three agencies in parallel and their join; the first land certificate through
the commune, the land office, a send-back, the tax office's own system (its worker process), the
payment pause (status 6) and the department's signature."""
from __future__ import annotations

import base64
import subprocess
import sys
from datetime import timedelta

import pytest

from motcua.config import ROOT
from motcua.identity import system_token
from tests import infra
from tests.e2e.client import APPLICANT, Api

COMMUNE, WARD_POLICE, SOCIAL_INSURANCE = "000.20.01.H56", "000.15.01.H56", "000.00.31.H56"
LAND_OFFICE, TAX_OFFICE, LAND_DEPT = "000.12.01.H56", "000.00.18.H56", "000.00.12.H56"


@pytest.fixture
def tax_worker(platform):
    """The tax office's own system, a process of its own, as `make run-services` starts it."""
    token = system_token(TAX_OFFICE, infra.TOKENS["TOKEN_SIGNING_KEY"], timedelta(days=1))
    log = open(platform.log_dir / "tax_worker.log", "ab")
    process = subprocess.Popen([sys.executable, "-m", "motcua.run", "--worker", "workers.tax_office:TaxOfficeWorker"],
                               env={**platform.env, "MOTCUA_WORKER_TOKEN": token}, cwd=ROOT,
                               stdout=log, stderr=subprocess.STDOUT)
    yield process
    infra.stop_process(process, platform.log_dir / "tax_worker.log")


def submit(api: Api, procedure_code: str, form: dict) -> str:
    response = api.call("POST", "/api/v1/dossiers", json={
        "procedure_code": procedure_code, "channel": "online", "applicant": APPLICANT, "form": form,
        "documents": api.documents(procedure_code)})
    assert response.status_code == 201, response.text
    code = response.json()["code"]
    api.receive(code)
    return code


def act(api: Api, task: dict, user: str, outcome: str, note: str = "Đủ điều kiện", **details) -> dict:
    response = api.call("POST", f"/api/v1/tasks/{task['id']}/complete", user=user,
                        json={"outcome": outcome, "note": note, **details})
    assert response.status_code == 200, response.text
    return response.json()


def test_the_newborn_bundle_runs_in_parallel_and_joins(platform):
    api = Api(platform.base_url)
    code = submit(api, "2.000986", {})
    branches = {agency: api.open_task(code, agency, "specialist") for agency in (COMMUNE, WARD_POLICE, SOCIAL_INSURANCE)}
    assert len({t["step"] for t in branches.values()}) == 3  # all three open at once

    act(api, branches[SOCIAL_INSURANCE], f"specialist@{SOCIAL_INSURANCE}", "approve")
    act(api, branches[COMMUNE], f"specialist@{COMMUNE}", "approve")
    api.wait_status(code, "processing")
    assert all(t["dossier_code"] != code or t["step_index"] != 3
               for t in api.call("GET", "/api/v1/tasks", user=f"specialist@{COMMUNE}").json())  # the join waits

    act(api, branches[WARD_POLICE], f"specialist@{WARD_POLICE}", "approve")
    final = api.open_task(code, COMMUNE, "specialist")
    assert final["step_index"] == 3 and final["from_agency_code"] == WARD_POLICE
    act(api, final, f"specialist@{COMMUNE}", "approve")
    dossier = api.wait_status(code, "result_ready")
    agencies = {h["agency_code"] for h in api.call("GET", f"/api/v1/tasks/{final['id']}",
                                                   user=f"specialist@{COMMUNE}").json()["history"]}
    assert agencies == {COMMUNE, WARD_POLICE, SOCIAL_INSURANCE}
    assert dossier["status_code"] == 9


def test_the_land_path_with_send_back_the_tax_system_and_the_payment_pause(platform, tax_worker):
    api = Api(platform.base_url)
    code = submit(api, "1.013978", {"land_area_m2": 250, "land_price_vnd_per_m2": 10_000_000})

    act(api, api.open_task(code, COMMUNE, "specialist"), f"specialist@{COMMUNE}", "approve")
    office = api.open_task(code, LAND_OFFICE, "specialist")
    act(api, office, f"specialist@{LAND_OFFICE}", "send_back", note="Cần xác nhận lại ranh giới thửa đất")
    again = api.open_task(code, COMMUNE, "specialist")
    assert again["from_agency_code"] == LAND_OFFICE
    act(api, again, f"specialist@{COMMUNE}", "approve", note="Đã xác nhận ranh giới")
    act(api, api.open_task(code, LAND_OFFICE, "specialist"), f"specialist@{LAND_OFFICE}", "approve")

    # The tax office's worker takes its task from its queue and fixes the fee: status 6, the clock stops.
    waiting = api.wait_status(code, "awaiting_payment")
    assert waiting["status_code"] == 6
    assert waiting["payment"]["amount_vnd"] == 12_500_000  # 0.5 % × 250 m² × 10,000,000 VND/m²
    assert api.wait_tracked(code, "awaiting_payment")["status_code"] == 6

    response = api.call("POST", f"/api/v1/dossiers/{code}/confirm-payment", user=f"receptionist@{COMMUNE}",
                        json={"receipt_number": "BL-2026-0042"})
    assert response.status_code == 200, response.text
    assert response.json()["status"] == "processing"
    signing = api.open_task(code, LAND_DEPT, "leader")
    certificate = {"key": "giay_chung_nhan", "filename": "gcn.pdf",
                   "content_base64": base64.b64encode(b"%PDF-1.4 signed certificate\n%%EOF\n").decode()}
    act(api, signing, f"leader@{LAND_DEPT}", "approve", note="Đã ký Giấy chứng nhận", documents=[certificate])
    ready = api.wait_status(code, "result_ready")
    assert ready["result_outcome"] == "approved"
    # The step's document joins the dossier (by its digest in intake's store), in the step's name.
    [step_document] = [d for d in ready["documents"] if d["key"] == "step:giay_chung_nhan"]
    assert step_document["uploaded_by"] == f"leader@{LAND_DEPT} ({LAND_DEPT})"
    download = api.call("GET", f"/api/v1/dossiers/{code}/documents/{step_document['id']}", user=f"receptionist@{COMMUNE}")
    assert download.content.startswith(b"%PDF-1.4 signed certificate")

    history = api.call("GET", f"/api/v1/tasks/{signing['id']}", user=f"leader@{LAND_DEPT}").json()["history"]
    assert [(h["agency_code"], h["outcome"]) for h in history] == [
        (COMMUNE, "approve"), (LAND_OFFICE, "send_back"), (COMMUNE, "approve"), (LAND_OFFICE, "approve"),
        (TAX_OFFICE, "require_payment"), (LAND_DEPT, "approve")]
