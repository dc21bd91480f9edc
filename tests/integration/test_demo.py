"""Smoke test of `make run MODE=split` (testbed/demo.py): the demo comes
up with real ovn-northd and ovn-controller behind the daemon's proxy,
prints the DHCP ACK of its tour without any third-party warning, and on
SIGTERM stops every process it started (checked by the pids in its
sandbox's pidfiles, kept for the check)."""

from __future__ import annotations

import glob
import os
import re
import selectors
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from testbed.daemon_under_test import daemon_unavailable
from testbed.live_sandbox import missing_ovn
from testbed.ovs_sandbox import missing_prerequisites
from testbed.processes import pid_alive
from tests.helpers import unavailable

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]


def read_until(proc: subprocess.Popen, done: str, timeout: float) -> str:
    """The demo's output until a line contains 'done' (or it exits, or
    'timeout' s pass)."""
    sel = selectors.DefaultSelector()
    sel.register(proc.stdout, selectors.EVENT_READ)
    out, deadline = "", time.monotonic() + timeout
    while done not in out and time.monotonic() < deadline:
        if not sel.select(timeout=0.5):
            continue
        line = proc.stdout.readline()
        if not line:
            break
        out += line
    sel.close()
    return out


def pidfiles(sandbox: str) -> dict[str, int]:
    """{pidfile name: pid} of the sandbox's running daemons."""
    out = {}
    for f in glob.glob(f"{sandbox}/*.pid"):
        try:
            out[Path(f).name] = int(Path(f).read_text().split()[0])
        except (OSError, ValueError, IndexError):
            pass
    return out


def test_make_run_split_mode_shows_the_lease_and_stops_everything():
    why = missing_prerequisites() or daemon_unavailable() or missing_ovn()
    if why:
        unavailable(why)
    proc = subprocess.Popen(
        [sys.executable, "-m", "testbed.demo", "--mode", "split", "--keep"],
        cwd=REPO, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT, text=True, start_new_session=True)
    sandbox = None
    try:
        out = read_until(proc, "== ready.", 60)
        m = re.search(r"sandbox in (\S+)", out)
        sandbox = m and m.group(1)
        assert re.search(r"< gdvif1 +DHCPACK xid=0x11223344 "
                         r"yiaddr=10\.0\.0\.11", out), out
        assert "no ARP this time" in out, out
        assert "Warning" not in out, out
        assert "== ready." in out, out
        # Read while they run: a daemon removes its pidfile as it exits.
        pids = pidfiles(sandbox)
        assert len(pids) == 7, pids     # 3 ovsdb-servers, vswitchd, northd,
        #                                 ovn-controller, the daemon
        os.kill(proc.pid, signal.SIGTERM)
        rest, _ = proc.communicate(timeout=30)
        assert proc.returncode == 0, out + rest
        assert "== stopped" in rest, rest
        assert not [p for p in pids.values() if pid_alive(p)], pids
    finally:
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.kill(proc.pid, signal.SIGKILL)
                proc.wait()
        if sandbox:
            for pid in pidfiles(sandbox).values():
                if pid_alive(pid):      # a failed stop: not left running
                    os.kill(pid, signal.SIGKILL)
            shutil.rmtree(sandbox, ignore_errors=True)
