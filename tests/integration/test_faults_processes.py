"""Faults of the processes around the daemon (issue 15), with real ones:

  * ovs-vswitchd killed for a while with periodic RAs configured: the
    daemon idles (CPU measured from /proc), then serves again;
  * ovs-vswitchd SIGSTOPped, then SIGCONTed: the daemon's loops go on
    (no thread STUCK), DHCP answered afterwards;
  * the local ovsdb-server (Open_vSwitch DB) killed and restarted: the
    daemon's loops go on meanwhile and it follows its configuration
    again;
  * the log on a full, then read-only filesystem (a small tmpfs): logging
    fails, serving does not;
  * the SB down while more distinct neighbours are learnt (put_nd) than
    the write queue holds: RSS bounded, what does not fit counted, the
    backlog written in capped batches once the SB is back, DHCP answered
    during the flush (its round trip recorded).

Every process is started by the sandbox or here and stopped by pid.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import time

import pytest

from pinctrl.db import txn
from pinctrl.shared.state import MAC_BINDING_HANDOVER_CAP
from testbed.daemon_under_test import UnixctlClient, parse_coverage
from tests.helpers import unavailable
from tests.integration.test_faults import (
    has_traceback,
    kill_sb,
    soak_record,
    start_sb,
)
from tests.integration.test_faults_main_thread import wait_log
from tests.integration.test_flood import dhcp_answered, rss_kib
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
    deadline = time.monotonic() + 10
    while "lr0-sw1: every 3-4 s" not in daemon.appctl("pinctrl/ipv6-ra"):
        assert time.monotonic() < deadline, "no periodic RA configured"
        time.sleep(0.1)
    pid = daemon.popen.pid
    with soak_record("vswitchd_down_cpu", daemon) as rec:
        sandbox.kill_vswitchd()
        rec["faults"] = 1
        time.sleep(1.0)                 # the handler notices
        cpu0, t0 = cpu_seconds(pid), time.monotonic()
        time.sleep(6)
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


# --- Southbound down while more than the queue cap is learnt -----------------

NA_TEMPLATE = bytes.fromhex(
    # nd_na_unsolicited_learn: unsolicited NA (O flag, TLLAO) from
    # 2001:db8:ff::80 on the localnet; lr0 learns it with put_nd.
    "33330000000100000000fe8086dd6000000000203aff20010db800ff000000000000"
    "00000080ff0200000000000000000000000000018800f9ae2000000020010db800ff"
    "00000000000000000080020100000000fe80")


def na(i: int) -> bytes:
    """The template's NA from 2001:db8:ff::1:<i> with MAC 02:00:00:20:<i>;
    a distinct put_nd key per i."""
    f = bytearray(NA_TEMPLATE)
    mac = bytes([2, 0, 0, 0x20, (i >> 8) & 0xFF, i & 0xFF])
    ip = bytes.fromhex("20010db800ff000000000000") + (0x10000 + i).to_bytes(
        4, "big")
    f[6:12] = mac
    f[22:38] = ip                       # IPv6 source
    f[62:78] = ip                       # target
    f[80:86] = mac                      # TLL option
    f[56:58] = b"\0\0"
    pseudo = bytes(f[22:54]) + len(f[54:]).to_bytes(4, "big") + bytes(3) \
        + b"\x3a"
    f[56:58] = (csum(pseudo + bytes(f[54:]))).to_bytes(2, "big")
    return bytes(f)


def csum(data: bytes) -> int:
    if len(data) % 2:
        data += b"\0"
    s = sum(int.from_bytes(data[i:i + 2], "big")
            for i in range(0, len(data), 2))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return ~s & 0xFFFF


def mac_binding_count(sandbox, prefix: str) -> int:
    out = sandbox.run(["ovn-sbctl", f"--db={sandbox.sb_db}", "--timeout=10",
                       "--format=csv", "--data=bare", "--no-headings",
                       "--columns=ip", "find", "MAC_Binding",
                       "logical_port=lr0-public"], check=False).stdout
    return sum(1 for l in out.split() if l.startswith(prefix))


def backlog(daemon) -> tuple[int, int]:
    """(handed over not yet taken, pending + in flight) of MAC_Binding."""
    out = daemon.appctl("pinctrl/mac-bindings")
    taken = int(re.search(r"not yet taken: (\d+)", out)[1])
    pend, fl = map(int, re.search(r"pending: (\d+), in flight: (\d+)",
                                  out).groups())
    return taken, pend + fl


def test_sb_down_while_more_than_the_cap_is_learnt(sandbox, daemon):
    """Before issue 15 the queue grew to 65536 entries per writer,
    invisibly, and went back in one transaction."""
    wait_show(daemon, sb_serving, 10, "SB snapshot")
    pid = daemon.popen.pid
    cap = 2 * MAC_BINDING_HANDOVER_CAP  # the MAC_Binding writer's queue
    want = cap + 300                    # distinct neighbours learnt
    cov0 = daemon.coverage()
    with soak_record("sb_down_flood_beyond_cap", daemon,
                     bindings_lost=None) as rec:
        rss0 = rss_kib(pid)
        kill_sb(sandbox)
        rec["faults"] = 1
        wait_show(daemon, lambda f: not f.get("Southbound", "")
                  .startswith("connected"), 10, "SB loss noticed")
        # The dummy datapath and OVS's packet-in queue to us lose part of
        # a burst: inject new neighbours until enough were learnt.
        sent = learnt = 0
        deadline = time.monotonic() + 90
        with UnixctlClient(sandbox.vswitchd_ctl, timeout=30) as c, \
                UnixctlClient(daemon.ctl) as ctl:
            while learnt < want:
                assert time.monotonic() < deadline, (sent, learnt)
                c.inject_many("gdphys", [na(i) for i in range(sent,
                                                             sent + 100)])
                sent += 100
                time.sleep(0.05)
                learnt = parse_coverage(ctl.call("coverage/show")).get(
                    "pinctrl_pin_put_nd", 0) - cov0.get(
                        "pinctrl_pin_put_nd", 0)
        n = sent
        deadline = time.monotonic() + 15
        while backlog(daemon)[0] and time.monotonic() < deadline:
            time.sleep(0.2)
        peak = rss_kib(pid)
        queued = backlog(daemon)[1]
        cov = daemon.coverage()
        learnt = (cov.get("pinctrl_pin_put_nd", 0)
                  - cov0.get("pinctrl_pin_put_nd", 0))
        dropped = sum(cov.get(k, 0) - cov0.get(k, 0) for k in (
            "pinctrl_drop_put_mac_binding",
            "pinctrl_drop_put_mac_binding_retry"))
        rec.update(inputs=n, packet_ins=learnt, dropped=dropped,
                   rss0_kib=rss0, peak_rss_kib=peak)
        assert learnt > cap, learnt
        # The queue holds the cap; what did not fit is counted (packet-ins
        # may repeat a neighbour: 'learnt' bounds the distinct ones).
        assert queued == cap, queued
        assert 0 < dropped <= learnt - cap, (dropped, learnt)

        commits0 = daemon.coverage().get("sb_txn_commit", 0)
        t0 = time.monotonic()
        start_sb(sandbox)
        rtts = []
        while backlog(daemon)[1] and time.monotonic() - t0 < 60:
            t = time.monotonic()
            assert dhcp_answered(sandbox, timeout=2.0)
            rtts.append(time.monotonic() - t)
        drain = time.monotonic() - t0
        rtts.sort()
        rec.update(drain_s=round(drain, 2),
                   dhcp_p99_during_flush_s=rtts[int(0.99 * (len(rtts) - 1))]
                   if rtts else None)
        assert not backlog(daemon)[1], "backlog not drained in 60 s"
        written = mac_binding_count(sandbox, "2001:db8:ff::1:")
        rec["bindings"] = written
        rec["bindings_lost"] = max(0, queued - written)
        assert written == queued, (written, queued)
        # In capped batches: at least a transaction per 1000 entries.
        commits = daemon.coverage().get("sb_txn_commit", 0) - commits0
        assert commits >= queued // txn.MAX_BATCH, commits
        assert peak - rss0 < 64 * 1024, (rss0, peak)
        assert daemon.alive() and not has_traceback(daemon)
