"""MAC learning: put_arp (1), put_nd (4) and put_fdb (25).

Called by the pinctrl_handler thread.  None of them pauses or answers: the
handler records what the frame taught (controller/pinctrl.c
pinctrl_handle_put_mac_binding(), pinctrl_handle_put_fdb()) in a handover
table of SharedState and wakes the main thread, which writes SB
MAC_Binding / FDB rows (db/writers/).  The userdata is only the 8-byte
header: the MAC is the frame's Ethernet source (rewritten by the flow
before the packet-in), the IP is reg0 (put_arp) or xxreg0 (put_nd), the
port is reg14.
"""

from __future__ import annotations

import random

import ovs.vlog

from pinctrl.actions import action
from pinctrl.actions.env import NO_ENV, HandlerEnv
from pinctrl.actions.replies import NoReply, Reporter
from pinctrl.openflow.packet_in import PacketIn
from pinctrl.shared.records import Learnt, ipv4_mapped

vlog = ovs.vlog.Vlog("pinctrl")
reporter = Reporter(vlog, 5, 5, default_site="mac_learning")

ETH_ADDRS_LEN = 12
# A binding learnt from a broadcast/multicast frame is committed 1..50 ms
# later: every chassis on the segment learns it at once, the jitter spreads
# their identical MAC_Binding writes (mac-learn.c).
MAX_COMMIT_JITTER_MS = 50


def xxreg0(pin: PacketIn) -> bytes:
    """OVN's xxreg0 = reg0..reg3, reg0 most significant."""
    regs = pin.metadata.regs()
    return b"".join(r.to_bytes(4, "big") for r in regs[:4])


def _frame_ok(pin: PacketIn, name: str) -> bool:
    if len(pin.packet) >= ETH_ADDRS_LEN:
        return True
    reporter.report(NoReply(f"pinctrl_drop_{name}_short",
                            f"{name}: frame too short to learn from"))
    return False


def _put_mac_binding(pin: PacketIn, env: HandlerEnv, now: int, ip16: bytes,
                     name: str) -> None:
    if not _frame_ok(pin, name) or env.shared is None:
        return
    md = pin.metadata
    unicast = not pin.packet[0] & 1
    commit_at = now
    if not unicast:
        commit_at += random.randint(1, MAX_COMMIT_JITTER_MS)
    key = (md.datapath, md.reg(14), ip16)
    if env.shared.put_mac_bindings.put(key,
                                       Learnt(pin.packet[6:12], commit_at)):
        env.shared.notify_main()


@action(1, "put_arp")
def put_arp(pin: PacketIn, env: HandlerEnv = NO_ENV,
            now: int = 0) -> None:
    """Opcode 1: learn (inport, reg0 IPv4, eth.src)."""
    _put_mac_binding(pin, env, now, ipv4_mapped(pin.metadata.reg(0)), "put_arp")


@action(4, "put_nd")
def put_nd(pin: PacketIn, env: HandlerEnv = NO_ENV,
           now: int = 0) -> None:
    """Opcode 4: learn (inport, xxreg0 IPv6, eth.src)."""
    _put_mac_binding(pin, env, now, xxreg0(pin), "put_nd")


@action(25, "put_fdb")
def put_fdb(pin: PacketIn, env: HandlerEnv = NO_ENV,
            now: int = 0) -> None:
    """Opcode 25: learn that eth.src lives behind inport (SB FDB)."""
    if not _frame_ok(pin, "put_fdb") or env.shared is None:
        return
    md = pin.metadata
    if env.shared.put_fdbs.put((md.datapath, pin.packet[6:12]),
                               md.reg(14)):
        env.shared.notify_main()
