"""An automated accessibility pass (axe-core, vendored in tests/browser/axe/) over the pages each audience
starts from, on a phone and a desktop: the portal's home, the submission form with errors, tracking, the
console's sign-in and the leaders' dashboard. No serious or critical violation is allowed. The submission
form's errors are also checked by hand: each field in error says so (aria-invalid) and names its message
(aria-describedby), the focus is on the error summary, and a skip link leads to the content.

    python tests/browser/accessibility.py BASE_URL SCREENSHOT_DIR

Run as its own process, like journey.py; prints ACCESSIBILITY OK at the end.
"""
from __future__ import annotations

import sys
from pathlib import Path

from playwright.sync_api import Page, expect

from tests.browser.journey import AGENCY, APPLICANT, DESKTOP, PHONE, PROCEDURE, browsing

# Evaluated through the DevTools protocol: the pages' Content-Security-Policy refuses a script tag.
AXE = (Path(__file__).with_name("axe") / "axe.min.js").read_text()
BLOCKING = ("serious", "critical")
RUN_AXE = """async () => (await axe.run(document, {resultTypes: ['violations']})).violations.map(v => ({
    id: v.id, impact: v.impact, help: v.help, nodes: v.nodes.slice(0, 3).map(n => n.target.join(' '))}))"""


def violations(page: Page) -> list[dict]:
    """axe-core's serious and critical violations on the page as it is now."""
    page.evaluate(AXE)
    return [v for v in page.evaluate(RUN_AXE) if v["impact"] in BLOCKING]


def submission_with_errors(page: Page) -> None:
    """The online form sent with a wrong phone number: the form comes back with its errors."""
    page.goto(f"/thu-tuc/{PROCEDURE}/nop-ho-so")
    page.fill("input[name='applicant.full_name']", APPLICANT["full_name"])
    page.fill("input[name='applicant.phone']", "12345")
    page.click("button[type=submit]")
    expect(page.locator(".field-error").first).to_be_visible()


def errors_are_announced(page: Page) -> None:
    """Each field in error is marked and names its message; the focus is on the summary."""
    invalid = page.locator("[aria-invalid=true]")
    assert invalid.count() >= 1, "no field marked aria-invalid"
    for field in invalid.all():
        described = field.get_attribute("aria-describedby")
        assert described, f"{field.get_attribute('name')} in error without aria-describedby"
        expect(page.locator(f"#{described.split()[0]}")).to_have_class("field-error")
    assert page.evaluate("() => document.activeElement.classList.contains('error-summary')"), \
        "the focus is not on the error summary"


def skip_link(page: Page) -> None:
    page.goto("/")
    page.keyboard.press("Tab")
    focused = page.evaluate("() => [document.activeElement.tagName, document.activeElement.getAttribute('href')]")
    assert focused == ["A", "#main"], f"the first Tab lands on {focused}, not the skip link"
    page.keyboard.press("Enter")
    assert page.evaluate("() => location.hash") == "#main"


def main(base: str, shots: Path) -> None:
    found = {}
    with browsing(base, shots) as j:
        for size, viewport in (("phone", PHONE), ("desktop", DESKTOP)):
            citizen = j.context(viewport).new_page()
            skip_link(citizen)
            found[f"portal home ({size})"] = violations(citizen)
            submission_with_errors(citizen)
            errors_are_announced(citizen)
            found[f"submission form with errors ({size})"] = violations(citizen)
            j.shot(citizen, f"a11y-submission-errors-{size}")
            citizen.goto(f"/tra-cuu?code={AGENCY}-261206-0001&key=4321")
            found[f"tracking ({size})"] = violations(citizen)
            citizen.goto("/can-bo/dang-nhap")
            found[f"console sign-in ({size})"] = violations(citizen)
            citizen.context.close()
            leader = j.sign_in(f"leader@{AGENCY}", viewport)
            leader.goto("/lanh-dao")
            found[f"dashboard ({size})"] = violations(leader)
            leader.context.close()
    failing = {page: found_there for page, found_there in found.items() if found_there}
    assert not failing, f"serious or critical accessibility violations: {failing}"
    print(f"ACCESSIBILITY OK ({len(found)} pages)")


if __name__ == "__main__":
    main(sys.argv[1], Path(sys.argv[2]))
