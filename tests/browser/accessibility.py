"""An automated accessibility pass (axe-core, from the npm registry: tests/browser/axe/package.json) over
the citizen's and the officers' pages, on a phone and on a desktop: no serious or critical violation.

    python tests/browser/accessibility.py BASE_URL SCREENSHOT_DIR

Prints ACCESSIBILITY OK, else each violation with the pages it was found on.
"""
from __future__ import annotations

import sys
from pathlib import Path

from tests.browser.journey import AGENCY, DESKTOP, PHONE, PROCEDURE, journey

AXE = Path(__file__).with_name("axe") / "node_modules" / "axe-core" / "axe.min.js"
PUBLIC = ["/", "/thu-tuc?q=hon+nhan", f"/thu-tuc/{PROCEDURE}", f"/thu-tuc/{PROCEDURE}/nop-ho-so", "/tra-cuu",
          "/thong-ke", "/can-bo/dang-nhap"]
STAFF = {f"receptionist@{AGENCY}": ["/can-bo", "/can-bo/tim-kiem"], f"specialist@{AGENCY}": ["/can-bo/viec"],
         f"leader@{AGENCY}": ["/lanh-dao", "/lanh-dao?ky=last_quarter"]}
SERIOUS = ("serious", "critical")


def violations(page, path: str) -> list[str]:
    page.goto(path)
    return checked(page, path)


def checked(page, path: str) -> list[str]:
    """The serious violations of the page as it is now."""
    # axe is added from the test's side (CDP), not by the page: the CSP allows the page no script
    page.evaluate(AXE.read_text())
    found = page.evaluate("async () => (await axe.run(document)).violations"
                          ".map(v => ({id: v.id, impact: v.impact, help: v.help, nodes: v.nodes.length}))")
    return [f"{path}: {v['id']} ({v['impact']}, {v['nodes']}×) {v['help']}" for v in found if v["impact"] in SERIOUS]


def main(base: str, shots: Path) -> None:
    if not AXE.exists():
        raise SystemExit(f"axe-core is not installed: npm install --prefix {AXE.parents[2]}")
    found = []
    with journey(base, shots) as (j, _tmp):
        for viewport in (PHONE, DESKTOP):
            citizen = j.context(viewport).new_page()
            for path in PUBLIC:
                found += violations(citizen, path)
            citizen.goto(f"/thu-tuc/{PROCEDURE}/nop-ho-so")
            citizen.click("button[type=submit]")  # the form again with its errors (aria-invalid, the summary)
            found += checked(citizen, f"/thu-tuc/{PROCEDURE}/nop-ho-so (refused)")
            citizen.context.close()
            for username, paths in STAFF.items():
                officer = j.sign_in(username)
                officer.set_viewport_size(viewport)
                for path in paths:
                    found += violations(officer, path)
                officer.context.close()
    if found:
        raise SystemExit("serious accessibility violations:\n" + "\n".join(sorted(set(found))))
    print("ACCESSIBILITY OK")


if __name__ == "__main__":
    main(sys.argv[1], Path(sys.argv[2]))
