"""HTTP API v1: sign in (cấp token) with login throttling, and sign out (đăng xuất) revoking the token."""
from __future__ import annotations

from marshmallow import Schema, fields
from sqlalchemy import select

from motcua.db import utcnow
from motcua.errors import Unauthorized, load_valid
from motcua.identity import Caller, TokenLimits
from services.gateway import accounts, audit, sessions, throttle
from services.gateway.errors import TooManyRequests
from services.gateway.http import read_json, route
from services.gateway.models import User
from services.gateway.schemas import TokenRequestSchema

DEFAULT_TOKEN_TTL_SECONDS = 900


class LogoutOut(Schema):
    revoked = fields.Bool(required=True)


class AuthApi:
    """Routes mixed into GatewayService, which provides the config, the database and `caller_of`."""

    @route("POST", "/api/v1/auth/token", body=TokenRequestSchema, auth="public", errors=(429,))
    def issue_token(self, request):
        body = load_valid(TokenRequestSchema, read_json(request))
        return self.sign_in(body["username"], body["password"], request.remote_addr)

    def sign_in(self, username: str, password: str, remote_addr: str | None, action: str = "auth.token") -> dict:
        """Đăng nhập: the token response for a right username and password, throttled (TooManyRequests,
        even with the right password) and audited; the API's token and the console's login alike."""
        session, secret, now = self.db.session, self.config["THROTTLE_KEY"], utcnow()
        policy = throttle.ThrottlePolicy.for_logins(self.config)
        known = self.reads.run(lambda c: c.scalar(select(User.id).where(User.username == username))) is not None
        known_here = self.reads.run(
            lambda connection: throttle.known_here(connection, policy, secret, username, remote_addr, now))
        limits = throttle.keys(policy, secret, username, remote_addr, known_here)
        claimed = Caller(username[:128] if known else throttle.pseudonym(secret, username), None, ())
        # Counted before the password is evaluated (the failure stays unless it is right): tries at
        # once cannot all pass the check before one of them is recorded.
        attempt = throttle.claim(session, policy, limits, now)
        if attempt.retry_after is not None:
            self.record_audit(claimed, action, remote_addr, outcome=audit.DENIED,
                              detail="throttled: too many failed logins")
            raise TooManyRequests("too many failed logins: try again later", retry_after=attempt.retry_after)
        try:
            caller = accounts.authenticate(session, username, password)
        except Unauthorized as exc:
            session.rollback()
            self.record_audit(claimed, action, remote_addr, outcome=audit.DENIED, detail=exc.message)
            raise
        throttle.signed_in(session, policy, secret, username, remote_addr, attempt, now)
        self.record_audit(caller, action, remote_addr)
        return accounts.token_response(caller, self.config["TOKEN_SIGNING_KEY"], self.token_ttl())

    def token_ttl(self) -> int:
        """A staff token's lifetime: never longer than every verifier accepts (a longer setting would
        make tokens refused at once)."""
        return min(int(self.config.get("TOKEN_TTL_SECONDS", DEFAULT_TOKEN_TTL_SECONDS)),
                   TokenLimits.of(self.config).max_seconds)

    @route("POST", "/api/v1/auth/logout", response=LogoutOut)
    def logout(self, request):
        """Revokes the bearer token (or the console's session token): refused everywhere from now on."""
        caller, _token = self.caller_of(request)
        self.end_session(caller, request.remote_addr)
        return {"revoked": True}

    def renew_session(self, caller, remote_addr) -> dict:
        """Phiên trượt: an officer still at work past half their token's life gets a new token (the
        token response) and the old one is revoked (as a logout revokes it), audited `auth.renew`. An
        account changed since, disabled or logged out is refused before it gets here (caller_from_token)."""
        renewed = accounts.token_response(caller, self.config["TOKEN_SIGNING_KEY"], self.token_ttl())
        sessions.revoke(self.db, caller, utcnow())
        self.access.revoked(caller.token_id, caller.expires_at)
        self.record_audit(caller, "auth.renew", remote_addr)
        return renewed

    def end_session(self, caller, remote_addr):
        """Revoke the caller's token (from `caller_from_token`), audited: the API's logout and the
        console's sign-out alike. Refused at once here; by the other gateway instances when the
        `token_revoked` event reaches them (or their cached state expires)."""
        sessions.revoke(self.db, caller, utcnow())
        self.access.revoked(caller.token_id, caller.expires_at)
        self.record_audit(caller, "auth.logout", remote_addr)
