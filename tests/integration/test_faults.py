"""Faults around a running daemon (issue 9), with real processes:

  * the Southbound ovsdb-server is SIGKILLed and restarted while the daemon
    learns MAC bindings (gARPs from the localnet punt put_arp): every
    binding learnt before, during and after the outage is written, none
    twice; DHCP and DNS packet-ins are answered while the SB is away (DNS
    from the last snapshot); the caches are rebuilt afterwards;
  * in a 3-server clustered SB the leader is killed while bindings are
    learnt: all are written, none twice (the cluster helpers come from
    test_sb_ssl_cluster.py);
  * SIGTERM under load: exit code 0, no traceback, pidfile removed.

PINCTRL_FAULT_ROUNDS (default 1) repeats the SB restart; `make soak` sets
more.  With PINCTRL_SOAK_REPORT=<file> each test appends a JSON line for the
soak table (tests/soak/run_soak.py).
"""

from __future__ import annotations

import collections
import os
import re
import signal
import subprocess
import time

import pytest

from testbed.daemon_under_test import UnixctlClient
from testbed.golden import replay_exchange
from tests.integration.test_flood import Flood, garp, report

# The cluster helpers and their fixture (servers started and stopped by
# pid) are shared with the clustered-SB connectivity test.
from tests.integration.test_sb_ssl_cluster import (  # noqa: F401
    make_cluster,
    sb_serving,
    servers,
    wait_show,
)

pytestmark = pytest.mark.integration

ROUNDS = int(os.environ.get("PINCTRL_FAULT_ROUNDS", "1"))
PER_BATCH = 10
WRITE_TIMEOUT = 20.0


def garp_ip(i: int) -> str:
    return f"172.16.0.{100 + i % 150}"


def garp_mac(i: int) -> str:
    return "02:00:00:10:" + f"{(i >> 8) & 0xFF:02x}:{i & 0xFF:02x}"


def learn(sb, ids) -> None:
    """Inject a gARP per id on the localnet port (put_arp on lr0-public)."""
    with UnixctlClient(sb.vswitchd_ctl) as c:
        assert c.inject_many("gdphys", [garp(i) for i in ids]) == len(ids)


def mac_bindings(sb, db: str | None = None) -> list[tuple[str, str, str]]:
    """(logical_port, ip, mac) of every SB MAC_Binding row."""
    out = sb.run(["ovn-sbctl", f"--db={db or sb.sb_db}", "--no-leader-only",
                  "--timeout=10", "--format=csv", "--data=bare",
                  "--no-headings", "--columns=logical_port,ip,mac", "list",
                  "MAC_Binding"], check=False).stdout
    return [tuple(l.split(",")) for l in out.splitlines() if l.count(",") == 2]


def wait_bindings(sb, ids, db: str | None = None) -> dict[str, int]:
    """Wait until every id's binding is in the SB with its MAC; then count
    the rows per IP among them (a second write would be a second row)."""
    want = {garp_ip(i): garp_mac(i) for i in ids}
    deadline = time.monotonic() + WRITE_TIMEOUT
    while True:
        rows = mac_bindings(sb, db)
        have = {ip: mac for port, ip, mac in rows if port == "lr0-public"}
        missing = {ip for ip, mac in want.items() if have.get(ip) != mac}
        if not missing:
            time.sleep(1.0)         # a late duplicate would land now
            rows = mac_bindings(sb, db)
            return collections.Counter(ip for port, ip, _ in rows
                                       if port == "lr0-public" and ip in want)
        if time.monotonic() > deadline:
            raise AssertionError(f"{len(missing)} bindings never written: "
                                 f"{sorted(missing)[:10]}\nrows: {rows}")
        time.sleep(0.2)


def kill_sb(sb) -> None:
    """SIGKILL the sandbox's SB ovsdb-server (by pid)."""
    sb._procs["ovnsb_db"].kill(signal.SIGKILL, timeout=5)


def start_sb(sb) -> None:
    """Serve the same database file again on the same socket."""
    sb._ovsdb_server("ovnsb_db", f"{sb.dir}/ovnsb.db",
                     f"{sb.dir}/ovnsb_db.sock")


