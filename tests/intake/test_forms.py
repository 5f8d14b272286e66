"""Forms 01–07 of Circular 03/2025/TT-VPCP as PDF (07 also as XLSX): the text layer holds each form's
title as the 2025 annex names it, the national header, the agency, number, place and date, the applicant's
address and phone, what was handed in, the register entry (01) and the signature blocks with officers by
full name and title; diacritics intact (the font is embedded)."""
import io
import json
import unicodedata
from datetime import date, datetime, timezone

import pytest
from alembic import command
from openpyxl import load_workbook
from pypdf import PdfReader
from sqlalchemy import select, text

from motcua import migrate
from motcua.db import make_engine
from motcua.errors import Conflict, Forbidden, NotFound
from services.intake import catalog as catalog_module, dossiers, forms
from services.intake.models import dossiers as dossier_table
from tests.intake.test_dossiers import APPLICANT, COMMUNE, MONDAY_9AM, RECEPTIONIST, XA_RECEPTIONIST, submit


def text_of(pdf: bytes) -> str:
    reader = PdfReader(io.BytesIO(pdf))
    fonts = [font.get_object() for page in reader.pages for font in page["/Resources"]["/Font"].values()]
    descriptors = [d.get_object()["/FontDescriptor"] for f in fonts for d in f.get("/DescendantFonts", [])]
    assert descriptors and all("/FontFile2" in d for d in descriptors)  # TrueType embedded, not referenced
    text = unicodedata.normalize("NFC", "\n".join(page.extract_text() for page in reader.pages))
    return " ".join(text.split())  # one line: a name the layout wrapped reads whole


LAND_OFFICE, TAX = "000.12.01.H56", "000.00.18.H56"
NATIONAL_HEADER = ("CỘNG HÒA XÃ HỘI CHỦ NGHĨA VIỆT NAM", "Độc lập - Tự do - Hạnh phúc")
# the gateway's accounts as `officers` answers them; the tax office's specialist has no full name yet
ACCOUNTS = {RECEPTIONIST.username: forms.Officer("Lê Thị Hoa", "Công chức Bộ phận Một cửa"),
            f"specialist@{LAND_OFFICE}": forms.Officer("Trần Văn Bình", "Chuyên viên")}


def officers(usernames):
    return {name: ACCOUNTS[name] for name in usernames if name in ACCOUNTS}


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


def no_entry():
    raise AssertionError("only form 01 reads the log book")


def render(policy, form, dossier, history=no_history, entry=no_entry) -> str:
    return text_of(forms.render(form, dossier, policy.catalog, policy.calendar.tz, history, officers, entry))


def assert_blocks(text: str, *expected: str) -> None:
    """Every form: the national header, then what this one must hold; never an officer's username."""
    for line in (*NATIONAL_HEADER, *expected):
        assert line in text, line
    assert "receptionist@" not in text and "specialist@" not in text


def received(uow, policy, now=MONDAY_9AM):
    dossier = submit(uow, policy)
    dossiers.receive(uow, policy, dossier.code, RECEPTIONIST, now)
    return dossier


def receipt(uow, policy, dossier) -> str:
    return render(policy, "01", dossier, entry=lambda: dossiers.register_entry(uow, dossier, policy.calendar.tz))


def test_form_01_receipt_holds_the_applicant_what_was_handed_in_the_register_entry_and_signatures(uow, policy):
    first, dossier = received(uow, policy), received(uow, policy, MONDAY_9AM.replace(hour=3))
    text = receipt(uow, policy, dossier)
    assert_blocks(text, "GIẤY TIẾP NHẬN HỒ SƠ VÀ HẸN TRẢ KẾT QUẢ", "ỦY BAN NHÂN DÂN PHƯỜNG HẠC THÀNH",
                  f"Số: {dossier.code}/GTN", "Thanh Hóa, ngày 02 tháng 03 năm 2026", dossier.code,
                  APPLICANT["full_name"], f"Địa chỉ: {APPLICANT['address']}", f"Số điện thoại: {APPLICANT['phone']}",
                  "Đơn đề nghị cấp lại Giấy chứng nhận — Bản chính, số lượng: 01", "Số lượng hồ sơ: 01 bộ",
                  "Thời gian giải quyết hồ sơ theo quy định: 10 ngày làm việc",
                  "Thời gian nhận hồ sơ: 10 giờ 00 phút, ngày 02/03/2026",
                  "Vào Sổ theo dõi hồ sơ: Quyển số: 2026, Số thứ tự: 2",  # the second dossier received this year
                  "NGƯỜI NỘP HỒ SƠ", "NGƯỜI TIẾP NHẬN HỒ SƠ", "(Ký, ghi rõ họ tên)",
                  "Lê Thị Hoa", "Công chức Bộ phận Một cửa")
    assert "Số thứ tự: 1" in receipt(uow, policy, first)


