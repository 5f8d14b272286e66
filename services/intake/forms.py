"""The counter's forms as PDF (Circular 03/2025/TT-VPCP, Annex I), Vietnamese text in an embedded
font (Roboto, from the font-roboto package): 01 receipt + appointment slip, 02 supplement request,
03 refusal, 04 apology + new appointment date, 05 notice that processing stopped, 06 process control
sheet (each hand-over, from workflow's tasks: `history(dossier_code)` is workflow's `dossier_history`)."""
from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from zoneinfo import ZoneInfo

import font_roboto
from fpdf import FPDF

from motcua.errors import Conflict, NotFound
from services.intake.catalog import Catalog
from services.intake.domain import Dossier

FORMS = {
    "01": "GIẤY TIẾP NHẬN HỒ SƠ VÀ HẸN TRẢ KẾT QUẢ",
    "02": "PHIẾU YÊU CẦU BỔ SUNG, HOÀN THIỆN HỒ SƠ",
    "03": "PHIẾU TỪ CHỐI TIẾP NHẬN GIẢI QUYẾT HỒ SƠ",
    "04": "PHIẾU XIN LỖI VÀ HẸN LẠI NGÀY TRẢ KẾT QUẢ",
    "05": "THÔNG BÁO DỪNG XỬ LÝ HỒ SƠ",
    "06": "PHIẾU KIỂM SOÁT QUÁ TRÌNH GIẢI QUYẾT HỒ SƠ",
}
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
History = Callable[[str], list[dict]]


def render(form: str, dossier: Dossier, catalog: Catalog, tz: ZoneInfo, history: History) -> bytes:
    """The form as PDF bytes; `history` (workflow's hand-overs of a dossier) is only called for form 06."""
    if form not in FORMS:
        raise NotFound(f"no form {form} (forms: {', '.join(FORMS)})", field="form")
    if not AVAILABLE[form](dossier):
        raise Conflict(f"form {form} does not exist for a dossier that is {dossier.status}", field="form")
    agency = catalog.agencies[dossier.agency_code]["name"]
    pdf = _Document(agency, FORMS[form], dossier.code)
    if form == "01":
        _receipt(pdf, dossier, catalog, tz)
    elif form == "02":
        _supplement(pdf, dossier, tz)
    elif form == "03":
        _refusal(pdf, dossier, tz)
    elif form == "04":
        _apology(pdf, dossier, agency, tz)
    elif form == "05":
        _stop_notice(pdf, dossier, tz)
    else:
        _control_sheet(pdf, dossier, catalog, history(dossier.code), tz)
    return bytes(pdf.output())


def _when(value: datetime | None, tz: ZoneInfo) -> str:
    return value.astimezone(tz).strftime("%H giờ %M phút, ngày %d/%m/%Y") if value else "—"


class _Document(FPDF):
    def __init__(self, agency: str, title: str, code: str):
        super().__init__(format="A4")
        self.add_font("Roboto", "", font_roboto.Roboto)
        self.add_font("Roboto", "B", font_roboto.RobotoBold)
        self.set_margins(20, 15, 20)
        self.add_page()
        self.set_font("Roboto", "B", 10)
        half = (self.w - 40) / 2
        y = self.get_y()
        self.multi_cell(half, 5, agency.upper(), align="C")
        self.set_xy(20 + half, y)
        self.multi_cell(half, 5, "CỘNG HÒA XÃ HỘI CHỦ NGHĨA VIỆT NAM\nĐộc lập - Tự do - Hạnh phúc", align="C")
        self.ln(8)
        self.set_font("Roboto", "B", 13)
        self.multi_cell(0, 7, title, align="C", new_x="LMARGIN", new_y="NEXT")
        self.set_font("Roboto", "", 11)
        self.multi_cell(0, 6, f"Mã hồ sơ: {code}", align="C", new_x="LMARGIN", new_y="NEXT")
        self.ln(4)

    def line_of(self, label: str, value: str) -> None:
        self.set_font("Roboto", "B", 11)
        self.write(6, f"{label}: ")
        self.set_font("Roboto", "", 11)
        self.write(6, value)
        self.ln(7)

    def items(self, values: list[str]) -> None:
        for number, value in enumerate(values, 1):
            self.multi_cell(0, 6, f"{number}. {value}", new_x="LMARGIN", new_y="NEXT")


def _receipt(pdf: _Document, dossier: Dossier, catalog: Catalog, tz: ZoneInfo) -> None:
    procedure = catalog.procedure(dossier.procedure_code, version=dossier.procedure_version)
    received_by = next((h.actor for h in dossier.history if h.action == "receive"), "—")
    pdf.line_of("Tiếp nhận hồ sơ của", dossier.applicant_name)
    pdf.line_of("Về việc", f"{procedure.name} (mã thủ tục {procedure.code})")
    pdf.line_of("Thành phần hồ sơ", "")
    uploaded = {d.key for d in dossier.documents}
    pdf.items([f"{d['name']} ({'đã nộp' if d['key'] in uploaded else 'đối chiếu tại quầy'})"
               for d in procedure.documents])
    pdf.ln(2)
    pdf.line_of("Thời gian tiếp nhận", _when(dossier.received_at, tz))
    pdf.line_of("Thời gian trả kết quả", _when(dossier.due_at, tz))
    pdf.line_of("Người tiếp nhận", received_by)


