"""The forms of Circular 03/2025/TT-VPCP, Annex I, as PDF (Vietnamese text in an embedded font, Roboto
from the font-roboto package), and the log book (form 07) also as XLSX:
01 Giấy tiếp nhận hồ sơ và hẹn trả kết quả, 02 Phiếu yêu cầu bổ sung, hoàn thiện hồ sơ, 03 Phiếu từ chối
tiếp nhận giải quyết hồ sơ, 04 Văn bản xin lỗi và đề nghị gia hạn thời gian giải quyết, 05 Thông báo dừng
giải quyết hồ sơ, 06 Phiếu kiểm soát quá trình giải quyết hồ sơ (each hand-over, from workflow's tasks),
07 Sổ theo dõi hồ sơ (an agency's dossiers received in a period).

Every form opens with the agency's name and the document's number beside the national header (Quốc hiệu,
tiêu ngữ) and the place and date line, and closes with its signature blocks. Officers sign by full name
and title, read from their accounts (`Officers`); an account without a full name leaves the line to be
written by hand, never a username."""
from __future__ import annotations

import io
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import date, datetime
from zoneinfo import ZoneInfo

import font_roboto
from fpdf import FPDF
from openpyxl import Workbook
from openpyxl.styles import Alignment, Border, Font, Side
from openpyxl.utils import get_column_letter

from motcua.errors import Conflict, NotFound
from services.intake.catalog import Catalog, Procedure
from services.intake.domain import Dossier

# The titles exactly as Annex I of Circular 03/2025/TT-VPCP (15/09/2025) names its forms.
TITLES = {
    "01": "GIẤY TIẾP NHẬN HỒ SƠ VÀ HẸN TRẢ KẾT QUẢ",
    "02": "PHIẾU YÊU CẦU BỔ SUNG, HOÀN THIỆN HỒ SƠ",
    "03": "PHIẾU TỪ CHỐI TIẾP NHẬN GIẢI QUYẾT HỒ SƠ",
    "04": "VĂN BẢN XIN LỖI VÀ ĐỀ NGHỊ GIA HẠN THỜI GIAN GIẢI QUYẾT",
    "05": "THÔNG BÁO DỪNG GIẢI QUYẾT HỒ SƠ",
    "06": "PHIẾU KIỂM SOÁT QUÁ TRÌNH GIẢI QUYẾT HỒ SƠ",
    "07": "SỔ THEO DÕI HỒ SƠ",
}
LOG_BOOK = "07"
# The suffix of a form's number (Số: <dossier code>/<suffix>): the number names the dossier it is about.
NUMBER_SUFFIX = {"01": "GTN", "02": "PYCBS", "03": "PTC", "04": "VBXL", "05": "TBD", "06": "PKS"}
# the statuses a form exists in: 01 once received, 02 once a supplement was asked, 03 once refused,
# 04 once a new appointment was given (or, as a draft, once workflow foresaw a delay), 05 once a step
# stopped the processing, 06 once received (its hand-overs grow with the processing)
AVAILABLE = {
    "01": lambda d: d.received_at is not None,
    "02": lambda d: bool(d.supplements),
    "03": lambda d: d.status == "refused",
    "04": lambda d: bool(d.reschedules) or d.proposed_due_at is not None,
    "05": lambda d: d.status == "stopped",
    "06": lambda d: d.received_at is not None,
}
TIMELINESS = {"early": "Trước hạn", "on_time": "Đúng hạn", "late": "Trễ hạn"}
KINDS = {"original": "Bản chính", "copy": "Bản sao", "original_or_copy": "Bản chính hoặc bản sao"}
# how form 01 states the legal processing time, for each unit the catalogue may use
UNIT_WORDS = {"working_days": "ngày làm việc", "calendar_days": "ngày", "working_hours": "giờ làm việc"}
UNSIGNED = "………………………………"  # the officer writes the name by hand
History = Callable[[str], list[dict]]


@dataclass(frozen=True)
class Officer:
    """A staff member as forms name them: họ và tên, chức danh."""

    full_name: str
    title: str | None


# The officers behind usernames (those the gateway's accounts know; an unknown one is left out).
Officers = Callable[[Iterable[str]], dict[str, Officer]]


@dataclass(frozen=True)
class RegisterEntry:
    """A dossier's line in its receiving agency's log book: one book (quyển) per year, numbered from 1."""

    book: int
    number: int


