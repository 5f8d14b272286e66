"""The pages' Vietnamese words: statuses, channels, steps' actions, error messages per field and status."""
from __future__ import annotations

import math

from motcua.contracts.rpc import MAX_DOCUMENT_BYTES

MAX_DOCUMENT_MB = MAX_DOCUMENT_BYTES // (1024 * 1024)

STATUSES = {
    "submitted": "Mới đăng ký, chờ tiếp nhận", "received": "Đã tiếp nhận", "refused": "Không được tiếp nhận",
    "processing": "Đang xử lý", "supplement_requested": "Yêu cầu bổ sung hồ sơ",
    "awaiting_payment": "Chờ thực hiện nghĩa vụ tài chính", "withdrawn": "Đã rút hồ sơ",
    "stopped": "Dừng xử lý", "result_ready": "Đã có kết quả, chờ trả", "returned": "Đã trả kết quả",
}
CHANNELS = {"online": "Trực tuyến", "counter": "Trực tiếp tại quầy", "postal": "Bưu chính công ích"}
TIMELINESS = {"early": "Trước hạn", "on_time": "Đúng hạn", "late": "Trễ hạn"}
ONLINE_LEVELS = {"full": "Toàn trình", "partial": "Một phần"}
ROLES = {"receptionist": "Cán bộ tiếp nhận", "specialist": "Chuyên viên", "leader": "Lãnh đạo",
         "agency_admin": "Quản trị cơ quan", "admin": "Quản trị hệ thống", "system": "Hệ thống của cơ quan"}
ACTIONS = {
    "submit": "Nộp hồ sơ", "receive": "Tiếp nhận", "refuse": "Từ chối tiếp nhận",
    "request_supplement": "Yêu cầu bổ sung", "supplement": "Bổ sung hồ sơ", "withdraw": "Rút hồ sơ",
    "start_processing": "Bắt đầu xử lý", "result_ready": "Có kết quả", "return": "Trả kết quả",
    "reschedule": "Hẹn lại ngày trả", "rate": "Đánh giá hài lòng", "refund": "Hoàn phí",
    "pay_fee": "Nộp lệ phí trực tuyến", "require_payment": "Yêu cầu nộp nghĩa vụ tài chính",
    "confirm_payment": "Xác nhận đã nộp nghĩa vụ tài chính", "stop": "Dừng xử lý", "postal": "Bưu chính",
    "step": "Bước xử lý (hệ thống cũ)",  # a step of an imported dossier (motcua history import)
}
RETURN_METHODS = {"counter": "Tại quầy", "postal": "Qua bưu chính", "online": "Trực tuyến"}
RATINGS = {1: "Rất không hài lòng", 2: "Không hài lòng", 3: "Bình thường", 4: "Hài lòng", 5: "Rất hài lòng"}

