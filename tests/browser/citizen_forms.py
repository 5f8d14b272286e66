"""The citizen's submission form in Debian's headless chromium, on a phone and on a desktop: a missing
mandatory document is named at its field, and an oversize file is refused by name, while everything
typed and the other file stay; the dossier is submitted
(POST/redirect/GET); Back and submit again leads to the same dossier, and the next new submission takes
the very next number (so no dossier was made in between).

    python tests/browser/citizen_forms.py BASE_URL SCREENSHOT_DIR

Prints FORMS OK and the codes submitted (the caller checks the SMS and e-mail sent with them).
"""
from __future__ import annotations

import sys
from pathlib import Path

from playwright.sync_api import Page, expect

from tests.browser.journey import APPLICANT, DESKTOP, PDF, PHONE, PROCEDURE, Journey, attach_required, journey

EMAIL = "binh.tran@example.vn"
FORM = f"/thu-tuc/{PROCEDURE}/nop-ho-so"


def fill_applicant(page: Page) -> None:
    page.fill("input[name='applicant.full_name']", APPLICANT["full_name"])
    page.fill("input[name='applicant.id_number']", APPLICANT["id_number"])
    page.fill("input[name='applicant.phone']", APPLICANT["phone"])
    page.fill("input[name='applicant.email']", EMAIL)


def receipt_code(page: Page) -> str:
    expect(page.locator(".receipt")).to_contain_text("Hồ sơ đã được gửi")
    assert page.url.endswith("/bien-nhan"), page.url  # redirected after the POST: reloading posts nothing
    return page.locator("h1 .code").inner_text().strip()


def submit_with_a_refused_file_then_back(j: Journey, viewport: dict, name: str, tmp: Path) -> list[str]:
    page = j.context(viewport).new_page()
    page.goto(FORM)
    expect(page.locator("legend", has_text="tối đa 5 MB mỗi tệp")).to_be_visible()
    fill_applicant(page)
    optional = tmp / "ban-an.pdf"
    optional.write_bytes(PDF)
    page.set_input_files("input[name=ban_an_ly_hon]", str(optional))  # the optional one only
    page.click("button[type=submit]")
    expect(page.locator(".alert.error")).to_be_focused()
    missing = "Chưa đính kèm «Tờ khai cấp Giấy xác nhận tình trạng hôn nhân» (giấy tờ bắt buộc)."
    expect(page.locator(".alert.error")).to_contain_text(missing)
    declaration = page.locator("input[name=to_khai]")
    expect(declaration).to_have_attribute("aria-invalid", "true")
    expect(page.locator(f"#{declaration.get_attribute('aria-describedby')}")).to_have_text(missing)
    expect(page.locator("input[name='applicant.email']")).to_have_value(EMAIL)
    expect(page.locator(".kept")).to_contain_text("Đã giữ tệp «ban-an.pdf»")
    j.shot(page, f"portal-submit-document-missing-{name}")
    good, big = tmp / "to-khai.pdf", tmp / "ban-an-qua-lon.pdf"
    good.write_bytes(PDF)
    big.write_bytes(PDF + b"0" * (6 * 1024 * 1024))
    page.set_input_files("input[name=to_khai]", str(good))
    page.set_input_files("input[name=ban_an_ly_hon]", str(big))
    page.click("button[type=submit]")
    refused = page.locator("label.field.invalid .field-error")
    expect(refused).to_contain_text("Tệp «ban-an-qua-lon.pdf» nặng 6,1 MB, quá giới hạn 5 MB mỗi tệp.")
    expect(page.locator("input[name='applicant.full_name']")).to_have_value(APPLICANT["full_name"])
    expect(page.locator("input[name='applicant.email']")).to_have_value(EMAIL)
    expect(page.locator(".kept")).to_contain_text("Đã giữ tệp «to-khai.pdf»")
    j.shot(page, f"portal-submit-file-refused-{name}")
    smaller = tmp / "ban-an.pdf"
    smaller.write_bytes(PDF)
    page.set_input_files("input[name=ban_an_ly_hon]", str(smaller))
    page.click("button[type=submit]")
    code = receipt_code(page)
    expect(page.locator(".facts")).to_contain_text("2 tệp")  # the kept file went with the new one
    j.shot(page, f"portal-receipt-{name}")

    page.goto(FORM)  # the form again, as Back to it would show it: this submission's notice and key
    expect(page.locator(".alert.ok")).to_contain_text(f"Bạn đã nộp hồ sơ {code}")
    page.click("text=Nộp một hồ sơ mới")
    fill_applicant(page)
    attach_required(page, tmp)
    page.click("button[type=submit]")
    following = receipt_code(page)
    prefix, number = code.rsplit("-", 1)
    assert following == f"{prefix}-{int(number) + 1:04d}", (code, following)

    page.go_back()  # receipt → the plain form it was posted from
    expect(page.locator(".alert.ok")).to_contain_text(f"Bạn đã nộp hồ sơ {following}")
    j.shot(page, f"portal-submit-after-back-{name}")
    fill_applicant(page)  # as a citizen would, whether or not the browser restored them
    attach_required(page, tmp)
    page.click("button[type=submit]")
    assert receipt_code(page) == following, "Back and submit again made another dossier"
    page.goto(FORM)
    page.click("text=Nộp một hồ sơ mới")
    fill_applicant(page)
    attach_required(page, tmp)
    page.click("button[type=submit]")
    third = receipt_code(page)
    assert third == f"{prefix}-{int(number) + 2:04d}", (following, third)  # none was made in between
    page.context.close()
    return [code, following, third]


def main(base: str, shots: Path) -> None:
    with journey(base, shots) as (j, tmp):
        codes = []
        for viewport, name in ((PHONE, "phone"), (DESKTOP, "desktop")):
            codes += submit_with_a_refused_file_then_back(j, viewport, name, tmp)
    print("FORMS OK", " ".join(codes))


if __name__ == "__main__":
    main(sys.argv[1], Path(sys.argv[2]))
