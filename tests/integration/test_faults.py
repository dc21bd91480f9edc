"""Faults around a running daemon (issue 9), with real processes:

  * the Southbound ovsdb-server is SIGKILLed and restarted while the daemon
    learns MAC bindings (gARPs from the localnet punt put_arp): every
    binding learnt before, during and after the outage is in the SB with
    its MAC, the daemon's queues drain, nothing was dropped; DHCP and DNS
    packet-ins are answered while the SB is away (DNS from the last
    snapshot); the caches are rebuilt afterwards;
  * in a 3-server clustered SB the leader is frozen while bindings are
    learnt, so that a transaction is in flight, then killed: all are
    written (the cluster helpers come from test_sb_ssl_cluster.py);
  * SIGTERM under load: exit code 0, no traceback, pidfile removed.

"Written once" cannot be checked on the SB rows: its (logical_port, ip)
index rejects a second row.  What can fail is checked instead: each
binding present with the right MAC, the daemon's retry queues empty and
its drop counters unchanged.

PINCTRL_FAULT_ROUNDS (default 1) repeats the SB restart; `make soak` sets
more.  With PINCTRL_SOAK_REPORT=<file> each test appends a JSON line for the
soak table (tests/soak/run_soak.py), also when it fails: the figures are
what was measured (bindings_lost counts the learnt bindings missing from
the SB at the end, crashes a daemon that died or logged a traceback),
and "finished": false says the test ended early.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import time
from typing import Iterator

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
# Counters that would mean a learnt binding was given up.
DROPS = ("pinctrl_drop_put_mac_binding", "pinctrl_drop_put_mac_binding_retry",
         "sb_txn_drop_failing_entry")


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


def expected(ids) -> dict[str, str]:
    """ip -> the MAC its last gARP taught (ids sharing an IP: the last)."""
    return {garp_ip(i): garp_mac(i) for i in ids}


def missing_bindings(sb, ids, db: str | None = None,
                     timeout: float = WRITE_TIMEOUT) -> dict[str, str]:
    """Wait until every id's binding is in the SB with its MAC; return
    those still missing (ip -> wanted MAC) when 'timeout' ran out."""
    want = expected(ids)
    deadline = time.monotonic() + timeout
    while True:
        have = {ip: mac for port, ip, mac in mac_bindings(sb, db)
                if port == "lr0-public"}
        missing = {ip: mac for ip, mac in want.items() if have.get(ip) != mac}
        if not missing or time.monotonic() > deadline:
            return missing
        time.sleep(0.2)


def queues_drained(daemon, timeout: float = 10.0) -> str:
    """Wait until pinctrl/mac-bindings says nothing is pending or in
    flight; returns its text (AssertionError otherwise)."""
    deadline = time.monotonic() + timeout
    while True:
        out = daemon.appctl("pinctrl/mac-bindings")
        if ("taken: 0\n" in out and "pending: 0, in flight: 0" in out):
            return out
        if time.monotonic() > deadline:
            raise AssertionError(f"queues not drained:\n{out}")
        time.sleep(0.2)


def drops(daemon) -> dict[str, int]:
    cov = daemon.coverage()
    return {k: cov.get(k, 0) for k in DROPS}


def crashed(daemon) -> int:
    """1 if the daemon died or logged a traceback."""
    return int(not daemon.alive() or has_traceback(daemon))


@contextlib.contextmanager
def soak_record(test: str, daemon, **fields) -> Iterator[dict]:
    """The soak line of one test, written when it ends however it ends;
    the test fills in what it measured.  A test about learnt bindings
    passes bindings_lost=None: still None at the end means it ended
    before counting them."""
    rec = {"test": test, "faults": 0, **fields}
    try:
        yield rec
        rec["finished"] = True
    except BaseException:
        rec["finished"] = False
        raise
    finally:
        if "crashes" not in rec:
            rec["crashes"] = crashed(daemon)
        report(**rec)


def kill_sb(sb) -> None:
    """SIGKILL the sandbox's SB ovsdb-server (by pid)."""
    sb._procs["ovnsb_db"].kill(signal.SIGKILL, timeout=5)


def start_sb(sb) -> None:
    """Serve the same database file again on the same socket."""
    sb._ovsdb_server("ovnsb_db", f"{sb.dir}/ovnsb.db",
                     f"{sb.dir}/ovnsb_db.sock")


def _outputs(daemon) -> list[str]:
    return [open(p, errors="replace").read() for p in (
        daemon.log_file, f"{daemon.sb.dir}/pinctrl-daemon.stderr")
        if os.path.exists(p)]


def has_traceback(daemon) -> bool:
    return any("Traceback" in text for text in _outputs(daemon))


def no_traceback(daemon) -> None:
    for text in _outputs(daemon):
        assert "Traceback" not in text, text[-3000:]


