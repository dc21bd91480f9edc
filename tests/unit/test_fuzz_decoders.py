"""Hostile input (issue 9): hypothesis fuzzing of every decoder.

Seeds are the NXT_PACKET_IN2 messages real OVN 23.03 sent (the golden
exchanges); each test mutates one layer (the OpenFlow message, the OXM
metadata, the userdata of every registered opcode, the frame) or builds
structured hostile input (DHCPv4/v6 options, DNS names with compression
pointers and loops, IPv6 extension-header chains, ICMP quoting lengths).

Properties checked on every example (check_dispatch):
  * nothing escapes dispatch.process_packet_in, and the exception barrier
    inside it is not needed either (pinctrl_action_exception stays put:
    a caught exception is still a bug);
  * a paused packet-in gets exactly one NXT_RESUME echoing its
    continuation, an unpaused one none;
  * every message we would send parses back (OpenFlow lengths, NXT_RESUME
    properties, OFPT_PACKET_OUT), and every newly built frame in it has
    consistent IPv4/IPv6 lengths and valid checksums;
  * the handler -> main tables and the buffered packets stay within caps.

Profiles: PINCTRL_FUZZ=ci (default: few examples, derandomized, the file
runs in well under 30 s) or PINCTRL_FUZZ=long (`make fuzz`;
PINCTRL_FUZZ_EXAMPLES sets the examples per test, default 5000).
"""

from __future__ import annotations

import os
import struct

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from os_ken.ofproto import nicira_ext

from pinctrl.actions import REGISTRY, dhcpv4
from pinctrl.db import dns_cache
from pinctrl.handler import buffered_packets, dispatch
from pinctrl.openflow.ofactions import actions_well_formed
from pinctrl.openflow.oxm import Metadata, OxmError, parse_result_dest
from pinctrl.openflow.packet_in import (
    OFPR_ACTION,
    PacketIn,
    PacketInError,
    decode_packet_in2,
)
from pinctrl.packet import headers as pkt
from pinctrl.packet.flow import extract
from pinctrl.shared import handover
from pinctrl.shared.state import SharedState
from pinctrl.support import coverage
from testbed import golden as goldens

# --- profiles ----------------------------------------------------------------

_COMMON = dict(deadline=None, database=None, print_blob=True,
               suppress_health_check=[HealthCheck.too_slow,
                                      HealthCheck.data_too_large,
                                      HealthCheck.filter_too_much])
settings.register_profile("pinctrl-ci", max_examples=40, derandomize=True,
                          **_COMMON)
settings.register_profile(
    "pinctrl-long", derandomize=False,
    max_examples=int(os.environ.get("PINCTRL_FUZZ_EXAMPLES", "5000")),
    **_COMMON)
FUZZ = settings.get_profile(
    "pinctrl-long" if os.environ.get("PINCTRL_FUZZ") == "long"
    else "pinctrl-ci")

# --- seeds -------------------------------------------------------------------

NXT_RESUME = 28
OFPT_EXPERIMENTER = 4
OFPT_PACKET_OUT = 13
OFP15_VERSION = 6
MAX_OF_LEN = 0xFFFF
P_PACKET = nicira_ext.NXPINT_PACKET
P_METADATA = nicira_ext.NXPINT_METADATA
P_USERDATA = nicira_ext.NXPINT_USERDATA


def _seeds() -> list[tuple[str, bytes]]:
    out = []
    for name in goldens.exchange_names():
        ex = goldens.load_exchange(name)
        for rec in goldens.iter_of_messages(ex, "NXT_PACKET_IN2", "s2c"):
            out.append((name, bytes.fromhex(rec["hex"])))
    return out


SEEDS = _seeds()
BY_OPCODE: dict[int, list[bytes]] = {}
for _name, _msg in SEEDS:
    BY_OPCODE.setdefault(decode_packet_in2(_msg).opcode, []).append(_msg)

# One environment per test module (each SharedState holds two pipes):
# state accumulates across examples, which is what the caps are about.
SHARED = SharedState()
# Every table at OVN's cap, which the checks below assume (the daemon
# sizes put_mac_bindings larger: shared/state.MAC_BINDING_HANDOVER_CAP).
SHARED.put_mac_bindings.cap = handover.MAX_ENTRIES
SHARED.set_dns_cache(dns_cache.build_dns_cache([
    ("fuzz", {"vm1.ovn.test": "10.0.0.11 2001:db8::11",
              "11.0.0.10.in-addr.arpa": "vm1.ovn.test"}, [1])]))
ENV = dispatch.Env(shared=SHARED)
ENV.buffered_packets = buffered_packets.BufferedPackets(ENV.next_xid, SHARED)
TABLES = ("put_mac_bindings", "put_fdbs", "controller_events",
          "put_vport_bindings", "ports_to_activate")


# --- mutation strategies -----------------------------------------------------

_BOUNDARY16 = (0, 1, 3, 4, 7, 8, 15, 16, 0x7F, 0x80, 0xFF, 0x100, 0x7FFF,
               0xFFFE, 0xFFFF)


