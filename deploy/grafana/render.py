"""Each dashboard's panels drawn from a running Prometheus, one PNG per dashboard: what the dashboards
show, where no Grafana can run (docs/operations.md says which pictures were made this way).

    python deploy/grafana/render.py --prometheus http://127.0.0.1:9090 --minutes 30 --out docs/operations

Reads the panels from deploy/grafana/dashboards.py and asks Prometheus's HTTP API (`query_range`) for each
query exactly as Grafana would, its variables set to "All". Needs matplotlib and requests, which are not
Motcua's dependencies (a venv of their own will do).
"""
from __future__ import annotations

import argparse
import importlib.util
import re
import time
from pathlib import Path

import matplotlib
import requests

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

HERE = Path(__file__).parent
ALL = {"$service": ".*", "$agency": ".*"}  # Grafana's "All" for the dashboards' variables


def dashboards() -> dict:
    spec = importlib.util.spec_from_file_location("motcua_dashboards", HERE / "dashboards.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.DASHBOARDS


def query_range(prometheus: str, expr: str, start: float, end: float, step: float) -> list[dict]:
    for variable, value in ALL.items():
        expr = expr.replace(variable, value)
    answer = requests.get(f"{prometheus}/api/v1/query_range",
                          params={"query": expr, "start": start, "end": end, "step": step}, timeout=30)
    answer.raise_for_status()
    return answer.json()["data"]["result"]


def legend(template: str, labels: dict, expr: str) -> str:
    if template:
        return re.sub(r"\{\{\s*(\w+)\s*\}\}", lambda m: labels.get(m.group(1), ""), template)
    return ", ".join(f"{k}={v}" for k, v in labels.items() if k not in ("__name__", "job", "instance")) or expr[:60]


def draw(board: dict, prometheus: str, start: float, end: float, step: float, out: Path) -> Path:
    panels = board["panels"]
    rows = (len(panels) + 1) // 2
    figure, axes = plt.subplots(rows, 2, figsize=(16, 3.6 * rows), squeeze=False)
    for ax, panel in zip(axes.flat, panels):
        drawn = 0
        for target in panel["targets"]:
            for series in query_range(prometheus, target["expr"], start, end, step):
                points = [(float(t), float(v)) for t, v in series["values"]]
                minutes = [(t - end) / 60 for t, _ in points]
                ax.plot(minutes, [v for _, v in points], label=legend(target["legendFormat"], series["metric"],
                                                                       target["expr"])[:50])
                drawn += 1
        unit = panel["fieldConfig"]["defaults"]["unit"]
        ax.set_title(panel["title"] + ("" if unit == "short" else f"  [{unit}]"), fontsize=10)
        ax.set_xlabel("minutes before the picture", fontsize=8)
        ax.tick_params(labelsize=8)
        if drawn == 0:
            ax.text(0.5, 0.5, "no data", ha="center", va="center", transform=ax.transAxes, color="grey")
        elif drawn <= 8:
            ax.legend(fontsize=7, loc="upper left")
    for ax in list(axes.flat)[len(panels):]:
        ax.axis("off")
    figure.suptitle(f"{board['title']} (drawn from Prometheus {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime(end))})")
    figure.tight_layout(rect=(0, 0, 1, 0.98))
    path = out / f"dashboard-{board['uid']}.png"
    figure.savefig(path, dpi=80)
    plt.close(figure)
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--prometheus", default="http://127.0.0.1:9090")
    parser.add_argument("--minutes", type=float, default=30)
    parser.add_argument("--out", type=Path, default=Path("docs/operations"))
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    end = time.time()
    start = end - 60 * args.minutes
    for board in dashboards().values():
        print(draw(board, args.prometheus.rstrip("/"), start, end, max(15.0, 60 * args.minutes / 200), args.out))


if __name__ == "__main__":
    main()
