"""Forms 01, 02, 03, 04 and 06 as PDF: the text layer holds the dossier code and the Vietnamese names,
diacritics intact (the font is embedded)."""
import io
import unicodedata
from datetime import datetime, timezone

import pytest
from pypdf import PdfReader

from motcua.errors import Conflict, NotFound
from services.intake import dossiers, forms
from tests.intake.test_dossiers import APPLICANT, MONDAY_9AM, RECEPTIONIST, submit


def text_of(pdf: bytes) -> str:
    reader = PdfReader(io.BytesIO(pdf))
    fonts = [font.get_object() for page in reader.pages for font in page["/Resources"]["/Font"].values()]
    descriptors = [d.get_object()["/FontDescriptor"] for f in fonts for d in f.get("/DescendantFonts", [])]
    assert descriptors and all("/FontFile2" in d for d in descriptors)  # TrueType embedded, not referenced
    return unicodedata.normalize("NFC", "\n".join(page.extract_text() for page in reader.pages))


LAND_OFFICE, TAX = "000.12.01.H56", "000.00.18.H56"


def hand_overs(code):
    """Workflow's `dossier_history` of a dossier in two steps: the land office's done, the tax office's open."""
    return [
        {"id": "1", "step": "Thẩm định hồ sơ", "step_index": 0, "agency_code": LAND_OFFICE,
         "role": "specialist", "status": "done", "assigned_at": "2026-03-02T09:01:00+07:00",
         "due_at": "2026-03-05T09:01:00+07:00", "completed_at": "2026-03-04T10:00:00+07:00",
         "completed_by": f"specialist@{LAND_OFFICE}", "timeliness": "early"},
        {"id": "2", "step": "Xác định nghĩa vụ tài chính", "step_index": 1, "agency_code": TAX,
         "role": "specialist", "status": "open", "assigned_at": "2026-03-04T10:00:00+07:00",
         "due_at": "2026-03-10T10:00:00+07:00", "completed_at": None, "completed_by": None, "timeliness": None},
    ]


def no_history(code):
    raise AssertionError("only form 06 asks workflow")


def render(policy, form, dossier, history=no_history):
    return text_of(forms.render(form, dossier, policy.catalog, policy.calendar.tz, history))


def test_receipt_supplement_and_refusal_forms(uow, policy):
    dossier = submit(uow, policy)
    dossiers.receive(uow, policy, dossier.code, RECEPTIONIST, MONDAY_9AM)
    receipt = render(policy, "01", dossier)
    for expected in (dossier.code, APPLICANT["full_name"], "GIẤY TIẾP NHẬN HỒ SƠ VÀ HẸN TRẢ KẾT QUẢ",
                     "Ủy ban nhân dân phường Hạc Thành".upper(), "09 giờ 00 phút, ngày 16/03/2026"):
        assert expected in receipt

    dossiers.request_supplement(uow, dossier.code, ["Bản sao Căn cước công dân", "Sơ đồ thửa đất"], None,
                                RECEPTIONIST, MONDAY_9AM)
    request = render(policy, "02", dossier)
    for expected in (dossier.code, APPLICANT["full_name"], "1. Bản sao Căn cước công dân", "2. Sơ đồ thửa đất"):
        assert expected in request

    other = submit(uow, policy)
    dossiers.refuse(uow, other.code, "Hồ sơ không thuộc thẩm quyền giải quyết", RECEPTIONIST,
                    datetime(2026, 3, 2, 3, tzinfo=timezone.utc))
    refusal = render(policy, "03", other)
    for expected in (other.code, APPLICANT["full_name"], "Hồ sơ không thuộc thẩm quyền giải quyết"):
        assert expected in refusal


def test_a_form_exists_only_once_its_decision_was_made(uow, policy):
    dossier = submit(uow, policy)
    for form in ("01", "02", "03", "04", "06"):
        with pytest.raises(Conflict):
            forms.render(form, dossier, policy.catalog, policy.calendar.tz, no_history)
    with pytest.raises(NotFound) as error:
        forms.render("09", dossier, policy.catalog, policy.calendar.tz, no_history)
    assert error.value.field == "form"


def test_apology_form_carries_the_new_appointment_and_its_reason(uow, policy):
    dossier = submit(uow, policy)
    dossiers.receive(uow, policy, dossier.code, RECEPTIONIST, MONDAY_9AM)
    dossiers.reschedule(uow, dossier.code, datetime(2026, 3, 20, 9, tzinfo=timezone.utc),
                        "Chờ kết quả đo đạc thửa đất", RECEPTIONIST, datetime(2026, 3, 13, 2, tzinfo=timezone.utc))
    apology = render(policy, "04", dossier)
    for expected in (dossier.code, APPLICANT["full_name"], "PHIẾU XIN LỖI VÀ HẸN LẠI NGÀY TRẢ KẾT QUẢ",
                     "Chờ kết quả đo đạc thửa đất", "09 giờ 00 phút, ngày 16/03/2026",  # the old appointment
                     "16 giờ 00 phút, ngày 20/03/2026", "xin lỗi Ông/Bà"):
        assert expected in apology


def test_control_sheet_lists_each_hand_over_with_its_timeliness(uow, policy):
    dossier = submit(uow, policy)
    dossiers.receive(uow, policy, dossier.code, RECEPTIONIST, MONDAY_9AM)
    asked = []
    sheet = render(policy, "06", dossier, lambda code: asked.append(code) or hand_overs(code))
    assert asked == [dossier.code]
    for expected in (dossier.code, APPLICANT["full_name"], "PHIẾU KIỂM SOÁT QUÁ TRÌNH GIẢI QUYẾT HỒ SƠ",
                     "Trước hạn", "Đang xử lý", "10 giờ 00 phút, ngày 04/03/2026"):
        assert expected in sheet
    # the counter hands over the first step; the land office, whose step had just finished, the second
    first, second = sheet[sheet.index("1. Thẩm định hồ sơ"):].split("2. Xác định nghĩa vụ tài chính")
    assert "Bên giao: Ủy ban nhân dân phường Hạc Thành" in first and "Bên nhận: Văn phòng Đăng ký đất đai" in first
    assert "Bên giao: Văn phòng Đăng ký đất đai" in second and "Bên nhận: Thuế tỉnh Thanh Hóa" in second
