"""The standard report as files: CSV (UTF-8 with BOM, so spreadsheet programs read the accents; one flat
header line, for machines), and XLSX and PDF laid out as the official form II.06a/VPCP/KSTT (for people):
the reporting agency, the title, the period, the two-level header, the column numbers, one numbered line
per row, the totals and the signature block. The PDF (landscape A4, Vietnamese in the embedded Roboto of
the font-roboto package) is the one a leader prints or forwards as it is.

"Đang giải quyết" (being handled) is every dossier not yet resolved, withdrawn or stopped: the running
ones (within the deadline or overdue) and the paused ones, these also shown apart (awaiting a supplement,
awaiting the applicant's fees or taxes), so the group's total is the form's and the pause stays visible.
"""
from __future__ import annotations

import base64
import csv
import io
from datetime import date, datetime
from typing import Callable

import font_roboto
from fpdf import FPDF
from fpdf.fonts import FontFace
from openpyxl import Workbook
from openpyxl.styles import Alignment, Border, Font, Side
from openpyxl.utils import get_column_letter

TITLE = "TÌNH HÌNH, KẾT QUẢ GIẢI QUYẾT THỦ TỤC HÀNH CHÍNH"
FORM = "Mẫu II.06a/VPCP/KSTT"


def _in(group: str, figure: str) -> Callable[[dict], object]:
    return lambda row: row[group][figure]


def _unresolved(row: dict) -> int:
    return row["in_progress"]["total"] + row["paused"]["total"]


# The form's groups in order: (group header, [(column header, the figure of a row)]).
GROUPS: tuple[tuple[str, tuple[tuple[str, Callable[[dict], object]], ...]], ...] = (
    ("Số hồ sơ nhận giải quyết", (
        ("Tổng số", _in("received", "total")),
        ("Trong kỳ: trực tuyến", _in("received", "online")),
        ("Trong kỳ: trực tiếp", _in("received", "counter")),
        ("Trong kỳ: bưu chính công ích", _in("received", "postal")),
        ("Từ kỳ trước chuyển qua", _in("received", "carried_over")),
        ("Tỷ lệ trực tuyến (%)", _in("received", "online_pct")),
    )),
    ("Số hồ sơ đã giải quyết", (
        ("Tổng số", _in("resolved", "total")),
        ("Trước hạn", _in("resolved", "early")),
        ("Đúng hạn", _in("resolved", "on_time")),
        ("Quá hạn", _in("resolved", "late")),
        ("Tỷ lệ trước hạn (%)", _in("resolved", "early_pct")),
        ("Tỷ lệ đúng hạn (%)", _in("resolved", "on_time_pct")),
        ("Tỷ lệ quá hạn (%)", _in("resolved", "late_pct")),
    )),
    ("Số hồ sơ đang giải quyết", (
        ("Tổng số", _unresolved),
        ("Trong hạn", _in("in_progress", "within_deadline")),
        ("Quá hạn", _in("in_progress", "overdue")),
        ("Trong đó tạm dừng: chờ bổ sung", _in("paused", "supplement")),
        ("Trong đó tạm dừng: chờ nghĩa vụ tài chính", _in("paused", "awaiting_payment")),
    )),
    ("Số hồ sơ rút, dừng giải quyết", (
        ("Rút hồ sơ", lambda row: row["withdrawn"]),
        ("Dừng giải quyết", lambda row: row["stopped"]),
    )),
)
COLUMNS = tuple(column for _, columns in GROUPS for column in columns)
KEY_HEADERS = {"agency": ("Mã cơ quan", "Cơ quan"), "field": ("Mã lĩnh vực", "Lĩnh vực")}
TOTAL = "Tổng cộng"


def _figures(row: dict) -> list:
    return [figure(row) for _, figure in COLUMNS]


def _lines(report: dict) -> list[tuple[str | None, str | None, list]]:
    """(code, name, figures) per row of the report, then the totals'."""
    by = report["by"]
    return [*((row[f"{by}_code"], row.get("agency_name"), _figures(row)) for row in report["rows"]),
            (None, TOTAL, _figures(report["totals"]))]


