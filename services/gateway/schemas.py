"""Marshmallow schemas of what the HTTP API accepts; errors name the first bad field, dotted."""
from __future__ import annotations

from marshmallow import Schema, ValidationError, fields, validate, validates_schema

# The bodies that go on to a service are validated by the same contract the service applies.
from motcua.contracts.rpc import REPORTABLE_DATES, DocumentUploadV1
from motcua.contracts.rpc import RefuseDossierV1 as RefuseSchema  # noqa: F401
from motcua.contracts.rpc import ReturnResultV1 as ReturnResultSchema  # noqa: F401
from motcua.contracts.rpc import SubmitDossierV1 as SubmitDossierSchema  # noqa: F401


def _text(max_length: int, **kwargs) -> fields.Str:
    return fields.Str(validate=validate.Length(min=1, max=max_length), **kwargs)


class TokenRequestSchema(Schema):
    username = _text(128, required=True)
    # Bounded: an unbounded password would make the hasher the attacker's tool.
    password = _text(1024, required=True)


class CompleteTaskSchema(Schema):
    """What an officer does with a step: approve, send_back (to_step), request_supplement (items),
    require_payment (amount_vnd), refuse or stop (with the reason in note). Workflow checks the rest."""

    outcome = _text(32, required=True)
    note = fields.Str(load_default=None, allow_none=True, validate=validate.Length(max=2000))
    items = fields.List(_text(500), load_default=None, validate=validate.Length(min=1, max=50))
    amount_vnd = fields.Int(load_default=None, strict=True, validate=validate.Range(min=0, max=10**13))
    to_step = fields.Int(load_default=None, strict=True, validate=validate.Range(min=0, max=1000))
    documents = fields.List(fields.Nested(DocumentUploadV1), load_default=None, validate=validate.Length(min=1, max=10))


class TaskQuerySchema(Schema):
    status = _text(32, load_default="open")
    role = _text(32, load_default=None)
    assignee = _text(120, load_default=None)


class AssignTaskSchema(Schema):
    assignee = fields.Str(required=True, allow_none=True, validate=validate.Length(min=1, max=120))


class TransferTaskSchema(Schema):
    agency_code = _text(20, required=True)
    note = fields.Str(load_default=None, allow_none=True, validate=validate.Length(max=2000))


class TrackQuerySchema(Schema):
    key = _text(16, required=True)


class TimelinessQuerySchema(Schema):
    date_from = fields.Date(required=True, data_key="from", validate=REPORTABLE_DATES)
    date_to = fields.Date(required=True, data_key="to", validate=REPORTABLE_DATES)
    agency = _text(32, load_default=None)

    @validates_schema
    def _ordered(self, data, **_):
        if data["date_from"] > data["date_to"]:
            raise ValidationError("must not be after 'to'", "from")


class DemoUsersSchema(Schema):
    """deploy/catalog/demo-users.yaml."""

    password = _text(128, required=True)
    admins = fields.List(_text(128), required=True)
    roles_per_agency = fields.List(_text(32), required=True, validate=validate.Length(min=1))


