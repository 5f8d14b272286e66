"""A citizen signed in with VNeID on the portal, and online payment, in Debian's headless chromium, on a
phone and on a desktop (issue 15): sign in on the identity provider's simulator, submit on the portal's
own form without typing name or ID number (shown read-only from the identity), find the dossier in "Hồ
sơ của tôi" under the identity's name; the counter receives it, the specialist asks for a fee (status 6);
without signing in, public tracking offers "Thanh toán trực tuyến" too (the ID number asked), and a
cancelled payment comes back as not paid (desktop); the citizen pays it with the button on the payment
platform's simulator, lands back on the portal's page that says the payment is confirmed, and the
dossier is processing again.

    python tests/browser/citizen_vneid_payment.py BASE_URL SCREENSHOT_DIR

The platform runs with VNEID_ISSUER and INTAKE_PAYMENT_URL on this machine (their simulators started by
it). Prints VNEID PAYMENT OK and the codes.
"""
from __future__ import annotations

import sys
from pathlib import Path

from playwright.sync_api import Page, expect

from tests.browser.journey import AGENCY, DESKTOP, PDF, PHONE, PROCEDURE, Journey, journey

CITIZENS = {"phone": ("001085004321", "Nguyễn Văn An", "0912345678"),
            "desktop": ("038190012345", "Trần Thị Bình", "0987654321")}  # the simulator's test citizens
FEE = "150000"


def sign_in_with_vneid(j: Journey, viewport: dict, name: str, full_name: str) -> Page:
    page = j.context(viewport).new_page()
    page.goto("/")
    page.click("text=Đăng nhập bằng VNeID")
    page.click(f"a:has-text('{full_name}')")  # the provider's page: the test citizen chosen
    page.wait_for_url("**/ho-so-cua-toi")
    expect(page.locator("main")).to_contain_text(full_name)
    j.shot(page, f"{name}-vneid-signed-in")
    return page


def submit_without_typing_the_identity(j: Journey, page: Page, name: str, citizen: tuple, tmp: Path) -> str:
    id_number, full_name, phone = citizen
    page.goto(f"/thu-tuc/{PROCEDURE}/nop-ho-so")
    identity = page.locator("#danh-tinh-vneid")
    expect(identity.locator("[data-field=full_name]")).to_have_text(full_name)
    expect(identity.locator("[data-field=id_number]")).to_have_text(id_number)
    assert page.locator("input[name='applicant.full_name'], input[name='applicant.id_number']").count() == 0
    page.fill("input[name='applicant.phone']", phone)
    document = tmp / f"to-khai-{name}.pdf"
    document.write_bytes(PDF)
    page.set_input_files("input[name=to_khai]", str(document))
    j.shot(page, f"{name}-vneid-form")
    page.click("button[type=submit]")
    expect(page.locator(".receipt")).to_contain_text("Hồ sơ đã được gửi")
    code = page.locator("h1 .code").inner_text().strip()
    j.shot(page, f"{name}-vneid-receipt")
    page.click("text=Hồ sơ của tôi")
    row = page.locator("tr", has_text=code)
    expect(row).to_be_visible()
    expect(page.locator("main")).to_contain_text(f"{full_name} — đã đăng nhập bằng VNeID")
    j.shot(page, f"{name}-my-dossiers")
    row.locator("a").click()
    expect(page.locator("#ho-so")).to_contain_text(full_name)  # the identity's name, never typed
    return code


def counter_and_specialist_ask_for_the_fee(j: Journey, code: str, viewport: dict) -> None:
    counter = j.sign_in(f"receptionist@{AGENCY}", viewport)
    j.until(counter, "/can-bo", code)
    counter.locator("tr", has_text=code).locator("button", has_text="Tiếp nhận").click()
    expect(counter.locator(".alert.ok")).to_contain_text("Đã tiếp nhận")
    counter.context.close()
    specialist = j.sign_in(f"specialist@{AGENCY}", viewport)
    j.until(specialist, "/can-bo/viec", code)
    task = specialist.locator("li.task", has_text=code)
    task.locator("details.more-actions summary").click()
    ask = task.locator("form[data-action=require_payment]")
    ask.locator("input[name=amount_vnd]").fill(FEE)
    ask.locator("input[name=note]").fill("Lệ phí cấp giấy xác nhận")
    ask.locator("button").click()
    expect(specialist.locator(".alert.ok")).to_be_visible()
    specialist.context.close()


