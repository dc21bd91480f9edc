"""What the appctl commands and the metrics thread see of the daemon.

Neither gets the Daemon.  The commands get an AppctlView (main thread),
which offers the members of appctl.CommandContext and of the commands' own
Protocols (show.ShowContext, show.MemoryContext,
mac_binding.MacBindingsContext) and nothing else; the metrics collector
gets a MetricsView (any thread: plain reads), metrics.MetricsSource.  Each
member looks the daemon's parts up when called: the Southbound connection
and the handler thread may have been replaced since the view was made.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

import ovs.db.idl

from pinctrl.daemon.keepalive import ThreadHealth
from pinctrl.daemon.show import (
    ShowReport,
    dns_name_count,
    sb_server_info,
)
from pinctrl.db import idl_util
from pinctrl.db.ovs_config import OVS_DB_NAME
from pinctrl.db.writers.mac_binding import MacBindingWriter
from pinctrl.handler.latency import Histogram
from pinctrl.sb_sync import SB_DB_NAME
from pinctrl.shared.state import SharedState
from pinctrl.support import appctl, runtime

if TYPE_CHECKING:
    from pinctrl.daemon.daemon import Daemon


class AppctlView:
    """appctl's CommandContext and the commands' Protocols (main thread)."""

    __slots__ = ("_daemon",)

    def __init__(self, daemon: Daemon) -> None:
        self._daemon = daemon

    @property
    def shared(self) -> SharedState:
        return self._daemon.shared

    def buffered_packets_summary(self) -> tuple[int, int]:
        h = self._daemon.handler
        return h.buffered_packets_summary() if h is not None else (0, 0)

    def databases(self) -> dict[str, ovs.db.idl.Idl]:
        d = self._daemon
        dbs = {}
        if d.sb is not None:
            dbs[SB_DB_NAME] = d.sb.idl
        if d.ovs_cfg is not None:
            dbs[OVS_DB_NAME] = d.ovs_cfg.idl
        return dbs

    def show_report(self) -> ShowReport:
        """pinctrl/show's figures, gathered now."""
        d = self._daemon
        sb, h, shared = d.sb, d.handler, d.shared
        assert sb is not None and h is not None, "installed after start()"
        with shared.mutex:
            br, chassis = shared.br_int_name, shared.chassis_name
            dns = shared.dns_cache
        caches = appctl.shared_sizes(shared)
        caches["dns_cache names"] = dns_name_count(dns)
        oc = h.conn             # display reads of single attributes
        return ShowReport(
            chassis=chassis,
            chassis_found=bool(sb.summary.get("chassis_found")),
            bridge=br,
            openflow_state=oc.state, openflow_target=oc.target,
            openflow_connects=oc.n_connects,
            openflow_last_error=oc.last_error,
            sb_connected=sb.connected(), sb_remotes=sb.remotes,
            sb_server=idl_util.idl_remote(sb.idl),
            sb_server_role=sb_server_info(sb.idl, SB_DB_NAME),
            sb_rows=dict(sb.summary),
            caches=caches,
            health=d.sup.keepalive.check(),
            systemd=d.sup.systemd_text(),
            metrics_url=(f"http://{d.metrics.host}:{d.metrics.port}/metrics"
                         if d.metrics is not None else None),
            uptime_s=int(time.monotonic() - d.sup.started),
            split_mode=(d.split.show_lines() if d.split is not None
                        else ()),
            json_parser=runtime.json_parser())

    @property
    def mac_bindings(self) -> MacBindingWriter:
        sb = self._daemon.sb
        assert sb is not None       # the view is installed after start-up
        return sb.mac_bindings


class MetricsView:
    """metrics.MetricsSource.  Any thread (the metrics thread calls it on
    every scrape): plain reads, no lock."""

    __slots__ = ("_daemon",)

    def __init__(self, daemon: Daemon) -> None:
        self._daemon = daemon

    def thread_health(self) -> list[ThreadHealth]:
        return self._daemon.sup.keepalive.check()

    def dispatch_latency(self) -> dict[str, Histogram]:
        return self._daemon.latency.snapshot()

    def metrics_gauges(self) -> dict[str, float]:
        """The gauges the main loop last published, and which JSON parser
        the IDLs use."""
        return {**self._daemon.sup.gauges,
                "ovsdb_json_c_parser": float(
                    runtime.json_parser() == runtime.C_PARSER)}

    def queue_depths(self) -> dict[str, int]:
        """Sizes of the shared state's containers, the handler's OpenFlow
        transmit backlog and its buffered frames."""
        out = appctl.shared_sizes(self._daemon.shared)
        out.update(self._daemon.sup.backlog_depths)
        h = self._daemon.handler
        if h is not None:
            out["openflow_tx_bytes"] = h.openflow_tx_bytes()
            out["buffered_packets"] = h.buffered_packets_summary()[1]
        return out
