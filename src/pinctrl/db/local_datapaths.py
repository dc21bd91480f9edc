"""Which logical datapaths are local to this chassis, and the Port_Binding
helpers around that question (main thread; pure over IDL rows).

OVN 23.03 computes local_datapaths in ovn-controller's binding module
(controller/binding.c binding_run, controller/local_data.c
add_local_datapath__): a datapath is local when one of its ports is on
this chassis, and then so is every datapath reachable from it through
patch ports (and l3gateway ports), except where the link is a distributed
gateway port whose chassis-redirect port is "always-redirect" and not
hosted here.  The gARP plan (send_garp_rarp_prepare() and
send_garp_locally() in controller/pinctrl.c), periodic RAs and the
MAC_Binding/FDB monitor conditions ask this question.

Rows are duck-typed like python-ovs IDL rows: pb.logical_port, pb.type,
pb.tunnel_key, pb.datapath (a Datapath_Binding row: .tunnel_key,
.external_ids), pb.options, pb.chassis and pb.ha_chassis_group (a row, or
a list of zero or one rows, as python-ovs gives optional references),
pb.additional_chassis (list), Chassis .name, HA_Chassis_Group
.ha_chassis / .ref_chassis, HA_Chassis .chassis / .priority.  Chassis are
compared by name.

Differences from ovn-controller, which also *claims* ports: this daemon
never binds anything, so a VIF (type "", "virtual") counts when the SB
says it is bound here (Port_Binding.chassis or additional_chassis), not
when a local OVS interface names it.  l2gateway/l3gateway ports count by
their options:l2gateway-chassis / l3gateway-chassis, chassisredirect and
external ports when this chassis is in their HA chassis group, as in
23.03.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from collections.abc import Set as AbstractSet
from dataclasses import dataclass, field
from typing import Any

import ovs.vlog

from pinctrl.support.log import RateLimit, rl_log

vlog = ovs.vlog.Vlog("local_datapaths")

MAX_DEPTH = 100     # add_local_datapath__'s recursion limit
_rl_warn = RateLimit(5, 5)


def ref(value: Any) -> Any:
    """A reference column's row (or an optional column's value), whether
    python-ovs gave it itself or as a list of zero or one (optional)."""
    if isinstance(value, (list, tuple)):
        return value[0] if value else None
    return value


def chassis_is(value: Any, chassis_name: str) -> bool:
    """True if the chassis reference 'value' names this chassis."""
    ch = ref(value)
    return ch is not None and ch.name == chassis_name


def smap_get_bool(smap: Mapping[str, str], key: str, default: bool) -> bool:
    """OVS smap_get_bool(): with default true, anything but "false"
    (case-insensitive) is true; with default false, only "true"."""
    value = smap.get(key, "")
    if default:
        return value.lower() != "false"
    return value.lower() == "true"


def is_additional_chassis(pb: Any, chassis_name: str) -> bool:
    return any(ch.name == chassis_name
               for ch in getattr(pb, "additional_chassis", None) or ())


def ha_chassis_group_contains(group: Any, chassis_name: str) -> bool:
    """ha_chassis_group_contains(): this chassis is one of the group's."""
    group = ref(group)
    return group is not None and any(
        chassis_is(ha.chassis, chassis_name) for ha in group.ha_chassis)


def ha_chassis_group_is_active(group: Any, active_tunnels: AbstractSet[str],
                               chassis_name: str) -> bool:
    """ha_chassis_group_is_active() (controller/ha-chassis.c): this chassis
    is the group's active member.  'active_tunnels' names the chassis
    reachable over a tunnel whose BFD session is up."""
    group = ref(group)
    if group is None or not group.ha_chassis:
        return False
    members = list(group.ha_chassis)
    if len(members) == 1:
        return chassis_is(members[0].chassis, chassis_name)
    bound = [ref(ha.chassis) for ha in members if ref(ha.chassis) is not None]
    if len(bound) == 1 and bound[0].name == chassis_name:
        return True         # the only candidate
    if not active_tunnels:
        return False        # cut off from every other chassis
    up: list[tuple[int, str]] = [
        (ha.priority, ref(ha.chassis).name) for ha in members
        if ref(ha.chassis) is not None
        and (ref(ha.chassis).name == chassis_name
             or ref(ha.chassis).name in active_tunnels)]
    if not up:
        return False
    # A lone candidate may be active only if it still reaches one of the
    # chassis that use the group.
    if len(up) == 1 and not any(
            ch.name in active_tunnels
            for ch in getattr(group, "ref_chassis", None) or ()):
        return False
    # Highest priority first, ties by name, both descending (23.03's qsort).
    return max(up)[1] == chassis_name


