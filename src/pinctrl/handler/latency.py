"""Dispatch latency histogram of the pinctrl_handler thread.

observe() is on the packet path (once per packet-in): one dict lookup, a
bisect and two increments into a plain list, no lock, no prometheus_client
object.  The series are fixed when the histogram is made: one per
registered action opcode plus one "unknown" series shared by every other
opcode and by packet-ins without a readable action header, so a switch (or
a fuzzer) sending arbitrary opcodes cannot grow it.

snapshot() is read by other threads (the metrics HTTP thread on every
scrape), keyed by OVN's action name, so readers need not know the actions
registry.  A reader may see one observation's bucket before its sum:
harmless skew for monitoring.
"""

from __future__ import annotations

import bisect
from typing import NamedTuple

from pinctrl.actions import REGISTRY, load_all
from pinctrl.openflow.packet_in import PacketIn, PacketInError

# Upper bounds in seconds.  A DHCP answer takes ~50 µs in-process; the top
# buckets catch the pathological cases (GC pauses, a stuck lock).
LATENCY_BUCKETS = (1e-5, 2.5e-5, 5e-5, 1e-4, 2.5e-4, 5e-4, 1e-3, 2.5e-3,
                   5e-3, 1e-2, 2.5e-2, 0.1, 1.0)
UNKNOWN = "unknown"


class Histogram(NamedTuple):
    """One series as a reader sees it."""
    buckets: list[tuple[float, int]]   # (upper bound, cumulative count),
    #                                     the last bound is +inf
    total: float                        # sum of the observed seconds


def _new_series() -> list[float]:
    # [count per bucket ..., count above the last bound, sum of seconds]
    return [0] * (len(LATENCY_BUCKETS) + 1) + [0.0]


class DispatchLatency:
    """Per-opcode histogram of dispatch time.  observe() is called by the
    pinctrl_handler thread only; snapshot() by any thread.  The series
    lists are written only by the handler thread (no lock: single list
    item stores under the GIL)."""

    __slots__ = ("_series", "_names", "_unknown")

    def __init__(self) -> None:
        load_all()          # every opcode registered before the series
        self._series = {op: _new_series() for op in REGISTRY}
        self._names = {op: act.name for op, act in REGISTRY.items()}
        self._unknown = _new_series()

    def observe(self, pin: PacketIn, seconds: float) -> None:
        """pinctrl_handler thread: file one dispatch that took 'seconds'."""
        try:
            h = self._series.get(pin.opcode, self._unknown)
        except PacketInError:
            h = self._unknown
        h[bisect.bisect_left(LATENCY_BUCKETS, seconds)] += 1
        h[-1] += seconds

    def observe_many(self, opcode: int, n: int, seconds: float) -> None:
        """pinctrl_handler thread: file 'n' dispatches of 'opcode' that
        took 'seconds' each (a batch answered by the templates, timed
        as a whole)."""
        h = self._series.get(opcode, self._unknown)
        h[bisect.bisect_left(LATENCY_BUCKETS, seconds)] += n
        h[-1] += n * seconds

    def snapshot(self) -> dict[str, Histogram]:
        """Any thread: action name (or UNKNOWN) -> Histogram, only for the
        series that have observations."""
        out = {}
        named = [(self._names[op], h) for op, h in self._series.items()]
        for name, h in named + [(UNKNOWN, self._unknown)]:
            h = list(h)             # one copy: consistent within a series
            counts, total = h[:-1], h[-1]
            if not any(counts):
                continue
            cum, running = [], 0
            for bound, n in zip((*LATENCY_BUCKETS, float("inf")), counts):
                running += int(n)
                cum.append((bound, running))
            out[name] = Histogram(cum, total)
        return out
