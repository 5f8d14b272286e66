"""The citizen portal over HTTP: Vietnamese pages, no account; bad input is the form again (4xx, never 500)."""
from __future__ import annotations

import re

import pytest
import requests

from tests.documents import form_files, required_documents
from tests.pages.client import (
    AGENCY,
    CODE,
    APPLICANT,
    FILES,
    PDF,
    PROCEDURE,
    Officer,
    bring_to_returned,
    submit,
    submitted_code,
    until,
)

pytestmark = pytest.mark.e2e  # the platform in its own process, over HTTP


def get(base: str, path: str, **params) -> requests.Response:
    return requests.get(f"{base}{path}", params=params, timeout=30)


def test_the_home_page_explains_motcua_in_a_minute(base_url):
    response = get(base_url, "/")
    assert response.status_code == 200 and response.headers["Content-Type"].startswith("text/html")
    assert "Motcua trong một phút" in response.text and 'lang="vi"' in response.text
    assert 'name="viewport"' in response.text  # usable on a phone
    assert "default-src 'none'" in response.headers["Content-Security-Policy"]
    assert get(base_url, "/static/motcua.css").headers["Content-Type"].startswith("text/css")


def test_a_wrong_address_is_a_page_for_people_and_json_for_the_api(base_url):
    page = get(base_url, "/trang-khong-co")
    assert page.status_code == 404 and page.headers["Content-Type"].startswith("text/html")
    assert "Không tìm thấy" in page.text
    wrong_method = requests.delete(f"{base_url}/tra-cuu", timeout=30)
    assert wrong_method.status_code == 405 and "Không hỗ trợ" in wrong_method.text
    api = get(base_url, "/api/v1/trang-khong-co")
    assert api.status_code == 404 and api.json()["error"]["code"] == "not_found"


def test_procedures_are_found_without_diacritics_and_read_in_full(base_url):
    found = get(base_url, "/thu-tuc", q="tinh trang hon nhan")
    assert f'href="/thu-tuc/{PROCEDURE}"' in found.text
    assert "Thủ tục cấp Giấy xác nhận tình trạng hôn nhân" in found.text
    detail = get(base_url, f"/thu-tuc/{PROCEDURE}")
    for text in ("Tờ khai cấp Giấy xác nhận tình trạng hôn nhân", "3 ngày làm việc", "Miễn phí",
                 "Ủy ban nhân dân xã Quảng Phú", "Quy trình xử lý", "Nộp hồ sơ trực tuyến"):
        assert text in detail.text
    missing = get(base_url, "/thu-tuc/9.999999")
    assert missing.status_code == 404 and "Không tìm thấy" in missing.text
    assert missing.headers["Content-Type"].startswith("text/html")


def test_a_refused_field_is_the_form_again_with_the_reason_in_vietnamese(base_url):
    cases = [({**APPLICANT, "phone": "12345"}, None, 400, "Số điện thoại gồm số 0"),
             ({**APPLICANT, "id_number": "12"}, None, 400, "Số định danh cá nhân"),
             ({**APPLICANT, "full_name": ""}, None, 400, "Họ và tên cần từ 2 đến 200 ký tự"),
             (APPLICANT, {"to_khai": ("to-khai.txt", b"plain text", "text/plain")}, 422,
              "Tệp «to-khai.txt» không phải PDF, JPEG hoặc PNG")]
    for applicant, files, status, message in cases:
        response = submit(base_url, applicant, files)
        assert response.status_code == status, (message, response.status_code)
        assert message in response.text and '<form method="post"' in response.text


