"""The standard report as files: CSV (UTF-8 with BOM, so spreadsheet programs read the accents) and
XLSX, one line per row of the report plus the totals, under the form's Vietnamese headers."""
from __future__ import annotations

import base64
import csv
import io

from openpyxl import Workbook
from openpyxl.styles import Font

TITLE = "Tình hình, kết quả giải quyết TTHC (mẫu II.06a/VPCP/KSTT)"
# (header, group, figure) in the form's order; group None: a figure outside the groups.
COLUMNS = (
    ("Tiếp nhận: tổng số", "received", "total"),
    ("Tiếp nhận trong kỳ: trực tuyến", "received", "online"),
    ("Tiếp nhận trong kỳ: trực tiếp", "received", "counter"),
    ("Tiếp nhận trong kỳ: bưu chính công ích", "received", "postal"),
    ("Tiếp nhận trong kỳ: trực tiếp và bưu chính", "received", "counter_postal"),
    ("Kỳ trước chuyển qua", "received", "carried_over"),
    ("Tỷ lệ trực tuyến (%)", "received", "online_pct"),
    ("Đã giải quyết: tổng số", "resolved", "total"),
    ("Đã giải quyết: trước hạn", "resolved", "early"),
    ("Đã giải quyết: đúng hạn", "resolved", "on_time"),
    ("Đã giải quyết: quá hạn", "resolved", "late"),
    ("Tỷ lệ trước hạn (%)", "resolved", "early_pct"),
    ("Tỷ lệ đúng hạn (%)", "resolved", "on_time_pct"),
    ("Tỷ lệ quá hạn (%)", "resolved", "late_pct"),
    ("Rút hồ sơ", None, "withdrawn"),
    ("Tạm dừng: tổng số", "paused", "total"),
    ("Tạm dừng: chờ bổ sung", "paused", "supplement"),
    ("Tạm dừng: chờ nghĩa vụ tài chính", "paused", "awaiting_payment"),
    ("Tạm dừng: dừng xử lý", "paused", "stopped"),
    ("Đang giải quyết: tổng số", "in_progress", "total"),
    ("Đang giải quyết: trong hạn", "in_progress", "within_deadline"),
    ("Đang giải quyết: quá hạn", "in_progress", "overdue"),
)
KEY_HEADERS = {"agency": ("Mã cơ quan", "Cơ quan"), "field": ("Mã lĩnh vực", "Lĩnh vực")}
TOTAL = "Tổng cộng"


def table(report: dict) -> list[list]:
    """The header line, one line per row, then the totals."""
    by = report["by"]
    lines = [[*KEY_HEADERS[by], *(header for header, _, _ in COLUMNS)]]
    for row in report["rows"]:
        lines.append([row[f"{by}_code"], row.get("agency_name"), *_figures(row)])
    lines.append(["", TOTAL, *_figures(report["totals"])])
    return lines


def _figures(row: dict) -> list:
    return [row[figure] if group is None else row[group][figure] for _, group, figure in COLUMNS]


def to_csv(report: dict) -> str:
    out = io.StringIO()
    csv.writer(out, lineterminator="\n").writerows(table(report))
    return out.getvalue()


def to_xlsx(report: dict) -> bytes:
    book = Workbook()
    sheet = book.active
    sheet.title = "II.06a"
    sheet.append([f"{TITLE}: {report['from']} – {report['to']}"])
    sheet.append([f"Số liệu tính đến {report['as_of']}"])
    lines = table(report)
    sheet.append(lines[0])
    for cell in sheet[3]:
        cell.font = Font(bold=True)
    for line in lines[1:]:
        sheet.append(line)
    sheet.column_dimensions["B"].width = 40
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


CONTENT_TYPES = {"csv": "text/csv; charset=utf-8",
                 "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"}


def as_file(report: dict, fmt: str) -> dict:
    """The report as a file that crosses RPC (JSON): its bytes in base64."""
    content = ("\ufeff" + to_csv(report)).encode("utf-8") if fmt == "csv" else to_xlsx(report)
    return {"filename": f"II.06a_{report['by']}_{report['from']}_{report['to']}.{fmt}",
            "content_type": CONTENT_TYPES[fmt], "content_base64": base64.b64encode(content).decode("ascii")}
