"""Chart geometry for the leaders' dashboard, drawn as inline SVG by templates/dashboard/_charts.html
(no JavaScript, no library: the province's network may have no internet)."""
from __future__ import annotations

import math

WIDTH = 720


def nice_max(value: float) -> int:
    """A round upper bound for an axis (1, 2, 5 × 10ⁿ) at or above `value`."""
    if value <= 0:
        return 1
    power = 10 ** math.floor(math.log10(value))
    return next(int(step * power) for step in (1, 2, 5, 10) if step * power >= value)


def tick_values(scale_max: int) -> list[int]:
    """Whole numbers from 0 to `scale_max`, about four steps apart (dossiers are counted, not measured)."""
    step = max(1, nice_max(scale_max / 4))
    return list(range(0, scale_max + 1, step))


def stacked_bars(rows: list[dict], series: list[tuple[str, str, str]], label_width: int = 230,
                 bar: int = 22, gap: int = 12) -> dict:
    """Horizontal stacked bars, one per row: `rows` = [{"label", "values": {key: n}, "links": {key: href}}],
    `series` = [(key, legend label, css class)]. Each segment links to the dossiers behind it."""
    scale_max = nice_max(max((sum(r["values"].values()) for r in rows), default=0))
    plot = WIDTH - label_width - 50
    bars = []
    for index, row in enumerate(rows):
        x, segments = label_width, []
        for key, label, css in series:
            value = row["values"].get(key, 0)
            width = plot * value / scale_max
            if value:
                segments.append({"x": round(x, 1), "w": round(max(width, 1.5), 1), "value": value, "css": css,
                                 "title": f"{label}: {value}", "href": row.get("links", {}).get(key)})
            x += width
        bars.append({"y": index * (bar + gap) + 8, "label": row["label"], "segments": segments,
                     "total": sum(row["values"].values()), "end": round(x, 1)})
    ticks = [{"x": round(label_width + plot * v / scale_max, 1), "value": v} for v in tick_values(scale_max)]
    height = len(rows) * (bar + gap) + 36
    return {"width": WIDTH, "height": height, "bar": bar, "label_width": label_width, "bars": bars,
            "ticks": ticks, "axis_y": height - 22, "legend": series}


def line_chart(dates: list[str], lines: list[tuple[str, str, list[int]]], height: int = 240) -> dict:
    """Lines over days: `lines` = [(legend label, css class, one value per date)]."""
    left, right, top, bottom = 40, 12, 12, 28
    plot_w, plot_h = WIDTH - left - right, height - top - bottom
    scale_max = nice_max(max((v for _label, _css, values in lines for v in values), default=0))
    step = plot_w / max(len(dates) - 1, 1)

    def point(i: int, value: int) -> tuple[float, float]:
        return round(left + i * step, 1), round(top + plot_h * (1 - value / scale_max), 1)

    paths = [{"label": label, "css": css, "total": sum(values),
              "points": " ".join(f"{x},{y}" for x, y in (point(i, v) for i, v in enumerate(values))),
              "dots": [{"x": x, "y": y, "value": v, "date": dates[i]}
                       for i, v in enumerate(values) for x, y in [point(i, v)]]}
             for label, css, values in lines]
    every = max(1, len(dates) // 6)
    x_ticks = [{"x": point(i, 0)[0], "label": f"{d[8:10]}/{d[5:7]}"} for i, d in enumerate(dates) if i % every == 0]
    y_ticks = [{"y": point(0, v)[1], "value": v} for v in tick_values(scale_max)]
    return {"width": WIDTH, "height": height, "left": left, "right": WIDTH - right, "paths": paths,
            "x_ticks": x_ticks, "y_ticks": y_ticks, "base": top + plot_h}