def pay_online(j: Journey, page: Page, name: str, code: str) -> None:
    j.until(page, f"/ho-so/{code}", "Thanh toán trực tuyến")
    expect(page.locator("#nghia-vu-tai-chinh")).to_contain_text("150.000 đồng")
    j.shot(page, f"{name}-awaiting-payment")
    page.click("button:has-text('Thanh toán trực tuyến')")
    page.wait_for_url("**/paymentv2/vpcpay.html?**")  # the platform's page (the portal's sent the browser on)
    j.shot(page, f"{name}-payment-platform")
    page.click("a:text-is('Thanh toán')")
    page.wait_for_url("**/thanh-toan/ket-qua?**")
    result = page.locator("#ket-qua-thanh-toan")
    # The platform notifies before it returns the browser (the simulator's order); a late notification
    # would show "waiting", and the page looks again by itself until it is confirmed.
    expect(result).to_have_attribute("data-outcome", "confirmed", timeout=30_000)
    expect(result).to_contain_text("Thanh toán đã được xác nhận")
    j.shot(page, f"{name}-payment-confirmed")
    page.click("text=Xem hồ sơ")
    expect(page.locator("#ho-so .status")).to_have_text("Đang xử lý")
    expect(page.locator("#nghia-vu-tai-chinh")).to_contain_text("đã nộp")
    assert page.locator("button:has-text('Thanh toán trực tuyến')").count() == 0
    j.shot(page, f"{name}-processing-again")


def anonymous_cancels_a_payment(j: Journey, viewport: dict, name: str, code: str, citizen: tuple) -> None:
    """Without a sign-in: public tracking (code and key) offers the button, its form asks the ID number,
    the platform's "cancel" comes back as not paid, and the dossier still awaits payment."""
    id_number, _full_name, phone = citizen
    page = j.context(viewport).new_page()
    j.until(page, f"/tra-cuu?code={code}&key={phone[-4:]}", "Thanh toán trực tuyến")
    j.shot(page, f"{name}-track-awaiting-payment")
    page.click("a:text-is('Thanh toán trực tuyến')")
    page.fill("input[name=id_number]", id_number)
    page.click("button[type=submit]")
    page.wait_for_url("**/paymentv2/vpcpay.html?**")
    page.click("a:text-is('Hủy giao dịch')")
    page.wait_for_url("**/thanh-toan/ket-qua?**")
    expect(page.locator("#ket-qua-thanh-toan")).to_have_attribute("data-outcome", "failed")
    expect(page.locator("#ket-qua-thanh-toan")).to_contain_text("chưa thành công")
    j.shot(page, f"{name}-payment-cancelled")
    page.click("text=Xem hồ sơ")
    page.fill("input[name=key]", phone[-4:])
    page.click("form.inline-form button[type=submit]")
    expect(page.locator("#ket-qua .status")).to_have_text("Chờ thực hiện nghĩa vụ tài chính")
    page.context.close()


def main(base: str, shots: Path) -> None:
    codes = []
    with journey(base, shots) as (j, tmp):
        for name, viewport in (("phone", PHONE), ("desktop", DESKTOP)):
            citizen = CITIZENS[name]
            page = sign_in_with_vneid(j, viewport, name, citizen[1])
            code = submit_without_typing_the_identity(j, page, name, citizen, tmp)
            counter_and_specialist_ask_for_the_fee(j, code, viewport)
            if viewport is DESKTOP:
                anonymous_cancels_a_payment(j, viewport, name, code, citizen)
            pay_online(j, page, name, code)
            if viewport is PHONE:
                width = page.evaluate("document.documentElement.scrollWidth")
                assert width <= PHONE["width"], f"the dossier's page scrolls sideways on a phone ({width}px)"
            page.context.close()
            codes.append(code)
    print("VNEID PAYMENT OK", *codes)


if __name__ == "__main__":
    main(sys.argv[1], Path(sys.argv[2]))
