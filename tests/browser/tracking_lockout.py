"""Tracking under guessing, in Debian's headless chromium, behind a trusted proxy (each browser its own
X-Forwarded-For address): the owner submits on a phone; a stranger's wrong keys stop the stranger (even
with the right key, the page saying how long to wait) but not the owner, on their phone or on a new
desktop; strangers at several addresses lock the dossier for new browsers, never the owner's phone.

    python tests/browser/tracking_lockout.py BASE_URL SCREENSHOT_DIR

Needs the platform to trust 127.0.0.1 as its proxy and PROOF_MAX_FAILURES 5 per address and dossier,
10 per dossier (the defaults). Prints LOCKOUT OK.
"""
from __future__ import annotations

import sys
from pathlib import Path

from playwright.sync_api import Page, expect

from tests.browser.journey import APPLICANT, DESKTOP, PHONE, PROCEDURE, Journey, attach_required, journey

KEY = APPLICANT["phone"][-4:]
PER_ADDRESS_AT_DOSSIER = 5


def browser_at(j: Journey, viewport: dict, address: str) -> Page:
    context = j.context(viewport)
    context.set_extra_http_headers({"X-Forwarded-For": address})
    return context.new_page()


def track(page: Page, code: str, key: str) -> int:
    return page.goto(f"/tra-cuu?code={code}&key={key}").status


def main(base: str, shots: Path) -> None:
    with journey(base, shots) as (j, tmp):
        owner = browser_at(j, PHONE, "203.0.113.10")
        owner.goto(f"/thu-tuc/{PROCEDURE}/nop-ho-so")
        owner.fill("input[name='applicant.full_name']", APPLICANT["full_name"])
        owner.fill("input[name='applicant.id_number']", APPLICANT["id_number"])
        owner.fill("input[name='applicant.phone']", APPLICANT["phone"])
        attach_required(owner, tmp)
        owner.click("button[type=submit]")
        code = owner.locator("h1 .code").inner_text().strip()
        j.until(owner, f"/tra-cuu?code={code}&key={KEY}", "Mới đăng ký")  # reporting has it: misses count now

        stranger = browser_at(j, DESKTOP, "198.51.100.7")
        for guess in range(PER_ADDRESS_AT_DOSSIER):
            assert track(stranger, code, f"{guess:04d}") == 404
        assert track(stranger, code, KEY) == 429, "a guesser who found the key must still be stopped"
        expect(stranger.locator(".alert.error")).to_contain_text("Vui lòng thử lại sau 15 phút.")
        j.shot(stranger, "portal-track-stranger-stopped")

        assert track(owner, code, KEY) == 200
        new_desktop = browser_at(j, DESKTOP, "203.0.113.11")
        assert track(new_desktop, code, KEY) == 200, "a stranger's wrong keys locked the owner out"
        expect(new_desktop.locator("body")).to_contain_text("Mới đăng ký")
        new_desktop.context.close()

        accomplice = browser_at(j, DESKTOP, "198.51.100.8")
        for guess in range(PER_ADDRESS_AT_DOSSIER):  # the dossier's 10 misses from any address
            assert track(accomplice, code, f"{guess + 10:04d}") == 404
        assert track(browser_at(j, PHONE, "203.0.113.12"), code, KEY) == 429  # a new browser: locked
        assert track(owner, code, KEY) == 200, "the owner's own browser was locked out"
        expect(owner.locator("body")).to_contain_text("Mới đăng ký")
        j.shot(owner, "portal-track-owner-not-locked-out")
    print("LOCKOUT OK", code)


if __name__ == "__main__":
    main(sys.argv[1], Path(sys.argv[2]))
