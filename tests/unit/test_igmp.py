"""IGMP / MLD snooping, the packet side: packet/igmp.py (parse, queries)
and actions/igmp.py (igmp, opcode 16): golden exchanges igmp_join_sw1,
mld_join_sw1 and igmp_mld_queries_sw1 byte for byte, IGMPv1/v2/v3 and
MLDv1/v2 semantics as OVS 3.1's mcast-snooping.c reads them, and hostile
input, among it the 75-byte truncated MLDv1 report that crashes OVN
23.03.1."""

from __future__ import annotations

import ipaddress
import struct

import pytest
from scapy.contrib.igmp import IGMP
from scapy.layers.inet import IP
from scapy.layers.inet6 import (
    ICMPv6MLDMultAddrRec,
    ICMPv6MLDone,
    ICMPv6MLQuery,
    ICMPv6MLReport,
    ICMPv6MLReport2,
    IPv6,
    IPv6ExtHdrDestOpt,
    IPv6ExtHdrHopByHop,
    IPv6ExtHdrRouting,
    RouterAlert,
)
from scapy.layers.l2 import Dot1Q, Ether
from scapy.packet import Raw

from pinctrl.actions import REGISTRY
from pinctrl.actions import igmp as m
from pinctrl.actions.replies import PacketOut
from pinctrl.handler import dispatch
from pinctrl.openflow.inject import forward_actions
from pinctrl.openflow.oxm import Metadata
from pinctrl.openflow.packet_in import PacketIn
from pinctrl.packet import igmp as pi
from pinctrl.packet.headers import csum, pseudo_sum_ipv6
from pinctrl.support import coverage
from testbed import golden as goldens
from tests.helpers import counter_delta as delta

MAC = "50:54:00:00:00:04"
LLA = "fe80::5254:ff:fe00:4"
# sw1 (datapath 2), sw1-p4 (port 1): the golden packet-ins' metadata.
MD = goldens.packet_in_from_hex(next(goldens.iter_of_messages(
    goldens.load_exchange("igmp_join_sw1"), "NXT_PACKET_IN2"))["hex"]).metadata


def g16(text: str) -> bytes:
    """A group as the snooping table keys it (IPv4-mapped for IGMP)."""
    ip = ipaddress.ip_address(text)
    if ip.version == 4:
        return ipaddress.IPv6Address(f"::ffff:{text}").packed
    return ip.packed


def v4(l4, dst="224.0.0.22") -> bytes:
    return bytes(Ether(src=MAC) / IP(src="10.0.1.11", dst=dst, ttl=1,
                                     proto=2) / l4)


def v6(l4, ext=None, src=LLA, dst="ff02::16") -> bytes:
    ext = IPv6ExtHdrHopByHop(options=[RouterAlert()]) if ext is None else ext
    return bytes(Ether(src=MAC) / IPv6(src=src, dst=dst, hlim=1) / ext / l4)


def pin(frame: bytes) -> PacketIn:
    return PacketIn(frame, userdata=struct.pack("!I4x", 16), metadata=MD)


# --- golden exchanges ---------------------------------------------------------

@pytest.mark.parametrize("name", ["igmp_join_sw1", "mld_join_sw1"])
def test_golden_report_reinjected_byte_identical(name):
    """Each report comes back as 23.03's packet-out: the frame unchanged,
    metadata, reg14 = inport, reg15 = 0x8002 (the multicast routers),
    resubmit(CONTROLLER, 37)."""
    step, = goldens.load_exchange(name)["steps"]
    produced, expected = goldens.replay_step(step)
    assert expected and [msg[8:].hex() for msg in produced] == \
        [msg[8:].hex() for msg in expected]         # all but the xid


