"""The few OpenFlow fields the proxy reads (pure code, no copies).

Every function takes (buf, ofs, end): one complete message at buf[ofs:end]
of a receive buffer (bytes or bytearray), so the forwarding loop never
slices a message it only looks at.  Anything malformed or unexpected is
"not ours": the proxy forwards it and lets ovn-controller or OVS judge.

Layouts (OpenFlow 1.5 as OVS 3.1 encodes it, docs/wire-formats.md):
  Nicira message   ofp_header(8) experimenter=0x2320(4) subtype(4)
  NXT_PACKET_IN2   Nicira header, then properties {type(2) len(2) payload}
                   padded to 8; REASON (5) is one byte, USERDATA (7) starts
                   with OVN's action header, whose first 4 bytes are the
                   opcode (include/ovn/actions.h, struct action_header)
  OFPT_PACKET_OUT  ofp_header(8) buffer_id(4) actions_len(2) pad(2),
                   ofp_match {type(2) len(2) oxms} padded to 8, actions,
                   then the frame
"""

from __future__ import annotations

import struct

OFP15_VERSION = 6
OFPT_EXPERIMENTER = 4
OFPT_SET_CONFIG = 9
OFPT_PACKET_OUT = 13
OFPT_FLOW_MOD = 14
OFPT_GROUP_MOD = 15
OFPT_MULTIPART_REQUEST = 18
OFPT_METER_MOD = 29
OFPT_BUNDLE_CONTROL = 33
OFPT_BUNDLE_ADD_MESSAGE = 34
OFPMP_METER_FEATURES = 11
NX_VENDOR_ID = 0x00002320
NXT_SET_PACKET_IN_FORMAT = 16
NXT_TLV_TABLE_MOD = 24
NXT_TLV_TABLE_REQUEST = 25
NXT_PACKET_IN2 = 30
NXPINT_REASON = 5
NXPINT_USERDATA = 7
OFPR_ACTION = 1

ETH_TYPE_VLAN = 0x8100
ETH_TYPE_ARP = 0x0806
ETH_TYPE_RARP = 0x8035
ETH_TYPE_IPV6 = 0x86DD
IPPROTO_ICMPV6 = 58
ND_ROUTER_ADVERT = 134
ARP_OP_REQUEST = 1

# Periodic duties of ovn-controller's pinctrl (frame_duty's answers).
DUTY_GARP = "garp"
DUTY_RA = "ra"

# What ovn-controller opens each connection for, told by what it sends.
ROLE_UNKNOWN = "unknown"
ROLE_PINCTRL = "pinctrl"        # asks for packet-ins
ROLE_OFCTRL = "ofctrl"          # programs flows, groups, meters
ROLE_FEATURES = "features"      # probes meter support

_U16 = struct.Struct("!H")
_U32 = struct.Struct("!I")
_PROP = struct.Struct("!HH")
_NX_HDR_LEN = 16
_PACKET_OUT_HDR_LEN = 16

_OFCTRL_TYPES = frozenset((OFPT_FLOW_MOD, OFPT_GROUP_MOD, OFPT_METER_MOD,
                           OFPT_BUNDLE_CONTROL, OFPT_BUNDLE_ADD_MESSAGE))
_OFCTRL_NX = frozenset((NXT_TLV_TABLE_MOD, NXT_TLV_TABLE_REQUEST))

Buf = bytes | bytearray | memoryview


def nx_subtype(buf: Buf, ofs: int, end: int) -> int | None:
    """The subtype of a Nicira experimenter message, else None."""
    if (end - ofs < _NX_HDR_LEN or buf[ofs + 1] != OFPT_EXPERIMENTER
            or _U32.unpack_from(buf, ofs + 8)[0] != NX_VENDOR_ID):
        return None
    subtype: int = _U32.unpack_from(buf, ofs + 12)[0]
    return subtype


def is_packet_in(buf: Buf, ofs: int, end: int) -> bool:
    """An NXT_PACKET_IN2 (the format every ovn-controller connection that
    gets packet-ins asks for) or a standard OFPT_PACKET_IN (type 10)."""
    return buf[ofs + 1] == 10 or nx_subtype(buf, ofs, end) == NXT_PACKET_IN2


