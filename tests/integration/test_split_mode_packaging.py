"""packaging/split-mode/: `systemd-analyze verify` accepts pinctrl-daemon's
and Debian's ovn-controller unit with the split-mode drop-ins applied
(drop-ins are read from a private unit path; ExecStart binaries must
exist, hence here)."""

from __future__ import annotations

import os
import shutil
import subprocess

import pytest

from testbed.daemon_under_test import daemon_executable
from tests.helpers import unavailable
from tests.unit.test_packaging import UNIT
from tests.unit.test_proxy_packaging import SPLIT

pytestmark = pytest.mark.integration

OVN_UNIT = "/lib/systemd/system/ovn-controller.service"


def test_units_with_split_mode_drop_ins_verify(tmp_path):
    exe = shutil.which("systemd-analyze")
    if exe is None:
        unavailable("systemd-analyze not installed (Debian package systemd)")
    if not os.path.exists(OVN_UNIT):
        unavailable(f"{OVN_UNIT} missing (Debian package ovn-host)")
    ours = daemon_executable()
    (tmp_path / UNIT.name).write_text(
        UNIT.read_text().replace("/usr/bin/pinctrl-daemon", ours))
    shutil.copy(OVN_UNIT, tmp_path)
    for unit in ("pinctrl-daemon", "ovn-controller"):
        d = tmp_path / f"{unit}.service.d"
        d.mkdir()
        text = (SPLIT / d.name / "split-mode.conf").read_text()
        (d / "split-mode.conf").write_text(
            text.replace("/usr/bin/pinctrl-daemon", ours))
    env = dict(os.environ, SYSTEMD_UNIT_PATH=f"{tmp_path}:")
    # --man=no: the man pages named in Documentation= are the packaging
    # test's business (test_packaging_systemd.py), not the drop-ins'.
    cp = subprocess.run(
        [exe, "verify", "--man=no",
         str(tmp_path / "pinctrl-daemon.service"),
         str(tmp_path / "ovn-controller.service")],
        capture_output=True, text=True, timeout=60, check=False, env=env)
    assert cp.returncode == 0, cp.stdout + cp.stderr
    assert "split-mode.conf" not in cp.stderr, cp.stderr
