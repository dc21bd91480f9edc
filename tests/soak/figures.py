"""The soak table's figures (pure: tests/soak/run_soak.py runs the
suites, this computes what it prints; tests/unit/test_soak_figures.py
checks it).  Every figure comes from the tests' JSON lines or from
pytest's summary line: nothing is assumed."""

from __future__ import annotations

import re

# Runs whose every test writes a soak line.
REPORTING = ("faults", "flood")


class Run:
    """One pytest process and what its summary line says."""

    def __init__(self, name: str, ok: bool, out: str, seconds: float):
        self.name, self.ok, self.out, self.seconds = name, ok, out, seconds
        # "3 failed, 10 passed, 1 error in 12.3s"
        summary = [l for l in out.splitlines()
                   if re.search(r"\d+ (passed|failed|errors?)\b", l)]
        last = summary[-1] if summary else ""
        self.counts = {k: int(n) for n, k in re.findall(
            r"(\d+) (passed|failed|errors?|skipped)\b", last)}
        self.failed = (self.counts.get("failed", 0)
                       + self.counts.get("error", 0)
                       + self.counts.get("errors", 0)
                       + (0 if ok or summary else 1))   # died: no summary
        self.tests = sum(self.counts.get(k, 0) for k in
                         ("passed", "failed", "error", "errors"))


def table(records: list[dict], runs: dict[str, Run]) -> list[tuple[str,
                                                                    object]]:
    """The soak table, from the records and the runs (pure)."""
    fuzz_out = runs["fuzz"].out if "fuzz" in runs else ""
    # hypothesis statistics: "- 20 passing, 0 failing, and 0 invalid ..."
    fuzz_inputs = sum(int(n) for n in re.findall(
        r"(\d+) passing(?: examples)?,", fuzz_out))
    fuzz_failed = runs["fuzz"].failed if "fuzz" in runs else 0
    crashes = sum(int(r.get("crashes", 0)) for r in records)
    uncounted = [r.get("test", "?") for r in records
                 if "bindings_lost" in r and r["bindings_lost"] is None]
    lost = sum(r.get("bindings_lost") or 0 for r in records)
    lost_text: object = lost
    if uncounted:
        lost_text = (f"{lost} + unknown ({len(uncounted)} tests ended "
                     f"before counting: {', '.join(uncounted)})")
    tests_run = sum(runs[n].tests for n in REPORTING if n in runs)
    return [
        ("faults survived", sum(r.get("faults", 0) for r in records
                                if not r.get("crashes")
                                and r.get("finished", True))),
        ("inputs tried", sum(r.get("inputs", 0) for r in records)
         + fuzz_inputs),
        ("  of which fuzzed", fuzz_inputs),
        ("crashes", crashes + fuzz_failed),
        ("bindings lost", lost_text),
        ("bindings written", sum(r.get("bindings", 0) for r in records)),
        ("peak RSS (KiB)", max((r.get("peak_rss_kib", 0) for r in records),
                               default=0)),
        ("slowest appctl (ms)", int(1000 * max(
            (r.get("slowest_appctl_s", 0) for r in records), default=0))),
        ("tests failed", sum(r.failed for r in runs.values())),
        ("tests without a record", max(0, tests_run - len(records))),
    ]
