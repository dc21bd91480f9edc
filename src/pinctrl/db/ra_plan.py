"""The periodic IPv6 Router Advertisements to send (main thread).

OVN 23.03's prepare_ipv6_ras() and ipv6_ra_update_config(): every
Port_Binding with options:ipv6_ra_send_periodic=true (on any chassis: the
local-only flag keeps each chassis's RAs on its own ports) whose
options:peer names a Port_Binding has its ipv6_ra_* options parsed by
parse_ra_config() and its RA frame built once: {router port name:
RaEntry}, published for the handler's RaJob (handler/ra_job.py).  Invalid
configurations are skipped with 23.03's warning (rate-limited here).

The frame: Ethernet from ipv6_ra_src_eth to 33:33:00:00:00:01, IPv6 from
ipv6_ra_src_addr to ff02::1, hop limit 255; RA header (M/O and PRF flags,
router lifetime 65535), then Source LLA, MTU (if not 0), one Prefix
Information per IPv6 prefix, RDNSS, DNSSL, Route Information
(packet/nd_options.py, shared with put_nd_ra_opts).

Deviations (docs/compat.md): 23.03 dereferences a missing ipv6_ra_prf
(crash); here it means medium preference.  Intervals with min < 1 s or
max < min are refused (23.03 would send on every loop iteration or divide
by zero when max == min; min == max is accepted here as a fixed interval).
A malformed ipv6_ra_route_info item leaves, in 23.03, the options already
encoded after the end of the IPv6 payload (receivers ignore them); here
they are left out.  The warnings are rate-limited (23.03 repeats them on
every main-loop iteration).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import ovs.vlog

from pinctrl.db.addresses import extract_ip_addresses, inet_pton6, parse_mac
from pinctrl.db.idl_util import smap_get_int
from pinctrl.db.local_datapaths import PortBindings, smap_get_bool
from pinctrl.packet.flow import IPPROTO_ICMPV6
from pinctrl.packet.headers import compose_ipv6
from pinctrl.packet.nd_options import (
    PREFIX_AUTONOMOUS,
    PREFIX_ON_LINK,
    RA_FLAG_MANAGED,
    RA_FLAG_OTHER,
    icmp6_set_csum,
    opt_dnssl,
    opt_mtu,
    opt_prefix,
    opt_rdnss,
    opt_route_info,
    opt_slla,
    prf_flags,
    ra_header,
)
from pinctrl.shared.records import RaEntry
from pinctrl.support import coverage
from pinctrl.support.barrier import bad_row
from pinctrl.support.log import RateLimit, rl_log

vlog = ovs.vlog.Vlog("pinctrl")
_rl = RateLimit(1, 5)
ND_RA_MAX_INTERVAL_DEFAULT = 600
ND_MTU_DEFAULT = 0
ALL_NODES_MAC = bytes.fromhex("333300000001")
ALL_NODES = bytes.fromhex("ff020000000000000000000000000001")
RA_HOP_LIMIT = 255


def nd_ra_min_interval_default(max_interval: int) -> int:
    """RFC 4861 §6.2.1 default, with C's truncating division."""
    if max_interval >= 9:
        return int(max_interval / 3)
    return int(max_interval * 3 / 4)


@dataclass(frozen=True, slots=True)
class RaConfig:
    """A router port's periodic-RA configuration (struct ipv6_ra_config)."""
    min_interval: int
    max_interval: int
    mtu: int
    mo_flags: int
    la_flags: int
    prefixes: tuple[tuple[bytes, int], ...]    # (address, prefix length)
    eth_src: bytes
    ipv6_src: bytes
    rdnss: bytes | None
    dnssl: str
    route_info: str


