"""HTTP API v1: account management (quản lý tài khoản) by agency admins and the platform admin, and
the audit log (nhật ký), for the platform admin only."""
from __future__ import annotations

from zoneinfo import ZoneInfo

from marshmallow import RAISE, Schema, ValidationError, fields, validate, validates_schema

from motcua.db import utcnow
from motcua.errors import Forbidden, load_valid
from motcua.idempotency import Command, account_scope, run_once, ttl_of
from services.gateway import audit, users
from services.gateway.http import query, read_json, route


class AuditQuerySchema(Schema):
    class Meta:
        unknown = RAISE

    username = fields.Str(validate=validate.Length(max=128))
    dossier_code = fields.Str(validate=validate.Length(max=64))
    action = fields.Str(validate=validate.Length(max=64))
    outcome = fields.Str(validate=validate.OneOf((audit.ALLOWED, audit.DENIED)))
    agency_code = fields.Str(validate=validate.Length(max=32))
    date_from = fields.Date(data_key="from")
    date_to = fields.Date(data_key="to")
    page = fields.Int(load_default=1, validate=validate.Range(min=1))
    page_size = fields.Int(load_default=50, validate=validate.Range(min=1, max=500))

    @validates_schema
    def _ordered(self, data, **_):
        if data.get("date_from") and data.get("date_to") and data["date_from"] > data["date_to"]:
            raise ValidationError("must not be after 'to'", "from")


class AdminApi:
    """Routes mixed into GatewayService, which provides the config, the database and `caller_of`."""

    def _tree(self):
        return users.agency_tree(str(self.config["CATALOG_DIR"]))

    @route("GET", "/api/v1/users", query=users.UserQuerySchema)
    def list_users(self, request):
        caller, _token = self.caller_of(request)
        agency = load_valid(users.UserQuerySchema(), query(request))["agency"]
        with self.audited(request, caller, "user.list"):
            return users.list_users(self.db.session, caller, self._tree(), agency)

    @route("POST", "/api/v1/users", body=users.NewUserSchema, status=201, command=True)
    def create_user(self, request):
        caller, _token = self.caller_of(request)
        body = load_valid(users.NewUserSchema(), read_json(request))
        with self.audited(request, caller, "user.create", detail=f"user {body['username']}"):
            return 201, self._account_command(request, caller, "create_user", [body], lambda: users.create_user(
                self.db, caller, self._tree(), body, utcnow()))

    @route("PATCH", "/api/v1/users/<username>", body=users.UserChangeSchema, command=True)
    def update_user(self, request, username):
        caller, _token = self.caller_of(request)
        body = load_valid(users.UserChangeSchema(), read_json(request))
        changed = ",".join(sorted(body)) or "nothing"
        with self.audited(request, caller, f"user.update:{changed}"[:64], detail=f"user {username}"):
            updated = self._account_command(request, caller, "update_user", [username, body], lambda: users.update_user(
                self.db, caller, self._tree(), username, body, utcnow()))
        self.access.account_changed(username)  # here at once; elsewhere by its account_changed event
        return updated

    def _account_command(self, request, caller, name, request_values, run):
        """The gateway's own command once per key (motcua.idempotency). A password is no part of what a
        key's request is recognised by: no digest of it is kept."""
        recognised = [{k: v for k, v in value.items() if k != "password"} if isinstance(value, dict) else value
                      for value in request_values]
        command = Command.of(request.idempotency_key, f"gateway.{name}", account_scope(caller.username), recognised)
        return run_once(self.db, command, run, utcnow(), ttl_of(self.config))

    @route("GET", "/api/v1/audit", query=AuditQuerySchema)
    def audit_log(self, request):
        """`?username=&dossier_code=&action=&outcome=&agency_code=&from=&to=&page=&page_size=`."""
        caller, _token = self.caller_of(request)
        if not caller.is_admin:
            self.record_audit(caller, "audit.read", request.remote_addr, outcome=audit.DENIED,
                         detail="requires the platform admin")
            raise Forbidden("requires the platform admin")
        filters = load_valid(AuditQuerySchema, query(request))
        return audit.query(self.db, filters, ZoneInfo(self.config["TIME_ZONE"]))
