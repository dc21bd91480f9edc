"""What the gARP/RARP sender announces (main thread; pure over IDL rows).

OVN 23.03's send_garp_rarp_prepare() (controller/pinctrl.c:5997),
run on every SB change by the main thread; the handler's GarpJob
(handler/garp_job.py) sends what this computes:

* localnet VIFs: every br-int interface with an ofport and an iface-id
  whose Port_Binding is bound here (Port_Binding.chassis) on a local
  datapath that has a localnet port.  Entry "<port>": the first
  Port_Binding.mac entry that parses as "MAC [IP...]", announcing its
  first IPv4 address (gARP) or, with none, the MAC alone (RARP);
* NAT / router addresses: on every local datapath with a localnet port,
  each l3gateway port bound here and each patch port, from its
  nat_addresses column (or, when empty, the legacy options:nat-addresses)
  whose elements read `MAC IP... [is_chassis_resident("port")]`; patch
  ports need the is_chassis_resident clause, and when present it must
  hold here.  Entries "<port>-<IPv4>" per IPv4 address, or "<port>-noip"
  (RARP) for an element without one;
* localports are never announced.

Also here: the address-string parsers of OVN's lib/ovn-util.c that this
and the RA configuration (db/ra_plan.py) share, reproducing OVS's
ovs_scan() rules (extract_addresses, extract_ip_addresses,
extract_addresses_with_port), and the plan of the MAC_Binding rows 23.03
writes locally for a new IPv4 announcement (send_garp_locally()).

Interfaces come as Iface(iface_id, ofport, external_ids) where
external_ids are the OVS *Port*'s (ovn-chassis-id, ovn-localnet-port); the
caller leaves out the bridge's own internal port.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from collections.abc import Set as AbstractSet
from typing import Any, NamedTuple

import ovs.vlog

from pinctrl.db.addresses import (
    LportAddresses,
    extract_addresses_with_port,
    extract_lsp_addresses,
)
from pinctrl.db.local_datapaths import (
    LocalDatapath,
    PortBindings,
    chassis_is,
    lport_is_chassis_resident,
    smap_get_bool,
)
from pinctrl.packet.headers import fmt_ip4, fmt_mac
from pinctrl.shared.records import GarpEntry
from pinctrl.support.log import RateLimit

vlog = ovs.vlog.Vlog("pinctrl")
_rl_syntax = RateLimit(1, 1)        # VLOG_RATE_LIMIT_INIT(1, 1) in 23.03


# --- OVS ovs_scan() pieces and OVN address parsing ---------------------------


# --- the announcement set -----------------------------------------------------

class Iface(NamedTuple):
    """A br-int interface as the main thread reads it from the local OVS
    DB: Interface external_ids:iface-id, Interface ofport (None when the
    column is empty), and its Port's external_ids."""
    iface_id: str | None
    ofport: int | None
    external_ids: Mapping[str, str]


class GarpPlan(NamedTuple):
    """The announcement set: entry name -> GarpEntry, and entry name ->
    the Port_Binding it announces for (for send_garp_locally)."""
    entries: dict[str, GarpEntry]
    sources: dict[str, Any]


def _tunnel_chassis(tunnel_id: str) -> str:
    """The chassis part of a tunnel port's ovn-chassis-id
    ("chassis@remote_ip%local_ip", encaps_tunnel_id_parse)."""
    return tunnel_id.split("@", 1)[0]


def localnet_vifs(pbs: PortBindings, ifaces: Iterable[Iface],
                  chassis_name: str, local_dps: Mapping[int, LocalDatapath]
                  ) -> list[str]:
    """get_localnet_vifs_l3gwports(), first half: the iface-ids of local
    VIFs on local datapaths that have a localnet port."""
    out: dict[str, None] = {}
    for iface in ifaces:
        tunnel_id = iface.external_ids.get("ovn-chassis-id")
        if tunnel_id is not None and _tunnel_chassis(tunnel_id) == \
                chassis_name:
            continue
        if "ovn-localnet-port" in iface.external_ids:
            continue
        if iface.ofport is None or not iface.iface_id:
            continue
        pb = pbs.by_name.get(iface.iface_id)
        if pb is None or not chassis_is(pb.chassis, chassis_name):
            continue
        ld = local_dps.get(pb.datapath.tunnel_key)
        if ld is not None and ld.localnet_port is not None:
            out[iface.iface_id] = None
    return list(out)


def local_l3gw_ports(pbs: PortBindings, chassis_name: str,
                     local_dps: Mapping[int, LocalDatapath]) -> list[str]:
    """get_localnet_vifs_l3gwports(), second half: l3gateway ports bound
    here and all patch ports, on local datapaths with a localnet port."""
    out: dict[str, None] = {}
    for ld in local_dps.values():
        if ld.localnet_port is None:
            continue
        for pb in pbs.by_dp.get(ld.key, ()):
            if (pb.type == "l3gateway" and chassis_is(pb.chassis,
                                                      chassis_name)) \
                    or pb.type == "patch":
                out[pb.logical_port] = None
    return list(out)


