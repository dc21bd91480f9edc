"""IGMP/MLD snooping, the main thread's side: what to snoop and query
(OVN 23.03 controller/pinctrl.c ip_mcast_sync(), first half, and
ip_mcast_snoop_cfg_load()), and the IGMP_Group writer's inputs.

The SB IP_Multicast row of each local datapath (replicated only for the
local datapaths) becomes a records.McastConfig, published for the
handler's McastJob (handler/mcast_job.py):

* enabled: the optional column, false when unset;
* table_size 2048, idle_timeout 300 s, query_max_resp 1 s when unset;
  query_interval idle_timeout / 2 (at least 1 s) when unset;
* the querier (querier=true, snooping enabled) per family: IPv4 needs a
  parsable ip4_src, IPv6 a parsable ip6_src, both a parsable eth_src;
  else that family's querier is off, with 23.03's warnings.  Its general
  query frames are built here once (packet/igmp.py).

Deviation: a query_interval below 1 s is taken as 1 s (23.03 would send
on every loop iteration with 0).  The warnings come once per
configuration change (23.03 repeats them, rate-limited, on every main
loop iteration).

McastPlan.run() also tells the IGMP_Group writer (db/writers/
igmp_group.py) which datapaths are local, and when the IDL's IGMP_Group
rows or this chassis changed.  Main thread only.
"""

from __future__ import annotations

import socket
from collections.abc import Iterable, Mapping
from typing import Any

import ovs.db.idl
import ovs.vlog

from pinctrl.db.addresses import parse_mac
from pinctrl.db.local_datapaths import LocalDatapath, ref
from pinctrl.db.writers import SbContext
from pinctrl.db.writers.igmp_group import TABLE as IGMP_GROUP
from pinctrl.db.writers.igmp_group import IgmpGroupWriter
from pinctrl.packet.igmp import build_igmp_query, build_mld_query
from pinctrl.shared.records import McastConfig
from pinctrl.shared.state import SharedState
from pinctrl.support import coverage
from pinctrl.support.log import RateLimit, rl_log

vlog = ovs.vlog.Vlog("pinctrl")
_rl = RateLimit(1, 5)

TABLE = "IP_Multicast"
DEFAULT_TABLE_SIZE = 2048           # OVN_MCAST_DEFAULT_MAX_ENTRIES
DEFAULT_IDLE_TIMEOUT_S = 300        # OVN_MCAST_DEFAULT_IDLE_TIMEOUT_S
MIN_QUERY_INTERVAL_S = 1            # OVN_MCAST_MIN_QUERY_INTERVAL_S
DEFAULT_QUERY_MAX_RESPONSE_S = 1    # OVN_MCAST_DEFAULT_QUERY_MAX_RESPONSE_S
U32 = 0xFFFFFFFF


def _opt(value: Any, default: Any) -> Any:
    """An optional column: python-ovs gives [] or [value]."""
    if isinstance(value, (list, tuple)):
        return value[0] if value else default
    return default if value is None else value


def _ip(family: int, text: str) -> bytes | None:
    """OVS ip_parse() / ipv6_parse(): inet_pton()."""
    try:
        return socket.inet_pton(family, text)
    except (OSError, ValueError):
        return None


def mcast_config(row: Any) -> tuple[McastConfig, list[str]]:
    """Pure.  ip_mcast_snoop_cfg_load() of one IP_Multicast row: the
    configuration and the warnings 23.03 gives for it."""
    warnings = []
    enabled = bool(_opt(row.enabled, False))
    querier = enabled and bool(_opt(row.querier, False))
    # 23.03 keeps these in uint32_t fields.
    table_size = _opt(row.table_size, DEFAULT_TABLE_SIZE) & U32
    idle = _opt(row.idle_timeout, DEFAULT_IDLE_TIMEOUT_S) & U32
    interval = _opt(row.query_interval,
                    max(idle // 2, MIN_QUERY_INTERVAL_S)) & U32
    max_resp = _opt(row.query_max_resp, DEFAULT_QUERY_MAX_RESPONSE_S) & U32
    igmp = mld = None
    if querier:
        ip4 = _ip(socket.AF_INET, row.ip4_src) if row.ip4_src else None
        if row.ip4_src and ip4 is None:
            warnings.append("IGMP Querier enabled with invalid IPv4 src "
                            "address")
        ip6 = _ip(socket.AF_INET6, row.ip6_src) if row.ip6_src else None
        if row.ip6_src and ip6 is None:
            warnings.append("MLD Querier enabled with invalid IPv6 src "
                            "address")
        if ip4 is None and ip6 is None:
            warnings.append("IGMP Querier enabled without a valid IPv4 or "
                            "IPv6 address")
        eth = parse_mac(row.eth_src) if row.eth_src else None
        if eth is None:
            warnings.append("IGMP Querier enabled with invalid ETH src "
                            "address")
        else:
            igmp = build_igmp_query(eth, ip4, max_resp) if ip4 else None
            mld = build_mld_query(eth, ip6, max_resp) if ip6 else None
    return McastConfig(enabled, table_size, idle,
                       max(interval, MIN_QUERY_INTERVAL_S), row.seq_no,
                       igmp, mld), warnings


def mcast_configs(rows: Iterable[Any], local: Mapping[int, LocalDatapath]
                  ) -> dict[int, McastConfig]:
    """Main thread.  dp key -> McastConfig of the local datapaths' rows
    (warnings logged, rate-limited)."""
    out = {}
    for row in rows:
        dp = ref(row.datapath)
        if dp is None or dp.tunnel_key not in local:
            continue
        cfg, warnings = mcast_config(row)
        for text in warnings:
            coverage.inc("pinctrl_mcast_bad_querier_config")
            rl_log(vlog, "warn", _rl, text)
        out[dp.tunnel_key] = cfg
    return out


class McastPlan:
    """Publishes the snooping configuration and keeps the IGMP_Group
    writer informed (main thread; SbSync calls run() every loop)."""

    def __init__(self, shared: SharedState) -> None:
        self.shared = shared
        self.writer = IgmpGroupWriter(shared)
        self._local: Mapping[int, LocalDatapath] | None = None
        self._chassis: Any = None

    def adopt(self, old: McastPlan) -> None:
        """A new Southbound connection replaces the one 'old' served:
        keep its writer, which knows the handler's tables."""
        self.writer = old.writer

    def run(self, idl: ovs.db.idl.Idl, ctx: SbContext,
            local: Mapping[int, LocalDatapath], changed: set[str]) -> None:
        """'changed': the tables the IDL reported changes of since the
        last call; 'local' is a new object whenever the local datapaths
        were recomputed."""
        new_local = local is not self._local
        if new_local or TABLE in changed:
            self._local = local
            table = idl.tables.get(TABLE)
            self.shared.set_mcast(mcast_configs(
                table.rows.values() if table is not None else (), local))
        if new_local:
            self.writer.set_local({k: ld.datapath for k, ld in local.items()})
        if IGMP_GROUP in changed or ctx.chassis is not self._chassis:
            self._chassis = ctx.chassis
            self.writer.touch()
