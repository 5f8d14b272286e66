"""Process definitions (quy trình) from `<CATALOG_DIR>/processes.yaml`, checked when the service starts.

A broken file refuses to load with file:line:reason, so a bad edit never routes a dossier wrongly.
"""
from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path

from marshmallow import Schema, ValidationError, fields, post_load, validate, validates_schema

from motcua.calendar import WorkingCalendar, parse_days
from motcua.catalog import load_agencies, load_data
from motcua.errors import NotFound
from motcua.identity import STAFF_ROLES


@dataclass(frozen=True)
class Step:
    """One step of a process: which agency, which role, how many working days (thời hạn bước)."""

    name: str
    agency_code: str
    role: str
    allowance: Decimal
    handled_by: str = "staff"  # or "system": the agency's own worker takes it from its task queue


@dataclass(frozen=True)
class Process:
    procedure_code: str
    steps: tuple[Step, ...]


@dataclass(frozen=True)
class Catalog:
    """What workflow reads from the catalogue: the processes and the working calendar."""

    processes: dict[str, Process]
    calendar: WorkingCalendar

    @property
    def system_agencies(self) -> set[str]:
        """Agencies whose own systems take some steps: their task queues must exist before any task."""
        return {s.agency_code for p in self.processes.values() for s in p.steps if s.handled_by == "system"}

    def process(self, procedure_code: str) -> Process:
        try:
            return self.processes[procedure_code]
        except KeyError:
            raise NotFound(f"no process (quy trình) for procedure {procedure_code}",
                           field="procedure_code") from None


class _WorkingDays(fields.Field):
    """A step allowance in working days: positive, halves allowed."""

    def _deserialize(self, value, attr, data, **kwargs):
        try:
            days = parse_days(value)
        except ValueError as exc:
            raise ValidationError(str(exc)) from None
        if days <= 0:
            raise ValidationError("a step needs a positive allowance")
        return days


class _StepSchema(Schema):
    name = fields.Str(required=True, validate=validate.Length(min=1))
    agency_code = fields.Str(required=True)
    role = fields.Str(required=True, validate=validate.OneOf(STAFF_ROLES))
    allowance = _WorkingDays(required=True)
    handled_by = fields.Str(load_default="staff", validate=validate.OneOf(("staff", "system")))

    @post_load
    def _make(self, data, **_):
        return Step(**data)


class _ProcessSchema(Schema):
    procedure_code = fields.Str(required=True, validate=validate.Regexp(
        r"^\d\.\d{6}$", error="not a national procedure code (quote it: YAML reads 1.001193 as a number)"))
    steps = fields.List(fields.Nested(_StepSchema), required=True, validate=validate.Length(min=1))

    @post_load
    def _make(self, data, **_):
        return Process(data["procedure_code"], tuple(data["steps"]))


class ProcessFileSchema(Schema):
    """The whole file; every step's agency must be one of `agency_codes` (agencies.yaml)."""

    processes = fields.List(fields.Nested(_ProcessSchema), required=True, validate=validate.Length(min=1))

    def __init__(self, agency_codes: set[str], **kwargs):
        super().__init__(**kwargs)
        self.agency_codes = frozenset(agency_codes)

    @validates_schema
    def _consistent(self, data, **_):
        seen: set[str] = set()
        for index, process in enumerate(data["processes"]):
            if process.procedure_code in seen:
                raise ValidationError({"processes": {index: {"procedure_code": ["duplicate process"]}}})
            seen.add(process.procedure_code)
            for number, step in enumerate(process.steps):
                if step.agency_code not in self.agency_codes:
                    raise ValidationError({"processes": {index: {"steps": {number: {
                        "agency_code": [f"unknown agency {step.agency_code} (not in agencies.yaml)"]}}}}})


def load_catalog(catalog_dir: Path, time_zone: str) -> Catalog:
    """Processes checked against agencies.yaml, and the calendar with calendar.yaml's overrides."""
    catalog_dir = Path(catalog_dir)
    agency_codes = {agency["code"] for agency in load_agencies(catalog_dir)}
    data = load_data(catalog_dir / "processes.yaml", ProcessFileSchema(agency_codes))
    overrides = catalog_dir / "calendar.yaml"
    calendar = (WorkingCalendar.from_yaml(overrides, tz=time_zone) if overrides.exists()
                else WorkingCalendar(tz=time_zone))
    return Catalog({p.procedure_code: p for p in data["processes"]}, calendar)
