"""Master data as files: YAML validated by a marshmallow schema at load, errors with file and line."""
from __future__ import annotations

import re
from pathlib import Path

import yaml
from marshmallow import EXCLUDE, Schema, ValidationError, fields, validate, validates_schema

# A commune is named "Ủy ban nhân dân <xã|phường> <name>" in agencies.yaml: what follows names its area
# (in an applicant's address, in the portal's choice of a receiving commune).
PEOPLES_COMMITTEE = "Ủy ban nhân dân "


class CatalogError(Exception):
    """A master-data file that refuses to load: names the file, the line and the reason."""


# libyaml's parser where it is built in: a province's catalogue (2,000 procedures, bench/province.py)
# parses in about a second instead of ten
_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def load_data(path: Path, schema: Schema) -> dict:
    text = Path(path).read_text(encoding="utf-8")
    try:
        raw = yaml.load(text, Loader=_LOADER) or {}
    except yaml.YAMLError as exc:
        raise CatalogError(f"{path}: invalid YAML: {exc}") from None
    try:
        return schema.load(raw)
    except ValidationError as exc:
        where, reason = _first(exc.messages)
        line = _line_of(yaml.compose(text, Loader=_LOADER), where)  # the lines, only to point at one
        raise CatalogError(f"{path}:{line}: {'.'.join(map(str, where)) or '(document)'}: {reason}") from None


def _first(messages, path=()):
    if isinstance(messages, dict):
        key, value = next(iter(messages.items()))
        return _first(value, path + (key,))
    if isinstance(messages, list) and messages and isinstance(messages[0], (dict, list)):
        return _first(messages[0], path)
    return path, messages[0] if isinstance(messages, list) and messages else messages


def _line_of(node, path) -> int:
    """1-based line of the deepest node along `path` that exists in the document."""
    line = node.start_mark.line + 1 if node is not None else 1
    for key in path:
        if node is None:
            break
        if isinstance(node, yaml.MappingNode):
            node = next((v for k, v in node.value if k.value == str(key)), None)
        elif isinstance(node, yaml.SequenceNode) and isinstance(key, int) and key < len(node.value):
            node = node.value[key]
        else:
            node = None
        if node is not None:
            line = node.start_mark.line + 1
    return line


# An agency's national e-ID code (mã định danh, Decision 20/2020/QĐ-TTg): 000.00.00.H56.
AGENCY_CODE = re.compile(r"\b[0-9A-Z]{3}\.[0-9A-Z]{2}\.[0-9A-Z]{2}\.[A-Z][0-9]{2}\b")


def _agency_code(code: str) -> None:
    if not AGENCY_CODE.fullmatch(code):
        raise ValidationError("not a national agency e-ID code")


class AgencySchema(Schema):
    class Meta:
        unknown = EXCLUDE

    code = fields.Str(required=True, validate=_agency_code)
    name = fields.Str(required=True, validate=validate.Length(min=1))
    level = fields.Str(required=True)
    parent_code = fields.Str(load_default=None, allow_none=True)
    # The communes (by agency code) whose residents this agency serves, e.g. a ward's police: lets a
    # process route a step to "the police of the applicant's commune".
    serves = fields.List(fields.Str(), load_default=list)


class AgencyFileSchema(Schema):
    province = fields.Dict(required=True)
    levels = fields.List(fields.Str(), required=True)
    agencies = fields.List(fields.Nested(AgencySchema), required=True, validate=validate.Length(min=1))

    @validates_schema
    def _consistent(self, data, **_):
        codes = [a["code"] for a in data["agencies"]]
        for index, agency in enumerate(data["agencies"]):
            if codes.count(agency["code"]) > 1:
                raise ValidationError({"agencies": {index: {"code": ["duplicate agency code"]}}})
            if agency["level"] not in data["levels"]:
                raise ValidationError({"agencies": {index: {"level": [f"not one of {data['levels']}"]}}})
            if agency["parent_code"] and agency["parent_code"] not in codes:
                raise ValidationError({"agencies": {index: {"parent_code": ["unknown agency"]}}})
            if any(code not in codes for code in agency["serves"]):
                raise ValidationError({"agencies": {index: {"serves": ["unknown agency"]}}})


def load_agencies(catalog_dir: Path) -> list[dict]:
    return load_data(Path(catalog_dir) / "agencies.yaml", AgencyFileSchema())["agencies"]
