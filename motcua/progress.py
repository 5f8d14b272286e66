"""A progress bar on stderr for long jobs (seeding, replays, benchmarks, the chaos suite)."""
from __future__ import annotations

import sys


def progress(label: str, done: int, total: int, width: int = 30) -> None:
    """Redrawn in place on a terminal; written to a log or a pipe, one line per tenth of the way (a
    redrawn bar there is thousands of frames on one line)."""
    filled = int(width * done / total) if total else width
    bar = f"{label} [{'#' * filled}{'.' * (width - filled)}] {done}/{total}"
    if sys.stderr.isatty():
        sys.stderr.write(f"\r{bar}" + ("\n" if done >= total else ""))
    elif total and (done >= total or done * 10 // total != (done - 1) * 10 // total):
        sys.stderr.write(f"{bar}\n")
    sys.stderr.flush()
