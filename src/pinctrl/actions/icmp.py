"""ICMP errors: icmp4/icmp6 (ICMP, 10), icmp4_error (14), icmp6_error (20),
and the frag-MTU fix-ups put_icmp4_frag_mtu (13) / put_icmp6_frag_mtu (21).

controller/pinctrl.c pinctrl_handle_icmp() and
pinctrl_handle_put_icmp_frag_mtu(); the physical.c PMTU flow is
controller/physical.c reply_imcp_error_if_pkt_too_big().

ICMP/ICMP4_ERROR/ICMP6_ERROR build a destination-unreachable error quoting
the offending packet and send it with reload_metadata + the nested actions
(which set the final type/code/addresses).  Per 23.03: the family follows
the frame (an IPv6 frame gets ICMPv6 whatever the opcode); IPv4 quotes
min(total length, 534) bytes (frame ≤ 576 with Ethernet), TTL 255, TOS 0,
ID 0, DF, type 3, code 3 for UDP when the opcode sets codes (ICMP, REJECT)
else 1; IPv6 quotes min(40 + payload length, 1218) bytes (frame ≤ 1280),
hop limit 255, type 1, code 4 for UDP (first next header) else 1; addresses
unswapped except for REJECT (loopback); the first VLAN tag is re-pushed.

ICMP opcode 10 may arrive paused (controller/physical.c PMTU discovery):
it is registered as not pausing, so that continuation is never resumed and
the oversized packet is dropped, as in 23.03.

The frag-MTU opcodes are paused: they write the MTU into the ICMP(v6)
error that our own PACKET_OUT produced and resume it; anything unusable is
resumed unchanged.

Deviations (docs/opcodes.md): an ICMP error is never answered with another
one (23.03 does, except under REJECT); a packet whose IP header announces
more bytes than the frame holds, or fails OVS's IPv4 sanity check, gets no
reply (23.03 quotes bytes past the end / uses 0.0.0.0 addresses); the
IPv4 header checksum after a frag-MTU write covers the whole IHL; the
ICMPv6 checksum uses the real upper-layer length and next header 58.
"""

from __future__ import annotations

import struct

import ovs.vlog

from pinctrl.actions import action
from pinctrl.actions.env import NO_ENV, HandlerEnv
from pinctrl.actions.nested import is_icmp_error, l4_span, nested_packet_out
from pinctrl.actions.replies import NoReply, PacketOut, Reporter, Resume
from pinctrl.openflow.packet_in import PacketIn
from pinctrl.packet.flow import (
    ETH_TYPE_IP,
    ETH_TYPE_IPV6,
    IPPROTO_ICMP,
    IPPROTO_ICMPV6,
    IPPROTO_UDP,
    Flow,
    extract,
)
from pinctrl.packet.headers import (
    compose_ipv4,
    compose_ipv6,
    csum,
    ipv4_set_csum,
    pseudo_sum_ipv6,
    vlan_push,
)

vlog = ovs.vlog.Vlog("pinctrl")
reporter = Reporter(vlog)

ICMP_HEADER_LEN = 8
ICMP4_DST_UNREACH = 3
ICMP6_DST_UNREACH = 1
ICMP4_ROOM = 576 - 14 - 20 - 8          # 534
ICMP6_ROOM = 1280 - 14 - 40 - 8         # 1218
ICMP_TTL = 255
_U16 = struct.Struct("!H")

C_ICMP = "pinctrl_icmp_drop_"
C_FRAG = "pinctrl_frag_mtu_drop_"


