"""From two snapshots to figures per unit of work (a dossier, a request); ratios; tables; profiles."""
from __future__ import annotations

from pathlib import Path

from bench.sides import Snapshot

DATABASE_COUNTS = ("commits", "rollbacks", "pre_pings", "reset_rollbacks", "connects")
SERVICE_COLUMNS = (("cpu_ms", "CPU ms", "{:.1f}"), ("statements", "SQL", "{:.1f}"), ("commits", "commits", "{:.1f}"),
                   ("rollbacks", "rollbacks", "{:.1f}"), ("pre_pings", "pre-pings", "{:.1f}"),
                   ("published", "published", "{:.1f}"), ("delivered", "delivered", "{:.1f}"))


def counter_delta(before: dict, after: dict) -> dict:
    return {key: after[key] - before.get(key, 0) for key in after if after[key] != before.get(key, 0)}


def per_service(before: Snapshot, after: Snapshot, units: float) -> dict[str, dict[str, float]]:
    """Per service and per unit: CPU ms, SQL statements, commits, rollbacks, pre-pings, messages."""
    figures = {}
    for name, cpu in after.services_cpu.items():
        old, new = before.probe[name], after.probe[name]
        counts = {
            "cpu_ms": (cpu - before.services_cpu[name]) * 1000,
            "statements": sum(new["statements"].values()) - sum(old["statements"].values()),
            **{key: new["database"].get(key, 0) - old["database"].get(key, 0) for key in DATABASE_COUNTS},
            "published": sum(new["published"].values()) - sum(old["published"].values()),
            "delivered": sum(new["delivered"].values()) - sum(old["delivered"].values()),
        }
        figures[name] = {key: value / units for key, value in counts.items()}
    figures["all services"] = {key: sum(f[key] for f in figures.values()) for key in next(iter(figures.values()))}
    return figures


def details(before: Snapshot, after: Snapshot, units: float) -> dict[str, dict]:
    """Per service and per unit: statements by verb, messages by exchange (for the JSON, not the table)."""
    return {name: {part: {key: value / units for key, value in counter_delta(before.probe[name][part],
                                                                           after.probe[name][part]).items()}
                   for part in ("statements", "published", "delivered")}
            for name in after.probe}


def platform_cpu(before: Snapshot, after: Snapshot, units: float) -> dict[str, float]:
    """CPU ms per unit outside the services: this side's PostgreSQL backends, the broker, the bench's
    own clients, every process of the machine, and what is left of it for processes that are none of
    these (others' work on a shared machine: the run's CPU and rate figures are disturbed)."""
    def spent(name: str) -> float:
        return getattr(after, name) - getattr(before, name)

    postgres = sum(cpu - before.postgres_cpu.get(pid, 0.0) for pid, cpu in after.postgres_cpu.items())
    services = sum(cpu - before.services_cpu[name] for name, cpu in after.services_cpu.items())
    ours = services + postgres + spent("rabbitmq_cpu") + spent("client_cpu")
    return {key: seconds * 1000 / units for key, seconds in {
        "postgres_cpu_ms": postgres, "rabbitmq_cpu_ms": spent("rabbitmq_cpu"), "client_cpu_ms": spent("client_cpu"),
        "machine_cpu_ms": spent("machine_cpu"), "other_processes_cpu_ms": spent("machine_cpu") - ours,
    }.items()}


def weighted_mean(parts: list[tuple[dict, float]]) -> dict:
    """Figures per unit of several windows (`parts`: each window's figures and its units) as one
    window's: each number the mean of its values weighted by the units, keeping the nesting; a number
    a window lacks counts as 0 there (a counter that did not move)."""
    total = sum(units for _figures, units in parts)
    keys = dict.fromkeys(key for part, _units in parts for key in part)
    merged = {}
    for key in keys:
        values = [(part.get(key), units) for part, units in parts]
        if any(isinstance(value, dict) for value, _units in values):
            merged[key] = weighted_mean([(value or {}, units) for value, units in values])
        else:
            merged[key] = sum((value or 0) * units for value, units in values) / total
    return merged


def ratios(new, old):
    """new/old for every number present on both sides, keeping the nesting."""
    if isinstance(new, dict) and isinstance(old, dict):
        return {key: ratios(new[key], old[key]) for key in new if key in old}
    if isinstance(new, (int, float)) and isinstance(old, (int, float)) and not isinstance(new, bool):
        return new / old if old else None
    return None


def ratio_text(value) -> str:
    return "–" if value is None else f"{value:.2f}"


def table(title: str, header: list[str], rows: list[list[str]]) -> str:
    """A plain-text table: the first column left-aligned, the others right-aligned."""
    widths = [max(len(str(row[i])) for row in [header, *rows]) for i in range(len(header))]
    lines = [title]
    for row in [header, *rows]:
        cells = [str(row[0]).ljust(widths[0])] + [str(cell).rjust(width) for cell, width in zip(row[1:], widths[1:])]
        lines.append("  " + "  ".join(cells))
    return "\n".join(lines)


def services_table(title: str, figures: dict[str, dict[str, float]], fmt=None) -> str:
    header = ["service"] + [label for _key, label, _fmt in SERVICE_COLUMNS]
    rows = [[name] + [(fmt or cell_fmt).format(values[key]) if values.get(key) is not None else "–"
                      for key, _label, cell_fmt in SERVICE_COLUMNS]
            for name, values in figures.items()]
    return table(title, header, rows)


def services_ratio_table(title: str, figures: dict[str, dict]) -> str:
    header = ["service"] + [label for _key, label, _fmt in SERVICE_COLUMNS]
    rows = [[name] + [ratio_text(values.get(key)) for key, _label, _fmt in SERVICE_COLUMNS]
            for name, values in figures.items()]
    return table(title, header, rows)


def write_profile(path: Path, title: str, before: Snapshot, after: Snapshot, units: float, unit: str,
                  top: int = 25) -> None:
    """Per service: the top functions by inclusive and by self share of its sampled CPU, and its most
    frequent SQL statements, for the window between the two snapshots."""
    lines = [title, ""]
    for name in after.probe:
        old, new = before.probe[name], after.probe[name]
        samples = new["samples"] - old["samples"]
        sampled = new["sampled_seconds"] - old["sampled_seconds"]
        cpu_ms = (after.services_cpu[name] - before.services_cpu[name]) * 1000
        lines.append(f"== {name}: {cpu_ms / units:.1f} ms of CPU per {unit} (/proc); "
                     + (f"{samples} samples covering {sampled * 1000 / units:.1f} ms/{unit}" if samples
                        else "no CPU samples (run the bench with --profile)"))
        for kind in ("inclusive", "self") if samples else ():
            seconds = counter_delta(old[f"samples_{kind}"], new[f"samples_{kind}"])
            lines.append(f"-- top {top} by {kind} CPU: share, ms/{unit}, function")
            for where, spent in sorted(seconds.items(), key=lambda item: -item[1])[:top]:
                lines.append(f"  {100 * spent / sampled:5.1f} %  {spent * 1000 / units:7.2f}  {where}")
        statements = counter_delta(old["statement_texts"], new["statement_texts"])
        lines.append(f"-- top {top} SQL statements: per {unit}, statement (first 160 characters)")
        for statement, count in sorted(statements.items(), key=lambda item: -item[1])[:top]:
            lines.append(f"  {count / units:7.2f}  {' '.join(statement.split())}")
        lines.append("")
    path.write_text("\n".join(lines))
