"""Tokens: EdDSA only, signed with the gateway's private key and verified with its public key,
short-lived (the server caps their lifetime whatever they say), naming an existing account, revocable
(logout), and ended by an account change; every refusal is a 401 with the error table's body, by
`verify_token` and over HTTP."""
from __future__ import annotations

import base64
import hashlib
import hmac
import json
from datetime import timedelta

import jwt
import pytest
import requests
from sqlalchemy import create_engine, select
from sqlalchemy.orm import Session

from motcua import keys
from motcua.errors import Unauthorized
from motcua.identity import Caller, TokenLimits, issue_token, signing_key, verify_token
from services.gateway.models import RevokedToken
from tests.security.conftest import COMMUNE, bearer, login, signed_in, token_for

SIGNING, VERIFYING = keys.new_token_pair()
OTHER_SIGNING, _ = keys.new_token_pair()  # a pair of someone else's: a service's, a worker's, an attacker's
COMPOSE_SECRET = "change-me-in-production"  # the HS256 secret compose.yaml published before tokens were EdDSA
TEN_YEARS = timedelta(days=3653)
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


def hs256(claims: dict, secret: str) -> str:
    """An HS256 token signed by hand (PyJWT itself refuses a PEM text as an HMAC secret)."""
    signed = f"{_segment({'alg': 'HS256', 'typ': 'JWT'})}.{_segment(claims)}"
    mac = hmac.new(secret.encode(), signed.encode(), hashlib.sha256).digest()
    return f"{signed}.{base64.urlsafe_b64encode(mac).rstrip(b'=').decode()}"


def _now_claims(**changes) -> dict:
    from time import time

    now = int(time())
    return {**_claims(iat=now, exp=now + 600), **changes}


# -- verify_token ---------------------------------------------------------------------------------


def test_a_token_has_an_id_and_a_lifetime():
    caller = verify_token(issue_token(Caller("leader@X", COMMUNE, ("leader",)), SIGNING, timedelta(minutes=15)),
                          VERIFYING)
    assert caller == Caller("leader@X", COMMUNE, ("leader",))
    assert len(caller.token_id) == 32
    assert (caller.expires_at - caller.issued_at) == timedelta(minutes=15)


@pytest.mark.parametrize("forge, message", [
    (lambda: alg_none(_claims()), "invalid"),
    (lambda: tampered(issue_token(Caller("specialist@X", COMMUNE, ("specialist",)), SIGNING, timedelta(hours=1))),
     "invalid"),
    (lambda: issue_token(Caller("admin", None, ("admin",)), SIGNING, timedelta(seconds=-5)), "expired"),
    (lambda: issue_token(Caller("admin", None, ("admin",)), OTHER_SIGNING, timedelta(hours=1)), "invalid"),
    (lambda: hs256(_now_claims(), COMPOSE_SECRET), "invalid"),  # the old compose secret signs nothing now
    (lambda: hs256(_now_claims(), VERIFYING), "invalid"),  # the public key used as an HMAC secret
    (lambda: issue_token(Caller("admin", None, ("admin",)), SIGNING, TEN_YEARS), "lifetime exceeds"),
    (lambda: issue_token(Caller("system@X", COMMUNE, ("system",)), SIGNING, TEN_YEARS), "lifetime exceeds"),
    (lambda: jwt.encode({k: v for k, v in _now_claims().items() if k != "jti"}, signing_key(SIGNING), algorithm="EdDSA"),
     "invalid"),
    (lambda: jwt.encode(_now_claims(sub=["admin"]), signing_key(SIGNING), algorithm="EdDSA"), "invalid"),
    (lambda: jwt.encode(_now_claims(iat=2 ** 31, exp=2 ** 31 + 60), signing_key(SIGNING), algorithm="EdDSA"),
     "invalid"),  # issued in the future: its lifetime would start later than it says
    (lambda: "not-a-token", "invalid"),
], ids=["alg-none", "tampered", "expired", "another-pair", "hs256-compose-secret", "hs256-public-key",
        "ten-years", "system-ten-years", "no-jti", "sub-not-a-string", "issued-in-the-future", "garbage"])
def test_verify_token_refuses(forge, message):
    with pytest.raises(Unauthorized, match=message):
        verify_token(forge(), VERIFYING)


def test_the_lifetime_cap_is_the_servers_setting_not_the_tokens():
    """A system's token may live up to its own cap, a staff member's only up to theirs."""
    limits = TokenLimits(max_seconds=3600, max_system_seconds=30 * 86400)
    system = issue_token(Caller("system@X", COMMUNE, ("system",)), SIGNING, timedelta(days=30))
    assert verify_token(system, VERIFYING, limits).roles == ("system",)
    for caller in (Caller("leader@X", COMMUNE, ("leader",)), Caller("x@X", COMMUNE, ("system", "admin"))):
        with pytest.raises(Unauthorized, match="lifetime exceeds"):
            verify_token(issue_token(caller, SIGNING, timedelta(hours=2)), VERIFYING, limits)


# -- over HTTP ------------------------------------------------------------------------------------


def _http_forgeries(platform_key: str) -> dict[str, str]:
    specialist = token_for(platform_key, f"specialist@{COMMUNE}", COMMUNE, "specialist")
    return {
        "alg-none": alg_none(_claims()),
        "tampered": tampered(specialist),
        "expired": token_for(platform_key, f"specialist@{COMMUNE}", COMMUNE, "specialist", ttl=timedelta(seconds=-5)),
        "another-pair": token_for(OTHER_SIGNING, "admin", None, "admin"),
        "hs256-compose-secret": hs256(_now_claims(), COMPOSE_SECRET),
        "ten-years": token_for(platform_key, "admin", None, "admin", ttl=TEN_YEARS),
        # rightly signed, for accounts that do not exist: made up, and an agency system's (no account here)
        "no-such-account": token_for(platform_key, "ghost-admin", None, "admin"),
        "system": token_for(platform_key, "system@000.00.18.H56", "000.00.18.H56", "system"),
    }


@pytest.mark.parametrize("kind", ["alg-none", "tampered", "expired", "another-pair", "hs256-compose-secret",
                                  "ten-years", "no-such-account", "system"])
def test_forged_tokens_are_401_over_http_and_never_reach_a_service(api, kind):
    token = _http_forgeries(api.signing_key)[kind]
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
    caller = verify_token(body["access_token"], api.verify_key)
    assert (caller.expires_at - caller.issued_at) == timedelta(seconds=900)


def test_revocation_is_stored_under_the_token_id_only(api):
    headers = signed_in(api, f"specialist@{COMMUNE}")
    token = headers["Authorization"].split()[1]
    requests.post(f"{api.url}/api/v1/auth/logout", headers=headers, timeout=10)
    engine = create_engine(api.db_url)
    with Session(engine) as session:
        token_id = verify_token(token, api.verify_key).token_id
        row = session.scalar(select(RevokedToken).where(RevokedToken.token_id == token_id))
    engine.dispose()
    assert row is not None and row.username == f"specialist@{COMMUNE}"
