"""One regression test per known bug class of OVN's pinctrl (issue 9,
/work/shared/field-notes.md "CVEs and security bugs"), named after it.

Bug classes whose regression test already lives next to its action are
listed in BUG_CLASSES and checked to still exist (a renamed or deleted test
must not silently drop the coverage); the others are here, each with a
docstring citing the bug.  Every test goes through dispatch, the path the
handler thread takes.
"""

from __future__ import annotations

import ast
import struct
import sys
from pathlib import Path

import pytest

from pinctrl.handler import dispatch
from pinctrl.openflow.packet_in import PacketIn, decode_packet_in2
from pinctrl.packet import headers as pkt
from pinctrl.packet.flow import extract
from pinctrl.support import coverage
from testbed import golden as goldens
from tests.helpers import counter_delta

UNIT = Path(__file__).resolve().parent

# bug class -> the tests (file::function) that pin it down.
BUG_CLASSES = {
    "DNS name / compression pointer loop (BZ1740335, 7fbdeaade)": [
        "test_dns.py::test_bad_labels",
        "test_dns.py::test_huge_name_with_many_short_labels",
        "test_regressions.py::test_bz1740335_dns_pointer_loops_end_at_once",
    ],
    "unaligned DHCPv6 options (9b5cf1b7a)": [
        "test_dhcpv6.py::test_unaligned_options_are_fine",
        "test_dhcpv6.py::test_malformed_options",
    ],
    "ICMP quote length taken from the IP header (2c063b508)": [
        "test_icmp.py::test_header_lengths_past_the_end_are_dropped",
        "test_icmp.py::test_icmp4_quote_stops_at_total_length_not_padding",
        "test_regressions.py::test_2c063b508_need_frag_quote_bounded_by_frame",
    ],
    "IPv6 extension-header over-read (01a596132, 6fa3409dd)": [
        "test_dns.py::test_not_udp_or_not_ip",
        "test_dhcpv6.py::test_not_ipv6_udp",
        "test_regressions.py::test_01a596132_ipv6_extension_header_over_read",
    ],
    "unicast DHCPDISCOVER left unanswered (FDP-765, f74b38f77)": [
        "test_regressions.py::test_fdp765_unicast_dhcp_discover_answered",
        "test_dhcpv4.py::test_unicast_discover_gets_the_offer_of_a_broadcast_one",
    ],
    "reject ping-pong (BZ1934011, bcd9a8fb1)": [
        "test_reset.py::test_reject_never_answers_icmp_errors",
        "test_reset.py::test_rst_is_never_answered",
        "test_icmp.py::test_no_icmp_error_answers_an_icmp_error",
        "test_regressions.py::test_bz1934011_reject_ping_pong_between_acls",
    ],
    "EDNS queries mangled or unanswered (ovn-org/ovn#192, #228)": [
        "test_dns.py::test_edns_query_answered_opt_dropped",
        "test_dns.py::test_edns_client_subnet_like_ovn_test",
    ],
    "reply larger than one OpenFlow message (found by issue 9 fuzzing)": [
        "test_regressions.py::test_reply_over_64k_does_not_escape_dispatch",
    ],
    "register OXM with the wrong width (found by issue 9 fuzzing)": [
        "test_regressions.py::test_wide_register_oxm_is_refused",
    ],
}