def no_traceback(daemon) -> None:
    for path in (daemon.log_file, f"{daemon.sb.dir}/pinctrl-daemon.stderr"):
        if os.path.exists(path):
            text = open(path, errors="replace").read()
            assert "Traceback" not in text, text[-3000:]


def test_sb_restart_bindings_written_once_answers_meanwhile(sandbox, daemon):
    wait_show(daemon, sb_serving, 10, "SB snapshot")
    ids = iter(range(10_000))
    learnt = []
    for rnd in range(ROUNDS):
        before = [next(ids) for _ in range(PER_BATCH)]
        learn(sandbox, before)
        learnt += before
        assert max(wait_bindings(sandbox, learnt).values()) == 1

        kill_sb(sandbox)
        wait_show(daemon, lambda f: not f.get("Southbound", "")
                  .startswith("connected"), 10, "SB loss noticed")
        during = [next(ids) for _ in range(2 * PER_BATCH)]
        learn(sandbox, during[:PER_BATCH])
        # Answered while the SB is away: DHCP (options in the flows) and
        # DNS (records from the last snapshot).
        replay_exchange(sandbox, "dhcpv4_discover_offer")
        replay_exchange(sandbox, "dns_a_hit")
        learn(sandbox, during[PER_BATCH:])
        learnt += during
        time.sleep(1.0)
        start_sb(sandbox)

        after = [next(ids) for _ in range(PER_BATCH)]
        learn(sandbox, after)
        learnt += after
        counts = wait_bindings(sandbox, learnt)
        assert set(counts.values()) == {1}, \
            f"round {rnd}: written twice: " \
            f"{[ip for ip, n in counts.items() if n > 1]}"
        wait_show(daemon, sb_serving, 10, "caches rebuilt after SB restart")
        replay_exchange(sandbox, "dns_a_hit")
    assert daemon.alive()
    no_traceback(daemon)
    report(test="sb_restart", faults=ROUNDS, bindings=len(learnt),
           bindings_lost=0, crashes=int(not daemon.alive()))


def cluster_role(sb_dir: str, name: str) -> str:
    cp = subprocess.run(["ovs-appctl", "-t", f"{sb_dir}/{name}.ctl",
                         "cluster/status", "OVN_Southbound"],
                        capture_output=True, text=True, timeout=10)
    m = re.search(r"^Role: (\w+)", cp.stdout, re.M)
    return m.group(1) if m else "?"


def test_cluster_leader_killed_bindings_written_once(sandbox, servers):
    remotes = make_cluster(sandbox.dir, servers)
    d = sandbox.daemon(extra_args=["--ovnsb-db", ",".join(remotes.values())])
    d.start(timeout=15)
    wait_show(d, sb_serving, 15, "clustered SB")
    learn(sandbox, range(PER_BATCH))
    some = f"unix:{sandbox.dir}/sb1.sock"
    assert max(wait_bindings(sandbox, range(PER_BATCH), some).values()) == 1

    leader = next(n for n in remotes if cluster_role(sandbox.dir, n) ==
                  "leader")
    servers.kill(leader)
    # Learnt while the cluster elects a new leader (and the daemon may be
    # reconnecting to another member).
    learn(sandbox, range(PER_BATCH, 3 * PER_BATCH))
    alive = next(n for n in remotes if n != leader)
    counts = wait_bindings(sandbox, range(3 * PER_BATCH),
                           f"unix:{sandbox.dir}/{alive}.sock")
    assert set(counts.values()) == {1}, counts
    wait_show(d, sb_serving, 15, "serving after the leader's death")
    assert d.alive()
    no_traceback(d)
    report(test="cluster_leader_kill", faults=1, bindings=3 * PER_BATCH,
           bindings_lost=0, crashes=int(not d.alive()))


def test_sigterm_under_load(sandbox, daemon):
    with Flood(sandbox) as flood:
        time.sleep(1.5)
        assert flood.sent > 0
        os.kill(daemon.popen.pid, signal.SIGTERM)
        try:
            rc = daemon.popen.wait(timeout=10)
        except subprocess.TimeoutExpired:
            pytest.fail("daemon still running 10 s after SIGTERM under load")
    assert rc == 0, rc
    no_traceback(daemon)
    assert not os.path.exists(daemon.pidfile), "pidfile left behind"
    report(test="sigterm_under_load", faults=1, inputs=flood.sent,
           crashes=int(rc != 0))
