"""The recording's BFD peer (172.16.0.253 behind lr0-public) and hosts on
the localnet side of a sandbox.

The golden SB has a BFD row for lr0's static route via 172.16.0.253, so
the daemon sends a BFD control packet about every second.  While lr0 does
not know the peer's MAC, each one is punted to the `arp` action (ARP
request, buffered packet) - what the recording's first scenario,
bfd_session_up, shows, and what it ended by answering that ARP.  Every
later scenario of the recording ran with the peer resolved.

    resolve_bfd_peer(sb)   that state: the MAC_Binding row and the flows
                           ovn-controller 23.03 installs for it (tables
                           66/67, lflow.c consider_neighbor_flow), so BFD
                           packets leave without a packet-in
    forget_bfd_peer(sb)    back to the recorded start (row and flows gone)
    add_localnet_host(sb, name, mac)
                           a network namespace on br-phys of a netdev
                           sandbox: a host on the physical network behind
                           the localnet port (a BFD or DHCPv6 peer)

Test process, main thread.
"""

from __future__ import annotations

import json

from testbed.netns import NetNs
from testbed.ovs_sandbox import Sandbox

PEER_IP = "172.16.0.253"
PEER_MAC = "00:00:00:00:fe:fd"
LR0_DP_KEY = 4
LR0_PUBLIC_KEY = 3
_REG0 = "reg0=0xac1000fd"


def _lr0_uuid(sb: Sandbox) -> str:
    out = json.loads(sb.sbctl("--format=json", "--columns=_uuid,tunnel_key",
                              "list", "Datapath_Binding"))
    return next(row[0][1] for row in out["data"] if row[1] == LR0_DP_KEY)


def _peer_rows(sb: Sandbox) -> list[str]:
    return sb.sbctl("--bare", "--columns=_uuid", "find", "MAC_Binding",
                    f"ip={PEER_IP}").split()


def resolve_bfd_peer(sb: Sandbox) -> None:
    """lr0 knows 172.16.0.253: SB MAC_Binding (kept if the daemon learnt
    it already) plus ovn-controller's flows for it."""
    rows = _peer_rows(sb)
    uuid = rows[0] if rows else sb.sbctl(
        "create", "MAC_Binding", f"datapath={_lr0_uuid(sb)}",
        "logical_port=lr0-public", f"ip={PEER_IP}",
        f'mac="{PEER_MAC}"').strip()
    cookie = f"cookie=0x{uuid[:8]}"
    keys = f"metadata={LR0_DP_KEY:#x}"
    sb.ofctl("add-flow", "br-int",
             f"table=66,priority=100,{cookie},{_REG0},"
             f"reg15={LR0_PUBLIC_KEY:#x},{keys},"
             f"actions=set_field:{PEER_MAC}->eth_dst,"
             "set_field:0x40/0x40->reg10")
    sb.ofctl("add-flow", "br-int",
             f"table=67,priority=100,{cookie},arp,{_REG0},"
             f"reg14={LR0_PUBLIC_KEY:#x},{keys},dl_src={PEER_MAC},"
             "actions=set_field:0x40/0x40->reg10")


def forget_bfd_peer(sb: Sandbox) -> None:
    """The recorded start: no MAC_Binding for the peer, no flows."""
    for uuid in _peer_rows(sb):
        sb.ofctl("del-flows", "br-int", f"cookie=0x{uuid[:8]}/-1")
        sb.sbctl("destroy", "MAC_Binding", uuid)


def add_localnet_host(sb: Sandbox, name: str, mac: str) -> NetNs:
    """A namespace 'name' whose interface (MAC 'mac', IPv6 off until
    netns_enable_ipv6(ns=name)) is plugged into br-phys, the bridge of the
    localnet port.  Netdev sandboxes only; removed with the sandbox."""
    if sb.datapath_type != "netdev":
        raise ValueError("a localnet host needs datapath_type='netdev'")
    tag = f"{sb.tag}-{len(sb.namespaces)}"
    n = NetNs(name, f"pinctrl-{tag}", f"pcl{tag}"[:15], "eth0", mac)
    sb._add_netns(n)
    sb.vsctl("add-port", "br-phys", n.host_veth)
    return n