def _functions(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    return {n.name for n in tree.body if isinstance(n, ast.FunctionDef)}


@pytest.mark.parametrize("bug", sorted(BUG_CLASSES))
def test_every_bug_class_keeps_its_regression_tests(bug):
    for ref in BUG_CLASSES[bug]:
        file, func = ref.split("::")
        assert func in _functions(UNIT / file), f"{bug}: {ref} is gone"


# --- helpers -----------------------------------------------------------------

def golden_pin(exchange: str, opcode: int) -> PacketIn:
    """The first recorded packet-in of 'exchange' with 'opcode'."""
    for rec in goldens.iter_of_messages(goldens.load_exchange(exchange),
                                        "NXT_PACKET_IN2", "s2c"):
        pin = decode_packet_in2(bytes.fromhex(rec["hex"]))
        if pin.opcode == opcode:
            return pin
    raise LookupError(f"{exchange}: no opcode {opcode}")


class Unbounded(BaseException):
    """Raised by bounded(); a BaseException so that the dispatcher's
    exception barrier (which catches Exception) does not swallow it."""


def bounded(fn, max_lines: int):
    """fn(), failing once it has executed more than 'max_lines' Python
    lines: a loop that never ends fails here instead of hanging the run,
    and without measuring time."""
    n = 0

    def tracer(frame, event, arg):
        nonlocal n
        if event == "line":
            n += 1
            if n > max_lines:
                raise Unbounded(f"more than {max_lines} lines executed")
        return tracer

    old = sys.gettrace()
    sys.settrace(tracer)
    try:
        return fn()
    except Unbounded as e:
        pytest.fail(str(e))
    finally:
        sys.settrace(old)


def dispatched(pin: PacketIn) -> list[bytes]:
    """dispatch.process_packet_in, asserting the exception barrier was not
    needed."""
    msgs, exc = counter_delta("pinctrl_action_exception",
                              lambda: dispatch.process_packet_in(
                                  pin, dispatch.Env()))
    assert exc == 0
    return msgs


def frames_out(msgs: list[bytes]) -> list[bytes]:
    """The frames of the OFPT_PACKET_OUTs (OpenFlow 1.5 layout)."""
    out = []
    for m in msgs:
        if m[1] != 13:
            continue
        actions_len = struct.unpack_from("!H", m, 12)[0]
        match_len = struct.unpack_from("!H", m, 18)[0]
        out.append(m[16 + ((match_len + 7) & ~7) + actions_len:])
    return out


def wire_len(pin: PacketIn) -> int:
    """Length of 'pin' as an NXT_PACKET_IN2 (properties padded to 8)."""
    props = (pin.packet, b"t", bytes(12), b"r", pin.metadata.serialize(),
             pin.userdata)
    return 16 + sum((4 + len(p) + 7) & ~7 for p in props)


def resumed_packet(msgs: list[bytes]) -> bytes:
    (resume,) = [m for m in msgs if m[1] == 4]
    return decode_packet_in2(resume).packet


# --- DNS ---------------------------------------------------------------------

# A query of 100 labels dispatches in ~1000 lines; a parser that loops on
# a pointer never ends.  The bound only has to sit between the two.
MAX_DNS_LINES = 20000

@pytest.mark.parametrize("qname", [
    b"\xc0\x0c",                        # points at itself
    b"\x01a\xc0\x0c",                   # label, then back to the start
    b"\xc0\x0e\xc0\x0c",                # two pointers at each other
    b"\x01a" * 100 + b"\xc0\x0c",       # long chain ending in a loop
])
def test_bz1740335_dns_pointer_loops_end_at_once(qname):
    """BZ1740335 / 7fbdeaade: a crafted query name made 23.03's parser
    loop forever (uint8 index) and eat memory.  Compression pointers are
    never followed: the query is resumed unchanged at once."""
    pin = golden_pin("dns_a_hit", 6)
    f = pin.packet
    l4 = 14 + (f[14] & 0xF) * 4
    query = f[l4 + 8:l4 + 20] + qname + b"\0\x01\0\x01"
    udp = struct.pack("!HHHH", *struct.unpack_from("!HH", f, l4),
                      8 + len(query), 0) + query
    pin.packet = pkt.compose_ipv4(f[6:12], f[:6], f[26:30], f[30:34], 17,
                                  64, udp)
    msgs = bounded(lambda: dispatched(pin), max_lines=MAX_DNS_LINES)
    assert resumed_packet(msgs) == pin.packet


# --- ICMP --------------------------------------------------------------------

@pytest.mark.parametrize("exchange, opcode", [
    ("router_frag_needed_v4", 14), ("router_packet_too_big_v6", 20)])
@pytest.mark.parametrize("claimed", [0xFFFF, 1500, 100])
def test_2c063b508_need_frag_quote_bounded_by_frame(exchange, opcode,
                                                     claimed):
    """2c063b508 (2026): the ICMP "need frag" / "packet too big" error
    copied as many bytes as the offending packet's IP header claimed, past
    the end of a short packet.  Whatever we send quotes only bytes of the
    packet itself."""
    pin = golden_pin(exchange, opcode)
    frame = bytearray(pin.packet[:14 + 40 + 8])     # a short packet
    if opcode == 14:
        struct.pack_into("!H", frame, 16, claimed)
        pkt.ipv4_set_csum(frame, 14)
    else:
        struct.pack_into("!H", frame, 18, claimed)
    pin.packet = bytes(frame)
    for out in frames_out(dispatched(pin)):
        fl = extract(out)
        quote = out[fl.l4_ofs + 8:fl.l4_end]
        assert pin.packet[14:].startswith(quote)


# --- IPv6 extension headers --------------------------------------------------

SRC6 = bytes.fromhex("20010db8000000000000000000000011")
DST6 = bytes.fromhex("20010db8000000000000000000000001")


@pytest.mark.parametrize("ext", [
    bytes((43, 0xFF, 0, 1)) + bytes(4),         # routing header, len 2048
    bytes((0, 0, 1, 4)) + bytes(4) + bytes((43, 200)),   # cut chain
    bytes((60, 1)) + bytes(6),                   # dest opts claims 16
])
@pytest.mark.parametrize("exchange, opcode", [
    ("router_packet_too_big_v6", 20), ("router_tcp_reset_v6", 11),
    ("nd_ns_vif_nd_na", 3), ("nd_ns_router_nd_na_router", 12),
    ("router_udp_port_unreachable_v6", 10)])
def test_01a596132_ipv6_extension_header_over_read(ext, exchange, opcode):
    """01a596132 / 6fa3409dd: pinctrl_compose_ipv6() walked extension
    headers with no L4 offset set and read past the packet (ASan).  Frames
    whose extension-header lengths overrun the packet are parsed without
    raising, and every frame we send is a fresh, self-consistent IPv6
    packet whose quote (if any) is a prefix of the offending packet."""
    pin = golden_pin(exchange, opcode)
    f = pin.packet
    body = bytes((58,)) + ext[1:] if ext[0] != 0 else ext
    l3 = f[14:54]
    pin.packet = (f[:14] + l3[:4] + struct.pack("!H", len(body) + 8)
                  + bytes((ext[0],)) + l3[7:40] + body
                  + b"\x80\0\0\0\0\0\0\0")
    fl = extract(pin.packet)
    assert fl.l4_ofs is None or fl.l4_ofs <= len(pin.packet)
    for out in frames_out(dispatched(pin)):
        ip6 = pkt.ipv6_parse(out, 14)
        assert ip6 is not None and 14 + 40 + ip6.payload_len == len(out)
        assert ip6.next_header in (6, 58)
        if ip6.next_header == 58 and out[54] < 128:      # an ICMPv6 error
            assert pin.packet[14:].startswith(out[62:])


# --- DHCP --------------------------------------------------------------------

def test_fdp765_unicast_dhcp_discover_answered():
    """FDP-765 / f74b38f77: OVN 2132acb16 (v24.03.0, ovn-org/ovn PR#224)
    made pinctrl refuse a DISCOVER not sent to 255.255.255.255 ("DHCP
    DISCOVER must be Broadcast"), which RFC 2131 §4.4.4 allows; OVN
    v25.03.0 (and 24.03.4, 24.09.1, branch-23.09) answers it again, as
    23.03 always did.  This daemon once copied the refusal.  The DISCOVER
    of the golden exchange sent to the server's address gets the golden
    OFFER: the reply's IP destination is the offer, not the request's."""
    golden = golden_pin("dhcpv4_discover_offer", 2)
    pin = golden_pin("dhcpv4_discover_offer", 2)
    frame = bytearray(pin.packet)
    assert frame[26:34] == bytes(4) + b"\xff" * 4  # 0.0.0.0 -> broadcast
    frame[30:34] = bytes([10, 0, 0, 1])             # the server, unicast
    frame[24:26] = b"\0\0"
    pkt.ipv4_set_csum(frame, 14)
    pin.packet = bytes(frame)
    offer = resumed_packet(dispatched(pin))
    assert offer != pin.packet
    assert offer == resumed_packet(dispatched(golden))


# --- reject ping-pong --------------------------------------------------------

def test_bz1934011_reject_ping_pong_between_acls():
    """BZ1934011 / bcd9a8fb1: two reject ACLs answered each other's
    unreachable / RST forever.  Feed each opcode's own answer back to it:
    the second round produces nothing."""
    fed_back = 0
    for exchange in goldens.exchange_names("acl_reject_"):
        for rec in goldens.iter_of_messages(goldens.load_exchange(exchange),
                                            "NXT_PACKET_IN2", "s2c"):
            pin = decode_packet_in2(bytes.fromhex(rec["hex"]))
            first = frames_out(dispatched(pin))
            for answer in first:
                again = decode_packet_in2(bytes.fromhex(rec["hex"]))
                again.packet = answer
                assert frames_out(dispatched(again)) == [], exchange
                fed_back += 1
    assert fed_back >= 7        # every recorded reject answer was tried


# --- found by the fuzzer -----------------------------------------------------

def test_reply_over_64k_does_not_escape_dispatch():
    """Found by test_fuzz_decoders: a legal 65 520-byte packet-in (icmp
    with 64 KiB of nested actions and all 16 registers in its metadata)
    gets a 65 560-byte PACKET_OUT; building it raises struct.error out of
    dispatch.process_packet_in into the handler loop.  Expected: the reply
    is dropped and counted, nothing raises."""
    pin = golden_pin("router_proto_unreachable_v4", 10)
    for reg in range(16):
        pin.metadata.set_reg_bit(reg, 0, True)
    output = struct.pack("!HHIH6x", 0, 16, 0xFFFFFFFD, 0)    # OFPAT_OUTPUT
    pin.userdata += output * ((0xFFFF - wire_len(pin)) // 16)
    assert wire_len(pin) <= 0xFFFF          # a packet-in OVS can send
    n = coverage.get("pinctrl_drop_bad_reply")
    msgs = dispatch.process_packet_in(pin, dispatch.Env())
    assert all(len(m) <= 0xFFFF for m in msgs)
    assert coverage.get("pinctrl_drop_bad_reply") == n + 1


# An OXM_OF_PKT_REG0 ("xreg0") entry carrying 16 value bytes instead of 8:
# Metadata.parse accepts any length, Metadata.regs() and set_reg_bit()
# assume the field's width.  OVS never sends it; a strict decoder must
# still not let it raise.
WIDE_XREG0 = bytes.fromhex("80010010") + b"\xff" * 16 + \
    bytes.fromhex("800004080000000000000001")


def test_wide_register_oxm_is_refused():
    """Found by test_fuzz_decoders (metadata mutations): a 16-byte xreg0
    made set_reg_bit raise out of dispatch (the paused DHCP request was
    never resumed) and put_nd overflow in xxreg0().  Metadata.parse now
    refuses a field of the wrong width, so the packet-in is dropped as
    malformed (pinctrl_drop_bad_packet_in) before any handler runs."""
    from pinctrl.openflow.oxm import Metadata, OxmError
    with pytest.raises(OxmError):
        Metadata.parse(WIDE_XREG0)
    with pytest.raises(OxmError):
        Metadata.parse(bytes.fromhex("80000408") + bytes(4))   # 4-byte md