class PortBindings:
    """The Port_Binding lookups ovn-controller gets from IDL indexes: by
    name and by datapath tunnel key.  Built once per main-loop rebuild."""

    def __init__(self, rows: Iterable[Any]) -> None:
        self.rows = list(rows)
        self.by_name: dict[str, Any] = {}
        self.by_dp: dict[int, list[Any]] = {}
        # (datapath key, port key) -> row: how packet-ins name a port.
        self.by_key: dict[tuple[int, int], Any] = {}
        for pb in self.rows:
            self.by_name.setdefault(pb.logical_port, pb)
            self.by_dp.setdefault(pb.datapath.tunnel_key, []).append(pb)
            self.by_key[(pb.datapath.tunnel_key, pb.tunnel_key)] = pb

    def peer(self, pb: Any) -> Any:
        """The Port_Binding named by options:peer, or None."""
        name = pb.options.get("peer")
        return self.by_name.get(name) if name is not None else None


def lport_is_chassis_resident(pbs: PortBindings, chassis_name: str,
                              active_tunnels: AbstractSet[str],
                              port_name: str) -> bool:
    """is_chassis_resident("port") (controller/lport.c): the port is bound
    here; for a chassisredirect port, this chassis is the active member of
    its HA chassis group (and the port is bound at all)."""
    pb = pbs.by_name.get(port_name)
    if pb is None or ref(pb.chassis) is None:
        return False
    if pb.type != "chassisredirect":
        return chassis_is(pb.chassis, chassis_name)
    return ha_chassis_group_is_active(pb.ha_chassis_group, active_tunnels,
                                      chassis_name)


def need_add_peer_to_local(pbs: PortBindings, pb: Any,
                           chassis_name: str) -> bool:
    """need_add_peer_to_local() (controller/local_data.c): whether the
    datapath behind patch/l3gateway port 'pb' is local too."""
    if pb.type == "l3gateway" and chassis_is(pb.chassis, chassis_name):
        return True
    if pb.type != "patch":
        return False
    crp = pb.options.get("chassis-redirect-port")
    if crp is None:
        return True             # fully distributed
    pb_crp = pbs.by_name.get(crp)
    if pb_crp is None:
        rl_log(vlog, "warn", _rl_warn, f"Chassis-redirect-port {crp} for "
               f"DGP {pb.logical_port} is not found.")
        return False
    if not smap_get_bool(pb_crp.options, "always-redirect", False):
        return True
    # Always redirected: local only where the gateway may run.
    if ref(pb_crp.ha_chassis_group) is not None:
        return ha_chassis_group_contains(pb_crp.ha_chassis_group,
                                         chassis_name)
    return False


@dataclass(slots=True)
class LocalDatapath:
    """One local datapath (ovn-controller's struct local_datapath, the
    parts pinctrl uses)."""
    datapath: Any                   # the Datapath_Binding row
    key: int                        # its tunnel key
    localnet_port: Any = None       # its localnet Port_Binding, if plugged
    # (local, remote) Port_Binding pairs of the patch links to other local
    # datapaths, 'local' on this datapath.
    peer_ports: list[tuple[Any, Any]] = field(default_factory=list)

    def add_peer(self, local: Any, remote: Any) -> None:
        if all(lo is not local for lo, _ in self.peer_ports):
            self.peer_ports.append((local, remote))


