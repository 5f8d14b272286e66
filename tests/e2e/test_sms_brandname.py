"""SMS through the brandname gateway end to end: `MOTCUA_SIMULATORS=sms make run` sends the applicant's
SMS to the gateway's simulator, which reports it delivered by calling the gateway's receipt URL back
(HTTP GET, with the token); a report without the token is refused."""
import time

import pytest
import requests

from tests import infra
from tests.e2e.client import COMMUNE, Api

pytestmark = pytest.mark.e2e


def test_an_sms_goes_through_the_brandname_gateway_and_its_report_delivers_it(tmp_path):
    with infra.embedded_platform_process(tmp_path, extra_env={"MOTCUA_SIMULATORS": "sms"}) as (_process, base):
        api = Api(base)
        code = api.submit()["code"]
        api.receive(code)
        deadline, sms = time.monotonic() + 60, []
        while not any(d["status"] == "delivered" for d in sms):
            assert time.monotonic() < deadline, f"the SMS of {code}: {sms}"
            time.sleep(0.3)
            response = api.call("GET", f"/api/v1/dossiers/{code}/notifications", user=f"receptionist@{COMMUNE}")
            sms = [d for d in response.json() if d["channel"] == "sms"]
        assert all(d["provider"] == "brandname" for d in sms)
        forged = requests.get(f"{base}/api/v1/notifications/receipts/brandname",
                              params={"SMSID": "x", "SendStatus": "5", "SendSuccess": "1"}, timeout=10)
        assert forged.status_code == 401
    assert "simulator sms on http://127.0.0.1:" in (tmp_path / "run.log").read_text()
