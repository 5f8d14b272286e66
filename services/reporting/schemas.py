"""Reporting's RPC inputs, checked at the boundary (errors name the HTTP query field)."""
from __future__ import annotations

from marshmallow import Schema, ValidationError, fields, validate, validates_schema

from motcua.contracts.rpc import MAX_REPORT_DAYS, REPORTABLE_DATES
from services.reporting.timeliness import CELLS, GROUPINGS


class ReportQuery(Schema):
    date_from = fields.Date(required=True, data_key="from", validate=REPORTABLE_DATES)
    date_to = fields.Date(required=True, data_key="to", validate=REPORTABLE_DATES)
    agency = fields.Str(load_default=None, allow_none=True)
    by = fields.Str(load_default="agency", validate=validate.OneOf(GROUPINGS))

    @validates_schema
    def _ordered(self, data, **_):
        if data["date_to"] < data["date_from"]:
            raise ValidationError({"to": ["must not be before from"]})
        if (data["date_to"] - data["date_from"]).days >= MAX_REPORT_DAYS:
            raise ValidationError({"to": [f"a period of at most {MAX_REPORT_DAYS} days"]})


class DrillDownQuery(ReportQuery):
    cell = fields.Str(required=True, validate=validate.OneOf(CELLS))
    key = fields.Str(load_default=None, allow_none=True, validate=validate.Length(min=1, max=64))
    rollup = fields.Bool(load_default=False)


class ExportQuery(ReportQuery):
    format = fields.Str(required=True, validate=validate.OneOf(("csv", "xlsx")))


class DashboardQuery(Schema):
    agency = fields.Str(load_default=None, allow_none=True)


class TrackQuery(Schema):
    code = fields.Str(required=True, validate=validate.Length(min=1, max=64))
    key = fields.Str(required=True, validate=validate.Regexp(r"^[0-9]{4}$",
                                                             error="the last 4 digits of the phone number"))


report_query = ReportQuery()
drill_down_query = DrillDownQuery()
export_query = ExportQuery()
dashboard_query = DashboardQuery()
track_query = TrackQuery()
