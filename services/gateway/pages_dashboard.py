"""Bảng điều hành của lãnh đạo: per-agency figures (today / this month / this year), timeliness by agency
as stacked bars, the daily trend as lines, overdue now; every figure drills down to its dossiers; the
standard report (II.06a) exported with the session."""
from __future__ import annotations

import base64
from datetime import date, timedelta
from urllib.parse import urlencode

from werkzeug.wrappers import Response

from motcua.identity import STAFF_ROLES
from services.gateway import pages_charts
from services.gateway.pages_http import (form_again, page, picked_agency, province_today, query_data, render,
                                         staff_session)

# Quick picks of the period (`ky` in the URL); any other period by its first and last day (`from`, `to`).
PERIODS = {"today": "Hôm nay", "week": "Tuần này", "month": "Tháng này", "quarter": "Quý này", "year": "Năm nay",
           "last_quarter": "Quý trước"}
CUSTOM = "Tùy chọn"
TREND_DAYS = 30
TIMELINESS_SERIES = [("early", "Trước hạn", "early"), ("on_time", "Đúng hạn", "on-time"), ("late", "Trễ hạn", "late")]
CELL_NAMES = {
    "resolved.early": "đã giải quyết trước hạn", "resolved.on_time": "đã giải quyết đúng hạn",
    "resolved.late": "đã giải quyết trễ hạn", "resolved.total": "đã giải quyết",
    "in_progress.overdue": "đang giải quyết, quá hạn", "in_progress.total": "đang giải quyết",
    "received.total": "tiếp nhận",
}


def quick_pick(name: str, today: date) -> tuple[date, date]:
    """A quick pick's first and last day (up to today for the current week, month, quarter, year)."""
    quarter_start = today.replace(month=(today.month - 1) // 3 * 3 + 1, day=1)
    if name == "last_quarter":
        last = quarter_start - timedelta(days=1)
        return last.replace(month=(last.month - 1) // 3 * 3 + 1, day=1), last
    first = {"today": today, "week": today - timedelta(days=today.weekday()), "month": today.replace(day=1),
             "quarter": quarter_start, "year": today.replace(month=1, day=1)}[name]
    return first, today


def drill_link(period: dict, cell: str, agency_code: str | None = None) -> str:
    params = {"from": period["from"], "to": period["to"], "cell": cell}
    if agency_code:
        params["key"] = agency_code
    return "/lanh-dao/ho-so?" + urlencode(params)


def timeliness_chart(period: dict) -> dict:
    keys = [key for key, _label, _css in TIMELINESS_SERIES]
    rows = [{"label": a["agency_name"], "values": {key: a["resolved"][key] for key in keys},
             "links": {key: drill_link(period, f"resolved.{key}", a["agency_code"]) for key in keys}}
            for a in period["agencies"] if a["resolved"]["total"]]
    return pages_charts.stacked_bars(rows, TIMELINESS_SERIES)


def overdue_chart(period: dict) -> dict:
    rows = [{"label": a["agency_name"], "values": {"overdue": a["overdue_now"]},
             "links": {"overdue": drill_link(period, "in_progress.overdue", a["agency_code"])}}
            for a in period["agencies"] if a["overdue_now"]]
    return pages_charts.stacked_bars(rows, [("overdue", "Quá hạn", "late")])


def trend_chart(series: dict) -> dict:
    days = series["days"]
    return pages_charts.line_chart([d["date"] for d in days], [
        ("Tiếp nhận", "received", [sum(d["received"].values()) for d in days]),
        ("Đã giải quyết", "resolved", [sum(d["resolved"].values()) for d in days]),
        ("Trễ hạn", "late", [d["resolved"]["late"] for d in days]),
    ])


def _quick_links(agency: str | None) -> dict[str, str]:
    return {name: "/lanh-dao?" + urlencode({"ky": name, **({"agency": agency} if agency else {})}) for name in PERIODS}


class DashboardPages:
    """Pages mixed into GatewayService, which provides the RPC proxies and config."""

    @page("GET", "/lanh-dao")
    def dashboard(self, request):
        """The figures of a quick pick (`ky`) or of any period (`from`, `to`), the whole province or one
        agency: all in the URL, so a view is shared by its link; the export follows the period."""
        session = self._staff_page(request)
        params = query_data(request)
        today = province_today(self.config)
        agencies = self._agencies()
        agency = picked_agency(params.get("agency"), agencies)
        chosen_agency = {"agency": agency} if agency else {}
        if params.get("from") or params.get("to"):
            chosen, first, last = "custom", params.get("from", ""), params.get("to", "")
        else:
            chosen = params.get("ky") if params.get("ky") in PERIODS else "month"
            first, last = (day.isoformat() for day in quick_pick(chosen, today))
        values = {"from": first, "to": last}
        context = {"session": session, "chosen": chosen, "periods": PERIODS, "custom": CUSTOM, "agency": agency,
                   "agencies": agencies, "values": values, "quick": _quick_links(agency)}
        with form_again("dashboard/index.html", lambda: {**context, "period": None}):
            dashboard = self.reporting.leaders_dashboard(caller_token=session.token, date_from=first, date_to=last,
                                                         **chosen_agency)
            period = dashboard["periods"]["custom"]
            # The trend: the period's days, its last TREND_DAYS at most.
            trend_to = date.fromisoformat(period["to"])
            trend_from = max(date.fromisoformat(period["from"]), trend_to - timedelta(days=TREND_DAYS - 1))
            series = self.reporting.daily_series(trend_from.isoformat(), trend_to.isoformat(),
                                                 caller_token=session.token, **chosen_agency)
        return render("dashboard/index.html", **context, dashboard=dashboard, period=period, drill=drill_link,
                      timeliness=timeliness_chart(period), overdue=overdue_chart(period), trend=trend_chart(series),
                      trend_days=len(series["days"]))

    @page("GET", "/lanh-dao/ho-so")
    def dashboard_drill_down(self, request):
        """The dossiers behind one figure (the same list as the standard report's drill-down)."""
        session = self._staff_page(request)
        params = query_data(request)
        found = self.reporting.report_drill_down(params.get("from"), params.get("to"), params.get("cell"),
                                                 caller_token=session.token, key=params.get("key") or None)
        return render("dashboard/drill.html", session=session, found=found, params=params,
                      cell_name=CELL_NAMES.get(found["cell"], found["cell"]), agencies=self._agencies())

    @page("GET", "/lanh-dao/xuat-bao-cao")
    def dashboard_export(self, request):
        """Form II.06a as a file, with the session (the API's export wants a bearer token)."""
        session = self._staff_page(request)
        params = query_data(request)
        exported = self.reporting.report_export(params.get("from"), params.get("to"), params.get("format", "xlsx"),
                                                caller_token=session.token)
        return Response(base64.b64decode(exported["content_base64"]), content_type=exported["content_type"],
                        headers={"Content-Disposition": f'attachment; filename="{exported["filename"]}"'})

    def _staff_page(self, request):
        session = staff_session(self, request)
        session.caller.require(*STAFF_ROLES)
        return session