def build_icmp_error(frame: bytes, fl: Flow, set_icmp_code: bool,
                     loopback: bool) -> bytes:
    """Pure.  The destination-unreachable error 23.03's pinctrl_handle_icmp
    composes for 'frame' ('fl' = extract(frame)).  Raises NoReply."""
    if fl.dl_type not in (ETH_TYPE_IP, ETH_TYPE_IPV6) or fl.l3_ofs is None:
        raise NoReply(C_ICMP + "not_ip", "ICMP action on non-IP packet "
                      f"(eth_type 0x{fl.dl_type:x})")
    if is_icmp_error(fl, frame):
        raise NoReply(C_ICMP + "icmp_error")
    l3 = fl.l3_ofs
    avail = len(frame) - l3
    eth_src, eth_dst = fl.dl_src, fl.dl_dst
    if loopback:
        eth_src, eth_dst = eth_dst, eth_src

    if fl.dl_type == ETH_TYPE_IP:
        if avail < 20:
            raise NoReply(C_ICMP + "bad_ip",
                          "ICMP action on malformed IP packet")
        tot_len = _U16.unpack_from(frame, l3 + 2)[0]
        if tot_len < 20:
            raise NoReply(C_ICMP + "bad_ip_len", "ICMP action on IP packet "
                          f"with invalid length ({tot_len})")
        if fl.l4_ofs is None:
            # Fails OVS's ipv4_sanity_check(): 23.03 would quote past the
            # end of the frame, from addresses 0.0.0.0.
            raise NoReply(C_ICMP + "bad_ip",
                          "ICMP action on malformed IP packet")
        quote = frame[l3:l3 + min(tot_len, ICMP4_ROOM)]
        code = 3 if set_icmp_code and frame[l3 + 9] == IPPROTO_UDP else 1
        icmp = bytearray(struct.pack("!BBHI", ICMP4_DST_UNREACH, code, 0, 0)
                         + quote)
        _U16.pack_into(icmp, 2, csum(icmp))
        src, dst = fl.nw_src, fl.nw_dst
        if loopback:
            src, dst = dst, src
        out = compose_ipv4(eth_src, eth_dst, src, dst, IPPROTO_ICMP,
                           ICMP_TTL, bytes(icmp))
    else:
        if avail < 40 or 40 + _U16.unpack_from(frame, l3 + 4)[0] > avail:
            # Fails OVS's ipv6_sanity_check(): 23.03 would quote past the
            # end of the frame.
            raise NoReply(C_ICMP + "bad_ip",
                          "ICMP action on malformed IP packet")
        in_len = 40 + _U16.unpack_from(frame, l3 + 4)[0]
        quote = frame[l3:l3 + min(in_len, ICMP6_ROOM)]
        code = 4 if set_icmp_code and frame[l3 + 6] == IPPROTO_UDP else 1
        src, dst = fl.ipv6_src, fl.ipv6_dst
        if loopback:
            src, dst = dst, src
        icmp = bytearray(struct.pack("!BBHI", ICMP6_DST_UNREACH, code, 0, 0)
                         + quote)
        _U16.pack_into(icmp, 2, csum(icmp, pseudo_sum_ipv6(
            src, dst, IPPROTO_ICMPV6, len(icmp))))
        out = compose_ipv6(eth_src, eth_dst, src, dst, IPPROTO_ICMPV6,
                           ICMP_TTL, bytes(icmp))
    if fl.vlan_tcis:
        out = vlan_push(out, fl.vlan_tci)
    return out


def recalc_csum16(old_csum: int, old_u16: int, new_u16: int) -> int:
    """OVS's recalc_csum16() (RFC 1624 incremental update), bit for bit."""
    s = (~old_csum & 0xFFFF) + (~old_u16 & 0xFFFF) + new_u16
    s = (s & 0xFFFF) + (s >> 16)
    return ~((s & 0xFFFF) + (s >> 16)) & 0xFFFF