def test_golden_queries_byte_identical():
    """The querier's IGMPv3 and MLDv2 general queries of sw1 (eth
    00:00:00:00:ff:02, 10.0.1.1, fe80::200:ff:fe00:ff02, max response
    1 s), frames as recorded on the wire."""
    ex = goldens.load_exchange("igmp_mld_queries_sw1")
    replies = {r["class"]: r["hex"] for r in ex["steps"][0]["replies"]}
    eth = bytes.fromhex("00000000ff02")
    assert pi.build_igmp_query(eth, bytes([10, 0, 1, 1]), 1).hex() \
        == replies["igmp_query"]
    assert pi.build_mld_query(eth, g16("fe80::200:ff:fe00:ff02"), 1).hex() \
        == replies["mld_query"]


def test_query_max_response_truncates_like_23_03():
    """max_resp * 10 in a uint8_t (IGMP), * 1000 in a uint16_t and QQIC
    in a uint8_t (MLD)."""
    q4 = pi.build_igmp_query(bytes(6), bytes(4), 30)
    assert q4[14 + 20 + 1] == q4[14 + 20 + 9] == 300 & 0xFF
    q6 = pi.build_mld_query(bytes(6), bytes(16), 70)
    mld = q6[14 + 40 + 8:]
    assert struct.unpack_from("!H", mld, 4)[0] == 70000 & 0xFFFF
    assert mld[25] == 70
    assert csum(mld, pseudo_sum_ipv6(bytes(16), pi.MLD_ALL_HOSTS, 58,
                                     len(mld))) == 0


def test_registered_unpaused():
    act = REGISTRY[16]
    assert act.name == "igmp" and act.handler is m.igmp and not act.pause


# --- what a frame tells the snooping table -----------------------------------

@pytest.mark.parametrize("l4, ops, forward", [
    (IGMP(type=0x16, gaddr="239.2.2.2"), [(pi.JOIN, "239.2.2.2")],
     pi.FORWARD_REPORT),
    (IGMP(type=0x12, gaddr="239.2.2.3"), [(pi.JOIN, "239.2.2.3")],
     pi.FORWARD_REPORT),
    (IGMP(type=0x17, gaddr="239.2.2.2"), [(pi.LEAVE, "239.2.2.2")],
     pi.FORWARD_REPORT),
    (IGMP(type=0x11, gaddr="0.0.0.0"), [], pi.FORWARD_QUERY),
    (IGMP(type=0x13, gaddr="239.2.2.2"), [], pi.FORWARD_NONE),
])
def test_igmp_v1_v2(l4, ops, forward):
    msg = pi.parse(v4(l4))
    assert msg.ops == tuple((op, g16(g)) for op, g in ops)
    assert msg.forward == forward
    assert msg.mrouter == (forward == pi.FORWARD_QUERY)


def rec(rtype: int, group: str, sources: tuple[str, ...] = (),
        nsrcs: int | None = None, aux: bytes = b"") -> bytes:
    """One IGMPv3 group record (aux data length in bytes, as OVS reads
    it)."""
    n = len(sources) if nsrcs is None else nsrcs
    return (struct.pack("!BBH4s", rtype, len(aux), n,
                        ipaddress.IPv4Address(group).packed)
            + b"".join(ipaddress.IPv4Address(a).packed for a in sources)
            + aux)


def _v3(*records: bytes, ngrp: int | None = None) -> bytes:
    """An IGMPv3 report with a valid checksum ('ngrp' may lie)."""
    n = len(records) if ngrp is None else ngrp
    l4 = bytearray(struct.pack("!BBHHH", 0x22, 0, 0, 0, n)
                   + b"".join(records))
    struct.pack_into("!H", l4, 2, csum(l4))
    return v4(Raw(bytes(l4)))


