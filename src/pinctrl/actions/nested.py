"""Shared plumbing of the nested-action opcodes (ICMP*, TCP_RESET,
SCTP_ABORT, REJECT, ARP, ND_NA, ND_NA_ROUTER, ND_NS): registers no opcode.

Such an opcode's userdata is an OpenFlow 1.5 action list (lib/actions.c
encode_nested_actions(); docs/wire-formats.md "Controller-action
userdata").  23.03 answers with a PACKET_OUT of a new frame whose actions
are reload_metadata() (the packet-in's registers and datapath) followed by
that list (controller/pinctrl.c set_actions_and_enqueue_msg()).

Builders are pure and raise replies.NoReply when 23.03 (or this project's
stricter input checks) send nothing; the registered handlers hand it to
their module's replies.Reporter: a coverage counter and, if it has text,
a rate-limited log line.
"""

from __future__ import annotations

from typing import NamedTuple

from pinctrl.actions.replies import NoReply, PacketOut
from pinctrl.openflow.ofactions import actions_well_formed, reload_metadata
from pinctrl.openflow.packet_in import PacketIn
from pinctrl.packet.flow import (
    ETH_TYPE_IP,
    ETH_TYPE_IPV6,
    IPPROTO_ICMP,
    IPPROTO_ICMPV6,
    IPPROTO_TCP,
    Flow,
)

# ICMPv4 types that are error messages (RFC 1122 §3.2.2, RFC 1812 §4.3.2.2:
# unreachable, source quench, redirect, time exceeded, parameter problem).
ICMP4_ERROR_TYPES = frozenset((3, 4, 5, 11, 12))
TCP_RST = 0x04


def nested_packet_out(pin: PacketIn, frame: bytes) -> PacketOut:
    """PACKET_OUT of 'frame' with reload_metadata + the userdata actions.
    Raises NoReply if the action list is malformed."""
    nested = pin.args
    if not actions_well_formed(nested):
        raise NoReply("pinctrl_drop_bad_nested_actions",
                      "failed to parse actions from userdata")
    return PacketOut(frame, reload_metadata(pin.metadata) + nested)


class L4Span(NamedTuple):
    """Where a frame's IP and L4 headers start, and where its IP payload
    ends (Ethernet padding excluded)."""
    l3: int
    l4: int
    end: int


def l4_span(fl: Flow) -> L4Span | None:
    """The offsets of 'fl' if OVS parsed its L4 header (fl.l4_ok), else
    None.  Any action may use it, not only the nested ones."""
    if not fl.l4_ok or fl.l3_ofs is None or fl.l4_ofs is None:
        return None
    return L4Span(fl.l3_ofs, fl.l4_ofs, fl.l4_end)


def icmp_type_at_l4(fl: Flow, frame: bytes) -> int | None:
    """The first byte of the L4 data (the ICMP/ICMPv6 type) as 23.03 reads
    it through dp_packet_l4(), or None if there is no byte to read."""
    if fl.l4_ofs is None or fl.l4_ofs >= fl.l4_end:
        return None
    return frame[fl.l4_ofs]


def is_icmp_error(fl: Flow, frame: bytes) -> bool:
    """True for an ICMPv4 error (types 3, 4, 5, 11, 12) or an ICMPv6 error
    (types 0-127, RFC 4443 §2.1), or an ICMP packet too short to tell:
    such packets are never answered with another ICMP error (RFC 1122
    §3.2.2, RFC 4443 §2.4 (e); the reject ping-pong of OVN BZ1934011,
    bcd9a8fb1)."""
    if fl.dl_type == ETH_TYPE_IP and fl.nw_proto == IPPROTO_ICMP:
        t = icmp_type_at_l4(fl, frame)
        return t is None or t in ICMP4_ERROR_TYPES
    if fl.dl_type == ETH_TYPE_IPV6 and fl.nw_proto == IPPROTO_ICMPV6:
        t = icmp_type_at_l4(fl, frame)
        return t is None or t < 128
    return False


def is_tcp_rst(fl: Flow) -> bool:
    """A TCP segment with RST set (never answered with a RST, RFC 793)."""
    return (fl.nw_proto == IPPROTO_TCP and fl.l4_ok
            and bool(fl.tcp_flags & TCP_RST))
