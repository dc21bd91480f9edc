"""TCP_RESET (11), SCTP_ABORT (24), REJECT (22): golden exchanges, builders
from bytes, the no-RST-for-a-RST rule and hostile input."""

from __future__ import annotations

import random
import struct

import pytest
from scapy.layers.inet import ICMP, IP, TCP, UDP
from scapy.layers.inet6 import (
    ICMPv6DestUnreach,
    ICMPv6EchoRequest,
    ICMPv6TimeExceeded,
    IPv6,
)
from scapy.layers.l2 import Dot1Q, Ether
from scapy.layers.sctp import SCTP, SCTPChunkData, SCTPChunkInit
from scapy.packet import Raw

from pinctrl.actions import REGISTRY
from pinctrl.actions import icmp as icmp_mod
from pinctrl.actions import reset as m
from pinctrl.actions.replies import PacketOut
from pinctrl.handler import dispatch
from pinctrl.openflow.ofactions import reload_metadata, resubmit
from pinctrl.openflow.oxm import Metadata
from pinctrl.openflow.packet_in import PacketIn
from pinctrl.packet import headers as pkt
from pinctrl.packet.flow import extract
from pinctrl.support import coverage
from testbed import golden as goldens
from tests.helpers import counter_delta as delta

A_MAC, B_MAC = "50:54:00:00:00:01", "50:54:00:00:00:02"
NESTED = resubmit(8)
MD = Metadata.parse(bytes.fromhex("8000000400000007"
                                  "800004080000000000000003"))


def pin(frame, opcode, args=NESTED) -> PacketIn:
    return PacketIn(bytes(frame), userdata=struct.pack("!I4x", opcode) + args,
                    metadata=MD)


def v4(l4, **ip) -> bytes:
    return bytes(Ether(src=A_MAC, dst=B_MAC)
                 / IP(src="10.0.0.11", dst="10.0.0.12", **ip) / l4)


def v6(l4) -> bytes:
    return bytes(Ether(src=A_MAC, dst=B_MAC)
                 / IPv6(src="2001:db8::11", dst="2001:db8::12") / l4)


# --- golden exchanges ---------------------------------------------------------

RESET_GOLDENS = (goldens.exchange_names("acl_reject_")
                 + ["lb_empty_backends_reject", "router_sctp_abort_v4",
                    "router_tcp_reset_v4", "router_tcp_reset_v6"])


def test_golden_list():
    assert len(RESET_GOLDENS) == 11
    ops = set()
    for name in RESET_GOLDENS:
        ex = goldens.load_exchange(name)
        ops |= {int(r["userdata_hex"][:8], 16)
                for r in goldens.iter_of_messages(ex, "NXT_PACKET_IN2")}
    assert ops == {7, 11, 22, 24}


@pytest.mark.parametrize("name", RESET_GOLDENS)
def test_golden_exchange_byte_identical(name):
    ex = goldens.load_exchange(name)
    for step in ex["steps"]:
        produced, expected = goldens.replay_step(step)
        assert len(produced) == len(expected) == 1
        assert goldens.same_message(produced[0], expected[0]), \
            (produced[0].hex(), expected[0].hex())


def test_opcode_registration():
    assert {op: (REGISTRY[op].name, REGISTRY[op].pause)
            for op in (11, 22, 24)} == {
        11: ("tcp_reset", False), 22: ("reject", False),
        24: ("sctp_abort", False)}


# --- TCP RST ------------------------------------------------------------------

def test_tcp_reset_v4_layout():
    req = v4(TCP(sport=40000, dport=81, seq=1000, flags="PA") / Raw(b"hi"))
    out = m.build_tcp_reset(req, extract(req), loopback=False)
    p = Ether(out)
    assert (p.src, p.dst) == (A_MAC, B_MAC)
    assert (p[IP].src, p[IP].dst) == ("10.0.0.11", "10.0.0.12")
    assert (p[IP].ttl, p[IP].id, p[IP].tos, p[IP].flags) == (63, 0, 0, 2)
    t = p[TCP]
    assert (t.sport, t.dport, t.seq, t.ack) == (81, 40000, 0, 1001)
    assert out[34 + 12:34 + 14] == b"\x50\x14"
    assert (t.window, t.urgptr) == (0, 0)
    assert len(out) == 14 + 20 + 20
    seg = out[34:]
    assert pkt.csum(seg, pkt.pseudo_sum_ipv4(out[26:30], out[30:34], 6,
                                             20)) == 0
    assert pkt.csum(out[14:34]) == 0


