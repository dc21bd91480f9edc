"""Connection refusals: tcp_reset (TCP_RESET, 11), sctp_abort (SCTP_ABORT,
24) and reject (REJECT, 22).

controller/pinctrl.c pinctrl_handle_tcp_reset(),
pinctrl_handle_sctp_abort(), pinctrl_handle_reject() and
pinctrl_handle_reject_ignore_pkt().  Each builds
a new frame and sends it with reload_metadata + the nested actions.

* TCP RST: TTL/hop limit 63, ports swapped, seq 0, ack = offending seq + 1,
  RST|ACK, window 0; no VLAN re-push.
* SCTP ABORT: TTL/hop limit 63, ports swapped, vtag = the INIT's initiate
  tag (T=0) when the offending vtag is 0 and the chunk is INIT, else the
  offending vtag reflected (T=1); one 4-byte ABORT chunk; CRC32c stored
  least-significant byte first, as 23.03 on x86.
* REJECT: addresses swapped (loopback); TCP → RST, SCTP → ABORT, anything
  else → ICMP(v6) unreachable with port-unreachable for UDP.

Deviations (docs/opcodes.md): a RST is never answered with a RST and an
ICMP error never with an ICMP error, whichever opcode (23.03: only REJECT
checks, and only ICMPv4 type 3 / ICMPv6 type 1); segments whose TCP/SCTP
header OVS could not parse (truncated, later fragments) get no reply
(23.03 reads past the header or the frame); an INIT body must lie within
the IP payload (23.03: within the frame, Ethernet padding included).
"""

from __future__ import annotations

import struct
from collections.abc import Callable

import ovs.vlog

from pinctrl.actions import action
from pinctrl.actions.env import NO_ENV, HandlerEnv
from pinctrl.actions.icmp import answer_icmp
from pinctrl.actions.nested import (
    is_icmp_error,
    is_tcp_rst,
    l4_span,
    nested_packet_out,
)
from pinctrl.actions.replies import NoReply, PacketOut, Reporter
from pinctrl.openflow.packet_in import PacketIn
from pinctrl.packet.flow import ETH_TYPE_IPV6, IPPROTO_SCTP, IPPROTO_TCP, Flow, extract
from pinctrl.packet.headers import (
    compose_ipv4,
    compose_ipv6,
    crc32c,
    csum,
    pseudo_sum_ipv4,
    pseudo_sum_ipv6,
)

vlog = ovs.vlog.Vlog("pinctrl")
reporter = Reporter(vlog)

RESET_TTL = 63
TCP_RST_ACK = (5 << 12) | 0x04 | 0x10
SCTP_HEADER_LEN = 12
SCTP_CHUNK_HEADER_LEN = 4
SCTP_INIT_CHUNK_LEN = 16
SCTP_CHUNK_INIT, SCTP_CHUNK_ABORT = 1, 6
SCTP_ABORT_FLAG_T = 0x01

C_TCP = "pinctrl_tcp_reset_drop_"
C_SCTP = "pinctrl_sctp_abort_drop_"
C_REJECT = "pinctrl_reject_drop_"

_U32 = struct.Struct("!I")


def _compose(fl: Flow, proto: int, l4: bytes, loopback: bool,
             l4_csum_ofs: int | None) -> bytes:
    """IPv4/IPv6 frame around 'l4' (TTL 63), addresses swapped when
    'loopback'; stores the pseudo-header checksum at 'l4_csum_ofs'."""
    eth_src, eth_dst = fl.dl_src, fl.dl_dst
    if loopback:
        eth_src, eth_dst = eth_dst, eth_src
    v6 = fl.dl_type == ETH_TYPE_IPV6
    src, dst = (fl.ipv6_src, fl.ipv6_dst) if v6 else (fl.nw_src, fl.nw_dst)
    if loopback:
        src, dst = dst, src
    if l4_csum_ofs is not None:
        seg = bytearray(l4)
        pseudo = (pseudo_sum_ipv6 if v6 else pseudo_sum_ipv4)(
            src, dst, proto, len(seg))
        struct.pack_into("!H", seg, l4_csum_ofs, csum(seg, pseudo))
        l4 = bytes(seg)
    compose = compose_ipv6 if v6 else compose_ipv4
    return compose(eth_src, eth_dst, src, dst, proto, RESET_TTL, l4)


