"""Keep-alive monitor: is every thread still going round its loop?

As OVS's keep-alive monitoring of its threads: each monitored thread marks itself
alive once per loop iteration, and one thread (here the main thread, which
also feeds the systemd watchdog) compares every thread's last mark with the
clock.  A thread whose mark is older than 'timeout' is STUCK (or DEAD if its
thread has ended); while any thread is not alive the main thread stops the
WATCHDOG=1 pings, so systemd restarts a daemon that would otherwise sit
there half-working.

A mark is a single float assignment by the owning thread (atomic under the
GIL), read by the monitoring thread: no lock.  A thread that already keeps
its own timestamp (PinctrlHandler.heartbeat) is registered with a callable
returning it instead of calling mark().
"""

from __future__ import annotations

import time
from typing import Callable, NamedTuple

import ovs.vlog

from pinctrl.support import coverage

vlog = ovs.vlog.Vlog("keepalive")

ALIVE, STUCK, DEAD = "alive", "STUCK", "DEAD"


class ThreadHealth(NamedTuple):
    name: str
    state: str          # ALIVE, STUCK or DEAD
    age: float          # seconds since the thread's last mark

    def __str__(self) -> str:
        return f"{self.name}: {self.state} (last loop {self.age:.1f} s ago)"


class _Watched:
    __slots__ = ("last_mark", "is_alive", "state")

    def __init__(self, last_mark: Callable[[], float],
                 is_alive: Callable[[], bool]) -> None:
        self.last_mark = last_mark
        self.is_alive = is_alive
        self.state = ALIVE


class KeepAlive:
    """The monitor.  register() and check()/run() are main-thread calls;
    mark() is called by each thread marked through this object."""

    def __init__(self, timeout: float,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.timeout = timeout
        self.clock = clock
        self._marks: dict[str, float] = {}
        self._watched: dict[str, _Watched] = {}

    def register(self, name: str,
                 last_mark: Callable[[], float] | None = None,
                 is_alive: Callable[[], bool] | None = None) -> None:
        """Watch thread 'name'.  Without 'last_mark' the thread calls
        mark(name) itself; a registration counts as a first mark."""
        if last_mark is None:
            self._marks[name] = self.clock()
            last_mark = lambda: self._marks[name]
        self._watched[name] = _Watched(last_mark,
                                       is_alive or (lambda: True))

    def mark(self, name: str) -> None:
        """The calling thread ('name') is alive now (any thread)."""
        self._marks[name] = self.clock()

    def check(self, now: float | None = None) -> list[ThreadHealth]:
        """Every watched thread's health, in registration order."""
        now = self.clock() if now is None else now
        out = []
        for name, w in self._watched.items():
            age = max(0.0, now - w.last_mark())
            if not w.is_alive():
                state = DEAD
            elif age > self.timeout:
                state = STUCK
            else:
                state = ALIVE
            out.append(ThreadHealth(name, state, age))
        return out

    def run(self, now: float | None = None) -> list[ThreadHealth]:
        """check() plus a log line and a counter on every change of state
        (main thread, once per loop)."""
        health = self.check(now)
        for h in health:
            w = self._watched[h.name]
            if h.state == w.state:
                continue
            if h.state == ALIVE:
                vlog.info(f"thread {h.name} is alive again")
            else:
                coverage.inc("keepalive_thread_" + h.state.lower())
                vlog.warn(f"thread {h.name} is {h.state}: no loop for "
                          f"{h.age:.1f} s (limit {self.timeout:g} s); "
                          f"systemd watchdog pings stop")
            w.state = h.state
        return health

    @staticmethod
    def all_alive(health: list[ThreadHealth]) -> bool:
        return all(h.state == ALIVE for h in health)
