"""ARP (0), ND_NA (3), ND_NS (9), ND_NA_ROUTER (12): every golden
packet-out, builders from bytes, buffering of the punted packet and
hostile input."""

from __future__ import annotations

import struct

import pytest
from scapy.layers.inet import IP, UDP
from scapy.layers.inet6 import (
    ICMPv6EchoRequest,
    ICMPv6ND_NA,
    ICMPv6ND_NS,
    ICMPv6NDOptDstLLAddr,
    ICMPv6NDOptSrcLLAddr,
    IPv6,
)
from scapy.layers.l2 import ARP, Dot1Q, Ether
from scapy.packet import Raw

from pinctrl.actions import REGISTRY, neighbor
from pinctrl.actions import env as action_env
from pinctrl.actions import neighbor as m
from pinctrl.actions.replies import PacketOut, Reporter
from pinctrl.handler import buffered_packets as bufp
from pinctrl.handler import dispatch
from pinctrl.openflow.ofactions import reload_metadata, resubmit
from pinctrl.openflow.oxm import Metadata
from pinctrl.openflow.packet_in import PacketIn
from pinctrl.packet.flow import extract
from pinctrl.support import coverage
from testbed import golden as goldens
from tests.helpers import VlogRecorder
from tests.helpers import counter_delta as delta

NEIGHBOR_OPCODES = {0: "arp", 3: "nd_na", 9: "nd_ns", 12: "nd_na_router"}
SRC_MAC, DST_MAC = "50:54:00:00:00:01", "00:00:00:00:ff:01"
NESTED = resubmit(37)
# in_port 1; xreg0 = reg0:reg1, xreg1 = reg2:reg3 (reg0 = 172.16.0.254
# for ARP; xxreg0 = reg0..reg3 for ND); xreg7 = reg14:reg15 = 1:4;
# metadata 4.
MD_HEX = ("8000000400000001"
          "80010008" "ac1000fe20010db8"
          "80010208" "00ff0000000000fe"
          "80010e08" "0000000100000004"
          "800004080000000000000004")


def md() -> Metadata:
    return Metadata.parse(bytes.fromhex(MD_HEX))


def pin(frame, opcode, args=NESTED) -> PacketIn:
    return PacketIn(bytes(frame), userdata=struct.pack("!I4x", opcode) + args,
                    metadata=md())


def env_with_buffer() -> dispatch.Env:
    env = dispatch.Env()
    env.buffered_packets = bufp.BufferedPackets(env.next_xid)
    return env


def v4(payload=None, **ip) -> bytes:
    payload = UDP(sport=5000, dport=7777) / Raw(b"x") if payload is None \
        else payload
    return bytes(Ether(src=SRC_MAC, dst="00:00:00:00:00:00")
                 / IP(**{"src": "10.0.0.11", "dst": "8.8.8.8", **ip})
                 / payload)


def v6(payload=None, **ip) -> bytes:
    payload = UDP(sport=6000, dport=7777) / Raw(b"x") if payload is None \
        else payload
    return bytes(Ether(src=SRC_MAC, dst="00:00:00:00:00:00")
                 / IPv6(**{"src": "2001:db8::11", "dst": "2001:4860::8888",
                           **ip}) / payload)


def ns(target="2001:db8::12", **eth) -> bytes:
    return bytes(Ether(**{"src": SRC_MAC, "dst": "33:33:ff:00:00:12", **eth})
                 / IPv6(src="2001:db8::11", dst="ff02::1:ff00:12")
                 / ICMPv6ND_NS(tgt=target)
                 / ICMPv6NDOptSrcLLAddr(lladdr=SRC_MAC))


@pytest.fixture
def logs(monkeypatch):
    """The module's log lines, with fresh rate limits."""
    monkeypatch.setattr(m, "reporter", Reporter(VlogRecorder()))
    return m.reporter.vlog


# --- golden exchanges ---------------------------------------------------------

def _golden_cases():
    """(exchange, packet-in record, the c2s PACKET_OUT answering it) for
    every packet-in of our opcodes: each packet-out is paired with the
    oldest unanswered one of the same step (put_arp/put_nd packet-ins in
    between send nothing; the buffered-packet releases come with no
    packet-in of ours pending and are tested in test_buffered_packets)."""
    cases = []
    for name in goldens.exchange_names():
        for step in goldens.load_exchange(name)["steps"]:
            pending = []
            for rec in step["openflow_pinctrl"]:
                if rec["msg"] == "NXT_PACKET_IN2" and int(
                        rec["userdata_hex"][:8], 16) in NEIGHBOR_OPCODES:
                    pending.append(rec)
                elif (rec["msg"] == "OFPT_PACKET_OUT" and rec["dir"] == "c2s"
                      and pending):
                    cases.append(pytest.param(
                        step, pending.pop(0), rec,
                        id=f"{name}-{rec['xid']}"))
            assert not pending, name
    return cases