def build_tcp_reset(frame: bytes, fl: Flow, loopback: bool) -> bytes:
    """Pure.  23.03's RST|ACK answer to a TCP segment.  Raises NoReply."""
    if fl.nw_proto != IPPROTO_TCP:
        raise NoReply(C_TCP + "not_tcp", "TCP_RESET action on non-TCP packet")
    span = l4_span(fl)
    if span is None:
        raise NoReply(C_TCP + "short_tcp",
                      "TCP_RESET action on malformed TCP packet")
    if is_tcp_rst(fl):
        raise NoReply(C_TCP + "rst")
    seq = _U32.unpack_from(frame, span.l4 + 4)[0]
    tcp = struct.pack("!HHIIHHHH", fl.tp_dst, fl.tp_src, 0,
                      (seq + 1) & 0xFFFFFFFF, TCP_RST_ACK, 0, 0, 0)
    return _compose(fl, IPPROTO_TCP, tcp, loopback, 16)


def build_sctp_abort(frame: bytes, fl: Flow, loopback: bool) -> bytes:
    """Pure.  23.03's ABORT answer to an SCTP packet.  Raises NoReply."""
    if fl.nw_proto != IPPROTO_SCTP:
        raise NoReply(C_SCTP + "not_sctp",
                      "SCTP_ABORT action on non-SCTP packet")
    span = l4_span(fl)
    if span is None:
        raise NoReply(C_SCTP + "malformed",
                      "SCTP_ABORT action on malformed SCTP packet")
    l4, end = span.l4, span.end
    chunk = l4 + SCTP_HEADER_LEN
    if end - chunk < SCTP_CHUNK_HEADER_LEN:
        raise NoReply(C_SCTP + "no_chunks",
                      "SCTP_ABORT action on SCTP packet with no chunks")
    ctype = frame[chunk]
    if ctype == SCTP_CHUNK_ABORT:
        raise NoReply(C_SCTP + "abort",
                      "sctp_abort action on incoming SCTP ABORT.")
    init_tag = None
    if ctype == SCTP_CHUNK_INIT:
        body = chunk + SCTP_CHUNK_HEADER_LEN
        if end - body < SCTP_INIT_CHUNK_LEN:
            raise NoReply(C_SCTP + "short_init",
                          "Incomplete SCTP INIT chunk. Ignoring packet.")
        init_tag = frame[body:body + 4]
    vtag = frame[l4 + 4:l4 + 8]
    if vtag == b"\0\0\0\0" and init_tag is not None:
        vtag, flags = init_tag, 0           # RFC 4960 §8.4 item 3
    else:
        flags = SCTP_ABORT_FLAG_T           # RFC 4960 §8.4 item 8
    sctp = bytearray(struct.pack("!HH4sIBBH", fl.tp_dst, fl.tp_src, vtag, 0,
                                 SCTP_CHUNK_ABORT, flags,
                                 SCTP_CHUNK_HEADER_LEN))
    sctp[8:12] = crc32c(sctp).to_bytes(4, "little")
    return _compose(fl, IPPROTO_SCTP, bytes(sctp), loopback, None)


def reject_ignored(frame: bytes, fl: Flow) -> NoReply | None:
    """Pure.  Why REJECT sends nothing for this packet, or None: a RST (or
    a TCP segment without a usable header), an ICMP(v6) error."""
    if fl.nw_proto == IPPROTO_TCP:
        if not fl.l4_ok:
            return NoReply(C_REJECT + "short_tcp")
        if is_tcp_rst(fl):
            return NoReply(C_REJECT + "rst")
    elif is_icmp_error(fl, frame):
        return NoReply(C_REJECT + "icmp_error")
    return None


# --- handlers (pinctrl_handler thread) -----------------------------------------

def _answer(pin: PacketIn, build: Callable[[bytes, Flow, bool], bytes],
            loopback: bool) -> PacketOut | None:
    frame = pin.packet
    try:
        return nested_packet_out(pin, build(frame, extract(frame), loopback))
    except NoReply as e:
        reporter.report(e)
        return None


@action(11, "tcp_reset")
def tcp_reset(pin: PacketIn, env: HandlerEnv = NO_ENV,
              now: int = 0) -> PacketOut | None:
    return _answer(pin, build_tcp_reset, loopback=False)


@action(24, "sctp_abort")
def sctp_abort(pin: PacketIn, env: HandlerEnv = NO_ENV,
               now: int = 0) -> PacketOut | None:
    return _answer(pin, build_sctp_abort, loopback=False)


@action(22, "reject")
def reject(pin: PacketIn, env: HandlerEnv = NO_ENV,
           now: int = 0) -> PacketOut | None:
    fl = extract(pin.packet)
    why = reject_ignored(pin.packet, fl)
    if why is not None:
        reporter.report(why)
        return None
    if fl.nw_proto == IPPROTO_TCP:
        return _answer(pin, build_tcp_reset, loopback=True)
    if fl.nw_proto == IPPROTO_SCTP:
        return _answer(pin, build_sctp_abort, loopback=True)
    return answer_icmp(pin, set_icmp_code=True, loopback=True)
