"""packaging/: the systemd unit has the keys the operations guide promises,
and its ExecStart (with the options of the default EnvironmentFile) is a
command line our own parser accepts.  (systemd-analyze's own verdict on
the unit: tests/integration/test_packaging_systemd.py.)"""

import shlex
from pathlib import Path

import ovs.vlog
import pytest

from pinctrl.main import build_parser

PKG = Path(__file__).resolve().parents[2] / "packaging"
UNIT = PKG / "pinctrl-daemon.service"
DEFAULT = PKG / "pinctrl-daemon.default"


def parse_unit(text: str) -> dict[str, dict[str, list[str]]]:
    """systemd unit syntax, enough for ours: [Section], Key=value, '#'/';'
    comments; a key may repeat (values accumulate)."""
    out: dict[str, dict[str, list[str]]] = {}
    section = None
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line[0] in "#;":
            continue
        if line.startswith("[") and line.endswith("]"):
            section = out.setdefault(line[1:-1], {})
            continue
        assert section is not None, f"key outside a section: {raw!r}"
        key, sep, value = line.partition("=")
        assert sep, f"not Key=value: {raw!r}"
        section.setdefault(key.strip(), []).append(value.strip())
    return out


def parse_env_file(text: str) -> dict[str, str]:
    env = {}
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            key, _, value = line.partition("=")
            env[key] = " ".join(shlex.split(value))
    return env


def expand_exec(cmdline: str, env: dict[str, str]) -> list[str]:
    """systemd's ExecStart expansion of unbraced $VAR: split into words."""
    words = []
    for w in shlex.split(cmdline):
        if w.startswith("$") and not w.startswith("${"):
            words += env.get(w[1:], "").split()
        else:
            words.append(w)
    return words


@pytest.fixture(scope="module")
def unit():
    return parse_unit(UNIT.read_text())


def test_unit_keys(unit):
    u, s = unit["Unit"], unit["Service"]
    after = " ".join(u["After"]).split()
    requires = " ".join(u["Requires"]).split()
    for dep in ("ovsdb-server.service", "ovs-vswitchd.service"):
        assert dep in after and dep in requires, dep
    assert s["Type"] == ["notify"]
    assert s["NotifyAccess"] == ["main"]
    assert s["WatchdogSec"] == ["30"]
    assert s["Restart"] == ["on-failure"]
    assert s["EnvironmentFile"] == ["-/etc/default/pinctrl-daemon"]
    assert s["ExecStart"] == [
        "/usr/bin/pinctrl-daemon --br-int br-int $PINCTRL_DAEMON_OPTS"]
    assert unit["Install"]["WantedBy"] == ["multi-user.target"]


@pytest.mark.parametrize("opts", ["default-file", "empty"])
def test_exec_start_is_accepted_by_our_parser(unit, opts):
    env = parse_env_file(DEFAULT.read_text()) if opts == "default-file" else {}
    argv = expand_exec(unit["Service"]["ExecStart"][0], env)
    assert argv[0] == "/usr/bin/pinctrl-daemon"
    args = build_parser().parse_args(argv[1:])
    assert args.br_int == "br-int"
    # Under systemd Type=notify the process must not fork away.
    assert not args.detach and not args.monitor
    for spec in args.verbose or []:
        assert ovs.vlog.Vlog.set_levels_from_string(spec) is None, spec
    if opts == "default-file":
        assert args.pidfile == "default" and args.log_file == "default"


def test_default_file_examples_are_valid_options():
    """The commented examples in the default file parse too."""
    lines = [l.strip()[1:].strip() for l in DEFAULT.read_text().splitlines()
             if l.strip().startswith("#   --")]
    assert lines
    args = build_parser().parse_args(" ".join(lines).split())
    assert args.metrics_address == ("127.0.0.1", 9476)
    assert args.ovnsb_db.count("ssl:") == 3
