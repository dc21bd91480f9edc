"""`make soak`: the long versions of the issue 9 suites, then one table.

Runs, each in its own pytest process:
  * the fault tests (tests/integration/test_faults*.py: PINCTRL_FAULT_ROUNDS
    SB restarts, default 5; the initial sync of PINCTRL_BIG_SB_ROWS
    MAC_Bindings, default 100000; the main-thread, process and slow-SB
    faults);
  * the flood (tests/integration/test_flood.py) for PINCTRL_FLOOD_SECONDS
    (default 60);
  * the decoder fuzzing (tests/unit/test_fuzz_decoders.py) with the long
    hypothesis profile, PINCTRL_FUZZ_EXAMPLES per test (default 2000);
and prints: faults survived, inputs tried, crashes, bindings lost, peak
RSS, tests failed.  The integration tests append what they measured as
JSON lines to PINCTRL_SOAK_REPORT, also when they fail (tests/integration/
test_faults.py soak_record); every figure here is computed from those
lines and from pytest's own summary, never assumed: a test that ended
before counting its bindings makes "bindings lost" say so, and a test
that wrote no line at all is counted as such.  Exit code: 0 when every
run passed.

    python -m tests.soak.run_soak          # from the repository root
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time

from tests.soak.figures import Run, table

DEFAULTS = {"PINCTRL_FAULT_ROUNDS": "5", "PINCTRL_FLOOD_SECONDS": "60",
            "PINCTRL_FUZZ_EXAMPLES": "2000", "PINCTRL_FUZZ": "long",
            "PINCTRL_BIG_SB_ROWS": "100000"}
RUNS = [
    ("faults", ["tests/integration/test_faults.py",
                "tests/integration/test_faults_main_thread.py",
                "tests/integration/test_faults_processes.py",
                "tests/integration/test_faults_slow_sb.py",
                "tests/integration/test_faults_big_sb.py"]),
    ("flood", ["tests/integration/test_flood.py"]),
    ("fuzz", ["tests/unit/test_fuzz_decoders.py",
              "--hypothesis-show-statistics"]),
]
def run(name: str, args: list[str], env: dict[str, str]) -> Run:
    t0 = time.monotonic()
    cp = subprocess.run([sys.executable, "-m", "pytest", "-q", "-s",
                         "-p", "no:cacheprovider", *args],
                        env=env, capture_output=True, text=True)
    out = cp.stdout + cp.stderr
    r = Run(name, cp.returncode == 0, out, time.monotonic() - t0)
    print(f"{name:8} {'ok' if r.ok else 'FAILED':7} {r.seconds:7.1f} s  "
          f"{r.counts}", flush=True)
    if not r.ok:
        print(out[-4000:])
    return r


def main() -> int:
    env = dict(os.environ)
    for k, v in DEFAULTS.items():
        env.setdefault(k, v)
    with tempfile.NamedTemporaryFile("r", suffix=".jsonl") as rep:
        env["PINCTRL_SOAK_REPORT"] = rep.name
        runs = {name: run(name, args, env) for name, args in RUNS}
        records = [json.loads(l) for l in open(rep.name) if l.strip()]

    print("\nsoak: " + ", ".join(f"{k}={env[k]}" for k in DEFAULTS))
    print(f"{'measure':24} value")
    print(f"{'-' * 24} {'-' * 12}")
    for k, v in table(records, runs):
        print(f"{k:24} {v}")
    return 0 if all(r.ok for r in runs.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
