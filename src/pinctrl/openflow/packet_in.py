"""NXT_PACKET_IN2 → PacketIn.

Pure code.  Every property's raw bytes are kept, because NXT_RESUME must
echo the continuation and metadata exactly (docs/wire-formats.md);
openflow/resume.py encodes the resume.

Two decoders with one result: decode_packet_in2() walks the properties with
struct and is what the handler uses (os-ken's generic parser cost 30 of the
73 µs a DHCP packet-in took end to end, docs/architecture.md); from_os_ken()
takes os-ken's parsed NXTPacketIn2 and is kept as the reference the fast
decoder is tested against.
"""

from __future__ import annotations

import struct
from typing import TYPE_CHECKING, Iterable, Iterator

from os_ken.ofproto import nicira_ext

if TYPE_CHECKING:
    from os_ken.ofproto.ofproto_v1_5_parser import NXTPacketIn2

from pinctrl.openflow.oxm import Metadata, OxmError

OFPR_ACTION = 1
OVN_ACTION_HEADER_LEN = 8
_U32 = struct.Struct("!I")


class PacketInError(ValueError):
    """A packet-in that cannot be decoded."""


class PacketIn:
    """One decoded NXT_PACKET_IN2.  Attributes are the properties as OVS
    sent them; 'cookie' is the raw 8 bytes (None if absent) and
    'continuation' the raw payload of property 8 (None if absent)."""

    __slots__ = ("packet", "table_id", "cookie", "reason", "metadata",
                 "userdata", "continuation", "full_len", "buffer_id")

    def __init__(self, packet: bytes, table_id: int = 0,
                 cookie: bytes | None = None, reason: int = OFPR_ACTION,
                 metadata: Metadata | None = None, userdata: bytes = b"",
                 continuation: bytes | None = None) -> None:
        self.packet = packet
        self.table_id = table_id
        self.cookie = cookie
        self.reason = reason
        self.metadata = metadata if metadata is not None else Metadata()
        self.userdata = userdata
        self.continuation = continuation
        self.full_len: int | None = None
        self.buffer_id: int | None = None

    @property
    def opcode(self) -> int:
        """OVN action opcode (include/ovn/actions.h struct action_header)."""
        if len(self.userdata) < OVN_ACTION_HEADER_LEN:
            raise PacketInError("packet-in userdata lacks action header")
        opcode: int = _U32.unpack_from(self.userdata, 0)[0]
        return opcode

    @property
    def args(self) -> bytes:
        """Opcode-specific userdata after the action header."""
        return self.userdata[OVN_ACTION_HEADER_LEN:]

    @property
    def cookie_int(self) -> int:
        return int.from_bytes(self.cookie, "big") if self.cookie else 0


_PROP_HDR = struct.Struct("!HH")
_NX_HDR_LEN = 16


def decode_packet_in2(msg: bytes) -> PacketIn:
    """Decode one complete NXT_PACKET_IN2 message (OpenFlow header
    included).  Raises PacketInError on any truncation or bad length."""
    if len(msg) < _NX_HDR_LEN:
        raise PacketInError("packet-in shorter than its header")
    end = int.from_bytes(msg[2:4], "big")
    if end > len(msg) or end < _NX_HDR_LEN:
        raise PacketInError("packet-in length field out of range")
    return _build(_props(msg, end))


def _props(msg: bytes, end: int) -> list[tuple[int, bytes]]:
    """The properties as a list (the hot path: no generator frames)."""
    out = []
    ofs = _NX_HDR_LEN
    unpack = _PROP_HDR.unpack_from
    while ofs < end:
        if end - ofs < 4:
            raise PacketInError("truncated packet-in property header")
        ptype, plen = unpack(msg, ofs)
        if plen < 4 or ofs + plen > end:
            raise PacketInError(f"bad packet-in property {ptype} length")
        out.append((ptype, msg[ofs + 4:ofs + plen]))
        ofs += (plen + 7) & ~7
    return out


def _build(props: Iterable[tuple[int, bytes]]) -> PacketIn:
    """A PacketIn from (type, payload) properties, whoever walked them."""
    pin = PacketIn(b"")
    packet = None
    try:
        for ptype, d in props:
            if ptype == nicira_ext.NXPINT_PACKET:
                packet = d
            else:
                _set_prop(pin, ptype, d)
    except (IndexError, struct.error, OxmError) as e:
        raise PacketInError(f"malformed packet-in property: {e}") from e
    if packet is None:
        raise PacketInError("packet-in without packet")
    pin.packet = packet
    return pin


def _set_prop(pin: PacketIn, t: int, d: bytes) -> None:
    if t == nicira_ext.NXPINT_TABLE_ID:
        pin.table_id = d[0]
    elif t == nicira_ext.NXPINT_COOKIE:
        if len(d) < 12:
            raise PacketInError("short cookie property")
        pin.cookie = d[4:12]
    elif t == nicira_ext.NXPINT_REASON:
        pin.reason = d[0]
    elif t == nicira_ext.NXPINT_METADATA:
        pin.metadata = Metadata.parse(d)
    elif t == nicira_ext.NXPINT_USERDATA:
        pin.userdata = d
    elif t == nicira_ext.NXPINT_CONTINUATION:
        pin.continuation = d
    elif t == nicira_ext.NXPINT_FULL_LEN:
        pin.full_len = _U32.unpack_from(d, 0)[0]
    elif t == nicira_ext.NXPINT_BUFFER_ID:
        pin.buffer_id = _U32.unpack_from(d, 0)[0]
    # Other types (PACKET is handled by _build) are tolerated:
    # OVS's own decoder is "loose" too.


def from_os_ken(msg: NXTPacketIn2) -> PacketIn:
    """Build a PacketIn from os-ken's parsed NXTPacketIn2.  os-ken keeps each
    property's raw payload (p.data), which is all we read; its own 'cookie'
    attribute ignores the property's 4 pad bytes, so it is not used."""
    def props() -> Iterator[tuple[int, bytes]]:
        for p in msg.properties:
            d = bytes(p.data)
            if p.length < 4 or len(d) != p.length - 4:
                # os-ken does not check property lengths against the
                # message; a short property would yield short data.
                raise PacketInError(f"truncated packet-in property {p.type}")
            yield p.type, d
    return _build(props())
