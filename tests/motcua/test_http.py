"""motcua.http: one way of judging another system's answer, for every adapter that calls one."""
import json

import pytest
import requests
from prometheus_client import CollectorRegistry, Histogram

from motcua.http import CallFailed, post_json


class Answer:
    """What requests gives back, as far as post_json reads it."""

    def __init__(self, status: int, body: bytes):
        self.status_code, self.content = status, body
        self.ok = 200 <= status < 300

    def json(self):
        return json.loads(self.content)


class Http:
    def __init__(self, outcome):
        self.outcome, self.sent = outcome, []

    def post(self, url, json, headers, timeout):  # noqa: A002 (requests' own keyword)
        self.sent.append((url, json, headers, timeout))
        if isinstance(self.outcome, Exception):
            raise self.outcome
        return self.outcome


@pytest.fixture
def seconds():
    return Histogram("t_seconds", "", ["call"], registry=CollectorRegistry()).labels("order")


@pytest.mark.parametrize("outcome, judged, reason", [
    (requests.ConnectionError("refused"), "unreachable", "order ConnectionError"),
    (requests.ReadTimeout("slow"), "unreachable", "order ReadTimeout"),
    (Answer(503, b'{"error": "busy"}'), "retry", "order HTTP 503"),
    (Answer(429, b""), "retry", "order HTTP 429"),
    (Answer(408, b"<html>timeout</html>"), "retry", "order HTTP 408"),
    (Answer(200, b"<html>proxy error page</html>"), "garbage", "order HTTP 200 not JSON"),
    (Answer(200, b"[1, 2]"), "garbage", "order HTTP 200 not JSON"),
    (Answer(400, b'{"error_code": "BAD", "message": "Nguyen Van An, 0987654321"}'), "refused", "order HTTP 400"),
])
def test_each_failure_is_judged_once_for_every_adapter_and_says_nothing_it_was_sent(outcome, judged, reason, seconds):
    with pytest.raises(CallFailed) as failed:
        post_json(Http(outcome), "https://carrier.example/api", {"phone": "0987654321"}, call="order",
                  timeout=1.0, seconds=seconds)
    assert (failed.value.outcome, failed.value.reason) == (judged, reason)
    assert failed.value.passing is (judged != "refused")
    assert "0987654321" not in str(failed.value) and "carrier.example" not in str(failed.value)
    if judged == "refused":  # the other side's explanation, for the adapter's own error codes
        assert failed.value.answer["error_code"] == "BAD"
    assert sum(bucket.get() for bucket in seconds._buckets) == 1  # timed, failed or not


def test_an_answer_is_the_json_object_sent_back(seconds):
    http = Http(Answer(201, b'{"originalID": "00000001"}'))
    assert post_json(http, "https://x/api", {"a": 1}, call="order", timeout=2.5, seconds=seconds,
                     headers={"token": "t"}) == {"originalID": "00000001"}
    assert http.sent == [("https://x/api", {"a": 1}, {"token": "t"}, 2.5)]