def test_igmpv3_records_join_and_leave():
    """Modes 1-6 join, except INCLUDE / TO_INCLUDE without sources:
    leave."""
    frame = _v3(rec(2, "239.1.1.1"), rec(1, "239.1.1.2"),
                rec(1, "239.1.1.3", ("10.0.1.9",)), rec(3, "239.1.1.4"),
                rec(4, "239.1.1.5", aux=bytes(4)),
                rec(6, "239.1.1.6", ("10.0.1.9", "10.0.1.8")))
    msg = pi.parse(frame)
    assert msg.ops == tuple((op, g16(f"239.1.1.{i}")) for op, i in (
        (pi.JOIN, 1), (pi.LEAVE, 2), (pi.JOIN, 3), (pi.LEAVE, 4),
        (pi.JOIN, 5), (pi.JOIN, 6)))
    assert msg.forward == pi.FORWARD_REPORT and not msg.mrouter


def test_igmpv3_unknown_record_type_ends_the_walk():
    """OVS continues without stepping over it: every later iteration
    reads the same record, so nothing after it is learnt."""
    frame = _v3(rec(4, "239.1.1.1"), rec(9, "239.1.1.2"),
                rec(4, "239.1.1.3"))
    assert pi.parse(frame).ops == ((pi.JOIN, g16("239.1.1.1")),)


def test_igmpv3_bogus_group_counts():
    """A count beyond the records present stops at the end of the
    payload; a count of 0 learns nothing; sources beyond the end are not
    read."""
    one = rec(4, "239.1.1.1")
    assert pi.parse(_v3(one, ngrp=0xFFFF)).ops == \
        ((pi.JOIN, g16("239.1.1.1")),)
    assert pi.parse(_v3(one, one, ngrp=0)).ops == ()
    lying = rec(4, "239.1.1.1", nsrcs=500)
    assert pi.parse(_v3(lying, rec(4, "239.1.1.2"))).ops == \
        ((pi.JOIN, g16("239.1.1.1")),)


def test_igmpv3_truncated_record():
    """A record cut short (the IP total length says so) is not read, from
    Ethernet padding or anywhere else."""
    full = bytearray(_v3(rec(4, "239.1.1.1"), rec(4, "239.1.1.2")))
    cut = bytes(full[:-4])
    ip = bytearray(cut[14:34])
    struct.pack_into("!H", ip, 2, len(cut) - 14)
    struct.pack_into("!H", ip, 10, 0)
    struct.pack_into("!H", ip, 10, csum(ip))
    l4 = bytearray(cut[34:])
    struct.pack_into("!H", l4, 2, 0)
    struct.pack_into("!H", l4, 2, csum(l4))
    frame = cut[:14] + bytes(ip) + bytes(l4) + bytes(30)    # padding
    assert pi.parse(frame).ops == ((pi.JOIN, g16("239.1.1.1")),)


def test_mld_v1_and_v2():
    assert pi.parse(v6(ICMPv6MLReport(mladdr="ff0e::1234"))).ops == \
        ((pi.JOIN, g16("ff0e::1234")),)
    done = pi.parse(v6(ICMPv6MLDone(mladdr="ff0e::1234"), dst="ff02::2"))
    assert done.ops == ((pi.LEAVE, g16("ff0e::1234")),)
    assert done.forward == pi.FORWARD_REPORT
    report2 = ICMPv6MLReport2(records=[
        ICMPv6MLDMultAddrRec(rtype=4, dst="ff0e::1"),
        ICMPv6MLDMultAddrRec(rtype=9, dst="ff0e::2"),     # skipped
        ICMPv6MLDMultAddrRec(rtype=3, dst="ff0e::3"),
        ICMPv6MLDMultAddrRec(rtype=1, dst="ff0e::4", sources=["2001:db8::1"]),
    ])
    assert pi.parse(v6(report2)).ops == (
        (pi.JOIN, g16("ff0e::1")), (pi.LEAVE, g16("ff0e::3")),
        (pi.JOIN, g16("ff0e::4")))


def test_mld_query_router_port_unless_from_unspecified():
    query = ICMPv6MLQuery(mladdr="::")
    assert pi.parse(v6(query, dst="ff02::1")).mrouter
    msg = pi.parse(v6(query, src="::", dst="ff02::1"))
    assert not msg.mrouter and msg.forward == pi.FORWARD_QUERY


