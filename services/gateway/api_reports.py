"""HTTP API v1: public tracking and statistics, leaders' reports, owned by reporting."""
from __future__ import annotations

import base64

from werkzeug.wrappers import Response

from motcua.contracts.rpc import DashboardQueryV1, DrillDownQueryV1, ExportQueryV1, ReportQueryV1, TrackQueryV1
from motcua.contracts.views import TrackedDossierViewV1
from motcua.errors import load_valid
from motcua.identity import STAFF_ROLES
from services.gateway.http import query, route
from services.gateway.tracking import Tracked

# The report's other query fields are checked by reporting (its errors name the same fields).
REPORT_FIELDS = ("agency", "by")
DRILL_FIELDS = ("key", "by", "rollup", "agency")
PERIOD = ("date_from", "date_to")
TIMELINESS_QUERY = ReportQueryV1(only=(*PERIOD, "agency"))
TRACK_QUERY = TrackQueryV1(only=("key",))  # built once: public tracking is the busiest route


class ReportApi:
    """Routes mixed into GatewayService, which provides the RPC proxies, config and database."""

    @route("GET", "/api/v1/track/<code>", query=TRACK_QUERY, response=TrackedDossierViewV1, auth="public",
           errors=(429,))
    def track(self, request, code):
        """Where a dossier is (tra cứu hồ sơ), with the phone's last 4 digits; nothing personal but the
        masked name. `dossier_version` and `run_version` say which of its events the answer reflects."""
        return Response(self.tracked(request, code).body, mimetype="application/json")

    def tracked(self, request, code: str) -> Tracked:
        """Public tracking of `code` with the request's key."""
        return self.track_with_key(request, code, load_valid(TRACK_QUERY, query(request))["key"])

    def track_with_key(self, request, code: str, key: str, owner: bool = False) -> Tracked:
        """Reporting's answer to `code` and `key`, from the edge cache while it is current; wrong keys
        are throttled (chống dò), and a locked dossier is refused even to the right key, except in its
        `owner`'s browser (the portal knows it: it proved the key there before)."""
        with self.proving(request, None, code, owner):
            return self.tracking.track(code, key, lambda: self.reporting.track(code, key))

    @route("GET", "/api/v1/public/statistics", query=ReportQueryV1(only=PERIOD), auth="public")
    def public_statistics(self, request):
        params = query(request)
        return self.reporting.public_statistics(params.get("from"), params.get("to"))

    @route("GET", "/api/v1/reports/timeliness", query=TIMELINESS_QUERY)
    def timeliness_report(self, request):
        token = self._staff(request)
        params = load_valid(TIMELINESS_QUERY, query(request))
        return self.reporting.timeliness_report(params["date_from"].isoformat(), params["date_to"].isoformat(),
                                                caller_token=token, agency=params["agency"])

    @route("GET", "/api/v1/reports/standard", query=ReportQueryV1)
    def standard_report(self, request):
        token = self._staff(request)
        params = query(request)
        return self.reporting.timeliness_report(params.get("from"), params.get("to"), caller_token=token,
                                                **_given(params, REPORT_FIELDS))

    @route("GET", "/api/v1/reports/standard/dossiers", query=DrillDownQueryV1)
    def standard_report_dossiers(self, request):
        """The dossiers behind a figure: reporting lists only those of the caller's agency scope."""
        token = self._staff(request)
        params = query(request)
        return self.reporting.report_drill_down(params.get("from"), params.get("to"), params.get("cell"),
                                                caller_token=token, **_given(params, DRILL_FIELDS))

    @route("GET", "/api/v1/reports/standard/export", query=ExportQueryV1, response="application/octet-stream")
    def standard_report_export(self, request):
        token = self._staff(request)
        params = query(request)
        exported = self.reporting.report_export(params.get("from"), params.get("to"), params.get("format"),
                                                caller_token=token, **_given(params, REPORT_FIELDS))
        return Response(base64.b64decode(exported["content_base64"]), content_type=exported["content_type"],
                        headers={"Content-Disposition": f'attachment; filename="{exported["filename"]}"'})

    @route("GET", "/api/v1/reports/leaders", query=DashboardQueryV1)
    def leaders_dashboard(self, request):
        token = self._staff(request)
        return self.reporting.leaders_dashboard(caller_token=token, **_given(query(request), ("agency",)))

    @route("GET", "/api/v1/reports/daily", query=ReportQueryV1(only=(*PERIOD, "agency")))
    def daily_series(self, request):
        token = self._staff(request)
        params = query(request)
        return self.reporting.daily_series(params.get("from"), params.get("to"), caller_token=token,
                                           **_given(params, ("agency",)))

    def _staff(self, request) -> str:
        """The staff caller's token, passed on: reporting checks it again (and scopes drill-downs by it)."""
        caller, token = self.caller_of(request)
        caller.require(*STAFF_ROLES)
        return token


def _given(params: dict, names: tuple) -> dict:
    """The optional query fields the request has (the service's defaults apply to the others)."""
    return {name: params[name] for name in names if name in params}
