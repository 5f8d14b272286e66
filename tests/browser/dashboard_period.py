"""The leaders' period picker in Debian's headless chromium, on a phone: a quick pick and then any period,
each held by the URL (a shared link shows the same view) and followed by the export's link.

    python tests/browser/dashboard_period.py BASE_URL SCREENSHOT_DIR

Prints PERIOD OK.
"""
from __future__ import annotations

import sys
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

from playwright.sync_api import expect

from tests.browser.journey import AGENCY, PHONE, journey


def main(base: str, shots: Path) -> None:
    with journey(base, shots) as (j, _tmp):
        leader = j.sign_in(f"leader@{AGENCY}")
        leader.set_viewport_size(PHONE)
        leader.goto("/lanh-dao")
        leader.locator(".quick-picks a", has_text="Quý trước").click()
        assert parse_qs(urlsplit(leader.url).query)["ky"] == ["last_quarter"], leader.url
        expect(leader.locator(".quick-picks a.current")).to_have_text("Quý trước")
        shown = leader.locator(".period-shown").inner_text()
        first, last = leader.input_value("input[name=from]"), leader.input_value("input[name=to]")
        assert shown.startswith("Quý trước:"), shown
        j.shot(leader, "dashboard-quick-pick-phone")
        leader.fill("input[name=from]", "2026-01-01")
        leader.fill("input[name=to]", "2026-06-30")
        leader.locator("form.period button[type=submit]").click()
        query = parse_qs(urlsplit(leader.url).query)
        assert (query["from"], query["to"]) == (["2026-01-01"], ["2026-06-30"]), leader.url
        expect(leader.locator(".period-shown")).to_contain_text("Tùy chọn: 01/01/2026 – 30/06/2026")
        export = leader.locator("a", has_text="Xuất báo cáo").get_attribute("href")
        assert "from=2026-01-01" in export and "to=2026-06-30" in export, export
        other = j.sign_in(f"leader@{AGENCY}")  # the link shared with another leader: the same period
        other.goto(leader.url)
        expect(other.locator(".period-shown")).to_contain_text("01/01/2026 – 30/06/2026")
        j.shot(leader, "dashboard-period-picker-phone")
    print("PERIOD OK", first, last)


if __name__ == "__main__":
    main(sys.argv[1], Path(sys.argv[2]))
