"""The pages in a real browser: Debian's headless chromium drives journey.py (Playwright's sync API in its own
process: this one is eventlet-patched) against the embedded platform. Screenshots: test-artifacts/browser/."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from motcua.config import ROOT
from tests.infra import embedded_platform

CHROMIUM = Path("/usr/bin/chromium")
HOW_TO_INSTALL = ("The browser tests need Debian's chromium at /usr/bin/chromium: "
                  "apt-get update && apt-get install -y chromium (as root; make test and .ci/run do it). "
                  "Never `playwright install`: it downloads a browser.")
ARTIFACTS = ROOT / "test-artifacts" / "browser"

pytestmark = pytest.mark.e2e


def run_in_browser(script: str, tmp_path: Path, shots: Path, done: str) -> list[str]:
    """Run `script` (beside this file) against a fresh embedded platform; the screenshots' names."""
    if not CHROMIUM.exists():
        pytest.fail(HOW_TO_INSTALL, pytrace=False)
    with embedded_platform(tmp_path) as base:
        result = subprocess.run([sys.executable, str(Path(__file__).with_name(script)), base, str(shots)],
                                capture_output=True, text=True, timeout=150, cwd=ROOT,
                                env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert result.returncode == 0, result.stdout + result.stderr
    assert done in result.stdout
    return sorted(path.name for path in shots.glob("*.png"))


def test_citizen_counter_specialist_and_leader_in_the_browser(tmp_path):
    shots = run_in_browser("journey.py", tmp_path, ARTIFACTS, "JOURNEY OK")
    for page in ("portal-home", "portal-receipt", "portal-track", "console-queue", "console-inbox", "dashboard"):
        assert any(page in name for name in shots), f"no screenshot of {page}"


def test_the_leaders_period_picker_and_the_dashboard_on_a_phone(tmp_path):
    shots = run_in_browser("dashboard.py", tmp_path, ROOT / "test-artifacts" / "browser-dashboard", "DASHBOARD OK")
    for page in ("period-picker", "dashboard-phone"):
        assert any(page in name for name in shots), f"no screenshot of {page}"


def test_no_serious_accessibility_violation_on_the_pages_each_audience_starts_from(tmp_path):
    run_in_browser("accessibility.py", tmp_path, ROOT / "test-artifacts" / "browser-a11y", "ACCESSIBILITY OK")