def _supplement(pdf: _Document, dossier: Dossier, tz: ZoneInfo) -> None:
    request = dossier.supplements[-1]
    pdf.line_of("Gửi", dossier.applicant_name)
    pdf.line_of("Hồ sơ", dossier.procedure_name)
    pdf.line_of("Ngày yêu cầu", _when(request.requested_at, tz))
    pdf.line_of("Đề nghị bổ sung, hoàn thiện các nội dung sau", "")
    pdf.items(list(request.items))
    if request.note:
        pdf.line_of("Ghi chú", request.note)
    pdf.line_of("Người yêu cầu", request.requested_by)


def _refusal(pdf: _Document, dossier: Dossier, tz: ZoneInfo) -> None:
    refused_by = next((h.actor for h in dossier.history if h.action == "refuse"), "—")
    pdf.line_of("Gửi", dossier.applicant_name)
    pdf.line_of("Hồ sơ", dossier.procedure_name)
    pdf.line_of("Ngày từ chối", _when(dossier.refused_at, tz))
    pdf.line_of("Lý do từ chối", dossier.refusal_reason or "")
    pdf.line_of("Người từ chối", refused_by)


def _stop_notice(pdf: _Document, dossier: Dossier, tz: ZoneInfo) -> None:
    stopped_by = next((h.actor for h in reversed(dossier.history) if h.action == "stop"), "—")
    pdf.line_of("Gửi", dossier.applicant_name)
    pdf.line_of("Hồ sơ", dossier.procedure_name)
    pdf.line_of("Thời gian tiếp nhận", _when(dossier.received_at, tz))
    pdf.line_of("Ngày dừng xử lý", _when(dossier.stopped_at, tz))
    pdf.line_of("Lý do", dossier.stop_reason or "")
    pdf.line_of("Người quyết định", stopped_by)


def _apology(pdf: _Document, dossier: Dossier, agency: str, tz: ZoneInfo) -> None:
    """From the latest new appointment: the apology, the reason and the new date; before the counter
    issued one, the draft workflow's delay forecast prepared (the proposed date, the reason to fill in)."""
    if dossier.proposed_due_at is not None:  # issuing the apology clears the draft
        pdf.set_font("Roboto", "B", 11)
        pdf.multi_cell(0, 6, "DỰ THẢO — Bộ phận Một cửa ký và phát hành trước ngày hẹn", new_x="LMARGIN",
                       new_y="NEXT")
        pdf.set_font("Roboto", "", 11)
        _apology_text(pdf, dossier, agency, dossier.due_at, tz)
        pdf.line_of("Lý do", "…")
        pdf.line_of("Đề xuất hẹn lại ngày trả kết quả", _when(dossier.proposed_due_at, tz))
        return
    latest = dossier.reschedules[-1]
    _apology_text(pdf, dossier, agency, latest.old_due_at, tz)
    pdf.line_of("Lý do", latest.reason)
    pdf.line_of("Hẹn lại ngày trả kết quả", _when(latest.new_due_at, tz))
    pdf.line_of("Ngày xin lỗi", _when(latest.rescheduled_at, tz))
    pdf.line_of("Người lập phiếu", latest.rescheduled_by)


def _apology_text(pdf: _Document, dossier: Dossier, agency: str, due_at: datetime | None, tz: ZoneInfo) -> None:
    pdf.line_of("Kính gửi", dossier.applicant_name)
    pdf.line_of("Hồ sơ", dossier.procedure_name)
    pdf.line_of("Thời gian tiếp nhận", _when(dossier.received_at, tz))
    pdf.line_of("Hẹn trả kết quả", _when(due_at, tz))
    pdf.multi_cell(0, 6, f"{agency} xin lỗi Ông/Bà vì hồ sơ không giải quyết được đúng hẹn.",
                   new_x="LMARGIN", new_y="NEXT")
    pdf.ln(1)


def _control_sheet(pdf: _Document, dossier: Dossier, catalog: Catalog, hand_overs: list[dict],
                   tz: ZoneInfo) -> None:
    """One row per hand-over: the step, from which agency, to which, when, and that step's timeliness.
    A step comes from the agency whose step finished last before it was assigned (the counter first)."""
    def name(code: str) -> str:
        return catalog.agencies[code]["name"] if code in catalog.agencies else code

    def local(value: str | None) -> str:
        return _when(datetime.fromisoformat(value), tz) if value else "—"

    pdf.line_of("Tên thủ tục", dossier.procedure_name)
    pdf.line_of("Người nộp", dossier.applicant_name)
    pdf.line_of("Tiếp nhận tại", f"{name(dossier.agency_code)}, {_when(dossier.received_at, tz)}")
    pdf.line_of("Hẹn trả kết quả", _when(dossier.due_at, tz))
    finished = []
    for number, step in enumerate(hand_overs, 1):
        assigned = datetime.fromisoformat(step["assigned_at"])
        before = [s for s in finished if datetime.fromisoformat(s["completed_at"]) <= assigned]
        source = step.get("from_agency_code") or (
            max(before, key=lambda s: s["completed_at"])["agency_code"] if before else dossier.agency_code)
        pdf.ln(2)
        pdf.set_font("Roboto", "B", 11)
        pdf.multi_cell(0, 6, f"{number}. {step['step']}", new_x="LMARGIN", new_y="NEXT")
        pdf.line_of("Bên giao", name(source))
        pdf.line_of("Bên nhận", name(step["agency_code"]))
        pdf.line_of("Thời gian giao", local(step["assigned_at"]))
        pdf.line_of("Hạn xử lý bước", local(step.get("due_at")))
        pdf.line_of("Hoàn thành", local(step.get("completed_at")))
        pdf.line_of("Người xử lý", step.get("completed_by") or "—")
        pdf.line_of("Kết quả bước", TIMELINESS.get(step.get("timeliness"), "Đang xử lý"))
        if step.get("completed_at"):
            finished.append(step)