def register(received: list[tuple[str, datetime]], tz: ZoneInfo) -> dict[str, RegisterEntry]:
    """Register lines of dossiers `(code, received_at)` in order of receipt, from the first of a year:
    one book per local year (quyển số = the year), numbered from 1 in it."""
    lines, counts = {}, Counter()
    for code, received_at in received:
        year = received_at.astimezone(tz).year
        counts[year] += 1
        lines[code] = RegisterEntry(year, counts[year])
    return lines


def render(form: str, dossier: Dossier, catalog: Catalog, tz: ZoneInfo, history: History, officers: Officers,
           entry: Callable[[], RegisterEntry]) -> bytes:
    """Form 01–06 of a dossier as PDF bytes; `history` (workflow's hand-overs) is only called for form 06,
    `entry` (the log book's line) only for form 01."""
    if form == LOG_BOOK:
        raise NotFound("form 07 is an agency's log book, not a dossier's: /api/v1/agencies/<code>/log-book",
                       field="form")
    if form not in AVAILABLE:
        raise NotFound(f"no form {form} (forms: {', '.join(TITLES)})", field="form")
    if not AVAILABLE[form](dossier):
        raise Conflict(f"form {form} does not exist for a dossier that is {dossier.status}", field="form")
    hand_overs = history(dossier.code) if form == "06" else []
    names = officers(_signers(dossier, hand_overs))
    issuer = _issuer(form, dossier)
    pdf = _Document(catalog, issuer, f"Số: {dossier.code}/{NUMBER_SUFFIX[form]}", _issued_at(form, dossier), tz)
    pdf.heading(TITLES[form], f"Mã hồ sơ: {dossier.code}")
    signer = _Signer(names)
    if form == "01":
        _receipt(pdf, dossier, catalog, tz, entry(), signer)
    elif form == "02":
        _supplement(pdf, dossier, catalog, issuer, tz, signer)
    elif form == "03":
        _refusal(pdf, dossier, catalog, issuer, tz, signer)
    elif form == "04":
        _apology(pdf, dossier, catalog, issuer, tz, signer)
    elif form == "05":
        _stop_notice(pdf, dossier, catalog, issuer, tz, signer)
    else:
        _control_sheet(pdf, dossier, catalog, hand_overs, tz, signer)
    return bytes(pdf.output())


def payment_receipt(dossier: Dossier, catalog: Catalog, tz: ZoneInfo, receipt_number: str, order_id: str,
                    transaction_no: str | None, amount_vnd: int, paid_at: datetime) -> bytes:
    """Biên lai điện tử: the electronic receipt of a fee or tax paid online, issued in the receiving
    agency's name, with the platform's order and transaction numbers (what reconciliation matches)."""
    pdf = _Document(catalog, dossier.agency_code, f"Số: {receipt_number}", paid_at, tz)
    pdf.heading("BIÊN LAI THU PHÍ, LỆ PHÍ ĐIỆN TỬ", f"Mã hồ sơ: {dossier.code}")
    pdf.line_of("Thủ tục", dossier.procedure_name)
    pdf.line_of("Người nộp", dossier.applicant_name)
    pdf.line_of("Số tiền", f"{amount_vnd:,} đồng".replace(",", "."))
    pdf.line_of("Nội dung", dossier.payment_note or "Nghĩa vụ tài chính của hồ sơ")
    pdf.line_of("Hình thức", "Thanh toán trực tuyến qua Nền tảng thanh toán")
    pdf.line_of("Mã đơn thanh toán", order_id)
    pdf.line_of("Mã giao dịch", transaction_no or "—")
    pdf.line_of("Thời điểm thanh toán", _when(paid_at, tz))
    return bytes(pdf.output())


def _issuer(form: str, dossier: Dossier) -> str:
    """The agency in whose name the form is issued: the receiving agency, except form 04, issued by the
    agency whose step made the dossier late (Circular 03/2025, form 04)."""
    if form != "04":
        return dossier.agency_code
    if dossier.proposed_due_at is not None:
        return dossier.delaying_agency_code or dossier.agency_code
    return dossier.reschedules[-1].late_agency_code or dossier.agency_code


