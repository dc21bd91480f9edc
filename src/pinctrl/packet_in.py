"""NXT_PACKET_IN2 → PacketIn (decode) and PacketIn → NXT_RESUME (encode).

Pure code.  Decoding uses os-ken's NXTPacketIn2 property parser and keeps
every property's raw bytes, because NXT_RESUME must echo the continuation
and metadata exactly (reference §4.2-§4.4).  os-ken has no NXT_RESUME, so
nx_resume.py encodes it.
"""

from __future__ import annotations

import struct

from os_ken.ofproto import nicira_ext

from pinctrl.oxm import Metadata, OxmError

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
        """OVN action opcode from the 8-byte action header (§5.1)."""
        if len(self.userdata) < OVN_ACTION_HEADER_LEN:
            raise PacketInError("packet-in userdata lacks action header")
        return _U32.unpack_from(self.userdata, 0)[0]

    @property
    def args(self) -> bytes:
        """Opcode-specific userdata after the action header."""
        return self.userdata[OVN_ACTION_HEADER_LEN:]

    @property
    def cookie_int(self) -> int:
        return int.from_bytes(self.cookie, "big") if self.cookie else 0


def from_os_ken(msg) -> PacketIn:
    """Build a PacketIn from os-ken's parsed NXTPacketIn2.  os-ken keeps each
    property's raw payload (p.data), which is all we read; its own 'cookie'
    attribute ignores the property's 4 pad bytes, so it is not used."""
    packet = None
    pin = PacketIn(b"")
    try:
        for p in msg.properties:
            t, d = p.type, p.data
            if p.length < 4 or len(d) != p.length - 4:
                # os-ken does not check property lengths against the
                # message; a short property would yield short data.
                raise PacketInError(f"truncated packet-in property {t}")
            if t == nicira_ext.NXPINT_PACKET:
                packet = bytes(d)
            elif t == nicira_ext.NXPINT_TABLE_ID:
                pin.table_id = d[0]
            elif t == nicira_ext.NXPINT_COOKIE:
                pin.cookie = bytes(d[4:12])
            elif t == nicira_ext.NXPINT_REASON:
                pin.reason = d[0]
            elif t == nicira_ext.NXPINT_METADATA:
                pin.metadata = Metadata.parse(bytes(d))
            elif t == nicira_ext.NXPINT_USERDATA:
                pin.userdata = bytes(d)
            elif t == nicira_ext.NXPINT_CONTINUATION:
                pin.continuation = bytes(d)
            elif t == nicira_ext.NXPINT_FULL_LEN:
                pin.full_len = _U32.unpack_from(d, 0)[0]
            elif t == nicira_ext.NXPINT_BUFFER_ID:
                pin.buffer_id = _U32.unpack_from(d, 0)[0]
            # Unknown property types are tolerated ("loose" decoding).
    except (IndexError, struct.error, OxmError) as e:
        raise PacketInError(f"malformed packet-in property: {e}") from e
    if packet is None:
        raise PacketInError("packet-in without packet")
    pin.packet = packet
    return pin