# The message a form shows beside a field the services refused (their messages are English).
FIELD_ERRORS = {
    "applicant.full_name": "Họ và tên cần từ 2 đến 200 ký tự.",
    "applicant.id_number": "Số định danh cá nhân gồm 12 chữ số (hoặc CMND 9 chữ số).",
    "applicant.phone": "Số điện thoại gồm số 0 (hoặc +84) và 9 chữ số.",
    "applicant.email": "Địa chỉ thư điện tử không hợp lệ.",
    "applicant.address": "Địa chỉ tối đa 500 ký tự.",
    "id_number": "Số định danh cá nhân không khớp với hồ sơ, hoặc không đúng 12 chữ số (CMND: 9 chữ số).",
    "key": "Nhập đúng 4 chữ số cuối của số điện thoại đã khai khi nộp hồ sơ.",
    "code": "Nhập mã hồ sơ ghi trên giấy tiếp nhận.",
    "reason": "Nhập lý do (tối đa 2000 ký tự).",
    "items": "Liệt kê các giấy tờ cần bổ sung, mỗi dòng một giấy tờ.",
    "rating": "Chọn mức độ hài lòng từ 1 đến 5.",
    "comment": "Góp ý tối đa 2000 ký tự.",
    "status": "Trạng thái hồ sơ không cho phép thao tác này.",
    "username": "Sai tên đăng nhập hoặc mật khẩu.",
    "password": "Sai tên đăng nhập hoặc mật khẩu.",
    "phone": "Số điện thoại gồm số 0 (hoặc +84) và 9 chữ số.",
    "name": "Tên tối đa 200 ký tự.",
    "from": "Ngày không hợp lệ (năm-tháng-ngày; kỳ tối đa 3 năm).",
    "to": "Ngày không hợp lệ: đến ngày không được trước từ ngày, kỳ tối đa 3 năm.",
    "date_from": "Ngày không hợp lệ (từ ngày không được sau đến ngày).",
    "date_to": "Ngày không hợp lệ.",
    "note": "Ghi rõ ý kiến hoặc lý do (bắt buộc khi trả lại, từ chối, dừng xử lý; tối đa 2000 ký tự).",
    "amount_vnd": "Số tiền là số nguyên (đồng).",
    "agency_code": "Chọn cơ quan được chuyển đến theo quy trình.",
    "receiving_agency_code": "Chọn một xã, phường trong tỉnh tiếp nhận thủ tục này.",
    "receipt_number": "Nhập số biên lai (tối đa 64 ký tự).",
    "outcome": "Thao tác không còn phù hợp với công việc này.",
    "csrf": "Biểu mẫu đã hết hạn. Vui lòng tải lại trang và thử lại.",
    "documents": f"Tệp không hợp lệ: chỉ nhận PDF, JPEG hoặc PNG, tối đa {MAX_DOCUMENT_MB} MB mỗi tệp.",
}
# Messages that do not depend on the field (a conflict says what happened, not what to type).
MESSAGE_ERRORS = {
    "a spreadsheet is .xlsx or .csv": "Tệp phải là bảng tính .xlsx hoặc .csv.",
    "not a readable .xlsx": "Không đọc được tệp .xlsx (tệp hỏng hoặc không phải bảng tính).",
    "not base64, or a .csv not in UTF-8": "Tệp .csv phải lưu bằng mã UTF-8.",
    "no heading row": "Không thấy dòng tiêu đề (Mã thủ tục, Tên thủ tục, …) trong 15 dòng đầu của bảng tính.",
    "give the procedure list, the agency list or both": "Chọn danh sách thủ tục, danh sách cơ quan hoặc cả hai.",
    "holds no catalogue": "Chưa có danh mục: lần nhập đầu tiên dùng lệnh motcua catalog import (docs/adopting.md).",
    "wrong username or password": "Sai tên đăng nhập hoặc mật khẩu.",
    "the postal service needs the applicant's address": "Ghi địa chỉ để bưu chính đến nhận hồ sơ hoặc giao kết quả.",
    "too many failed logins": "Đăng nhập sai quá nhiều lần.",
    "too many wrong tries for this dossier": "Nhập sai thông tin của hồ sơ này quá nhiều lần; hồ sơ tạm "
                                             "khóa ở trình duyệt này (trình duyệt đã nộp hoặc đã tra cứu "
                                             "đúng hồ sơ vẫn tra cứu được).",
    "already rated": "Hồ sơ này đã được đánh giá; mỗi hồ sơ chỉ đánh giá một lần.",
    "rated once its result was returned": "Chỉ đánh giá được khi hồ sơ đã trả kết quả.",
    "only PDF, JPEG and PNG": "Chỉ nhận tệp PDF, JPEG hoặc PNG.",
    "empty file": "Tệp rỗng.",
    "larger than": f"Tệp lớn hơn {MAX_DOCUMENT_MB} MB.",
    "not a document of this procedure": "Giấy tờ này không thuộc thủ tục.",
    "no dossier with this code and key": "Không tìm thấy hồ sơ với mã và 4 số cuối điện thoại này.",
    "assigned to": "Công việc đã được giao cho cán bộ khác.",
}
DEFAULT_FIELD_ERROR = "Giá trị không hợp lệ."

# The error page, per HTTP status.
STATUS_PAGES = {
    400: ("Yêu cầu không hợp lệ", "Thông tin gửi lên chưa đúng. Vui lòng quay lại và kiểm tra."),
    401: ("Cần đăng nhập", "Vui lòng đăng nhập để tiếp tục."),
    403: ("Không có quyền", "Tài khoản của bạn không được thực hiện thao tác này, hoặc phiên làm việc đã thay đổi."),
    404: ("Không tìm thấy", "Trang hoặc hồ sơ bạn tìm không tồn tại."),
    405: ("Không hỗ trợ", "Thao tác này không dùng được ở địa chỉ này."),
    409: ("Không thực hiện được", "Trạng thái hồ sơ không cho phép thao tác này (có thể người khác vừa xử lý)."),
    413: ("Tệp quá lớn", "Tổng dung lượng tệp gửi lên vượt quá giới hạn 25 MB."),
    415: ("Không hỗ trợ", "Định dạng gửi lên không được hỗ trợ."),
    500: ("Lỗi hệ thống", "Đã có lỗi xảy ra. Vui lòng thử lại sau ít phút."),
    503: ("Hệ thống đang bận", "Một dịch vụ chưa trả lời. Vui lòng thử lại sau ít phút."),
}


