"""`make run`'s log: JSON lines only; a public request's trace id is on the gateway's access line and on
the line of the service it called; a wrong tracking key (a 404) is one INFO line without a traceback."""
import json
import time

import pytest
import requests

pytestmark = pytest.mark.e2e


def test_the_platform_logs_json_lines_with_one_trace_per_request(embedded):
    base, var = embedded
    code = "000.20.01.H56-260101-9999"
    assert requests.get(f"{base}/api/v1/track/{code}", params={"key": "0000"}, timeout=10).status_code == 404
    deadline = time.monotonic() + 10  # the access line is written once the answer has gone out
    while "/api/v1/track/" not in (var / "run.log").read_text() and time.monotonic() < deadline:
        time.sleep(0.1)
    lines = [line for line in (var / "run.log").read_text().splitlines() if line.strip()]
    # Every line but the notice of where things are (stdout: "Motcua is serving…" and its indented lines)
    # is a JSON object (a traceback printed outside the JSON formatter begins "Traceback": no JSON).
    notice = [line for line in lines if line.startswith(("Motcua is serving", "  "))]
    assert notice[0].startswith("Motcua is serving")
    records = [json.loads(line) for line in lines if line not in notice]
    [answered] = [r for r in records if r["logger"] == "nameko.containers" and "not_found" in r["message"]]
    assert answered["level"] == "INFO" and "exception" not in answered and answered["service"] == "reporting"
    [access] = [r for r in records if r["logger"] == "nameko.web.server" and "/api/v1/track/" in r["message"]]
    assert access["trace_id"] == answered["trace_id"] and access["service"] == "gateway"
    assert "0000" not in access["message"]  # the key is redacted from the access line (gateway/http.py)
    assert not [r for r in records if r["level"] == "ERROR"]
