"""The console's catalogue import page: the province's admin uploads the national database's procedure
list and sees what importing it would change and which rows it cannot read, audited; nobody else may."""
import re

import requests

from tests.pages.client import AGENCY, Officer, csrf_of

# Against the demo catalogue (deploy/catalog, H56): one procedure new, one changed, one row unreadable.
SHEET = """DANH MỤC THỦ TỤC HÀNH CHÍNH
Mã thủ tục,Tên thủ tục,Lĩnh vực,Cấp thực hiện,Cơ quan thực hiện,Thời hạn giải quyết,"Phí, lệ phí",Thành phần hồ sơ,Mức độ
1.004873,Thủ tục cấp Giấy xác nhận tình trạng hôn nhân,Hộ tịch,Cấp Xã,000.20.02.H56,05 ngày làm việc,Không,"Tờ khai cấp Giấy xác nhận tình trạng hôn nhân
Bản án hoặc quyết định ly hôn đã có hiệu lực (nếu đã ly hôn)",Toàn trình
1.009999,Thủ tục đăng ký giám hộ,Hộ tịch,Cấp Xã,000.20.01.H56,03 ngày làm việc,Miễn lệ phí,Tờ khai đăng ký giám hộ,Toàn trình
1.009998,Thủ tục thử,Hộ tịch,Cấp Xã,000.20.01.H56,Theo quy định,Không,Tờ khai,Toàn trình
"""


def preview(officer: Officer, files: dict, effective_from: str = "2031-01-01") -> requests.Response:
    token = csrf_of(officer.get("/can-bo/danh-muc").text)
    return officer.http.post(f"{officer.base}/can-bo/danh-muc", data={"csrf": token, "effective_from": effective_from},
                             files=files, timeout=60, allow_redirects=False)


def test_the_admin_previews_an_import_and_it_is_audited(base_url):
    admin = Officer(base_url, "admin")
    assert 'href="/can-bo/danh-muc"' in admin.get("/can-bo").text
    shown = preview(admin, {"procedures": ("thu-tuc.csv", SHEET.encode(), "text/csv")})
    assert shown.status_code == 200, shown.text
    text = " ".join(re.sub(r"<[^>]+>", " ", shown.text).split())
    assert "1 ô chưa đọc được" in text and "thu-tuc.csv 5 time Theo quy định" in text
    assert "Thủ tục thêm mới: 1" in text and "1.009999 Thủ tục đăng ký giám hộ" in text
    assert "Thủ tục thay đổi: 1" in text and "processing_time" in text
    assert "Thủ tục bãi bỏ:" in text  # the demo's other procedures, not in this list
    # nothing was written: the catalogue in force still offers the version it had
    assert requests.get(f"{base_url}/api/v1/procedures/1.009999", timeout=30).status_code == 404
    token = requests.post(f"{base_url}/api/v1/auth/token", json={"username": "admin", "password": "demo"},
                          timeout=30).json()["access_token"]
    entries = requests.get(f"{base_url}/api/v1/audit", params={"action": "catalog.import_preview"}, timeout=30,
                           headers={"Authorization": f"Bearer {token}"}).json()["items"]
    assert entries and entries[0]["username"] == "admin" and entries[0]["outcome"] == "allowed"


def test_an_upload_that_is_not_a_spreadsheet_is_refused_by_field(base_url):
    admin = Officer(base_url, "admin")
    nothing = preview(admin, {})
    assert nothing.status_code == 400 and "Chọn danh sách thủ tục, danh sách cơ quan hoặc cả hai." in nothing.text
    wrong = preview(admin, {"procedures": ("thu-tuc.pdf", b"%PDF-1.4", "application/pdf")})
    assert wrong.status_code == 400 and "Tệp phải là bảng tính .xlsx hoặc .csv." in wrong.text
    broken = preview(admin, {"procedures": ("thu-tuc.xlsx", b"not a zip", "application/octet-stream")})
    assert broken.status_code == 400 and "Không đọc được tệp .xlsx" in broken.text
    no_heading = preview(admin, {"procedures": ("thu-tuc.csv", b"a,b\n1,2\n", "text/csv")})
    assert no_heading.status_code == 400 and "Không thấy dòng tiêu đề" in no_heading.text


def test_only_the_admin_may(base_url):
    counter = Officer(base_url, f"receptionist@{AGENCY}")
    assert 'href="/can-bo/danh-muc"' not in counter.get("/can-bo").text
    assert counter.get("/can-bo/danh-muc").status_code == 403