def parse_ra_config(options: Mapping[str, str]
                    ) -> tuple[RaConfig | None, str | None]:
    """Pure.  ipv6_ra_update_config(): (config, None), or (None, 23.03's
    warning) for an unusable configuration."""
    max_interval = smap_get_int(options, "ipv6_ra_max_interval",
                                ND_RA_MAX_INTERVAL_DEFAULT)
    min_interval = smap_get_int(options, "ipv6_ra_min_interval",
                                nd_ra_min_interval_default(max_interval))
    mtu = smap_get_int(options, "ipv6_ra_mtu", ND_MTU_DEFAULT)
    mo_flags, la_flags = 0, PREFIX_ON_LINK

    mode = options.get("ipv6_ra_address_mode")
    if mode is None:
        return None, "No address mode specified"
    if mode == "dhcpv6_stateless":
        mo_flags |= RA_FLAG_OTHER
        la_flags |= PREFIX_AUTONOMOUS
    elif mode == "dhcpv6_stateful":
        mo_flags |= RA_FLAG_MANAGED
    elif mode == "slaac":
        la_flags |= PREFIX_AUTONOMOUS
    else:
        return None, f"Invalid address mode {mode}"

    prf = options.get("ipv6_ra_prf")
    if prf is not None:
        mo_flags |= prf_flags(prf)

    prefixes: tuple[tuple[bytes, int], ...] = ()
    text = options.get("ipv6_ra_prefixes")
    if text is not None:
        la = extract_ip_addresses(text)
        if la is None:
            return None, f"Invalid IPv6 prefixes: {text}"
        prefixes = la.ipv6

    text = options.get("ipv6_ra_src_eth")
    eth_src = parse_mac(text) if text is not None else None
    if eth_src is None:
        return None, f"Invalid ethernet source {text or '(null)'}"
    text = options.get("ipv6_ra_src_addr")
    ipv6_src = inet_pton6(text) if text is not None else None
    if ipv6_src is None:
        return None, f"Invalid IP source {text or '(null)'}"
    text = options.get("ipv6_ra_rdnss")
    rdnss = inet_pton6(text) if text is not None else None
    if text is not None and rdnss is None:
        return None, f"Invalid RDNSS source {text}"

    if min_interval < 1 or max_interval < min_interval:
        return None, (f"Invalid RA interval: min {min_interval} s, max "
                      f"{max_interval} s")
    return RaConfig(min_interval, max_interval, mtu, mo_flags, la_flags,
                    prefixes, eth_src, ipv6_src, rdnss,
                    options.get("ipv6_ra_dnssl", ""),
                    options.get("ipv6_ra_route_info", "")), None


def route_info_options(text: str) -> bytes:
    """Pure.  The Route Information options of ipv6_ra_route_info,
    "PRF-PREFIX/LEN,..." (packet_put_ra_route_info_opt): PRF HIGH / LOW /
    anything else medium; further "-PREFIX" parts of an item reuse its
    PRF.  An item whose prefix has no IPv6 address stops the list and
    drops it all (see the module docstring)."""
    out = bytearray()
    for item in (t for t in text.split(",") if t):
        flags = 0
        for index, part in enumerate(p for p in item.split("-") if p):
            if index == 0:
                flags = prf_flags(part)
                continue
            la = extract_ip_addresses(part)
            if la is None or not la.ipv6:
                return b""
            addr, plen = la.ipv6[0]
            mask = ((1 << 128) - 1) ^ ((1 << (128 - plen)) - 1)
            network = (int.from_bytes(addr, "big") & mask).to_bytes(16, "big")
            out += opt_route_info(flags, plen, network)
    return bytes(out)


def build_ra_frame(cfg: RaConfig) -> bytes | None:
    """Pure.  The periodic RA for 'cfg' (compose_nd_ra + the option
    writers of ipv6_ra_send); None if it exceeds an IPv6 payload."""
    l4 = bytearray(ra_header(cfg.mo_flags))
    l4 += opt_slla(cfg.eth_src)
    if cfg.mtu:
        l4 += opt_mtu(cfg.mtu)
    for addr, plen in cfg.prefixes:
        l4 += opt_prefix(plen, cfg.la_flags, addr)
    if cfg.rdnss is not None:
        l4 += opt_rdnss(cfg.rdnss)
    if cfg.dnssl:
        l4 += opt_dnssl(cfg.dnssl) or b""
    if cfg.route_info:
        l4 += route_info_options(cfg.route_info)
    if len(l4) > 0xFFFF:
        return None
    icmp6_set_csum(l4, 0, cfg.ipv6_src, ALL_NODES)
    return compose_ipv6(cfg.eth_src, ALL_NODES_MAC, cfg.ipv6_src, ALL_NODES,
                        IPPROTO_ICMPV6, RA_HOP_LIMIT, bytes(l4))


def prepare_ras(pbs: PortBindings) -> dict[str, RaEntry]:
    """Main thread: prepare_ipv6_ras() over all Port_Bindings (23.03's
    local_active_ports_ras is every PB with ipv6_ra_send_periodic)."""
    out: dict[str, RaEntry] = {}
    for pb in pbs.rows:
        try:
            entry = _ra_entry(pbs, pb)
        except Exception as e:      # this row only: the others are served
            bad_row("Port_Binding", pb.logical_port, e)
            continue
        if entry is not None:
            out[pb.logical_port] = entry
    return out


def _ra_entry(pbs: PortBindings, pb: Any) -> RaEntry | None:
    """The periodic RA of router port 'pb', if it sends them."""
    if not smap_get_bool(pb.options, "ipv6_ra_send_periodic", False):
        return None
    peer = pbs.peer(pb)
    if peer is None:
        return None
    cfg, reason = parse_ra_config(pb.options)
    frame = build_ra_frame(cfg) if cfg is not None else None
    if cfg is None or frame is None:
        coverage.inc("pinctrl_ra_drop_bad_config")
        rl_log(vlog, "warn", _rl, f"{pb.logical_port}: "
               f"{reason or 'Router Advertisement too big'}")
        return None
    return RaEntry(cfg.min_interval, cfg.max_interval, frame,
                   peer.datapath.tunnel_key, peer.tunnel_key)
