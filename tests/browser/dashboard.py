"""The leaders' dashboard in Debian's headless chromium: the period picker (quick picks, from/to, agency,
grouping) held in a URL another leader can open, the exports following the choice, and the charts read on
a phone (every label drawn at 12 px or more, wide content scrolling inside its box, never the page).

    python tests/browser/dashboard.py BASE_URL SCREENSHOT_DIR

Run as its own process, like journey.py; prints DASHBOARD OK at the end.
"""
from __future__ import annotations

import re
import sys
from pathlib import Path
from urllib.parse import parse_qs, urlparse

from playwright.sync_api import expect

from tests.browser.journey import AGENCY, PHONE, Journey, citizen_submits, journey

MIN_LABEL_PX = 12
# Each chart label's size as drawn: its CSS font size times the SVG's scale on the screen.
DRAWN_LABEL_SIZES = """() => [...document.querySelectorAll('svg.chart text')].map(t => ({
    text: t.textContent, px: parseFloat(getComputedStyle(t).fontSize) * t.getScreenCTM().a}))"""
# What overflows the page sideways (a phone must never scroll the whole page).
PAGE_OVERFLOW = "() => document.documentElement.scrollWidth - window.innerWidth"


def period_picker(j: Journey) -> None:
    """Desktop: a quick pick, then dates, an agency and fields; the address is the choice."""
    leader = j.sign_in(f"leader@{AGENCY}")
    leader.goto("/lanh-dao")
    leader.click("nav.quick-picks >> text=Quý trước")
    leader.wait_for_url(re.compile(r"ky=last_quarter"))
    expect(leader.locator("#period-shown")).to_contain_text("Quý trước:")
    expect(leader.locator(".quick-picks a.current")).to_have_text("Quý trước")
    picker = leader.locator("#period-picker")
    picker.locator("input[name=from]").fill("2026-01-01")
    picker.locator("input[name=to]").fill("2026-12-31")
    picker.locator("input[name=agency]").fill(AGENCY)
    picker.locator("select[name=by]").select_option("field")
    picker.locator("button[type=submit]").click()
    leader.wait_for_url(re.compile(r"from=2026-01-01"))
    chosen = parse_qs(urlparse(leader.url).query)
    assert chosen["from"] == ["2026-01-01"] and chosen["to"] == ["2026-12-31"] and chosen["by"] == ["field"], chosen
    expect(leader.locator("#period-shown")).to_contain_text("Tùy chọn: 01/01/2026 – 31/12/2026")
    expect(leader.locator("table.list th").first).to_have_text("Lĩnh vực")
    for fmt in ("xlsx", "pdf", "csv"):
        href = leader.locator(f"a[data-format={fmt}]").get_attribute("href")
        query = parse_qs(urlparse(href).query)
        assert (query["from"], query["to"], query["agency"], query["by"], query["format"]) == (
            ["2026-01-01"], ["2026-12-31"], [AGENCY], ["field"], [fmt]), href
        exported = leader.request.get(href)
        assert exported.ok and f"II.06a_field_2026-01-01_2026-12-31.{fmt}" in exported.headers["content-disposition"]
    j.shot(leader, "period-picker")
    shared = leader.url
    other = j.sign_in(f"leader@{AGENCY}")  # another leader opens the shared address: the same view
    other.goto(shared)
    expect(other.locator("#period-shown")).to_contain_text("Tùy chọn: 01/01/2026 – 31/12/2026")
    expect(other.locator("select[name=by]")).to_have_value("field")
    other.context.close()
    leader.context.close()


def phone_dashboard(j: Journey) -> None:
    """Phone: every chart label drawn at 12 px or more; the charts and tables scroll in their boxes."""
    leader = j.sign_in(f"leader@{AGENCY}", PHONE)
    leader.goto("/lanh-dao?ky=year")
    labels = leader.evaluate(DRAWN_LABEL_SIZES)
    assert labels, "no chart label on the dashboard"
    small = [label for label in labels if label["px"] < MIN_LABEL_PX - 0.01]
    assert not small, f"chart labels under {MIN_LABEL_PX} px on a phone: {small[:5]}"
    assert leader.evaluate(PAGE_OVERFLOW) <= 0, "the page itself scrolls sideways on a phone"
    wrap = leader.locator(".chart-wrap").first
    assert wrap.evaluate("w => w.scrollWidth > w.clientWidth"), "the chart is not scrolled inside its box"
    table = leader.locator(".table-wrap").first
    assert table.evaluate("w => getComputedStyle(w).overflowX") == "auto"
    j.shot(leader, "dashboard-phone")
    leader.context.close()


def main(base: str, shots: Path) -> None:
    with journey(base, shots) as (j, tmp):
        citizen_submits(j, tmp)  # one dossier received today: the charts have a line to draw
        period_picker(j)
        phone_dashboard(j)
    print(f"DASHBOARD OK ({j.count} screenshots)")


if __name__ == "__main__":
    main(sys.argv[1], Path(sys.argv[2]))
