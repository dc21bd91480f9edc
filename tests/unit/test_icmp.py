"""ICMP (10), ICMP4_ERROR (14), ICMP6_ERROR (20), PUT_ICMP4_FRAG_MTU (13),
PUT_ICMP6_FRAG_MTU (21): golden exchanges, builders from bytes, hostile
input and the no-error-for-an-error rule."""

from __future__ import annotations

import random
import struct

import pytest
from scapy.layers.inet import ICMP, IP, TCP, UDP
from scapy.layers.inet6 import (
    ICMPv6DestUnreach,
    ICMPv6EchoRequest,
    ICMPv6PacketTooBig,
    ICMPv6TimeExceeded,
    IPv6,
)
from scapy.layers.l2 import Dot1Q, Ether
from scapy.packet import Raw

from pinctrl.actions import REGISTRY
from pinctrl.actions import icmp as m
from pinctrl.actions.replies import LogLine, NoReply, PacketOut, Resume
from pinctrl.handler import dispatch
from pinctrl.openflow.ofactions import reload_metadata, resubmit, set_reg
from pinctrl.openflow.oxm import Metadata
from pinctrl.openflow.packet_in import PacketIn
from pinctrl.packet import headers as pkt
from pinctrl.packet.flow import extract
from pinctrl.support import coverage
from testbed import golden as goldens
from tests.helpers import VlogRecorder
from tests.helpers import counter_delta as delta

SRC_MAC, DST_MAC = "50:54:00:00:00:01", "00:00:00:00:ff:01"
NESTED = resubmit(8)                                  # any valid list
MD = Metadata.parse(bytes.fromhex("8000000400000007"
                                  "80010e08" "0000000100000002"
                                  "800004080000000000000003"))


def hdr(opcode: int) -> bytes:
    return struct.pack("!I4x", opcode)


def pin(frame, opcode=14, args=NESTED, continuation=None) -> PacketIn:
    return PacketIn(bytes(frame), userdata=hdr(opcode) + args,
                    metadata=Metadata(list(map(list, MD.entries))),
                    continuation=continuation)


def _frame(l3, payload) -> bytes:
    if payload is None:
        payload = UDP(sport=5, dport=7) / Raw(b"x" * 10)
    return bytes(Ether(src=SRC_MAC, dst=DST_MAC) / l3 / payload)


def v4(payload=None, **ip) -> bytes:
    return _frame(IP(**{"src": "10.0.0.11", "dst": "8.8.8.8", **ip}),
                  payload)


def v6(payload=None, **ip) -> bytes:
    return _frame(IPv6(**{"src": "2001:db8::11", "dst": "2001:db8::99",
                          **ip}), payload)


@pytest.fixture
def logs(monkeypatch):
    rec = VlogRecorder()
    monkeypatch.setattr(m.reporter, "vlog", rec)
    monkeypatch.setattr(m.reporter, "rate_limits", {})
    return rec


# --- golden exchanges ---------------------------------------------------------

ICMP_GOLDENS = [
    "router_frag_needed_v4", "router_frag_needed_v4_from_outside",
    "router_packet_too_big_v6", "router_proto_unreachable_v4",
    "router_proto_unreachable_v6", "router_ttl_exceeded_v4",
    "router_ttl_exceeded_v6", "router_udp_port_unreachable_v4",
    "router_udp_port_unreachable_v6"]


def test_golden_list_is_every_icmp_router_exchange():
    opcodes = {}
    for name in goldens.exchange_names("router_"):
        ex = goldens.load_exchange(name)
        opcodes[name] = {int(r["userdata_hex"][:8], 16) for r in
                         goldens.iter_of_messages(ex, "NXT_PACKET_IN2")}
    assert sorted(n for n, ops in opcodes.items()
                  if ops & {10, 13, 14, 20, 21}) == ICMP_GOLDENS


@pytest.mark.parametrize("name", ICMP_GOLDENS)
def test_golden_exchange_byte_identical(name):
    ex = goldens.load_exchange(name)
    for step in ex["steps"]:
        produced, expected = goldens.replay_step(step)
        assert len(produced) == len(expected) >= 1
        for ours, rec in zip(produced, expected):
            assert goldens.same_message(ours, rec), (ours.hex(), rec.hex())
        assert step["ovn_controller_log"] == []


@pytest.mark.parametrize("name", [n for n in ICMP_GOLDENS
                                  if "frag" in n or "too_big" in n])
