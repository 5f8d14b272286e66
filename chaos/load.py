"""The chaos load: dossiers through their whole life over HTTP, spread over every gateway instance, by
a patient client that retries what failed in transit with the same idempotency key.

The client is tests/e2e/client.py's `Api` (submit, receive, wait for a task in an officer's inbox,
complete it, wait for the result, return); `PatientApi` only changes how one call is made.
"""
from __future__ import annotations

import itertools
import threading
import time
import uuid
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import requests

from motcua.backoff import backoff
from motcua.progress import progress
from tests.e2e.client import COMMUNE, ENVIRONMENT_DEPT, LAND_OFFICE, LAND_STEPS, Api

# Answers a client retries: the platform could not answer now (a gateway or service down, a timeout).
RETRIED_STATUSES = {500, 502, 503, 504}


class GaveUp(Exception):
    """A call kept failing in transit for the client's whole patience."""


class PatientApi(Api):
    """Every call goes to the next gateway in turn; a connection error or a 5xx is tried again on the
    next one after a growing delay, with the same `Idempotency-Key` (made here for every command the
    caller sent without one), for up to `patience` seconds."""

    def __init__(self, base_urls: list[str], patience: float):
        super().__init__(base_urls[0])
        self.base_urls = base_urls
        self.patience = patience
        self._turn = itertools.count()
        self._lock = threading.Lock()
        self.retries: Counter = Counter()  # why a call was tried again: status code or exception name
        self.late_refusals: Counter = Counter()  # 409 answered to a command that took effect

    def token(self, username: str) -> str:
        if username not in self.tokens:
            response = self.call("POST", "/api/v1/auth/token", json={"username": username, "password": "demo"})
            assert response.status_code == 200, response.text
            self.tokens[username] = response.json()["access_token"]
        return self.tokens[username]

    def call(self, method: str, path: str, user: str | None = None, **kwargs) -> requests.Response:
        headers = dict(kwargs.pop("headers", None) or {})
        if method != "GET":
            headers.setdefault("Idempotency-Key", uuid.uuid4().hex)
        deadline = time.time() + self.patience
        for attempt in itertools.count(1):
            base = self.base_urls[next(self._turn) % len(self.base_urls)]
            sent = dict(headers)
            if user:
                sent["Authorization"] = f"Bearer {self.token(user)}"
            try:
                response = requests.request(method, f"{base}{path}", headers=sent, timeout=45, **kwargs)
            except requests.RequestException as exc:
                why = type(exc).__name__
            else:
                if response.status_code not in RETRIED_STATUSES:
                    return response
                why = str(response.status_code)
            with self._lock:
                self.retries[why] += 1
            if time.time() > deadline:
                raise GaveUp(f"{method} {path_kind(path)}: still {why} after {self.patience:g} s")
            time.sleep(backoff(attempt, base=0.2, cap=5.0))

    def refused_although_done(self, path: str) -> None:
        """A command answered 409 although it had taken effect (issue 11's problem 3)."""
        with self._lock:
            self.late_refusals[f"409 {path_kind(path)}"] += 1


def path_kind(path: str) -> str:
    """A path without its codes and ids, for counting (…/dossiers/{code}/receive)."""
    parts = [p for p in path.split("?")[0].split("/") if p]
    return "/" + "/".join(p if p.isalpha() or p in ("v1",) else "{}" for p in parts)


@dataclass(frozen=True)
class Route:
    """A procedure, the commune that receives it and its process's steps (agency, role)."""

    procedure_code: str
    receiving_agency: str
    steps: tuple[tuple[str, str], ...]


# Dossiers alternate between two communes' land procedures: a dossier code numbers an agency's
# dossiers of one day in 4 digits (`{agency}-{yyMMdd}-{NNNN}`), so one commune receives at most 9,999
# a day and a full run (N=10000) through one commune would end on the platform's rightful refusal.
ROUTES = (Route("1.012786", COMMUNE, tuple(LAND_STEPS)),
          Route("1.012783", "000.20.02.H56", ((LAND_OFFICE, "specialist"), (ENVIRONMENT_DEPT, "leader"))))


