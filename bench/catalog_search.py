"""Catalogue search at a province's scale (issue 14: diacritic-insensitive, p95 under 50 ms).

    python -m bench.catalog_search [--catalog-dir DIR] [--rounds 5] [--no-http]

On the synthetic province (bench/province.py: 2,000 procedures, 1,000 agencies; generated into a
temporary directory unless --catalog-dir names one): every query typed as a person types it, word by
word without diacritics (each prefix is a request, as the portal's search box sends them), measured
1. in intake's process: `Catalog.search` (what the RPC runs);
2. over HTTP: `GET /api/v1/procedures?q=…&limit=20` on `make run`'s embedded platform started on that
   catalogue (gateway → RPC → intake → JSON), one client, sequential;
and the same over HTTP without `limit` (every match: what a client asking for all of them pays).
Prints p50 / p95 / max in ms and the number of requests. Nothing is asserted: bench/README.md records it."""
from __future__ import annotations

import argparse
import platform
import tempfile
import time
from datetime import date
from pathlib import Path

from bench.report import percentile

QUERIES = ["dang ky khai sinh", "giay phep xay dung nha o", "cap lai giay chung nhan quyen su dung dat",
           "Đăng ký thường trú", "chung thuc ban sao", "ho kinh doanh", "the bao hiem y te", "phieu ly lich tu phap",
           "tro cap xa hoi", "ma so thue", "giay phep lai xe", "an toan thuc pham", "hoi quy", "cong chung",
           "1.100042", "thu tuc", "xa Quang Phu", "khoang san"]


def typed(query: str) -> list[str]:
    """'dang ky khai' → ['d', 'dang', 'dang k', 'dang ky', 'dang ky k', 'dang ky khai']: the requests a
    search box sends (the first letter of each word and the word complete)."""
    words, found = query.split(), []
    for index, word in enumerate(words):
        head = " ".join(words[:index])
        found += [f"{head} {word[0]}".strip(), f"{head} {word}".strip()]
    return found


def summary(samples_ms: list[float]) -> str:
    return (f"p50 {percentile(samples_ms, 0.5):6.1f}  p95 {percentile(samples_ms, 0.95):6.1f}  "
            f"max {max(samples_ms):6.1f} ms  ({len(samples_ms)} requests)")


def in_process(directory: Path, rounds: int) -> list[float]:
    from services.intake.catalog import Catalog

    started = time.perf_counter()
    catalog = Catalog.load(directory)
    print(f"catalogue loaded in {time.perf_counter() - started:.2f} s: {len(catalog.versions)} procedures, "
          f"{len(catalog.agencies)} agencies")
    today, samples = date.today(), []
    for _ in range(rounds):
        for query in QUERIES:
            for text in typed(query):
                started = time.perf_counter()
                catalog.search(text, on=today)
                samples.append((time.perf_counter() - started) * 1000)
    return samples


def over_http(directory: Path, rounds: int) -> tuple[list[float], list[float]]:
    import requests

    from tests import infra

    with tempfile.TemporaryDirectory() as var, \
            infra.embedded_platform_process(Path(var), {"MOTCUA_CATALOG_DIR": str(directory)}) as (_process, base):
        session = requests.Session()
        limited, everything = [], []
        for round_ in range(rounds + 1):  # the first round warms up: not counted
            for query in QUERIES:
                for text in typed(query):
                    for params, samples in (({"q": text, "limit": 20}, limited), ({"q": text}, everything)):
                        started = time.perf_counter()
                        response = session.get(f"{base}/api/v1/procedures", params=params, timeout=30)
                        elapsed = (time.perf_counter() - started) * 1000
                        response.raise_for_status()
                        if round_:
                            samples.append(elapsed)
        return limited, everything


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.catalog_search", description=__doc__.split("\n\n")[0])
    parser.add_argument("--catalog-dir", type=Path, help="a catalogue (default: the synthetic province, generated)")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--no-http", action="store_true", help="only the in-process search")
    args = parser.parse_args(argv)
    print(f"machine: {platform.machine()}, Python {platform.python_version()}, {platform.system()} {platform.release()}")
    with tempfile.TemporaryDirectory() as scratch:
        directory = args.catalog_dir
        if directory is None:
            from bench import province

            directory = Path(scratch) / "catalog"
            province.write(directory)
        print("Catalog.search (intake's process):  " + summary(in_process(directory, args.rounds)))
        if not args.no_http:
            limited, everything = over_http(directory, args.rounds)
            print("GET /api/v1/procedures?q=…&limit=20: " + summary(limited))
            print("GET /api/v1/procedures?q=… (all):   " + summary(everything))


if __name__ == "__main__":
    main()
