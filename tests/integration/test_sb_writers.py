"""The main thread's Southbound writers against a real SB ovsdb-server
holding the golden SB backup: what put_arp/put_nd, put_fdb, trigger_event,
bind_vport and activation_strategy_rarp hand over ends up in the SB rows
23.03 writes, nothing learnt is lost when the SB goes away or a transaction
conflicts, and no row is duplicated.
"""

from __future__ import annotations

import os
import signal
import time

import pytest
from ovs.timeval import msec

from pinctrl.sb_sync import SbSync
from pinctrl.shared.records import Learnt, ipv4_mapped
from pinctrl.shared.state import SharedState
from pinctrl.support import coverage
from testbed.golden import load_exchange
from tests.helpers import counter_delta
from testbed.ovs_sandbox import sb_schema, step_until_change

pytestmark = pytest.mark.integration

HV1 = "hv1"
LR0_DP, LR0_PUBLIC = 4, 3           # datapath / port keys in the golden SB
SW0_DP = 1
MAC_A = bytes.fromhex("00000000fefe")
MAC_B = bytes.fromhex("00000000fe01")
GW_IP = ipv4_mapped(0xac1000fe)     # 172.16.0.254


def _sync(remote: str) -> SbSync:
    return SbSync(SharedState(), remote, sb_schema())


@pytest.fixture
def sync(sb_server):
    s = _sync(sb_server.remote)
    try:
        step_until_change(s, chassis=HV1)
        wait_writes_ready(s)
        yield s
    finally:
        s.close()


def wait_writes_ready(s: SbSync, timeout: float = 10.0) -> None:
    """Until the local-datapath monitor conditions are acknowledged."""
    deadline = time.monotonic() + timeout
    while not s.writes_ready():
        assert time.monotonic() < deadline, "conditions never acked"
        try:
            step_until_change(s, timeout=0.2, chassis=HV1)
        except AssertionError:
            pass


def settle(*syncs: SbSync, rounds: int = 40) -> None:
    """Run main-loop steps until no writer has anything left to write and
    no transaction is in flight."""
    for _ in range(rounds):
        for s in syncs:
            s.run(msec(), HV1)
        if all(s.txn_loop.txn is None and
               not any(len(w) for w in s.txn_loop.writers)
               for s in syncs):
            for s in syncs:     # let the IDL see the committed rows
                s.run(msec(), HV1)
            return
        for s in syncs:
            try:
                step_until_change(s, timeout=0.5, chassis=HV1)
            except AssertionError:
                pass
    raise AssertionError("writers did not settle")


def mac_bindings(sb_server, lport: str = "lr0-public",
                 ip: str = "172.16.0.254") -> list[dict]:
    return sb_server.rows("MAC_Binding", f"logical_port={lport}",
                f'ip="{ip}"')


def learn(s: SbSync, mac: bytes, ip16: bytes = GW_IP, port: int = LR0_PUBLIC,
          commit_at: int = 0) -> None:
    s.shared.put_mac_bindings.put((LR0_DP, port, ip16),
                                  Learnt(mac, commit_at))


def test_put_arp_writes_the_golden_row(sync, sb_server):
    golden = load_exchange("arp_resolve_nexthop_put_arp")
    want = [r for r in golden["mac_binding_after"]
            if r["ip"] == "172.16.0.254"][0]
    learn(sync, MAC_A)
    settle(sync)
    got = mac_bindings(sb_server)
    assert len(got) == 1
    row = got[0]
    assert (row["logical_port"], row["ip"], row["mac"]) == (
        want["logical_port"], want["ip"], want["mac"])
    assert row["datapath"][1] == sb_server.dp_uuid(LR0_DP)
    assert row["timestamp"] > 1_700_000_000_000     # wall-clock msec


def test_unchanged_mac_writes_nothing_changed_mac_updates(sync, sb_server):
    learn(sync, MAC_A)
    settle(sync)
    first = mac_bindings(sb_server)[0]
    learn(sync, MAC_A)
    settle(sync)
    assert mac_bindings(sb_server) == [first]       # timestamp kept
    learn(sync, MAC_B)
    settle(sync)
    (row,) = mac_bindings(sb_server)
    assert row["_uuid"] == first["_uuid"] and row["mac"] == "00:00:00:00:fe:01"
    assert row["timestamp"] >= first["timestamp"]


def test_ipv6_binding_text_as_inet_ntop(sync, sb_server):
    ip6 = bytes.fromhex("fd000000000000000000000000000010")
    learn(sync, MAC_A, ip16=ip6)
    settle(sync)
    assert len(mac_bindings(sb_server, ip="fd00::10")) == 1


