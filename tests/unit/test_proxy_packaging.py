"""packaging/split-mode/: the two drop-ins agree with each other and with
our parser: the daemon listens where ovn-controller's OVS_RUNDIR points,
ovn-controller still finds the real OVS database, and the units are
ordered daemon first.  (systemd-analyze's verdict on the units with their
drop-ins: tests/integration/test_split_mode_packaging.py.)"""

from __future__ import annotations

import shlex

import pytest

from pinctrl.main import build_parser
from tests.unit.test_packaging import (DEFAULT, PKG, UNIT, expand_exec,
                                       parse_env_file, parse_unit)

SPLIT = PKG / "split-mode"
DAEMON_DROPIN = SPLIT / "pinctrl-daemon.service.d" / "split-mode.conf"
OVN_DROPIN = SPLIT / "ovn-controller.service.d" / "split-mode.conf"
OVS_DB_SOCK = "/var/run/openvswitch/db.sock"


@pytest.fixture(scope="module")
def daemon_dropin():
    return parse_unit(DAEMON_DROPIN.read_text())


@pytest.fixture(scope="module")
def ovn_dropin():
    return parse_unit(OVN_DROPIN.read_text())


def _replaced_exec_start(unit: dict) -> str:
    """A drop-in replaces ExecStart by resetting it first."""
    first, *rest = unit["Service"]["ExecStart"]
    assert first == "" and len(rest) == 1
    return rest[0]


def test_daemon_runs_in_split_mode_with_the_default_options(daemon_dropin):
    env = parse_env_file(DEFAULT.read_text())
    argv = expand_exec(_replaced_exec_start(daemon_dropin), env)
    assert argv[0] == "/usr/bin/pinctrl-daemon"
    args = build_parser().parse_args(argv[1:])
    assert args.proxy_rundir == "/run/pinctrl-daemon"
    assert args.br_int == "br-int" and not args.detach
    assert args.pidfile == "default"


def test_ovn_controller_connects_to_the_daemon(daemon_dropin, ovn_dropin):
    env = dict(e.split("=", 1) for e in ovn_dropin["Service"]["Environment"])
    assert env["OVS_RUNDIR"] == "/run/pinctrl-daemon"
    words = shlex.split(_replaced_exec_start(ovn_dropin))
    assert words[:2] == ["/usr/share/ovn/scripts/ovn-ctl", "start_controller"]
    # Without it ovn-ctl would look for the OVS DB in OVS_RUNDIR.
    assert f"--db-sock={OVS_DB_SOCK}" in words
    # Debian's own options stay.
    assert {"--ovn-manage-ovsdb=no", "--no-monitor", "$OVN_CTL_OPTS"} <= \
        set(words)
    u = ovn_dropin["Unit"]
    assert u["Wants"] == ["pinctrl-daemon.service"]
    assert u["After"] == ["pinctrl-daemon.service"]


def test_the_daemon_starts_before_ovn_controller():
    unit = parse_unit(UNIT.read_text())
    assert "ovn-controller.service" in " ".join(unit["Unit"]["Before"])