@st.composite
def mutated(draw, data: bytes, keep: int = 0) -> bytes:
    """'data' after 1-4 edits, its first 'keep' bytes untouched: bit flips,
    random bytes, 16-bit boundary values (length fields), truncation,
    insertion, deletion."""
    b = bytearray(data)
    for _ in range(draw(st.integers(1, 4))):
        kind = draw(st.sampled_from(
            ("flip", "byte", "u16", "trunc", "insert", "delete")))
        n = len(b)
        if kind == "insert":
            at = draw(st.integers(keep, n))
            b[at:at] = draw(st.binary(min_size=1, max_size=64))
            continue
        if n <= keep:
            continue
        at = draw(st.integers(keep, n - 1))
        if kind == "flip":
            b[at] ^= 1 << draw(st.integers(0, 7))
        elif kind == "byte":
            b[at] = draw(st.integers(0, 255))
        elif kind == "u16" and at + 2 <= n:
            struct.pack_into("!H", b, at, draw(st.sampled_from(
                _BOUNDARY16 + (n, n - at, max(n - 1, 0)))))
        elif kind == "trunc":
            del b[at:]
        elif kind == "delete":
            del b[at:at + draw(st.integers(1, 16))]
    return bytes(b)


def _prop(ptype: int, payload: bytes) -> bytes:
    """One NXT_PACKET_IN2 property, padded to 8 (docs/wire-formats.md, Properties)."""
    raw = struct.pack("!HH", ptype, 4 + len(payload)) + payload
    return raw + bytes(-len(raw) % 8)


def _props(msg: bytes) -> list[tuple[int, bytes]]:
    """(type, payload) of every property of a well-formed seed."""
    out, ofs = [], 16
    while ofs < len(msg):
        ptype, plen = struct.unpack_from("!HH", msg, ofs)
        out.append((ptype, msg[ofs + 4:ofs + plen]))
        ofs += (plen + 7) & ~7
    return out


def rebuild(msg: bytes, edit: dict[int, bytes]) -> bytes:
    """The seed 'msg' with the payload of property types in 'edit'
    replaced, every length field consistent."""
    body = b"".join(_prop(t, edit.get(t, p)) for t, p in _props(msg))
    return (msg[:2] + struct.pack("!H", 16 + len(body)) + msg[4:16] + body)


# --- the properties ----------------------------------------------------------

def _csum_ok(data: bytes, initial: int = 0) -> bool:
    return pkt.csum(data, initial) == 0


def _udp_len_ok(seg: bytes) -> bool:
    return len(seg) >= 8 and struct.unpack_from("!H", seg, 4)[0] == len(seg)


def frame_errors(frame: bytes, sums: bool = True) -> list[str]:
    """What is wrong with a frame we built: IPv4/IPv6 lengths beyond the
    frame, UDP length, and (if 'sums') header and L4 checksums (UDP
    checksum 0 allowed over IPv4)."""
    eth = pkt.eth_parse(frame)
    if eth is None:
        return ["no Ethernet header"]
    l3, bad = eth.l3_ofs, []
    if eth.ethertype == pkt.ETH_TYPE_IP:
        ip = pkt.ipv4_parse(frame, l3)
        if ip is None:
            return ["bad IPv4 lengths"]
        seg = frame[l3 + ip.ihl:l3 + ip.total_len]
        pseudo = pkt.pseudo_sum_ipv4(ip.src, ip.dst, ip.proto, len(seg))
        if ip.proto == 17 and not _udp_len_ok(seg):
            bad.append("UDP length")
        if sums and not _csum_ok(frame[l3:l3 + ip.ihl]):
            bad.append("IPv4 header checksum")
        if sums and ip.proto in (1, 6, 17) and not (
                _csum_ok(seg, 0 if ip.proto == 1 else pseudo)
                or (ip.proto == 17 and seg[6:8] == b"\0\0")):
            bad.append(f"IPv4 proto {ip.proto} checksum")
    elif eth.ethertype == pkt.ETH_TYPE_IPV6:
        ip6 = pkt.ipv6_parse(frame, l3)
        if ip6 is None:
            return ["bad IPv6 payload length"]
        seg = frame[l3 + 40:l3 + 40 + ip6.payload_len]
        nh = ip6.next_header
        if nh == 17 and not _udp_len_ok(seg):
            bad.append("UDP length")
        if sums and nh in (6, 17, 58) and not _csum_ok(
                seg, pkt.pseudo_sum_ipv6(ip6.src, ip6.dst, nh, len(seg))):
            bad.append(f"IPv6 next header {nh} checksum")
    return bad


def check_frame(frame: bytes, request: bytes) -> None:
    """A reply frame must be well formed; its checksums must be right
    whenever the request's were (the frag-MTU opcodes patch checksums
    incrementally, which keeps a bad one bad, as OVS does)."""
    errors = frame_errors(frame, sums=not frame_errors(request))
    assert not errors, f"{errors}: {frame.hex()}"