def test_form_01_words_every_unit_of_processing_time_the_catalogue_allows():
    assert set(catalog_module.UNITS) <= set(forms.UNIT_WORDS)


def test_form_01_reprinted_keeps_the_appointment_given_at_reception(uow, policy):
    dossier = received(uow, policy)
    appointment = "Thời gian trả kết quả giải quyết hồ sơ: 09 giờ 00 phút, ngày 16/03/2026"
    assert appointment in receipt(uow, policy, dossier)
    dossiers.reschedule(uow, dossier.code, datetime(2026, 3, 20, 9, tzinfo=timezone.utc),
                        "Chờ kết quả đo đạc thửa đất", RECEPTIONIST, datetime(2026, 3, 13, 2, tzinfo=timezone.utc))
    reprinted = receipt(uow, policy, dossier)
    assert appointment in reprinted and "20/03/2026" not in reprinted  # the new date is form 04's


def test_forms_02_and_03_guidance_and_refusal(uow, policy):
    dossier = received(uow, policy)
    dossiers.request_supplement(uow, dossier.code, ["Bản sao Căn cước công dân", "Sơ đồ thửa đất"], None,
                                RECEPTIONIST, MONDAY_9AM)
    assert_blocks(render(policy, "02", dossier), "PHIẾU YÊU CẦU BỔ SUNG, HOÀN THIỆN HỒ SƠ",
                  f"Số: {dossier.code}/PYCBS", "Thanh Hóa, ngày 02 tháng 03 năm 2026", f"Kính gửi: {APPLICANT['full_name']}",
                  f"Địa chỉ: {APPLICANT['address']}", "1. Bản sao Căn cước công dân", "2. Sơ đồ thửa đất",
                  "NGƯỜI NỘP HỒ SƠ", "NGƯỜI TIẾP NHẬN HỒ SƠ", "Lê Thị Hoa")

    other = submit(uow, policy)
    dossiers.refuse(uow, other.code, "Hồ sơ không thuộc thẩm quyền giải quyết", RECEPTIONIST,
                    datetime(2026, 3, 3, 3, tzinfo=timezone.utc))
    assert_blocks(render(policy, "03", other), "PHIẾU TỪ CHỐI TIẾP NHẬN GIẢI QUYẾT HỒ SƠ",
                  f"Số: {other.code}/PTC", "Thanh Hóa, ngày 03 tháng 03 năm 2026", APPLICANT["full_name"],
                  f"Số điện thoại: {APPLICANT['phone']}", "Hồ sơ không thuộc thẩm quyền giải quyết",
                  "NGƯỜI NỘP HỒ SƠ", "NGƯỜI TIẾP NHẬN HỒ SƠ", "Lê Thị Hoa")


def test_form_04_is_issued_in_the_name_of_the_late_steps_agency(uow, policy):
    dossier = received(uow, policy)
    dossiers.delay_predicted(uow, {"dossier_code": dossier.code, "agency_code": COMMUNE,
                                   "current_agency_code": LAND_OFFICE, "due_at": dossier.due_at,
                                   "proposed_due_at": datetime(2026, 3, 20, 9, tzinfo=timezone.utc),
                                   "detected_at": datetime(2026, 3, 12, 2, tzinfo=timezone.utc)})
    draft = render(policy, "04", dossier)
    assert_blocks(draft, "DỰ THẢO", "VĂN PHÒNG ĐĂNG KÝ ĐẤT ĐAI", "Thanh Hóa, ngày … tháng … năm …")
    dossiers.reschedule(uow, dossier.code, datetime(2026, 3, 20, 9, tzinfo=timezone.utc),
                        "Chờ kết quả đo đạc thửa đất", RECEPTIONIST, datetime(2026, 3, 13, 2, tzinfo=timezone.utc))
    apology = render(policy, "04", dossier)
    assert_blocks(apology, "VĂN BẢN XIN LỖI VÀ ĐỀ NGHỊ GIA HẠN THỜI GIAN GIẢI QUYẾT", "VĂN PHÒNG ĐĂNG KÝ ĐẤT ĐAI",
                  f"Số: {dossier.code}/VBXL", "Thanh Hóa, ngày 13 tháng 03 năm 2026",
                  f"Kính gửi: {APPLICANT['full_name']}", f"Địa chỉ: {APPLICANT['address']}",
                  "Văn phòng Đăng ký đất đai xin lỗi Ông/Bà", "Chờ kết quả đo đạc thửa đất",
                  "Thời gian hẹn trả kết quả: 09 giờ 00 phút, ngày 16/03/2026",  # the old appointment
                  "16 giờ 00 phút, ngày 20/03/2026", "ĐẠI DIỆN VĂN PHÒNG ĐĂNG KÝ ĐẤT ĐAI", forms.UNSIGNED)
    assert "DỰ THẢO" not in apology and "Lê Thị Hoa" not in apology  # the counter's officer signs not for the office


