"""A small HTTP client for the public API, as a citizen's browser or an officer's console uses it."""
from __future__ import annotations

import mailbox
import time
from pathlib import Path

import requests

COMMUNE = "000.20.01.H56"          # receives land dossiers (1.012786)
LAND_OFFICE = "000.12.01.H56"      # step 1
ENVIRONMENT_DEPT = "000.00.12.H56"  # step 2 (signing)
LAND_STEPS = [(LAND_OFFICE, "specialist"), (ENVIRONMENT_DEPT, "leader"), (COMMUNE, "specialist")]
APPLICANT = {"full_name": "Trần Thị Bình", "id_number": "038190012345", "phone": "0987654321",
             "email": "binh.tran@example.vn", "address": "Số 7 phố Hàng Bông, phường Hạc Thành"}


class Api:
    def __init__(self, base_url: str):
        self.base_url = base_url
        self.tokens: dict[str, str] = {}

    def token(self, username: str) -> str:
        if username not in self.tokens:
            response = requests.post(f"{self.base_url}/api/v1/auth/token",
                                     json={"username": username, "password": "demo"}, timeout=30)
            assert response.status_code == 200, response.text
            self.tokens[username] = response.json()["access_token"]
        return self.tokens[username]

    def call(self, method: str, path: str, user: str | None = None, **kwargs) -> requests.Response:
        headers = kwargs.pop("headers", {})
        if user:
            headers["Authorization"] = f"Bearer {self.token(user)}"
        return requests.request(method, f"{self.base_url}{path}", headers=headers, timeout=30, **kwargs)

    def submit(self, procedure_code: str = "1.012786", key: str | None = None) -> dict:
        headers = {"Idempotency-Key": key} if key else {}
        response = self.call("POST", "/api/v1/dossiers", headers=headers, json={
            "procedure_code": procedure_code, "channel": "online", "applicant": APPLICANT, "form": {}})
        assert response.status_code == 201, response.text
        return response.json()

    def receive(self, code: str, agency: str = COMMUNE) -> dict:
        response = self.call("POST", f"/api/v1/dossiers/{code}/receive", user=f"receptionist@{agency}", json={})
        assert response.status_code == 200, response.text
        return response.json()

    def open_task(self, code: str, agency: str, role: str, timeout: float = 60) -> dict:
        """Waits until the dossier's open task reaches this agency's inbox."""
        deadline = time.time() + timeout
        while time.time() < deadline:
            response = self.call("GET", "/api/v1/tasks?status=open", user=f"{role}@{agency}")
            assert response.status_code == 200, response.text
            for task in response.json():
                if task["dossier_code"] == code:
                    return task
            time.sleep(0.2)
        raise AssertionError(f"no open task for {code} at {agency} after {timeout}s")

    def complete(self, task: dict, user: str) -> requests.Response:
        return self.call("POST", f"/api/v1/tasks/{task['id']}/complete", user=user,
                         json={"outcome": "approve", "note": "Đủ điều kiện"})

    def wait_status(self, code: str, status: str, user: str = "admin", timeout: float = 60) -> dict:
        deadline = time.time() + timeout
        dossier = None
        while time.time() < deadline:
            dossier = self.call("GET", f"/api/v1/dossiers/{code}", user=user).json()
            if dossier.get("status") == status:
                return dossier
            time.sleep(0.2)
        raise AssertionError(f"{code} still {dossier and dossier.get('status')} after {timeout}s, wanted {status}")

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
