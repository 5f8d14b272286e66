"""An automated accessibility pass (axe-core, vendored in tests/browser/axe/) over the citizen's and the
officers' pages, on a phone and a desktop: the portal's home, search, procedure, submission form (empty,
with errors, with a refused upload), tracking and statistics; the console's sign-in, queue, search, inbox
and task page; the leaders' dashboard. No serious or critical violation is allowed. The submission form's
errors are also checked by hand: each field in error says so (aria-invalid) and names its message
(aria-describedby), the focus is on the error summary, and a skip link leads to the content.

    python tests/browser/accessibility.py BASE_URL SCREENSHOT_DIR

Run as its own process, like journey.py; prints ACCESSIBILITY OK at the end.
"""
from __future__ import annotations

import sys
from pathlib import Path

from playwright.sync_api import Page, expect

from tests.browser.journey import (
    AGENCY,
    APPLICANT,
    DESKTOP,
    PDF,
    PHONE,
    PROCEDURE,
    citizen_submits,
    counter_receives,
    journey,
)

# Evaluated through the DevTools protocol: the pages' Content-Security-Policy refuses a script tag.
AXE = (Path(__file__).with_name("axe") / "axe.min.js").read_text()
BLOCKING = ("serious", "critical")
RUN_AXE = """async () => (await axe.run(document, {resultTypes: ['violations']})).violations.map(v => ({
    id: v.id, impact: v.impact, help: v.help, nodes: v.nodes.slice(0, 3).map(n => n.target.join(' '))}))"""
FORM = f"/thu-tuc/{PROCEDURE}/nop-ho-so"
PUBLIC = {"portal home": "/", "search": "/thu-tuc?q=hon+nhan", "procedure": f"/thu-tuc/{PROCEDURE}",
          "submission form": FORM, "statistics": "/thong-ke", "console sign-in": "/can-bo/dang-nhap"}
STAFF = {f"receptionist@{AGENCY}": {"console queue": "/can-bo", "console search": "/can-bo/tim-kiem"},
         f"specialist@{AGENCY}": {"console inbox": "/can-bo/viec"},
         f"leader@{AGENCY}": {"dashboard": "/lanh-dao", "dashboard last quarter by field": "/lanh-dao?ky=last_quarter&by=field"}}


def violations(page: Page) -> list[dict]:
    """axe-core's serious and critical violations on the page as it is now."""
    page.evaluate(AXE)
    return [v for v in page.evaluate(RUN_AXE) if v["impact"] in BLOCKING]


def submission_with_errors(page: Page) -> None:
    """The online form sent with a wrong phone number: the form comes back with its errors."""
    page.goto(FORM)
    page.fill("input[name='applicant.full_name']", APPLICANT["full_name"])
    page.fill("input[name='applicant.phone']", "12345")
    page.click("button[type=submit]")
    expect(page.locator(".field-error").first).to_be_visible()


def submission_with_a_refused_file(page: Page, tmp: Path) -> None:
    """A file over the size limit: the form comes back naming it."""
    page.goto(FORM)
    page.fill("input[name='applicant.full_name']", APPLICANT["full_name"])
    page.fill("input[name='applicant.id_number']", APPLICANT["id_number"])
    page.fill("input[name='applicant.phone']", APPLICANT["phone"])
    big = tmp / "qua-lon.pdf"
    big.write_bytes(PDF + b"0" * (6 * 1024 * 1024))
    page.set_input_files("input[name=to_khai]", str(big))
    page.click("button[type=submit]")
    expect(page.locator("label.field.invalid .field-error")).to_contain_text("qua-lon.pdf")


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


def task_address(j, code: str) -> str:
    """The specialist's task page of a dossier the counter has received."""
    specialist = j.sign_in(f"specialist@{AGENCY}")
    j.until(specialist, "/can-bo/viec", code)
    address = specialist.locator("li.task", has_text=code).locator("a.code").get_attribute("href")
    specialist.context.close()
    return address


def main(base: str, shots: Path) -> None:
    found = {}
    with journey(base, shots) as (j, tmp):
        code = citizen_submits(j, tmp)  # a dossier to track, and a task to open
        counter_receives(j, code).context.close()
        task = task_address(j, code)
        for size, viewport in (("phone", PHONE), ("desktop", DESKTOP)):
            citizen = j.context(viewport).new_page()
            skip_link(citizen)
            for name, path in PUBLIC.items():
                citizen.goto(path)
                found[f"{name} ({size})"] = violations(citizen)
            submission_with_errors(citizen)
            errors_are_announced(citizen)
            found[f"submission form with errors ({size})"] = violations(citizen)
            j.shot(citizen, f"a11y-submission-errors-{size}")
            submission_with_a_refused_file(citizen, tmp)
            errors_are_announced(citizen)
            found[f"submission form with a refused file ({size})"] = violations(citizen)
            citizen.goto(f"/tra-cuu?code={code}&key=4321")
            found[f"tracking ({size})"] = violations(citizen)
            citizen.context.close()
            for username, pages in STAFF.items():
                officer = j.sign_in(username, viewport)
                for name, path in pages.items():
                    officer.goto(path)
                    found[f"{name} ({size})"] = violations(officer)
                if username.startswith("specialist@"):
                    officer.goto(task)
                    found[f"task page ({size})"] = violations(officer)
                officer.context.close()
    failing = {page: found_there for page, found_there in found.items() if found_there}
    assert not failing, f"serious or critical accessibility violations: {failing}"
    print(f"ACCESSIBILITY OK ({len(found)} pages)")


if __name__ == "__main__":
    main(sys.argv[1], Path(sys.argv[2]))
