"""The body of every worker thread: run one loop pass until told to exit,
and survive a bug in a pass."""

from __future__ import annotations

import time
from typing import Callable, Protocol

import ovs.vlog

from pinctrl.support import coverage
from pinctrl.support.log import RateLimit, rl_log

# After a failed pass: a persistent failure must not spin a CPU.
FAILURE_PAUSE_S = 0.01


class ExitFlag(Protocol):
    def is_set(self) -> bool: ...


def run_until_exit(exit_flag: ExitFlag, run_once: Callable[[], None],
                   what: str, counter: str, vlog: ovs.vlog.Vlog,
                   rl: RateLimit) -> None:
    """Call run_once() until 'exit_flag' is set.  An exception ends the
    pass, not the thread: it is counted as 'counter' and logged at a
    limited rate as "<what> loop error".  Runs on the calling thread."""
    while not exit_flag.is_set():
        try:
            run_once()
        except Exception as e:          # never let the thread die
            coverage.inc(counter)
            rl_log(vlog, "err", rl,
                   f"{what} loop error: {type(e).__name__}: {e}")
            time.sleep(FAILURE_PAUSE_S)