def _issued_at(form: str, dossier: Dossier) -> datetime | None:
    """The date the form bears: that of the act it records (none yet on a draft 04)."""
    if form == "02":
        return dossier.supplements[-1].requested_at
    if form == "03":
        return dossier.refused_at
    if form == "04":
        return dossier.reschedules[-1].rescheduled_at if dossier.proposed_due_at is None else None
    if form == "05":
        return dossier.stopped_at
    return dossier.received_at


def _signers(dossier: Dossier, hand_overs: list[dict]) -> set[str]:
    actors = {h.actor for h in dossier.history}
    actors |= {r.requested_by for r in dossier.supplements} | {r.rescheduled_by for r in dossier.reschedules}
    return actors | {s["completed_by"] for s in hand_overs if s.get("completed_by")}


def _when(value: datetime | None, tz: ZoneInfo) -> str:
    return value.astimezone(tz).strftime("%H giờ %M phút, ngày %d/%m/%Y") if value else "—"


def _day(value: datetime | None, tz: ZoneInfo) -> str:
    return value.astimezone(tz).strftime("%d/%m/%Y") if value else ""


def _agency(catalog: Catalog, code: str) -> str:
    return catalog.agencies[code]["name"] if code in catalog.agencies else code


def _actor(dossier: Dossier, action: str) -> str | None:
    return next((h.actor for h in reversed(dossier.history) if h.action == action), None)


class _Signer:
    """Signature blocks: the role, "(Ký, ghi rõ họ tên)", room to sign, the full name and the title."""

    def __init__(self, officers: dict[str, Officer]):
        self.officers = officers

    def officer(self, username: str | None) -> list[str]:
        officer = self.officers.get(username) if username else None
        if officer is None:
            return [UNSIGNED]
        return [officer.full_name, *([officer.title] if officer.title else [])]


class _Document(FPDF):
    def __init__(self, catalog: Catalog, agency_code: str, number: str, issued_at: datetime | None,
                 tz: ZoneInfo, orientation: str = "portrait"):
        super().__init__(orientation=orientation, format="A4")
        self.add_font("Roboto", "", font_roboto.Roboto)
        self.add_font("Roboto", "B", font_roboto.RobotoBold)
        self.add_font("Roboto", "I", font_roboto.RobotoItalic)
        self.set_margins(20, 15, 20)
        self.add_page()
        half = (self.w - 40) / 2
        y = self.get_y()
        self.set_font("Roboto", "B", 10)
        self.multi_cell(half, 5, _agency(catalog, agency_code).upper(), align="C", new_x="LEFT", new_y="NEXT")
        self.set_font("Roboto", "", 10)
        self.multi_cell(half, 6, number, align="C")
        left_end = self.get_y()
        self.set_xy(20 + half, y)
        self.set_font("Roboto", "B", 10)
        self.multi_cell(half, 5, "CỘNG HÒA XÃ HỘI CHỦ NGHĨA VIỆT NAM\nĐộc lập - Tự do - Hạnh phúc", align="C",
                        new_x="LEFT", new_y="NEXT")
        self.set_font("Roboto", "I", 10)
        self.multi_cell(half, 6, _place_and_date(catalog, issued_at, tz), align="C")
        self.set_y(max(left_end, self.get_y()) + 6)

    def heading(self, title: str, subtitle: str) -> None:
        self.set_font("Roboto", "B", 13)
        self.multi_cell(0, 7, title, align="C", new_x="LMARGIN", new_y="NEXT")
        self.set_font("Roboto", "", 11)
        self.multi_cell(0, 6, subtitle, align="C", new_x="LMARGIN", new_y="NEXT")
        self.ln(4)

    def line_of(self, label: str, value: str) -> None:
        self.set_font("Roboto", "B", 11)
        self.write(6, f"{label}: ")
        self.set_font("Roboto", "", 11)
        self.write(6, value)
        self.ln(7)

    def paragraph(self, text: str) -> None:
        self.set_font("Roboto", "", 11)
        self.multi_cell(0, 6, text, new_x="LMARGIN", new_y="NEXT")
        self.ln(1)

    def items(self, values: list[str]) -> None:
        self.set_font("Roboto", "", 11)
        for number, value in enumerate(values, 1):
            self.multi_cell(0, 6, f"{number}. {value}", new_x="LMARGIN", new_y="NEXT")

    def signatures(self, *blocks: tuple[str, list[str]]) -> None:
        """Side by side, each: the role, the hint, room to sign, then the signer's lines."""
        self.ln(6)
        if self.get_y() > self.h - 60:
            self.add_page()
        width = (self.w - 40) / len(blocks)
        top, hints_end = self.get_y(), []
        for index, (role, _lines) in enumerate(blocks):
            self.set_xy(20 + index * width, top)
            self.set_font("Roboto", "B", 11)
            self.multi_cell(width, 6, role, align="C", new_x="LEFT", new_y="NEXT")
            self.set_font("Roboto", "I", 10)
            self.multi_cell(width, 6, "(Ký, ghi rõ họ tên)", align="C", new_x="LEFT", new_y="NEXT")
            hints_end.append(self.get_y())
        names = max(hints_end) + 18  # room to sign; the names on one line whatever the roles' length
        self.set_font("Roboto", "B", 11)
        for index, (_role, lines) in enumerate(blocks):
            self.set_xy(20 + index * width, names)
            self.multi_cell(width, 6, "\n".join(lines), align="C", new_x="LEFT", new_y="NEXT")


