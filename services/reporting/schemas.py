"""Reporting's RPC inputs, checked at the boundary (errors name the HTTP query field)."""
from __future__ import annotations

from marshmallow import Schema, fields, validate

from motcua.contracts.rpc import DashboardQueryV1, DrillDownQueryV1, ExportQueryV1, ReportQueryV1


ReportQuery, DrillDownQuery, ExportQuery, DashboardQuery = ReportQueryV1, DrillDownQueryV1, ExportQueryV1, DashboardQueryV1


class TrackQuery(Schema):
    code = fields.Str(required=True, validate=validate.Length(min=1, max=64))
    key = fields.Str(required=True, validate=validate.Regexp(r"^[0-9]{4}$",
                                                             error="the last 4 digits of the phone number"))


report_query = ReportQuery()
drill_down_query = DrillDownQuery()
export_query = ExportQuery()
dashboard_query = DashboardQuery()
track_query = TrackQuery()
