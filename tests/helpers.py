"""Small shared helpers for unit tests (no fixtures: import what you need).

    VlogRecorder    stands in for an ovs.vlog.Vlog: records (LEVEL, text)
    counter_delta   run fn(), return (its result, how much a coverage
                    counter grew)
"""

from __future__ import annotations

from pinctrl import coverage


class VlogRecorder:
    """Records every vlog call as (LEVEL, text); *_is_enabled() answers
    'enabled'."""

    def __init__(self, enabled: bool = True) -> None:
        self.lines: list[tuple[str, str]] = []
        self.enabled = enabled

    def info_is_enabled(self) -> bool:
        return self.enabled

    def dbg_is_enabled(self) -> bool:
        return self.enabled

    def __getattr__(self, level):
        return lambda msg: self.lines.append((level.upper(), msg))


def counter_delta(name: str, fn):
    """(fn(), increase of coverage counter 'name' while it ran)."""
    before = coverage.get(name)
    out = fn()
    return out, coverage.get(name) - before