def _place_and_date(catalog: Catalog, issued_at: datetime | None, tz: ZoneInfo) -> str:
    """"Thanh Hóa, ngày 16 tháng 03 năm 2026" (a draft leaves the date to fill in)."""
    if issued_at is None:
        return f"{catalog.place}, ngày … tháng … năm …"
    local = issued_at.astimezone(tz)
    return f"{catalog.place}, ngày {local:%d} tháng {local:%m} năm {local:%Y}"


def _applicant(pdf: _Document, dossier: Dossier) -> None:
    pdf.line_of("Địa chỉ", dossier.applicant_address or "—")
    pdf.line_of("Số điện thoại", dossier.applicant_phone)
    if dossier.applicant_email:
        pdf.line_of("Thư điện tử", dossier.applicant_email)


def _handed_in(pdf: _Document, dossier: Dossier, catalog: Catalog) -> None:
    """What was handed in: each paper with its form (original, copy) and count, and the number of sets."""
    procedure = catalog.procedure(dossier.procedure_code, version=dossier.procedure_version)
    uploaded = {d.key for d in dossier.documents}
    pdf.line_of("Thành phần hồ sơ nộp gồm", "")
    pdf.items([f"{d['name']} — {KINDS[d['kind']]}, số lượng: {d['copies']:02d} "
               f"({'đã nộp' if d['key'] in uploaded else 'đối chiếu tại quầy'})" for d in procedure.documents])
    pdf.line_of("Số lượng hồ sơ", "01 bộ")


def _receipt(pdf: _Document, dossier: Dossier, catalog: Catalog, tz: ZoneInfo, entry: RegisterEntry,
             signer: _Signer) -> None:
    """Form 01 states the appointment given at reception; a later one is form 04's."""
    procedure = catalog.procedure(dossier.procedure_code, version=dossier.procedure_version)
    terms = procedure.terms(dossier.channel)
    pdf.paragraph(f"{_agency(catalog, dossier.agency_code)} tiếp nhận hồ sơ của:")
    pdf.line_of("Ông/Bà, tổ chức", dossier.applicant_name)
    _applicant(pdf, dossier)
    pdf.line_of("Nội dung yêu cầu giải quyết", f"{procedure.name} (mã thủ tục {procedure.code})")
    _handed_in(pdf, dossier, catalog)
    pdf.line_of("Thời gian giải quyết hồ sơ theo quy định", f"{_number(terms.days)} {UNIT_WORDS[terms.unit]}")
    pdf.line_of("Thời gian nhận hồ sơ", _when(dossier.received_at, tz))
    pdf.line_of("Thời gian trả kết quả giải quyết hồ sơ", _when(dossier.appointed_at, tz))
    pdf.line_of("Vào Sổ theo dõi hồ sơ", f"Quyển số: {entry.book}, Số thứ tự: {entry.number}")
    pdf.signatures(("NGƯỜI NỘP HỒ SƠ", [dossier.applicant_name]),
                   ("NGƯỜI TIẾP NHẬN HỒ SƠ", signer.officer(_actor(dossier, "receive"))))


def _number(days) -> str:
    return format(days.normalize(), "f")


def _addressed(pdf: _Document, dossier: Dossier) -> None:
    pdf.line_of("Kính gửi", dossier.applicant_name)
    _applicant(pdf, dossier)
    pdf.line_of("Hồ sơ", f"{dossier.procedure_name} (mã hồ sơ {dossier.code})")