def test_form_04_without_a_late_step_is_the_receiving_agencys(uow, policy):
    dossier = received(uow, policy)
    dossiers.reschedule(uow, dossier.code, datetime(2026, 3, 20, 9, tzinfo=timezone.utc), "Lỗi tại quầy",
                        RECEPTIONIST, datetime(2026, 3, 13, 2, tzinfo=timezone.utc))
    apology = render(policy, "04", dossier)
    assert "ĐẠI DIỆN ỦY BAN NHÂN DÂN PHƯỜNG HẠC THÀNH" in apology  # signed by the counter's officer for it
    assert apology.endswith("Nguyễn Văn An Lê Thị Hoa Công chức Bộ phận Một cửa") and forms.UNSIGNED not in apology


def test_form_06_control_sheet_signed_by_giver_and_receiver(uow, policy):
    dossier = received(uow, policy)
    asked = []
    sheet = render(policy, "06", dossier, lambda code: asked.append(code) or hand_overs(code))
    assert asked == [dossier.code]
    assert_blocks(sheet, "PHIẾU KIỂM SOÁT QUÁ TRÌNH GIẢI QUYẾT HỒ SƠ", f"Số: {dossier.code}/PKS",
                  APPLICANT["full_name"], "Trước hạn", "Đang xử lý", "10 giờ 00 phút, ngày 04/03/2026")
    # the counter hands over the first step; the land office, whose step had just finished, the second
    first, second = sheet[sheet.index("1. Thẩm định hồ sơ"):].split("2. Xác định nghĩa vụ tài chính")
    assert "Bên giao: Ủy ban nhân dân phường Hạc Thành" in first and "Bên nhận: Văn phòng Đăng ký đất đai" in first
    assert "Bên giao: Văn phòng Đăng ký đất đai" in second and "Bên nhận: Thuế tỉnh Thanh Hóa" in second
    for block in (first, second):
        assert "BÊN GIAO" in block and "BÊN NHẬN" in block
    assert "Lê Thị Hoa" in first and "Trần Văn Bình" in first  # the receptionist gives, the specialist receives
    assert "Trần Văn Bình" in second and forms.UNSIGNED in second  # the open step's receiver signs by hand


def test_an_account_without_a_full_name_leaves_the_name_to_write_by_hand(uow, policy):
    dossier = submit(uow, policy)
    stranger = RECEPTIONIST.__class__(f"clerk@{COMMUNE}", COMMUNE, ("receptionist",))
    dossiers.receive(uow, policy, dossier.code, stranger, MONDAY_9AM)
    text = receipt(uow, policy, dossier)
    assert forms.UNSIGNED in text and "clerk@" not in text


def test_a_form_exists_only_once_its_decision_was_made(uow, policy):
    dossier = submit(uow, policy)
    for form in ("01", "02", "03", "04", "05", "06"):
        with pytest.raises(Conflict):
            forms.render(form, dossier, policy.catalog, policy.calendar.tz, no_history, officers, no_entry)
    for form in ("07", "09"):  # 07 is an agency's book, not a dossier's
        with pytest.raises(NotFound) as error:
            forms.render(form, dossier, policy.catalog, policy.calendar.tz, no_history, officers, no_entry)
        assert error.value.field == "form"


def log_book(uow, policy, first, last, caller=RECEPTIONIST):
    entries = dossiers.log_book(uow, COMMUNE, first, last, caller, policy.tree, policy.calendar.tz)
    return forms.log_rows(entries, policy.catalog, policy.calendar.tz)


