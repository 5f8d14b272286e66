"""The officer's session in Debian's headless chromium, on a phone and a desktop, with short tokens
(the platform runs with MOTCUA_TOKEN_TTL_SECONDS=30 and MOTCUA_SESSION_WARNING_SECONDS=20):

- the warning appears before the end (role=alert), and "Tiếp tục làm việc" renews the session without
  leaving the page (what is being typed stays): the session cookie's end moves later, the old token is
  refused;
- the session ends while the counter types into a form (the queue's refusal on the phone, the dossier
  page's supplement request with more text than a cookie holds on the desktop): the banner
  says it has ended, the form posted goes to the sign-in, and the sign-in back to the page with the
  input filled in; sent again, it is done.

    python tests/browser/session_expiry.py BASE_URL SCREENSHOT_DIR

Prints SESSION OK.
"""
from __future__ import annotations

import sys
from pathlib import Path

from playwright.sync_api import Page, expect

from tests.browser.journey import AGENCY, DESKTOP, PHONE, Journey, citizen_submits, journey

TTL, WARN = 30, 20  # as the test starts the platform
RECEPTIONIST = f"receptionist@{AGENCY}"
REASON = "Thiếu bản sao giấy khai sinh của người yêu cầu"
# Within intake's limits (a note of 2,000 characters, 50 items of 500), together ~5,000 characters,
# ~6,500 bytes in UTF-8: more than a cookie holds.
LONG_NOTE = ("Đề nghị bổ sung bản chính để đối chiếu. " * 48).strip()
ITEMS = "\n".join(f"Bản sao có chứng thực giấy tờ thứ {n}, kèm bản chính để đối chiếu khi nộp bổ sung "
                  f"tại Bộ phận Một cửa của Ủy ban nhân dân xã, ghi rõ ngày cấp và nơi cấp" for n in range(1, 21))


def session_cookie(page: Page) -> dict:
    return next(c for c in page.context.cookies() if c["name"] == "motcua_session")


def warned_and_renewed(j: Journey, viewport: dict, code: str, label: str) -> None:
    page = j.sign_in(RECEPTIONIST, viewport)
    page.goto(f"/can-bo/ho-so/{code}")
    warning = page.locator("#session-warning")
    expect(warning).to_be_hidden()  # not before its time
    note = page.locator("#bo-sung input[name=note]")
    note.fill("Đang soạn dở, chưa gửi")
    old = session_cookie(page)
    expect(warning).to_be_visible(timeout=(TTL - WARN + 10) * 1000)
    alert = page.get_by_role("alert")
    expect(alert).to_contain_text("Phiên đăng nhập sẽ hết hạn lúc")
    box = warning.bounding_box()
    assert box["y"] + box["height"] <= viewport["height"] + 1 and box["width"] <= viewport["width"] + 1, box
    j.shot(page, f"session-warning-{label}")
    page.get_by_role("button", name="Tiếp tục làm việc").click()
    expect(page.locator("#session-status")).to_contain_text("Đã gia hạn phiên đăng nhập đến")
    expect(warning).to_be_hidden()
    expect(note).to_have_value("Đang soạn dở, chưa gửi")  # the page was not reloaded
    new = session_cookie(page)
    assert new["value"] != old["value"] and new["expires"] > old["expires"], (old["expires"], new["expires"])
    expect(page.locator("footer .session-ends-at")).to_have_text(page.locator("#session-status").inner_text()
                                                                  .rsplit(" ", 1)[1].rstrip("."))
    stale = j.context(viewport)
    stale.add_cookies([{**old, "expires": -1}])
    stale_page = stale.new_page()
    stale_page.goto("/can-bo")
    expect(stale_page.locator("input[name=username]")).to_be_visible()  # the old token: signed out
    stale.close()
    page.goto("/can-bo")  # still signed in with the new one
    expect(page.locator("h1")).to_contain_text("Quầy một cửa")
    page.context.close()


