"""IGMP/MLD snooping and the querier on the wire (issue 20), against the
recorded SB and flows (dummy datapath, no ovn-controller):

* igmp_join_sw1 and mld_join_sw1 replayed: the packet-ins as recorded,
  nothing on the wire (no multicast router behind sw1), and the SB
  IGMP_Group rows the recording shows afterwards (address, chassis,
  datapath, ports), the "mrouters" row kept;
* igmp_mld_queries_sw1: the querier's IGMPv3 and MLDv2 general queries
  byte for byte on sw1-p4 (the interval shortened through SB
  IP_Multicast to keep the test short: it is not in the frames);
* the 75-byte truncated MLDv1 report that crashes OVN 23.03.1 leaves the
  daemon up, counted, and the next report still learnt;
* a leave removes the row at once; a group nobody refreshes goes after
  mcast_idle_timeout (set to its 15 s minimum);
* IP_Multicast.seq_no (ovn-sbctl ... flush) flushes the groups.

Hosts that join through their kernel: test_mcast_peers.py.
"""

from __future__ import annotations

import struct
import time

import pytest

from testbed.golden import classify_background, load_exchange, replay_exchange
from tests.integration.test_neighbor_golden import chassis_uuid, sb_rows

pytestmark = pytest.mark.integration

SW1_UUID = "2a5753d3-a5df-4c90-92f3-babd1ee38ac0"   # the recording's sw1
P4_PORT = "gdvif4"                                   # sw1-p4
SB_TIMEOUT = 3.0


def igmp_groups(sb) -> set[tuple[str, str, str, frozenset[str]]]:
    """(address, chassis, datapath, ports) of every IGMP_Group row."""
    out = set()
    for r in sb_rows(sb, "IGMP_Group", "address,chassis,datapath,ports"):
        ports = r["ports"] if isinstance(r["ports"], list) else [r["ports"]]
        out.add((r["address"], r["chassis"], r["datapath"],
                 frozenset(ports)))
    return out


def recorded_groups(name: str) -> set:
    return {(r["address"], r["chassis"], r["datapath"],
             frozenset(r["ports"] if isinstance(r["ports"], list)
                       else [r["ports"]]))
            for r in load_exchange(name)["igmp_group_after"]}


def wait_until(what: str, cond, timeout: float = SB_TIMEOUT) -> float:
    t0 = time.monotonic()
    while not cond():
        if time.monotonic() - t0 > timeout:
            pytest.fail(f"{what}: not after {timeout} s")
        time.sleep(0.05)
    return time.monotonic() - t0


def set_ip_multicast(sb, **cols) -> None:
    uuid = sb.sbctl("--bare", "--columns=_uuid", "find", "IP_Multicast",
                    f"datapath={SW1_UUID}").strip()
    sb.sbctl("set", "IP_Multicast", uuid,
             *(f"{k}={v}" for k, v in cols.items()))


@pytest.fixture(scope="module")
def mcast(shared_sandbox, shared_daemon):
    """The module's sandbox and daemon once sw1's snooping is configured
    in the handler (its first queries went out)."""
    wait_until("the querier's first queries", lambda: shared_daemon.coverage()
               .get("pinctrl_mcast_query_sent", 0) >= 2, timeout=10)
    return shared_sandbox, shared_daemon


@pytest.mark.parametrize("name", ["igmp_join_sw1", "mld_join_sw1"])
def test_golden_join(mcast, name):
    """In the recording's order: each exchange's IGMP_Group rows are the
    recorded ones (those of the exchanges before it included)."""
    sb, daemon = mcast
    ex = load_exchange(name)
    n_pins = sum(len([r for r in step["openflow_pinctrl"]
                      if r["msg"] == "NXT_PACKET_IN2"])
                 for step in ex["steps"])
    cov0 = daemon.coverage()
    res = replay_exchange(sb, ex, quiet=0.5, check=False)
    assert res.ok, res.report()
    want = recorded_groups(name)
    wait_until(f"IGMP_Group rows of {name}", lambda: igmp_groups(sb) == want)
    cov1 = daemon.coverage()
    for counter in ("pinctrl_pin_igmp", "pinctrl_igmp_forwarded"):
        assert cov1.get(counter, 0) - cov0.get(counter, 0) == n_pins, counter


def test_golden_queries_on_the_wire(mcast):
    """Both queries byte for byte, again every (shortened) interval; a
    shorter interval brings the next query forward to now, as 23.03."""
    sb, _ = mcast
    ex = load_exchange("igmp_mld_queries_sw1")
    want = {r["class"]: bytes.fromhex(r["hex"])
            for r in ex["steps"][0]["replies"]}
    mark = sb.mark()
    set_ip_multicast(sb, query_interval=1)
    try:
        def queries() -> list:
            # sw1-p4 also gets sw1's periodic RAs: only the queries count.
            return [p for p in sb.packets_since(mark, [P4_PORT])
                    if classify_background(P4_PORT, p.data)
                    in ("igmp_query", "mld_query")]
        wait_until("two queries of each family",
                   lambda: len(queries()) >= 4, timeout=4)
        pkts = queries()
    finally:
        set_ip_multicast(sb, query_interval=10)
    frames = [p.data for p in pkts]
    assert frames.count(want["igmp_query"]) >= 2, [f.hex() for f in frames]
    assert frames.count(want["mld_query"]) >= 2, [f.hex() for f in frames]
    assert set(frames) == set(want.values())
    igmp_ts = [p.ts for p in pkts if p.data == want["igmp_query"]]
    assert 0.8 < igmp_ts[1] - igmp_ts[0] < 1.5