def put_frag_mtu(frame: bytes, fl: Flow, mtu_arg: bytes) -> bytes:
    """Pure.  23.03's put_icmp4_frag_mtu / put_icmp6_frag_mtu on 'frame':
    the ICMP error with its MTU field set from 'mtu_arg' (the userdata
    after the action header: be16 for ICMPv4, be32 for ICMPv6).  Raises
    NoReply when the frame must be resumed unchanged."""
    v4 = fl.dl_type == ETH_TYPE_IP and fl.nw_proto == IPPROTO_ICMP
    v6 = fl.dl_type == ETH_TYPE_IPV6 and fl.nw_proto == IPPROTO_ICMPV6
    if not v4 and not v6:
        raise NoReply(C_FRAG + "not_icmp", "put_icmp(4/6)_frag_mtu action "
                      "on non-ICMPv4/v6 packet")
    need = 2 if v4 else 4
    if len(mtu_arg) < need:
        raise NoReply(C_FRAG + "no_mtu")
    span = l4_span(fl)
    if span is None:
        raise NoReply(C_FRAG + "short_icmp",
                      "put_icmp(4/6)_frag_mtu action on truncated ICMP packet")
    out = bytearray(frame)
    l3, l4 = span.l3, span.l4
    if v4:
        old_mtu, old_csum = _U16.unpack_from(out, l4 + 6)[0], \
            _U16.unpack_from(out, l4 + 2)[0]
        new_mtu = _U16.unpack_from(mtu_arg, 0)[0]
        _U16.pack_into(out, l4 + 6, new_mtu)
        _U16.pack_into(out, l4 + 2, recalc_csum16(old_csum, old_mtu, new_mtu))
        ipv4_set_csum(out, l3, l4 - l3)
    else:
        out[l4 + 4:l4 + 8] = mtu_arg[:4]
        out[l4 + 2:l4 + 4] = b"\0\0"
        seg = out[l4:span.end]
        _U16.pack_into(out, l4 + 2, csum(seg, pseudo_sum_ipv6(
            fl.ipv6_src, fl.ipv6_dst, IPPROTO_ICMPV6, len(seg))))
    return bytes(out)


# --- handlers (pinctrl_handler thread) -----------------------------------------

def answer_icmp(pin: PacketIn, set_icmp_code: bool, loopback: bool
                ) -> PacketOut | None:
    """Build and wrap the ICMP error for a packet-in, counting/logging a
    NoReply.  Shared with REJECT."""
    frame = pin.packet
    try:
        return nested_packet_out(pin, build_icmp_error(
            frame, extract(frame), set_icmp_code, loopback))
    except NoReply as e:
        reporter.report(e)
        return None


@action(10, "icmp")
def icmp(pin: PacketIn, env: HandlerEnv = NO_ENV,
         now: int = 0) -> PacketOut | None:
    """icmp4 { ... } / icmp6 { ... } (and physical.c's paused PMTU flow)."""
    return answer_icmp(pin, set_icmp_code=True, loopback=False)


@action(14, "icmp4_error")
def icmp4_error(pin: PacketIn, env: HandlerEnv = NO_ENV,
                now: int = 0) -> PacketOut | None:
    return answer_icmp(pin, set_icmp_code=False, loopback=False)


@action(20, "icmp6_error")
def icmp6_error(pin: PacketIn, env: HandlerEnv = NO_ENV,
                now: int = 0) -> PacketOut | None:
    return answer_icmp(pin, set_icmp_code=False, loopback=False)


def _frag_mtu(pin: PacketIn) -> Resume:
    frame = pin.packet
    try:
        return Resume(put_frag_mtu(frame, extract(frame), pin.args))
    except NoReply as e:
        reporter.report(e)
        return Resume(frame)


@action(13, "put_icmp4_frag_mtu", pause=True)
def put_icmp4_frag_mtu(pin: PacketIn, env: HandlerEnv = NO_ENV,
                       now: int = 0) -> Resume:
    return _frag_mtu(pin)


@action(21, "put_icmp6_frag_mtu", pause=True)
def put_icmp6_frag_mtu(pin: PacketIn, env: HandlerEnv = NO_ENV,
                       now: int = 0) -> Resume:
    return _frag_mtu(pin)