def to_csv(report: dict) -> str:
    """One flat header line ("group: column"), one line per row, then the totals."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow([*KEY_HEADERS[report["by"]], *(f"{group}: {header.lower()}" for group, columns in GROUPS
                                                   for header, _ in columns)])
    writer.writerows([code or "", name, *figures] for code, name, figures in _lines(report))
    return out.getvalue()


def dmy(day: date | datetime) -> str:
    """A date as the form writes it: dd/mm/yyyy."""
    return day.strftime("%d/%m/%Y")


THIN = Side(style="thin")
BOX = Border(left=THIN, right=THIN, top=THIN, bottom=THIN)
CENTRED = Alignment(horizontal="center", vertical="center", wrap_text=True)


def _period_lines(report: dict) -> tuple[str, str]:
    """The form's period line and the time its figures were read."""
    as_of = datetime.fromisoformat(report["as_of"])
    return (f"Kỳ báo cáo: từ ngày {dmy(date.fromisoformat(report['from']))} "
            f"đến ngày {dmy(date.fromisoformat(report['to']))}",
            f"Số liệu tính đến {as_of.strftime('%H:%M')} ngày {dmy(as_of)}")


def _signed_on(made_on: date) -> str:
    return f"……, ngày {made_on.day:02d} tháng {made_on.month:02d} năm {made_on.year}"


# The signature block's two lines (in bold, then not), each with its left and right half.
SIGNATURES = ((True, "NGƯỜI LẬP BIỂU", "THỦ TRƯỞNG CƠ QUAN, ĐƠN VỊ"),
              (False, "(Ký, ghi rõ họ tên)", "(Ký, ghi rõ họ tên, đóng dấu)"))


def to_pdf(report: dict, agency_name: str, made_on: date) -> bytes:
    """The form II.06a as the XLSX lays it out, on landscape A4 pages (the header repeated on each)."""
    pdf = FPDF(orientation="L", format="A4")
    pdf.set_margins(8, 8, 8)
    pdf.add_font("Roboto", "", font_roboto.Roboto)
    pdf.add_font("Roboto", "B", font_roboto.RobotoBold)
    pdf.add_page()
    half = pdf.epw / 2
    pdf.set_font("Roboto", "B", 9)
    pdf.cell(half, 5, f"Đơn vị báo cáo: {agency_name}", align="C")
    pdf.set_font("Roboto", "", 9)
    pdf.cell(half, 5, FORM, align="C", new_x="LMARGIN", new_y="NEXT")
    pdf.ln(3)
    pdf.set_font("Roboto", "B", 12)
    pdf.cell(0, 6, TITLE, align="C", new_x="LMARGIN", new_y="NEXT")
    pdf.set_font("Roboto", "", 9)
    for text in _period_lines(report):
        pdf.cell(0, 5, text, align="C", new_x="LMARGIN", new_y="NEXT")
    pdf.ln(2)
    key_label = KEY_HEADERS[report["by"]][1]
    figure_width = (pdf.epw - 7 - 20 - 40) / len(COLUMNS)
    pdf.set_font("Roboto", "", 6)
    with pdf.table(col_widths=(7, 20, 40, *([figure_width] * len(COLUMNS))), num_heading_rows=3,
                   text_align="CENTER", line_height=2.8, headings_style=FontFace(emphasis="BOLD")) as table:
        top = table.row()
        for text in ("STT", f"Mã {key_label.lower()}", key_label):
            top.cell(text, rowspan=2)
        for group, columns in GROUPS:
            top.cell(group, colspan=len(columns))
        sub = table.row()
        for header, _ in COLUMNS:
            sub.cell(header)
        numbers = table.row()
        for column in range(1, 4 + len(COLUMNS)):
            numbers.cell(f"({column})")
        lines = _lines(report)
        for index, (code, name, figures) in enumerate(lines, start=1):
            total = index == len(lines)
            row = table.row(style=FontFace(emphasis="BOLD") if total else None)
            for value in ("" if total else str(index), code or "", name or "", *(str(f) for f in figures)):
                row.cell(value)
    pdf.ln(6)
    pdf.set_font("Roboto", "", 9)
    pdf.set_x(pdf.l_margin + half)
    pdf.cell(half, 5, _signed_on(made_on), align="C", new_x="LMARGIN", new_y="NEXT")
    for bold, left, right in SIGNATURES:
        pdf.set_font("Roboto", "B" if bold else "", 9)
        pdf.cell(half, 5, left, align="C")
        pdf.cell(half, 5, right, align="C", new_x="LMARGIN", new_y="NEXT")
    return bytes(pdf.output())


