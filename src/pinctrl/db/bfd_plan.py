"""The BFD sessions this chassis runs (main thread; pure over IDL rows).

OVN 23.03's bfd_monitor_run() (controller/pinctrl.c), the part that reads
the Southbound DB: every BFD row whose logical_port is a Port_Binding with
options:peer (a router port) that is hosted here - an l3gateway port bound
to this chassis, or a port whose chassisredirect "cr-<port>" is resident
here - becomes a session:

* source MAC: the first entry of the port's `mac` column that parses;
  addresses: the first IPv6 of the port and of dst_ip when dst_ip has an
  IPv6 address and that entry has one, else their first IPv4 (the first
  entry that gives a pair wins);
* UDP source port, discriminator, intervals and multiplier: the row's
  src_port, disc, min_tx, min_rx, detect_mult;
* injected into the router datapath as the port (its tunnel keys);
* an SB status "admin_down" keeps the session AdminDown.

Rows that give no usable pair are skipped (23.03 reads an IPv4 address
that does not exist when dst_ip is IPv6-only and the port IPv4-only).
The result, {bfd_key: BfdConfig}, goes to the handler's BfdJob
(handler/bfd_job.py).  Also here: the br-int tunnel interfaces (OVS Port
external_ids:ovn-chassis-id, how ovn-controller marks its tunnels), from
which BFD is refused.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from pinctrl.db.addresses import extract_ip_addresses, extract_lsp_addresses
from pinctrl.db.garp_plan import Iface
from pinctrl.db.local_datapaths import (
    PortBindings,
    chassis_is,
    lport_is_chassis_resident,
)
from pinctrl.shared.records import BfdConfig, bfd_key, ipv4_mapped


def tunnel_ofports(ifaces: Iterable[Iface]) -> frozenset[int]:
    """OpenFlow ports of br-int's tunnels (Port external_ids
    ovn-chassis-id, set by ovn-controller's encaps module)."""
    return frozenset(i.ofport for i in ifaces
                     if i.ofport is not None
                     and "ovn-chassis-id" in i.external_ids)


def _addresses(pb: Any, dst_ip: str
               ) -> tuple[bytes, bytes, bytes] | None:
    """(src MAC, src IP, dst IP), IPs as 16 bytes, or None."""
    dst = extract_ip_addresses(dst_ip)
    if dst is None:
        return None
    for text in pb.mac or ():
        la = extract_lsp_addresses(text)
        if la is None:
            continue
        if dst.ipv6 and la.ipv6:
            return la.mac, la.ipv6[0][0], dst.ipv6[0][0]
        if la.ipv4 and dst.ipv4:
            return (la.mac, ipv4_mapped(int.from_bytes(la.ipv4[0][0], "big")),
                    ipv4_mapped(int.from_bytes(dst.ipv4[0][0], "big")))
    return None


def hosted_here(pbs: PortBindings, pb: Any, chassis_name: str) -> bool:
    """The router port's gateway pipeline runs here: an l3gateway port
    bound to this chassis, or its chassisredirect port is resident."""
    if pb.type == "l3gateway" and chassis_is(pb.chassis, chassis_name):
        return True
    return lport_is_chassis_resident(pbs, chassis_name, frozenset(),
                                     f"cr-{pb.logical_port}")


def bfd_sessions(pbs: PortBindings, rows: Iterable[Any], chassis_name: str,
                 ifaces: Iterable[Iface] = ()) -> dict[str, BfdConfig]:
    """Main thread: {bfd_key: BfdConfig} for the SB BFD rows 'rows'
    (BFD table rows: logical_port, dst_ip, src_port, disc, min_tx,
    min_rx, detect_mult, status)."""
    tunnels = tunnel_ofports(ifaces)
    out: dict[str, BfdConfig] = {}
    for row in rows:
        pb = pbs.by_name.get(row.logical_port)
        if pb is None or pbs.peer(pb) is None:
            continue
        if not hosted_here(pbs, pb, chassis_name):
            continue
        addrs = _addresses(pb, row.dst_ip)
        if addrs is None:
            continue
        key = bfd_key(row.dst_ip, row.src_port)
        if key in out:
            continue            # 23.03 keeps the first row of a key
        mac, ip_src, ip_dst = addrs
        out[key] = BfdConfig(
            row.logical_port, row.src_port, mac, ip_src, ip_dst,
            row.disc & 0xFFFFFFFF, row.min_tx, row.min_rx,
            row.detect_mult & 0xFF, pb.datapath.tunnel_key, pb.tunnel_key,
            row.status == "admin_down", tunnels)
    return out
