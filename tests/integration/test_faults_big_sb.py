"""Initial sync of a Southbound holding many MAC_Binding rows on a local
datapath, under the systemd watchdog (issue 15): the daemon starts, gets
READY=1, and never goes silent for a watchdog period (WatchdogSec=30 in
packaging/pinctrl-daemon.service), while python-ovs parses the rows.

PINCTRL_BIG_SB_ROWS sets the number of rows (default 20000; `make soak`
sets 100000).  The rows are written straight into the sandbox's SB with
python-ovs's JSON-RPC, in transactions of 10000.
"""

from __future__ import annotations

import os
import time

import ovs.jsonrpc
import ovs.stream
import pytest

from tests.integration.test_faults import has_traceback, soak_record
from tests.integration.test_flood import dhcp_answered, rss_kib
from tests.integration.test_systemd_notify import FakeSystemd, pings

pytestmark = pytest.mark.integration

ROWS = int(os.environ.get("PINCTRL_BIG_SB_ROWS", "20000"))
WATCHDOG_USEC = 30_000_000          # packaging: WatchdogSec=30
BATCH = 10_000


def transact(remote: str, ops: list) -> None:
    err, stream = ovs.stream.Stream.open_block(ovs.stream.Stream.open(remote),
                                               10_000)
    assert not err, os.strerror(err)
    rpc = ovs.jsonrpc.Connection(stream)
    try:
        err, reply = rpc.transact_block(ovs.jsonrpc.Message.create_request(
            "transact", ["OVN_Southbound", *ops]))
        assert not err and reply.error is None, (err, reply and reply.error)
        bad = [r for r in reply.result if "error" in r]
        assert not bad, bad[:3]
    finally:
        rpc.close()


def add_mac_bindings(sandbox, n: int) -> None:
    dp = sandbox.sbctl("--bare", "--columns=_uuid", "find",
                       "Datapath_Binding", "tunnel_key=4").strip()   # lr0
    for start in range(0, n, BATCH):
        transact(sandbox.sb_db, [
            {"op": "insert", "table": "MAC_Binding", "row": {
                "logical_port": "lr0-public",
                "ip": f"10.{i >> 16 & 255}.{i >> 8 & 255}.{i & 255}",
                "mac": f"02:00:{i >> 24 & 255:02x}:{i >> 16 & 255:02x}:"
                       f"{i >> 8 & 255:02x}:{i & 255:02x}",
                "datapath": ["uuid", dp]}}
            for i in range(start, min(n, start + BATCH))])


@pytest.fixture
def systemd(sandbox):
    fake = FakeSystemd(os.path.join(sandbox.dir, "notify.sock"))
    sandbox.env.update(NOTIFY_SOCKET=fake.path,
                       WATCHDOG_USEC=str(WATCHDOG_USEC))
    try:
        yield fake
    finally:
        fake.close()


def test_initial_sync_of_many_mac_bindings_under_the_watchdog(sandbox,
                                                              systemd):
    t0 = time.monotonic()
    add_mac_bindings(sandbox, ROWS)
    filled = time.monotonic() - t0
    d = sandbox.daemon().start(wait=False)
    try:
        with soak_record("big_sb_initial_sync", d) as rec:
            rec.update(faults=1, rows=ROWS, fill_s=round(filled, 1))
            t0 = time.monotonic()
            systemd.poll(240, until=lambda m: "READY=1" in m)
            ready = [t for t, m in systemd.msgs if "READY=1" in m]
            assert ready, systemd.msgs[-5:]
            rec["ready_s"] = round(ready[0] - t0, 1)
            # Replicated: the rows are there (memory/show counts cells;
            # a MAC_Binding row has 4 or 5).  The pings are received (and
            # timed) meanwhile.
            deadline = time.monotonic() + 180
            cells = 0
            while cells < 4 * ROWS:
                assert d.alive() and time.monotonic() < deadline, cells
                mem = dict(l.split(":", 1) for l in
                           d.appctl("memory/show", timeout=60).split()
                           if ":" in l)
                cells = int(mem.get("idl-cells-OVN_Southbound", 0))
                systemd.poll(0.5)
            rec["synced_s"] = round(time.monotonic() - t0, 1)
            systemd.poll(WATCHDOG_USEC / 1e6 / 2 + 1)
            rec["peak_rss_kib"] = rss_kib(d.popen.pid)
            times = [t0] + pings(systemd.msgs)
            gap = max(b - a for a, b in zip(times, times[1:]))
            rec["longest_watchdog_gap_s"] = round(gap, 1)
            # The main thread is busy for seconds in one pass over the
            # initial update (the keep-alive may mark it STUCK meanwhile):
            # recorded; what matters is that systemd is not left waiting a
            # whole WatchdogSec.
            rec["main_marked_stuck"] = open(d.log_file).read().count(
                "thread main is STUCK")
            assert gap < WATCHDOG_USEC / 1e6, f"{gap:.1f} s without a ping"
            assert d.alive() and not has_traceback(d)
            assert dhcp_answered(d.sb, attempts=5)
    finally:
        d.stop()