def _supplement(pdf: _Document, dossier: Dossier, catalog: Catalog, issuer: str, tz: ZoneInfo,
                signer: _Signer) -> None:
    request = dossier.supplements[-1]
    _addressed(pdf, dossier)
    pdf.line_of("Ngày nhận hồ sơ", _when(dossier.received_at or dossier.submitted_at, tz))
    pdf.paragraph(f"Sau khi xem xét, {_agency(catalog, issuer)} đề nghị Ông/Bà bổ sung, hoàn thiện hồ sơ "
                  "gồm những nội dung sau:")
    pdf.items(list(request.items))
    if request.note:
        pdf.line_of("Ghi chú", request.note)
    pdf.paragraph("Lý do: hồ sơ chưa đầy đủ, hợp lệ theo quy định của thủ tục hành chính.")
    pdf.signatures(("NGƯỜI NỘP HỒ SƠ", [dossier.applicant_name]),
                   ("NGƯỜI TIẾP NHẬN HỒ SƠ", signer.officer(request.requested_by)))


def _refusal(pdf: _Document, dossier: Dossier, catalog: Catalog, issuer: str, tz: ZoneInfo,
             signer: _Signer) -> None:
    _addressed(pdf, dossier)
    pdf.line_of("Ngày nộp hồ sơ", _when(dossier.submitted_at, tz))
    pdf.paragraph(f"{_agency(catalog, issuer)} từ chối tiếp nhận giải quyết hồ sơ này vì lý do sau:")
    pdf.paragraph(dossier.refusal_reason or "")
    pdf.signatures(("NGƯỜI NỘP HỒ SƠ", [dossier.applicant_name]),
                   ("NGƯỜI TIẾP NHẬN HỒ SƠ", signer.officer(_actor(dossier, "refuse"))))


def _apology(pdf: _Document, dossier: Dossier, catalog: Catalog, issuer: str, tz: ZoneInfo,
             signer: _Signer) -> None:
    """From the latest new appointment: the apology, the reason and the new date; before the counter
    issued one, the draft workflow's delay forecast prepared (the proposed date, the reason to fill in)."""
    if dossier.proposed_due_at is not None:  # issuing the apology clears the draft
        pdf.set_font("Roboto", "B", 11)
        pdf.multi_cell(0, 6, "DỰ THẢO — Bộ phận Một cửa ký và phát hành trước ngày hẹn", new_x="LMARGIN",
                       new_y="NEXT")
        old_due_at, reason, new_due_at, issued_by = dossier.due_at, "…", dossier.proposed_due_at, None
    else:
        latest = dossier.reschedules[-1]
        # the counter records it; it signs only for its own agency (another's representative signs by hand)
        issued_by = latest.rescheduled_by if issuer == latest.agency_code else None
        old_due_at, reason, new_due_at = latest.old_due_at, latest.reason, latest.new_due_at
    _addressed(pdf, dossier)
    pdf.line_of("Thời gian nhận hồ sơ", _when(dossier.received_at, tz))
    pdf.line_of("Thời gian hẹn trả kết quả", _when(old_due_at, tz))
    pdf.paragraph(f"{_agency(catalog, issuer)} xin lỗi Ông/Bà vì hồ sơ không giải quyết được đúng hẹn.")
    pdf.line_of("Lý do", reason)
    pdf.line_of("Thời gian đề nghị gia hạn, hẹn lại ngày trả kết quả", _when(new_due_at, tz))
    pdf.paragraph("Mong Ông/Bà thông cảm vì sự chậm trễ này.")
    pdf.signatures(("NGƯỜI NHẬN", [dossier.applicant_name]),
                   (f"ĐẠI DIỆN {_agency(catalog, issuer).upper()}", signer.officer(issued_by)))


