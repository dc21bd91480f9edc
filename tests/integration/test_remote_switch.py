"""sb_sync.RemoteSwitch (issue 15 #1) against real SB ovsdb-servers, no
root: the move to new Southbound remotes never blocks the loop, serves the
old snapshots until the new IDL is replicated, and carries the pending
writes over.  The daemon-level tests are in test_faults_main_thread.py."""

from __future__ import annotations

import time

import ovs.poller
import pytest
from ovs.timeval import msec

from pinctrl import sb_sync
from pinctrl.sb_sync import RemoteSwitch, SbSync
from pinctrl.shared.records import Learnt, ipv4_mapped
from testbed.ovs_sandbox import SbServer, step_until_change
from tests.integration.test_sb_writers import (  # noqa: F401
    HV1,
    LR0_DP,
    LR0_PUBLIC,
    MAC_A,
    mac_bindings,
    settle,
    sync,
)

pytestmark = pytest.mark.integration

GW_IP = ipv4_mapped(0xac1000fe)     # 172.16.0.254


def switch_until_done(sw: RemoteSwitch, old: SbSync,
                      timeout: float = 10.0) -> SbSync:
    """Drive the switch (and the old connection, as the daemon does)
    until it hands over a replicated SbSync."""
    deadline = time.monotonic() + timeout
    while True:
        now = msec()
        old.run(now, HV1)
        new = sw.run(now)
        if new is not None:
            return new
        assert time.monotonic() < deadline, sw.state()
        poller = ovs.poller.Poller()
        sw.wait(poller, now)
        old.wait(poller, now)
        poller.timer_wait(100)
        poller.block()


@pytest.fixture
def second_server(tmp_path):
    srv = SbServer(tmp_path / "second")
    (tmp_path / "second").mkdir()
    srv.start()
    try:
        yield srv
    finally:
        srv.stop()


def test_unreachable_remote_never_blocks(sync):
    sw = RemoteSwitch(sync.shared, "unix:/nonexistent/sb.sock,"
                      "tcp:192.0.2.1:6642")
    try:
        t0 = time.monotonic()
        for _ in range(50):
            assert sw.run(msec()) is None
        assert time.monotonic() - t0 < 1.0
        assert sw.state().startswith("connecting")
    finally:
        sw.close()


def test_old_snapshots_serve_until_the_new_idl_is_replicated(
        sync, second_server):
    shared = sync.shared
    dns_before = shared.dns_cache
    assert dns_before                       # the golden SB's DNS row
    sw = RemoteSwitch(shared, second_server.remote)
    new = switch_until_done(sw, sync)
    try:
        # Replicating published nothing: the old snapshot is in place.
        assert shared.dns_cache is dns_before
        new.adopt_writes(sync)
        sync.close()
        step_until_change(new, chassis=HV1)
        assert shared.dns_cache is not dns_before
        assert dict(shared.dns_cache) == dict(dns_before)
    finally:
        new.close()


def test_pending_writes_are_carried_over(sync, sb_server, second_server):
    # Learnt while the first server is gone: pending in its writer.
    sb_server.stop()
    sync.shared.put_mac_bindings.put((LR0_DP, LR0_PUBLIC, GW_IP),
                                     Learnt(MAC_A, 0))
    for _ in range(5):
        sync.run(msec(), HV1)
    assert len(sync.mac_bindings) == 1
    sw = RemoteSwitch(sync.shared, second_server.remote)
    new = switch_until_done(sw, sync)
    try:
        new.adopt_writes(sync)
        sync.close()
        step_until_change(new, chassis=HV1)
        settle(new)
        (row,) = mac_bindings(second_server)
        assert row["mac"] == "00:00:00:00:fe:fe"
    finally:
        new.close()


def test_a_failed_sbsync_construction_is_retried(sync, second_server,
                                                 monkeypatch):
    real = sb_sync.SbSync
    calls = []

    def flaky(*a, **kw):
        calls.append(1)
        if len(calls) == 1:
            raise RuntimeError("first attempt fails")
        return real(*a, **kw)

    monkeypatch.setattr(sb_sync, "SbSync", flaky)
    sw = RemoteSwitch(sync.shared, second_server.remote)
    deadline = time.monotonic() + 10
    new = None
    try:
        while new is None:
            assert time.monotonic() < deadline
            try:
                new = sw.run(msec())
            except RuntimeError:
                pass
            time.sleep(0.02)
        assert len(calls) == 2
    finally:
        (new or sw).close()
