"""The README's walk-through reports on the province's date on a machine whose clock is UTC: its date
line, run at 18:30 UTC (already tomorrow in Asia/Ho_Chi_Minh) under a `date` whose clock is fixed there."""
from __future__ import annotations

import os
import re
import shutil
import subprocess
from datetime import datetime, timezone

from motcua.config import ROOT

# 18:30 UTC on 6 December 2026: 01:30 on the 7th in the province.
EVENING_UTC = int(datetime(2026, 12, 6, 18, 30, tzinfo=timezone.utc).timestamp())
REPORT_DATE = re.compile(r"^TODAY=.*$", re.MULTILINE)


def report_date(line: str, tmp_path, machine_tz: str = "UTC") -> str:
    """What `line` sets TODAY to under a `date` that reads the clock as EVENING_UTC."""
    fake = tmp_path / "bin"
    fake.mkdir(exist_ok=True)
    (fake / "date").write_text(f'#!/bin/sh\nexec {shutil.which("date")} -d @{EVENING_UTC} "$@"\n')
    (fake / "date").chmod(0o755)
    env = {**os.environ, "PATH": f"{fake}:{os.environ['PATH']}", "TZ": machine_tz}
    return subprocess.run(["bash", "-c", f'{line}\necho "$TODAY"'], env=env, capture_output=True, text=True,
                          check=True).stdout.strip()


def test_the_walkthroughs_report_uses_the_provinces_date_on_a_utc_machine(tmp_path):
    script, = REPORT_DATE.findall((ROOT / "docs" / "walkthrough.sh").read_text())
    readme, = REPORT_DATE.findall((ROOT / "README.md").read_text())
    assert script == readme, "the README prints the script's date line"
    assert report_date("TODAY=$(date +%F)", tmp_path) == "2026-12-06"  # the machine's date: the old bug
    assert report_date(script, tmp_path) == "2026-12-07"
    assert report_date(script, tmp_path, machine_tz="America/New_York") == "2026-12-07"
