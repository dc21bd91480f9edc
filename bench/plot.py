"""The picture of one `make bench` run: capacity per workload (closed loop,
median with min–max) and the round-trip CDF of each workload at 1k/s,
ovn-controller vs pinctrl-daemon vs the harness ceiling.

    python -m bench.plot [--results bench-results.jsonl] [--run ID]
                         [--output bench/latest.png]

Reads the JSON lines a run appended (bench/report.py: "figure" and "cdf"
lines), so any past run can be drawn again.  matplotlib is a bench-only
dependency (pyproject extra "bench"); run() draws after the table, and
says so instead when matplotlib is missing.  Bench process, one thread.
"""

from __future__ import annotations

import argparse
import json
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DEFAULT_PNG = REPO / "bench" / "latest.png"
IMPLS = ("ovn-controller", "pinctrl-daemon", "ceiling")
COLORS = {"ovn-controller": "#1f77b4", "pinctrl-daemon": "#d62728",
          "ceiling": "#7f7f7f"}
CAPACITY_SUFFIX = ".closed"


@dataclass
class RunData:
    """What the plot needs of one run (pure data, from its JSON lines)."""
    run: str
    meta: dict
    # workload -> (title, {impl: (median, min, max)}), answered/s
    capacity: dict[str, tuple[str, dict[str, tuple[float, float, float]]]] = \
        field(default_factory=dict)
    # workload -> (title, {impl: (probabilities, µs)}), no-churn 1k/s
    cdfs: dict[str, tuple[str, dict[str, tuple[list[float], list[float]]]]] = \
        field(default_factory=dict)


def load_run(lines: list[dict], run: str | None = None) -> RunData:
    """Pure.  The run 'run' (default: the last one) of parsed JSON lines.
    Raises LookupError when there is none."""
    ids = [ln["run"] for ln in lines if "run" in ln]
    if not ids or (run is not None and run not in ids):
        raise LookupError(f"no run {run!r} in the results" if run
                          else "no run in the results")
    run = run or ids[-1]
    data = RunData(run, {})
    for ln in lines:
        if ln.get("run") != run:
            continue
        kind, metric = ln.get("kind"), ln.get("metric", "")
        if kind == "meta":
            data.meta = ln
        elif kind == "figure" and metric.endswith(CAPACITY_SUFFIX):
            name = metric[:-len(CAPACITY_SUFFIX)]
            title = ln.get("title", name).split(":")[0]
            data.capacity.setdefault(name, (title, {}))[1][ln["impl"]] = (
                ln["median"], ln["min"], ln["max"])
        elif kind == "cdf" and "_churn" not in metric:
            title = ln.get("title", metric).split(":")[0]
            data.cdfs.setdefault(metric, (title, {}))[1][ln["impl"]] = (
                ln["p"], ln["us"])
    return data


def read_jsonl(path: Path) -> list[dict]:
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def subtitle(data: RunData) -> str:
    m = data.meta
    parts = [f"run {data.run}"]
    if m.get("git"):
        parts.append(f"git {m['git']}")
    if m.get("time"):
        parts.append(m["time"][:16].replace("T", " "))
    if m.get("quick"):
        parts.append("BENCH_QUICK")
    if m.get("cpus"):
        parts.append(f"{m['cpus']} CPUs")
    if "loadavg_start" in m:
        parts.append(f"load {m['loadavg_start']:.2f}")
    return ", ".join(parts)


def draw(data: RunData, path: Path) -> Path:
    """Write the PNG; needs matplotlib (ImportError otherwise)."""
    import matplotlib
    matplotlib.use("Agg")           # no display; set before pyplot loads
    import matplotlib.pyplot as plt

    n = max(len(data.cdfs), 1)
    fig = plt.figure(figsize=(4.2 * n, 8.5), layout="constrained")
    grid = fig.add_gridspec(2, n)
    fig.suptitle("pinctrl-daemon vs ovn-controller 23.03 (make bench)\n"
                 + subtitle(data), fontsize=11)

    ax = fig.add_subplot(grid[0, :])
    _capacity(ax, data)
    for i, (name, (title, by_impl)) in enumerate(data.cdfs.items()):
        _cdf(fig.add_subplot(grid[1, i]), title, by_impl)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path


def _capacity(ax, data: RunData) -> None:
    names = list(data.capacity)
    width = 0.8 / len(IMPLS)
    for j, impl in enumerate(IMPLS):
        xs, meds, errs = [], [], [[], []]
        for i, name in enumerate(names):
            v = data.capacity[name][1].get(impl)
            if v is None:
                continue
            med, lo, hi = v
            xs.append(i + (j - 1) * width)
            meds.append(med)
            errs[0].append(med - lo)
            errs[1].append(hi - med)
        bars = ax.bar(xs, meds, width, yerr=errs, capsize=3, label=impl,
                      color=COLORS[impl])
        ax.bar_label(bars, labels=[f"{m / 1000:.1f}k" for m in meds],
                     fontsize=8, padding=2)
    ax.set_xticks(range(len(names)),
                  [data.capacity[n][0] for n in names])
    ax.yaxis.set_major_formatter(lambda v, pos: f"{v / 1000:g}k")
    ax.set_ylabel("answered/s (closed loop, ≤64 outstanding)")
    ax.set_title("Capacity per workload: median, min–max of the runs")
    ax.legend()
    ax.grid(axis="y", alpha=0.3)


def _cdf(ax, title: str,
         by_impl: dict[str, tuple[list[float], list[float]]]) -> None:
    for impl in IMPLS:
        if impl in by_impl:
            ps, us = by_impl[impl]
            ax.step(us, ps, where="post", label=impl, color=COLORS[impl])
    ax.set_xscale("log")
    ax.set_ylim(0, 1.0)
    ax.set_xlabel("round trip (µs, log)")
    ax.set_ylabel("fraction of requests")
    ax.set_title(f"{title}\nlatency CDF at 1k/s", fontsize=10)
    ax.axhline(0.99, color="k", lw=0.5, ls=":")
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=8, loc="lower right")


def write_png(lines: list[str], path: Path) -> str:
    """run()'s hook: draw the run just appended (its JSON lines, as
    text).  Returns what to print; never raises for a missing
    matplotlib."""
    try:
        out = draw(load_run([json.loads(s) for s in lines]), path)
    except ImportError:
        return ("plot skipped: matplotlib is not installed "
                "(pip install -e '.[bench]')")
    return f"plot: {out}"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.plot",
                                 description=__doc__.split("\n\n")[0])
    ap.add_argument("--results", default=str(REPO / "bench-results.jsonl"))
    ap.add_argument("--run", help="run id (default: the last run)")
    ap.add_argument("--output", default=str(DEFAULT_PNG))
    a = ap.parse_args(argv)
    data = load_run(read_jsonl(Path(a.results)), a.run)
    print(draw(data, Path(a.output)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