GOLDEN = _golden_cases()


def test_golden_list_covers_every_opcode():
    ops = sorted(int(c.values[1]["userdata_hex"][:8], 16) for c in GOLDEN)
    # arp: 2 in arp_resolve_nexthop_put_arp + 1 in arp_resolve_sw0_unknown
    # host; nd_ns: nd_resolve_nexthop_put_nd; nd_na: nd_ns_dad_vif,
    # nd_ns_vif_nd_na, nd_ns_vif_unicast_nd_na; nd_na_router: 3 nd_ns_*.
    assert ops == [0, 0, 0, 3, 3, 3, 9, 12, 12, 12]


@pytest.mark.parametrize("step,pin_rec,po_rec", GOLDEN)
def test_golden_packet_out_byte_identical(step, pin_rec, po_rec):
    env = env_with_buffer()
    out = dispatch.process_packet_in(
        goldens.packet_in_from_hex(pin_rec["hex"]), env)
    assert len(out) == 1
    assert goldens.same_message(out[0], bytes.fromhex(po_rec["hex"])), \
        (out[0].hex(), po_rec["hex"])
    assert step["ovn_controller_log"] == []
    # arp/nd_ns buffer the punted packet; nd_na/nd_na_router do not.
    opcode = int(pin_rec["userdata_hex"][:8], 16)
    assert env.buffered_packets.summary() == (
        (1, 1) if opcode in (0, 9) else (0, 0))


def test_opcode_registration():
    assert {op: (REGISTRY[op].name, REGISTRY[op].pause)
            for op in NEIGHBOR_OPCODES} == {
        op: (name, False) for op, name in NEIGHBOR_OPCODES.items()}


# --- address helpers ------------------------------------------------------------

def test_lla_solicited_node_and_multicast_mac():
    assert m.in6_lla(bytes.fromhex("00000000ff03")).hex() == \
        "fe80000000000000020000fffe00ff03"
    assert m.in6_lla(bytes.fromhex("525400000001")).hex() == \
        "fe80000000000000505400fffe000001"
    group = m.solicited_node(bytes.fromhex(
        "20014860000000000000000000008888"))
    assert group.hex() == "ff0200000000000000000001ff008888"
    assert m.ipv6_multicast_mac(group).hex() == "3333ff008888"


# --- ARP -----------------------------------------------------------------------

def test_arp_request_layout():
    req = v4()
    out = m.build_arp_request(req, extract(req))
    assert len(out) == 42                      # not padded to 60
    p = Ether(out)
    assert (p.dst, p.src, p.type) == ("00:00:00:00:00:00", SRC_MAC, 0x0806)
    a = p[ARP]
    assert (a.hwtype, a.ptype, a.hwlen, a.plen, a.op) == (1, 0x800, 6, 4, 1)
    assert (a.hwsrc, a.psrc, a.hwdst, a.pdst) == (
        SRC_MAC, "10.0.0.11", "00:00:00:00:00:00", "8.8.8.8")


def test_arp_request_repushes_vlan_with_dei_cleared():
    req = bytes(Ether(src=SRC_MAC) / Dot1Q(vlan=10, prio=5, dei=1)
                / IP(src="10.0.0.11", dst="8.8.8.8") / UDP())
    out = m.build_arp_request(req, extract(req))
    assert len(out) == 46
    assert out[12:16] == struct.pack("!HH", 0x8100, (5 << 13) | 10)
    assert Ether(out)[ARP].pdst == "8.8.8.8"


def test_arp_wraps_reload_metadata_and_nested_actions():
    out = m.arp(pin(v4(), 0))
    assert isinstance(out, PacketOut)
    assert out.actions == reload_metadata(md()) + NESTED


def test_arp_buffers_the_packet_under_next_hop_key():
    env = env_with_buffer()
    frame = v4()
    m.arp(pin(frame, 0), env)
    bp = env.buffered_packets
    key = action_env.BufferKey(4, 4, bytes(10) + b"\xff\xff" + bytes([172, 16, 0,
                                                                254]))
    assert m.buffer_key(pin(frame, 0), ipv6=False) == key
    out = bp.release([key], bytes.fromhex("00000000fefe"))
    assert len(out) == 1
    actions = neighbor.reinject_actions(md())
    assert actions in out[0]
    assert out[0].endswith(bytes.fromhex("00000000fefe") + frame[6:])