def check_message(msg: bytes, pin: PacketIn, continuation) -> bool:
    """One message we would send; returns whether it is an NXT_RESUME."""
    assert len(msg) <= MAX_OF_LEN
    version, mtype, length = struct.unpack_from("!BBH", msg, 0)
    assert (version, length) == (OFP15_VERSION, len(msg))
    if mtype == OFPT_EXPERIMENTER:
        assert struct.unpack_from("!I", msg, 12)[0] == NXT_RESUME
        back = decode_packet_in2(msg)        # same property layout
        assert back.continuation == continuation
        Metadata.parse(back.metadata.serialize())
        if back.packet != pin.packet:
            check_frame(back.packet, pin.packet)
        return True
    assert mtype == OFPT_PACKET_OUT, mtype
    frame = packet_out_frame(msg)
    if frame != pin.packet:
        check_frame(frame, pin.packet)
    return False


def packet_out_frame(msg: bytes) -> bytes:
    """The frame of an OpenFlow 1.5 OFPT_PACKET_OUT, checking its layout
    (buffer id, match, a well-formed action list) on the way."""
    buffer_id, actions_len = struct.unpack_from("!IH", msg, 8)
    assert buffer_id == 0xFFFFFFFF
    match_len = struct.unpack_from("!H", msg, 18)[0]
    actions = 16 + ((match_len + 7) & ~7)
    assert actions + actions_len <= len(msg)
    assert actions_well_formed(msg[actions:actions + actions_len])
    return msg[actions + actions_len:]


def check_caps() -> None:
    for t in TABLES:
        assert len(getattr(SHARED, t)) <= handover.MAX_ENTRIES, t
    bp = ENV.buffered_packets
    assert len(bp._map) <= buffered_packets.MAX_KEYS
    assert all(len(q.frames) <= buffered_packets.MAX_FRAMES_PER_KEY
               for q in bp._map.values())


def check_dispatch(pin: PacketIn) -> list[bytes]:
    """Run one decoded packet-in through the dispatcher with every
    property of the module docstring checked."""
    continuation = pin.continuation
    act = None
    if pin.reason == OFPR_ACTION and len(pin.userdata) >= 8:
        act = REGISTRY.get(pin.opcode)
    exc = coverage.get("pinctrl_action_exception")
    msgs = dispatch.process_packet_in(pin, ENV)
    assert coverage.get("pinctrl_action_exception") == exc, \
        "the exception barrier caught a handler exception (see the log)"
    resumes = sum(check_message(m, pin, continuation) for m in msgs)
    paused = act is not None and act.pause and continuation is not None
    assert resumes == int(paused)
    check_caps()
    return msgs


def check_wire(msg: bytes) -> list[bytes]:
    """A whole NXT_PACKET_IN2 as the handler thread gets it."""
    try:
        pin = decode_packet_in2(msg)
    except PacketInError:
        return []
    return check_dispatch(pin)


# --- 1. the OpenFlow message and its metadata --------------------------------

@FUZZ
@given(st.data())
def test_packet_in2_raw_mutations(data):
    """Any byte-level damage to a recorded NXT_PACKET_IN2 (lengths,
    truncation, junk) is PacketInError or a correct dispatch."""
    _, seed = data.draw(st.sampled_from(SEEDS))
    check_wire(data.draw(mutated(seed)))


@FUZZ
@given(st.data())
def test_packet_in2_property_lengths(data):
    """Property headers lying about their lengths, message length field
    inconsistent with the bytes."""
    _, seed = data.draw(st.sampled_from(SEEDS))
    b = bytearray(seed)
    offsets, ofs = [], 16
    while ofs + 4 <= len(b):
        offsets.append(ofs)
        ofs += (struct.unpack_from("!H", b, ofs + 2)[0] + 7) & ~7
    at = data.draw(st.sampled_from(offsets))
    struct.pack_into("!H", b, at + 2, data.draw(st.integers(0, 0xFFFF)))
    if data.draw(st.booleans()):
        struct.pack_into("!H", b, 2, data.draw(st.integers(0, 0xFFFF)))
    check_wire(bytes(b))


@FUZZ
@given(st.data())
def test_metadata_mutations(data):
    """The METADATA property (OXM TLVs) mutated, lengths kept consistent
    at the property level: OxmError or a correct dispatch; whatever
    parses serializes back to the same bytes."""
    _, seed = data.draw(st.sampled_from(SEEDS))
    md = dict(_props(seed))[P_METADATA]
    raw = data.draw(mutated(md))
    try:
        assert Metadata.parse(raw).serialize() == raw
    except OxmError:
        pass
    check_wire(rebuild(seed, {P_METADATA: raw}))


@FUZZ
@given(st.binary(max_size=24))
def test_result_destination(args):
    """parse_result_dest: OxmError or a register bit within range."""
    try:
        dest, rest = parse_result_dest(args)
    except OxmError:
        return
    assert 0 <= dest.reg < 16 and 0 <= dest.bit < 32
    assert rest == args[8:]


