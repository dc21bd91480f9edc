"""Figures: median (min-max) over repeated runs, the side-by-side table with
ratios, and the JSON lines appended to bench-results.jsonl."""

from __future__ import annotations

import json
import statistics
from dataclasses import dataclass, field

# "split": the daemon in split mode beside a live ovn-controller (split.py).
IMPLS = ("ovn-controller", "pinctrl-daemon", "split", "ceiling")


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
        # Latency distributions for the plot (bench/plot.py): key ->
        # (title, {impl: every round trip in µs, repeats pooled}).
        self.rtts: dict[str, tuple[str, dict[str, list[float]]]] = {}

    def add_rtts(self, key: str, title: str, impl: str, rtts_us) -> None:
        self.rtts.setdefault(key, (title, {}))[1].setdefault(
            impl, []).extend(rtts_us)

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
    head = ["metric", "unit", "ovn-controller", "pinctrl-daemon", "split mode", "ceiling",
            "daemon/ovn", "split/ovn", "daemon/ceiling"]
    rows = [head, ["---"] * len(head)]
    for f in res.figures.values():
        d, o, c = f.median("pinctrl-daemon"), f.median("ovn-controller"), f.median("ceiling")
        rows.append([f.title, f.unit, _cell(f, "ovn-controller"), _cell(f, "pinctrl-daemon"),
                     _cell(f, "split"), _cell(f, "ceiling"), _ratio(d, o),
                     _ratio(f.median("split"), o), _ratio(d, c)])
    return "\n".join("| " + " | ".join(r) + " |" for r in rows)


def json_lines(res: Results, run_id: str) -> list[str]:
    out = [json.dumps({"run": run_id, "kind": "meta", **res.meta, "notes": res.notes})]
    for f in res.figures.values():
        for impl, vals in f.values.items():
            out.append(json.dumps({
                "run": run_id, "kind": "figure", "metric": f.key, "impl": impl, "unit": f.unit,
                "title": f.title, "median": statistics.median(vals), "min": min(vals),
                "max": max(vals), "runs": vals}))
    for key, (title, by_impl) in res.rtts.items():
        for impl, rtts in by_impl.items():
            if rtts:
                out.append(json.dumps({
                    "run": run_id, "kind": "cdf", "metric": key, "impl": impl, "unit": "µs",
                    "title": title, "n": len(rtts), "p": CDF_P,
                    "us": quantiles(rtts, CDF_P)}))
    return out


# Where a latency CDF is sampled: every 1 %, then the tail.
CDF_P = [i / 100 for i in range(100)] + [0.995, 0.999, 0.9999, 1.0]


def quantiles(values, ps: list[float]) -> list[float]:
    """Pure.  The value at each probability p (nearest rank, as
    RunResult.percentile)."""
    s = sorted(values)
    return [s[min(len(s) - 1, int(p * len(s)))] for p in ps]
