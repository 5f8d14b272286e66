"""Marshmallow schemas of what the HTTP API accepts; errors name the first bad field, dotted."""
from __future__ import annotations

from marshmallow import Schema, ValidationError, fields, validate, validates_schema

# The bodies that go on to a service are validated by the same contract the service applies.
from motcua.contracts.rpc import REPORTABLE_DATES
from motcua.contracts.rpc import RefuseDossierV1 as RefuseSchema  # noqa: F401
from motcua.contracts.rpc import ReturnResultV1 as ReturnResultSchema  # noqa: F401
from motcua.contracts.rpc import SubmitDossierV1 as SubmitDossierSchema  # noqa: F401


def _text(max_length: int, **kwargs) -> fields.Str:
    return fields.Str(validate=validate.Length(min=1, max=max_length), **kwargs)


class TokenRequestSchema(Schema):
    username = _text(128, required=True)
    # Bounded: an unbounded password would make the hasher the attacker's tool.
    password = _text(1024, required=True)


class DemoUsersSchema(Schema):
    """deploy/catalog/demo-users.yaml."""

    password = _text(128, required=True)
    admins = fields.List(_text(128), required=True)
    roles_per_agency = fields.List(_text(32), required=True, validate=validate.Length(min=1))