def test_sb_restart_bindings_written_answers_meanwhile(sandbox, daemon):
    wait_show(daemon, sb_serving, 10, "SB snapshot")
    drops0 = drops(daemon)
    ids = iter(range(10_000))
    learnt: list[int] = []
    with soak_record("sb_restart", daemon, bindings_lost=None) as rec:
        for rnd in range(ROUNDS):
            before = [next(ids) for _ in range(PER_BATCH)]
            learn(sandbox, before)
            learnt += before
            assert not missing_bindings(sandbox, learnt)

            kill_sb(sandbox)
            rec["faults"] += 1
            wait_show(daemon, lambda f: not f.get("Southbound", "")
                      .startswith("connected"), 10, "SB loss noticed")
            during = [next(ids) for _ in range(2 * PER_BATCH)]
            learn(sandbox, during[:PER_BATCH])
            # Answered while the SB is away: DHCP (options in the flows)
            # and DNS (records from the last snapshot).
            replay_exchange(sandbox, "dhcpv4_discover_offer")
            replay_exchange(sandbox, "dns_a_hit")
            learn(sandbox, during[PER_BATCH:])
            learnt += during
            time.sleep(1.0)
            start_sb(sandbox)

            after = [next(ids) for _ in range(PER_BATCH)]
            learn(sandbox, after)
            learnt += after
            rec["bindings"] = len(expected(learnt))
            missing = missing_bindings(sandbox, learnt)
            rec["bindings_lost"] = len(missing)
            assert not missing, f"round {rnd}: never written: {missing}"
            wait_show(daemon, sb_serving, 10,
                      "caches rebuilt after SB restart")
            replay_exchange(sandbox, "dns_a_hit")
        out = queues_drained(daemon)
        written = int(re.search(r"written since start: (\d+)", out)[1])
        assert written >= len(expected(learnt)), out
        assert drops(daemon) == drops0, "a learnt binding was dropped"
        assert daemon.alive()
        no_traceback(daemon)


def cluster_role(sb_dir: str, name: str) -> str:
    cp = subprocess.run(["ovs-appctl", "-t", f"{sb_dir}/{name}.ctl",
                         "cluster/status", "OVN_Southbound"],
                        capture_output=True, text=True, timeout=10)
    m = re.search(r"^Role: (\w+)", cp.stdout, re.M)
    return m.group(1) if m else "?"


def in_flight(daemon) -> int:
    out = daemon.appctl("pinctrl/mac-bindings")
    return int(re.search(r"in flight: (\d+)", out)[1])


def test_cluster_leader_killed_mid_transaction(sandbox, servers):
    remotes = make_cluster(sandbox.dir, servers)
    d = sandbox.daemon(extra_args=["--ovnsb-db", ",".join(remotes.values())])
    d.start(timeout=15)
    some = f"unix:{sandbox.dir}/sb1.sock"
    with soak_record("cluster_leader_kill", d, bindings_lost=None) as rec:
        wait_show(d, sb_serving, 15, "clustered SB")
        learn(sandbox, range(PER_BATCH))
        assert not missing_bindings(sandbox, range(PER_BATCH), some)
        drops0 = drops(d)

        leader = next(n for n in remotes
                      if cluster_role(sandbox.dir, n) == "leader")
        pid = servers.procs[leader].popen.pid
        # Frozen, the leader commits nothing: the next transaction stays
        # in flight (on the leader, or forwarded to it by a follower) ...
        os.kill(pid, signal.SIGSTOP)
        try:
            learn(sandbox, range(PER_BATCH, 3 * PER_BATCH))
            deadline = time.monotonic() + 10
            while not in_flight(d):
                assert time.monotonic() < deadline, \
                    d.appctl("pinctrl/mac-bindings")
                time.sleep(0.05)
        finally:
            # ... when it dies.
            servers.kill(leader)
        rec["faults"] = 1
        alive = next(n for n in remotes if n != leader)
        ids = range(3 * PER_BATCH)
        rec["bindings"] = len(expected(ids))
        missing = missing_bindings(sandbox, ids,
                                   f"unix:{sandbox.dir}/{alive}.sock")
        rec["bindings_lost"] = len(missing)
        assert not missing, f"never written: {missing}"
        wait_show(d, sb_serving, 15, "serving after the leader's death")
        queues_drained(d)
        assert drops(d) == drops0
        # The transaction in flight was retried (TRY_AGAIN), or the
        # member holding it committed it once a new leader was elected.
        rec["retries"] = d.coverage().get("sb_txn_retry", 0)
        assert d.alive()
        no_traceback(d)


def test_sigterm_under_load(sandbox, daemon):
    with soak_record("sigterm_under_load", daemon) as rec:
        with Flood(sandbox) as flood:
            time.sleep(1.5)
            assert flood.sent > 0
            os.kill(daemon.popen.pid, signal.SIGTERM)
            rec["faults"] = 1
            try:
                rc = daemon.popen.wait(timeout=10)
            except subprocess.TimeoutExpired:
                pytest.fail("daemon still running 10 s after SIGTERM under "
                            "load")
        rec["inputs"] = flood.sent
        rec["crashes"] = int(rc != 0 or has_traceback(daemon))
        assert rc == 0, rc
        no_traceback(daemon)
        assert not os.path.exists(daemon.pidfile), "pidfile left behind"
