"""Demo accounts, argon2 logins and the tokens the gateway issues."""
import base64
import json
from datetime import timedelta

import jwt
import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from motcua import migrate
from motcua.catalog import load_agencies
from motcua.config import catalog_dir
from motcua.db import make_engine
from motcua.errors import Unauthorized, ValidationFailed
from motcua import keys
from motcua.identity import Caller, issue_token, verify_token
from services.gateway.accounts import authenticate, seed_demo_accounts, token_response
from services.gateway import users
from services.gateway.models import User

SIGNING, VERIFYING = keys.new_token_pair()
AGENCY = "000.20.01.H56"


@pytest.fixture(scope="module")
def seeded(tmp_path_factory):
    url = f"sqlite:///{tmp_path_factory.mktemp('gateway') / 'gateway.db'}"
    migrate.upgrade("gateway", url)
    created = seed_demo_accounts(url, catalog_dir())
    return url, created


@pytest.fixture
def session(seeded):
    engine = make_engine(seeded[0])
    with Session(engine) as session:
        yield session
    engine.dispose()


def test_seeding_creates_admin_and_four_roles_per_agency(seeded, session):
    agencies = load_agencies(catalog_dir())
    assert seeded[1] == 1 + 4 * len(agencies)
    admin = session.scalar(select(User).where(User.username == "admin"))
    assert (admin.agency_code, admin.roles) == (None, ["admin"])
    for role in ("receptionist", "specialist", "leader", "agency_admin"):
        user = session.scalar(select(User).where(User.username == f"{role}@{AGENCY}"))
        assert (user.agency_code, user.roles) == (AGENCY, [role])
        assert user.password_hash.startswith("$argon2id$") and "demo" not in user.password_hash


def test_seeding_twice_creates_nothing_more(seeded, session):
    assert seed_demo_accounts(seeded[0], catalog_dir()) == 0
    assert session.scalar(select(func.count()).select_from(User)) == seeded[1]


def test_production_refuses_demo_accounts(tmp_path, monkeypatch):
    url = f"sqlite:///{tmp_path / 'gateway.db'}"
    migrate.upgrade("gateway", url)
    monkeypatch.setenv("MOTCUA_ENV", "production")
    assert seed_demo_accounts(url, catalog_dir()) == 0
    engine = make_engine(url)
    with Session(engine) as session:
        assert session.scalar(select(func.count()).select_from(User)) == 0
    engine.dispose()


def test_authenticate_with_the_demo_password(session):
    assert authenticate(session, f"leader@{AGENCY}", "demo") == Caller(f"leader@{AGENCY}", AGENCY, ("leader",))


@pytest.mark.parametrize("username, password", [("admin", "wrong"), ("nobody", "demo"), ("admin", "")])
def test_wrong_credentials_are_unauthorized(session, username, password):
    with pytest.raises(Unauthorized, match="wrong username or password"):
        authenticate(session, username, password)


def test_a_deactivated_account_cannot_log_in(session):
    user = session.scalar(select(User).where(User.username == f"specialist@{AGENCY}"))
    user.active = False
    session.flush()
    with pytest.raises(Unauthorized):
        authenticate(session, user.username, "demo")
    session.rollback()


def test_token_response_carries_the_caller():
    caller = Caller(f"receptionist@{AGENCY}", AGENCY, ("receptionist",))
    answer = token_response(caller, SIGNING, 3600)
    assert answer["token_type"] == "bearer" and answer["expires_in"] == 3600
    assert verify_token(answer["access_token"], VERIFYING) == caller


def _segment(data: dict) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


def test_an_expired_token_is_refused():
    token = issue_token(Caller("admin", None, ("admin",)), SIGNING, timedelta(seconds=-10))
    with pytest.raises(Unauthorized, match="expired"):
        verify_token(token, VERIFYING)


def test_a_tampered_token_is_refused():
    token = issue_token(Caller(f"specialist@{AGENCY}", AGENCY, ("specialist",)), SIGNING, timedelta(hours=1))
    header, payload, signature = token.split(".")
    claims = jwt.decode(token, options={"verify_signature": False})
    forged = ".".join([header, _segment({**claims, "roles": ["admin"]}), signature])
    with pytest.raises(Unauthorized, match="invalid"):
        verify_token(forged, VERIFYING)


def test_a_token_signed_with_another_key_pair_is_refused():
    other_pair, _ = keys.new_token_pair()
    token = issue_token(Caller("admin", None, ("admin",)), other_pair, timedelta(hours=1))
    with pytest.raises(Unauthorized):
        verify_token(token, VERIFYING)


def test_alg_none_is_refused():
    claims = {"sub": "admin", "roles": ["admin"], "exp": 4102444800}
    unsigned = f"{_segment({'alg': 'none', 'typ': 'JWT'})}.{_segment(claims)}."
    with pytest.raises(Unauthorized):
        verify_token(unsigned, VERIFYING)


def test_officers_answers_the_names_the_forms_print_and_only_those(session):
    """The gateway's `officers` RPC (for intake's forms): accounts with a full name, the others left out."""
    named = session.scalar(select(User).where(User.username == f"receptionist@{AGENCY}"))
    named.full_name, named.title = "Lê Thị Hoa", "Công chức Bộ phận Một cửa"
    session.flush()
    found = users.officers(session, [f"receptionist@{AGENCY}", f"leader@{AGENCY}", "nobody"])
    assert found == {f"receptionist@{AGENCY}": {"full_name": "Lê Thị Hoa", "title": "Công chức Bộ phận Một cửa"}}
    session.rollback()
    for wrong in ("receptionist", [1], ["x"] * (users.OFFICERS_MAX + 1)):
        with pytest.raises(ValidationFailed) as error:
            users.officers(session, wrong)
        assert error.value.field == "usernames"


def test_the_officers_rpc_answers_staff_and_reportings_own_token_only():
    """Reporting names the officers in the national portal's progress lines with its own token (issue 15);
    a citizen or an agency's worker is refused before anything is read."""
    from nameko.testing.services import worker_factory

    from motcua.errors import Forbidden
    from motcua.identity import portal_sync_token, system_token
    from services.gateway.service import GatewayService
    from tests.infra import TOKENS, VERIFYING as PLATFORM_VERIFYING, gateway_token

    service = worker_factory(GatewayService, config=PLATFORM_VERIFYING)
    service.db.session.execute.return_value.all.return_value = []
    reporting = portal_sync_token(TOKENS["TOKEN_SIGNING_KEY"], timedelta(hours=1))
    assert service.officers([f"leader@{AGENCY}"], caller_token=reporting) == {}
    for refused in (gateway_token("0912345678", None, "applicant"),
                    system_token(AGENCY, TOKENS["TOKEN_SIGNING_KEY"], timedelta(hours=1))):
        service.db.reset_mock()
        with pytest.raises(Forbidden):
            service.officers([f"leader@{AGENCY}"], caller_token=refused)
        service.db.session.execute.assert_not_called()
    with pytest.raises(Unauthorized):
        service.officers([f"leader@{AGENCY}"], caller_token=None)
