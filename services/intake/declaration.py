"""Tờ khai: the applicant's declaration (a dossier's `form`), checked against the fields its procedure
declares in procedures.yaml (`form:`). A field the procedure does not declare is refused, each value
is bounded by its field's type (text length, number range, a choice's values), and the whole
declaration by the submission contract (motcua.contracts.rpc.MAX_DECLARATION_BYTES), so what travels
on the bus (`dossier_received` carries the declaration to workflow and the agencies' workers) is small
and what the catalogue says it is. A procedure that declares no field takes an empty declaration.
"""
from __future__ import annotations

from marshmallow import RAISE, Schema, ValidationError, fields, validate, validates_schema

from motcua.errors import ValidationFailed

FIELD_TYPES = ("text", "integer", "number", "boolean", "choice")
TEXT_MAX = 2000  # the longest text a declaration's field may allow
TEXT_DEFAULT = 200
FIELDS_MAX = 50  # fields a procedure may declare


class DeclarationFieldSchema(Schema):
    """One field of a procedure's declaration in procedures.yaml:
    `{key, name, type, required?, max_length? (text), min?, max? (integer, number), choices (choice)}`."""

    key = fields.Str(required=True, validate=validate.Regexp(r"^[a-z][a-z0-9_]{0,39}$",
                                                             error="lower-case letters, digits and _"))
    name = fields.Str(required=True, validate=validate.Length(min=1, max=200))
    type = fields.Str(required=True, validate=validate.OneOf(FIELD_TYPES))
    required = fields.Bool(load_default=False)
    max_length = fields.Int(load_default=TEXT_DEFAULT, strict=True, validate=validate.Range(min=1, max=TEXT_MAX))
    min = fields.Float(load_default=None, allow_nan=False)
    max = fields.Float(load_default=None, allow_nan=False)
    choices = fields.List(fields.Str(validate=validate.Length(min=1, max=TEXT_DEFAULT)), load_default=list)

    @validates_schema
    def _consistent(self, data, **_):
        if data["type"] == "choice" and not data["choices"]:
            raise ValidationError({"choices": ["a choice lists its values"]})
        if data["type"] != "choice" and data["choices"]:
            raise ValidationError({"choices": ["only a choice lists values"]})
        if data["min"] is not None and data["max"] is not None and data["min"] > data["max"]:
            raise ValidationError({"max": ["must not be below min"]})


def declaration_fields() -> fields.List:
    """The `form:` entry of a procedure in procedures.yaml: its fields, keys unique."""
    return fields.List(fields.Nested(DeclarationFieldSchema), load_default=list,
                       validate=[validate.Length(max=FIELDS_MAX), _unique_keys])


def _unique_keys(specs: list[dict]) -> None:
    keys = [spec["key"] for spec in specs]
    for index, key in enumerate(keys):
        if keys.index(key) != index:
            raise ValidationError({index: {"key": ["duplicate field key"]}})


def schema_of(specs: tuple[dict, ...]) -> Schema:
    """The marshmallow schema of a declaration with these fields (unknown fields refused)."""
    return Schema.from_dict({spec["key"]: _field(spec) for spec in specs}, name="Declaration")(unknown=RAISE)


def _field(spec: dict) -> fields.Field:
    required = {"required": spec["required"], "allow_none": not spec["required"]}
    bounds = validate.Range(min=spec["min"], max=spec["max"])
    if spec["type"] == "text":
        return fields.Str(validate=validate.Length(max=spec["max_length"]), **required)
    if spec["type"] == "integer":
        return fields.Int(strict=True, validate=bounds, **required)
    if spec["type"] == "number":
        return fields.Float(allow_nan=False, validate=bounds, **required)
    if spec["type"] == "boolean":
        return fields.Bool(truthy={True}, falsy={False}, **required)  # JSON's true/false, nothing else
    return fields.Str(validate=validate.OneOf(spec["choices"]), **required)


def check(schema: Schema, form: dict) -> dict:
    """The declaration as its procedure's fields read it; ValidationFailed naming the field
    ("form.<key>") otherwise. The message names the rule, never the applicant's value."""
    try:
        return schema.load(form)
    except ValidationError as exc:
        raise ValidationFailed.from_marshmallow(exc.messages, prefix="form") from None
