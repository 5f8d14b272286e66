"""A national identity provider (VNeID-style) speaking OpenID Connect: discovery, JWKS, the
authorization endpoint (authorization code with PKCE S256 only), the token endpoint
(`client_secret_basic` or `client_secret_post`) and userinfo; ID tokens RS256-signed.

Test citizens (`TEST_CITIZENS`) and officers (`TEST_STAFF`, for staff single sign-on) sign in by being
chosen: `login_hint=<ID number or account name>` on the authorization request redirects at once (what
the tests do); without it the page lists them as links.

`forge = True` signs ID tokens with a key that is not the published one (same `kid`), as an attacker
would; its `faults` (motcua/simulators/http.py) make it down, slow or answer garbage.

    python -m motcua.simulators.oidc [PORT]     (default 8091; `make run` starts it when configured)
"""
from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import secrets
import time
from html import escape
from urllib.parse import parse_qs, urlencode, urlsplit

from joserfc import jwt
from joserfc.jwk import RSAKey

from motcua.simulators.http import Answer, Request, Simulator, port_argument

DEFAULT_CLIENT_ID = "motcua-dev"
DEFAULT_CLIENT_SECRET = "motcua-dev-oidc-secret"
# Claims as the provider releases them under scope `openid profile`; `citizen_id` is the 12-digit
# personal identification number (số định danh cá nhân).
TEST_CITIZENS = {
    "038190012345": {"sub": "vneid-7f3a91c2", "name": "Trần Thị Bình", "citizen_id": "038190012345",
                     "birthdate": "1990-04-12", "phone_number": "0987654321"},
    "001085004321": {"sub": "vneid-2b7e44d0", "name": "Nguyễn Văn An", "citizen_id": "001085004321",
                     "birthdate": "1985-11-02", "phone_number": "0912345678"},
}

# The province's staff provider (staff single sign-on): officers by their Motcua account name.
TEST_STAFF = {
    "receptionist@000.20.01.H56": {"sub": "staff-0001", "name": "Lê Thị Hoa",
                                   "preferred_username": "receptionist@000.20.01.H56"},
    "former@000.20.01.H56": {"sub": "staff-0002", "name": "Cán bộ đã nghỉ",
                             "preferred_username": "former@000.20.01.H56"},
}
PEOPLE = {**TEST_CITIZENS, **TEST_STAFF}


def _private_jwk(kid: str) -> RSAKey:
    return RSAKey.generate_key(2048, parameters={"kid": kid, "use": "sig", "alg": "RS256"})