def _is_root(pb: Any, chassis_name: str) -> bool:
    """Does this port by itself make its datapath local (binding_run)?"""
    t = pb.type
    if t in ("", "virtual"):
        return (chassis_is(pb.chassis, chassis_name)
                or is_additional_chassis(pb, chassis_name))
    if t == "l2gateway":
        return bool(pb.options.get("l2gateway-chassis") == chassis_name)
    if t == "l3gateway":
        return bool(pb.options.get("l3gateway-chassis") == chassis_name)
    if t in ("chassisredirect", "external"):
        return ha_chassis_group_contains(pb.ha_chassis_group, chassis_name)
    return False    # patch, localnet, localport, vtep, remote: never


def _add(pbs: PortBindings, dp: Any, chassis_name: str,
         out: dict[int, LocalDatapath], depth: int = 0) -> LocalDatapath:
    """add_local_datapath__(): add 'dp' and, recursively, the datapaths
    its patch/l3gateway ports lead to."""
    ld = out.get(dp.tunnel_key)
    if ld is not None:
        return ld
    ld = out[dp.tunnel_key] = LocalDatapath(dp, dp.tunnel_key)
    if depth >= MAX_DEPTH:
        rl_log(vlog, "warn", _rl_warn, "datapaths nested too deep")
        return ld
    for pb in pbs.by_dp.get(dp.tunnel_key, ()):
        if pb.type not in ("patch", "l3gateway"):
            continue
        peer = pbs.peer(pb)
        if peer is None or peer.datapath is None:
            continue
        if need_add_peer_to_local(pbs, pb, chassis_name):
            peer_ld = _add(pbs, peer.datapath, chassis_name, out, depth + 1)
            peer_ld.add_peer(peer, pb)
            ld.add_peer(pb, peer)
    return ld


def compute_local_datapaths(pbs: PortBindings, chassis_name: str,
                            localnet_networks: AbstractSet[str]
                            ) -> dict[int, LocalDatapath]:
    """Main thread.  The local datapaths by tunnel key.
    'localnet_networks' are the
    network names this chassis's ovn-bridge-mappings plug (see
    bridge_mapping_networks); a datapath's localnet port is recorded only
    for those, the first one winning as in 23.03."""
    out: dict[int, LocalDatapath] = {}
    for pb in pbs.rows:
        if _is_root(pb, chassis_name):
            _add(pbs, pb.datapath, chassis_name, out)
    for pb in pbs.rows:
        if pb.type != "localnet":
            continue
        if pb.options.get("network_name") not in localnet_networks:
            continue
        ld = out.get(pb.datapath.tunnel_key)
        if ld is None:
            continue
        if (ld.localnet_port is not None
                and ld.localnet_port.logical_port != pb.logical_port):
            rl_log(vlog, "warn", _rl_warn, f"localnet port "
                   f"'{ld.localnet_port.logical_port}' already set for "
                   f"datapath '{ld.key}', skipping the new port "
                   f"'{pb.logical_port}'.")
            continue
        ld.localnet_port = pb
    return out


def bridge_mapping_networks(ovs_external_ids: Mapping[str, str],
                            chassis_id: str | None,
                            bridges: AbstractSet[str]) -> frozenset[str]:
    """Networks of Open_vSwitch external_ids:ovn-bridge-mappings (or its
    per-chassis variant ovn-bridge-mappings-<chassis_id>) whose bridge
    exists, as controller/patch.c add_ovs_bridge_mappings() reads them:
    "net:br,net2:br2"; parsing stops at an empty or malformed item."""
    value = None
    if chassis_id:
        value = ovs_external_ids.get(f"ovn-bridge-mappings-{chassis_id}")
    if value is None:
        value = ovs_external_ids.get("ovn-bridge-mappings")
    nets: set[str] = set()
    for item in (value or "").split(","):
        if not item:
            break
        network, sep, bridge = item.partition(":")
        if not sep or not network or not bridge:
            rl_log(vlog, "err", _rl_warn, "Invalid ovn-bridge-mappings "
                   f"configuration: '{value}'")
            break
        if bridge in bridges:
            nets.add(network)
    return frozenset(nets)
