"""Figures: median (min-max) over repeated runs, the side-by-side table with
ratios, and the JSON lines appended to bench-results.jsonl."""

from __future__ import annotations

import json
import statistics
from dataclasses import dataclass, field

IMPLS = ("ovn-controller", "pinctrl-daemon", "ceiling")


@dataclass
class Figure:
    """One metric; values[impl] = the per-run values."""
    key: str
    title: str
    unit: str
    values: dict[str, list[float]] = field(default_factory=dict)

    def add(self, impl: str, v: float | None) -> None:
        if v is not None:
            self.values.setdefault(impl, []).append(float(v))

    def median(self, impl: str) -> float | None:
        v = self.values.get(impl)
        return statistics.median(v) if v else None


class Results:
    def __init__(self) -> None:
        self.figures: dict[str, Figure] = {}
        self.notes: list[str] = []
        self.meta: dict = {}

    def add(self, key: str, title: str, unit: str, impl: str, v: float | None) -> None:
        if key not in self.figures:
            self.figures[key] = Figure(key, title, unit)
        self.figures[key].add(impl, v)


def _fmt(v: float | None, unit: str) -> str:
    if v is None:
        return "-"
    if unit == "%":
        return f"{v * 100:.1f}%"
    if abs(v) >= 100:
        return f"{v:,.0f}"
    return f"{v:.2f}" if abs(v) < 10 else f"{v:.1f}"


def _cell(f: Figure, impl: str) -> str:
    vals = f.values.get(impl)
    if not vals:
        return "-"
    med = _fmt(statistics.median(vals), f.unit)
    if len(vals) == 1:
        return med
    return f"{med} ({_fmt(min(vals), f.unit)}–{_fmt(max(vals), f.unit)})"


def _ratio(a: float | None, b: float | None) -> str:
    if a is None or b is None or b == 0:
        return "-"
    return f"{a / b:.2f}×"


def table(res: Results) -> str:
    """The human table (Markdown, so README can quote it as is)."""
    head = ["metric", "unit", "ovn-controller", "pinctrl-daemon", "ceiling",
            "daemon/ovn", "daemon/ceiling"]
    rows = [head, ["---"] * len(head)]
    for f in res.figures.values():
        d, o, c = f.median("pinctrl-daemon"), f.median("ovn-controller"), f.median("ceiling")
        rows.append([f.title, f.unit, _cell(f, "ovn-controller"), _cell(f, "pinctrl-daemon"),
                     _cell(f, "ceiling"), _ratio(d, o), _ratio(d, c)])
    return "\n".join("| " + " | ".join(r) + " |" for r in rows)


def json_lines(res: Results, run_id: str) -> list[str]:
    out = [json.dumps({"run": run_id, "kind": "meta", **res.meta, "notes": res.notes})]
    for f in res.figures.values():
        for impl, vals in f.values.items():
            out.append(json.dumps({
                "run": run_id, "kind": "figure", "metric": f.key, "impl": impl, "unit": f.unit,
                "median": statistics.median(vals), "min": min(vals), "max": max(vals),
                "runs": vals}))
    return out
