"""Faults of issue 15 around a running daemon, with real servers: the main
thread and the Southbound path.

  * a runtime change of external_ids:ovn-remote to a remote that does not
    answer leaves the main loop serving (unixctl, DHCP, DNS) instead of
    blocking in a schema fetch;
  * a change to a good remote while the SB is down carries every pending
    write over to the new server;
  * ovn-remote-probe-interval is honoured: a frozen (SIGSTOPped) SB is
    noticed within the interval, as ovn-controller would;
  * SB rows holding numbers int() refuses (more than 4300 digits) in DNS
    records and ipv6_ra options neither crash nor stop the other rows;
  * a private key that cannot be loaded at a Southbound reconnection (a
    certificate rotation caught half-way) costs the connection, not the
    process; a server whose certificate another CA signed is refused;
  * the control socket, pidfile and log are not world-readable, and
    vlog/reopen and vlog/close release the log file they drop.

Every process is started by the sandbox or here and stopped by pid.
"""

from __future__ import annotations

import os
import shutil
import signal
import stat
import time

import pytest

from testbed.daemon_under_test import UnixctlClient
from testbed.golden import GOLDEN, replay_exchange
from testbed.ovs_sandbox import ovsdb_server
from tests.integration.test_faults import (
    garp_ip,
    garp_mac,
    kill_sb,
    learn,
    mac_bindings,
    no_traceback,
    soak_record,
)
from tests.integration.test_flood import dhcp_answered
from tests.integration.test_sb_ssl_cluster import (  # noqa: F401
    _read,
    make_pki,
    run,
    sb_serving,
    servers,
    show_fields,
    wait_show,
)

pytestmark = pytest.mark.integration

APPCTL_MAX_S = 1.0


def sb_down(f: dict[str, str]) -> bool:
    return not f.get("Southbound", "").startswith("connected")


def serving_meanwhile(sandbox, daemon, seconds: float) -> float:
    """For 'seconds': pinctrl/show answers (each within APPCTL_MAX_S),
    DHCP and DNS are answered.  Returns the slowest pinctrl/show."""
    slowest = 0.0
    t_end = time.monotonic() + seconds
    with UnixctlClient(daemon.ctl, timeout=30) as ctl:
        while time.monotonic() < t_end:
            _, took = ctl.timed_call("pinctrl/show")
            slowest = max(slowest, took)
            assert dhcp_answered(sandbox, attempts=3), "DHCP not answered"
            replay_exchange(sandbox, "dns_a_hit")
    assert slowest < APPCTL_MAX_S, f"pinctrl/show took {slowest:.2f} s"
    return slowest


def log_has(daemon, text: str) -> bool:
    return text in _read(daemon.log_file)


