"""Security tests' platforms: the gateway alone (services mocked), and intake and workflow behind the
real gateway on the embedded bus (SQLite), each with the demo accounts; helpers to sign in and read
the audit log."""
from __future__ import annotations

import time
import uuid
from datetime import timedelta
from types import SimpleNamespace

import pytest
import requests
from nameko.containers import ServiceContainer
from nameko.testing.services import replace_dependencies
from sqlalchemy import create_engine, delete, select
from sqlalchemy.orm import Session

from motcua import embedded
from motcua.config import catalog_dir, nameko_config
from motcua.identity import Caller, issue_token
from services.gateway.accounts import seed_demo_accounts
from services.gateway.models import AuditEntry, FailedAttempt, KnownSignIn
from services.gateway.service import GatewayService
from services.intake.service import IntakeService
from services.workflow.service import WorkflowService
from tests.documents import required_uploads
from tests.infra import free_port, migrated_sqlite_urls

COMMUNE = "000.20.01.H56"        # receives civil-status and land dossiers; its parent is the province
OTHER_COMMUNE = "000.20.02.H56"
PROVINCE = "000.00.00.H56"       # the commune's parent agency
DEPARTMENT = "000.00.12.H56"     # parent of the land office
LAND_OFFICE = "000.12.01.H56"
APPLICANT = {"full_name": "Trần Thị Bình", "id_number": "038190012345", "phone": "0987654321",
             "email": "binh.tran@example.vn", "address": "Số 7 phố Hàng Bông"}
MOCKED = ("intake", "workflow", "notify", "reporting")
THROTTLE = {"LOGIN_MAX_FAILURES": 3, "LOGIN_MAX_FAILURES_PER_ADDRESS": 6, "LOGIN_WINDOW_SECONDS": 60,
            "PROOF_MAX_FAILURES": 3, "PROOF_MAX_FAILURES_PER_ADDRESS": 5, "PROOF_WINDOW_SECONDS": 60,
            # every test here submits from 127.0.0.1: test_anonymous_submission.py sets its own limit
            "SUBMISSIONS_PER_ADDRESS": 1000, "SUBMISSION_WINDOW_SECONDS": 60,
            "SIGNATURE_CHECKS_PER_ADDRESS": 1000, "SIGNATURE_CHECK_WINDOW_SECONDS": 60}


def _config(urls: dict, port: int, amqp_uri: str = "embedded://") -> dict:
    return {**nameko_config(amqp_uri), "DB_URLS": urls, "WEB_SERVER_ADDRESS": f"127.0.0.1:{port}",
            "METRICS_PORTS": {}, **THROTTLE}


def mocked_gateway(urls: dict, amqp_uri: str = "embedded://", **config) -> SimpleNamespace:
    """A started gateway container over real HTTP, the services behind it mocks (stop its `container`)."""
    port = free_port()
    container = ServiceContainer(GatewayService, {**_config(urls, port, amqp_uri), **config})
    mocks = dict(zip(MOCKED, replace_dependencies(container, *MOCKED)))
    container.start()
    return SimpleNamespace(url=f"http://127.0.0.1:{port}", signing_key=container.config["TOKEN_SIGNING_KEY"],
                           verify_key=container.config["TOKEN_VERIFY_KEY"], db_url=urls["gateway"],
                           container=container, **mocks)


@pytest.fixture(scope="module")
def edge(tmp_path_factory):
    """The gateway alone over real HTTP; the services behind it are mocks."""
    embedded.install()
    urls = migrated_sqlite_urls(tmp_path_factory.mktemp("edge"))
    seed_demo_accounts(urls["gateway"], catalog_dir())
    gateway = mocked_gateway(urls)
    yield gateway
    gateway.container.stop()


@pytest.fixture
def api(edge):
    for name in MOCKED:
        getattr(edge, name).reset_mock(return_value=True, side_effect=True)
    forget_failed_attempts(edge)
    return edge


@pytest.fixture(scope="module")
def platform(tmp_path_factory):
    """intake and workflow, the owners of dossiers and tasks, behind the real gateway on the embedded bus."""
    embedded.install()
    vhost = f"security-{uuid.uuid4().hex[:8]}"
    urls = migrated_sqlite_urls(tmp_path_factory.mktemp("platform"))
    seed_demo_accounts(urls["gateway"], catalog_dir())
    port = free_port()
    config = _config(urls, port, f"embedded:///{vhost}")
    containers = [ServiceContainer(cls, config) for cls in (IntakeService, WorkflowService, GatewayService)]
    for container in containers:
        container.start()
    yield SimpleNamespace(url=f"http://127.0.0.1:{port}", signing_key=config["TOKEN_SIGNING_KEY"],
                          verify_key=config["TOKEN_VERIFY_KEY"], db_url=urls["gateway"])
    for container in containers:
        container.stop()
    embedded.reset(vhost)


def token_for(signing_key: str, username: str, agency: str | None, *roles: str, ttl=timedelta(minutes=5)) -> str:
    return issue_token(Caller(username, agency, roles), signing_key, ttl)


def bearer(token: str) -> dict:
    return {"Authorization": f"Bearer {token}"}


def login(target, username: str, password: str = "demo") -> requests.Response:
    return requests.post(f"{target.url}/api/v1/auth/token", json={"username": username, "password": password},
                         timeout=30)


def signed_in(target, username: str) -> dict:
    response = login(target, username)
    assert response.status_code == 200, response.text
    return bearer(response.json()["access_token"])


def audit_entries(target, **where) -> list[AuditEntry]:
    engine = create_engine(target.db_url)
    with Session(engine) as session:
        entries = list(session.scalars(select(AuditEntry).filter_by(**where).order_by(AuditEntry.id)))
    engine.dispose()
    return entries


def wait_for_audit(target, timeout: float = 20, **where) -> list[AuditEntry]:
    """The audit entries matching `where`, once there are some (events arrive asynchronously)."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        entries = audit_entries(target, **where)
        if entries:
            return entries
        time.sleep(0.1)
    raise AssertionError(f"no audit entry {where} after {timeout}s")


def forget_failed_attempts(target) -> None:
    """The throttle as new: no failure counted, no account known at any address."""
    engine = create_engine(target.db_url)
    with Session(engine) as session:
        session.execute(delete(FailedAttempt))
        session.execute(delete(KnownSignIn))
        session.commit()
    engine.dispose()


def submit(target, procedure_code: str = "1.012786") -> dict:
    response = requests.post(f"{target.url}/api/v1/dossiers", json={
        "procedure_code": procedure_code, "channel": "online", "applicant": APPLICANT, "form": {},
        "documents": required_uploads(procedure_code)}, timeout=30)
    assert response.status_code == 201, response.text
    return response.json()
