"""Exception barriers for the main thread's loop (issue 15).

The handler thread has one per packet-in (handler/dispatch.py) and one per
loop pass (support/threadloop.py).  The main thread's loop is made of
stages (the local OVS DB, the Southbound IDL, the caches built from it,
the Southbound writes, unixctl, supervision); a Barrier per stage keeps an
exception in one from ending the process, and from stopping the others:

    b = Barrier("sb_idl")
    b.run(now, idl.run)          # False if it raised or is backing off
    ...
    if b.backing_off(now): b.wait(poller)   # instead of the stage's wait

An exception is counted (coverage 'main_stage_error_<name>') and logged at
a limited rate with its type, message and the line that raised it.  A
stage that would fail again at once on the next pass (the IDL's
reconnection with a private key that cannot be loaded, a write that
raises) is skipped for a back-off, 100 ms doubling to 2 s and reset by a
pass that succeeds: a few attempts a second instead of a spinning CPU.  A
stage that runs only when its input changed (backoff=False) runs again on
the next change.

bad_row() is the finer barrier of a stage that reads many rows: the row is
skipped, counted and named, the others are served.

Main thread only: a Barrier is not shared.
"""

from __future__ import annotations

import traceback
from typing import Callable, ParamSpec

import ovs.poller
import ovs.vlog

from pinctrl.support import coverage
from pinctrl.support.log import RateLimit, rl_log

vlog = ovs.vlog.Vlog("main")
_rl = RateLimit(5, 10)
_rl_row = RateLimit(5, 10)

BACKOFF_MIN_MS = 100
BACKOFF_MAX_MS = 2000

P = ParamSpec("P")


def where(e: BaseException) -> str:
    """'file.py:line in function' of the frame that raised 'e'."""
    frames = traceback.extract_tb(e.__traceback__)
    if not frames:
        return "?"
    f = frames[-1]
    return f"{f.filename.rsplit('/', 1)[-1]}:{f.lineno} in {f.name}"


class Barrier:
    """One stage of the main loop (see the module docstring)."""

    __slots__ = ("name", "backoff", "counter", "n_errors", "last_error",
                 "_retry_at", "_backoff_ms")

    def __init__(self, name: str, backoff: bool = True) -> None:
        self.name = name
        self.backoff = backoff
        self.counter = f"main_stage_error_{name}"
        self.n_errors = 0
        self.last_error: str | None = None
        self._retry_at = 0
        self._backoff_ms = 0

    def run(self, now: int, fn: Callable[P, object], *args: P.args,
            **kwargs: P.kwargs) -> bool:
        """fn(*args, **kwargs) unless backing off at 'now' (msec, as
        ovs.timeval.msec()).  True if it ran and returned."""
        if self.backing_off(now):
            return False
        try:
            fn(*args, **kwargs)
        except Exception as e:          # the loop must go on
            self._failed(now, e)
            return False
        self._backoff_ms = 0
        return True

    def _failed(self, now: int, e: Exception) -> None:
        self.n_errors += 1
        self.last_error = f"{type(e).__name__}: {e}"[:300]
        coverage.inc(self.counter)
        if self.backoff:
            self._backoff_ms = min(max(2 * self._backoff_ms,
                                       BACKOFF_MIN_MS), BACKOFF_MAX_MS)
            self._retry_at = now + self._backoff_ms
            then = f"next attempt in {self._backoff_ms} ms"
        else:
            then = "again on the next change"
        rl_log(vlog, "err", _rl, f"{self.name}: {self.last_error} "
               f"({where(e)}); stage skipped, {then}")

    def backing_off(self, now: int) -> bool:
        return now < self._retry_at

    def wait(self, poller: ovs.poller.Poller) -> None:
        """Wake when the stage may run again (call it instead of the
        stage's own wait while backing_off())."""
        poller.timer_wait_until(self._retry_at)


def bad_row(table: str, name: object, e: Exception) -> None:
    """A row whose contents made its reader raise: count it
    ('sb_bad_row'), name it in a rate-limited log line.  The caller skips
    it and goes on with the others."""
    coverage.inc("sb_bad_row")
    rl_log(vlog, "warn", _rl_row,
           f"{table} row {name} skipped: {type(e).__name__}: "
           f"{str(e)[:200]} ({where(e)})")
