"""Bảng điều hành của lãnh đạo: per-agency or per-field figures for any period (a quick pick or from/to
dates, counted in the province's time zone), timeliness as stacked bars, the daily trend as lines,
overdue now; every figure drills down to its dossiers; the standard report (II.06a) exported with the
session for the same choice. The URL holds the choice, so a leader can share what they see."""
from __future__ import annotations

import base64
from datetime import date, timedelta
from urllib.parse import urlencode

from werkzeug.wrappers import Response

from motcua.identity import STAFF_ROLES
from services.gateway import pages_charts
from services.gateway.pages_http import (form_again, page, picked_agency, province_today, query_data, render,
                                         staff_session)

QUICK_PICKS = {"today": "Hôm nay", "week": "Tuần này", "month": "Tháng này", "quarter": "Quý này",
               "year": "Năm nay", "last_quarter": "Quý trước"}
CUSTOM = "custom"
GROUPINGS = {"agency": "Theo cơ quan", "field": "Theo lĩnh vực"}
EXPORT_FORMATS = {"xlsx": "Excel", "pdf": "PDF", "csv": "CSV"}
TREND_DAYS = 30
TIMELINESS_SERIES = [("early", "Trước hạn", "early"), ("on_time", "Đúng hạn", "on-time"), ("late", "Trễ hạn", "late")]
CELL_NAMES = {
    "resolved.early": "đã giải quyết trước hạn", "resolved.on_time": "đã giải quyết đúng hạn",
    "resolved.late": "đã giải quyết trễ hạn", "resolved.total": "đã giải quyết",
    "in_progress.overdue": "đang giải quyết, quá hạn", "in_progress.total": "đang giải quyết",
    "received.total": "tiếp nhận",
}


