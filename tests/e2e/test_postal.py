"""The public postal service end to end: `MOTCUA_SIMULATORS=postal make run` — an applicant asks for the
dossier to be picked up and the result delivered by post; the simulator takes each order through its
course and calls the gateway back, signed; the history and public tracking show it, and the result
delivered by post is returned (status 10). A callback not signed with the key is refused."""
import hashlib
import hmac
import json

import pytest
import requests

from tests import infra
from tests.e2e.client import APPLICANT, COMMUNE, Api

pytestmark = pytest.mark.e2e
KEY = APPLICANT["phone"][-4:]


def test_a_dossier_picked_up_and_its_result_delivered_by_post(tmp_path):
    env = {"MOTCUA_SIMULATORS": "postal", "POSTAL_PUSH_INTERVAL": "0.5"}
    with infra.embedded_platform_process(tmp_path, extra_env=env) as (_process, base):
        api = Api(base)
        response = api.command("POST", "/api/v1/dossiers", json={
            "procedure_code": "1.012786", "channel": "online", "applicant": APPLICANT, "form": {},
            "documents": api.documents("1.012786"), "postal": {"pickup": True, "delivery": True}})
        assert response.status_code == 201, response.text
        code = response.json()["code"]
        api.receive(code)
        api.process_land_dossier(code)
        returned = api.wait_status(code, "returned", timeout=90)
        assert returned["return_method"] == "postal"
        notes = [entry["note"] for entry in returned["history"] if entry["action"] == "postal"]
        assert "pickup picked_up EB000000001VN" in notes and "delivery delivered EB000000002VN" in notes

        def tracked_returned():  # tracking is reporting's projection: it hears the last news after intake
            answer = requests.get(f"{base}/api/v1/track/{code}", params={"key": KEY}, timeout=30).json()
            return answer if answer["timeline"][-1]["status"] == "returned" else None

        tracked = infra.wait_for(tracked_returned, timeout=30)
        assert tracked, "tracking never showed the dossier returned"
        postal_lines = [line["postal"] for line in tracked["timeline"] if "postal" in line]
        assert "delivery:delivered" in postal_lines and "pickup:picked_up" in postal_lines
        assert tracked["timeline"][-1]["status"] == "returned"

        forged = json.dumps({"originalID": "00000002", "status": 14}).encode()
        answer = requests.post(f"{base}/api/v1/postal/callbacks", data=forged, timeout=10, headers={
            "Content-Type": "application/json",
            "X-Postal-Signature": hmac.new(b"guessed", forged, hashlib.sha256).hexdigest()})
        assert answer.status_code == 401
        audit = api.call("GET", "/api/v1/audit", user="admin", params={"action": "postal.callback"}).json()
        assert [(e["username"], e["outcome"]) for e in audit["items"]] == [("carrier:postal", "denied")]
    assert COMMUNE in code
