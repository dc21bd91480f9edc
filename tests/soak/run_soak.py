"""`make soak`: the long versions of the issue 9 suites, then one table.

Runs, each in its own pytest process:
  * the fault tests (tests/integration/test_faults.py) with
    PINCTRL_FAULT_ROUNDS SB restarts (default 5);
  * the flood (tests/integration/test_flood.py) for PINCTRL_FLOOD_SECONDS
    (default 60);
  * the decoder fuzzing (tests/unit/test_fuzz_decoders.py) with the long
    hypothesis profile, PINCTRL_FUZZ_EXAMPLES per test (default 2000);
and prints: faults survived, inputs tried, crashes, bindings lost, peak
RSS.  The integration tests append their measurements as JSON lines to
PINCTRL_SOAK_REPORT.  Exit code: 0 when every run passed.

    python -m tests.soak.run_soak          # from the repository root
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tempfile
import time

DEFAULTS = {"PINCTRL_FAULT_ROUNDS": "5", "PINCTRL_FLOOD_SECONDS": "60",
            "PINCTRL_FUZZ_EXAMPLES": "2000", "PINCTRL_FUZZ": "long"}
RUNS = [
    ("faults", ["tests/integration/test_faults.py"]),
    ("flood", ["tests/integration/test_flood.py"]),
    ("fuzz", ["tests/unit/test_fuzz_decoders.py",
              "--hypothesis-show-statistics"]),
]


def run(name: str, args: list[str], env: dict[str, str]) -> tuple[bool, str,
                                                                   float]:
    t0 = time.monotonic()
    cp = subprocess.run([sys.executable, "-m", "pytest", "-q", "-s",
                         "-p", "no:cacheprovider", *args],
                        env=env, capture_output=True, text=True)
    out = cp.stdout + cp.stderr
    tail = [l for l in out.splitlines() if " passed" in l or " failed" in l]
    print(f"{name:8} {'ok' if cp.returncode == 0 else 'FAILED':7} "
          f"{time.monotonic() - t0:7.1f} s  {tail[-1] if tail else ''}",
          flush=True)
    if cp.returncode != 0:
        print(out[-4000:])
    return cp.returncode == 0, out, time.monotonic() - t0


def main() -> int:
    env = dict(os.environ)
    for k, v in DEFAULTS.items():
        env.setdefault(k, v)
    with tempfile.NamedTemporaryFile("r", suffix=".jsonl") as rep:
        env["PINCTRL_SOAK_REPORT"] = rep.name
        results = {name: run(name, args, env) for name, args in RUNS}
        records = [json.loads(l) for l in open(rep.name) if l.strip()]

    fuzz_ok, fuzz_out, _ = results["fuzz"]
    # hypothesis statistics: "- 20 passing, 0 failing, and 0 invalid ..."
    fuzz_inputs = sum(int(n) for n in re.findall(
        r"(\d+) passing(?: examples)?,", fuzz_out))
    failed = sum(int(n) for n in re.findall(r"(\d+) failed", fuzz_out))
    rows = [
        ("faults survived", sum(r.get("faults", 0) for r in records
                                if not r.get("crashes"))),
        ("inputs tried", sum(r.get("inputs", 0) for r in records)
         + fuzz_inputs),
        ("  of which fuzzed", fuzz_inputs),
        ("crashes", sum(r.get("crashes", 0) for r in records) + failed),
        ("bindings lost", sum(r.get("bindings_lost", 0) for r in records)),
        ("bindings written", sum(r.get("bindings", 0) for r in records)),
        ("peak RSS (KiB)", max((r.get("peak_rss_kib", 0) for r in records),
                               default=0)),
        ("slowest appctl (ms)", int(1000 * max(
            (r.get("slowest_appctl_s", 0) for r in records), default=0))),
    ]
    print("\nsoak: " + ", ".join(f"{k}={env[k]}" for k in DEFAULTS))
    print(f"{'measure':24} value")
    print(f"{'-' * 24} {'-' * 12}")
    for k, v in rows:
        print(f"{k:24} {v}")
    return 0 if all(ok for ok, _, _ in results.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
