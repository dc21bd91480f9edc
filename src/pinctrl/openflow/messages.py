"""OpenFlow 1.5 messages pinctrl sends and receives (pure code).

os-ken builds and parses the standard messages; pinctrl only needs a handful
(docs/wire-formats.md): HELLO with a version bitmap, GET_CONFIG_REQUEST,
NXT_SET_PACKET_IN_FORMAT(nxt_packet_in2), SET_CONFIG(miss_send_len=0xffff),
ECHO_REPLY, PACKET_OUT.  ofproto_protocol.ProtocolDesc stands in for an
os-ken datapath, so no os-ken app/controller machinery is involved.
"""

from __future__ import annotations

import struct

from os_ken.ofproto import ofproto_protocol, ofproto_v1_5
from os_ken.ofproto import ofproto_v1_5_parser as parser
from os_ken.ofproto.ofproto_parser import MsgBase

OFP15_VERSION = ofproto_v1_5.OFP_VERSION          # 0x06
OFP_HEADER = struct.Struct("!BBHI")
NXPIF_NXT_PACKET_IN2 = 2
MISS_SEND_LEN = 0xFFFF
OFPC_FRAG_MASK = 3

_DP = ofproto_protocol.ProtocolDesc(OFP15_VERSION)

# OFPT_PACKET_OUT (docs/wire-formats.md): buffer_id none, and a match that
# holds only in_port=CONTROLLER.
_PACKET_OUT_HDR = struct.Struct("!BBHIIH2x")
MATCH_IN_PORT_CONTROLLER = bytes.fromhex("0001000c80000004fffffffd00000000")


class OpenFlowError(ValueError):
    """An OpenFlow message that cannot be parsed."""


def _serialize(msg: MsgBase, xid: int) -> bytes:
    msg.set_xid(xid)
    msg.serialize()
    return bytes(msg.buf)


def hello(xid: int) -> bytes:
    """HELLO offering only OpenFlow 1.5 (bitmap element 0x40), as 23.03.
    Built by hand: os-ken's OFPHello does not serialise hello elements."""
    elem = struct.pack("!HHI", 1, 8, 1 << OFP15_VERSION)  # VERSIONBITMAP
    return OFP_HEADER.pack(OFP15_VERSION, ofproto_v1_5.OFPT_HELLO,
                           OFP_HEADER.size + len(elem), xid) + elem


def get_config_request(xid: int) -> bytes:
    return _serialize(parser.OFPGetConfigRequest(_DP), xid)


def set_packet_in_format(xid: int) -> bytes:
    return _serialize(parser.NXTSetPacketInFormatMsg(
        _DP, packet_in_format=NXPIF_NXT_PACKET_IN2), xid)


def set_config(xid: int, reply_flags: int) -> bytes:
    """SET_CONFIG answering a GET_CONFIG_REPLY: keep the switch's fragment
    handling, ask for whole packets (a service connection gets no
    packet-ins at all while miss_send_len is 0)."""
    return _serialize(parser.OFPSetConfig(
        _DP, reply_flags & OFPC_FRAG_MASK, MISS_SEND_LEN), xid)


def echo_reply(request: bytes) -> bytes:
    """ECHO_REPLY with the request's xid and body."""
    version, _, length, xid = OFP_HEADER.unpack_from(request, 0)
    body = request[OFP_HEADER.size:length]
    return OFP_HEADER.pack(version, ofproto_v1_5.OFPT_ECHO_REPLY,
                           OFP_HEADER.size + len(body), xid) + body


def echo_request(xid: int) -> bytes:
    return OFP_HEADER.pack(OFP15_VERSION, ofproto_v1_5.OFPT_ECHO_REQUEST,
                           OFP_HEADER.size, xid)


def packet_out(xid: int, actions: bytes, packet: bytes) -> bytes:
    """OFPT_PACKET_OUT from CONTROLLER with raw OF1.5 'actions'."""
    length = (_PACKET_OUT_HDR.size + len(MATCH_IN_PORT_CONTROLLER)
              + len(actions) + len(packet))
    return b"".join((
        _PACKET_OUT_HDR.pack(OFP15_VERSION, ofproto_v1_5.OFPT_PACKET_OUT,
                             length, xid, 0xFFFFFFFF, len(actions)),
        MATCH_IN_PORT_CONTROLLER, actions, packet))


def header(buf: bytes) -> tuple[int, int, int, int]:
    """(version, type, length, xid) of the message at the start of buf."""
    return OFP_HEADER.unpack_from(buf, 0)


def decode(buf: bytes) -> MsgBase:
    """Parse one complete OpenFlow 1.5 message with os-ken.  Raises
    OpenFlowError on anything os-ken rejects (it raises a zoo of types)."""
    version, msg_type, length, xid = OFP_HEADER.unpack_from(buf, 0)
    if version != OFP15_VERSION or length > len(buf):
        raise OpenFlowError(f"bad OpenFlow header (version {version}, "
                            f"length {length})")
    # parser.msg_parser, not ofproto_parser.msg: the latter catches errors
    # and logs a full traceback per message, unbounded under bad input.
    try:
        msg = parser.msg_parser(_DP, version, msg_type, length, xid,
                                bytes(buf[:length]))
    except Exception as e:  # os-ken: struct.error, ValueError, KeyError...
        raise OpenFlowError(f"cannot parse OpenFlow message type {msg_type}: "
                            f"{type(e).__name__}: {e}") from e
    if msg is None:
        raise OpenFlowError(f"unparsable OpenFlow message type {msg_type}")
    return msg


def hello_versions(buf: bytes) -> set[int]:
    """Versions a peer's HELLO offers: its bitmap if present, else every
    version up to the header's (OpenFlow's negotiation rule)."""
    version, _, length, _ = OFP_HEADER.unpack_from(buf, 0)
    ofs = OFP_HEADER.size
    while ofs + 4 <= length:
        etype, elen = struct.unpack_from("!HH", buf, ofs)
        if elen < 4 or ofs + elen > length:
            break
        if etype == 1:          # OFPHET_VERSIONBITMAP
            versions = set()
            for i in range((elen - 4) // 4):
                word = struct.unpack_from("!I", buf, ofs + 4 + 4 * i)[0]
                versions |= {32 * i + b for b in range(32) if word >> b & 1}
            return versions
        ofs += (elen + 7) // 8 * 8
    return set(range(1, version + 1))