def test_a_citizen_submits_tracks_supplements_and_rates(base_url):
    code = submitted_code(base_url)
    tracked = until(lambda: get(base_url, "/tra-cuu", code=code, key="4321"), "Mới đăng ký, chờ tiếp nhận")
    assert "Trần T. B." in tracked.text  # the masked name only
    assert APPLICANT["full_name"] not in tracked.text
    wrong = get(base_url, "/tra-cuu", code=code, key="0000")
    assert wrong.status_code == 404 and "Không tìm thấy hồ sơ với mã và 4 số cuối điện thoại này" in wrong.text

    counter = Officer(base_url, f"receptionist@{AGENCY}")
    asked = counter.post(f"/can-bo/ho-so/{code}/yeu-cau-bo-sung", {"items": "Bản án ly hôn\n", "note": ""})
    assert asked.status_code == 303
    page = until(lambda: get(base_url, "/tra-cuu", code=code, key="4321"), "Bổ sung hồ sơ")
    assert f"/ho-so/{code}/bo-sung?key=4321" in page.text
    form = get(base_url, f"/ho-so/{code}/bo-sung", key="4321")
    assert form.status_code == 200 and 'name="ban_an_ly_hon"' in form.text
    assert "Giấy tờ cần bổ sung" in form.text and "<li>Bản án ly hôn</li>" in form.text  # what was asked
    files = {"ban_an_ly_hon": ("ban-an.pdf", PDF, "application/pdf")}
    wrong_id = requests.post(f"{base_url}/ho-so/{code}/bo-sung", data={"key": "4321", "id_number": "012345678901"},
                             files=files, timeout=30)
    assert wrong_id.status_code == 403 and "không khớp với hồ sơ" in wrong_id.text
    supplied = requests.post(f"{base_url}/ho-so/{code}/bo-sung", files=files, timeout=30,
                             data={"key": "4321", "id_number": APPLICANT["id_number"]})
    assert supplied.status_code == 200 and "Đã bổ sung hồ sơ" in supplied.text

    early = requests.post(f"{base_url}/ho-so/{code}/danh-gia", timeout=30,
                          data={"key": "4321", "id_number": APPLICANT["id_number"], "rating": "5"})
    assert early.status_code == 409 and "Chỉ đánh giá được khi hồ sơ đã trả kết quả" in early.text
    bring_to_returned(base_url, counter, code)
    until(lambda: get(base_url, "/tra-cuu", code=code, key="4321"), "Đánh giá mức độ hài lòng")
    no_rating = requests.post(f"{base_url}/ho-so/{code}/danh-gia", timeout=30,
                              data={"key": "4321", "id_number": APPLICANT["id_number"]})
    assert no_rating.status_code == 400 and "Chọn mức độ hài lòng từ 1 đến 5" in no_rating.text
    rating = {"key": "4321", "id_number": APPLICANT["id_number"], "rating": "4", "comment": "Nhanh gọn"}
    rated = requests.post(f"{base_url}/ho-so/{code}/danh-gia", data=rating, timeout=30)
    assert rated.status_code == 200 and "Cảm ơn bạn đã đánh giá" in rated.text
    again = requests.post(f"{base_url}/ho-so/{code}/danh-gia", data=rating, timeout=30)
    assert again.status_code == 409 and "mỗi hồ sơ chỉ đánh giá một lần" in again.text
    assert "4/5 — Hài lòng" in counter.get(f"/can-bo/ho-so/{code}").text