def _truncated_mld_report() -> bytes:
    """The frame that segfaults OVN 23.03.1: an MLDv1 report from sw1-p4
    whose group address is cut after 5 bytes (13 bytes of MLD), checksum
    valid, 75 bytes in all."""
    from pinctrl.packet.headers import csum, pseudo_sum_ipv6
    src = bytes.fromhex("fe80000000000000525400fffe000004")
    dst = bytes.fromhex("ff020000000000000000000000000016")
    body = bytearray(bytes((131, 0, 0, 0, 0, 0, 0, 0)) + bytes.fromhex(
        "ff0e000000"))
    struct.pack_into("!H", body, 2,
                     csum(body, pseudo_sum_ipv6(src, dst, 58, len(body))))
    hbh = bytes((58, 0, 5, 2, 0, 0, 1, 0))
    ip6 = struct.pack("!IHBB16s16s", 0x60000000, len(hbh) + len(body), 0,
                      1, src, dst)
    frame = (bytes.fromhex("333300000016505400000004") + b"\x86\xdd" + ip6
             + hbh + bytes(body))
    assert len(frame) == 75
    return frame


def test_truncated_mld_report_survived(mcast):
    sb, daemon = mcast
    cov0 = daemon.coverage()
    for _ in range(3):
        sb.inject(P4_PORT, _truncated_mld_report())
    wait_until("the truncated reports counted", lambda: daemon.coverage().get(
        "pinctrl_igmp_drop_short_mld", 0) - cov0.get(
        "pinctrl_igmp_drop_short_mld", 0) == 3)
    assert daemon.alive()
    assert "ff0e::" not in {g[0] for g in igmp_groups(sb)}


def _igmpv2(mtype: int, group: str) -> bytes:
    """An IGMPv2 report (0x16) or leave (0x17) from sw1-p4 (10.0.1.11)."""
    from pinctrl.packet.headers import compose_ipv4, csum
    g = bytes(int(x) for x in group.split("."))
    l4 = bytearray(struct.pack("!BBH4s", mtype, 0, 0, g))
    struct.pack_into("!H", l4, 2, csum(l4))
    dst = g if mtype == 0x16 else bytes([224, 0, 0, 2])
    mac = bytes((1, 0, 0x5E, dst[1] & 0x7F, dst[2], dst[3]))
    return compose_ipv4(bytes.fromhex("505400000004"), mac,
                        bytes([10, 0, 1, 11]), dst, 2, 1, bytes(l4))


def addresses(sb) -> set[str]:
    return {g[0] for g in igmp_groups(sb)}


def test_leave_removes_the_row_at_once(mcast):
    sb, _ = mcast
    sb.inject(P4_PORT, _igmpv2(0x16, "239.5.5.5"))
    wait_until("239.5.5.5 joined", lambda: "239.5.5.5" in addresses(sb))
    sb.inject(P4_PORT, _igmpv2(0x17, "239.5.5.5"))
    wait_until("239.5.5.5 left", lambda: "239.5.5.5" not in addresses(sb))


def test_flush_by_seq_no(mcast):
    """ovn-sbctl's flush bumps IP_Multicast.seq_no: every group of sw1
    learnt here goes, the mrouters row stays."""
    sb, _ = mcast
    sb.inject(P4_PORT, _igmpv2(0x16, "239.6.6.6"))
    wait_until("239.6.6.6 joined", lambda: "239.6.6.6" in addresses(sb))
    set_ip_multicast(sb, seq_no=1)
    wait_until("the flush", lambda: addresses(sb) == {"mrouters"})
    hv1 = chassis_uuid(sb)
    assert {g[1] for g in igmp_groups(sb)} == {hv1}


def test_group_ages_out(mcast):
    """Nobody answers the queries on this dummy port: a group goes
    mcast_idle_timeout (15 s, the minimum) after its last report."""
    sb, _ = mcast
    set_ip_multicast(sb, idle_timeout=15)
    time.sleep(0.5)         # the new idle time reaches the handler first
    sb.inject(P4_PORT, _igmpv2(0x16, "239.7.7.7"))
    wait_until("239.7.7.7 joined", lambda: "239.7.7.7" in addresses(sb))
    took = wait_until("239.7.7.7 aged out",
                      lambda: "239.7.7.7" not in addresses(sb), timeout=20)
    assert 13 < took < 18, took