def test_form_07_log_book_of_an_agency_for_a_period_as_pdf_and_xlsx(uow, policy):
    before = received(uow, policy, datetime(2026, 2, 27, 2, tzinfo=timezone.utc))  # Friday, earlier period
    returned = received(uow, policy)
    refused = submit(uow, policy)
    dossiers.refuse(uow, refused.code, "Sai thẩm quyền", RECEPTIONIST, MONDAY_9AM)  # never received: not in it
    waiting = received(uow, policy, datetime(2026, 3, 3, 2, tzinfo=timezone.utc))
    dossiers.task_assigned(uow, {"dossier_code": returned.code, "agency_code": LAND_OFFICE, "step": "Thẩm định",
                                 "assigned_at": datetime(2026, 3, 4, 2, tzinfo=timezone.utc)})
    rows = log_book(uow, policy, date(2026, 3, 1), date(2026, 3, 31))
    assert [row[:2] for row in rows] == [["2", returned.code], ["3", waiting.code]]  # numbered within the year
    assert rows[0][2:9] == [returned.procedure_name, "01", APPLICANT["full_name"],
                            f"{APPLICANT['address']}, {APPLICANT['phone']}", "Ủy ban nhân dân phường Hạc Thành",
                            "02/03/2026", "16/03/2026"]
    assert rows[0][9] == "04/03/2026" and rows[1][9] == ""  # sent to the competent agency, or not yet
    assert before.code not in {row[1] for row in rows}
    with pytest.raises(Forbidden):
        log_book(uow, policy, date(2026, 3, 1), date(2026, 3, 31), XA_RECEPTIONIST)

    catalog, first, last, period = policy.catalog, date(2026, 3, 1), date(2026, 3, 31), "Kỳ: 01/03/2026 - 31/03/2026"
    pdf = text_of(forms.log_book_pdf(catalog, COMMUNE, first, last, rows, policy.calendar.tz, MONDAY_9AM))
    assert_blocks(pdf, "SỔ THEO DÕI HỒ SƠ", "ỦY BAN NHÂN DÂN PHƯỜNG HẠC THÀNH", "Quyển số: 2026", period, "Mã hồ sơ",
                  "Hẹn trả kết quả", returned.code, waiting.code, "16/03/2026", "NGƯỜI LẬP SỔ")
    sheet = load_workbook(io.BytesIO(forms.log_book_xlsx(catalog, COMMUNE, first, last, rows))).active
    values = [[cell for cell in row if cell is not None] for row in sheet.iter_rows(values_only=True)]
    assert values[0] == ["ỦY BAN NHÂN DÂN PHƯỜNG HẠC THÀNH", NATIONAL_HEADER[0]]
    assert values[1] == ["Quyển số: 2026", NATIONAL_HEADER[1]]
    assert values[2] == ["SỔ THEO DÕI HỒ SƠ"] and values[3] == [period]
    assert values[4] == [header for header, _ in forms.LOG_COLUMNS]
    assert [row[:2] for row in values[5:]] == [["2", returned.code], ["3", waiting.code]]


def test_the_migration_gives_received_dossiers_the_appointment_form_01_gave(empty_database):
    """Before `appointed_at`, a dossier's first appointment is the first apology's old date, else its due date."""
    url = empty_database("intake")
    command.upgrade(migrate.alembic_config("intake", url), "e5a7c9b1d3f2")
    engine = make_engine(url)
    first, moved, due = (datetime(2026, 3, day, 2, tzinfo=timezone.utc) for day in (16, 20, 17))
    apology = [{"rescheduled_at": "2026-03-13T02:00:00+00:00", "rescheduled_by": "r", "agency_code": COMMUNE,
                "old_due_at": first.isoformat(), "new_due_at": moved.isoformat(), "reason": "x", "late_apology": False}]
    with engine.begin() as connection:
        for code, received_at, due_at, reschedules in (("APOLOGISED", MONDAY_9AM, moved, apology),
                                                       ("RECEIVED", MONDAY_9AM, due, []), ("SUBMITTED", None, None, [])):
            connection.execute(dossier_table.insert().values(
                code=code, version=0, procedure_code="1.012786", procedure_version=1, procedure_name="p",
                field_code="f", agency_code=COMMUNE, channel="online", status="received", status_code=2,
                applicant_name="A", applicant_id_number="x", applicant_phone="y", applicant_type="individual",
                form={}, submitted_at=MONDAY_9AM, received_at=received_at, due_at=due_at))
            connection.execute(text("UPDATE dossiers SET reschedules = :reschedules WHERE code = :code"),  # as stored
                               {"code": code, "reschedules": json.dumps(reschedules)})
    migrate.upgrade("intake", url)
    with engine.connect() as connection:
        as_utc = dict(connection.execute(select(dossier_table.c.code, dossier_table.c.appointed_at)).all())
    engine.dispose()
    assert as_utc == {"APOLOGISED": first, "RECEIVED": due, "SUBMITTED": None}