@pytest.mark.parametrize("ext", [
    IPv6ExtHdrHopByHop(options=[RouterAlert()]) / IPv6ExtHdrDestOpt(),
    IPv6ExtHdrHopByHop() / IPv6ExtHdrRouting(addresses=["ff02::16"]),
    IPv6ExtHdrDestOpt(),
])
def test_mld_behind_extension_headers(ext):
    """The MLD message is found after any chain OVS walks; the checksum
    uses the fixed header's addresses."""
    frame = v6(ICMPv6MLReport2(records=[
        ICMPv6MLDMultAddrRec(rtype=4, dst="ff0e::7")]), ext=ext)
    assert pi.parse(frame).ops == ((pi.JOIN, g16("ff0e::7")),)


def test_non_multicast_groups_are_left_out():
    frame = _v3(rec(4, "10.0.0.1"), rec(4, "239.1.1.1"), rec(4, "0.0.0.0"))
    msg = pi.parse(frame)
    assert msg.ops == ((pi.JOIN, g16("239.1.1.1")),)
    assert msg.n_bad_groups == 2
    msg = pi.parse(v6(ICMPv6MLReport(mladdr="2001:db8::1")))
    assert msg.ops == () and msg.n_bad_groups == 1


@pytest.mark.parametrize("frame, reason", [
    (v4(IGMP(type=0x16, gaddr="239.2.2.2"))[:-1] + b"\0", "bad_csum"),
    (v4(Raw(b"\x16\0")), "not_igmp"),                        # < 8 bytes
    (bytes(Ether(src=MAC) / IP(proto=17) / Raw(bytes(8))), "not_igmp"),
    (v6(ICMPv6MLReport(mladdr="ff0e::1"))[:-20], "not_mld"),  # plen lies
    (v6(Raw(b"\x80\0\0\0\0\0\0\0"), ext=IPv6ExtHdrHopByHop(nh=58)),
     "bad_csum"),
    (bytes(Ether() / Raw(bytes(40))), "not_ip"),
])
def test_unusable_frames(frame, reason):
    with pytest.raises(pi.McastError) as e:
        pi.parse(frame)
    assert e.value.reason == reason


def _short_mld(mtype: int, length: int) -> bytes:
    """An MLDv1 report or done of 'length' bytes after the 8-byte header
    walk (from a VM: a hop-by-hop header, a valid checksum), and the frame
    length."""
    src, dst = g16(LLA), g16("ff02::16")
    body = bytearray(bytes((mtype, 0, 0, 0, 0, 0, 0, 0))
                     + bytes.fromhex("ff0e0000000000000000000000001234"))
    body = body[:length]
    struct.pack_into("!H", body, 2, csum(body, pseudo_sum_ipv6(
        src, dst, 58, len(body))))
    hbh = bytes((58, 0, 5, 2, 0, 0, 1, 0))
    ip6 = struct.pack("!IHBB16s16s", 0x60000000, len(hbh) + len(body), 0, 1,
                      src, dst)
    return (bytes.fromhex("333300000016505400000004") + b"\x86\xdd" + ip6
            + hbh + bytes(body))


@pytest.mark.parametrize("mtype", [pi.MLD_REPORT, pi.MLD_DONE])
@pytest.mark.parametrize("length", range(8, 24))
def test_truncated_mldv1_regression(mtype, length):
    """OVN 23.03.1: an MLDv1 report / done whose group address is cut
    short (75 bytes on the wire for 13 bytes of MLD) reaches
    mcast_snooping_add_mld() with a NULL group and ovn-controller
    segfaults.  Here: counted, warned, nothing learnt, nothing sent; every
    length from the bare header to one byte short."""
    frame = _short_mld(mtype, length)
    if length == 13:
        assert len(frame) == 75
    with pytest.raises(pi.McastError) as e:
        pi.parse(frame)
    assert e.value.reason == "short_mld"

    class Snoop:
        learnt: list = []

        def snooping(self, dp):
            return True

        def learn(self, *args):
            self.learnt.append(args)
            return True

    env = dispatch.Env()
    env.mcast = Snoop()
    msgs, n = delta("pinctrl_igmp_drop_short_mld",
                    lambda: dispatch.process_packet_in(pin(frame), env))
    assert msgs == [] and n == 1 and Snoop.learnt == []