def test_guessing_a_tracking_key_is_answered_429_in_vietnamese(base_url):
    submit(base_url)
    code = submitted_code(base_url)
    until(lambda: get(base_url, "/tra-cuu", code=code, key="4321"), "Mới đăng ký, chờ tiếp nhận")
    for guess in range(5):  # the default limit per dossier
        assert get(base_url, "/tra-cuu", code=code, key=f"{guess:04d}").status_code == 404
    throttled = get(base_url, "/tra-cuu", code=code, key="4321")  # even the right key, for a while
    assert throttled.status_code == 429 and int(throttled.headers["Retry-After"]) > 0
    assert "Nhập sai thông tin của hồ sơ này quá nhiều lần" in throttled.text
    minutes = -(-int(throttled.headers["Retry-After"]) // 60)
    assert f"Vui lòng thử lại sau {minutes} phút." in throttled.text  # what the header says, in words


def test_public_statistics_per_agency(base_url):
    response = get(base_url, "/thong-ke")
    assert response.status_code == 200 and "Kết quả giải quyết hồ sơ theo cơ quan" in response.text
    assert "Ủy ban nhân dân xã Quảng Phú" in response.text
    bad = get(base_url, "/thong-ke", **{"from": "2026-13-01"})
    assert bad.status_code == 400 and "Vui lòng kiểm tra lại" in bad.text


def test_a_double_submit_of_the_form_makes_one_dossier(base_url):
    """The form carries the key it was shown with: a double click or a browser's retry is one dossier."""
    form = get(base_url, f"/thu-tuc/{PROCEDURE}/nop-ho-so")
    key = form.text.split('name="idempotency_key" value="', 1)[1].split('"', 1)[0]
    fields = {"idempotency_key": key, **{f"applicant.{name}": value for name, value in APPLICANT.items()}}
    receipts = [requests.post(f"{base_url}/thu-tuc/{PROCEDURE}/nop-ho-so", data=fields, timeout=30, files=FILES)
                for _ in range(2)]
    assert [r.status_code for r in receipts] == [200, 200]  # each redirected to the receipt
    codes = {CODE.search(r.text).group(1) for r in receipts}
    assert len(codes) == 1
    assert get(base_url, f"/thu-tuc/{PROCEDURE}/nop-ho-so").text.count(key) == 0  # a new form, a new key


def test_the_applicant_chooses_the_commune_that_receives_a_procedure_received_anywhere(base_url):
    """Decree 118/2025/NĐ-CP: 2.000635 is received at any commune of the province; the form offers them
    by the area's name (default: the commune of the applicant's address); 1.004873 offers no choice."""
    form = get(base_url, "/thu-tuc/2.000635/nop-ho-so")
    assert 'name="receiving_agency_code"' in form.text
    assert form.text.index("Hạc Thành (phường)") < form.text.index("Quảng Phú (xã)")  # by name, to type
    assert '<option value="">Xã, phường nơi tôi cư trú (theo địa chỉ)</option>' in form.text
    assert 'name="receiving_agency_code"' not in get(base_url, f"/thu-tuc/{PROCEDURE}/nop-ho-so").text

    fields = {f"applicant.{name}": value for name, value in APPLICANT.items()}
    files = form_files(required_documents("2.000635"))
    chosen = requests.post(f"{base_url}/thu-tuc/2.000635/nop-ho-so", timeout=30, files=files,
                           data={**fields, "applicant.address": "Thôn 2, xã Quảng Phú",
                                 "receiving_agency_code": "000.20.01.H56"})
    assert chosen.status_code == 200 and CODE.search(chosen.text).group(1).startswith("000.20.01.H56-")
    by_address = requests.post(f"{base_url}/thu-tuc/2.000635/nop-ho-so", timeout=30, files=files,
                               data={**fields, "applicant.address": "Thôn 2, xã Quảng Phú", "receiving_agency_code": ""})
    assert by_address.status_code == 200 and CODE.search(by_address.text).group(1).startswith("000.20.02.H56-")
    wrong = requests.post(f"{base_url}/thu-tuc/2.000635/nop-ho-so", timeout=30, files=files,
                          data={**fields, "receiving_agency_code": "000.12.01.H56"})
    assert wrong.status_code == 400 and "Chọn một xã, phường trong tỉnh tiếp nhận thủ tục này" in wrong.text


def test_back_to_the_form_after_submitting_and_again_is_the_same_dossier(base_url):
    """POST/redirect/GET; the form opened again by Back carries the submission's key: one dossier."""
    browser = requests.Session()
    form = browser.get(f"{base_url}/thu-tuc/{PROCEDURE}/nop-ho-so", timeout=30)
    key = form.text.split('name="idempotency_key" value="', 1)[1].split('"', 1)[0]
    fields = {"idempotency_key": key, **{f"applicant.{name}": value for name, value in APPLICANT.items()}}
    first = browser.post(f"{base_url}/thu-tuc/{PROCEDURE}/nop-ho-so", data=fields, timeout=30, files=FILES)
    assert first.history[0].status_code == 303 and first.url.endswith("/bien-nhan")
    code = CODE.search(first.text).group(1)
    assert browser.get(first.url, timeout=30).status_code == 200  # reloading the receipt posts nothing
    back = browser.get(f"{base_url}/thu-tuc/{PROCEDURE}/nop-ho-so", timeout=30)
    assert f"Bạn đã nộp hồ sơ <strong class=\"code\">{code}</strong>" in back.text
    assert f'name="idempotency_key" value="{key}"' in back.text
    again = browser.post(f"{base_url}/thu-tuc/{PROCEDURE}/nop-ho-so", data=fields,
                         timeout=30)  # Back loses the chosen file: still the same dossier
    assert again.status_code == 200 and CODE.search(again.text).group(1) == code
    someone_else = browser.post(f"{base_url}/thu-tuc/{PROCEDURE}/nop-ho-so", timeout=30, files=FILES,
                                data={**fields, "applicant.id_number": "038190054321"})
    other = CODE.search(someone_else.text).group(1)  # the same form for another person: their own dossier
    assert other != code
    fresh = browser.get(f"{base_url}/thu-tuc/{PROCEDURE}/nop-ho-so", params={"moi": "1"}, timeout=30)
    assert fresh.url.endswith("/nop-ho-so") and key not in fresh.text and "Bạn đã nộp hồ sơ" not in fresh.text
    elsewhere = requests.get(first.url, timeout=30)  # another browser has no receipt: tracking instead
    assert elsewhere.url.endswith(f"/tra-cuu?code={code}")


def test_a_refused_file_is_named_and_the_form_keeps_what_was_typed_and_the_other_files(base_url):
    big = b"%PDF-1.4\n" + b"0" * (5 * 1024 * 1024)
    fields = {f"applicant.{name}": value for name, value in APPLICANT.items()}
    refused = requests.post(f"{base_url}/thu-tuc/{PROCEDURE}/nop-ho-so", data=fields, timeout=30, files={
        "to_khai": ("to-khai.pdf", PDF, "application/pdf"), "ban_an_ly_hon": ("ban-an.pdf", big, "application/pdf")})
    assert refused.status_code == 422
    assert "Tệp «ban-an.pdf» nặng 5,1 MB, quá giới hạn 5 MB mỗi tệp." in refused.text
    assert "tối đa 5 MB mỗi tệp" in refused.text  # the limit the form states is the one applied
    assert f'value="{APPLICANT["full_name"]}"' in refused.text
    assert "Đã giữ tệp «to-khai.pdf»" in refused.text
    kept = dict(re.findall(r'name="(kept\.[^"]+)" value="([^"]*)"', refused.text))
    assert set(kept) == {"kept.to_khai.filename", "kept.to_khai.content"}
    key = refused.text.split('name="idempotency_key" value="', 1)[1].split('"', 1)[0]
    done = requests.post(f"{base_url}/thu-tuc/{PROCEDURE}/nop-ho-so", timeout=30,
                         data={**fields, **kept, "idempotency_key": key},
                         files={"ban_an_ly_hon": ("ban-an.pdf", PDF, "application/pdf")})
    assert done.status_code == 200 and "Hồ sơ đã được gửi" in done.text, re.findall(r"<li>.*?</li>", done.text)
    assert "2 tệp" in done.text


def test_a_submission_lacking_a_mandatory_document_is_the_form_again_naming_it_with_everything_kept(base_url):
    """Online, a mandatory document (thành phần hồ sơ bắt buộc) cannot be missing: the form comes back
    naming it by its catalogue name at its own file field, the typed fields and the chosen files kept."""
    form = get(base_url, f"/thu-tuc/{PROCEDURE}/nop-ho-so")
    assert 'name="to_khai" accept=".pdf,.jpg,.jpeg,.png,application/pdf,image/jpeg,image/png" aria-required="true"' \
        in form.text and 'name="ban_an_ly_hon" accept=".pdf,.jpg,.jpeg,.png,application/pdf,image/jpeg,image/png">' \
        in form.text  # the optional one is not
    fields = {f"applicant.{name}": value for name, value in APPLICANT.items()}
    optional = {"ban_an_ly_hon": ("ban-an.pdf", PDF, "application/pdf")}
    refused = requests.post(f"{base_url}/thu-tuc/{PROCEDURE}/nop-ho-so", data=fields, files=optional, timeout=30)
    assert refused.status_code == 400, refused.text
    said = "Chưa đính kèm «Tờ khai cấp Giấy xác nhận tình trạng hôn nhân» (giấy tờ bắt buộc)."
    assert refused.text.count(said) == 2  # in the summary and at the field
    assert 'aria-invalid="true" aria-describedby="loi-documents-to_khai"' in refused.text
    assert f'<p class="field-error" id="loi-documents-to_khai" role="alert">{said}</p>' in refused.text
    assert f'value="{APPLICANT["full_name"]}"' in refused.text and f'value="{APPLICANT["id_number"]}"' in refused.text
    assert "Đã giữ tệp «ban-an.pdf»" in refused.text
    kept = dict(re.findall(r'name="(kept\.[^"]+)" value="([^"]*)"', refused.text))
    key = refused.text.split('name="idempotency_key" value="', 1)[1].split('"', 1)[0]
    done = requests.post(f"{base_url}/thu-tuc/{PROCEDURE}/nop-ho-so", timeout=30, files=FILES,
                         data={**fields, **kept, "idempotency_key": key})
    assert done.status_code == 200 and "Hồ sơ đã được gửi" in done.text
    assert "2 tệp" in done.text and "Còn thiếu" not in done.text


def test_the_applicant_asks_for_the_postal_service_on_the_form(base_url):
    """Issue 15: "receive by post" was the API's only; the form offers pickup and delivery by post, which
    need the address (the form again, in Vietnamese, without it)."""
    form = get(base_url, f"/thu-tuc/{PROCEDURE}/nop-ho-so")
    assert 'name="postal.pickup"' in form.text and 'name="postal.delivery"' in form.text
    fields = {f"applicant.{name}": value for name, value in APPLICANT.items() if name != "address"}
    without = requests.post(f"{base_url}/thu-tuc/{PROCEDURE}/nop-ho-so", timeout=30, files=FILES,
                            data={**fields, "postal.delivery": "1"})
    assert without.status_code == 400, without.text
    assert "Ghi địa chỉ để bưu chính đến nhận hồ sơ hoặc giao kết quả." in without.text
    assert 'name="postal.delivery" value="1" checked' in without.text  # the choice kept
    asked = requests.post(f"{base_url}/thu-tuc/{PROCEDURE}/nop-ho-so", timeout=30, files=FILES,
                          data={**fields, "applicant.address": "Số 5 Lê Lợi, phường Hạc Thành", "postal.delivery": "1"})
    assert asked.status_code == 200, asked.text
    code = CODE.search(asked.text).group(1)
    counter = Officer(base_url, f"receptionist@{AGENCY}")
    page = counter.http.get(f"{base_url}/can-bo/ho-so/{code}", timeout=30)
    assert page.status_code == 200 and "Trả kết quả tại địa chỉ" in page.text
    assert "Nhận hồ sơ tại địa chỉ" not in page.text
