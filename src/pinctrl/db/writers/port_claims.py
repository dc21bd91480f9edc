"""SB Port_Binding claims learnt from packets: virtual ports (bind_vport;
OVN 23.03 run_put_vport_binding()) and RARP activation
(run_activated_ports(), both in controller/pinctrl.c).  Main thread only.
"""

from __future__ import annotations

import ovs.db.idl
import ovs.vlog

from pinctrl.db.local_datapaths import ref
from pinctrl.db.writers import HandoverWriter, SbContext
from pinctrl.shared.records import PortKey
from pinctrl.shared.state import SharedState
from pinctrl.support import coverage
from pinctrl.support.log import RateLimit, rl_log

vlog = ovs.vlog.Vlog("pinctrl")
_rl = RateLimit(5, 5)

ACTIVATED = "additional-chassis-activated"


class VportWriter(HandoverWriter[PortKey, int]):
    """put_vport_bindings -> Port_Binding chassis/virtual_parent."""
    name = "vport_bindings"

    def __init__(self, shared: SharedState) -> None:
        super().__init__(shared.put_vport_bindings,
                         "pinctrl_drop_put_vport_binding_retry")

    def write(self, txn: ovs.db.idl.Transaction, ctx: SbContext,
              now: int) -> bool:
        if ctx.chassis is None:
            return False
        batch = self.queue.start()
        for (dp_key, vport_key), parent_key in batch:
            vport = ctx.ports.by_key.get((dp_key, vport_key))
            parent = ctx.ports.by_key.get((dp_key, parent_key))
            if vport is None or vport.type != "virtual" or parent is None:
                coverage.inc("pinctrl_drop_bind_vport_unknown_port")
                rl_log(vlog, "warn", _rl,
                       f"bind_vport: no virtual port {vport_key} with "
                       f"parent {parent_key} in datapath {dp_key}")
                self.queue.drop((dp_key, vport_key))
                continue
            if (ref(vport.chassis) is ctx.chassis
                    and ref(vport.virtual_parent)
                    == parent.logical_port):
                continue
            vlog.info(f"Claiming virtual lport {vport.logical_port} for this "
                      f"chassis with the virtual parent "
                      f"{parent.logical_port}")
            vport.chassis = ctx.chassis
            vport.virtual_parent = parent.logical_port
        return bool(batch)


def activated_here(options: dict, chassis_name: str) -> bool:
    return chassis_name in options.get(ACTIVATED, "").split(",")


class ActivationWriter(HandoverWriter[PortKey, bool]):
    """ports_to_activate -> Port_Binding options:additional-chassis-
    activated gains this chassis's name."""
    name = "activated_ports"

    def __init__(self, shared: SharedState) -> None:
        super().__init__(shared.ports_to_activate,
                         "pinctrl_drop_activated_port_retry")

    def write(self, txn: ovs.db.idl.Transaction, ctx: SbContext,
              now: int) -> bool:
        if not ctx.chassis_name:
            return False
        batch = self.queue.start()
        for key, _ in batch:
            pb = ctx.ports.by_key.get(key)
            if pb is None:
                self.queue.drop(key)
                continue
            if activated_here(pb.options, ctx.chassis_name):
                continue
            old = pb.options.get(ACTIVATED)
            pb.setkey("options", ACTIVATED,
                      f"{old},{ctx.chassis_name}" if old
                      else ctx.chassis_name)
        return bool(batch)
