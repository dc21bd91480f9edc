"""Logging helpers: python-ovs vlog modules plus OVS-style rate limits."""

from __future__ import annotations

import datetime
import re
import threading
import time
from collections.abc import Callable

import ovs.vlog

_DATE_RE = re.compile(r"%(0?[1-9]?)([dD])(\{([^}]*)\})?")


def _format_time(self: ovs.vlog.Vlog, tmp: str) -> str:
    """Replacement for python-ovs Vlog._format_time, whose '###' millisecond
    field formats str(ms / 1000) truncated ("15:47:48.26.Z" for 26.5 ms).
    Same pattern language: %d/%D with an optional {strftime} containing a
    run of '#' for the sub-second digits."""
    m = _DATE_RE.search(tmp)
    if m is None:
        return tmp
    now = (datetime.datetime.now() if m.group(2) == "d"
           else datetime.datetime.now(datetime.timezone.utc))
    fmt = m.group(4) or "%Y-%m-%d %H:%M:%S"
    text = now.strftime(fmt)
    hashes = re.search("#+", fmt)
    if hashes:
        digits = f"{now.microsecond:06d}"[:len(hashes.group(0))]
        text = text.replace(hashes.group(0), digits, 1)
    return tmp[:m.start()] + text + tmp[m.end():]


def fix_vlog_time_format() -> None:
    """Install the _format_time fix (main thread, before logging starts)."""
    ovs.vlog.Vlog._format_time = _format_time


class RateLimit:
    """Token bucket like OVS's VLOG_RATE_LIMIT_INIT(rate_per_min, burst).

    allow() is called by whichever thread logs; a lock keeps the bucket
    consistent.  Messages suppressed since the last allowed one are counted
    and reported with it, like OVS does.
    """

    __slots__ = ("_rate", "_burst", "_tokens", "_last", "_lock", "dropped")

    def __init__(self, rate_per_min: int = 5, burst: int = 10) -> None:
        self._rate = rate_per_min / 60.0
        self._burst = float(burst)
        self._tokens = float(burst)
        self._last = time.monotonic()
        self._lock = threading.Lock()
        self.dropped = 0

    def allow(self, now: float | None = None) -> bool:
        now = time.monotonic() if now is None else now
        with self._lock:
            self._tokens = min(self._burst,
                               self._tokens + (now - self._last) * self._rate)
            self._last = now
            if self._tokens >= 1.0:
                self._tokens -= 1.0
                return True
            self.dropped += 1
            return False

    def take_dropped(self) -> int:
        with self._lock:
            n, self.dropped = self.dropped, 0
            return n


def rl_log(vlog: ovs.vlog.Vlog, level: str, rl: RateLimit, msg: str) -> None:
    """Log 'msg' at 'level' ("warn", "info", "dbg", "err") if 'rl' allows."""
    if rl.allow():
        _emit(vlog, level, rl, msg)


def rl_log_lazy(vlog: ovs.vlog.Vlog, level: str, rl: RateLimit,
                text: Callable[[], str]) -> None:
    """rl_log() of text(), which is called only if 'rl' allows: for lines
    on the packet path, most of which the limit drops."""
    if rl.allow():
        _emit(vlog, level, rl, text())


def _emit(vlog: ovs.vlog.Vlog, level: str, rl: RateLimit, msg: str) -> None:
    dropped = rl.take_dropped()
    if dropped:
        msg = f"{msg} ({dropped} messages suppressed)"
    getattr(vlog, level)(msg)
