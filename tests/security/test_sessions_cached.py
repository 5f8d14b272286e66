"""Phiên đăng nhập across gateway instances: each caches a token's state a few seconds, so a check
costs no statement; a logout or an account change is refused at once on the instance that made it,
and on another instance as soon as its event arrives, at the latest when its cached state expires."""
from __future__ import annotations

import time
import uuid
from datetime import datetime, timezone

import pytest
import requests
from sqlalchemy import create_engine, event
from sqlalchemy.orm import Session

from motcua import embedded
from motcua.config import catalog_dir
from motcua.identity import verify_token
from services.gateway.accounts import seed_demo_accounts
from services.gateway.dependencies import reads_of
from services.gateway.models import RevokedToken
from tests.infra import migrated_sqlite_urls
from tests.security.conftest import COMMUNE, bearer, login, mocked_gateway, signed_in

TTL = 2.0
DOSSIER = f"{COMMUNE}-261201-0900"


@pytest.fixture(scope="module")
def instances(tmp_path_factory):
    """Two gateway instances on one database and one bus, as production scales the gateway."""
    embedded.install()
    vhost = f"sessions-{uuid.uuid4().hex[:8]}"
    urls = migrated_sqlite_urls(tmp_path_factory.mktemp("instances"))
    seed_demo_accounts(urls["gateway"], catalog_dir())
    gateways = [mocked_gateway(urls, f"embedded:///{vhost}", ACCESS_CACHE_SECONDS=TTL) for _ in range(2)]
    for gateway in gateways:
        gateway.intake.get_dossier.return_value = {"code": DOSSIER}
    yield gateways
    for gateway in gateways:
        gateway.container.stop()
    embedded.reset(vhost)


def read(instance, headers) -> requests.Response:
    return requests.get(f"{instance.url}/api/v1/dossiers/{DOSSIER}", headers=headers, timeout=10)


def refused_within(instance, headers, seconds: float) -> float:
    """How long until `instance` refuses the token (fails past `seconds`)."""
    started = time.monotonic()
    while read(instance, headers).status_code != 401:
        assert time.monotonic() - started < seconds, "still honoured"
        time.sleep(0.05)
    return time.monotonic() - started


def test_a_logout_is_refused_at_once_here_and_within_the_ttl_on_another_instance(instances):
    here, there = instances
    headers = signed_in(here, f"receptionist@{COMMUNE}")
    assert read(here, headers).status_code == 200 and read(there, headers).status_code == 200  # both cached it
    assert requests.post(f"{here.url}/api/v1/auth/logout", headers=headers, timeout=10).status_code == 200
    answer = read(here, headers)
    assert answer.status_code == 401 and answer.json()["error"]["message"] == "token revoked"
    assert refused_within(there, headers, TTL + 0.5) < TTL  # its token_revoked event, before the TTL


def test_a_revocation_whose_event_is_lost_is_refused_when_the_cached_state_expires(instances):
    _here, there = instances
    headers = signed_in(there, f"leader@{COMMUNE}")
    assert read(there, headers).status_code == 200
    caller = verify_token(headers["Authorization"].split()[1], there.verify_key)
    engine = create_engine(there.db_url)
    with Session(engine) as session:  # revoked by an instance whose broadcast never came
        session.add(RevokedToken(token_id=caller.token_id, username=caller.username, expires_at=caller.expires_at,
                                 revoked_at=datetime.now(timezone.utc)))
        session.commit()
    engine.dispose()
    assert refused_within(there, headers, TTL + 1) >= 0


def test_an_account_change_ends_its_tokens_at_once_here_and_within_the_ttl_elsewhere(instances):
    here, there = instances
    officer = f"specialist@{COMMUNE}"
    headers = signed_in(here, officer)
    assert read(here, headers).status_code == 200 and read(there, headers).status_code == 200
    time.sleep(1.01)  # tokens carry whole seconds: this change is later than the token
    admin = signed_in(here, "admin")
    changed = requests.patch(f"{here.url}/api/v1/users/{officer}", json={"roles": ["specialist", "leader"]},
                             headers=admin, timeout=10)
    assert changed.status_code == 200, changed.text
    assert read(here, headers).json()["error"]["message"] == "token no longer valid: sign in again"
    assert refused_within(there, headers, TTL + 0.5) < TTL
    time.sleep(1.01)  # a token of the change's own second is refused too
    assert read(there, signed_in(there, officer)).status_code == 200  # a new sign-in is honoured


def test_a_cached_token_check_costs_no_statement(instances):
    here, _there = instances
    headers = signed_in(here, f"receptionist@{COMMUNE}")
    statements = []
    engine = reads_of(here.container).engine  # where the token check reads
    listener = lambda *args: statements.append(args[2])  # noqa: E731
    event.listen(engine, "before_cursor_execute", listener)
    try:
        here.workflow.list_tasks.return_value = []
        for _ in range(20):
            assert requests.get(f"{here.url}/api/v1/tasks", headers=headers, timeout=10).status_code == 200
    finally:
        event.remove(engine, "before_cursor_execute", listener)
    assert len(statements) <= 1 + int(20 * 0.05 / TTL) + 1, statements  # the first load (and one per TTL)


def test_a_token_of_an_unknown_holder_is_still_checked_for_its_signature(instances):
    here, _there = instances
    assert read(here, bearer("not-a-token")).status_code == 401
    assert login(here, "nobody", "guess").status_code == 401