def test_tcp_reset_ack_wraps():
    req = v4(TCP(seq=0xFFFFFFFF, flags="S"))
    assert Ether(m.build_tcp_reset(req, extract(req), False))[TCP].ack == 0


def test_tcp_reset_v6_loopback():
    req = v6(TCP(sport=1, dport=2, seq=5, flags="S"))
    out = m.build_tcp_reset(req, extract(req), loopback=True)
    p = Ether(out)
    assert (p.src, p.dst) == (B_MAC, A_MAC)
    assert (p[IPv6].src, p[IPv6].dst) == ("2001:db8::12", "2001:db8::11")
    assert (p[IPv6].hlim, p[IPv6].plen, p[IPv6].nh) == (63, 20, 6)
    seg = out[54:]
    assert pkt.csum(seg, pkt.pseudo_sum_ipv6(out[22:38], out[38:54], 6,
                                             20)) == 0


def test_tcp_reset_no_vlan_repush():
    req = bytes(Ether() / Dot1Q(vlan=3) / IP() / TCP())
    assert m.build_tcp_reset(req, extract(req), False)[12:14] == b"\x08\x00"


def test_tcp_reset_wrapped_in_packet_out():
    out = m.tcp_reset(pin(v4(TCP(flags="S")), 11))
    assert isinstance(out, PacketOut)
    assert out.actions == reload_metadata(MD) + NESTED


# --- never a RST for a RST -----------------------------------------------------

@pytest.mark.parametrize("opcode,counter", [
    (11, "pinctrl_tcp_reset_drop_rst"), (22, "pinctrl_reject_drop_rst")])
@pytest.mark.parametrize("flags", ["R", "RA"])
def test_rst_is_never_answered(opcode, counter, flags):
    out, n = delta(counter, lambda: REGISTRY[opcode].handler(
        pin(v4(TCP(flags=flags)), opcode), None))
    assert out is None and n == 1


@pytest.mark.parametrize("frame", [
    v4(ICMP(type=3, code=1) / Raw(bytes(28))),
    v4(ICMP(type=11) / Raw(bytes(28))),
    v6(ICMPv6DestUnreach() / Raw(bytes(48))),
    v6(ICMPv6TimeExceeded() / Raw(bytes(48)))])    # beyond 23.03's check
def test_reject_never_answers_icmp_errors(frame):
    assert m.reject(pin(frame, 22)) is None


def test_reject_icmp_error_counter():
    _, n = delta("pinctrl_reject_drop_icmp_error", lambda: m.reject(
        pin(v4(ICMP(type=3) / Raw(bytes(28))), 22)))
    assert n == 1


# --- SCTP ABORT -----------------------------------------------------------------

def test_sctp_abort_for_init_uses_initiate_tag():
    req = v4(SCTP(sport=5000, dport=81, tag=0)
             / SCTPChunkInit(init_tag=0x11223344))
    out = m.build_sctp_abort(req, extract(req), loopback=False)
    s = out[34:]
    assert len(s) == 16 and len(out) == 14 + 20 + 16
    assert struct.unpack("!HH", s[:4]) == (81, 5000)
    assert s[4:8] == bytes.fromhex("11223344")
    assert s[12:16] == bytes.fromhex("06000004")     # ABORT, T=0, length 4
    crc = pkt.crc32c(s[:8] + bytes(4) + s[12:])
    assert s[8:12] == crc.to_bytes(4, "little")
    assert Ether(out)[IP].ttl == 63
    # scapy agrees on the checksum.
    q = Ether(out)
    theirs = q[SCTP].chksum
    del q[SCTP].chksum
    assert Ether(bytes(q))[SCTP].chksum == theirs


def test_sctp_abort_reflects_nonzero_tag():
    req = v6(SCTP(sport=1, dport=2, tag=0xAABBCCDD) / SCTPChunkData(
        data=b"x"))
    out = m.build_sctp_abort(req, extract(req), loopback=True)
    s = out[54:]
    assert s[4:8] == bytes.fromhex("aabbccdd")
    assert s[12:16] == bytes.fromhex("06010004")     # T flag
    assert Ether(out)[IPv6].src == "2001:db8::12"


def test_crc32c_check_value():
    assert pkt.crc32c(b"123456789") == 0xE3069283


