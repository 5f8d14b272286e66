"""The officer's task page in Debian's headless chromium: the specialist (desktop) opens the task from the
inbox and finds the dossier on one page (procedure, applicant masked, documents by their catalogue
names with a preview, due time and what is left, the actions), approves it there; the leader (phone)
sees the specialist's note and the last step's button saying it returns the dossier to the counter.

    python tests/browser/task_page.py BASE_URL SCREENSHOT_DIR

Prints TASK PAGE OK.
"""
from __future__ import annotations

import sys
from pathlib import Path

from playwright.sync_api import Page, expect

from tests.browser.journey import (
    AGENCY,
    APPLICANT,
    PHONE,
    Journey,
    citizen_submits,
    counter_receives,
    journey,
)

NOTE = "Đủ điều kiện, đề nghị ký"


def open_task(j: Journey, page: Page, code: str) -> None:
    j.until(page, "/can-bo/viec", code)
    page.locator("li.task", has_text=code).locator("a.code").click()
    expect(page.locator("h1")).to_contain_text("Thủ tục cấp Giấy xác nhận tình trạng hôn nhân")


def main(base: str, shots: Path) -> None:
    with journey(base, shots) as (j, tmp):
        code = citizen_submits(j, tmp)
        counter_receives(j, code).context.close()

        specialist = j.sign_in(f"specialist@{AGENCY}")
        open_task(j, specialist, code)
        body = specialist.locator("main")
        expect(body).to_contain_text(APPLICANT["full_name"])
        expect(body).to_contain_text("•" * 9 + APPLICANT["id_number"][-3:])  # masked: a step behind the counter
        assert APPLICANT["id_number"] not in specialist.content() and APPLICANT["phone"] not in specialist.content()
        expect(body).to_contain_text("Tờ khai cấp Giấy xác nhận tình trạng hôn nhân")  # the catalogue's name
        assert "to_khai" not in body.inner_text(), "an internal document key on the page"
        expect(specialist.locator("section.task .facts")).to_contain_text("còn ")  # how much time is left
        preview = specialist.request.get(specialist.locator("a", has_text="Xem").first.get_attribute("href"))
        assert preview.ok and preview.headers["content-type"] == "application/pdf"
        assert preview.headers["content-disposition"].startswith("inline")
        expect(specialist.locator("footer .session-ends")).to_contain_text("tự gia hạn khi bạn thao tác")
        j.shot(specialist, "console-task-page")
        approve = specialist.locator("form[data-action=approve]")
        expect(approve.locator("button")).to_have_text("Hoàn thành, chuyển bước tiếp")
        approve.locator("input[name=note]").fill(NOTE)
        approve.locator("button").click()
        expect(specialist.locator(".alert.ok")).to_be_visible()

        leader = j.sign_in(f"leader@{AGENCY}")
        leader.set_viewport_size(PHONE)
        open_task(j, leader, code)
        expect(leader.locator("ol.steps")).to_contain_text(NOTE)  # the earlier step's note
        expect(leader.locator("form[data-action=approve] button")).to_have_text(
            "Hoàn thành, chuyển Bộ phận Một cửa trả kết quả")
        j.shot(leader, "console-task-page-last-step-phone")
        # The session expires while the leader is on the task page: the form posted leads to the sign-in,
        # and the sign-in back to the task page (not to the POST's address: a 405).
        task_url = leader.url
        leader.context.add_cookies([{"name": "motcua_session", "value": "expired", "url": base}])
        leader.locator("form[data-action=approve] input[name=note]").fill("Đồng ý, trình ký ngay")
        leader.locator("form[data-action=approve] button").click()
        expect(leader.locator("input[name=username]")).to_be_visible()
        leader.fill("input[name=username]", f"leader@{AGENCY}")
        leader.fill("input[name=password]", "demo")
        leader.click("button[type=submit]")
        leader.wait_for_url(task_url)
        expect(leader.locator("form[data-action=approve] input[name=note]")).to_have_value("Đồng ý, trình ký ngay")
        expect(leader.locator(".alert")).to_contain_text("Nội dung bạn đã nhập được giữ lại")
        j.shot(leader, "console-task-page-input-kept-after-sign-in")
        leader.locator("form[data-action=approve] button").click()  # sent again, now signed in
        expect(leader.locator(".alert.ok")).to_be_visible()
    print("TASK PAGE OK", code)


if __name__ == "__main__":
    main(sys.argv[1], Path(sys.argv[2]))