# --- the action ---------------------------------------------------------------

class FakeSnoop:
    """What env.mcast records (handler/mcast_job.McastJob's protocol)."""

    def __init__(self, enabled: bool = True) -> None:
        self.enabled = enabled
        self.calls: list = []

    def snooping(self, dp: int) -> bool:
        return self.enabled

    def learn(self, dp, port, msg, now):
        self.calls.append((dp, port, msg, now))
        return True


def _env(snoop) -> dispatch.Env:
    env = dispatch.Env()
    env.mcast = snoop
    return env


def test_report_learnt_then_reinjected_to_the_mrouters():
    snoop = FakeSnoop()
    frame = v4(IGMP(type=0x16, gaddr="239.2.2.2"), dst="239.2.2.2")
    out = m.igmp(pin(frame), _env(snoop), now=1234)
    assert isinstance(out, PacketOut) and out.packet == frame
    assert out.actions == forward_actions(2, 1, 0x8002)
    (dp, port, msg, now), = snoop.calls
    assert (dp, port, now) == (2, 1, 1234)
    assert msg.ops == ((pi.JOIN, g16("239.2.2.2")),)


def test_query_reinjected_to_the_l2_domain():
    out = m.igmp(pin(v4(IGMP(type=0x11), dst="224.0.0.1")), _env(FakeSnoop()))
    assert out.actions == forward_actions(2, 1, 0x8004)


def test_snooping_off_drops_silently():
    """23.03: no snooping on the datapath -> nothing learnt, nothing
    sent (the flow only punts)."""
    snoop = FakeSnoop(enabled=False)
    out, n = delta("pinctrl_igmp_drop_snooping_off", lambda: m.igmp(
        pin(v4(IGMP(type=0x16, gaddr="239.2.2.2"))), _env(snoop)))
    assert out is None and n == 1 and snoop.calls == []


def test_not_forwarded_types():
    """An IGMP type that is neither membership nor query: nothing sent
    (23.03 neither)."""
    out, n = delta("pinctrl_igmp_not_forwarded", lambda: m.igmp(
        pin(v4(IGMP(type=0x13, gaddr="239.2.2.2"))), _env(FakeSnoop())))
    assert out is None and n == 1


def test_non_ip_and_vlan():
    out, n = delta("pinctrl_igmp_drop_not_ip",
                   lambda: m.igmp(pin(bytes(Ether() / Raw(bytes(50))))))
    assert out is None and n == 1
    tagged = bytes(Ether(src=MAC) / Dot1Q(vlan=5) / IP(src="10.0.1.11",
                   dst="239.2.2.2") / IGMP(type=0x16, gaddr="239.2.2.2"))
    assert m.igmp(pin(tagged)).packet == tagged


def test_bad_checksum_warns_like_23_03(monkeypatch):
    lines = []
    monkeypatch.setattr(m.reporter, "log",
                        lambda line, counter=None: lines.append(line.text))
    frame = bytearray(v4(IGMP(type=0x16, gaddr="239.2.2.2")))
    frame[-1] ^= 1
    before = coverage.get("pinctrl_igmp_drop_bad_csum")
    assert m.igmp(pin(bytes(frame))) is None
    frame6 = bytearray(v6(ICMPv6MLReport(mladdr="ff0e::1")))
    frame6[-1] ^= 1
    assert m.igmp(pin(bytes(frame6))) is None
    assert coverage.get("pinctrl_igmp_drop_bad_csum") == before + 2
    assert lines == ["multicast snooping received bad IGMP checksum",
                     "multicast snooping received bad MLD checksum"]
