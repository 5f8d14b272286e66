"""A progress bar on stderr for long jobs (seeding, replays, benchmarks)."""
from __future__ import annotations

import sys


def progress(label: str, done: int, total: int, width: int = 30) -> None:
    filled = int(width * done / total) if total else width
    sys.stderr.write(f"\r{label} [{'#' * filled}{'.' * (width - filled)}] {done}/{total}")
    if done >= total:
        sys.stderr.write("\n")
    sys.stderr.flush()