def to_xlsx(report: dict, agency_name: str, made_on: date) -> bytes:
    """The form II.06a of `agency_name` (the reporting agency: the one asked for, or the province), made
    on `made_on` (the local date of the signature block)."""
    book = Workbook()
    sheet = book.active
    sheet.title = "II.06a"
    key_label = KEY_HEADERS[report["by"]][1]
    width = 3 + len(COLUMNS)  # STT, code, name, the figures

    def line(row: int, text: str, bold: bool = False, first: int = 1, last: int = width) -> None:
        sheet.merge_cells(start_row=row, start_column=first, end_row=row, end_column=last)
        cell = sheet.cell(row, first, text)
        cell.font, cell.alignment = Font(bold=bold), Alignment(horizontal="center", wrap_text=True)

    half = width // 2
    line(1, f"Đơn vị báo cáo: {agency_name}", bold=True, last=half)
    line(1, FORM, first=half + 1)
    line(3, TITLE, bold=True)
    for row, text in enumerate(_period_lines(report), start=4):
        line(row, text)

    top, sub, numbers = 7, 8, 9  # the two-level header, then the columns' numbers (1), (2), ...
    for column, text in enumerate(("STT", f"Mã {key_label.lower()}", key_label), start=1):
        sheet.merge_cells(start_row=top, start_column=column, end_row=sub, end_column=column)
        sheet.cell(top, column, text)
    column = 4
    for group, columns in GROUPS:
        sheet.merge_cells(start_row=top, start_column=column, end_row=top, end_column=column + len(columns) - 1)
        sheet.cell(top, column, group)
        for header, _ in columns:
            sheet.cell(sub, column, header)
            column += 1
    for column in range(1, width + 1):
        sheet.cell(numbers, column, f"({column})")
        for row in (top, sub, numbers):
            cell = sheet.cell(row, column)
            cell.font, cell.alignment, cell.border = Font(bold=row != numbers), CENTRED, BOX

    row = numbers
    lines = _lines(report)
    for index, (code, name, figures) in enumerate(lines, start=1):
        row += 1
        total = index == len(lines)  # the totals' line: not numbered, in bold
        values = ["" if total else index, code or "", name, *figures]
        for column, value in enumerate(values, start=1):
            cell = sheet.cell(row, column, value)
            cell.border = BOX
            cell.font = Font(bold=total)

    signed = row + 2
    line(signed, _signed_on(made_on), first=half + 1)
    for row, (bold, left, right) in enumerate(SIGNATURES, start=signed + 1):
        line(row, left, bold=bold, last=half)
        line(row, right, bold=bold, first=half + 1)

    sheet.column_dimensions["A"].width = 5
    sheet.column_dimensions["B"].width = 16
    sheet.column_dimensions["C"].width = 36
    for column in range(4, width + 1):
        sheet.column_dimensions[get_column_letter(column)].width = 12
    sheet.row_dimensions[sub].height = 60
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


CONTENT_TYPES = {"csv": "text/csv; charset=utf-8",
                 "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
                 "pdf": "application/pdf"}
FORMS = {"xlsx": to_xlsx, "pdf": to_pdf}


def as_file(report: dict, fmt: str, agency_name: str, made_on: date) -> dict:
    """The report as a file that crosses RPC (JSON): its bytes in base64."""
    content = (("\ufeff" + to_csv(report)).encode("utf-8") if fmt == "csv"
               else FORMS[fmt](report, agency_name, made_on))
    return {"filename": f"II.06a_{report['by']}_{report['from']}_{report['to']}.{fmt}",
            "content_type": CONTENT_TYPES[fmt], "content_base64": base64.b64encode(content).decode("ascii")}
