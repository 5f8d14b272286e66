"""HTTP API v1: sign-in through OpenID Connect: citizens with VNeID (`/api/v1/auth/vneid/...`), and,
when the province configures it, staff through its own provider (`/api/v1/auth/staff-sso/...`); a
signed-in citizen's own dossiers (`/api/v1/me/dossiers`, authorised by intake against the identity).

The login route sends the browser to the provider and keeps state, nonce and PKCE verifier in a signed
cookie (10 minutes, HttpOnly, SameSite=Lax, only for the callback's path); the callback checks them, has
the adapter (`vneid.OidcClient`) verify the provider's answer, and answers a Motcua access token. A
sign-in started from the citizens' portal (its "Đăng nhập bằng VNeID" button, `/dang-nhap-vneid`) comes
back to the same callback, which then keeps the token in the portal's citizen cookie and lands on "my
dossiers" (`/ho-so-cua-toi`) instead of answering JSON. A refused sign-in (a forged or foreign ID token,
a state not ours) is 401 and audited.
"""
from __future__ import annotations

from datetime import timedelta

import jwt
from marshmallow import Schema, fields, validate
from nameko.extensions import DependencyProvider
from werkzeug.wrappers import Response

from motcua.db import utcnow
from motcua.errors import Forbidden, NotFound, Unauthorized, load_valid
from motcua.identity import CITIZEN_ROLE, Caller
from motcua.keys import key_setting
from motcua.metrics import metrics_for
from services.gateway import accounts, audit
from services.gateway.http import https_only, query, route
from services.gateway.vneid import LoginRefused, OidcClient, OidcMetrics, OidcSettings

PENDING_COOKIE = "motcua_oidc"
PENDING_SECONDS = 600
CITIZEN_COOKIE = "motcua_citizen"  # the portal's citizen session (SameSite=Lax: it is set on the way back
MY_DOSSIERS_PAGE = "/ho-so-cua-toi"  # from the provider, a cross-site navigation a Strict cookie would miss)
PROVIDERS = {"vneid": ("VNEID", "/api/v1/auth/vneid/callback"),
             "staff-sso": ("STAFF_OIDC", "/api/v1/auth/staff-sso/callback")}


class OidcProviders(DependencyProvider):
    """The configured providers (`VNEID_ISSUER`, `STAFF_OIDC_ISSUER`; neither: sign-in by password only)
    and the key that signs the pending sign-in's cookie."""

    def setup(self):
        config = self.container.config
        address = config["WEB_SERVER_ADDRESS"].replace("0.0.0.0", "localhost")
        metrics = OidcMetrics(metrics_for(self.container).registry)
        self.clients: dict[str, OidcClient] = {}
        for name, (prefix, path) in PROVIDERS.items():
            settings = OidcSettings.from_env(prefix, name, f"http://{address}{path}")
            if settings is not None:
                self.clients[name] = OidcClient(settings, metrics)
        self.state_key = key_setting("GATEWAY_OIDC_STATE_KEY") if self.clients else b""

    def client(self, name: str) -> OidcClient:
        found = self.clients.get(name)
        if found is None:
            raise NotFound(f"sign-in through {name} is not configured here", field="provider")
        return found

    def get_dependency(self, worker_ctx):
        return self


class CallbackQuery(Schema):
    code = fields.Str(load_default=None, validate=validate.Length(max=2048))
    state = fields.Str(load_default=None, validate=validate.Length(max=512))
    error = fields.Str(load_default=None, validate=validate.Length(max=256))
    error_description = fields.Str(load_default=None, validate=validate.Length(max=2048))


class OidcTokenOut(Schema):
    access_token = fields.Str(required=True)
    token_type = fields.Str(required=True)
    expires_in = fields.Int(required=True)
    name = fields.Str(allow_none=True)


class MyDossiersQuery(Schema):
    page = fields.Int(load_default=1, validate=validate.Range(min=1, max=100000))