def test_jittered_binding_waits_for_its_commit_time(sync, sb_server):
    import ovs.timeval
    learn(sync, MAC_A, commit_at=ovs.timeval.msec() + 60_000)
    sync.run(msec(), HV1)
    assert sync.txn_loop.txn is None and mac_bindings(sb_server) == []
    assert sync.mac_bindings.next_due() is not None


def test_unknown_port_is_dropped_and_counted(sync, sb_server):
    def go():
        learn(sync, MAC_A, port=99)
        settle(sync)
    _, n = counter_delta("pinctrl_drop_mac_binding_unknown_port", go)
    assert n == 1
    assert len(sync.mac_bindings.queue) == 0


def test_binding_learnt_while_sb_down_is_written_after(sync, sb_server):
    sb_server.stop()
    learn(sync, MAC_A)
    learn(sync, MAC_B, ip16=ipv4_mapped(0xac1000fd))
    for _ in range(5):
        sync.run(msec(), HV1)
    assert len(sync.mac_bindings.queue) == 2        # kept, not lost
    sb_server.launch()
    settle(sync, rounds=100)
    assert [r["mac"] for r in mac_bindings(sb_server)] == ["00:00:00:00:fe:fe"]
    assert len(mac_bindings(sb_server, ip="172.16.0.253")) == 1


def test_failed_transaction_is_retried(sync, sb_server):
    """A transaction in flight when the server dies fails (TRY_AGAIN); its
    entries go back to the queue and the retry writes them.  (A second row
    could not be: the (logical_port, ip) index refuses it; what can fail
    is checked: the row's MAC, the queue drained, the retry counted.)"""
    retries = coverage.get("sb_txn_retry")
    os.kill(sb_server.pid, signal.SIGSTOP)
    learn(sync, MAC_A)
    sync.run(msec(), HV1)
    assert sync.txn_loop.txn is not None        # sent, never answered
    # SIGKILL the frozen server: requests sent meanwhile are never
    # processed, and its clients see the connection reset.
    sb_server.stop(signal.SIGKILL)
    for _ in range(5):
        sync.run(msec(), HV1)
    # python-ovs fails it only once the session reconnects; meanwhile the
    # entry stays in flight.
    assert len(sync.mac_bindings.queue) == 1
    sb_server.launch()
    settle(sync, rounds=100)
    (row,) = mac_bindings(sb_server)
    assert row["mac"] == "00:00:00:00:fe:fe"
    assert len(sync.mac_bindings) == 0
    assert coverage.get("sb_txn_retry") >= retries + 1


def test_two_concurrent_writers_leave_one_row(sync, sb_server):
    other = _sync(sb_server.remote)
    try:
        step_until_change(other, chassis=HV1)
        wait_writes_ready(other)
        learn(sync, MAC_A)
        learn(other, MAC_B)
        # Both build their transaction from an IDL without the row (most
        # of the time: the other's may already have seen it).
        sync.run(msec(), HV1)
        other.run(msec(), HV1)
        settle(sync, other, rounds=100)
        # One row is all the index allows; what can fail: the row holds
        # one of the two MACs and neither writer still has anything.
        (row,) = mac_bindings(sb_server)
        assert row["mac"] in ("00:00:00:00:fe:fe", "00:00:00:00:fe:01")
        assert len(sync.mac_bindings) == len(other.mac_bindings) == 0
    finally:
        other.close()


def test_put_fdb_writes_golden_rows(sync, sb_server):
    golden = load_exchange("put_fdb_unknown_port")["fdb_after"]
    for r in golden:
        sync.shared.put_fdbs.put(
            (r["dp_key"], bytes.fromhex(r["mac"].replace(":", ""))),
            r["port_key"])
    settle(sync)
    got = sorted((r["mac"], r["dp_key"], r["port_key"])
                 for r in sb_server.rows("FDB"))
    assert got == sorted((r["mac"], r["dp_key"], r["port_key"])
                         for r in golden)
    # The port moves: updated in place.
    sync.shared.put_fdbs.put((1, bytes.fromhex("505400000034")), 2)
    settle(sync)
    assert sorted(r["port_key"] for r in sb_server.rows("FDB")) == [2, 3]


def test_controller_event_written_once(sync, sb_server):
    golden = load_exchange("lb_empty_backends_event")
    (want,) = golden["controller_event_after"]
    info = want["event_info"]
    key = (info["vip"], info["protocol"], info["load_balancer"])
    sync.shared.controller_events.put(key, "empty_lb_backends")
    settle(sync)
    sync.shared.controller_events.put(key, "empty_lb_backends")
    settle(sync)
    (row,) = sb_server.rows("Controller_Event")
    assert row["event_type"] == want["event_type"]
    assert dict(row["event_info"][1]) == info
    assert row["seq_num"] == want["seq_num"]
    chassis = sb_server.sbctl("--bare", "--columns=_uuid", "find",
                              "Chassis", f"name={HV1}")
    assert row["chassis"][1] == chassis