def quick_period(pick: str, today: date) -> tuple[date, date]:
    """A quick pick's first and last day, `today` being the province's date; the current ones end today."""
    quarter_start = today.replace(month=3 * ((today.month - 1) // 3) + 1, day=1)
    if pick == "last_quarter":
        last = quarter_start - timedelta(days=1)
        return last.replace(month=last.month - 2, day=1), last
    first = {"today": today, "week": today - timedelta(days=today.weekday()), "month": today.replace(day=1),
             "quarter": quarter_start, "year": today.replace(month=1, day=1)}[pick]
    return first, today


def chosen_period(params: dict, today: date) -> tuple[str, date, date, dict]:
    """The period the query names: from/to dates when both are given and valid, else a quick pick
    (this month by default); with the errors of dates that were given and could not be read."""
    errors, dates = {}, {}
    for name, label in (("from", "Từ ngày"), ("to", "Đến ngày")):
        try:
            dates[name] = date.fromisoformat(params[name]) if params.get(name) else None
        except ValueError:
            errors[name] = f"{label}: ngày không hợp lệ (dạng năm-tháng-ngày)"
    if not errors and dates.get("from") and dates.get("to"):
        if dates["from"] > dates["to"]:
            errors["to"] = "Đến ngày phải sau hoặc bằng từ ngày"
        else:
            return CUSTOM, dates["from"], dates["to"], errors
    pick = params.get("ky") if params.get("ky") in QUICK_PICKS else "month"
    return (pick, *quick_period(pick, today), errors)


def _choice(period: dict) -> dict:
    """The query fields of a period's choice: its dates, its agency (`agency`, set by the page) and its
    grouping when not the default."""
    params = {"from": period["from"], "to": period["to"]}
    if period.get("agency"):
        params["agency"] = period["agency"]
    if period.get("by", "agency") != "agency":
        params["by"] = period["by"]
    return params


def choice_query(period: dict, **extra) -> str:
    """The query string of the page's choice, for the links that follow it (exports, the page itself)."""
    return urlencode(_choice(period) | extra)


def drill_link(period: dict, cell: str, key: str | None = None) -> str:
    return "/lanh-dao/ho-so?" + choice_query(period, cell=cell, **({"key": key} if key else {}))


def timeliness_chart(period: dict) -> dict:
    keys = [key for key, _label, _css in TIMELINESS_SERIES]
    rows = [{"label": a["agency_name"], "values": {key: a["resolved"][key] for key in keys},
             "links": {key: drill_link(period, f"resolved.{key}", a["key"]) for key in keys}}
            for a in period["agencies"] if a["resolved"]["total"]]
    return pages_charts.stacked_bars(rows, TIMELINESS_SERIES)


def overdue_chart(period: dict) -> dict:
    rows = [{"label": a["agency_name"], "values": {"overdue": a["overdue_now"]},
             "links": {"overdue": drill_link(period, "in_progress.overdue", a["key"])}}
            for a in period["agencies"] if a["overdue_now"]]
    return pages_charts.stacked_bars(rows, [("overdue", "Quá hạn", "late")])


def trend_chart(series: dict) -> dict:
    days = series["days"]
    return pages_charts.line_chart([d["date"] for d in days], [
        ("Tiếp nhận", "received", [sum(d["received"].values()) for d in days]),
        ("Đã giải quyết", "resolved", [sum(d["resolved"].values()) for d in days]),
        ("Trễ hạn", "late", [d["resolved"]["late"] for d in days]),
    ])


class DashboardPages:
    """Pages mixed into GatewayService, which provides the RPC proxies and config."""

    @page("GET", "/lanh-dao")
    def dashboard(self, request):
        """The figures of a quick pick (`ky`) or of any period (`from`, `to`), the whole province or one
        agency: all in the URL, so a view is shared by its link; the export follows the period."""
        session = self._staff_page(request)
        params = query_data(request)
        today = province_today(self.config)
        chosen, first, last, errors = chosen_period(params, today)
        by = params.get("by") if params.get("by") in GROUPINGS else "agency"
        agencies = self._agencies()
        agency = picked_agency(params.get("agency"), agencies)
        chosen_agency = {"agency": agency} if agency else {}
        context = {"session": session, "chosen": chosen, "quick_picks": QUICK_PICKS, "groupings": GROUPINGS,
                   "formats": EXPORT_FORMATS, "agency": agency, "agencies": agencies,
                   "values": {"from": params.get("from") or first.isoformat(),
                              "to": params.get("to") or last.isoformat(), "by": by}}
        # A period the service refuses (longer than the report allows) shows the form again with its error.
        with form_again("dashboard/index.html", lambda: {**context, "period": None}):
            period = self.reporting.leaders_period(first.isoformat(), last.isoformat(), caller_token=session.token,
                                                   by=by, **chosen_agency) | {"agency": agency}
            # The trend: the period's days, its last TREND_DAYS at most.
            trend_from = max(first, last - timedelta(days=TREND_DAYS - 1))
            series = self.reporting.daily_series(trend_from.isoformat(), last.isoformat(),
                                                 caller_token=session.token, **chosen_agency)
        return render("dashboard/index.html", **context, errors=errors, period=period, drill=drill_link,
                      choice=lambda **extra: choice_query(period, **extra), timeliness=timeliness_chart(period),
                      overdue=overdue_chart(period), trend=trend_chart(series), trend_days=len(series["days"]))

    @page("GET", "/lanh-dao/ho-so")
    def dashboard_drill_down(self, request):
        """The dossiers behind one figure (the same list as the standard report's drill-down)."""
        session = self._staff_page(request)
        params = query_data(request)
        found = self.reporting.report_drill_down(params.get("from"), params.get("to"), params.get("cell"),
                                                 caller_token=session.token, key=params.get("key") or None,
                                                 by=params.get("by") or "agency",
                                                 agency=picked_agency(params.get("agency"), self._agencies()))
        return render("dashboard/drill.html", session=session, found=found, params=params,
                      cell_name=CELL_NAMES.get(found["cell"], found["cell"]), agencies=self._agencies())

    @page("GET", "/lanh-dao/xuat-bao-cao")
    def dashboard_export(self, request):
        """Form II.06a as a file for the dashboard's choice (period, agency, grouping), with the session (the
        API's export wants a bearer token)."""
        session = self._staff_page(request)
        params = query_data(request)
        agency = picked_agency(params.get("agency"), self._agencies())
        exported = self.reporting.report_export(params.get("from"), params.get("to"), params.get("format", "xlsx"),
                                                caller_token=session.token, agency=agency,
                                                by=params.get("by") or "agency")
        return Response(base64.b64decode(exported["content_base64"]), content_type=exported["content_type"],
                        headers={"Content-Disposition": f'attachment; filename="{exported["filename"]}"'})

    def _staff_page(self, request):
        session = staff_session(self, request)
        session.caller.require(*STAFF_ROLES)
        return session