def _stop_notice(pdf: _Document, dossier: Dossier, catalog: Catalog, issuer: str, tz: ZoneInfo,
                 signer: _Signer) -> None:
    stop = next(h for h in reversed(dossier.history) if h.action == "stop")
    # the officer of the step that stopped it signs only for their own agency (another's signs by hand)
    stopped_by = stop.actor if stop.agency_code == issuer else None
    _addressed(pdf, dossier)
    pdf.line_of("Thời gian nhận hồ sơ", _when(dossier.received_at, tz))
    pdf.paragraph(f"{_agency(catalog, issuer)} thông báo dừng giải quyết hồ sơ của Ông/Bà "
                  f"từ {_when(dossier.stopped_at, tz)}.")
    pdf.line_of("Lý do", dossier.stop_reason or "")
    pdf.signatures(("NGƯỜI NHẬN", [dossier.applicant_name]),
                   (f"ĐẠI DIỆN {_agency(catalog, issuer).upper()}", signer.officer(stopped_by)))


def _control_sheet(pdf: _Document, dossier: Dossier, catalog: Catalog, hand_overs: list[dict], tz: ZoneInfo,
                   signer: _Signer) -> None:
    """One block per hand-over: the step, from which agency and officer, to which, when, and that step's
    timeliness, with the giver's and the receiver's signatures. A step comes from the agency whose step
    finished last before it was assigned (the counter, and its receiving officer, first)."""
    def local(value: str | None) -> str:
        return _when(datetime.fromisoformat(value), tz) if value else "—"

    pdf.line_of("Tên thủ tục", dossier.procedure_name)
    pdf.line_of("Người nộp", dossier.applicant_name)
    _applicant(pdf, dossier)
    pdf.line_of("Tiếp nhận tại", f"{_agency(catalog, dossier.agency_code)}, {_when(dossier.received_at, tz)}")
    pdf.line_of("Hẹn trả kết quả", _when(dossier.due_at, tz))
    finished = []
    for number, step in enumerate(hand_overs, 1):
        assigned = datetime.fromisoformat(step["assigned_at"])
        before = [s for s in finished if datetime.fromisoformat(s["completed_at"]) <= assigned]
        previous = max(before, key=lambda s: s["completed_at"]) if before else None
        source = step.get("from_agency_code") or (previous["agency_code"] if previous else dossier.agency_code)
        giver = previous["completed_by"] if previous else _actor(dossier, "receive")
        pdf.ln(2)
        pdf.set_font("Roboto", "B", 11)
        pdf.multi_cell(0, 6, f"{number}. {step['step']}", new_x="LMARGIN", new_y="NEXT")
        pdf.line_of("Bên giao", _agency(catalog, source))
        pdf.line_of("Bên nhận", _agency(catalog, step["agency_code"]))
        pdf.line_of("Thời gian giao", local(step["assigned_at"]))
        pdf.line_of("Hạn xử lý bước", local(step.get("due_at")))
        pdf.line_of("Hoàn thành", local(step.get("completed_at")))
        pdf.line_of("Kết quả bước", TIMELINESS.get(step.get("timeliness"), "Đang xử lý"))
        pdf.signatures(("BÊN GIAO", signer.officer(giver)), ("BÊN NHẬN", signer.officer(step.get("completed_by"))))
        if step.get("completed_at"):
            finished.append(step)


# -- form 07, the log book ----------------------------------------------------------------------------

LOG_COLUMNS = (  # (header, width in mm: together the 257 mm of A4 landscape inside its margins)
    ("STT", 8), ("Mã hồ sơ", 36), ("Tên thủ tục hành chính", 29), ("Số lượng hồ sơ (bộ)", 10),
    ("Tên cá nhân, tổ chức", 24), ("Địa chỉ, số điện thoại", 24), ("Cơ quan chủ trì giải quyết", 27),
    ("Nhận hồ sơ", 17), ("Hẹn trả kết quả", 17), ("Chuyển hồ sơ đến cơ quan giải quyết", 17),
    ("Nhận kết quả từ cơ quan giải quyết", 17), ("Trả kết quả cho cá nhân, tổ chức", 17), ("Ghi chú", 14),
)
LOG_BOOK_TYPES = {"pdf": "application/pdf",
                  "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"}
STATUS_NOTES = {"refused": "Từ chối tiếp nhận", "withdrawn": "Rút hồ sơ", "stopped": "Dừng giải quyết",
                "supplement_requested": "Chờ bổ sung", "awaiting_payment": "Chờ nộp phí, lệ phí"}


def _lead_agency(procedure: Procedure, dossier: Dossier) -> str:
    """Cơ quan chủ trì giải quyết: the procedure's agency; for one received anywhere, the commune that
    received it, which handles it (processes.yaml: `serving: receiving`)."""
    return dossier.agency_code if procedure.received_anywhere else procedure.agency_code