def test_bind_vport_claims_the_golden_port(sync, sb_server):
    (want,) = load_exchange("bind_vport_garp")["port_binding_after"]
    sync.shared.put_vport_bindings.put((SW0_DP, 4), 1)   # sw0-vip, sw0-p1
    settle(sync)
    (row,) = sb_server.rows("Port_Binding", "logical_port=sw0-vip")
    assert row["virtual_parent"] == want["virtual_parent"]
    assert row["chassis"][1] == sb_server.sbctl(
        "--bare", "--columns=_uuid", "find", "Chassis", f"name={HV1}")


def test_bind_vport_of_a_non_virtual_port_is_dropped(sync, sb_server):
    def go():
        sync.shared.put_vport_bindings.put((SW0_DP, 2), 1)   # sw0-p2: VIF
        settle(sync)
    _, n = counter_delta("pinctrl_drop_bind_vport_unknown_port", go)
    assert n == 1


def test_rarp_activation_sets_the_golden_option(sync, sb_server):
    (want,) = load_exchange("activation_strategy_rarp")["port_binding_after"]
    (before,) = sb_server.rows("Port_Binding", "logical_port=sw0-p6")
    assert "additional-chassis-activated" not in dict(before["options"][1])
    sync.shared.ports_to_activate.put((SW0_DP, 7), True)     # sw0-p6
    settle(sync)
    sync.shared.ports_to_activate.put((SW0_DP, 7), True)     # again: no-op
    settle(sync)
    (row,) = sb_server.rows("Port_Binding", "logical_port=sw0-p6")
    assert dict(row["options"][1]) == want["options"]


def test_mac_binding_releases_buffered_keys(sync, sb_server):
    """A buffered next hop is released by its MAC_Binding row, new or
    already there (OVN run_buffered_binding), also through the port's
    chassis-redirect port; nothing is published for next hops nobody
    waits for."""
    cr_key = (LR0_DP, 4, GW_IP)                 # cr-lr0-public
    sync.shared.set_buffered_keys(frozenset({cr_key}))
    sb_server.sbctl("create", "MAC_Binding", "logical_port=lr0-public",
                    'ip="172.16.0.254"', 'mac="00:00:00:00:fe:fe"',
                    f"datapath={sb_server.dp_uuid(LR0_DP)}")
    step_until_change(sync, chassis=HV1)
    assert sync.shared.take_resolved_neighbors() == [((cr_key,), MAC_A)]
    # The handler buffers behind the same neighbour again: the row that
    # exists releases it, with no MAC_Binding change at all.
    key = (LR0_DP, LR0_PUBLIC, GW_IP)
    sync.shared.set_buffered_keys(frozenset({key}))
    sync.run(msec(), HV1)
    assert sync.shared.take_resolved_neighbors() == [((key,), MAC_A)]
    # Nobody waiting: nothing published on a change.
    sync.shared.set_buffered_keys(frozenset())
    sb_server.sbctl("set", "MAC_Binding",
                    sb_server.rows("MAC_Binding", 'ip="172.16.0.254"')[0]
                    ["_uuid"][1], 'mac="00:00:00:00:fe:01"')
    step_until_change(sync, chassis=HV1)
    assert sync.shared.take_resolved_neighbors() == []


def test_mac_binding_replicated_only_for_local_datapaths(sync, sb_server):
    """Conditional monitoring: rows of datapaths that are not local to
    this chassis never reach the IDL."""
    settle(sync)
    assert sorted(sync.local_datapaths) == [1, 2, 3, 4, 5]
    sb_server.sbctl("create", "Datapath_Binding", "tunnel_key=77")
    remote_dp = sb_server.dp_uuid(77)
    sb_server.sbctl("create", "MAC_Binding", "logical_port=far",
                    'ip="192.0.2.1"', 'mac="00:00:00:00:00:77"',
                    f"datapath={remote_dp}")
    sb_server.sbctl("create", "MAC_Binding", "logical_port=lr0-public",
                    'ip="172.16.0.9"', 'mac="00:00:00:00:00:09"',
                    f"datapath={sb_server.dp_uuid(LR0_DP)}")
    step_until_change(sync, chassis=HV1)
    settle(sync)
    ips = sorted(r.ip for r in
                 sync.idl.tables["MAC_Binding"].rows.values())
    assert ips == ["172.16.0.50", "172.16.0.9"]
