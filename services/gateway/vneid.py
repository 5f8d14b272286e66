"""Đăng nhập bằng tài khoản định danh điện tử (VNeID): citizens sign in through the national identity
provider with OpenID Connect, authorization code + PKCE (S256), through Authlib; optionally staff
through the province's own provider the same way (`STAFF_OIDC_*`).

The port is `IdentityProvider`: `begin() -> (authorization URL, pending)` and `finish(pending, params)
-> Identity`. Its adapter `OidcClient` reads the provider's discovery document, sends the browser to
its authorization endpoint with `state`, `nonce` and the PKCE challenge, exchanges the code at the token
endpoint (client secret, the PKCE verifier), and checks the ID token before believing anything of it:
RS256/ES256 signature against the provider's JWKS (fetched again once for an unknown `kid`: a key
rotation), `iss`, `aud`, `exp`/`iat` (a minute of skew), `nonce`; then userinfo, whose `sub` must be the
ID token's. A token or an answer failing any of these is refused (`LoginRefused`, 401, audited by the
route); a provider that is down, slow or answers garbage is `ProviderUnavailable` (503).

`motcua/simulators/oidc.py` is the local provider; `docs/connections.md` has the configuration table.
"""
from __future__ import annotations

import re
import secrets
import time
from dataclasses import dataclass, field
from typing import Protocol

import requests
from authlib.integrations.base_client.errors import OAuthError
from authlib.integrations.requests_client import OAuth2Session
from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import KeySet
from prometheus_client import CollectorRegistry, Counter, Histogram

from motcua.config import env, is_production
from motcua.errors import Unauthorized
from motcua.faults import TransientFailure

ID_TOKEN_ALGORITHMS = ["RS256", "ES256"]
CLOCK_SKEW_SECONDS = 60
ID_NUMBER = re.compile(r"^\d{12}$")  # số định danh cá nhân


class LoginRefused(Unauthorized):
    """The provider's answer does not prove who signs in: a forged or tampered ID token, another
    audience or issuer, a replayed nonce, a state that is not ours, an error the provider returned."""


class ProviderUnavailable(TransientFailure):
    """The identity provider is down, too slow, or answered something that is no OIDC answer."""


@dataclass(frozen=True)
class Identity:
    """Who the provider says signed in: its subject (pairwise), the name and the ID number."""

    subject: str
    name: str | None
    id_number: str | None
    username: str | None  # staff SSO: the account name the province's provider asserts


class IdentityProvider(Protocol):
    def begin(self) -> tuple[str, dict]: ...

    def finish(self, pending: dict, params: dict) -> Identity: ...


@dataclass(frozen=True)
class OidcSettings:
    """One provider's configuration table (docs/connections.md): `VNEID_*` for citizens,
    `STAFF_OIDC_*` for the province's staff provider. None when `<PREFIX>_ISSUER` is unset (off)."""

    name: str
    issuer: str
    client_id: str
    client_secret: str
    redirect_uri: str
    scope: str
    id_number_claim: str
    username_claim: str
    timeout: float

    @classmethod
    def from_env(cls, prefix: str, name: str, default_redirect: str) -> "OidcSettings | None":
        issuer = env(f"{prefix}_ISSUER")
        if issuer is None:
            return None
        secret = env(f"{prefix}_CLIENT_SECRET")
        if secret is None:
            if is_production():
                raise SystemExit(f"{prefix}_CLIENT_SECRET must be set when MOTCUA_ENV=production and {prefix}_ISSUER is")
            secret = "motcua-dev-oidc-secret"  # the simulator's (motcua/simulators/oidc.py)
        if is_production() and not issuer.startswith("https://"):
            raise SystemExit(f"{prefix}_ISSUER must be an https:// URL when MOTCUA_ENV=production")
        return cls(name=name, issuer=issuer.rstrip("/"), client_id=env(f"{prefix}_CLIENT_ID", "motcua-dev"),
                   client_secret=secret, redirect_uri=env(f"{prefix}_REDIRECT_URI", default_redirect),
                   scope=env(f"{prefix}_SCOPE", "openid profile"),
                   id_number_claim=env(f"{prefix}_ID_NUMBER_CLAIM", "citizen_id"),
                   username_claim=env(f"{prefix}_USERNAME_CLAIM", "preferred_username"),
                   timeout=float(env(f"{prefix}_TIMEOUT_SECONDS", "10")))


class OidcMetrics:
    def __init__(self, registry: CollectorRegistry):
        self.logins = Counter("motcua_oidc_logins", "Sign-ins through an OIDC provider, by provider and outcome "
                              "(started, signed_in, refused, unavailable)", ["provider", "outcome"], registry=registry)
        self.duration = Histogram("motcua_oidc_callback_duration_seconds", "The callback's calls to the provider "
                                  "(token, JWKS, userinfo)", ["provider"], registry=registry,
                                  buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10))


