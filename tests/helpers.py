"""Small shared helpers for unit tests (no fixtures: import what you need).

    VlogRecorder    stands in for an ovs.vlog.Vlog: records (LEVEL, text)
    counted         run fn(), assert a coverage counter grew by one
    counter_delta   run fn(), return (its result, how much a coverage
                    counter grew)
    unavailable     a prerequisite is missing: skip locally, FAIL when
                    CI=true (coverage must never silently vanish in CI)
"""

from __future__ import annotations

import os

import pytest

from pinctrl.support import coverage


def unavailable(reason: str) -> None:
    """Skip the test locally; fail it in CI (CI=true)."""
    if os.environ.get("CI") == "true":
        pytest.fail(f"prerequisite missing in CI: {reason}", pytrace=False)
    pytest.skip(reason)     # reached only outside CI (see above)


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


def counted(fn, name: str):
    """fn(), asserting it bumped coverage counter 'name' exactly once."""
    out, delta = counter_delta(name, fn)
    assert delta == 1, name
    return out


def counter_delta(name: str, fn):
    """(fn(), increase of coverage counter 'name' while it ran)."""
    before = coverage.get(name)
    out = fn()
    return out, coverage.get(name) - before


def record_logs(monkeypatch, module):
    """Replace the actions.replies.Reporter 'module'.reporter with one
    that writes to a VlogRecorder through generous rate limits; return
    the recorder (the body of the action tests' `logs` fixtures)."""
    from pinctrl.actions.replies import Reporter
    rec = VlogRecorder()
    monkeypatch.setattr(module, "reporter", Reporter(rec, 1000, 1000))
    return rec