class OidcApi:
    """Routes mixed into GatewayService, which provides `oidc`, the config, the database and audit."""

    @route("GET", "/api/v1/auth/vneid/login", response="text/html", status=302, auth="public")
    def vneid_login(self, request):
        """Đăng nhập bằng VNeID: redirects to the national identity provider (authorization code + PKCE)."""
        return self._oidc_login("vneid", request)

    @route("GET", "/api/v1/auth/vneid/callback", query=CallbackQuery, response=OidcTokenOut, auth="public")
    def vneid_callback(self, request):
        """The provider's redirect back: a citizen's access token (role `citizen`, the verified identity)."""
        identity, pending = self._oidc_identity("vneid", request)
        if identity.id_number is None:
            raise self._refused(request, "vneid", "the identity provider released no ID number")
        caller = Caller(f"vneid:{identity.subject}"[:128], None, (CITIZEN_ROLE,), citizen_id=identity.id_number,
                        citizen_name=identity.name)
        self.record_audit(caller, "auth.vneid", request.remote_addr)
        token = self._token_for(caller)
        if pending.get("portal"):  # the portal's button: a browser session, not JSON
            response = Response(status=303, headers={"Location": MY_DOSSIERS_PAGE, "Cache-Control": "no-store"})
            response.set_cookie(CITIZEN_COOKIE, token["access_token"], max_age=token["expires_in"], httponly=True,
                                samesite="Lax", secure=https_only(request), path="/")
            response.delete_cookie(PENDING_COOKIE, path=PROVIDERS["vneid"][1])
            return response
        return {**token, "name": identity.name}

    @route("GET", "/api/v1/auth/staff-sso/login", response="text/html", status=302, auth="public")
    def staff_sso_login(self, request):
        """Staff single sign-on through the province's own OIDC provider (when configured)."""
        return self._oidc_login("staff-sso", request)

    @route("GET", "/api/v1/auth/staff-sso/callback", query=CallbackQuery, response=OidcTokenOut, auth="public")
    def staff_sso_callback(self, request):
        """An officer's access token for the account the provider names (`STAFF_OIDC_USERNAME_CLAIM`):
        the account must exist and be active here; its roles and agency are Motcua's, not the provider's."""
        identity, _pending = self._oidc_identity("staff-sso", request)
        caller = accounts.active_caller(self.db.session, identity.username) if identity.username else None
        if caller is None:
            raise self._refused(request, "staff-sso", "no active account for the provider's username")
        self.record_audit(caller, "auth.staff_sso", request.remote_addr)
        return {**self._token_for(caller), "name": identity.name}

    @route("GET", "/api/v1/me/dossiers", query=MyDossiersQuery)
    def my_dossiers(self, request):
        """Hồ sơ của tôi: the signed-in citizen's dossiers, as intake finds them for the verified identity."""
        caller, token = self.caller_of(request)
        page = load_valid(MyDossiersQuery, query(request))["page"]
        if not caller.is_citizen:
            raise Forbidden("sign in with VNeID to list your dossiers")
        return self.intake.my_dossiers(token, page=page)

    def _oidc_login(self, name: str, request, portal: bool = False) -> Response:
        """To the provider; `portal`: started from the citizens' portal, whose browser the callback signs in."""
        url, pending = self.oidc.client(name).begin()
        cookie = jwt.encode({**pending, "provider": name, "portal": portal,
                             "exp": utcnow() + timedelta(seconds=PENDING_SECONDS)},
                            self.oidc.state_key, algorithm="HS256")
        response = Response(status=302, headers={"Location": url, "Cache-Control": "no-store"})
        response.set_cookie(PENDING_COOKIE, cookie, max_age=PENDING_SECONDS, httponly=True, samesite="Lax",
                            secure=https_only(request), path=PROVIDERS[name][1])
        return response

    def _oidc_identity(self, name: str, request):
        """The provider's verified identity and the pending sign-in it answers."""
        client = self.oidc.client(name)
        params = load_valid(CallbackQuery, query(request))
        try:
            pending = jwt.decode(request.cookies.get(PENDING_COOKIE, ""), self.oidc.state_key, algorithms=["HS256"])
        except jwt.InvalidTokenError:
            raise self._refused(request, name, "no sign-in was started from this browser (or it expired)") from None
        if pending.get("provider") != name:
            raise self._refused(request, name, "the sign-in was started with another provider")
        try:
            return client.finish(pending, params), pending
        except LoginRefused as exc:
            raise self._refused(request, name, exc.message) from None

    def _refused(self, request, name: str, why: str) -> Unauthorized:
        """The refusal, audited first: a forged token or a callback not ours is an attack to see."""
        self.record_audit(Caller(f"{name}:unverified", None, ()), f"auth.{name.replace('-', '_')}",
                          request.remote_addr, outcome=audit.DENIED, detail=why[:200])
        return LoginRefused(why, field="id_token")

    def _token_for(self, caller: Caller) -> dict:
        return accounts.token_response(caller, self.config["TOKEN_SIGNING_KEY"], self.token_ttl())