def test_golden_frag_mtu_second_packet_in_is_resumed(name):
    ex = goldens.load_exchange(name)
    pins = list(goldens.iter_of_messages(ex, "NXT_PACKET_IN2"))
    resume = next(goldens.iter_of_messages(ex, "NXT_RESUME"))
    second = goldens.packet_in_from_hex(pins[1]["hex"])
    assert second.opcode in (13, 21) and second.continuation
    res = REGISTRY[second.opcode].handler(second, None)
    assert isinstance(res, Resume) and res.dest is None
    assert res.packet.hex() == resume["packet_hex"]
    # The first packet-out carried the error the second packet-in holds,
    # with the MTU still 0.
    po = next(goldens.iter_of_messages(ex, "OFPT_PACKET_OUT"))
    assert bytes.fromhex(po["packet_hex"])[-10:] == second.packet[-10:]


def test_opcode_registration():
    assert {op: (REGISTRY[op].name, REGISTRY[op].pause)
            for op in (10, 13, 14, 20, 21)} == {
        10: ("icmp", False), 13: ("put_icmp4_frag_mtu", True),
        14: ("icmp4_error", False), 20: ("icmp6_error", False),
        21: ("put_icmp6_frag_mtu", True)}


# --- ICMPv4 error from bytes --------------------------------------------------

def test_icmp4_layout():
    req = v4(ttl=1, id=77, tos=0xb8)
    out = m.build_icmp_error(req, extract(req), set_icmp_code=False,
                             loopback=False)
    p = Ether(out)
    assert (p.src, p.dst) == (SRC_MAC, DST_MAC)          # unswapped
    assert (p[IP].src, p[IP].dst) == ("10.0.0.11", "8.8.8.8")
    assert (p[IP].ttl, p[IP].id, p[IP].tos, p[IP].flags) == (255, 0, 0, 2)
    assert p[IP].ihl == 5 and p[IP].proto == 1
    assert (p[ICMP].type, p[ICMP].code) == (3, 1)
    assert out[14 + 20 + 4:14 + 20 + 8] == bytes(4)
    assert out[14 + 28:] == req[14:]                    # whole datagram
    assert pkt.csum(out[14:34]) == 0 and pkt.csum(out[34:]) == 0
    assert len(out) == 14 + 20 + 8 + len(req) - 14


@pytest.mark.parametrize("payload,set_code,code", [
    (UDP(), True, 3), (UDP(), False, 1),
    (TCP(), True, 1), (Raw(b"gre!"), True, 1)])
def test_icmp4_codes(payload, set_code, code):
    req = v4(payload)
    out = m.build_icmp_error(req, extract(req), set_code, False)
    assert Ether(out)[ICMP].code == code


def test_icmp4_quote_limited_to_576_byte_frame():
    req = v4(UDP() / Raw(b"y" * 1400))
    out = m.build_icmp_error(req, extract(req), True, False)
    assert len(out) == 576
    assert out[42:] == req[14:14 + 534]
    assert struct.unpack_from("!H", out, 16)[0] == 576 - 14
    assert pkt.csum(out[34:]) == 0


def test_icmp4_quote_stops_at_total_length_not_padding():
    req = v4(UDP() / Raw(b"z")) + b"\xee" * 20       # Ethernet padding
    out = m.build_icmp_error(req, extract(req), True, False)
    assert out[42:] == req[14:-20]


def test_icmp4_loopback_swaps_both_pairs():
    req = v4()
    p = Ether(m.build_icmp_error(req, extract(req), True, True))
    assert (p.src, p.dst) == (DST_MAC, SRC_MAC)
    assert (p[IP].src, p[IP].dst) == ("8.8.8.8", "10.0.0.11")


def test_vlan_tag_repushed_with_dei_cleared():
    req = bytes(Ether(src=SRC_MAC, dst=DST_MAC) / Dot1Q(vlan=42, prio=5,
                                                      dei=1)
                / IP(src="1.1.1.1", dst="2.2.2.2") / UDP())
    out = m.build_icmp_error(req, extract(req), True, False)
    assert out[12:16] == bytes.fromhex("8100") + struct.pack(
        "!H", (5 << 13) | 42)
    assert Ether(out)[ICMP].code == 3


# --- ICMPv6 error from bytes --------------------------------------------------

def test_icmp6_layout_and_checksum():
    req = v6(hlim=1)
    out = m.build_icmp_error(req, extract(req), True, False)
    p = Ether(out)
    assert p.type == 0x86DD
    assert (p[IPv6].src, p[IPv6].dst) == ("2001:db8::11", "2001:db8::99")
    assert (p[IPv6].hlim, p[IPv6].tc, p[IPv6].fl, p[IPv6].nh) == \
        (255, 0, 0, 58)
    assert (out[54], out[55]) == (1, 4)                 # port unreachable
    assert out[62:] == req[14:]
    seg = out[54:]
    assert pkt.csum(seg, pkt.pseudo_sum_ipv6(out[22:38], out[38:54], 58,
                                             len(seg))) == 0
    # scapy computes the same checksum.
    q = Ether(out)
    theirs = q[ICMPv6DestUnreach].cksum
    del q[ICMPv6DestUnreach].cksum
    assert Ether(bytes(q))[ICMPv6DestUnreach].cksum == theirs