@dataclass
class OidcClient:
    settings: OidcSettings
    metrics: OidcMetrics
    http: requests.Session = field(default_factory=requests.Session)
    _metadata: dict | None = None
    _keys: KeySet | None = None

    def begin(self) -> tuple[str, dict]:
        """The provider's authorization URL, and what the callback must find again (kept by the caller
        in a signed, short-lived cookie): state, nonce, PKCE verifier."""
        verifier, nonce = secrets.token_urlsafe(48), secrets.token_urlsafe(16)
        url, state = self._session().create_authorization_url(
            self._discovery()["authorization_endpoint"], code_verifier=verifier, nonce=nonce)
        self.metrics.logins.labels(self.settings.name, "started").inc()
        return url, {"state": state, "nonce": nonce, "verifier": verifier}

    def finish(self, pending: dict, params: dict) -> Identity:
        started = time.monotonic()
        try:
            identity = self._finish(pending, params)
        except LoginRefused:
            self.metrics.logins.labels(self.settings.name, "refused").inc()
            raise
        except ProviderUnavailable:
            self.metrics.logins.labels(self.settings.name, "unavailable").inc()
            raise
        self.metrics.logins.labels(self.settings.name, "signed_in").inc()
        self.metrics.duration.labels(self.settings.name).observe(time.monotonic() - started)
        return identity

    def _finish(self, pending: dict, params: dict) -> Identity:
        if params.get("error"):
            raise LoginRefused(f"the identity provider answered {params['error'][:64]}", field="error")
        if not params.get("state") or not secrets.compare_digest(str(params["state"]), str(pending["state"])):
            raise LoginRefused("this sign-in was not started here (state)", field="state")
        if not params.get("code"):
            raise LoginRefused("no authorization code", field="code")
        discovery = self._discovery()
        try:
            token = self._session().fetch_token(discovery["token_endpoint"], code=params["code"],
                                                code_verifier=pending["verifier"], timeout=self.settings.timeout)
        except OAuthError as exc:
            raise LoginRefused(f"the identity provider refused the code ({exc.error})", field="code") from None
        except requests.RequestException as exc:
            raise ProviderUnavailable(f"identity provider unreachable ({type(exc).__name__})") from None
        except ValueError:
            raise ProviderUnavailable("the identity provider's token answer is no JSON") from None
        if not isinstance(token, dict) or not isinstance(token.get("id_token"), str):
            raise ProviderUnavailable("the identity provider's token answer has no ID token")
        claims = self._verified_claims(token["id_token"], pending["nonce"])
        userinfo = self._get_json(discovery["userinfo_endpoint"],
                                  headers={"Authorization": f"Bearer {token.get('access_token', '')}"})
        if userinfo.get("sub") != claims["sub"]:
            raise LoginRefused("userinfo names another subject than the ID token", field="id_token")
        merged = {**userinfo, **claims}  # the signed claims win
        id_number = merged.get(self.settings.id_number_claim)
        if id_number is not None and not (isinstance(id_number, str) and ID_NUMBER.match(id_number)):
            raise LoginRefused("the identity's ID number is not 12 digits", field="id_token")
        name = merged.get("name")
        username = merged.get(self.settings.username_claim)
        return Identity(subject=str(claims["sub"]), name=name if isinstance(name, str) else None,
                        id_number=id_number, username=username if isinstance(username, str) else None)

    def _verified_claims(self, id_token: str, nonce: str) -> dict:
        try:
            decoded = self._decode(id_token, refresh=False)
        except JoseError:
            decoded = None
        if decoded is None:  # an unknown kid may be a rotated key: the JWKS once more, then refuse
            try:
                decoded = self._decode(id_token, refresh=True)
            except (JoseError, ValueError):
                raise LoginRefused("the ID token's signature does not verify", field="id_token") from None
        registry = jwt.JWTClaimsRegistry(
            leeway=CLOCK_SKEW_SECONDS, iss={"essential": True, "value": self.settings.issuer},
            sub={"essential": True}, exp={"essential": True}, iat={"essential": True},
            nonce={"essential": True, "value": nonce})
        try:
            registry.validate(decoded.claims)
        except JoseError as exc:
            raise LoginRefused(f"the ID token is not for this sign-in ({exc.error})", field="id_token") from None
        audience = decoded.claims.get("aud")
        if self.settings.client_id not in (audience if isinstance(audience, list) else [audience]):
            raise LoginRefused("the ID token is for another client (aud)", field="id_token")
        return decoded.claims

    def _decode(self, id_token: str, refresh: bool):
        if self._keys is None or refresh:
            self._keys = KeySet.import_key_set(self._get_json(self._discovery()["jwks_uri"]))
        try:
            return jwt.decode(id_token, self._keys, algorithms=ID_TOKEN_ALGORITHMS)
        except ValueError as exc:  # not even a JWS
            raise LoginRefused("the ID token is malformed", field="id_token") from exc

    def _discovery(self) -> dict:
        if self._metadata is None:
            metadata = self._get_json(f"{self.settings.issuer}/.well-known/openid-configuration")
            needed = ("authorization_endpoint", "token_endpoint", "userinfo_endpoint", "jwks_uri")
            if metadata.get("issuer") != self.settings.issuer or any(not metadata.get(k) for k in needed):
                raise ProviderUnavailable("the identity provider's discovery document does not fit its issuer")
            self._metadata = metadata
        return self._metadata

    def _get_json(self, url: str, headers: dict | None = None) -> dict:
        try:
            response = self.http.get(url, headers=headers, timeout=self.settings.timeout)
        except requests.RequestException as exc:
            raise ProviderUnavailable(f"identity provider unreachable ({type(exc).__name__})") from None
        if response.status_code == 401:
            raise LoginRefused("the identity provider refused its own access token", field="code")
        try:
            answer = response.json()
        except ValueError:
            raise ProviderUnavailable(f"the identity provider answered no JSON (HTTP {response.status_code})") from None
        if response.status_code != 200 or not isinstance(answer, dict):
            raise ProviderUnavailable(f"the identity provider answered HTTP {response.status_code}")
        return answer

    def _session(self) -> OAuth2Session:
        session = OAuth2Session(self.settings.client_id, self.settings.client_secret, scope=self.settings.scope,
                                redirect_uri=self.settings.redirect_uri, code_challenge_method="S256")
        session.timeout = self.settings.timeout
        return session
