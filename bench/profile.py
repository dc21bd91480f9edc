"""pinctrl-daemon's hot path under load, sampled with py-spy.

For each workload: the daemon answers a closed loop while `py-spy record
--nonblocking` samples it (raw collapsed stacks); the daemon's CPU per
answer over the same window turns each function's share of the samples
into µs per answer.  Output: the top functions by inclusive and by self
time, per workload, and the raw files for flame graphs.
"""

from __future__ import annotations

import collections
import shutil
import subprocess
import sys
import time
from pathlib import Path

from . import procstat
from .frames import WORKLOADS

PROFILED = ("dhcp", "dns", "tcp_rst", "arp_resolve")
SECONDS = 8
RATE_HZ = 400


def _py_spy() -> str | None:
    cand = Path(sys.executable).parent / "py-spy"
    return str(cand) if cand.exists() else shutil.which("py-spy")


def parse_collapsed(text: str) -> tuple[int, collections.Counter, collections.Counter]:
    """(total samples, inclusive counts, self counts) per frame "func (file:line)"
    with the line number dropped, from py-spy's raw output."""
    total, incl, self_ = 0, collections.Counter(), collections.Counter()
    for line in text.splitlines():
        stack, _, n = line.rpartition(" ")
        if not stack or not n.isdigit():
            continue
        n = int(n)
        total += n
        frames = [_frame_name(f) for f in stack.split(";")]
        for f in set(frames):
            incl[f] += n
        self_[frames[-1]] += n
    return total, incl, self_


def _frame_name(f: str) -> str:
    # "decode_packet_in2 (pinctrl/packet_in.py:123)" -> "decode_packet_in2 (pinctrl/packet_in.py)"
    name, _, loc = f.partition(" (")
    loc = loc.rstrip(")").rsplit(":", 1)[0]
    loc = loc.split("site-packages/")[-1].split("/src/")[-1]
    return f"{name} ({loc})"


def profile_daemon(sb, bench) -> int:
    """Bench phase for --profile (the bench's main thread): the daemon
    takes over, then each workload is profiled.  Returns an exit code."""
    exe = _py_spy()
    if exe is None:
        print("py-spy not found (pip install py-spy into the venv)", file=sys.stderr)
        return 2
    dmn = sb.daemon(file_level="info").start(wait=True, timeout=30)
    pid = dmn.popen.pid
    bench.warm_up()
    outdir = Path("/tmp/pinctrl-bench-profile")
    outdir.mkdir(exist_ok=True)
    for name in PROFILED:
        raw = outdir / f"{name}.txt"
        spy = subprocess.Popen([exe, "record", "--nonblocking", "-r", str(RATE_HZ),
                                "-d", str(SECONDS), "-f", "raw", "-o", str(raw), "-p", str(pid)],
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        try:
            time.sleep(1.0)          # attach before the load starts
            before = procstat.sample(pid)
            r = bench.gen.closed_loop(WORKLOADS[name], SECONDS - 2.0)
            cpu = procstat.cpu_delta(pid, before)
            spy.wait(timeout=SECONDS + 30)
        finally:
            if spy.poll() is None:
                spy.kill()
                spy.wait()
        us = cpu / r.answered * 1e6 if r.answered and cpu else 0.0
        print(f"\n### {WORKLOADS[name].title}: {r.rate:,.0f} answers/s, daemon CPU "
              f"{us:.1f} µs/answer ({raw})")
        total, incl, self_ = parse_collapsed(raw.read_text() if raw.exists() else "")
        if not total:
            print("  no samples:", spy.stderr.read().decode()[-500:] if spy.stderr else "")
            continue
        for title, ctr in (("inclusive", incl), ("self", self_)):
            print(f"  top {title} (share of busy samples, ≈µs per answer):")
            for f, n in ctr.most_common(18):
                print(f"    {n / total * 100:5.1f}%  {n / total * us:6.1f} µs  {f}")
    return 0
