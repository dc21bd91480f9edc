"""The DHCPv6 prefix-delegation clients this chassis runs (main thread;
pure over IDL rows).

OVN 23.03's prepare_ipv6_prefixd() and fill_ipv6_prefix_state()
(controller/pinctrl.c): for every Port_Binding with
options:ipv6_prefix_delegation=true (northd sets it on a gateway router
port from its NB options:prefix_delegation) on a local datapath, with a
peer, and hosted here (an l3gateway port bound here, or its "cr-" port
resident here):

* the client's source: the port's first MAC entry that parses, and its
  first IPv6 address (of the first entry that has one), else the EUI-64
  link-local address of that MAC;
* one client per router port of the same datapath with a patch peer and
  options:ipv6_prefix=true (NB options:prefix): Client Identifier from
  that port's MAC, a prefix already in its options:ipv6_ra_pd_list
  ("<iaid>:<prefix>/<plen>") as the starting point;
* the messages are injected into the gateway port's peer (the switch with
  the upstream network), and the server's answers must come back through
  the gateway port.

The result, {downstream port name: PdConfig}, goes to the handler's PdJob
(handler/pd_job.py).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pinctrl.db.addresses import extract_lsp_addresses, inet_pton6
from pinctrl.db.bfd_plan import hosted_here
from pinctrl.db.local_datapaths import LocalDatapath, PortBindings, smap_get_bool
from pinctrl.shared.records import PdConfig


def eui64_lla(mac: bytes) -> bytes:
    """in6_generate_lla(): fe80::/64 with the modified EUI-64 of 'mac'."""
    return (bytes.fromhex("fe80000000000000") + bytes((mac[0] ^ 2,))
            + mac[1:3] + b"\xff\xfe" + mac[3:6])


def parse_pd_list(text: str | None) -> tuple[int, bytes | None, int]:
    """options:ipv6_ra_pd_list "<iaid>:<prefix>/<plen>" -> (iaid, prefix,
    plen); (0, None, 0) when absent or unparsable (23.03's ovs_scan
    "%u:%s/%d")."""
    if not text:
        return 0, None, 0
    aid, sep, rest = text.partition(":")
    prefix, sep2, plen = rest.rpartition("/")
    addr = inet_pton6(prefix) if sep and sep2 else None
    if not aid.isdigit() or addr is None or not plen.isdigit():
        return 0, None, 0
    return int(aid) & 0xFFFFFFFF, addr, int(plen)


def _source(pb: Any) -> tuple[bytes, bytes] | None:
    """(MAC, IPv6) of the gateway port, or None without a MAC."""
    mac = None
    for text in pb.mac or ():
        la = extract_lsp_addresses(text)
        if la is None:
            continue
        mac = la.mac
        if la.ipv6:
            return mac, la.ipv6[0][0]
    return None if mac is None else (mac, eui64_lla(mac))


def _first_mac(pb: Any) -> bytes | None:
    for text in pb.mac or ():
        la = extract_lsp_addresses(text)
        if la is not None:
            return la.mac
    return None


def prefix_delegation(pbs: PortBindings, chassis_name: str,
                      local_dps: Mapping[int, LocalDatapath]
                      ) -> dict[str, PdConfig]:
    """Main thread: {downstream port: PdConfig}."""
    out: dict[str, PdConfig] = {}
    if not chassis_name:
        return out
    for pb in pbs.rows:
        if not smap_get_bool(pb.options, "ipv6_prefix_delegation", False):
            continue
        ld = local_dps.get(pb.datapath.tunnel_key)
        peer = pbs.peer(pb)
        if ld is None or peer is None:
            continue
        if not hosted_here(pbs, pb, chassis_name):
            continue
        src = _source(pb)
        if src is None:
            continue
        ea, ip6 = src
        for local, _ in ld.peer_ports:
            if not smap_get_bool(local.options, "ipv6_prefix", False):
                continue
            cmac = _first_mac(local)
            if cmac is None or local.logical_port in out:
                continue
            aid, prefix, plen = parse_pd_list(
                local.options.get("ipv6_ra_pd_list"))
            out[local.logical_port] = PdConfig(
                ip6, ea, cmac, peer.datapath.tunnel_key, peer.tunnel_key,
                pb.datapath.tunnel_key, pb.tunnel_key, aid, prefix, plen)
    return out
