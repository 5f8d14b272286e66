"""Personal data on pages: no public page's HTML carries the applicant's ID number or phone, whatever the
dossier's state; tracking shows the masked name only."""
from __future__ import annotations

import pytest
import requests

from tests.pages.client import (
    AGENCY,
    APPLICANT,
    PDF,
    PROCEDURE,
    Officer,
    bring_to_returned,
    submit,
    submitted_code,
    until,
)

SECRETS = (APPLICANT["id_number"], APPLICANT["phone"], "+84" + APPLICANT["phone"][1:], APPLICANT["full_name"])

pytestmark = pytest.mark.e2e  # the platform in its own process, over HTTP


def assert_clean(response: requests.Response, what: str, status: int = 200) -> None:
    """The page is the one meant (its status), and it shows none of the applicant's data."""
    assert response.status_code == status, (what, response.status_code)
    for secret in SECRETS:
        assert secret not in response.text, f"{what} shows {secret!r}"


def test_no_public_page_shows_the_id_number_or_the_phone(base_url):
    receipt = submit(base_url)
    assert_clean(receipt, "the receipt (after the redirect)", 200)
    code = submitted_code(base_url)
    track = f"{base_url}/tra-cuu?code={code}&key=4321"
    pages = {name: f"{base_url}{path}" for name, path in {
        "home": "/", "search": "/thu-tuc?q=hon+nhan", "procedure": f"/thu-tuc/{PROCEDURE}",
        "submit form": f"/thu-tuc/{PROCEDURE}/nop-ho-so", "tracking form": "/tra-cuu", "statistics": "/thong-ke",
        "login": "/can-bo/dang-nhap", "not found": "/thu-tuc/9.999999",
        "wrong key": f"/tra-cuu?code={code}&key=0000"}.items()}
    until(lambda: requests.get(track, timeout=30), "Mới đăng ký")
    missing = {"not found", "wrong key"}  # a wrong key answers as an unknown code does
    for name, url in {**pages, "tracking": track}.items():
        assert_clean(requests.get(url, timeout=30), name, 404 if name in missing else 200)

    counter = Officer(base_url, f"receptionist@{AGENCY}")
    assert counter.post(f"/can-bo/ho-so/{code}/yeu-cau-bo-sung", {"items": "Bản án ly hôn"}).status_code == 303
    until(lambda: requests.get(track, timeout=30), "Bổ sung hồ sơ")
    assert_clean(requests.get(f"{base_url}/ho-so/{code}/bo-sung?key=4321", timeout=30), "supplement form")
    refused = requests.post(f"{base_url}/ho-so/{code}/bo-sung", data={"key": "4321", "id_number": "012345678901"},
                            timeout=30)
    assert_clean(refused, "a refused supplement", 403)
    supplied = requests.post(f"{base_url}/ho-so/{code}/bo-sung", timeout=30,
                             data={"key": "4321", "id_number": APPLICANT["id_number"]},
                             files={"ban_an_ly_hon": ("ban-an.pdf", PDF, "application/pdf")})
    assert_clean(supplied, "the supplement's answer")

    bring_to_returned(base_url, counter, code)
    until(lambda: requests.get(track, timeout=30), "Đánh giá mức độ hài lòng")
    assert_clean(requests.get(track, timeout=30), "tracking a returned dossier")
    assert_clean(requests.get(f"{base_url}/ho-so/{code}/danh-gia?key=4321", timeout=30), "rating form")
    rated = requests.post(f"{base_url}/ho-so/{code}/danh-gia", timeout=30,
                          data={"key": "4321", "id_number": APPLICANT["id_number"], "rating": "5"})
    assert_clean(rated, "the rating's answer")