def wait_for_the_end(page: Page) -> None:
    expect(page.locator("#session-warning.ended")).to_be_visible(timeout=(TTL + 15) * 1000)
    expect(page.get_by_role("alert")).to_contain_text("Phiên đăng nhập đã hết hạn")
    # The page counts from when it arrived, a moment after the server made the token: it may say so
    # a second early, never late.
    page.wait_for_timeout(2500)


def sign_in_again(page: Page, back: str) -> None:
    expect(page.locator("input[name=username]")).to_be_visible()
    page.fill("input[name=username]", RECEPTIONIST)
    page.fill("input[name=password]", "demo")
    page.click("main button[type=submit]")
    page.wait_for_url(lambda url: url.endswith(back))


def refusal_typed_on_the_phone(j: Journey, code: str) -> Page:
    """The counter's queue on a phone, a refusal's reason typed and not sent yet."""
    page = j.sign_in(RECEPTIONIST, PHONE)
    j.until(page, "/can-bo", code)
    page.locator("tr", has_text=code).locator("input[name=reason]").fill(REASON)
    return page


def refusal_kept_on_the_phone(j: Journey, page: Page, code: str) -> None:
    """Sent after the session's end: kept through the sign-in, then done."""
    wait_for_the_end(page)
    j.shot(page, "session-ended-phone")
    page.locator("tr", has_text=code).locator("button", has_text="Từ chối").click()
    sign_in_again(page, "/can-bo")
    row = page.locator("tr", has_text=code)
    expect(row.locator("input[name=reason]")).to_have_value(REASON)
    expect(row.locator("input[name=reason]")).to_be_focused()  # the officer lands on it, scrolled to it
    expect(page.locator(".kept-input")).to_contain_text("Nội dung bạn đã nhập được giữ lại")
    j.shot(page, "session-input-kept-phone")
    row.locator("button", has_text="Từ chối").click()
    expect(page.locator(".alert.ok")).to_contain_text("Đã từ chối tiếp nhận")
    page.context.close()


def long_note_typed_on_the_desktop(j: Journey, code: str) -> Page:
    """The dossier's page on a desktop, a supplement request of ~5,000 characters typed and not sent yet."""
    page = j.sign_in(RECEPTIONIST, DESKTOP)
    page.goto(f"/can-bo/ho-so/{code}")
    form = page.locator("#bo-sung form")
    form.locator("textarea[name=items]").fill(ITEMS)
    form.locator("input[name=note]").fill(LONG_NOTE)
    return page


def long_note_kept_on_the_desktop(j: Journey, page: Page, code: str) -> None:
    """Sent after the session's end: more than a cookie holds, kept through the sign-in, then done."""
    wait_for_the_end(page)
    page.locator("#bo-sung form").locator("button").click()
    sign_in_again(page, f"/can-bo/ho-so/{code}")
    form = page.locator("#bo-sung form")
    expect(form.locator("textarea[name=items]")).to_have_value(ITEMS)
    expect(form.locator("input[name=note]")).to_have_value(LONG_NOTE)
    expect(form.locator("textarea[name=items]")).to_be_focused()
    j.shot(page, "session-long-note-kept-desktop")
    form.locator("button").click()
    expect(page.locator(".alert.ok")).to_contain_text("Đã yêu cầu bổ sung")
    page.context.close()


def main(base: str, shots: Path) -> None:
    with journey(base, shots) as (j, tmp):
        first, second = citizen_submits(j, tmp), citizen_submits(j, tmp)
        warned_and_renewed(j, DESKTOP, first, "desktop")
        warned_and_renewed(j, PHONE, first, "phone")
        # Two sessions that end while the counter types, opened together: one wait sees both end.
        phone, desktop = refusal_typed_on_the_phone(j, first), long_note_typed_on_the_desktop(j, second)
        refusal_kept_on_the_phone(j, phone, first)
        long_note_kept_on_the_desktop(j, desktop, second)
    print("SESSION OK", first, second)


if __name__ == "__main__":
    main(sys.argv[1], Path(sys.argv[2]))