def wait_log(daemon, text: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not log_has(daemon, text):
        if time.monotonic() > deadline:
            raise AssertionError(f"no {text!r} in the log within {timeout} s"
                                 f":\n{daemon.log_tail(30)}")
        time.sleep(0.1)


# --- files -------------------------------------------------------------------

def test_own_files_are_not_world_readable(sandbox, daemon):
    with soak_record("own_files", daemon) as rec:
        rec["faults"] = 1
        for path in (daemon.ctl, daemon.pidfile, daemon.log_file):
            mode = stat.S_IMODE(os.stat(path).st_mode)
            assert not mode & 0o007, f"{path}: mode {oct(mode)}"


def test_vlog_reopen_and_close_release_the_log_file(sandbox, daemon):
    """python-ovs takes the file handler off without closing it: after
    vlog/close the log stayed open (and a reopened one was released only
    when the garbage collector got to it)."""
    with soak_record("vlog_reopen", daemon) as rec:
        rec["faults"] = 1
        pid = daemon.popen.pid

        def log_fds() -> int:
            fd_dir = f"/proc/{pid}/fd"
            n = 0
            for fd in os.listdir(fd_dir):
                try:
                    target = os.readlink(f"{fd_dir}/{fd}")
                except OSError:
                    continue
                n += target.startswith(daemon.log_file)    # "... (deleted)"
            return n

        assert log_fds() == 1
        for i in range(10):                 # logrotate: move, then reopen
            os.rename(daemon.log_file, f"{daemon.log_file}.{i}")
            daemon.appctl("vlog/reopen")
        assert log_fds() == 1, "vlog/reopen leaked the old log descriptors"
        daemon.appctl("vlog/close")
        assert log_fds() == 0


# --- ovn-remote changes at run time ------------------------------------------

@pytest.mark.parametrize("bad", ["unix:/nonexistent/ovnsb_db.sock",
                                 "tcp:192.0.2.1:6642"])
def test_ovn_remote_to_an_unreachable_remote_keeps_serving(sandbox, daemon,
                                                           bad):
    """Before issue 15 the main thread blocked in a schema fetch for up to
    --db-timeout (30 s) on every loop: unixctl silent, main STUCK."""
    with soak_record("ovn_remote_unreachable", daemon) as rec:
        rec["faults"] = 1
        wait_show(daemon, sb_serving, 10, "SB snapshot")
        sandbox.vsctl("set", "open", ".", f"external_ids:ovn-remote={bad}")
        wait_log(daemon, f"ovn-remote changed to {bad}", 5)
        slowest = serving_meanwhile(sandbox, daemon, 5)
        f = show_fields(daemon)
        assert sb_serving(f) and f["Southbound"].startswith(
            f"connected ({sandbox.sb_db}"), f
        assert not log_has(daemon, "STUCK")
        # Learnt meanwhile: still written, through the old connection.
        learn(sandbox, [7])
        deadline = time.monotonic() + 10
        while (("lr0-public", garp_ip(7), garp_mac(7))
               not in mac_bindings(sandbox)):
            assert time.monotonic() < deadline, "binding not written"
            time.sleep(0.2)
        sandbox.vsctl("set", "open", ".",
                      f"external_ids:ovn-remote={sandbox.sb_db}")
        wait_log(daemon, f"staying on {sandbox.sb_db}", 5)
        assert daemon.alive()
        no_traceback(daemon)
        rec["slowest_appctl_s"] = slowest


def test_ovn_remote_switch_carries_pending_writes(sandbox, daemon):
    """Before issue 15 the new connection started with empty writers: what
    was learnt while the old SB was down was lost."""
    with soak_record("ovn_remote_switch", daemon, bindings_lost=None) as rec:
        rec["faults"] = 1
        wait_show(daemon, sb_serving, 10, "SB snapshot")
        d = sandbox.dir
        shutil.copyfile(GOLDEN / "sb.backup.db", f"{d}/sb2.db")
        ovsdb_server(sandbox, "sb2", f"{d}/sb2.db", f"{d}/sb2.sock")
        sb2 = f"unix:{d}/sb2.sock"

        kill_sb(sandbox)                    # the old remote goes away ...
        wait_show(daemon, sb_down, 10, "SB loss noticed")
        ids = list(range(20))
        learn(sandbox, ids)                 # ... while bindings are learnt
        time.sleep(1.0)                     # taken into the writers' queues
        replay_exchange(sandbox, "dns_a_hit")       # the old snapshot serves
        sandbox.vsctl("set", "open", ".", f"external_ids:ovn-remote={sb2}")
        wait_show(daemon, lambda f: sb_serving(f) and f["Southbound"]
                  .startswith(f"connected ({sb2}"), 15, "switched to sb2")
        want = {(garp_ip(i), garp_mac(i)) for i in ids}
        deadline = time.monotonic() + 15
        while True:
            have = {(ip, mac) for port, ip, mac in mac_bindings(sandbox, sb2)
                    if port == "lr0-public"}
            lost = want - have
            if not lost or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        rec["bindings"], rec["bindings_lost"] = len(ids), len(lost)
        assert not lost, f"{len(lost)} learnt bindings lost in the switch"
        replay_exchange(sandbox, "dns_a_hit")
        assert daemon.coverage().get("sb_remote_switch") == 1
        no_traceback(daemon)


# --- the Southbound probe interval -------------------------------------------

def test_ovn_remote_probe_interval_notices_a_frozen_sb(sandbox, daemon):
    """python-ovs turns probes off on unix: remotes; ovn-controller sets
    what external_ids:ovn-remote-probe-interval says.  Before issue 15 a
    SIGSTOPped server was never noticed."""
    with soak_record("sb_frozen_probe", daemon) as rec:
        rec["faults"] = 1
        wait_show(daemon, sb_serving, 10, "SB snapshot")
        sandbox.vsctl("set", "open", ".",
                      "external_ids:ovn-remote-probe-interval=1000")
        wait_log(daemon, "Southbound inactivity probe interval: 1000 ms", 5)
        proc = sandbox._procs["ovnsb_db"]
        os.kill(proc.popen.pid, signal.SIGSTOP)
        try:
            t0 = time.monotonic()
            wait_show(daemon, sb_down, 6, "frozen SB noticed")
            noticed = time.monotonic() - t0
            assert dhcp_answered(sandbox, attempts=3)
        finally:
            os.kill(proc.popen.pid, signal.SIGCONT)
        wait_show(daemon, sb_serving, 15, "SB back")
        rec["noticed_s"] = noticed


# --- rows holding numbers int() refuses --------------------------------------

HUGE = "9" * 5000


def test_huge_numbers_in_sb_rows_neither_crash_nor_stop_the_others(
        sandbox, daemon):
    """Before issue 15 int() raised out of idl.run()'s caller: the daemon
    died, and systemd's restart died on the same row."""
    with soak_record("huge_numbers", daemon) as rec:
        rec["faults"] = 1
        wait_show(daemon, sb_serving, 10, "SB snapshot")
        sw0 = sandbox.sbctl("--bare", "--columns=_uuid", "find",
                            "Datapath_Binding", "tunnel_key=1").strip()
        sandbox.sbctl("create", "DNS", f"datapaths={sw0}",
                      "external_ids:dns_id=zz-huge",
                      f'records:"huge.ovn.test"="1{HUGE}.0.0.1 10.0.0.99"',
                      f'records:"also.ovn.test"="10.0.0.98/{HUGE}"')
        sandbox.sbctl("set", "Port_Binding", "lr0-sw1",
                      f"options:ipv6_ra_max_interval={HUGE}",
                      f"options:ipv6_ra_mtu=-{HUGE}")
        deadline = time.monotonic() + 10
        while "huge.ovn.test" not in daemon.appctl("pinctrl/dns-cache"):
            assert daemon.alive(), daemon.log_tail()
            assert time.monotonic() < deadline, \
                daemon.appctl("pinctrl/dns-cache")
            time.sleep(0.2)
        cache = daemon.appctl("pinctrl/dns-cache")
        assert "vm1.ovn.test -> 10.0.0.11 2001:db8::11" in cache, cache
        replay_exchange(sandbox, "dns_a_hit")
        # max_interval falls back to its default (600 s), as any bad int.
        deadline = time.monotonic() + 10
        while "lr0-sw1: every 3-600 s" not in daemon.appctl("pinctrl/ipv6-ra"):
            assert time.monotonic() < deadline, \
                daemon.appctl("pinctrl/ipv6-ra")
            time.sleep(0.2)
        assert dhcp_answered(sandbox, attempts=3)
        assert daemon.alive()
        no_traceback(daemon)
        rec["faults"] = 2


# --- TLS ---------------------------------------------------------------------

def ssl_sb(sandbox, servers, pki: dict[str, str], name: str = "sb-ssl"
           ) -> str:
    db = f"{sandbox.dir}/{name}.db"
    shutil.copy(GOLDEN / "sb.backup.db", db)
    port = servers.start(
        name, db, "pssl:0:127.0.0.1",
        extra=(f"--private-key={pki['server-key']}",
               f"--certificate={pki['server-cert']}",
               f"--ca-cert={pki['ca-cert']}"))
    return f"ssl:127.0.0.1:{port}"


def test_unloadable_key_at_reconnection_costs_the_connection_only(
        sandbox, servers):
    """python-ovs loads the key and certificate at every connection
    attempt; a key replaced by garbage (rotation half-way) raised
    ssl.SSLError out of idl.run() and killed the daemon before issue 15."""
    pki = make_pki(sandbox.dir)
    key = f"{sandbox.dir}/rotating-key.pem"
    shutil.copy(pki["client-key"], key)
    remote = ssl_sb(sandbox, servers, pki)
    d = sandbox.daemon(extra_args=[
        "--ovnsb-db", remote, "--private-key", key,
        "--certificate", pki["client-cert"], "--ca-cert", pki["ca-cert"]])
    d.start(timeout=15)
    try:
        with soak_record("tls_key_at_reconnect", d) as rec:
            wait_show(d, sb_serving, 10, "SB over SSL")
            with open(key, "w") as f:
                f.write("-----BEGIN EC PRIVATE KEY-----\nnot a key\n")
            sandbox.appctl("ovsdb-server/reconnect",
                           target=f"{sandbox.dir}/sb-ssl.ctl")
            rec["faults"] = 1
            deadline = time.monotonic() + 10
            while not d.coverage().get("main_stage_error_sb_idl"):
                assert d.alive(), d.log_tail()
                assert time.monotonic() < deadline, d.log_tail()
                time.sleep(0.2)
            assert dhcp_answered(sandbox, attempts=3)
            replay_exchange(sandbox, "dns_a_hit")
            assert d.alive()
            shutil.copy(pki["client-key"], key)     # rotation completed
            wait_show(d, sb_serving, 15, "reconnected with the new key")
            assert "SSLError" in _read(d.log_file)
    finally:
        d.stop()


def test_server_certificate_from_an_untrusted_ca_is_refused(sandbox,
                                                            servers):
    ours = make_pki(f"{sandbox.dir}")
    other_dir = f"{sandbox.dir}/other-ca"
    os.mkdir(other_dir)
    theirs = make_pki(other_dir)
    remote = ssl_sb(sandbox, servers, theirs, "sb-untrusted")
    d = sandbox.daemon(extra_args=[
        "--ovnsb-db", remote, "--db-timeout", "3",
        "--private-key", ours["client-key"],
        "--certificate", ours["client-cert"], "--ca-cert", ours["ca-cert"]])
    d.start(wait=False)
    try:
        with soak_record("untrusted_ca", d) as rec:
            rec["faults"] = 1
            rc = d.popen.wait(timeout=20)
            err = _read(f"{sandbox.dir}/pinctrl-daemon.stderr")
            rec["crashes"] = int("Traceback" in err)
            assert rc == 1, rc
            assert "cannot reach the OVN Southbound database" in err, err
            assert "Traceback" not in err
    finally:
        d.stop()