@pytest.mark.parametrize("payload,set_code,code", [
    (UDP(), True, 4), (UDP(), False, 1), (TCP(), True, 1)])
def test_icmp6_codes(payload, set_code, code):
    req = v6(payload)
    out = m.build_icmp_error(req, extract(req), set_code, False)
    assert out[54:56] == bytes((1, code))


def test_icmp6_code_uses_first_next_header():
    from scapy.layers.inet6 import IPv6ExtHdrHopByHop
    req = v6(IPv6ExtHdrHopByHop() / UDP())
    out = m.build_icmp_error(req, extract(req), True, False)
    assert out[55] == 1


def test_icmp6_quote_limited_to_1280_byte_frame():
    req = v6(UDP() / Raw(b"y" * 1400))
    out = m.build_icmp_error(req, extract(req), True, False)
    assert len(out) == 1280
    assert out[62:] == req[14:14 + 1218]
    assert struct.unpack_from("!H", out, 18)[0] == 1280 - 54


def test_icmp_reply_is_wrapped_with_reload_metadata_and_nested_actions():
    nested = set_reg(9, 1) + resubmit(8)
    out = m.icmp4_error(pin(v4(ttl=1), 14, nested))
    assert isinstance(out, PacketOut)
    assert out.actions == reload_metadata(MD) + nested
    assert Ether(out.packet)[ICMP].type == 3


def test_opcode_follows_the_frame_family():
    out = m.icmp4_error(pin(v6(), 14))
    assert Ether(out.packet)[IPv6].nh == 58


# --- never an ICMP error about an ICMP error -----------------------------------

@pytest.mark.parametrize("frame", [
    v4(ICMP(type=3, code=3) / Raw(bytes(28))),
    v4(ICMP(type=11) / Raw(bytes(28))),
    v4(ICMP(type=12) / Raw(bytes(28))),
    v4(ICMP(type=5) / Raw(bytes(28))),
    v6(ICMPv6DestUnreach() / Raw(bytes(48))),
    v6(ICMPv6PacketTooBig() / Raw(bytes(48))),
    v6(ICMPv6TimeExceeded() / Raw(bytes(48))),
])
@pytest.mark.parametrize("handler", [m.icmp, m.icmp4_error, m.icmp6_error])
def test_no_icmp_error_answers_an_icmp_error(frame, handler, logs):
    out, n = delta("pinctrl_icmp_drop_icmp_error",
                   lambda: handler(pin(frame)))
    assert out is None and n == 1
    assert logs.lines == []


@pytest.mark.parametrize("frame", [v4(ICMP(type=8) / Raw(b"ping")),
                                   v6(ICMPv6EchoRequest())])
def test_icmp_queries_are_answered(frame):
    out = m.icmp(pin(frame, 10))
    assert isinstance(out, PacketOut)


# --- hostile input -------------------------------------------------------------

def test_non_ip_warns_and_counts(logs):
    arp = bytes.fromhex("ffffffffffff505400000001" "0806") + bytes(28)
    out, n = delta("pinctrl_icmp_drop_not_ip", lambda: m.icmp(pin(arp, 10)))
    assert out is None and n == 1
    assert logs.lines == [("WARN",
                           "ICMP action on non-IP packet (eth_type 0x806)")]


def test_ip_total_length_below_20(logs):
    req = bytearray(v4())
    struct.pack_into("!H", req, 16, 19)
    out, n = delta("pinctrl_icmp_drop_bad_ip_len",
                   lambda: m.icmp(pin(req, 10)))
    assert out is None and n == 1
    assert logs.lines == [("WARN", "ICMP action on IP packet with invalid "
                           "length (19)")]


@pytest.mark.parametrize("edit", ["tot_len_past_end", "ihl_past_end",
                                  "plen_past_end"])
def test_header_lengths_past_the_end_are_dropped(edit, logs):
    if edit == "plen_past_end":
        req = bytearray(v6())
        struct.pack_into("!H", req, 18, 2000)
    else:
        req = bytearray(v4())
        if edit == "tot_len_past_end":
            struct.pack_into("!H", req, 16, 2000)
        else:
            req[14] = 0x4F                               # IHL 60 > tot_len
    out, n = delta("pinctrl_icmp_drop_bad_ip", lambda: m.icmp(pin(req, 10)))
    assert out is None and n == 1
    assert logs.lines[0][0] == "WARN"