def nat_addresses(pbs: PortBindings, gw_ports: Iterable[str],
                  chassis_name: str, active_tunnels: AbstractSet[str]
                  ) -> dict[str, list[LportAddresses]]:
    """get_nat_addresses_and_keys(): the usable nat_addresses elements of
    each gateway port, in column order (consider_nat_address)."""
    out: dict[str, list[LportAddresses]] = {}
    for name in gw_ports:
        pb = pbs.by_name.get(name)
        if pb is None:
            continue
        elements = list(pb.nat_addresses or ())
        if not elements and "nat-addresses" in pb.options:
            elements = [pb.options["nat-addresses"]]    # pre-upgrade form
        for element in elements:
            la, lport = extract_addresses_with_port(element)
            if la is None:
                continue
            if lport is None and pb.type == "patch":
                continue
            if lport is not None and not lport_is_chassis_resident(
                    pbs, chassis_name, active_tunnels, lport):
                continue
            out.setdefault(pb.logical_port, []).append(la)
    return out


def garp_announcements(pbs: PortBindings, ifaces: Iterable[Iface],
                       chassis_name: str,
                       local_dps: Mapping[int, LocalDatapath],
                       active_tunnels: AbstractSet[str] = frozenset()
                       ) -> GarpPlan:
    """send_garp_rarp_prepare(): everything this chassis announces.
    'active_tunnels' names the chassis with a BFD session up (for
    chassisredirect residency).  Main thread, on SB or interface
    changes; the result is handed to GarpJob as an immutable snapshot."""
    vifs = localnet_vifs(pbs, ifaces, chassis_name, local_dps)
    gw_ports = local_l3gw_ports(pbs, chassis_name, local_dps)
    nats = nat_addresses(pbs, gw_ports, chassis_name, active_tunnels)
    entries: dict[str, GarpEntry] = {}
    sources: dict[str, Any] = {}

    def add(name: str, pb: Any, mac: bytes, ip: bytes | None) -> None:
        if name not in entries:
            entries[name] = GarpEntry(mac, ip, pb.datapath.tunnel_key,
                                      pb.tunnel_key)
            sources[name] = pb

    for name in vifs + gw_ports:        # send_garp_rarp_update()
        pb = pbs.by_name.get(name)
        if pb is None or pb.type == "localport":
            continue
        if pb.type in ("l3gateway", "patch"):
            # 23.03 pops a port's elements last-added first and keeps the
            # first entry of a name: the last element wins.
            for la in reversed(nats.pop(name, [])):
                for ip, _ in la.ipv4:
                    add(f"{name}-{fmt_ip4(ip)}", pb, la.mac, ip)
                if not la.ipv4:
                    add(f"{name}-noip", pb, la.mac, None)
            continue
        for text in pb.mac or ():
            lsp = extract_lsp_addresses(text)
            if lsp is not None:
                add(name, pb, lsp.mac, lsp.ipv4[0][0] if lsp.ipv4 else None)
                break
    return GarpPlan(entries, sources)


class MacBindingWrite(NamedTuple):
    """A MAC_Binding row 23.03 writes for a new local announcement: on the
    router port 'logical_port' of 'datapath', 'ip' -> 'mac'; when
    'update_only' only an existing row is updated."""
    logical_port: str
    datapath: Any
    ip: str
    mac: str
    update_only: bool


def local_mac_bindings(plan: GarpPlan, new_names: Iterable[str],
                       local_dps: Mapping[int, LocalDatapath]
                       ) -> list[MacBindingWrite]:
    """23.03's send_garp_locally() for the entries 'new_names' (those not
    announced before): the MAC_Bindings a gARP from that port would make
    the peer routers of its datapath learn.  Only IPv4 entries; the
    announcing port's own link is skipped.  Written by the main thread
    when it has an SB transaction."""
    out = []
    for name in new_names:
        entry = plan.entries.get(name)
        if entry is None or entry.ip is None:
            continue
        src = plan.sources[name]
        ld = local_dps.get(src.datapath.tunnel_key)
        if ld is None:
            continue
        for local, remote in ld.peer_ports:
            if local is src:
                continue
            update_only = not smap_get_bool(
                remote.datapath.external_ids,
                "always_learn_from_arp_request", True)
            out.append(MacBindingWrite(remote.logical_port, remote.datapath,
                                       fmt_ip4(entry.ip), fmt_mac(entry.mac),
                                       update_only))
    return out
