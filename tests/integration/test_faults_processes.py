"""Faults of the processes around the daemon (issue 15), with real ones:

  * ovs-vswitchd killed for a while with periodic RAs configured: the
    daemon idles (CPU measured from /proc), then serves again;
  * ovs-vswitchd SIGSTOPped, then SIGCONTed: the daemon's loops go on
    (no thread STUCK), DHCP answered afterwards;
  * the local ovsdb-server (Open_vSwitch DB) killed and restarted: the
    daemon's loops go on meanwhile and it follows its configuration
    again;
  * the log on a full, then read-only filesystem (a small tmpfs): logging
    fails, serving does not.

Every process is started by the sandbox or here and stopped by pid.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time

import pytest

from testbed.daemon_under_test import UnixctlClient
from tests.helpers import unavailable
from tests.integration.test_faults import has_traceback, soak_record
from tests.integration.test_faults_main_thread import wait_log
from tests.integration.test_flood import dhcp_answered
from tests.integration.test_sb_ssl_cluster import sb_serving, wait_show

pytestmark = pytest.mark.integration

# The daemon's CPU while ovs-vswitchd is away: it waits on timers (its
# reconnection back-off, the main loop's 1 s checks), nothing else.
IDLE_CPU_MAX = 0.05


def cpu_seconds(pid: int) -> float:
    """utime + stime of every thread of 'pid'."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def test_vswitchd_down_with_periodic_ras_the_daemon_idles(sandbox, daemon):
    """Issue 15 #3: with periodic RAs the handler spun at 100 % CPU for the
    whole outage (a deadline already past, re-armed, never run)."""
    assert "lr0-sw1: every 3-4 s" in daemon.appctl("pinctrl/ipv6-ra")
    pid = daemon.popen.pid
    with soak_record("vswitchd_down_cpu", daemon) as rec:
        sandbox.kill_vswitchd()
        rec["faults"] = 1
        time.sleep(1.0)                 # the handler notices
        cpu0, t0 = cpu_seconds(pid), time.monotonic()
        time.sleep(10)
        share = (cpu_seconds(pid) - cpu0) / (time.monotonic() - t0)
        rec["idle_cpu_share"] = round(share, 4)
        assert share < IDLE_CPU_MAX, f"{share:.1%} CPU with br-int gone"
        sandbox.restart_vswitchd()
        daemon.wait_connected(15)
        assert dhcp_answered(sandbox, attempts=5)


def test_vswitchd_stopped_and_continued(sandbox, daemon):
    pid = sandbox.vswitchd_pid()
    with soak_record("vswitchd_sigstop", daemon) as rec:
        os.kill(pid, signal.SIGSTOP)
        try:
            rec["faults"] = 1
            # The daemon's own loops go on: pinctrl/show answers at once.
            with UnixctlClient(daemon.ctl) as ctl:
                slowest = 0.0
                for _ in range(30):
                    _, took = ctl.timed_call("pinctrl/show")
                    slowest = max(slowest, took)
                    time.sleep(0.2)
            rec["slowest_appctl_s"] = slowest
        finally:
            os.kill(pid, signal.SIGCONT)
        assert slowest < 1.0, slowest
        assert dhcp_answered(sandbox, attempts=5)
        assert "STUCK" not in open(daemon.log_file).read()
        assert daemon.alive()


def test_local_ovsdb_server_restarted(sandbox, daemon):
    wait_show(daemon, sb_serving, 10, "SB snapshot")
    with soak_record("local_ovsdb_restart", daemon) as rec:
        sandbox._procs["ovsdb-server"].kill(signal.SIGKILL, timeout=5)
        rec["faults"] = 1
        # ovs-vswitchd itself stops forwarding (no packet-in reaches us);
        # the daemon's loops go on.
        with UnixctlClient(daemon.ctl) as ctl:
            for _ in range(10):
                _, took = ctl.timed_call("pinctrl/show")
                assert took < 1.0, took
                time.sleep(0.2)
        sandbox._ovsdb_server("ovsdb-server", f"{sandbox.dir}/conf.db",
                              f"{sandbox.dir}/db.sock")
        # The daemon reads its configuration again: a new probe interval
        # written now is applied.
        sandbox.vsctl("set", "open", ".",
                      "external_ids:ovn-remote-probe-interval=4000")
        wait_log(daemon, "Southbound inactivity probe interval: 4000 ms", 15)
        assert dhcp_answered(sandbox, attempts=5)
        assert daemon.alive() and not has_traceback(daemon)


@pytest.fixture
def small_fs(sandbox):
    """A 512 KiB tmpfs in the sandbox (unmounted afterwards)."""
    path = f"{sandbox.dir}/smallfs"
    os.mkdir(path)
    cp = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=512k", "tmpfs",
                         path], capture_output=True, text=True)
    if cp.returncode != 0:
        unavailable(f"cannot mount a tmpfs: {cp.stderr.strip()}")
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", path], capture_output=True)


def test_log_on_a_full_then_read_only_filesystem(sandbox, small_fs):
    log = f"{small_fs}/pinctrl-daemon.log"
    d = sandbox.daemon(extra_args=[f"--log-file={log}"])
    d.log_file = log
    d.start(timeout=15)
    try:
        with soak_record("log_fs_full", d) as rec:
            with open(f"{small_fs}/filler", "wb") as f:
                try:
                    while True:
                        f.write(b"\0" * 65536)
                        f.flush()
                except OSError:
                    pass                # ENOSPC: full
            rec["faults"] = 1
            d.appctl("vlog/set", "ANY:file:dbg")    # a line per packet-in
            assert dhcp_answered(sandbox, attempts=5)
            d.appctl("vlog/reopen")
            assert dhcp_answered(sandbox, attempts=5)
            d.appctl("vlog/close")      # a read-only remount needs it
            subprocess.run(["mount", "-o", "remount,ro", small_fs],
                           check=True, capture_output=True)
            rec["faults"] = 2
            # Cannot open the log again: an error answer, not a hang.
            cp = sandbox.run(["ovs-appctl", "-t", d.ctl, "vlog/reopen"],
                             check=False, timeout=10)
            assert cp.returncode != 0 and "vlog/reopen failed" in \
                cp.stderr, (cp.returncode, cp.stderr)
            assert dhcp_answered(sandbox, attempts=5)
            assert d.coverage().get("unixctl_command_error") == 1
            assert d.alive()
            err = open(f"{sandbox.dir}/pinctrl-daemon.stderr").read()
            assert "Traceback" not in err, err[-2000:]
    finally:
        subprocess.run(["mount", "-o", "remount,rw", small_fs],
                       capture_output=True)
        d.stop()