@pytest.mark.parametrize("l4,counter,text", [
    (SCTP() / Raw(bytes.fromhex("06000004")), "abort",
     "sctp_abort action on incoming SCTP ABORT."),
    (SCTP(), "no_chunks", "SCTP_ABORT action on SCTP packet with no chunks"),
    (SCTP() / Raw(bytes.fromhex("01000014") + bytes(8)), "short_init",
     "Incomplete SCTP INIT chunk. Ignoring packet."),
    (Raw(bytes(8)), "malformed",
     "SCTP_ABORT action on malformed SCTP packet"),
    (TCP(), "not_sctp", "SCTP_ABORT action on non-SCTP packet"),
])
def test_sctp_abort_refusals(l4, counter, text, monkeypatch):
    lines = []
    monkeypatch.setattr(m.reporter, "vlog", type("V", (), {
        "warn": lambda self, msg: lines.append(msg)})())
    monkeypatch.setattr(m.reporter, "rate_limits", {})
    kw = {"proto": 132} if isinstance(l4, Raw) else {}
    frame = v4(l4, **kw)
    out, n = delta(m.C_SCTP + counter,
                   lambda: m.sctp_abort(pin(frame, 24)))
    assert out is None and n == 1 and lines == [text]


# --- REJECT dispatch ----------------------------------------------------------------

def test_reject_udp_gets_port_unreachable_swapped():
    out = m.reject(pin(v4(UDP(sport=1, dport=81)), 22)).packet
    p = Ether(out)
    assert (p.src, p.dst, p[IP].src, p[IP].dst) == \
        (B_MAC, A_MAC, "10.0.0.12", "10.0.0.11")
    assert (p[ICMP].type, p[ICMP].code, p[IP].ttl) == (3, 3, 255)


def test_reject_icmp_echo_gets_host_unreachable():
    p = Ether(m.reject(pin(v4(ICMP(type=8)), 22)).packet)
    assert (p[ICMP].type, p[ICMP].code) == (3, 1)


def test_reject_icmpv6_echo_gets_admin_prohibited():
    out = m.reject(pin(v6(ICMPv6EchoRequest()), 22)).packet
    assert out[54:56] == b"\x01\x01"


def test_reject_tcp_and_sctp_use_loopback():
    p = Ether(m.reject(pin(v4(TCP(flags="S", seq=9)), 22)).packet)
    assert (p[IP].src, p[TCP].ack, p[IP].ttl) == ("10.0.0.12", 10, 63)
    p = Ether(m.reject(pin(v4(SCTP(tag=7) / SCTPChunkData()), 22)).packet)
    assert (p[IP].src, p[SCTP].tag) == ("10.0.0.12", 7)


# --- hostile input ---------------------------------------------------------------

def test_non_tcp_warns(monkeypatch):
    lines = []
    monkeypatch.setattr(m.reporter, "vlog", type("V", (), {
        "warn": lambda self, msg: lines.append(msg)})())
    monkeypatch.setattr(m.reporter, "rate_limits", {})
    out, n = delta("pinctrl_tcp_reset_drop_not_tcp",
                   lambda: m.tcp_reset(pin(v4(UDP()), 11)))
    assert out is None and n == 1
    assert lines == ["TCP_RESET action on non-TCP packet"]


@pytest.mark.parametrize("frame", [
    v4(Raw(bytes(12)), proto=6),                    # TCP header truncated
    v4(TCP(dataofs=15)),                            # offset past the end
    v4(TCP(), frag=3),                              # later fragment
])
def test_unparsable_tcp_gets_nothing(frame):
    for op in (11, 22):
        assert REGISTRY[op].handler(pin(frame, op), None) is None


def test_random_frames_never_raise():
    rnd = random.Random(11)
    frames = [v4(TCP(flags="S")), v6(TCP(flags="S")),
              v4(SCTP() / SCTPChunkInit()), v6(SCTP() / SCTPChunkInit()),
              v4(UDP()), v6(UDP()), v4(ICMP())]
    cases = [f[:n] for f in frames for n in range(len(f) + 1)]
    for f in frames:
        for _ in range(200):
            b = bytearray(f)
            for _ in range(rnd.randint(1, 4)):
                b[rnd.randrange(len(b))] = rnd.randrange(256)
            cases.append(bytes(b))
    before = coverage.get("pinctrl_action_exception")
    sent = 0
    for c in cases:
        for op in (11, 22, 24):
            msgs = dispatch.process_packet_in(pin(c, op),
                                              dispatch.Env())
            assert len(msgs) <= 1
            sent += len(msgs)
    assert coverage.get("pinctrl_action_exception") == before
    assert sent > 0


def test_reject_shares_icmp_builder():
    assert m.answer_icmp is icmp_mod.answer_icmp
