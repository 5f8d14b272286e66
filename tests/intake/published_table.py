"""A province's published figures (seeds/000: Phú Thọ's one-stop system, as the provincial press quoted
them) and the old system's export that gives them: per agency, received, resolved early / on time /
late, in progress, with the percentages as published. The figures carry no period: the file places
every dossier in PERIOD. `history_rows` builds the exchange file's rows (docs/history-format.md) whose
II.06a report must equal the table cell by cell."""
from __future__ import annotations

import shutil
from datetime import date, datetime, time, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from motcua.config import ROOT

VN = ZoneInfo("Asia/Ho_Chi_Minh")
PERIOD = (date(2020, 1, 1), date(2020, 9, 30))
# The departments the article names, under codes of the demo province's scheme (the catalogue of the
# test adds them); the rest of the province's figures are the "others" row (the article's totals minus
# the named departments), spread over two agencies of the demo catalogue.
AGENCIES = {
    "000.00.40.H56": "Sở Tài nguyên và Môi trường",
    "000.00.41.H56": "Sở Thông tin và Truyền thông",
    "000.00.42.H56": "Sở Xây dựng",
    "000.00.43.H56": "Sở Giáo dục và Đào tạo",
    "000.00.44.H56": "Sở Y tế",
}
OTHERS = ("000.00.06.H56", "000.20.01.H56")
# (received, early, on time, late, in progress) and the percentages published, per agency and in total.
PUBLISHED = {
    "000.00.40.H56": {"received": 280, "early": 280, "on_time": 0, "late": 0, "in_progress": 0, "early_pct": 100.0},
    "000.00.41.H56": {"received": 35, "early": 35, "on_time": 0, "late": 0, "in_progress": 0, "early_pct": 100.0},
    "000.00.42.H56": {"received": 158, "early": 158, "on_time": 0, "late": 0, "in_progress": 0, "early_pct": 100.0},
    "000.00.43.H56": {"received": 153, "early": 121, "on_time": 10, "late": 0, "in_progress": 22,
                      "early_pct": 92.37, "on_time_pct": 7.63},
    # resolved 443: 430 early, 2 on time, so 11 late (not printed)
    "000.00.44.H56": {"received": 594, "early": 430, "on_time": 2, "late": 11, "in_progress": 151,
                      "early_pct": 97.07, "on_time_pct": 0.05},
    None: {"received": 1297, "early": 1032, "on_time": 13, "late": 12, "in_progress": 240,
           "early_pct": 97.63, "on_time_pct": 1.22, "late_pct": 1.14},
}
# Percentages the article prints that its own counts contradict: (published, what the counts give).
# 2 of 443 is 0.45 %, not 0.05 % (a dropped digit); 13 of 1,057 is 1.2299 %, 1.23 rounded, not 1.22.
MISPRINTS = {("000.00.44.H56", "on_time_pct"): (0.05, 0.45), (None, "on_time_pct"): (1.22, 1.23)}
KINDS = ("early", "on_time", "late", "in_progress")


def others() -> dict[str, int]:
    """The province's figures outside the named departments: its totals minus theirs."""
    named = [figures for code, figures in PUBLISHED.items() if code is not None]
    return {name: PUBLISHED[None][name] - sum(f[name] for f in named) for name in ("received", *KINDS)}


def catalogue(directory: Path) -> Path:
    """The demo catalogue with the named departments added (under the province's people's committee)."""
    shutil.copytree(ROOT / "deploy" / "catalog", directory)
    with open(directory / "agencies.yaml", "a", encoding="utf-8") as file:
        for code, name in AGENCIES.items():
            file.write(f"  - code: {code}\n    name: {name}\n    level: department\n"
                       f"    parent_code: 000.00.00.H56\n")
    return directory


def _working_days(first: date, last: date) -> list[date]:
    days, day = [], first
    while day <= last:
        if day.weekday() < 5:
            days.append(day)
        day += timedelta(days=1)
    return days


def history_rows(procedure_code: str = "1.004873") -> list[dict]:
    """One JSON Lines object per dossier: each agency's counts as dossiers received in PERIOD (channels
    and final statuses mixed), resolved ones finished before, on or after their appointment's date, the
    dossiers in progress due after the period."""
    plan = [(code, figures) for code, figures in PUBLISHED.items() if code is not None]
    rest = others()
    plan += [(OTHERS[0], {k: v - v // 2 for k, v in rest.items()}), (OTHERS[1], {k: v // 2 for k, v in rest.items()})]
    days = _working_days(PERIOD[0], PERIOD[1] - timedelta(days=30))
    rows, serial = [], 0
    numbers: dict[tuple[str, date], int] = {}
    for agency, figures in plan:
        for kind in KINDS:
            for _ in range(figures[kind]):
                serial += 1
                day = days[serial * 7 % len(days)]
                received = datetime.combine(day, time(8 + serial % 8, 15), VN)
                due = datetime.combine(day + timedelta(days=14), time(17), VN)
                numbers[(agency, day)] = number = numbers.get((agency, day), 0) + 1
                row = {"code": f"{agency}-{day:%y%m%d}-{number:04d}", "procedure_code": procedure_code,
                       "agency_code": agency, "channel": ("online", "counter", "postal")[serial % 3],
                       "submitted_at": (received - timedelta(hours=1)).isoformat(),
                       "received_at": received.isoformat(),
                       "applicant": {"full_name": "Nguyễn Văn An", "id_number": f"{serial:012d}",
                                     "phone": f"09{serial:08d}"},
                       "steps": [{"agency_code": agency, "step": "Thụ lý",
                                  "started_at": (received + timedelta(minutes=30)).isoformat()}]}
                if kind == "in_progress":
                    row.update(status="processing", due_at=(datetime.combine(PERIOD[1], time(17), VN)
                                                            + timedelta(days=3)).isoformat())
                else:
                    finished = {"early": due - timedelta(days=2), "on_time": due - timedelta(hours=3),
                                "late": due + timedelta(days=2)}[kind]
                    row.update(status=("returned", "result_ready")[serial % 2], due_at=due.isoformat(),
                               finished_at=finished.isoformat())
                    row["steps"][0]["finished_at"] = finished.isoformat()
                    if row["status"] == "returned":
                        row["returned_at"] = (finished + timedelta(hours=1)).isoformat()
                rows.append(row)
    return rows


def expected(report: dict, code: str | None) -> dict:
    """The report's row for `code` (None: the totals) in the table's terms."""
    row = report["totals"] if code is None else next(r for r in report["rows"] if r["agency_code"] == code)
    return {"received": row["received"]["total"], "early": row["resolved"]["early"],
            "on_time": row["resolved"]["on_time"], "late": row["resolved"]["late"],
            "in_progress": row["in_progress"]["total"],
            **{f"{kind}_pct": row["resolved"][f"{kind}_pct"] for kind in ("early", "on_time", "late")}}


def assert_report_equals_published(report: dict) -> None:
    """Every published figure, cell by cell, percentages included; a misprinted percentage is held to
    what its own counts give (MISPRINTS) and said so."""
    for code, figures in PUBLISHED.items():
        found = expected(report, code)
        for name, published in figures.items():
            want = MISPRINTS[(code, name)][1] if (code, name) in MISPRINTS else published
            assert found[name] == want, (code or "total", name, found[name], published)
    for name, value in others().items():  # the rest of the province, over the two agencies that hold it
        assert sum(expected(report, code)[name] for code in OTHERS) == value, name