def megabytes(size: int) -> str:
    """A size as the form states its limit: "6,2 MB" (Vietnamese decimal comma, rounded up: a file just
    over the limit never reads as the limit), whole MB without one."""
    tenths = math.ceil(size * 10 / (1024 * 1024))
    return f"{tenths // 10} MB" if tenths % 10 == 0 else f"{tenths // 10},{tenths % 10} MB"


def decimal(value: float | None, places: int = 2) -> str:
    """A figure as Vietnamese write it: "5,33", "1.250,5" ("—" for none)."""
    if value is None:
        return "—"
    text = f"{value:,.{places}f}"
    return text.replace(",", " ").replace(".", ",").replace(" ", ".")


def file_size(size: int) -> str:
    """A file's size in Vietnamese figures: "820 byte", "12,5 KB" under a megabyte, else as `megabytes`."""
    if size < 1024:
        return f"{size} byte"
    if size >= 1024 * 1024:
        return megabytes(size)
    return f"{size / 1024:.1f} KB".replace(".", ",")


def waiting(seconds: int) -> str:
    """How long to wait, as the page says it (from the throttle's own Retry-After: the truth, rounded up)."""
    if seconds < 60:
        return f"Vui lòng thử lại sau {seconds} giây."
    return f"Vui lòng thử lại sau {math.ceil(seconds / 60)} phút."


def field_error(field: str | None, message: str) -> str:
    """The Vietnamese message for a refused field (documents.0.content → the documents' message)."""
    for english, vietnamese in MESSAGE_ERRORS.items():
        if english in message:
            return vietnamese
    if field and field.startswith("documents"):
        return FIELD_ERRORS["documents"]
    return FIELD_ERRORS.get(field or "", DEFAULT_FIELD_ERROR)


def missing_document(name: str) -> str:
    """A mandatory document an online submission lacks (thành phần hồ sơ bắt buộc)."""
    return f"Chưa đính kèm «{name}» (giấy tờ bắt buộc)."


def history_note(note: str | None) -> str:
    """intake's machine notes ("channel online", "method counter", "rating 5") in words; others as written."""
    kind, _, value = (note or "").partition(" ")
    words = {"channel": ("Kênh", CHANNELS), "method": ("Hình thức trả", RETURN_METHODS), "rating": ("Mức", {})}
    if kind in words and value and " " not in value:
        label, names = words[kind]
        return f"{label}: {names.get(value, value)}"
    return note or ""


def fee(procedure: dict) -> str:
    """A procedure's fee as the portal says it: 8000 a copy → "8.000 đồng/bản"; 0 → "Miễn phí"; a fee by
    tiers of pages → "2.000 đồng/trang (trang 1–2), 1.000 đồng/trang (từ trang 3), tối đa 200.000 đồng/bản"."""
    if not procedure["fee"]:
        return "Miễn phí"
    tiers = procedure.get("fee_tiers") or []
    if not tiers:
        per = {"copy": "/bản", "page": "/trang"}.get(procedure["fee_unit"] or "", "")
        return f"{vnd(procedure['fee'])}{per}"
    parts, first = [], 1
    for tier in tiers:
        pages = f"từ trang {first}" if tier["pages"] is None else f"trang {first}–{first + tier['pages'] - 1}"
        parts.append(f"{vnd(tier['per_page'])}/trang ({pages})")
        first += tier["pages"] or 0
    cap = [f"tối đa {vnd(procedure['fee_cap'])}/bản"] if procedure.get("fee_cap") else []
    return ", ".join(parts + cap)


def vnd(amount: int) -> str:
    return f"{int(amount):,} đồng".replace(",", ".")


def processing_time(time: dict) -> str:
    value, unit = time["value"], time["unit"]
    if value == 0:
        return "Trong ngày"
    shown = f"{value:g}" if isinstance(value, float) else str(value)
    return f"{shown} ngày làm việc" if unit == "working_days" else f"{shown} ngày"
