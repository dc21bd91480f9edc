"""NXT_RESUME encoder: the one OpenFlow message os-ken lacks.

Layout (OVS ofputil_encode_resume, docs/wire-formats.md): Nicira header with
subtype 28 and xid 0, then properties PACKET, TABLE_ID, COOKIE (omitted when
absent or all-ones), REASON, METADATA and CONTINUATION (echoed verbatim).
USERDATA and FULL_LEN are not sent.
"""

from __future__ import annotations

import struct

from os_ken.ofproto import nicira_ext, ofproto_common, ofproto_v1_5

from pinctrl.openflow.packet_in import PacketIn

NXT_RESUME = 28
_NX_HDR = struct.Struct("!BBHIII")
_PROP_HDR = struct.Struct("!HH")
_NO_COOKIE = b"\xff" * 8


def _prop(out: bytearray, ptype: int, payload: bytes) -> None:
    out += _PROP_HDR.pack(ptype, 4 + len(payload))
    out += payload
    pad = -(4 + len(payload)) % 8
    if pad:
        out += bytes(pad)


def encode_resume(pin: PacketIn, packet: bytes) -> bytes:
    """NXT_RESUME carrying 'packet' and pin's (possibly edited) metadata."""
    body = bytearray()
    _prop(body, nicira_ext.NXPINT_PACKET, packet)
    _prop(body, nicira_ext.NXPINT_TABLE_ID, bytes((pin.table_id,)))
    if pin.cookie is not None and pin.cookie != _NO_COOKIE:
        _prop(body, nicira_ext.NXPINT_COOKIE, bytes(4) + pin.cookie)
    _prop(body, nicira_ext.NXPINT_REASON, bytes((pin.reason,)))
    _prop(body, nicira_ext.NXPINT_METADATA, pin.metadata.serialize())
    if pin.continuation is not None:
        _prop(body, nicira_ext.NXPINT_CONTINUATION, pin.continuation)
    hdr = _NX_HDR.pack(ofproto_v1_5.OFP_VERSION,
                       ofproto_v1_5.OFPT_EXPERIMENTER,
                       _NX_HDR.size + len(body), 0,
                       ofproto_common.NX_EXPERIMENTER_ID, NXT_RESUME)
    return hdr + bytes(body)
