"""packaging/manpage.py: pinctrl-daemon(8) says what --help says (every
option with its help text, the description, every epilog section) and
documents exactly the ovs-appctl commands the daemon registers.
(The installed page, rendered by `man -l`:
tests/integration/test_packaging_deb.py.)"""

from __future__ import annotations

import argparse
import importlib.util
import sys
from pathlib import Path

import ovs.unixctl
import pytest

import pinctrl.daemon.daemon  # noqa: F401  (registers every command)
from pinctrl.main import build_parser
from pinctrl.support import appctl

MANPAGE_PY = Path(__file__).resolve().parents[2] / "packaging" / "manpage.py"


def load_manpage():
    spec = importlib.util.spec_from_file_location("pinctrl_manpage",
                                                  MANPAGE_PY)
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod        # dataclasses look their module up
    spec.loader.exec_module(mod)
    return mod


manpage = load_manpage()

# python-ovs's own commands: unixctl "help" (import), "version" (server),
# vlog/* (Vlog.init), and the daemon's "exit" (daemon.py).
BUILTINS = {"help", "version", "vlog/list", "vlog/set", "vlog/reopen",
            "vlog/close", "exit"}


@pytest.fixture(scope="module")
def page() -> str:
    return manpage.render(build_parser(), "9.8.7", "2026-01-02")


def test_header(page):
    lines = page.splitlines()
    assert lines[1] == ('.TH "pinctrl-daemon" 8 "2026-01-02" '
                        '"pinctrl-daemon 9.8.7" "OVN Manual"')
    i = lines.index(".SH NAME")
    assert lines[i + 1] == ("pinctrl\\-daemon \\- OVN pinctrl as a "
                            "standalone daemon")


def test_every_option_with_its_help(page):
    parser = build_parser()
    n = 0
    for action in parser._actions:
        if not action.option_strings or action.help == argparse.SUPPRESS:
            continue
        n += 1
        assert f".TP\n{manpage.option_synopsis(action)}\n" in page, \
            action.option_strings
        text = manpage.sentence(manpage.option_help(parser, action))
        assert manpage.esc(manpage.installed_paths(text)) in page, text
        for opt in action.option_strings:
            assert "\\fB" + manpage.esc(opt) in page
    assert n > 20


def test_groups_in_parser_order(page):
    titles = [line[5:-1] for line in page.splitlines()
              if line.startswith('.SS "')]
    parser = build_parser()
    want = [g.title for g in parser._action_groups
            if g.title not in ("options", "positional arguments")
            and g._group_actions]
    assert titles == [manpage.esc(t[:1].upper() + t[1:]) for t in want] \
        + ["Other options"]


def test_description_and_epilog(page):
    parser = build_parser()
    for para in parser.description.strip().split("\n\n"):
        assert manpage.esc(" ".join(para.split())) in page
    _, sections = manpage.parse_epilog(parser.epilog)
    headings = {s.heading for s in sections}
    assert {"examples", "files", "environment", "signals"} <= headings
    for sec in sections:
        assert f'.SH "{sec.heading.upper()}"' in page
        for item in sec.items:
            assert manpage.esc(item.term[0]) in page, item.term


def test_commands_are_the_registered_ones():
    documented = [c for c, _, _ in manpage.COMMANDS]
    assert len(documented) == len(set(documented))
    registered = set(appctl.COMMANDS) | set(ovs.unixctl.commands) | BUILTINS
    registered = {c for c in registered if not c.startswith("pinctrl/test-")}
    assert set(documented) == registered


def test_run_modes(page):
    assert '.SH "RUN MODES"' in page
    assert "\\-\\-proxy\\-rundir" in page.split('.SH "RUN MODES"')[1]


def test_parse_epilog():
    text = (
        "Intro line one\n"
        "continues.\n"
        "\n"
        "examples:\n"
        "  cmd --a \\\n"
        "      --b\n"
        "      what it does\n"
        "  cmd2\n"
        "      second\n"
        "\n"
        "files:\n"
        "  /x/y         a file\n"
        "  LONG_TERM\n"
        "               on the next line\n"
        "\n"
        "Closing words.\n")
    free, secs = manpage.parse_epilog(text)
    assert free == ["Intro line one continues.", "Closing words."]
    assert [s.heading for s in secs] == ["examples", "files"]
    ex, files = secs
    assert [(i.term, i.text) for i in ex.items] == [
        (["cmd --a \\", "--b"], ["what it does"]), (["cmd2"], ["second"])]
    assert [(i.term, i.text) for i in files.items] == [
        (["/x/y"], ["a file"]), (["LONG_TERM"], ["on the next line"])]


@pytest.mark.parametrize("text, want", [
    ("--br-int", "\\-\\-br\\-int"),
    (".hidden", "\\&.hidden"),
    ("a\\b", "a\\eb"),
    ("'quote", "\\&'quote"),
])
def test_esc(text, want):
    assert manpage.esc(text) == want


def test_installed_paths():
    assert manpage.installed_paths("see docs/operations.md, x") == \
        "see /usr/share/doc/pinctrl-daemon/operations.md, x"


def test_main_writes_the_file(tmp_path, monkeypatch):
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "0")
    out = tmp_path / "p.8"
    assert manpage.main(["--version", "1.0", "--output", str(out)]) == 0
    assert '"1970-01-01" "pinctrl-daemon 1.0"' in out.read_text()