def test_arp_still_sent_when_the_buffer_is_full():
    env = env_with_buffer()
    for i in range(bufp.MAX_KEYS):
        env.buffered_packets.push(action_env.BufferKey(9, 9, i.to_bytes(16, "big")),
                                  b"f" * 14, b"", 0)
    out, n = delta(bufp.C_MAP_FULL, lambda: m.arp(pin(v4(), 0), env))
    assert isinstance(out, PacketOut) and n == 1
    assert env.buffered_packets.summary() == (bufp.MAX_KEYS, bufp.MAX_KEYS)


def test_without_buffer_arp_and_ns_are_still_answered():
    assert isinstance(m.arp(pin(v4(), 0)), PacketOut)
    assert isinstance(m.nd_ns(pin(v6(), 9), dispatch.Env()),
                      PacketOut)


# --- ND_NS ---------------------------------------------------------------------

def test_nd_ns_layout_and_checksum():
    req = v6()
    out = m.build_nd_ns(req, extract(req))
    assert len(out) == 86
    p = Ether(out)
    assert (p.src, p.dst) == (SRC_MAC, "33:33:ff:00:88:88")
    ip6 = p[IPv6]
    assert (ip6.src, ip6.dst) == ("fe80::5254:ff:fe00:1", "ff02::1:ff00:8888")
    assert (ip6.hlim, ip6.tc, ip6.fl, ip6.plen) == (255, 0, 0, 32)
    s = p[ICMPv6ND_NS]
    assert (s.type, s.code, s.res, s.tgt) == (135, 0, 0, "2001:4860::8888")
    assert p[ICMPv6NDOptSrcLLAddr].lladdr == SRC_MAC
    chk = s.cksum
    del s.cksum
    assert Ether(bytes(p))[ICMPv6ND_NS].cksum == chk


def test_nd_ns_does_not_repush_vlan():
    req = bytes(Ether(src=SRC_MAC) / Dot1Q(vlan=3)
                / IPv6(dst="2001:db8::5") / UDP())
    out = m.build_nd_ns(req, extract(req))
    assert out[12:14] == b"\x86\xdd" and len(out) == 86


def test_nd_ns_buffers_under_xxreg0():
    env = env_with_buffer()
    m.nd_ns(pin(v6(), 9), env)
    key = action_env.BufferKey(4, 4, bytes.fromhex(
        "ac1000fe" "20010db8" "00ff0000" "000000fe"))
    assert m.buffer_key(pin(v6(), 9), ipv6=True) == key
    assert len(env.buffered_packets.release([key], bytes(6))) == 1


# --- ND_NA / ND_NA_ROUTER ------------------------------------------------------

@pytest.mark.parametrize("router,flags", [(False, 0x60000000),
                                          (True, 0xE0000000)])
def test_nd_na_layout_and_checksum(router, flags):
    req = ns()
    out = m.build_nd_na(req, extract(req), router)
    assert len(out) == 86
    p = Ether(out)
    assert (p.src, p.dst) == ("33:33:ff:00:00:12", SRC_MAC)
    ip6 = p[IPv6]
    assert (ip6.src, ip6.dst, ip6.hlim) == ("2001:db8::12", "2001:db8::11",
                                            255)
    a = p[ICMPv6ND_NA]
    assert struct.unpack_from("!I", out, 54 + 4)[0] == flags
    assert a.tgt == "2001:db8::12"
    assert p[ICMPv6NDOptDstLLAddr].lladdr == "33:33:ff:00:00:12"
    chk = a.cksum
    del a.cksum
    assert Ether(bytes(p))[ICMPv6ND_NA].cksum == chk


def test_nd_na_answers_an_na_too():
    req = bytes(Ether(src=SRC_MAC, dst=DST_MAC)
                / IPv6(src="2001:db8::11", dst="2001:db8::1")
                / ICMPv6ND_NA(tgt="2001:db8::11")
                / ICMPv6NDOptDstLLAddr(lladdr=SRC_MAC))
    assert Ether(m.build_nd_na(req, extract(req), False))[ICMPv6ND_NA].tgt \
        == "2001:db8::11"


def test_nd_na_does_not_buffer():
    env = env_with_buffer()
    assert isinstance(m.nd_na(pin(ns(), 3), env), PacketOut)
    assert isinstance(m.nd_na_router(pin(ns(), 12), env), PacketOut)
    assert env.buffered_packets.summary() == (0, 0)