# --- 2. userdata and frames per opcode ---------------------------------------

def _pin_for(opcode: int, seed: bytes) -> PacketIn:
    pin = decode_packet_in2(seed)
    pin.userdata = struct.pack("!I", opcode) + pin.userdata[4:]
    return pin


@FUZZ
@pytest.mark.parametrize("opcode", sorted(REGISTRY))
@given(data=st.data())
def test_userdata_per_opcode(opcode, data):
    """Every registered opcode, with its own recorded packet-ins (or any
    other's), its userdata after the header mutated."""
    seed = data.draw(st.sampled_from(BY_OPCODE.get(opcode) or
                                     [m for _, m in SEEDS]))
    pin = _pin_for(opcode, seed)
    pin.userdata = pin.userdata[:8] + data.draw(mutated(pin.args))
    check_dispatch(pin)


@FUZZ
@pytest.mark.parametrize("opcode", sorted(REGISTRY))
@given(data=st.data())
def test_frame_per_opcode(opcode, data):
    """Every registered opcode with its recorded userdata and a mutated
    frame, or another opcode's frame (type confusion)."""
    own = BY_OPCODE.get(opcode) or [m for _, m in SEEDS]
    pin = _pin_for(opcode, data.draw(st.sampled_from(own)))
    _, other = data.draw(st.sampled_from(SEEDS))
    frame = data.draw(st.sampled_from((pin.packet,
                                       decode_packet_in2(other).packet)))
    pin.packet = data.draw(mutated(frame))
    check_dispatch(pin)


