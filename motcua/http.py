"""One JSON call to another system's HTTP API, judged the same way by every adapter that speaks to one
(the national portal, the carrier, the SMS brandname gateway):

  no connection, a timeout         → `unreachable`  (time may cure it)
  408, 429, 5xx                    → `retry`        (time may cure it)
  a body that is no JSON object    → `garbage`      (time may cure it: a proxy's error page)
  any other status but 2xx         → `refused`      (asking again would be refused again)
  2xx with a JSON object           → the object

A failure's reason names the call and a status or an error class only, never the URL, the body or the
other side's message: those may quote what was sent (names, addresses, phone numbers)."""
from __future__ import annotations

import time

import requests
from prometheus_client import Histogram

RETRY_STATUSES = frozenset({408, 429})


class CallFailed(Exception):
    """A call that gave no usable answer: `outcome` as above, and the refusal's JSON (`answer`) when the
    other side explained itself (an adapter may read its own error code there)."""

    def __init__(self, outcome: str, reason: str, answer: dict | None = None):
        super().__init__(reason)
        self.outcome, self.reason, self.answer = outcome, reason, answer

    @property
    def passing(self) -> bool:
        """Whether asking again later may succeed."""
        return self.outcome != "refused"


def post_json(http: requests.Session, url: str, body: dict, *, call: str, timeout: float,
              seconds: Histogram, headers: dict | None = None) -> dict:
    """POST `body` as JSON to `url`: the answer's JSON object, or CallFailed. `seconds` (a labelled
    histogram's child) observes how long the call took, failed or not."""
    started = time.monotonic()
    try:
        response = http.post(url, json=body, headers=headers, timeout=timeout)
    except requests.RequestException as error:
        raise CallFailed("unreachable", f"{call} {type(error).__name__}") from None
    finally:
        seconds.observe(time.monotonic() - started)
    try:
        answer = response.json()
    except ValueError:
        answer = None
    status = response.status_code
    if status >= 500 or status in RETRY_STATUSES:
        raise CallFailed("retry", f"{call} HTTP {status}")
    if not isinstance(answer, dict):
        raise CallFailed("garbage", f"{call} HTTP {status} not JSON")
    if not response.ok:
        raise CallFailed("refused", f"{call} HTTP {status}", answer)
    return answer
