"""arp (opcode 0) as a template: the ARP request for a next hop, and the
punted frame buffered until the neighbour resolves.

The tail carries the next hop itself in reg0, so entries are keyed with
reg0's value masked (handler/templates/__init__.py) and reg0 patched back
in: in the PACKET_OUT's actions and the buffered frame's re-injection
actions (reload_metadata loads reg0 first: its value is at offset 8), and
in the buffer key.  Per tail: the datapath and outport keys, both action
lists.  Per packet: the 42-byte request from the frame's addresses
(actions/neighbor.build_arp_request), the push into BufferedPackets.

Misses (reference path): VLAN tags (the request re-pushes the tag), a
frame that is not IPv4 or whose IPv4 header OVS would not parse.
"""

from __future__ import annotations

import struct
from typing import TYPE_CHECKING

from pinctrl.actions import neighbor as ref
from pinctrl.actions.env import BufferKey
from pinctrl.handler.templates.common import PacketOutShape
from pinctrl.openflow.ofactions import actions_well_formed, reload_metadata, set_reg
from pinctrl.openflow.packet_in import PacketIn
from pinctrl.packet.flow import ETH_TYPE_ARP, ETH_TYPE_IP
from pinctrl.shared.records import IPV4_MAPPED_PREFIX

if TYPE_CHECKING:
    from pinctrl.handler.templates import FastPath

ETH_IP = 14
REG0_VALUE = 8          # in reload_metadata(): set_field(reg0) comes first
_REG0_LOAD = set_reg(0, 0)[:REG0_VALUE]
_ARP_FIXED = struct.pack("!HHHBBH", ETH_TYPE_ARP, ref.ARP_HTYPE_ETH,
                         ETH_TYPE_IP, 6, 4, ref.ARP_OP_REQUEST)
_ZERO_MAC = bytes(6)


class ArpData:
    __slots__ = ("dp", "port", "po", "reinject")

    def __init__(self, dp: int, port: int, po: PacketOutShape,
                 reinject: bytes) -> None:
        self.dp = dp
        self.port = port
        self.po = po                # actions with reg0 = 0
        self.reinject = reinject    # idem


def _reg0_zeroed(actions: bytes, reg0: int) -> bytes | None:
    """'actions' (starting with reload_metadata) with reg0's loaded value
    zeroed, or None if they do not start with the load of 'reg0'."""
    if (actions[:REG0_VALUE] != _REG0_LOAD
            or actions[REG0_VALUE:REG0_VALUE + 4] != reg0.to_bytes(4, "big")):
        return None
    return actions[:REG0_VALUE] + bytes(4) + actions[REG0_VALUE + 4:]


class ArpTemplate:
    opcode = 0
    family = "arp"
    handler = staticmethod(ref.arp)
    reg0_varies = True

    def prepare(self, pin: PacketIn, msg: bytes, fp: FastPath
                ) -> ArpData | None:
        if not actions_well_formed(pin.args):
            return None
        md = pin.metadata
        reg0 = md.reg(0)
        actions = _reg0_zeroed(reload_metadata(md) + pin.args, reg0)
        reinject = _reg0_zeroed(ref.reinject_actions(md), reg0)
        if actions is None or reinject is None:
            return None
        return ArpData(md.datapath, md.reg(15), PacketOutShape(actions),
                       reinject)

    def answer(self, d: ArpData, frame: memoryview, reg0: bytes | None,
               fp: FastPath, now: int) -> bool:
        n = len(frame)
        if n < ETH_IP + 20 or frame[12] != 8 or frame[13] or reg0 is None:
            return False
        ihl = (frame[ETH_IP] & 0x0F) * 4
        tot_len = (frame[ETH_IP + 2] << 8) | frame[ETH_IP + 3]
        if ihl < 20 or n - ETH_IP < ihl or tot_len > n - ETH_IP or ihl > tot_len:
            return False
        request = b"".join((frame[:12], _ARP_FIXED, frame[6:12],
                            frame[ETH_IP + 12:ETH_IP + 16], _ZERO_MAC,
                            frame[ETH_IP + 16:ETH_IP + 20]))
        bp = fp.env.buffered_packets
        if bp is not None:
            r = d.reinject
            bp.push(BufferKey(d.dp, d.port, IPV4_MAPPED_PREFIX + reg0),
                    bytes(frame), b"".join((r[:REG0_VALUE], reg0, r[REG0_VALUE + 4:])),
                    now)
        fp.out.append(d.po.encode(fp.env.next_xid(), request, REG0_VALUE, reg0))
        return True
