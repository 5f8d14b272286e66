"""Revocation reaches the services: a token the gateway revoked (logout) or ended (its account
deactivated) is refused by intake and workflow on direct RPC too, past the gateway, and every service
keeps the revocation; on real RabbitMQ and PostgreSQL. And the rules of the services' revocation
tables, on SQLite."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

import jwt
import pytest
import requests
from nameko.containers import ServiceContainer
from nameko.standalone.rpc import ServiceRpcProxy
from nameko.testing.services import worker_factory
from sqlalchemy import create_engine, select, text
from sqlalchemy import event as sqlalchemy_event
from sqlalchemy.orm import Session

from motcua.config import catalog_dir, nameko_config
from motcua.contracts import make_event, parse_event
from motcua.db import UnitOfWork
from motcua.errors import Unauthorized
from motcua.identity import Caller, TokenLimits
from motcua.revocation import AccessCache, check, record_account_changed, record_token_revoked
from services.gateway.accounts import seed_demo_accounts
from services.gateway.service import GatewayService
from services.intake.models import Base as IntakeBase
from services.intake.service import IntakeService
from services.notify.service import NotifyService
from services.reporting.service import ReportingService
from services.workflow.service import WorkflowService
from tests.documents import required_uploads
from tests.infra import VERIFYING, free_port, gateway_token, migrated_sqlite_urls, wait_for
from tests.security.conftest import APPLICANT, COMMUNE, bearer, login

# An hour ago: recent enough that no write purges what the tests record (rows outlive every token they refuse).
T0 = datetime.now(timezone.utc).replace(microsecond=0) - timedelta(hours=1)
LIMITS = TokenLimits(max_seconds=3600, max_system_seconds=86400)


# -- the rules, on one service's tables -------------------------------------------------------------

@pytest.fixture
def uow(tmp_path):
    engine = create_engine(migrated_sqlite_urls(tmp_path)["intake"])
    with Session(engine) as session:
        yield UnitOfWork(session, "intake", IntakeBase.metadata)
    engine.dispose()


def caller(token_id: str = "jti-1", issued_at: datetime = T0, username: str = f"leader@{COMMUNE}") -> Caller:
    return Caller(username, COMMUNE, ("leader",), token_id=token_id, issued_at=issued_at,
                  expires_at=issued_at + timedelta(minutes=15))


def gateway_event(event_type: str, **data):
    return parse_event(make_event("gateway", event_type, data))


def test_a_revoked_token_is_refused_and_others_pass(uow):
    check(uow.session, uow.metadata, caller())
    record_token_revoked(uow, gateway_event("token_revoked", token_id="jti-1", expires_at=T0 + timedelta(minutes=15),
                                            revoked_at=T0))
    record_token_revoked(uow, gateway_event("token_revoked", token_id="jti-1", expires_at=T0 + timedelta(minutes=15),
                                            revoked_at=T0))  # the same logout again: one row
    with pytest.raises(Unauthorized, match="token revoked"):
        check(uow.session, uow.metadata, caller())
    check(uow.session, uow.metadata, caller(token_id="jti-2"))  # another session of the same officer


def test_an_account_change_ends_the_tokens_issued_until_then_and_an_older_change_never_wins(uow):
    record_account_changed(uow, gateway_event("account_changed", username=f"leader@{COMMUNE}",
                                              changed_at=T0 + timedelta(minutes=5)), LIMITS)
    for issued in (T0, T0 + timedelta(minutes=5)):  # before, and in the second of the change
        with pytest.raises(Unauthorized, match="sign in again"):
            check(uow.session, uow.metadata, caller(issued_at=issued))
    check(uow.session, uow.metadata, caller(issued_at=T0 + timedelta(minutes=6)))  # signed in again since
    record_account_changed(uow, gateway_event("account_changed", username=f"leader@{COMMUNE}",
                                              changed_at=T0), LIMITS)  # late delivery of an older change
    with pytest.raises(Unauthorized):
        check(uow.session, uow.metadata, caller(issued_at=T0 + timedelta(minutes=4)))


def test_rows_are_purged_once_they_can_refuse_nothing(uow):
    """Each write purges revocations of tokens expired anyway, and account changes older than the longest
    lifetime any token may have."""
    long_ago = datetime.now(timezone.utc) - timedelta(days=2)
    record_token_revoked(uow, gateway_event("token_revoked", token_id="old", expires_at=long_ago, revoked_at=long_ago))
    record_account_changed(uow, gateway_event("account_changed", username="old@X", changed_at=long_ago), LIMITS)
    now = datetime.now(timezone.utc)
    record_token_revoked(uow, gateway_event("token_revoked", token_id="new", expires_at=now + timedelta(minutes=5),
                                            revoked_at=now))
    record_account_changed(uow, gateway_event("account_changed", username="new@X", changed_at=now), LIMITS)
    tokens, accounts = uow.metadata.tables["revoked_token_ids"], uow.metadata.tables["account_changes"]
    assert uow.session.scalars(select(tokens.c.token_id)).all() == ["new"]
    assert uow.session.scalars(select(accounts.c.username)).all() == ["new@X"]


# -- the instance's cache of what it read ----------------------------------------------------------

def test_the_instance_that_applies_a_revocation_or_an_account_change_refuses_at_once_whatever_it_cached(uow):
    """A token's state read once is trusted for `ACCESS_CACHE_SECONDS` without a statement; the events
    the instance takes from its inbox end that trust at once (here an hour's TTL never runs out)."""
    service = worker_factory(IntakeService, db=uow, revocations=AccessCache(ttl=3600), config=dict(VERIFYING))
    leader, receptionist = f"leader@{COMMUNE}", f"receptionist@{COMMUNE}"
    leaders = gateway_token(leader, COMMUNE, "leader")
    receptionists = gateway_token(receptionist, COMMUNE, "receptionist")
    for token in (leaders, receptionists):
        service.verified_caller(token)  # read, then kept
    statements = []
    sqlalchemy_event.listen(uow.session.get_bind(), "before_cursor_execute", lambda *args: statements.append(1))
    service.verified_caller(leaders)
    assert statements == []  # answered from the cache

    issued = datetime.fromtimestamp(jwt.decode(leaders, options={"verify_signature": False})["iat"], timezone.utc)
    service.on_account_changed(gateway_event("account_changed", username=leader, changed_at=issued))
    with pytest.raises(Unauthorized, match="sign in again"):
        service.verified_caller(leaders)

    token_id = jwt.decode(receptionists, options={"verify_signature": False})["jti"]
    service.on_token_revoked(gateway_event("token_revoked", token_id=token_id, revoked_at=T0,
                                           expires_at=datetime.now(timezone.utc) + timedelta(hours=6)))
    with pytest.raises(Unauthorized, match="token revoked"):
        service.verified_caller(receptionists)


# -- on direct RPC, past the gateway ----------------------------------------------------------------

@pytest.fixture
def platform(amqp_uri, pg_urls):
    seed_demo_accounts(pg_urls["gateway"], catalog_dir())
    port = free_port()
    config = {**nameko_config(amqp_uri), "DB_URLS": pg_urls, "METRICS_PORTS": {},
              "WEB_SERVER_ADDRESS": f"127.0.0.1:{port}"}
    containers = [ServiceContainer(cls, config)
                  for cls in (IntakeService, WorkflowService, NotifyService, ReportingService, GatewayService)]
    for container in containers:
        container.start()
    with ServiceRpcProxy("intake", {"AMQP_URI": amqp_uri}) as intake, \
            ServiceRpcProxy("workflow", {"AMQP_URI": amqp_uri}) as workflow:
        yield type("Platform", (), {"url": f"http://127.0.0.1:{port}", "intake": intake, "workflow": workflow,
                                    "db_urls": pg_urls})
    for container in containers:
        container.stop()


def signed_in_token(platform, username: str) -> str:
    response = login(platform, username)
    assert response.status_code == 200, response.text
    return response.json()["access_token"]


def refused_by_both(platform, code: str, token: str, reason: str) -> bool:
    """Whether intake and workflow both refuse `token` (for `reason`) on direct RPC."""
    refusals = []
    for call in (lambda: platform.intake.get_dossier(code, caller_token=token),
                 lambda: platform.workflow.list_tasks(token)):
        try:
            call()
        except Unauthorized as exc:
            refusals.append(reason in str(exc))
        else:
            refusals.append(False)
    return all(refusals)


@pytest.mark.integration
def test_a_logged_out_token_is_refused_by_intake_and_workflow_on_direct_rpc(platform):
    code = platform.intake.submit_dossier({"procedure_code": "1.012786", "channel": "online",
                                           "applicant": APPLICANT, "form": {},
                                           "documents": required_uploads("1.012786")})["code"]
    token = signed_in_token(platform, f"receptionist@{COMMUNE}")
    other_session = signed_in_token(platform, f"receptionist@{COMMUNE}")
    assert platform.intake.get_dossier(code, caller_token=token)["code"] == code
    assert isinstance(platform.workflow.list_tasks(token), list)

    response = requests.post(f"{platform.url}/api/v1/auth/logout", headers=bearer(token), timeout=10)
    assert response.status_code == 200
    assert wait_for(lambda: refused_by_both(platform, code, token, "token revoked"), timeout=20), \
        "a logged-out token still works on direct RPC"
    assert platform.intake.get_dossier(code, caller_token=other_session)["code"] == code  # only that token
    # every service that verifies tokens keeps the revocation (notify's and reporting's calls included)
    token_id = jwt.decode(token, options={"verify_signature": False})["jti"]
    for service in ("intake", "workflow", "notify", "reporting"):
        assert wait_for(lambda: revoked_in(platform.db_urls[service], token_id), timeout=20), service


def revoked_in(db_url: str, token_id: str) -> bool:
    engine = create_engine(db_url)
    try:
        with engine.connect() as connection:
            return connection.execute(text("SELECT 1 FROM revoked_token_ids WHERE token_id = :id"),
                                      {"id": token_id}).first() is not None
    finally:
        engine.dispose()


@pytest.mark.integration
def test_a_deactivated_accounts_token_is_refused_by_intake_and_workflow_on_direct_rpc(platform):
    code = platform.intake.submit_dossier({"procedure_code": "1.012786", "channel": "online",
                                           "applicant": APPLICANT, "form": {},
                                           "documents": required_uploads("1.012786")})["code"]
    officer = f"leader@{COMMUNE}"
    token = signed_in_token(platform, officer)
    assert platform.intake.get_dossier(code, caller_token=token)["code"] == code

    admin = bearer(signed_in_token(platform, "admin"))
    response = requests.patch(f"{platform.url}/api/v1/users/{officer}", json={"active": False}, headers=admin,
                              timeout=10)
    assert response.status_code == 200, response.text
    assert wait_for(lambda: refused_by_both(platform, code, token, "sign in again"), timeout=20), \
        "a deactivated account's token still works on direct RPC"