class OidcSimulator(Simulator):
    def __init__(self, client_id: str = DEFAULT_CLIENT_ID, client_secret: str = DEFAULT_CLIENT_SECRET,
                 redirect_uris: tuple[str, ...] = (), port: int = 0, host: str = "127.0.0.1"):
        self.client_id, self.client_secret = client_id, client_secret
        self.redirect_uris = set(redirect_uris)  # empty: any redirect URI on this machine (development)
        self.key, self.forged_key = _private_jwk("sim-1"), _private_jwk("sim-1")
        self.forge = False
        self.codes: dict[str, dict] = {}
        self.access_tokens: dict[str, dict] = {}
        super().__init__(port, host)

    @property
    def issuer(self) -> str:
        return self.http.url

    def handle(self, request: Request) -> Answer:
        query = {k: v[0] for k, v in request.query.items()}
        route = {("GET", "/.well-known/openid-configuration"): self._discovery, ("GET", "/jwks"): self._jwks,
                 ("GET", "/authorize"): self._authorize, ("POST", "/token"): self._token,
                 ("GET", "/userinfo"): self._userinfo}.get((request.method, request.path))
        if route is None:
            return Answer(404, {"error": "not_found"})
        return route(query, request.headers, request.raw)

    def _discovery(self, query, headers, body):
        issuer = self.issuer
        return Answer(200, {"issuer": issuer, "authorization_endpoint": f"{issuer}/authorize",
                     "token_endpoint": f"{issuer}/token", "userinfo_endpoint": f"{issuer}/userinfo",
                     "jwks_uri": f"{issuer}/jwks", "response_types_supported": ["code"],
                     "subject_types_supported": ["pairwise"], "id_token_signing_alg_values_supported": ["RS256"],
                     "scopes_supported": ["openid", "profile"], "code_challenge_methods_supported": ["S256"],
                     "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
                     "claims_supported": ["sub", "name", "citizen_id", "birthdate", "phone_number"]})

    def _jwks(self, query, headers, body):
        return Answer(200, {"keys": [self.key.as_dict(private=False)]})

    def _authorize(self, query, headers, body):
        redirect_uri = query.get("redirect_uri", "")
        if query.get("client_id") != self.client_id or not self._allowed(redirect_uri):
            return Answer(400, {"error": "invalid_request", "error_description": "unknown client or redirect_uri"})
        if query.get("response_type") != "code" or "openid" not in query.get("scope", "").split():
            return _redirect(redirect_uri, {"error": "unsupported_response_type", "state": query.get("state")})
        if query.get("code_challenge_method") != "S256" or not query.get("code_challenge"):
            return _redirect(redirect_uri, {"error": "invalid_request", "state": query.get("state"),
                                            "error_description": "PKCE S256 is required"})
        citizen = PEOPLE.get(query.get("login_hint", ""))
        if citizen is None:  # the sign-in page: a list of the test people
            links = "".join(f'<li><a href="/authorize?{urlencode({**query, "login_hint": hint})}">'
                            f'{escape(person["name"])} ({escape(hint)})</a></li>' for hint, person in PEOPLE.items())
            return Answer(200, f"<html><body><h1>VNeID (simulator)</h1><ul>{links}</ul></body></html>")
        code = secrets.token_urlsafe(24)
        self.codes[code] = {"citizen": citizen, "redirect_uri": redirect_uri, "nonce": query.get("nonce"),
                            "challenge": query["code_challenge"], "expires": time.time() + 60}
        return _redirect(redirect_uri, {"code": code, "state": query.get("state")})

    def _allowed(self, redirect_uri: str) -> bool:
        if self.redirect_uris:
            return redirect_uri in self.redirect_uris
        return urlsplit(redirect_uri).hostname in ("127.0.0.1", "localhost")

    def _token(self, query, headers, body):
        form = {k: v[0] for k, v in parse_qs(body.decode("utf-8", "replace")).items()}
        client_id, client_secret = form.get("client_id"), form.get("client_secret")
        basic = headers.get("Authorization", "")
        if basic.startswith("Basic "):
            client_id, _, client_secret = base64.b64decode(basic[6:]).decode().partition(":")
        if client_id != self.client_id or not hmac.compare_digest(client_secret or "", self.client_secret):
            return Answer(401, {"error": "invalid_client"})
        grant = self.codes.pop(form.get("code", ""), None)  # single use
        if form.get("grant_type") != "authorization_code" or grant is None or grant["expires"] < time.time():
            return Answer(400, {"error": "invalid_grant"})
        if form.get("redirect_uri") != grant["redirect_uri"]:
            return Answer(400, {"error": "invalid_grant", "error_description": "redirect_uri differs"})
        verifier = form.get("code_verifier", "")
        challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
        if not hmac.compare_digest(challenge, grant["challenge"]):
            return Answer(400, {"error": "invalid_grant", "error_description": "PKCE verification failed"})
        citizen, now = grant["citizen"], int(time.time())
        claims = {"iss": self.issuer, "aud": self.client_id, "iat": now, "exp": now + 300, "auth_time": now,
                  "nonce": grant["nonce"], **{k: v for k, v in citizen.items() if k != "phone_number"}}
        key = self.forged_key if self.forge else self.key
        id_token = jwt.encode({"alg": "RS256", "kid": key.kid}, claims, key)
        access_token = secrets.token_urlsafe(24)
        self.access_tokens[access_token] = citizen
        return Answer(200, {"access_token": access_token, "token_type": "Bearer", "expires_in": 300,
                            "id_token": id_token, "scope": "openid profile"})

    def _userinfo(self, query, headers, body):
        token = headers.get("Authorization", "").removeprefix("Bearer ")
        citizen = self.access_tokens.get(token)
        if citizen is None:
            return Answer(401, {"error": "invalid_token"})
        return Answer(200, dict(citizen))


def _redirect(redirect_uri: str, params: dict) -> Answer:
    params = {k: v for k, v in params.items() if v is not None}
    separator = "&" if "?" in redirect_uri else "?"
    return Answer(302, "", {"Location": f"{redirect_uri}{separator}{urlencode(params)}"})


if __name__ == "__main__":
    OidcSimulator(client_id=os.environ.get("VNEID_CLIENT_ID", DEFAULT_CLIENT_ID),
                  client_secret=os.environ.get("VNEID_CLIENT_SECRET", DEFAULT_CLIENT_SECRET),
                  port=port_argument(8091)).serve("OIDC provider")
