"""A small HTTP client for the public API, as a citizen's browser or an officer's console uses it."""
from __future__ import annotations

import mailbox
import math
import threading
import time
import uuid
from pathlib import Path

import requests

from motcua.backoff import backoff
from tests.documents import uploads

COMMUNE = "000.20.01.H56"          # receives land dossiers (1.012786)
LAND_OFFICE = "000.12.01.H56"      # step 1
ENVIRONMENT_DEPT = "000.00.12.H56"  # step 2 (signing)
LAND_STEPS = [(LAND_OFFICE, "specialist"), (ENVIRONMENT_DEPT, "leader"), (COMMUNE, "specialist")]
LONG_POLL_SECONDS = 20  # under the 30 s request timeout
POLL_SECONDS = 0.2      # between polls of a server without long polls
COMMAND_ATTEMPTS = 5
RETRIED_STATUSES = (502, 503, 504)  # no answer from the service behind: the same key is safe to repeat
APPLICANT = {"full_name": "Trần Thị Bình", "id_number": "038190012345", "phone": "0987654321",
             "email": "binh.tran@example.vn", "address": "Số 7 phố Hàng Bông, phường Hạc Thành"}


class Api:
    def __init__(self, base_url: str, keep_alive: bool = False):
        """`keep_alive`: each thread keeps its connection open between requests, as a browser does (the
        bench's consoles); by default each request has a connection of its own, so a test that restarts
        a gateway never meets a connection the old one left."""
        self.base_url = base_url
        self.tokens: dict[str, str] = {}
        self.uploads: dict[str, list[dict]] = {}
        self._sessions = threading.local() if keep_alive else None

    def _session(self):
        """The calling thread's session (requests' sessions are not to be shared across threads), or the
        `requests` module itself: a connection per request."""
        if self._sessions is None:
            return requests
        if not hasattr(self._sessions, "session"):
            self._sessions.session = requests.Session()
        return self._sessions.session

    def token(self, username: str) -> str:
        if username not in self.tokens:
            response = self._session().post(f"{self.base_url}/api/v1/auth/token",
                                     json={"username": username, "password": "demo"}, timeout=30)
            assert response.status_code == 200, response.text
            self.tokens[username] = response.json()["access_token"]
        return self.tokens[username]

    def call(self, method: str, path: str, user: str | None = None, **kwargs) -> requests.Response:
        headers = kwargs.pop("headers", {})
        if user:
            headers["Authorization"] = f"Bearer {self.token(user)}"
        return self._session().request(method, f"{self.base_url}{path}", headers=headers, timeout=30, **kwargs)

    def command(self, method: str, path: str, user: str | None = None, key: str | None = None,
                attempts: int = COMMAND_ATTEMPTS, **kwargs) -> requests.Response:
        """A state-changing request under one Idempotency-Key (`key`, or a new one), repeated under
        that key when no answer came or the answer says to try again (502/503/504): the platform then
        carries it out once and answers the repeat with the first result."""
        headers = {**kwargs.pop("headers", {}), "Idempotency-Key": key or uuid.uuid4().hex}
        for attempt in range(1, attempts + 1):
            try:
                response = self.call(method, path, user=user, headers=dict(headers), **kwargs)
                if response.status_code not in RETRIED_STATUSES:
                    return response
            except (requests.ConnectionError, requests.Timeout):
                if attempt == attempts:
                    raise
            if attempt < attempts:
                time.sleep(backoff(attempt, base=0.2, cap=5))
        return response

    def documents(self, procedure_code: str) -> list[dict]:
        """A tiny PDF for each mandatory document of the procedure as this server's catalogue lists them
        (an online submission lacking one is refused), asked once per procedure."""
        if procedure_code not in self.uploads:
            response = self.call("GET", f"/api/v1/procedures/{procedure_code}")
            assert response.status_code == 200, response.text
            self.uploads[procedure_code] = uploads(response.json()["documents"])
        return self.uploads[procedure_code]

    def submit(self, procedure_code: str = "1.012786", key: str | None = None) -> dict:
        response = self.command("POST", "/api/v1/dossiers", key=key, json={
            "procedure_code": procedure_code, "channel": "online", "applicant": APPLICANT, "form": {},
            "documents": self.documents(procedure_code)})
        assert response.status_code == 201, response.text
        return response.json()

    def receive(self, code: str, agency: str = COMMUNE, key: str | None = None) -> dict:
        response = self.command("POST", f"/api/v1/dossiers/{code}/receive", user=f"receptionist@{agency}",
                                key=key, json={})
        assert response.status_code == 200, response.text
        return response.json()

    def open_task(self, code: str, agency: str, role: str, timeout: float = 60) -> dict:
        """Waits until the dossier's open task reaches this agency's inbox."""
        return self.watch("/api/v1/tasks?status=open", f"{role}@{agency}", timeout,
                          lambda tasks: next((task for task in tasks if task["dossier_code"] == code), None),
                          lambda: f"no open task for {code} at {agency}")

    def complete(self, task: dict, user: str, key: str | None = None) -> requests.Response:
        return self.command("POST", f"/api/v1/tasks/{task['id']}/complete", user=user, key=key,
                            json={"outcome": "approve", "note": "Đủ điều kiện"})

    def wait_status(self, code: str, status: str, user: str = "admin", timeout: float = 60) -> dict:
        seen = {}

        def reached(dossier):
            seen["status"] = dossier.get("status")
            return dossier if dossier.get("status") == status else None

        return self.watch(f"/api/v1/dossiers/{code}", user, timeout, reached,
                          lambda: f"{code} still {seen.get('status')}, wanted {status}", retry_errors=True)

    def wait_tracked(self, code: str, status: str, key: str = APPLICANT["phone"][-4:], timeout: float = 30) -> dict:
        """Public tracking once it shows `status`: it is reporting's projection, which hears of a
        change a moment after intake (the owner, which `wait_status` reads) has made it."""
        seen = {}
        deadline = time.time() + timeout
        while time.time() < deadline:
            response = self.call("GET", f"/api/v1/track/{code}", params={"key": key})
            seen["answer"] = response.status_code, response.text[:200]
            if response.status_code == 200 and response.json()["status"] == status:
                return response.json()
            time.sleep(POLL_SECONDS)
        raise AssertionError(f"tracking of {code} never showed {status}: last {seen.get('answer')}")

    def watch(self, path: str, user: str, timeout: float, found, failure, retry_errors: bool = False):
        """GETs `path` until `found(answer)` returns something, which it returns.

        A long poll where the server offers one: each request names the last answer's ETag
        (If-None-Match) and asks to be held until it changes (`Prefer: wait=…`, RFC 7240); the
        server then answers 200 with the new body, or 304 when the wait ends, and says so with
        `Preference-Applied: wait`. A server that does not (a previous release) is polled every
        0.2 s, as consoles did before. `retry_errors`: an error answer is polled again, not raised.
        """
        deadline = time.time() + timeout
        etag = None
        while True:
            headers = {"Prefer": f"wait={max(1, min(LONG_POLL_SECONDS, math.ceil(deadline - time.time())))}"}
            if etag:
                headers["If-None-Match"] = etag
            response = self.call("GET", path, user=user, headers=headers)
            held = first_etag = False
            if response.status_code in (200, 304):
                if response.status_code == 200 and (result := found(response.json())) is not None:
                    return result
                held = "wait" in response.headers.get("Preference-Applied", "")
                # A first ETag is worth one immediate conditional request: it shows whether the server holds it.
                first_etag = etag is None and "ETag" in response.headers
                etag = response.headers.get("ETag", etag)
            else:
                assert retry_errors, response.text
            if time.time() >= deadline:
                raise AssertionError(f"{failure()} after {timeout}s")
            if not (held or first_etag):
                time.sleep(POLL_SECONDS)

    def process_land_dossier(self, code: str) -> None:
        for agency, role in LAND_STEPS:
            task = self.open_task(code, agency, role)
            response = self.complete(task, f"{role}@{agency}")
            assert response.status_code == 200, response.text


def mails_for(mailbox_path: Path, code: str) -> list:
    if not mailbox_path.exists():
        return []
    box = mailbox.mbox(str(mailbox_path))
    try:
        return [m for m in box if code in m.get_payload(decode=True).decode("utf-8", "replace")
                or code in str(m["Subject"])]
    finally:
        box.close()
