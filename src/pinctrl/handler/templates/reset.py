"""tcp_reset (opcode 11) as a template: the RST|ACK answer to an IPv4
TCP segment.

Per tail: the PACKET_OUT's actions (reload_metadata + the nested actions,
as actions/nested.nested_packet_out).  The 54-byte RST frame is taken from
the reference builder (actions/reset.build_tcp_reset) on the first
segment; per segment the MAC addresses, IP addresses, ports (swapped) and
acknowledgement number are patched and both checksums recomputed.

Misses (reference path): VLAN tags, IP options, IPv6, fragments other
than the first, a TCP header OVS would not parse, RST segments.
"""

from __future__ import annotations

import struct
from typing import TYPE_CHECKING

from pinctrl.actions import reset as ref
from pinctrl.handler.templates.common import PacketOutShape, fold, set_ipv4_csum
from pinctrl.openflow.ofactions import actions_well_formed, reload_metadata
from pinctrl.openflow.packet_in import PacketIn
from pinctrl.packet.flow import extract

if TYPE_CHECKING:
    from pinctrl.handler.templates import FastPath

ETH_IP = 14
TCP = ETH_IP + 20
RST_LEN = TCP + 20
_PORTS_SEQ = struct.Struct("!2s2sI")
_WORDS = struct.Struct("!14H")      # IP addresses + the 20-byte TCP header
_U16 = struct.Struct("!H")
_U32 = struct.Struct("!I")
_TCP_RST = 0x04


class ResetData:
    __slots__ = ("po", "frame")

    def __init__(self, po: PacketOutShape) -> None:
        self.po = po
        self.frame: bytes | None = None     # the reference RST, once built


class TcpResetTemplate:
    opcode = 11
    family = "tcp_reset"
    handler = staticmethod(ref.tcp_reset)
    reg0_varies = False

    def prepare(self, pin: PacketIn, msg: bytes, fp: FastPath
                ) -> ResetData | None:
        if not actions_well_formed(pin.args):
            return None
        return ResetData(PacketOutShape(reload_metadata(pin.metadata)
                                        + pin.args))

    def answer(self, d: ResetData, frame: memoryview, reg0: bytes | None,
               fp: FastPath, now: int) -> bool:
        n = len(frame)
        if (n < RST_LEN or frame[12] != 8 or frame[13]
                or frame[ETH_IP] & 0x0F != 5 or frame[ETH_IP + 9] != 6
                or frame[ETH_IP + 6] & 0x1F or frame[ETH_IP + 7]):
            return False                # not TCP, or a later fragment
        tot_len = (frame[ETH_IP + 2] << 8) | frame[ETH_IP + 3]
        hlen = (frame[TCP + 12] >> 4) * 4
        if (tot_len > n - ETH_IP or hlen < 20 or tot_len - 20 < hlen
                or frame[TCP + 13] & _TCP_RST):
            return False
        tmpl = d.frame
        if tmpl is None:
            packet = bytes(frame)
            tmpl = d.frame = ref.build_tcp_reset(packet, extract(packet),
                                                 False)
            if len(tmpl) != RST_LEN:
                return False
        buf = bytearray(tmpl)
        buf[:12] = frame[:12]
        buf[ETH_IP + 12:ETH_IP + 20] = frame[ETH_IP + 12:ETH_IP + 20]
        sport, dport, seq = _PORTS_SEQ.unpack_from(frame, TCP)
        buf[TCP:TCP + 4] = dport + sport
        _U32.pack_into(buf, TCP + 8, (seq + 1) & 0xFFFFFFFF)
        buf[ETH_IP + 10:ETH_IP + 12] = b"\0\0"
        set_ipv4_csum(buf, ETH_IP)
        buf[TCP + 16:TCP + 18] = b"\0\0"
        _U16.pack_into(buf, TCP + 16, fold(
            sum(_WORDS.unpack_from(buf, ETH_IP + 12)) + 6 + 20))
        fp.out.append(d.po.encode(fp.env.next_xid(), buf))
        return True