def log_rows(entries: list[tuple[RegisterEntry, Dossier]], catalog: Catalog, tz: ZoneInfo) -> list[list[str]]:
    """One row per dossier as the log book has it: its register number, who, what, and the dates it was
    received, appointed, sent to the competent agency, its result received back, and returned."""
    rows = []
    for entry, dossier in entries:
        procedure = catalog.procedure(dossier.procedure_code, version=dossier.procedure_version)
        sent = next((h.at for h in dossier.history if h.action == "start_processing"), None)
        contact = ", ".join(v for v in (dossier.applicant_address, dossier.applicant_phone) if v)
        rows.append([str(entry.number), dossier.code, dossier.procedure_name, "01", dossier.applicant_name,
                     contact, _agency(catalog, _lead_agency(procedure, dossier)), _day(dossier.received_at, tz),
                     _day(dossier.appointed_at, tz), _day(sent, tz), _day(dossier.result_ready_at, tz),
                     _day(dossier.returned_at, tz), STATUS_NOTES.get(dossier.status, "")])
    return rows


def _period(first: date, last: date) -> str:
    return f"Kỳ: {first:%d/%m/%Y} - {last:%d/%m/%Y}"


def _book(first: date, last: date) -> str:
    """The book's number in place of a document's: one book a year."""
    return f"Quyển số: {first.year}" if first.year == last.year else f"Quyển số: {first.year}–{last.year}"


def log_book_pdf(catalog: Catalog, agency_code: str, first: date, last: date, rows: list[list[str]],
                 tz: ZoneInfo, printed_at: datetime) -> bytes:
    pdf = _Document(catalog, agency_code, _book(first, last), printed_at, tz, orientation="landscape")
    pdf.heading(TITLES[LOG_BOOK], _period(first, last))
    pdf.set_font("Roboto", "B", 7)
    height = 4
    widths = [w for _, w in LOG_COLUMNS]
    with pdf.table(col_widths=widths, text_align="CENTER", line_height=height,
                   first_row_as_headings=True) as table:
        table.row([header for header, _ in LOG_COLUMNS])
        pdf.set_font("Roboto", "", 7)
        for values in rows:
            table.row(values)
    pdf.signatures(("NGƯỜI LẬP SỔ", [UNSIGNED]), (f"ĐẠI DIỆN {_agency(catalog, agency_code).upper()}", [UNSIGNED]))
    return bytes(pdf.output())


def log_book_xlsx(catalog: Catalog, agency_code: str, first: date, last: date, rows: list[list[str]]) -> bytes:
    """The same book as a sheet: agency and national header, title, period, the columns, one row each."""
    book = Workbook()
    sheet = book.active
    sheet.title = "So theo doi ho so"
    end = get_column_letter(len(LOG_COLUMNS))
    bold, thin = Font(bold=True), Side(style="thin")
    sheet.append([_agency(catalog, agency_code).upper()] + [""] * 7 + ["CỘNG HÒA XÃ HỘI CHỦ NGHĨA VIỆT NAM"])
    sheet.append([_book(first, last)] + [""] * 7 + ["Độc lập - Tự do - Hạnh phúc"])
    sheet.append([TITLES[LOG_BOOK]])
    sheet.append([_period(first, last)])
    sheet.append([header for header, _ in LOG_COLUMNS])
    for row_number in (1, 2, 3, 5):
        for cell in sheet[row_number]:
            cell.font = bold
    for area in ("A1:G1", "A2:G2", f"I1:{end}1", f"I2:{end}2", f"A3:{end}3", f"A4:{end}4"):
        sheet.merge_cells(area)
    for values in rows:
        sheet.append(values)
    for row in sheet.iter_rows(min_row=5, max_row=sheet.max_row):
        for cell in row:
            cell.border = Border(left=thin, right=thin, top=thin, bottom=thin)
            cell.alignment = Alignment(wrap_text=True, vertical="top")
    for row_number in (1, 2, 3, 4):
        sheet[f"A{row_number}"].alignment = sheet[f"I{row_number}"].alignment = Alignment(horizontal="center")
    for index, (_, width) in enumerate(LOG_COLUMNS, 1):
        sheet.column_dimensions[get_column_letter(index)].width = width * 0.6
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()
