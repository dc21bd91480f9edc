"""support/runtime.py: which JSON parser python-ovs uses, said in
pinctrl/show, the metrics and a start-up warning; `make venv` gets the C
one."""

from __future__ import annotations

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


@pytest.mark.skipif(not _made_by_make_venv(),
                    reason="not a venv made by `make venv` (Debian's "
                           "python3 with its site-packages)")
def test_make_venv_has_the_c_parser():
    import ovs._json  # noqa: F401  (the extension itself)
    assert ovs.json.PARSER == ovs.json.PARSER_C
    assert ovs.__file__.startswith("/usr/lib/python3/dist-packages/")
