"""Load-balancer service monitors, the main thread's side: which health
checks this chassis runs (OVN 23.03 controller/pinctrl.c
sync_svc_monitors()), and the status writer's inputs.

A Service_Monitor row is run here when its logical_port's Port_Binding is
bound to this chassis (Port_Binding.chassis).  It becomes a
records.SvcMonitorConfig for the handler's SvcMonitorJob
(handler/svc_monitor_job.py):

* the backend 'ip' (IPv4 or IPv6, else the row is skipped), 'port',
  'protocol' ("udp", anything else TCP);
* the backend's MAC: the Port_Binding's first 'mac' entry that lists the
  IP, or, in an entry without any IP, its MAC;
* options interval (5 s), timeout (3 s), success_count (1),
  failure_count (1);
* the probe's source: src_mac (svc_monitor_mac) and src_ip.

Deviations (docs/opcodes.md): a row whose src_mac or src_ip does not
parse, or whose src_ip is not of the backend's family, is skipped with a
warning (23.03 sends probes from uninitialised addresses); an interval or
timeout below 1 s is taken as 1 s (23.03 would probe on every loop
iteration).

SvcMonitorPlan.run() also tells the Service_Monitor.status writer
(db/writers/svc_monitor.py) which rows stand for which monitor.  Main
thread only.
"""

from __future__ import annotations

import socket
from collections.abc import Iterable
from typing import Any

import ovs.db.idl
import ovs.vlog

from pinctrl.db.addresses import extract_lsp_addresses, parse_mac
from pinctrl.db.local_datapaths import PortBindings, chassis_is
from pinctrl.db.ra_plan import smap_get_int
from pinctrl.db.writers import SbContext
from pinctrl.db.writers.svc_monitor import TABLE, SvcStatusWriter
from pinctrl.shared.records import (
    IPV4_MAPPED_PREFIX,
    SvcKey,
    SvcMonitorConfig,
)
from pinctrl.shared.state import SharedState
from pinctrl.support import coverage
from pinctrl.support.log import RateLimit, rl_log

vlog = ovs.vlog.Vlog("pinctrl")
_rl = RateLimit(1, 5)

MIN_PERIOD_S = 1


def _ip(text: str) -> bytes | None:
    """ip_parse() then ipv6_parse(): 4 or 16 bytes, None if neither."""
    for family in (socket.AF_INET, socket.AF_INET6):
        try:
            return socket.inet_pton(family, text)
        except (OSError, ValueError):
            continue
    return None


def backend_mac(pb: Any, ip: bytes) -> bytes | None:
    """sync_svc_monitors()'s MAC lookup in Port_Binding.mac ('ip' 4 or 16
    bytes)."""
    for entry in pb.mac:
        la = extract_lsp_addresses(entry)
        if la is None:
            continue
        if any(addr == ip for addr, _ in (la.ipv4 if len(ip) == 4
                                          else la.ipv6)):
            return la.mac
        if not la.ipv4 and not la.ipv6:
            return la.mac
    return None


def svc_monitor(row: Any, pb: Any) -> tuple[SvcMonitorConfig | None,
                                            str | None]:
    """Pure.  The configuration of one Service_Monitor row whose port 'pb'
    is bound here, or (None, why it is skipped; None: silently, as
    23.03)."""
    ip = _ip(row.ip)
    if ip is None:
        return None, None
    mac = backend_mac(pb, ip)
    if mac is None:
        return None, None
    src_mac = parse_mac(row.src_mac)
    src_ip = _ip(row.src_ip)
    if src_mac is None or src_ip is None or len(src_ip) != len(ip):
        return None, (f"service monitor {row.logical_port} {row.ip}:"
                      f"{row.port}: unusable src_mac {row.src_mac!r} or "
                      f"src_ip {row.src_ip!r}")
    protocol = row.protocol[0] if isinstance(row.protocol, list) and \
        row.protocol else row.protocol
    options = row.options
    return SvcMonitorConfig(
        pb.datapath.tunnel_key, pb.tunnel_key,
        IPV4_MAPPED_PREFIX + ip if len(ip) == 4 else ip, row.port,
        "udp" if protocol == "udp" else "tcp", mac, src_mac, src_ip,
        1000 * max(smap_get_int(options, "interval", 5), MIN_PERIOD_S),
        1000 * max(smap_get_int(options, "timeout", 3), MIN_PERIOD_S),
        smap_get_int(options, "success_count", 1),
        smap_get_int(options, "failure_count", 1)), None


def svc_monitors(rows: Iterable[Any], pbs: PortBindings, chassis_name: str
                 ) -> tuple[dict[SvcKey, SvcMonitorConfig],
                            dict[SvcKey, list[Any]]]:
    """Main thread.  The monitors of the rows whose port is bound here,
    and the rows of each (23.03 keeps the last row of a key; the status
    is written to all of them)."""
    configs: dict[SvcKey, SvcMonitorConfig] = {}
    rows_of: dict[SvcKey, list[Any]] = {}
    for row in rows:
        pb = pbs.by_name.get(row.logical_port)
        if pb is None or not chassis_is(pb.chassis, chassis_name):
            continue
        cfg, why = svc_monitor(row, pb)
        if cfg is None:
            if why is not None:
                coverage.inc("pinctrl_svc_monitor_bad_config")
                rl_log(vlog, "warn", _rl, why)
            continue
        configs[cfg.key] = cfg
        rows_of.setdefault(cfg.key, []).append(row)
    return configs, rows_of


class SvcMonitorPlan:
    """Publishes the service monitors and keeps the status writer's rows
    current (main thread; SbSync calls run() every loop)."""

    def __init__(self, shared: SharedState) -> None:
        self.shared = shared
        self.writer = SvcStatusWriter(shared)
        self._seen: tuple[Any, Any] | None = None

    def adopt(self, old: SvcMonitorPlan) -> None:
        """A new Southbound connection replaces the one 'old' served:
        keep its writer, which knows the statuses to write."""
        self.writer = old.writer

    def run(self, idl: ovs.db.idl.Idl, ctx: SbContext,
            changed: set[str]) -> None:
        """Recompute when Service_Monitor rows, the port lookups (a new
        object when ports changed) or this chassis changed."""
        seen = (ctx.ports, ctx.chassis_name)
        if seen == self._seen and TABLE not in changed:
            return
        self._seen = seen
        table = idl.tables.get(TABLE)
        configs, rows_of = svc_monitors(
            table.rows.values() if table is not None else (), ctx.ports,
            ctx.chassis_name or "")
        self.shared.set_svc_monitors(configs)
        self.writer.set_rows(rows_of)
