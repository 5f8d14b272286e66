"""Browserless clients of the pages: a citizen posting forms, an officer signed in with the session cookie."""
from __future__ import annotations

import re
import time

import requests

from tests.documents import form_files, required_documents

AGENCY = "000.20.02.H56"  # receives and handles 1.004873 (marital status certificate: specialist, then leader)
PROCEDURE = "1.004873"
APPLICANT = {"full_name": "Trần Thị Bình", "id_number": "038190012345", "phone": "0987654321"}
PDF = b"%PDF-1.4\n%%EOF\n"
FILES = form_files(required_documents(PROCEDURE))  # its mandatory documents: online, none may be missing
CSRF = re.compile(r'name="csrf" value="([^"]+)"')
CODE = re.compile(r'<span class="code">([^<]+)</span>')


def submit(base: str, applicant: dict | None = None, files: dict | None = None) -> requests.Response:
    fields = {f"applicant.{name}": value for name, value in (applicant or APPLICANT).items()}
    return requests.post(f"{base}/thu-tuc/{PROCEDURE}/nop-ho-so", data=fields, timeout=30,
                         files=files if files is not None else FILES)


def submitted_code(base: str) -> str:
    response = submit(base)  # POST, 303 to the receipt (its cookie followed), GET
    assert response.status_code == 200 and [r.status_code for r in response.history] == [303], response.text
    return CODE.search(response.text).group(1)


def until(fetch, text: str, timeout: float = 30) -> requests.Response:
    """Fetch again until the page shows `text` (events reach workflow and reporting asynchronously)."""
    deadline = time.time() + timeout
    while True:
        response = fetch()
        if text in response.text:
            return response
        assert time.time() < deadline, f"never showed {text!r}: {response.status_code}"
        time.sleep(0.3)


class Officer:
    """A signed-in officer (password `demo`), posting the console's forms with their CSRF token."""

    def __init__(self, base: str, username: str):
        self.base, self.http = base, requests.Session()
        form = self.http.get(f"{base}/can-bo/dang-nhap", timeout=30)
        self.login = self.http.post(f"{base}/can-bo/dang-nhap", allow_redirects=False, timeout=30,
                                    data={"username": username, "password": "demo", "csrf": csrf_of(form.text)})
        assert self.login.status_code == 303, self.login.text

    def get(self, path: str, **kwargs) -> requests.Response:
        return self.http.get(f"{self.base}{path}", timeout=30, **kwargs)

    def post(self, path: str, data: dict | None = None, csrf_from: str = "/can-bo") -> requests.Response:
        token = csrf_of(self.get(csrf_from).text)
        return self.http.post(f"{self.base}{path}", data={**(data or {}), "csrf": token}, timeout=30,
                              allow_redirects=False)


def bring_to_returned(base: str, counter: Officer, code: str) -> None:
    """Reception, both steps of the commune (specialist, leader), then the result handed back."""
    assert counter.post(f"/can-bo/ho-so/{code}/tiep-nhan").status_code == 303
    for role in ("specialist", "leader"):
        officer = Officer(base, f"{role}@{AGENCY}")
        inbox = until(lambda: officer.get("/can-bo/viec"), code)
        task_id = task_id_in(inbox.text, code)
        done = officer.post(f"/can-bo/viec/{task_id}/approve", {"note": "Đồng ý"}, csrf_from="/can-bo/viec")
        assert done.status_code == 303, done.text
    until(lambda: counter.get("/can-bo"), code)
    returned = counter.post(f"/can-bo/ho-so/{code}/tra-ket-qua", {"method": "counter"})
    assert returned.status_code == 303


def task_id_in(html: str, code: str) -> str:
    """The id of the dossier's task in an inbox page (its first action's form)."""
    return html.split(code, 1)[1].split('action="/can-bo/viec/', 1)[1].split("/", 1)[0]


def csrf_of(html: str) -> str:
    return CSRF.search(html).group(1)
