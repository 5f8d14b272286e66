"""One dossier's life through the pages, in Debian's headless chromium (Playwright, sync API):
a citizen submits and tracks it, the counter receives it, a specialist and a leader complete their steps,
the leader sees the dashboard's figure change, the counter returns the result, the citizen rates it.

    python tests/browser/journey.py BASE_URL SCREENSHOT_DIR

Run as its own process (not under pytest's eventlet monkey-patching); prints JOURNEY OK at the end.
"""
from __future__ import annotations

import contextlib
import re
import sys
import tempfile
import time
from pathlib import Path

from playwright.sync_api import Page, expect, sync_playwright

from tests.documents import filename, pdf, required_documents

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
AGENCY = "000.20.02.H56"  # the commune that receives and handles 1.004873 (two steps: specialist, leader)
PROCEDURE = "1.004873"
APPLICANT = {"full_name": "Trần Thị Bình", "id_number": "038190012345", "phone": "0987654321"}
PDF = b"%PDF-1.4\n1 0 obj<<>>endobj\ntrailer<<>>\n%%EOF\n"
PHONE = {"width": 390, "height": 844}
DESKTOP = {"width": 1280, "height": 900}


class Journey:
    def __init__(self, browser, base: str, shots: Path):
        self.browser, self.base, self.shots = browser, base, shots
        self.count = 0

    def context(self, viewport: dict):
        context = self.browser.new_context(viewport=viewport, base_url=self.base, locale="vi-VN")
        context.set_default_timeout(15_000)
        return context

    def shot(self, page: Page, name: str) -> None:
        self.count += 1
        page.screenshot(path=str(self.shots / f"{self.count:02d}-{name}.png"), full_page=True)

    def sign_in(self, username: str, viewport: dict = DESKTOP):
        page = self.context(viewport).new_page()
        page.goto("/can-bo/dang-nhap")
        page.fill("input[name=username]", username)
        page.fill("input[name=password]", "demo")
        page.click("button[type=submit]")
        page.wait_for_url(lambda url: "/dang-nhap" not in url)  # fails with the timeout if sign-in did not work
        return page

    def until(self, page: Page, path: str, text: str, timeout: float = 30) -> None:
        """Reload `path` until it shows `text` (events reach workflow and reporting asynchronously)."""
        deadline = time.time() + timeout
        while True:
            page.goto(path)
            if text in page.content():
                return
            if time.time() > deadline:
                raise AssertionError(f"{path} never showed {text!r}")
            time.sleep(0.5)


def attach_required(page: Page, tmp: Path, procedure_code: str = PROCEDURE) -> None:
    """A tiny PDF in the file field of each mandatory document of the procedure (from the catalogue:
    tests/documents.py), as a citizen attaches them: online, none may be missing."""
    for document in required_documents(procedure_code):
        path = tmp / filename(document["key"])
        path.write_bytes(pdf(document["key"]))
        page.set_input_files(f"input[name={document['key']}]", str(path))


@contextlib.contextmanager
def journey(base: str, shots: Path):
    """A Journey in a launched chromium, screenshots into `shots` (emptied first), and a temporary
    directory for the files it uploads."""
    # expect() has its own 5 s default: on a loaded 2-core machine a form POST can take longer.
    expect.set_options(timeout=15_000)
    shots.mkdir(parents=True, exist_ok=True)
    for old in shots.glob("*.png"):
        old.unlink()
    with sync_playwright() as playwright, tempfile.TemporaryDirectory() as tmp:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield Journey(browser, base, shots), Path(tmp)
        browser.close()


def citizen_submits(j: Journey, tmp: Path) -> str:
    """Phone-sized: search without diacritics, read the procedure, a refused field, submit, track."""
    page = j.context(PHONE).new_page()
    page.goto("/")
    expect(page.locator("h2", has_text="Motcua trong một phút")).to_be_visible()
    j.shot(page, "portal-home")
    page.fill("input[name=q]", "tinh trang hon nhan")  # without diacritics
    page.click("form.search button")
    link = page.locator(f"a[href='/thu-tuc/{PROCEDURE}']")
    expect(link).to_contain_text("tình trạng hôn nhân")
    j.shot(page, "portal-search")
    link.click()
    expect(page.locator("h2", has_text="Thành phần hồ sơ")).to_be_visible()
    j.shot(page, "portal-procedure")
    page.click("text=Nộp hồ sơ trực tuyến")
    page.fill("input[name='applicant.full_name']", APPLICANT["full_name"])
    page.fill("input[name='applicant.id_number']", APPLICANT["id_number"])
    page.fill("input[name='applicant.phone']", "12345")  # wrong: the form comes back with the reason
    page.click("button[type=submit]")
    expect(page.locator(".field-error").first).to_contain_text("Số điện thoại")
    phone = page.locator("input[name='applicant.phone']")
    expect(phone).to_have_attribute("aria-invalid", "true")
    expect(phone).to_have_attribute("aria-describedby", "loi-applicant-phone")
    expect(page.locator(".alert.error")).to_be_focused()  # the summary is read first
    j.shot(page, "portal-submit-error")
    page.fill("input[name='applicant.phone']", APPLICANT["phone"])
    attach_required(page, tmp)
    page.click("button[type=submit]")
    expect(page.locator(".receipt")).to_contain_text("Hồ sơ đã được gửi")
    code = page.locator("h1 .code").inner_text().strip()
    box = page.locator("h1 .code").bounding_box()
    assert box["height"] < 40 and box["x"] + box["width"] <= PHONE["width"], box  # one line, on the screen
    assert re.fullmatch(rf"{re.escape(AGENCY)}-\d{{6}}-\d{{4}}", code), code
    j.shot(page, "portal-receipt")
    j.until(page, f"/tra-cuu?code={code}&key=4321", "Mới đăng ký")
    content = page.content()
    assert APPLICANT["full_name"] not in content and APPLICANT["phone"] not in content, "personal data on tracking"
    j.shot(page, "portal-track")
    page.context.close()
    return code


