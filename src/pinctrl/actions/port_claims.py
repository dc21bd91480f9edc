"""Port claims learnt from packets: bind_vport (17) and
activation_strategy_rarp (26).

Called by the pinctrl_handler thread.  Neither pauses nor answers; each
hands a claim to the main thread, which writes SB Port_Binding
(db/writers/port_claims.py):
  bind_vport: the VIF in reg14 sent an ARP/ND for a virtual port's IP, so
      the virtual port (key in the userdata) moves to this chassis with that
      VIF as its virtual parent (controller/pinctrl.c
      pinctrl_handle_bind_vport(), run_put_vport_binding());
  activation_strategy_rarp: a port bound here as an additional chassis
      (options:activation-strategy=rarp) sent a RARP, so this chassis is
      added to options:additional-chassis-activated (controller/pinctrl.c
      pinctrl_rarp_activation_strategy_handler(), run_activated_ports()).
"""

from __future__ import annotations

import struct

import ovs.vlog

from pinctrl.actions import action
from pinctrl.actions.env import NO_ENV, HandlerEnv
from pinctrl.actions.replies import NoReply, Reporter
from pinctrl.openflow.packet_in import PacketIn

vlog = ovs.vlog.Vlog("pinctrl")
reporter = Reporter(vlog, 5, 5)
_U32 = struct.Struct("!I")


@action(17, "bind_vport")
def bind_vport(pin: PacketIn, env: HandlerEnv = NO_ENV,
               now: int = 0) -> None:
    """Opcode 17: claim virtual port <userdata be32 key> for parent reg14."""
    if len(pin.args) < 4:
        reporter.report(NoReply("pinctrl_drop_bad_bind_vport",
                                "bind_vport: userdata lacks the port key"))
        return
    if env.shared is None:
        return
    md = pin.metadata
    vport_key = _U32.unpack_from(pin.args)[0]
    if env.shared.put_vport_bindings.put((md.datapath, vport_key),
                                         md.reg(14)):
        env.shared.notify_main()


@action(26, "activation_strategy_rarp")
def activation_strategy_rarp(pin: PacketIn, env: HandlerEnv = NO_ENV,
                             now: int = 0) -> None:
    """Opcode 26: the port in reg14 sent a RARP; activate it here."""
    if env.shared is None:
        return
    md = pin.metadata
    if env.shared.ports_to_activate.put((md.datapath, md.reg(14)), True):
        env.shared.notify_main()
