"""CPU time and memory of a process from /proc (Linux)."""

from __future__ import annotations

import os
from dataclasses import dataclass

_TICK = os.sysconf("SC_CLK_TCK")


@dataclass(frozen=True)
class ProcSample:
    cpu_s: float        # user + system, whole process (all threads)
    rss_kb: int         # VmRSS
    hwm_kb: int         # VmHWM: peak RSS so far


def sample(pid: int) -> ProcSample | None:
    """None if the process is gone."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        with open(f"/proc/{pid}/status") as f:
            status = dict(line.split(":", 1) for line in f if ":" in line)
    except (OSError, IndexError, ValueError):
        return None
    # fields[0] is field 3 (state); utime and stime are fields 14 and 15.
    cpu = (int(fields[11]) + int(fields[12])) / _TICK

    def kb(key: str) -> int:
        return int(status.get(key, "0 kB").split()[0])
    return ProcSample(cpu, kb("VmRSS"), kb("VmHWM"))


def cpu_delta(pid: int | None, before: ProcSample | None) -> float | None:
    if pid is None or before is None:
        return None
    after = sample(pid)
    return None if after is None else after.cpu_s - before.cpu_s