@dataclass
class Dossier:
    """What the client knows of one dossier: its code once submitted, how far it got, what stopped it."""

    number: int
    code: str | None = None
    stage: str = "new"
    error: str | None = None


@dataclass
class Load:
    """`count` dossiers at `concurrency`; `steps` are the times (monotonic) of every step that succeeded,
    which say when the platform progressed again after a fault."""

    api: PatientApi
    count: int
    concurrency: int
    timeout: float  # how long a dossier may wait for one of its steps
    dossiers: list[Dossier] = field(default_factory=list)
    steps: list[float] = field(default_factory=list)
    submitted: int = 0
    finished: int = 0

    def __post_init__(self):
        self.dossiers = [Dossier(i) for i in range(self.count)]
        self._lock = threading.Lock()

    def _step(self, dossier: Dossier, stage: str) -> None:
        dossier.stage = stage
        with self._lock:
            self.steps.append(time.monotonic())
            if stage == "submitted":
                self.submitted += 1

    def run(self) -> None:
        users = {"admin"} | {f"receptionist@{route.receiving_agency}" for route in ROUTES} | {
            f"{role}@{agency}" for route in ROUTES for agency, role in route.steps}
        for user in sorted(users):
            self.api.token(user)  # logged in once; the threads share the tokens
        with ThreadPoolExecutor(self.concurrency) as pool:
            list(pool.map(self._one, self.dossiers))

    def _one(self, dossier: Dossier) -> None:
        try:
            self._lifecycle(dossier)
        except (AssertionError, GaveUp, requests.RequestException, ValueError) as exc:
            dossier.error = f"{type(exc).__name__}: {str(exc)[:300]}"
        finally:
            with self._lock:
                self.finished += 1
            progress("chaos: dossiers", self.finished, self.count)

    def _lifecycle(self, dossier: Dossier) -> None:
        api, route = self.api, ROUTES[dossier.number % len(ROUTES)]
        receptionist = f"receptionist@{route.receiving_agency}"
        dossier.code = api.submit(route.procedure_code, key=uuid.uuid4().hex)["code"]
        self._step(dossier, "submitted")
        self._command(dossier, f"/api/v1/dossiers/{dossier.code}/receive", receptionist, {},
                      done_when=("received", "processing"))
        self._step(dossier, "received")
        for number, (agency, role) in enumerate(route.steps, 1):
            task = api.open_task(dossier.code, agency, role, timeout=self.timeout)
            response = api.complete(task, f"{role}@{agency}")
            if response.status_code != 200:
                self._check_task_done(task, f"{role}@{agency}", response)
            self._step(dossier, f"step {number} done")
        api.wait_status(dossier.code, "result_ready", timeout=self.timeout)
        self._step(dossier, "result_ready")
        self._command(dossier, f"/api/v1/dossiers/{dossier.code}/return", receptionist,
                      {"method": "counter"}, done_when=("returned",))
        self._step(dossier, "returned")

    def _command(self, dossier: Dossier, path: str, user: str, body: dict, done_when: tuple[str, ...]) -> None:
        """A command; a 409 is checked against the dossier's status: a command that took effect (an
        earlier attempt, or a request the platform ran twice) but was answered 409 is counted
        (`late_refusals`) and the dossier goes on."""
        response = self.api.call("POST", path, user=user, json=body)
        if response.status_code == 200:
            return
        if response.status_code == 409:
            status = self.api.call("GET", f"/api/v1/dossiers/{dossier.code}", user="admin").json().get("status")
            if status in done_when or status == "returned":
                self.api.refused_although_done(path)
                return
        raise AssertionError(f"{path_kind(path)} answered {response.status_code}: {response.text[:200]}")

    def _check_task_done(self, task: dict, user: str, response: requests.Response) -> None:
        if response.status_code == 409:
            again = self.api.call("GET", f"/api/v1/tasks/{task['id']}", user=user)
            if again.status_code == 200 and again.json().get("status") != "open":
                self.api.refused_although_done(f"/api/v1/tasks/{task['id']}/complete")
                return
        raise AssertionError(f"complete task answered {response.status_code}: {response.text[:200]}")
