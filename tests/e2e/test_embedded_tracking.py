"""Public tracking on `make run`'s embedded platform: answered from the gateway's edge cache while the
dossier does not change, and the new state as soon as it does (no lifetime to wait out)."""
import re
import time

import pytest
import requests

from tests.e2e.client import APPLICANT, ENVIRONMENT_DEPT, LAND_OFFICE, Api

pytestmark = pytest.mark.e2e
KEY = APPLICANT["phone"][-4:]
CHANGE_SEEN_WITHIN_SECONDS = 15  # the edge cache's safety net is 300 s: this is no expiry


def tracked(base: str, code: str) -> dict:
    response = requests.get(f"{base}/api/v1/track/{code}", params={"key": KEY}, timeout=30)
    return response.json() if response.status_code == 200 else {}


def hits(base: str) -> float:
    found = re.search(r'^motcua_tracking_answers_total\{outcome="hit"\} (\S+)$',
                      requests.get(f"{base}/metrics", timeout=30).text, re.MULTILINE)
    return float(found[1]) if found else 0.0


def tracked_at(base: str, code: str, agency: str, within: float) -> dict:
    deadline = time.monotonic() + within
    while (answer := tracked(base, code)).get("current_agency_code") != agency:
        assert time.monotonic() < deadline, f"tracking still says {answer} after {within} s"
        time.sleep(0.1)
    return answer


def test_a_completed_step_shows_the_next_agency_at_once_while_unchanged_answers_come_from_the_edge(embedded):
    base, _var = embedded
    api = Api(base)
    code = api.submit()["code"]
    api.receive(code)
    task = api.open_task(code, LAND_OFFICE, "specialist")
    before = tracked_at(base, code, LAND_OFFICE, 30)
    served = hits(base)
    for _ in range(5):
        assert tracked(base, code) == before
    assert hits(base) >= served + 5  # unchanged: given by the gateway, reporting not asked

    assert api.complete(task, f"specialist@{LAND_OFFICE}").status_code == 200
    after = tracked_at(base, code, ENVIRONMENT_DEPT, CHANGE_SEEN_WITHIN_SECONDS)
    assert after["run_version"] > before["run_version"]
    assert after["timeline"][-1]["agency_code"] == ENVIRONMENT_DEPT
