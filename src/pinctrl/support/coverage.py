"""Coverage counters, as `ovs-appctl coverage/show` prints them.

Each thread increments its own dict (no lock, no lost updates under
free-running threads); readers sum the per-thread dicts.  Counter names follow
OVN's where one exists (pinctrl_total_pin_pkts, pinctrl_drop_*).
"""

from __future__ import annotations

import threading

_local = threading.local()
_all_tables: list[dict[str, int]] = []
_tables_lock = threading.Lock()


def _table() -> dict[str, int]:
    t = getattr(_local, "table", None)
    if t is None:
        t = {}
        _local.table = t
        with _tables_lock:
            _all_tables.append(t)
    return t


def inc(name: str, n: int = 1) -> None:
    """Add n to counter 'name' (any thread)."""
    t = _table()
    t[name] = t.get(name, 0) + n


def snapshot() -> dict[str, int]:
    """All counters summed over threads (any thread; values may lag by one)."""
    out: dict[str, int] = {}
    with _tables_lock:
        tables = list(_all_tables)
    for t in tables:
        for k, v in list(t.items()):
            out[k] = out.get(k, 0) + v
    return out


def get(name: str) -> int:
    return snapshot().get(name, 0)


def format_show() -> str:
    snap = snapshot()
    lines = [f"{k:<40} total: {v}" for k, v in sorted(snap.items())]
    return "\n".join(lines) + ("\n" if lines else "")