@FUZZ
@given(st.data())
def test_biggest_packet_in_reply_fits(data):
    """A packet-in as big as OpenFlow allows (64 KiB of nested actions or
    frame, all 16 registers in the metadata): whatever we answer must
    still be one OpenFlow message (≤ 65535 bytes)."""
    _, seed = data.draw(st.sampled_from(SEEDS))
    props = dict(_props(seed))
    md = Metadata.parse(props[P_METADATA])
    for k in range(8):
        md.set_reg_bit(2 * k, 0, True)
        md.set_reg_bit(2 * k + 1, 0, True)
    grow = data.draw(st.sampled_from((P_USERDATA, P_PACKET)))
    base = rebuild(seed, {P_METADATA: md.serialize()})
    room = (MAX_OF_LEN - len(base)) & ~7
    fill = data.draw(st.sampled_from((room, room - 8, room // 2)))
    # 16-byte OFPAT_OUTPUT actions keep a nested action list well formed.
    filler = struct.pack("!HHIH6x", 0, 16, 0xFFFFFFFD, 0) * (fill // 16)
    msg = rebuild(base, {P_USERDATA: props[P_USERDATA] + filler}
                  if grow == P_USERDATA
                  else {P_PACKET: props[P_PACKET] + bytes(fill)})
    if len(msg) <= MAX_OF_LEN:
        check_wire(msg)


# --- 3. structured hostile input ---------------------------------------------

MAC_C = bytes.fromhex("505400000001")
MAC_S = bytes.fromhex("00000000ff01")
IP_C = bytes([10, 0, 0, 11])
SRC6 = bytes.fromhex("fe80000000000000525400fffe000001")
DST6 = bytes.fromhex("ff020000000000000000000000010002")


def _udp4(sport: int, dport: int, payload: bytes, src: bytes = IP_C,
          dst: bytes = b"\xff" * 4) -> bytes:
    udp = struct.pack("!HHHH", sport, dport, 8 + len(payload), 0) + payload
    return pkt.compose_ipv4(MAC_C, b"\xff" * 6, src, dst, 17, 64, udp)


def _udp6(sport: int, dport: int, payload: bytes, ext: bytes = b"",
          first: int = 17) -> bytes:
    udp = struct.pack("!HHHH", sport, dport, 8 + len(payload), 0) + payload
    return pkt.compose_ipv6(MAC_C, b"\x33\x33\0\1\0\2", SRC6, DST6, first,
                            64, ext + udp)


def data_seed(opcode: int) -> bytes:
    """A recorded packet-in of 'opcode' (of icmp when none was recorded)."""
    return (BY_OPCODE.get(opcode) or BY_OPCODE[10])[0]


def _paused_pin(opcode: int, frame: bytes) -> PacketIn:
    pin = decode_packet_in2(BY_OPCODE[opcode][0])
    pin.packet = frame
    return pin


dhcp_options = st.lists(st.one_of(
    st.tuples(st.integers(0, 255), st.binary(max_size=40)).map(
        lambda t: bytes((t[0], len(t[1]))) + t[1]),
    st.sampled_from((b"\0", b"\xff", b"\x35", b"\x35\x01", b"\x35\x05\x01",
                     b"\x32\x04", b"\xaf\x00", b"\x35\x01\x01"))),
    max_size=12).map(b"".join)


@FUZZ
@given(mt=st.integers(0, 9), opts=dhcp_options, tail=st.binary(max_size=8),
       op=st.sampled_from((1, 1, 2)))
def test_dhcpv4_options(mt, opts, tail, op):
    """BOOTP + magic cookie + random option TLVs (message type, pad, end,
    lengths past the end) through put_dhcp_opts."""
    bootp = struct.pack("!BBBB", op, 1, 6, 0) + bytes(24) + MAC_C + \
        bytes(10 + 192) + dhcpv4.MAGIC_COOKIE
    payload = bootp + bytes((53, 1, mt)) + opts + tail
    check_dispatch(_paused_pin(2, _udp4(68, 67, payload)))


dhcpv6_options = st.lists(st.one_of(
    st.tuples(st.sampled_from((1, 2, 3, 5, 6, 8, 13, 14, 23, 24, 39,
                               0xFFFF)), st.binary(max_size=40)).map(
        lambda t: struct.pack("!HH", t[0], len(t[1])) + t[1]),
    st.tuples(st.sampled_from((1, 3)), st.integers(0, 0xFFFF)).map(
        lambda t: struct.pack("!HH", *t)),          # header only
    st.binary(min_size=1, max_size=3)),              # odd alignment
    max_size=8).map(b"".join)


@FUZZ
@given(mt=st.integers(0, 13), opts=dhcpv6_options,
       ext=st.sampled_from((b"", bytes((17, 0)) + bytes(6))))
def test_dhcpv6_options(mt, opts, ext):
    """DHCPv6 messages with random, truncated and unaligned options (OVN
    9b5cf1b7a), optionally behind a hop-by-hop header."""
    payload = bytes((mt,)) + b"\x12\x34\x56" + opts
    frame = _udp6(546, 547, payload, ext, 0 if ext else 17)
    check_dispatch(_paused_pin(5, frame))


label = st.one_of(
    st.binary(min_size=1, max_size=63).map(lambda b: bytes((len(b),)) + b),
    st.integers(0, 0x3FFF).map(lambda p: struct.pack("!H", 0xC000 | p)),
    st.sampled_from((b"\xc0\x0c", b"\xc0\x0e", b"\x40", b"\x80\x01", b"\x3f",
                     b"\x01", b"\x00")))


@FUZZ
@given(labels=st.lists(label, max_size=40), qd=st.integers(0, 3),
       counts=st.tuples(*[st.integers(0, 2)] * 3), tail=st.binary(max_size=8),
       v6=st.booleans())
def test_dns_names(labels, qd, counts, tail, v6):
    """DNS questions made of labels, compression pointers (including one
    to itself: the BZ1740335 loop), reserved label types and missing
    terminators."""
    qname = b"".join(labels)
    query = (struct.pack("!HHHHHH", 0x1001, 0x0100, qd, *counts) + qname
             + b"\0\0\x01\0\x01" + tail)
    frame = (_udp6(33333, 53, query) if v6
             else _udp4(33333, 53, query, dst=bytes([10, 0, 0, 1])))
    check_dispatch(_paused_pin(6, frame))


ext_header = st.tuples(st.sampled_from((0, 43, 44, 60, 51, 50, 59)),
                       st.integers(0, 4), st.binary(max_size=40))


def _chain(exts, last: int) -> tuple[int, bytes]:
    """An IPv6 extension-header chain whose length bytes may lie."""
    first, out = last, b""
    for typ, hlen, body in reversed(exts):
        out = bytes((first, hlen)) + body + out
        first = typ
    return first, out


@FUZZ
@given(exts=st.lists(ext_header, max_size=4),
       icmp_type=st.sampled_from((133, 135, 136, 128, 1, 2, 3)),
       body=st.binary(max_size=48),
       opcode=st.sampled_from((3, 5, 6, 8, 9, 10, 12, 20, 21, 22, 4, 0)))
def test_ipv6_extension_headers_and_nd(exts, icmp_type, body, opcode):
    """ICMPv6 (RS, NS, NA, echo, errors) behind extension-header chains
    whose lengths may overrun the packet (OVN 01a596132, 6fa3409dd),
    to every IPv6 opcode."""
    icmp = bytes((icmp_type, 0, 0, 0)) + body
    nxt, ext = _chain(exts, 58)
    frame = pkt.compose_ipv6(MAC_C, b"\x33\x33\0\0\0\2", SRC6, DST6, nxt,
                             255, ext + icmp)
    pin = decode_packet_in2(data_seed(opcode))
    pin.packet = frame
    check_dispatch(pin)


@FUZZ
@given(ihl=st.integers(0, 15), tot=st.integers(0, 0xFFFF),
       proto=st.sampled_from((1, 6, 17, 132, 0)),
       body=st.binary(max_size=700),
       opcode=st.sampled_from((10, 14, 22, 11, 24, 13)))
def test_icmp_quote_never_beyond_the_frame(ihl, tot, proto, body, opcode):
    """IPv4 frames whose IHL and total length lie (OVN 2c063b508: the
    quote length was taken from the IP header): every ICMP error we send
    quotes only bytes of the offending packet, from its IP header on."""
    ip = bytearray(struct.pack("!BBHHHBBH4s4s", 0x40 | ihl, 0, tot, 0, 0,
                               64, proto, 0, IP_C, bytes([10, 0, 0, 1])))
    pkt.ipv4_set_csum(ip, 0)
    frame = MAC_C + MAC_S + b"\x08\x00" + bytes(ip) + body
    pin = decode_packet_in2(data_seed(opcode))
    pin.packet = frame
    for msg in check_dispatch(pin):
        if msg[1] != OFPT_PACKET_OUT:
            continue
        out = packet_out_frame(msg)
        fl = extract(out)
        if fl.nw_proto == 1 and fl.l4_ofs is not None:
            quote = out[fl.l4_ofs + 8:fl.l4_end]
            assert frame[14:].startswith(quote), "quoted bytes not ours"


@FUZZ
@given(st.binary(max_size=80), st.sampled_from((0, 3, 9, 12, 1, 17, 26)))
def test_arp_and_random_frames(frame, opcode):
    """Random frames, and random bytes after an ARP/RARP ethertype, to the
    ARP/ND and learning opcodes."""
    for f in (frame, MAC_C + MAC_S + b"\x08\x06" + frame,
              MAC_C + MAC_S + b"\x80\x35" + frame):
        pin = decode_packet_in2(data_seed(opcode))
        pin.packet = f
        check_dispatch(pin)


# --- 4. memory bounds under a flood of distinct keys -------------------------

def test_learning_tables_and_buffers_stay_capped():
    """Thousands of distinct neighbours, FDB MACs, vport claims and
    buffered next hops: every table stops at its cap and counts drops."""
    drops = {t: getattr(SHARED, t).drop_counter for t in TABLES}
    before = {t: coverage.get(c) for t, c in drops.items()}
    bp_before = coverage.get(buffered_packets.C_MAP_FULL)
    n = handover.MAX_ENTRIES + 300
    for opcode in (0, 1, 9, 17, 25, 26):
        seed = BY_OPCODE[opcode][0]
        for i in range(n):
            pin = decode_packet_in2(seed)
            # Distinct keys: reg0 (IP / next hop), reg14/15 (ports), MAC.
            for bit in range(12):
                for reg in (0, 14, 15):
                    pin.metadata.set_reg_bit(reg, bit, bool(i >> bit & 1))
            pin.packet = pin.packet[:6] + b"\x02\0" + i.to_bytes(4, "big") \
                + pin.packet[12:]
            if opcode == 17:        # the virtual port key is the userdata
                pin.userdata = pin.userdata[:8] + i.to_bytes(4, "big")
            check_dispatch(pin)
    for t in ("put_mac_bindings", "put_fdbs", "put_vport_bindings",
              "ports_to_activate"):
        assert len(getattr(SHARED, t)) == handover.MAX_ENTRIES, t
        assert coverage.get(drops[t]) > before[t], t
    assert len(ENV.buffered_packets._map) == buffered_packets.MAX_KEYS
    assert coverage.get(buffered_packets.C_MAP_FULL) > bp_before


# --- 5. IGMP / MLD snooping (issue 20) ---------------------------------------

def _with_csum(body: bytes, csum_ofs: int, initial: int = 0) -> bytes:
    b = bytearray(body)
    if len(b) >= csum_ofs + 2:
        b[csum_ofs:csum_ofs + 2] = b"\0\0"
        struct.pack_into("!H", b, csum_ofs, pkt.csum(b, initial))
    return bytes(b)


mcast_record = st.tuples(st.integers(0, 8), st.integers(0, 8),
                         st.integers(0, 0xFFFF), st.binary(max_size=40))


@FUZZ
@given(mtype=st.sampled_from((0x11, 0x12, 0x16, 0x17, 0x22, 0x13, 0)),
       ngrp=st.integers(0, 0xFFFF), records=st.lists(mcast_record,
                                                     max_size=6),
       cut=st.integers(0, 64), ihl=st.sampled_from((5, 6, 15)))
def test_igmp_reports(mtype, ngrp, records, cut, ihl):
    """IGMPv1/v2/v3 with lying group counts, source counts, aux lengths,
    unknown record types, truncation and IP options, checksum valid, to
    the igmp action."""
    body = struct.pack("!BBHHH", mtype, 0, 0, 0, ngrp) + b"".join(
        struct.pack("!BBH", t, aux, n) + bytes([239, 1, 1, t]) + tail
        for t, aux, n, tail in records)
    body = _with_csum(body[:max(len(body) - cut, 0)], 2)
    ip = bytearray(struct.pack("!BBHHHBBH4s4s", 0x40 | ihl, 0,
                               4 * ihl + len(body), 0, 0, 1, 2, 0, IP_C,
                               bytes([224, 0, 0, 22])) + bytes(4 * ihl - 20))
    pkt.ipv4_set_csum(ip, 0, 4 * ihl)
    pin = decode_packet_in2(data_seed(16))
    pin.packet = MAC_C + MAC_S + b"\x08\x00" + bytes(ip) + body
    check_dispatch(pin)


@FUZZ
@given(mtype=st.sampled_from((130, 131, 132, 143, 128)),
       length=st.integers(0, 64), ngrp=st.integers(0, 0xFFFF),
       records=st.lists(mcast_record, max_size=4),
       exts=st.lists(ext_header, max_size=3))
def test_mld_reports(mtype, length, ngrp, records, exts):
    """MLDv1 of every length around the 24 bytes of a report (the 75-byte
    frame that crashes 23.03.1 among them), MLDv2 with lying counts,
    behind extension-header chains, checksum valid."""
    body = struct.pack("!BBHHH", mtype, 0, 0, 0, ngrp) + b"".join(
        struct.pack("!BBH", t, aux, n) + b"\xff\x0e" + bytes(14) + tail
        for t, aux, n, tail in records)
    body = (body + bytes(max(0, length - len(body))))[:max(length, 8)]
    body = _with_csum(body, 2, pkt.pseudo_sum_ipv6(SRC6, DST6, 58,
                                                   len(body)))
    nxt, ext = _chain(exts, 58)
    pin = decode_packet_in2(data_seed(16))
    pin.packet = pkt.compose_ipv6(MAC_C, b"\x33\x33\0\0\0\x16", SRC6, DST6,
                                  nxt, 1, ext + body)
    check_dispatch(pin)


# --- 5. BFD control packets (issue 14) ---------------------------------------

from pinctrl.handler.bfd_job import BfdJob  # noqa: E402
from pinctrl.shared.records import BfdConfig, bfd_key, ipv4_mapped  # noqa: E402

BFD_DISC = 822484385
BFD_CFG = BfdConfig("lr0-public", 49152, bytes.fromhex("00000000ff03"),
                    ipv4_mapped(0xAC100001), ipv4_mapped(0xAC1000FD),
                    BFD_DISC, 1000, 1000, 5, 4, 3, False, frozenset({8}))
BFD_JOB = BfdJob(lambda: (1, {bfd_key("172.16.0.253", 49152): BFD_CFG}),
                 SHARED.bfd_status, SHARED.notify_main)
BFD_JOB.run(ENV, 0)
ENV.bfd = BFD_JOB

bfd_payloads = st.one_of(
    st.binary(max_size=60),
    st.tuples(st.integers(0, 255), st.integers(0, 255), st.integers(0, 255),
              st.sampled_from((0, 23, 24, 25, 48, 255)),
              st.sampled_from((0, 1, BFD_DISC, 0xFFFFFFFF)),
              st.sampled_from((0, 1, BFD_DISC, 0xFFFFFFFF)),
              st.integers(0, 0xFFFFFFFF), st.integers(0, 0xFFFFFFFF),
              st.binary(max_size=30)).map(
        lambda t: struct.pack("!BBBBIIII", *t[:8]) + bytes(4) + t[8]))


@FUZZ
@given(payload=bfd_payloads, udp_len=st.sampled_from((None, 0, 8, 31, 33,
                                                      0xFFFF)),
       src=st.sampled_from((0xAC1000FD, 0xAC100032)))
def test_bfd_control_packets(payload, udp_len, src):
    """handle_bfd_msg on random and structured control packets from the
    session's peer or elsewhere, UDP lengths lying both ways: dropped and
    counted, or run through the session (a Poll answered by one
    well-formed Final)."""
    length = 8 + len(payload) if udp_len is None else udp_len
    udp = struct.pack("!HHHH", 49152, 3784, length, 0) + payload
    frame = pkt.compose_ipv4(bytes.fromhex("00000000fefd"),
                             bytes.fromhex("00000000ff03"),
                             src.to_bytes(4, "big"), bytes([172, 16, 0, 1]),
                             17, 255, udp)
    pin = decode_packet_in2(data_seed(23))
    pin.packet = frame
    check_dispatch(pin)


# --- 6. DHCPv6 prefix delegation (issue 14) ----------------------------------

from pinctrl.handler.pd_job import PdJob  # noqa: E402
from pinctrl.shared.records import PdConfig  # noqa: E402

PD_GW6 = bytes.fromhex("20010db800ff00000000000000000001")
PD_JOB = PdJob(lambda: (1, {"lr0-sw1": PdConfig(
    PD_GW6, bytes.fromhex("00000000ff03"), bytes.fromhex("00000000ff02"),
    3, 3, 4, 3, 42037, None, 0)}), SHARED.pd_prefixes, SHARED.notify_main)
PD_JOB.run(ENV, 0)
PD_JOB.clients["lr0-sw1"].aid = 42037
ENV.prefixd = PD_JOB

pd_options = st.lists(st.one_of(
    st.tuples(st.sampled_from((1, 2, 13, 25, 26, 0xFFFF)),
              st.binary(max_size=50)).map(
        lambda t: struct.pack("!HH", t[0], len(t[1])) + t[1]),
    st.tuples(st.integers(0, 0xFFFFFFFF), st.integers(0, 0xFFFFFFFF),
              st.integers(0, 0xFFFFFFFF), st.binary(max_size=40)).map(
        lambda t: struct.pack("!HHIII", 25, 12 + len(t[3]), 42037, *t[1:3])
        + t[3]),
    st.binary(min_size=1, max_size=3)), max_size=6).map(b"".join)


@FUZZ
@given(mt=st.sampled_from((2, 7, 7, 2, 0, 13)), opts=pd_options,
       udp_len=st.sampled_from((None, 0, 11, 0xFFFF)))
def test_prefix_delegation_messages(mt, opts, udp_len):
    """ADVERTISE / REPLY with random, truncated and lying IA_PD options
    to our client's address: dropped and counted, or one well-formed
    REQUEST / a prefix handed over."""
    payload = bytes((mt, 0, 0, 0)) + opts
    length = 8 + len(payload) if udp_len is None else udp_len
    udp = struct.pack("!HHHH", 547, 546, length, 0) + payload
    frame = pkt.compose_ipv6(bytes.fromhex("00000000fefe"),
                             bytes.fromhex("00000000ff03"),
                             bytes.fromhex("fe80000000000000020000fffe00fefe"),
                             PD_GW6, 17, 64, udp)
    pin = decode_packet_in2(data_seed(19))
    pin.packet = frame
    check_dispatch(pin)
    PD_JOB.clients["lr0-sw1"].state = "solicit"


# --- 6. service-monitor replies (issue 20) -----------------------------------

IP_SVC = bytes([10, 0, 1, 11])


def _svc_env():
    """An environment whose SvcMonitorJob runs a TCP and a UDP monitor
    of sw1-p4 (10.0.1.11) and has sent their first probes."""
    from pinctrl.handler.svc_monitor_job import SvcMonitorJob
    from pinctrl.shared.records import IPV4_MAPPED_PREFIX, SvcMonitorConfig
    shared = SharedState()
    base = dict(dp_key=2, port_key=1, ip=IPV4_MAPPED_PREFIX + IP_SVC,
                mac=MAC_C, src_mac=MAC_S, src_ip=bytes([10, 0, 1, 2]),
                interval_ms=5000, timeout_ms=3000, success_count=1,
                failure_count=1)
    cfgs = [SvcMonitorConfig(port=80, protocol="tcp", **base),
            SvcMonitorConfig(port=53, protocol="udp", **base)]
    shared.set_svc_monitors({c.key: c for c in cfgs})
    job = SvcMonitorJob(shared.get_svc_monitors, shared.svc_status,
                        lambda: None, seq=lambda: 1000, port=lambda: 40000)
    env = dispatch.Env(shared=shared)
    env.svc_monitors = job
    job.run(env, 0)
    return env


SVC_ENV = _svc_env()


@FUZZ
@given(kind=st.sampled_from(("tcp", "icmp", "icmp6", "tcp6", "udp")),
       sport=st.sampled_from((80, 53, 81)),
       dport=st.sampled_from((40000, 40001, 0)),
       flags=st.integers(0, 0xFFF), ack=st.sampled_from((1001, 0, 1000)),
       quote=st.binary(max_size=60), cut=st.integers(0, 40))
def test_svc_monitor_replies(kind, sport, dport, flags, ack, quote, cut):
    """Forged and truncated answers to the health checks (CVE-2023-3153:
    any workload can send them): TCP with any flags, ports and
    acknowledgements, ICMP errors quoting anything, over IPv4 and IPv6."""
    if kind.startswith("tcp"):
        l4 = struct.pack("!HHIIHHHH", sport, dport, 7, ack,
                         (5 << 12) | flags, 100, 0, 0)
        proto = 6
    elif kind == "udp":
        l4, proto = struct.pack("!HHHH", sport, dport, 16, 0) + bytes(8), 17
    else:
        probe = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 36, 0, 0, 63, 17, 0,
                            bytes([10, 0, 1, 2]), IP_SVC) + \
            struct.pack("!HHHH", dport, sport, 16, 0) + bytes(8)
        l4 = bytes((3 if kind == "icmp" else 1, 3 if kind == "icmp" else 4,
                    0, 0, 0, 0, 0, 0)) + (quote or probe)
        proto = 1 if kind == "icmp" else 58
    l4 = l4[:max(len(l4) - cut, 0)]
    if kind in ("tcp6", "icmp6"):
        frame = pkt.compose_ipv6(MAC_C, MAC_S, SRC6, DST6, proto, 64, l4)
    else:
        frame = pkt.compose_ipv4(MAC_C, MAC_S, IP_SVC, bytes([10, 0, 1, 2]),
                                 proto, 64, l4)
    pin = decode_packet_in2(data_seed(18))
    pin.packet = frame
    exc = coverage.get("pinctrl_action_exception")
    msgs = dispatch.process_packet_in(pin, SVC_ENV)
    assert coverage.get("pinctrl_action_exception") == exc
    for msg in msgs:
        check_message(msg, pin, pin.continuation)
