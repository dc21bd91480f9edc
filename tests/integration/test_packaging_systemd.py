"""packaging/: `systemd-analyze verify` accepts the unit, with its
ExecStart pointed at our entry point (runs a binary, hence here)."""

import shutil
import subprocess

import pytest

from testbed.daemon_under_test import daemon_executable
from tests.helpers import unavailable
from tests.unit.test_packaging import UNIT

pytestmark = pytest.mark.integration


def test_systemd_analyze_verify(tmp_path):
    exe = shutil.which("systemd-analyze")
    if exe is None:
        unavailable("systemd-analyze not installed (Debian package systemd)")
    # verify insists that ExecStart exists: point it at our entry point.
    copy = tmp_path / UNIT.name
    copy.write_text(UNIT.read_text().replace("/usr/bin/pinctrl-daemon",
                                             daemon_executable()))
    cp = subprocess.run([exe, "verify", str(copy)], capture_output=True,
                        text=True, timeout=60, check=False)
    assert cp.returncode == 0, cp.stdout + cp.stderr
    assert "pinctrl-daemon.service" not in cp.stderr, cp.stderr