def test_malformed_nested_actions_send_nothing():
    out, n = delta("pinctrl_drop_bad_nested_actions",
                   lambda: m.icmp(pin(v4(), 10, args=b"\x00\x19\x00")))
    assert out is None and n == 1


def test_every_truncation_and_random_bytes_never_raise():
    rnd = random.Random(7)
    frames = [v4(), v6(), v4(ICMP(type=3) / Raw(bytes(28))),
              v4(TCP()), v6(TCP())]
    cases = [f[:n] for f in frames for n in range(len(f) + 1)]
    for f in frames:
        for _ in range(200):
            b = bytearray(f)
            for _ in range(3):
                b[rnd.randrange(len(b))] = rnd.randrange(256)
            cases.append(bytes(b))
    before = coverage.get("pinctrl_action_exception")
    for c in cases:
        for op in (10, 14, 20):
            dispatch.process_packet_in(pin(c, op), dispatch.Env())
        for op, arg in ((13, b"\x05\x78"), (21, b"\0\0\x05\x78")):
            msgs = dispatch.process_packet_in(
                pin(c, op, arg, continuation=b"\0" * 8),
                dispatch.Env())
            assert len(msgs) == 1                # always exactly one RESUME
    assert coverage.get("pinctrl_action_exception") == before


def test_paused_icmp_from_physical_is_never_resumed():
    """controller/physical.c's PMTU flow pauses opcode 10: 23.03 answers
    with a PACKET_OUT and never resumes (the big packet is dropped)."""
    msgs = dispatch.process_packet_in(pin(v4(), 10, continuation=b"\0" * 8),
                                      dispatch.Env())
    assert len(msgs) == 1 and msgs[0][1] == 13          # OFPT_PACKET_OUT


# --- frag MTU -----------------------------------------------------------------

def _frag_needed_v4() -> bytes:
    req = v4(UDP() / Raw(b"q" * 100), flags="DF")
    return m.build_icmp_error(req, extract(req), False, False)


def test_frag_mtu_v4_sets_mtu_and_checksums():
    err = _frag_needed_v4()
    res = m.put_icmp4_frag_mtu(pin(err, 13, b"\x05\x78"))
    out = res.packet
    assert res.dest is None
    assert out[40:42] == b"\x05\x78"
    assert out[:40] == err[:24] + out[24:26] + err[26:36] + out[36:38] \
        + err[38:40]
    assert out[42:] == err[42:]
    assert pkt.csum(out[14:34]) == 0 and pkt.csum(out[34:]) == 0


def test_recalc_csum16_matches_full_recompute():
    rnd = random.Random(3)
    for _ in range(500):
        data = bytearray(rnd.randbytes(40))
        data[2:4] = b"\0\0"
        struct.pack_into("!H", data, 2, pkt.csum(data))
        old = struct.unpack_from("!H", data, 6)[0]
        new = rnd.randrange(65536)
        inc = m.recalc_csum16(struct.unpack_from("!H", data, 2)[0], old, new)
        struct.pack_into("!H", data, 6, new)
        assert pkt.csum(data[:2] + struct.pack("!H", inc) + data[4:]) == 0


def test_frag_mtu_v6_sets_mtu_and_checksum():
    req = v6(UDP() / Raw(b"q" * 100))
    err = m.build_icmp_error(req, extract(req), False, False)
    out = m.put_icmp6_frag_mtu(pin(err, 21, b"\0\0\x05\x78")).packet
    assert out[58:62] == b"\0\0\x05\x78"
    seg = out[54:]
    src, dst = out[22:38], out[38:54]
    assert pkt.csum(seg, pkt.pseudo_sum_ipv6(src, dst, 58, len(seg))) == 0


@pytest.mark.parametrize("frame,arg,counter", [
    (v4(), b"\x05\x78", "not_icmp"),
    (_frag_needed_v4(), b"\x05", "no_mtu"),
    (v6(ICMPv6DestUnreach()), b"\x05\x78", "no_mtu"),
    (v4(Raw(b"\x03\x04\x00\x00"), proto=1), b"\x05\x78", "short_icmp"),
])
def test_frag_mtu_unusable_is_resumed_unchanged(frame, arg, counter):
    res, n = delta(m.C_FRAG + counter, lambda: m.put_icmp4_frag_mtu(
        pin(frame, 13, arg)))
    assert res.packet == frame and res.dest is None and n == 1


def test_noreply_is_an_exception_with_counter():
    e = NoReply("x", "y")
    assert (e.counter, e.log) == ("x", LogLine("warn", "y"))
    assert NoReply("x").log is None         # count only