# --- hostile input -------------------------------------------------------------

ARP_FRAME = bytes(Ether(src=SRC_MAC, dst="ff:ff:ff:ff:ff:ff")
                  / ARP(psrc="10.0.0.11", pdst="10.0.0.1"))


def short_ns() -> bytes:
    """An NS whose ICMPv6 message (20 bytes, payload length consistent)
    ends inside the target address."""
    req = bytearray(ns()[:14 + 40 + 20])
    struct.pack_into("!H", req, 18, 20)
    return bytes(req)


@pytest.mark.parametrize("opcode,frame,counter,text", [
    (0, v6(), "pinctrl_arp_drop_not_ip",
     "ARP action on non-IP packet (Ethertype 86dd)"),
    (0, ARP_FRAME, "pinctrl_arp_drop_not_ip",
     "ARP action on non-IP packet (Ethertype 806)"),
    (0, v4()[:30], "pinctrl_arp_drop_bad_ip",
     "ARP action on malformed IP packet"),
    (9, v4(), "pinctrl_nd_ns_drop_not_ipv6", "NS action on non-IPv6 packet"),
    (9, v6()[:50], "pinctrl_nd_ns_drop_bad_ipv6",
     "NS action on malformed IPv6 packet"),
    (3, v6(), "pinctrl_nd_na_drop_not_nd", "NA action on non-ND packet"),
    (3, v4(), "pinctrl_nd_na_drop_not_nd", "NA action on non-ND packet"),
    (12, v6(ICMPv6EchoRequest()), "pinctrl_nd_na_drop_not_nd",
     "NA action on non-ND packet"),
    (12, short_ns(), "pinctrl_nd_na_drop_short_nd",
     "NA action on truncated ND packet"),
])
def test_unusable_input_counted_logged_nothing_sent_or_buffered(
        opcode, frame, counter, text, logs):
    env = env_with_buffer()
    out, n = delta(counter, lambda: REGISTRY[opcode].handler(
        pin(frame, opcode), env))
    assert out is None and n == 1
    assert logs.lines == [("WARN", text)]
    assert env.buffered_packets.summary() == (0, 0)


def test_icmpv6_header_cut_short_is_not_nd():
    # 4 bytes of ICMPv6: OVS parses no type/code, so not an ND message.
    req = bytearray(ns())
    struct.pack_into("!H", req, 18, 4)
    out, n = delta("pinctrl_nd_na_drop_not_nd",
                   lambda: m.nd_na(pin(bytes(req[:58]), 3)))
    assert out is None and n == 1


def test_nd_na_with_nonzero_code_is_not_nd():
    req = bytearray(ns())
    req[55] = 1
    out, n = delta("pinctrl_nd_na_drop_not_nd",
                   lambda: m.nd_na(pin(bytes(req), 3)))
    assert out is None and n == 1


@pytest.mark.parametrize("opcode,frame", [(0, v4()), (9, v6()), (3, ns()),
                                          (12, ns())])
def test_bad_nested_actions_send_nothing(opcode, frame):
    env = env_with_buffer()
    out, n = delta("pinctrl_drop_bad_nested_actions",
                   lambda: REGISTRY[opcode].handler(
                       pin(frame, opcode, args=b"\x00\x19\x00\x08"), env))
    assert out is None and n == 1
    # As 23.03: the packet is buffered before the actions are parsed.
    assert env.buffered_packets.summary() == (
        (1, 1) if opcode in (0, 9) else (0, 0))


def test_every_truncation_and_byte_corruption_never_raises():
    # Exhaustive: every prefix of each frame, and each frame with any one
    # byte set to 0x00, 0x01, 0x80 or 0xff (lengths, versions, IHL, types,
    # option lengths all get hit).
    frames = [v4(), v6(), ns(), short_ns(), ARP_FRAME,
              bytes(Ether() / Dot1Q(vlan=4) / IP() / UDP())]
    cases = [f[:n] for f in frames for n in range(len(f) + 1)]
    cases += [f[:i] + bytes((v,)) + f[i + 1:] for f in frames
              for i in range(len(f)) for v in (0x00, 0x01, 0x80, 0xFF)]
    env = env_with_buffer()
    before = coverage.get("pinctrl_action_exception")
    for c in cases:
        for op in NEIGHBOR_OPCODES:
            assert len(dispatch.process_packet_in(pin(c, op), env)) <= 1
    assert coverage.get("pinctrl_action_exception") == before
    keys, frames_kept = env.buffered_packets.summary()
    assert 1 <= keys <= bufp.MAX_KEYS and frames_kept <= 3 * keys
