"""The pages in a real browser: Debian's headless chromium drives journey.py (Playwright's sync API in its own
process: this one is eventlet-patched) against the embedded platform. Screenshots: test-artifacts/browser/."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from motcua.config import ROOT
from tests.infra import embedded_platform, embedded_platform_process, free_port, wait_for
from tests.notify.conftest import read_mbox

CHROMIUM = Path("/usr/bin/chromium")
HOW_TO_INSTALL = ("The browser tests need Debian's chromium at /usr/bin/chromium: "
                  "apt-get update && apt-get install -y chromium (as root; make test and .ci/run do it). "
                  "Never `playwright install`: it downloads a browser.")
ARTIFACTS = ROOT / "test-artifacts" / "browser"

pytestmark = pytest.mark.e2e


def run_script(script: str, base: str, shots: Path) -> str:
    """`script` (beside this file) against the platform at `base`; its output, once it exited 0."""
    if not CHROMIUM.exists():
        pytest.fail(HOW_TO_INSTALL, pytrace=False)
    result = subprocess.run([sys.executable, str(Path(__file__).with_name(script)), base, str(shots)],
                            capture_output=True, text=True, timeout=300, cwd=ROOT,
                            env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


def test_citizen_counter_specialist_and_leader_in_the_browser(tmp_path):
    with embedded_platform(tmp_path) as base:
        output = run_script("journey.py", base, ARTIFACTS)
    assert "JOURNEY OK" in output
    shots = sorted(path.name for path in ARTIFACTS.glob("*.png"))
    for page in ("portal-home", "portal-receipt", "portal-track", "console-queue", "console-inbox", "dashboard"):
        assert any(page in name for name in shots), f"no screenshot of {page}"


def test_a_refused_file_keeps_the_form_and_back_and_submit_again_is_one_dossier(tmp_path):
    """Phone and desktop: the oversize file named, the rest kept; POST/redirect/GET; Back + submit = the
    same dossier; and the code reaches the citizen by e-mail and SMS at submission."""
    with embedded_platform(tmp_path) as base:
        output = run_script("citizen_forms.py", base, ARTIFACTS / "forms")
        codes = output.split("FORMS OK", 1)[1].split()
        assert len(codes) == 6, output
        mailbox, sms = tmp_path / "mailbox.mbox", tmp_path / "sms-outbox.jsonl"
        assert wait_for(lambda: mailbox.exists() and sms.exists()
                        and all(code in mailbox.read_text() and code in sms.read_text() for code in codes), 30)
    subjects = [message["subject"] for message in read_mbox(mailbox)]
    assert all(f"[Một cửa] Đã nhận hồ sơ trực tuyến {code}" in subjects for code in codes), subjects


def test_a_strangers_wrong_keys_stop_the_stranger_and_never_lock_the_owner_out(tmp_path):
    """Behind a trusted proxy, each browser its own address (the default limits: 5, 50, 10 in 15 min)."""
    with embedded_platform_process(tmp_path, {"MOTCUA_TRUSTED_PROXIES": "127.0.0.1"}) as (_process, base):
        output = run_script("tracking_lockout.py", base, ARTIFACTS / "lockout")
    assert "LOCKOUT OK" in output


def test_the_task_page_shows_the_dossier_and_the_last_step_says_where_it_goes(tmp_path):
    with embedded_platform(tmp_path) as base:
        output = run_script("task_page.py", base, ARTIFACTS / "task")
    assert "TASK PAGE OK" in output


def test_the_leaders_period_picker_the_exports_following_it_and_the_dashboard_on_a_phone(tmp_path):
    """Quick picks and from/to, agency and grouping in a shareable URL, the XLSX/PDF/CSV exports of the
    same choice; on a phone every chart label at 12 px or more, charts scrolling in their box."""
    with embedded_platform(tmp_path) as base:
        output = run_script("dashboard.py", base, ARTIFACTS / "dashboard")
    assert "DASHBOARD OK" in output
    shots = sorted(path.name for path in (ARTIFACTS / "dashboard").glob("*.png"))
    for page in ("period-picker", "dashboard-phone"):
        assert any(page in name for name in shots), f"no screenshot of {page}"


def test_no_serious_accessibility_violation_on_a_phone_or_a_desktop(tmp_path):
    """axe-core (vendored in tests/browser/axe/) over the portal's, the console's and the leaders' pages."""
    with embedded_platform(tmp_path) as base:
        output = run_script("accessibility.py", base, ARTIFACTS / "accessibility")
    assert "ACCESSIBILITY OK" in output


def test_a_citizen_signed_in_with_vneid_submits_without_typing_their_identity_and_pays_online(tmp_path):
    """Issue 15, phone and desktop: VNeID sign-in on the identity provider's simulator, the portal's form
    with the identity read-only, "Hồ sơ của tôi"; the fee a step asks (status 6) paid through the portal's
    button on the payment platform's simulator, confirmed on the portal, the dossier processing again."""
    catalog = tmp_path / "catalog"  # the province's catalogue, its marital-status check asking a fee at step 1
    shutil.copytree(ROOT / "deploy" / "catalog", catalog)
    processes = catalog / "processes.yaml"
    first_step = "      - name: Xác minh, đề xuất\n        agency_code: 000.20.02.H56\n        role: specialist\n" \
                 "        allowance: 2\n"
    assert first_step in processes.read_text()
    processes.write_text(processes.read_text().replace(
        first_step, first_step + "        actions: [approve, send_back, request_supplement, require_payment]\n"))
    settings = {"VNEID_ISSUER": f"http://127.0.0.1:{free_port()}", "MOTCUA_CATALOG_DIR": str(catalog),
                "INTAKE_PAYMENT_URL": f"http://127.0.0.1:{free_port()}"}  # their simulators: the platform starts them
    with embedded_platform_process(tmp_path, settings) as (_process, base):
        output = run_script("citizen_vneid_payment.py", base, ARTIFACTS / "vneid-payment")
    assert "VNEID PAYMENT OK" in output, output
    assert len(output.split("VNEID PAYMENT OK", 1)[1].split()) == 2


def test_the_session_warns_before_its_end_renews_and_keeps_what_was_typed_through_a_new_sign_in(tmp_path):
    """Phone and desktop, 30-second tokens: the warning and 'Tiếp tục làm việc'; the queue's refusal and a
    supplement request with ~5,000 characters (more than a cookie holds) posted after the end, kept through the sign-in."""
    with embedded_platform_process(tmp_path, {"MOTCUA_TOKEN_TTL_SECONDS": "30",
                                              "MOTCUA_SESSION_WARNING_SECONDS": "20"}) as (_process, base):
        output = run_script("session_expiry.py", base, ARTIFACTS / "session")
    assert "SESSION OK" in output
