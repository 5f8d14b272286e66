"""`make run`'s embedded platform answers the README's curl walk-through (docs/walkthrough.sh)."""
import mailbox
import os
import subprocess

import pytest

from motcua.config import ROOT
from tests.e2e.client import APPLICANT

pytestmark = pytest.mark.e2e


def test_readme_walkthrough_takes_a_dossier_to_returned(embedded):
    base, var = embedded
    result = subprocess.run(["bash", str(ROOT / "docs" / "walkthrough.sh")], env={**os.environ, "BASE_URL": base},
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "4. returned" in result.stdout
    assert "5. tracking says: returned" in result.stdout
    assert '"early": 1' in result.stdout  # the report counts it, resolved before its due date
    # "submitted online" (the code at submission), "received" and "result ready"
    assert len(mailbox.mbox(str(var / "mailbox.mbox"))) == 3
    run_log = (var / "run.log").read_text()
    assert "Motcua is serving on http://" in run_log
    # a newcomer reads where each audience's pages are and which accounts sign in
    for where in ("/can-bo/dang-nhap", "/lanh-dao", "/api/v1", "password 'demo'", "leader@C"):
        assert where in run_log, f"make run does not say {where}"
    for secret in (APPLICANT["id_number"], APPLICANT["phone"], "binh.tran@example.vn", "Hàng Bông",
                   f"key={APPLICANT['phone'][-4:]}"):
        assert secret not in run_log, "personal data in a log line"