def packet_in_opcode(buf: Buf, ofs: int, end: int) -> int | None:
    """The OVN opcode of an NXT_PACKET_IN2 sent by a controller() action
    (reason OFPR_ACTION, userdata holding an action header); None for any
    other message or packet-in, which the caller then passes on."""
    if nx_subtype(buf, ofs, end) != NXT_PACKET_IN2:
        return None
    reason, opcode = OFPR_ACTION, None
    p = ofs + _NX_HDR_LEN
    while end - p >= 4:
        ptype, plen = _PROP.unpack_from(buf, p)
        if plen < 4 or p + plen > end:
            return None
        if ptype == NXPINT_REASON and plen > 4:
            reason = buf[p + 4]
        elif ptype == NXPINT_USERDATA and plen >= 4 + 8:
            opcode = _U32.unpack_from(buf, p + 4)[0]
        p += (plen + 7) & ~7
    return opcode if reason == OFPR_ACTION else None


def packet_out_frame(buf: Buf, ofs: int, end: int) -> tuple[int, int] | None:
    """(start, end) of the frame inside an OpenFlow 1.5 OFPT_PACKET_OUT,
    None for anything else or a length that does not add up."""
    if buf[ofs] != OFP15_VERSION or buf[ofs + 1] != OFPT_PACKET_OUT:
        return None
    if end - ofs < _PACKET_OUT_HDR_LEN + 4:
        return None
    actions_len = _U16.unpack_from(buf, ofs + 12)[0]
    match_len = _U16.unpack_from(buf, ofs + 18)[0]
    start = ofs + _PACKET_OUT_HDR_LEN + (match_len + 7) // 8 * 8 + actions_len
    if match_len < 4 or start > end:
        return None
    return start, end


def frame_duty(buf: Buf, start: int, end: int) -> str | None:
    """DUTY_GARP for a gratuitous ARP request (sender IP == target IP)
    or a RARP, DUTY_RA for an ICMPv6 router advertisement, else None: the
    periodic frames of 23.03's send_garp_rarp() and ipv6_ra_send().  ARP
    requests of the arp action (target != sender) are not duties."""
    p = start + 12
    if end - p < 2:
        return None
    eth_type = _U16.unpack_from(buf, p)[0]
    if eth_type == ETH_TYPE_VLAN and end - p >= 6:
        p += 4
        eth_type = _U16.unpack_from(buf, p)[0]
    p += 2
    if eth_type == ETH_TYPE_RARP:
        return DUTY_GARP
    if eth_type == ETH_TYPE_ARP:
        if (end - p >= 28 and _U16.unpack_from(buf, p + 6)[0] == ARP_OP_REQUEST
                and buf[p + 14:p + 18] == buf[p + 24:p + 28]):
            return DUTY_GARP
        return None
    if (eth_type == ETH_TYPE_IPV6 and end - p >= 41
            and buf[p + 6] == IPPROTO_ICMPV6
            and buf[p + 40] == ND_ROUTER_ADVERT):
        return DUTY_RA
    return None


def packet_out_duty(buf: Buf, ofs: int, end: int) -> str | None:
    """frame_duty() of an OFPT_PACKET_OUT's frame; None for other
    messages."""
    frame = packet_out_frame(buf, ofs, end)
    return frame_duty(buf, *frame) if frame is not None else None


def role_hint(buf: Buf, ofs: int, end: int) -> str | None:
    """What a message sent by ovn-controller says about its connection:
    pinctrl_setup() asks for NXT_PACKET_IN2 and a non-zero miss_send_len,
    ofctrl programs the tables, the feature probe asks for meter features
    (23.03: controller/pinctrl.c, controller/ofctrl.c, lib/features.c)."""
    msg_type = buf[ofs + 1]
    if msg_type == OFPT_EXPERIMENTER:
        sub = nx_subtype(buf, ofs, end)
        if sub == NXT_SET_PACKET_IN_FORMAT:
            return ROLE_PINCTRL
        return ROLE_OFCTRL if sub in _OFCTRL_NX else None
    if msg_type == OFPT_SET_CONFIG and end - ofs >= 12:
        return ROLE_PINCTRL if _U16.unpack_from(buf, ofs + 10)[0] else None
    if msg_type in _OFCTRL_TYPES:
        return ROLE_OFCTRL
    if (msg_type == OFPT_MULTIPART_REQUEST and end - ofs >= 10
            and _U16.unpack_from(buf, ofs + 8)[0] == OFPMP_METER_FEATURES):
        return ROLE_FEATURES
    return None
