"""Tokens: HS256 only, signed with the platform's secret, short-lived, revocable (logout), and ended by
an account change; every refusal is a 401 with the error table's body, by `verify_token` and over HTTP."""
from __future__ import annotations

import base64
import json
from datetime import timedelta

import jwt
import pytest
import requests
from sqlalchemy import create_engine, select
from sqlalchemy.orm import Session

from motcua.errors import Unauthorized
from motcua.identity import Caller, issue_token, verify_token
from services.gateway.models import RevokedToken
from tests.security.conftest import COMMUNE, bearer, login, signed_in, token_for

SECRET = "a-test-secret-" + "x" * 64
DOSSIER = f"{COMMUNE}-261201-0001"


def _segment(data: dict) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


def _claims(**changes) -> dict:
    return {"sub": "admin", "roles": ["admin"], "iat": 1796000000, "exp": 4102444800, "jti": "x" * 32, **changes}


def alg_none(claims: dict) -> str:
    return f"{_segment({'alg': 'none', 'typ': 'JWT'})}.{_segment(claims)}."


def tampered(token: str) -> str:
    """The same signature over claims that now say admin."""
    header, _payload, signature = token.split(".")
    claims = jwt.decode(token, options={"verify_signature": False})
    return ".".join([header, _segment({**claims, "roles": ["admin"], "agency": None}), signature])


def hs512(claims: dict, secret: str) -> str:
    return jwt.encode(claims, secret, algorithm="HS512")


# -- verify_token ---------------------------------------------------------------------------------


def test_a_token_has_an_id_and_a_lifetime():
    caller = verify_token(issue_token(Caller("leader@X", COMMUNE, ("leader",)), SECRET, timedelta(minutes=15)), SECRET)
    assert caller == Caller("leader@X", COMMUNE, ("leader",))
    assert len(caller.token_id) == 32
    assert (caller.expires_at - caller.issued_at) == timedelta(minutes=15)


@pytest.mark.parametrize("forge, message", [
    (lambda: alg_none(_claims()), "invalid"),
    (lambda: tampered(issue_token(Caller("specialist@X", COMMUNE, ("specialist",)), SECRET, timedelta(hours=1))),
     "invalid"),
    (lambda: issue_token(Caller("admin", None, ("admin",)), SECRET, timedelta(seconds=-5)), "expired"),
    (lambda: issue_token(Caller("admin", None, ("admin",)), "another-secret-of-at-least-32-bytes!!", timedelta(hours=1)),
     "invalid"),
    (lambda: hs512(_claims(), SECRET), "invalid"),  # right secret, algorithm not allowed
    (lambda: jwt.encode({k: v for k, v in _claims().items() if k != "jti"}, SECRET, algorithm="HS256"), "invalid"),
    (lambda: jwt.encode(_claims(sub=["admin"]), SECRET, algorithm="HS256"), "invalid"),
    (lambda: "not-a-token", "invalid"),
], ids=["alg-none", "tampered", "expired", "wrong-secret", "hs512", "no-jti", "sub-not-a-string", "garbage"])
def test_verify_token_refuses(forge, message):
    with pytest.raises(Unauthorized, match=message):
        verify_token(forge(), SECRET)


# -- over HTTP ------------------------------------------------------------------------------------


def _http_forgeries(secret: str) -> dict[str, str]:
    specialist = token_for(secret, f"specialist@{COMMUNE}", COMMUNE, "specialist")
    return {
        "alg-none": alg_none(_claims()),
        "tampered": tampered(specialist),
        "expired": token_for(secret, f"specialist@{COMMUNE}", COMMUNE, "specialist", ttl=timedelta(seconds=-5)),
        "wrong-secret": token_for("another-secret-of-at-least-32-bytes!!", "admin", None, "admin"),
    }


@pytest.mark.parametrize("kind", ["alg-none", "tampered", "expired", "wrong-secret"])
def test_forged_tokens_are_401_over_http_and_never_reach_a_service(api, kind):
    token = _http_forgeries(api.secret)[kind]
    response = requests.get(f"{api.url}/api/v1/dossiers/{DOSSIER}", headers=bearer(token), timeout=10)
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "unauthorized"
    api.intake.get_dossier.assert_not_called()


def test_logout_revokes_the_token_everywhere(api):
    headers = signed_in(api, f"receptionist@{COMMUNE}")
    api.intake.get_dossier.return_value = {"code": DOSSIER}
    assert requests.get(f"{api.url}/api/v1/dossiers/{DOSSIER}", headers=headers, timeout=10).status_code == 200
    response = requests.post(f"{api.url}/api/v1/auth/logout", headers=headers, timeout=10)
    assert response.status_code == 200 and response.json() == {"revoked": True}
    again = requests.get(f"{api.url}/api/v1/dossiers/{DOSSIER}", headers=headers, timeout=10)
    assert again.status_code == 401 and again.json()["error"]["message"] == "token revoked"
    assert requests.post(f"{api.url}/api/v1/auth/logout", headers=headers, timeout=10).status_code == 401
    # another session of the same officer is untouched
    assert requests.get(f"{api.url}/api/v1/dossiers/{DOSSIER}", headers=signed_in(api, f"receptionist@{COMMUNE}"),
                        timeout=10).status_code == 200


def test_logout_purges_revocations_of_expired_tokens(api):
    from datetime import datetime, timezone

    engine = create_engine(api.db_url)
    with Session(engine) as session:
        session.add(RevokedToken(token_id="old", username="someone", expires_at=datetime(2020, 1, 1, tzinfo=timezone.utc)))
        session.commit()
    headers = signed_in(api, f"leader@{COMMUNE}")
    assert requests.post(f"{api.url}/api/v1/auth/logout", headers=headers, timeout=10).status_code == 200
    with Session(engine) as session:
        assert session.get(RevokedToken, "old") is None
    engine.dispose()


def test_logout_without_a_token_is_401(api):
    assert requests.post(f"{api.url}/api/v1/auth/logout", timeout=10).status_code == 401


def test_the_token_contract_is_unchanged_and_short_lived(api):
    response = login(api, f"specialist@{COMMUNE}")
    body = response.json()
    assert set(body) == {"access_token", "token_type", "expires_in"}
    assert body["token_type"] == "bearer" and body["expires_in"] == 900
    caller = verify_token(body["access_token"], api.secret)
    assert (caller.expires_at - caller.issued_at) == timedelta(seconds=900)


def test_a_token_whose_holder_is_unknown_to_the_gateway_still_needs_a_valid_signature(api):
    """Agencies' system accounts have no row: their tokens are checked by signature and lifetime."""
    api.intake.get_dossier.return_value = {"code": DOSSIER}
    token = token_for(api.secret, "system@000.00.18.H56", "000.00.18.H56", "system")
    assert requests.get(f"{api.url}/api/v1/dossiers/{DOSSIER}", headers=bearer(token), timeout=10).status_code == 200


def test_revocation_is_stored_under_the_token_id_only(api):
    headers = signed_in(api, f"specialist@{COMMUNE}")
    token = headers["Authorization"].split()[1]
    requests.post(f"{api.url}/api/v1/auth/logout", headers=headers, timeout=10)
    engine = create_engine(api.db_url)
    with Session(engine) as session:
        row = session.scalar(select(RevokedToken).where(RevokedToken.token_id == verify_token(token, api.secret).token_id))
    engine.dispose()
    assert row is not None and row.username == f"specialist@{COMMUNE}"
