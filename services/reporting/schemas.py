"""Reporting's RPC inputs, checked at the boundary (errors name the HTTP query field)."""
from __future__ import annotations

from motcua.contracts.rpc import DashboardQueryV1, DrillDownQueryV1, ExportQueryV1, ReportQueryV1, TrackQueryV1


ReportQuery, DrillDownQuery, ExportQuery, DashboardQuery = ReportQueryV1, DrillDownQueryV1, ExportQueryV1, DashboardQueryV1


report_query = ReportQuery()
drill_down_query = DrillDownQuery()
export_query = ExportQuery()
dashboard_query = DashboardQuery()
track_query = TrackQueryV1()
