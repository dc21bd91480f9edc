"""support/runtime.py: which JSON parser python-ovs uses, said in
pinctrl/show, the metrics and a start-up warning; `make venv` gets the C
one."""

from __future__ import annotations

import os
import pathlib
import sys

import ovs.json
import pytest

from pinctrl.daemon import show
from pinctrl.support import runtime


class Vlog:
    def __init__(self) -> None:
        self.lines: list[str] = []

    def warn(self, text: str) -> None:
        self.lines.append(text)


@pytest.mark.parametrize("parser, name, warned", [
    (ovs.json.PARSER_C, runtime.C_PARSER, False),
    (ovs.json.PARSER_PY, runtime.PY_PARSER, True),
])
def test_parser_named_and_warned(monkeypatch, parser, name, warned):
    monkeypatch.setattr(ovs.json, "PARSER", parser)
    assert runtime.json_parser() == name
    vlog = Vlog()
    runtime.warn_if_slow(vlog)
    assert bool(vlog.lines) is warned
    if warned:
        assert "ovs._json" in vlog.lines[0]


def test_show_prints_the_parser():
    from tests.unit.test_show import REPORT      # a complete ShowReport
    import dataclasses
    text = show.format_show(dataclasses.replace(REPORT,
                                                json_parser=runtime.C_PARSER))
    assert "OVSDB JSON parser: C (ovs._json)\n" in text
    assert "OVSDB JSON parser" not in show.format_show(
        dataclasses.replace(REPORT, json_parser=""))


def _made_by_make_venv() -> bool:
    cfg = pathlib.Path(sys.prefix) / "pyvenv.cfg"
    text = cfg.read_text() if cfg.exists() else ""
    return ("include-system-site-packages = true" in text
            and "home = /usr/bin" in text)


def test_make_venv_has_the_c_parser():
    """`make test` (CI) runs in the venv `make venv` builds: there it must
    have the C parser, and a venv built otherwise is a failure, not a skip.
    Outside CI a hand-made venv may lack it."""
    if not _made_by_make_venv():
        if os.environ.get("CI") == "true":
            pytest.fail("CI must run in the venv `make venv` builds "
                        "(Debian's python3 with its site-packages)")
        pytest.skip("not a venv made by `make venv`")
    import ovs._json  # noqa: F401  (the extension itself)
    assert ovs.json.PARSER == ovs.json.PARSER_C
    assert ovs.__file__.startswith("/usr/lib/python3/dist-packages/")


def test_gil_switch_interval_is_bounded():
    """The handler waits at most about this long for the GIL after a
    wake-up while the main thread is busy in Python."""
    before = sys.getswitchinterval()
    try:
        runtime.bound_gil_wait()
        assert sys.getswitchinterval() == pytest.approx(
            runtime.GIL_SWITCH_INTERVAL_S)
        assert runtime.GIL_SWITCH_INTERVAL_S <= 0.0005
    finally:
        sys.setswitchinterval(before)


def test_gc_freezes_survivors_and_collects_all_when_due():
    """Young collections only ever scan young objects; the periodic full
    collection reclaims cyclic garbage among frozen ones."""
    import gc
    try:
        runtime.tune_gc()
        assert runtime._freeze_survivors in gc.callbacks
        gc.collect(1)
        assert gc.get_freeze_count() > 0
        cycle: list = []
        cycle.append(cycle)
        gc.collect(1)                   # frozen while still referenced
        del cycle
        assert runtime.gc_maintenance(runtime._gc_next_full - 1) is None
        n = gc.get_freeze_count()
        took = runtime.gc_maintenance(runtime._gc_next_full)
        assert took is not None and gc.get_freeze_count() < n
    finally:
        gc.callbacks.remove(runtime._freeze_survivors)
        gc.unfreeze()
