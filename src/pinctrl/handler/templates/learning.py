"""put_arp (opcode 1) as a template: learn (datapath, inport, reg0 IPv4)
-> the frame's Ethernet source, for the main thread's MAC_Binding writer.

The tail carries the learnt IPv4 address in reg0: entries are keyed with
it masked.  Per tail: the datapath and inport keys.  Per packet: the
handover entry, collected for the batch; FastPath.end_batch() puts the
batch's entries under one take of the mutex and wakes the main thread
once (the reference path: one take and one wake-up per packet-in).

Misses (reference path): frames sent to a broadcast or multicast address
(their commit time gets a random jitter), frames too short to learn from.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from pinctrl.actions import mac_learning as ref
from pinctrl.openflow.packet_in import PacketIn
from pinctrl.shared.records import IPV4_MAPPED_PREFIX, Learnt

if TYPE_CHECKING:
    from pinctrl.handler.templates import FastPath


class PutArpTemplate:
    opcode = 1
    family = "put_arp"
    handler = staticmethod(ref.put_arp)
    reg0_varies = True

    def prepare(self, pin: PacketIn, msg: bytes, fp: FastPath
                ) -> tuple[int, int] | None:
        if fp.env.shared is None:
            return None
        md = pin.metadata
        return md.datapath, md.reg(14)

    def answer(self, d: tuple[int, int], frame: memoryview,
               reg0: bytes | None, fp: FastPath, now: int) -> bool:
        if len(frame) < ref.ETH_ADDRS_LEN or frame[0] & 1 or reg0 is None:
            return False
        fp.learnt.append(((d[0], d[1], IPV4_MAPPED_PREFIX + reg0),
                          Learnt(bytes(frame[6:12]), now)))
        return True