def counter_receives(j: Journey, code: str) -> Page:
    page = j.sign_in(f"receptionist@{AGENCY}")
    j.until(page, "/can-bo", code)
    j.shot(page, "console-queue")
    page.locator("tr", has_text=code).locator("button", has_text="Tiếp nhận").click()
    expect(page.locator(".alert.ok")).to_contain_text("Đã tiếp nhận")
    j.shot(page, "console-dossier-received")
    receipt = page.request.get(page.locator("a", has_text="Mẫu 01").get_attribute("href"))
    assert receipt.ok and receipt.headers["content-type"] == "application/pdf", receipt.status
    return page


def counter_sees_what_is_missing(j: Journey) -> None:
    """A dossier taken at the counter without its declaration (the officer will ask for it): the queue
    flags it in words with the document's name, on a phone and on a desktop, and shows only those on demand."""
    for viewport, name in ((PHONE, "phone"), (DESKTOP, "desktop")):
        page = j.sign_in(f"receptionist@{AGENCY}", viewport)
        token = page.request.post("/api/v1/auth/token", data={"username": f"receptionist@{AGENCY}", "password": "demo"})
        taken = page.request.post("/api/v1/dossiers", headers={"Authorization": f"Bearer {token.json()['access_token']}"},
                                  data={"procedure_code": PROCEDURE, "channel": "counter", "applicant": APPLICANT})
        assert taken.status == 201, taken.text()
        code = taken.json()["code"]
        page.goto("/can-bo")
        flag = page.locator("tr", has_text=code).locator(".flag.missing")
        expect(flag).to_be_visible()
        expect(flag).to_contain_text("Thiếu 1 giấy tờ bắt buộc")
        assert flag.bounding_box()["x"] + flag.bounding_box()["width"] <= viewport["width"], "off the screen"
        expect(flag).to_contain_text("Tờ khai cấp Giấy xác nhận tình trạng hôn nhân")
        j.shot(page, f"console-queue-missing-{name}")
        page.click("text=Chỉ xem hồ sơ thiếu giấy tờ bắt buộc")
        expect(page.locator("tr", has_text=code)).to_be_visible()
        rows = page.locator("section", has_text="Chờ tiếp nhận").locator("tbody tr")
        assert rows.count() == rows.filter(has=page.locator(".flag.missing")).count(), "a complete one in the filter"
        page.context.close()


def complete_step(j: Journey, page: Page, code: str, note: str, name: str) -> None:
    j.until(page, "/can-bo/viec", code)
    j.shot(page, name)
    task = page.locator("li.task", has_text=code)
    approve = task.locator("form[data-action=approve]")
    approve.locator("input[name=note]").fill(note)
    approve.locator("button").click()
    expect(page.locator(".alert.ok")).to_be_visible()


def resolved_total(page: Page) -> int:
    page.goto("/lanh-dao")
    return int(page.locator(".kpi", has_text="Đã giải quyết").locator("strong").inner_text())


def main(base: str, shots: Path) -> None:
    with journey(base, shots) as (j, tmp):
        code = citizen_submits(j, tmp)
        counter = counter_receives(j, code)
        counter_sees_what_is_missing(j)
        leader = j.sign_in(f"leader@{AGENCY}")
        before = resolved_total(leader)
        specialist = j.sign_in(f"specialist@{AGENCY}")
        complete_step(j, specialist, code, "Đủ điều kiện, đề nghị ký", "console-inbox")
        complete_step(j, leader, code, "Đồng ý", "console-inbox-leader")
        deadline = time.time() + 30
        while resolved_total(leader) != before + 1:
            assert time.time() < deadline, f"the dashboard still shows {before} resolved"
            time.sleep(0.5)
        j.shot(leader, "dashboard")
        leader.locator(".kpi", has_text="Đã giải quyết").locator("a").click()
        expect(leader.locator("table")).to_contain_text(code)
        j.shot(leader, "dashboard-drill-down")
        j.until(counter, "/can-bo", code)
        counter.locator("tr", has_text=code).locator("button", has_text="Trả kết quả").click()
        expect(counter.locator(".alert.ok")).to_contain_text("Đã trả kết quả")
        citizen = j.context(PHONE).new_page()
        j.until(citizen, f"/tra-cuu?code={code}&key=4321", "Đánh giá mức độ hài lòng")
        j.shot(citizen, "portal-track-returned")
        citizen.click("text=Đánh giá mức độ hài lòng")
        citizen.fill("input[name=id_number]", APPLICANT["id_number"])
        citizen.check("input[name=rating][value='5']")
        citizen.fill("textarea[name=comment]", "Cán bộ hướng dẫn tận tình")
        citizen.click("button[type=submit]")
        expect(citizen.locator(".ok")).to_contain_text("Cảm ơn")
        j.shot(citizen, "portal-rated")
    print(f"JOURNEY OK {code} ({j.count} screenshots)")


if __name__ == "__main__":
    main(sys.argv[1], Path(sys.argv[2]))
