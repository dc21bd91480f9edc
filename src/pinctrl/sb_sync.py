"""Main-thread side of pinctrl: the Southbound IDL, caches built from it for
the handler, and (in later issues) Southbound writes.

Everything here runs in the main thread.  The IDL is never touched by the
pinctrl_handler thread: when the DB changes, the main thread builds new
immutable snapshots outside the shared mutex and swaps them in under it,
then wakes the handler through handler_seq.
"""

from __future__ import annotations

import ovs.db.idl
import ovs.poller
import ovs.timeval
import ovs.vlog

from pinctrl import coverage, dbutil
from pinctrl.actions.dns import build_dns_cache
from pinctrl.sb_txn import TxnLoop
from pinctrl.state import SharedState
from pinctrl.writers import SbContext, mac_binding, fdb
from pinctrl.writers.controller_event import ControllerEventWriter
from pinctrl.writers.fdb import FdbWriter
from pinctrl.writers.mac_binding import MacBindingWriter
from pinctrl.writers.port_claims import ActivationWriter, VportWriter

vlog = ovs.vlog.Vlog("sb_sync")

SB_DB_NAME = "OVN_Southbound"

# What we replicate: only the tables and columns pinctrl reads, to keep the
# memory of a large Southbound DB out of this process.
SB_TABLES: dict[str, list[str]] = {
    "Chassis": ["name", "hostname"],
    "Datapath_Binding": ["tunnel_key", "external_ids"],
    # dns_lookup's records (actions/dns.py); datapaths refer to
    # Datapath_Binding rows, whose tunnel keys the handler matches.
    "DNS": ["records", "datapaths", "external_ids"],
    "Port_Binding": ["logical_port", "tunnel_key", "datapath", "chassis",
                     "type", "options", "virtual_parent"],
    # Written from what the handler learns (pinctrl.writers), and read
    # back: MAC_Binding changes release buffered packets.
    "MAC_Binding": ["logical_port", "ip", "mac", "datapath", "timestamp"],
    "FDB": ["mac", "dp_key", "port_key"],
    "Controller_Event": ["event_type", "event_info", "chassis", "seq_num"],
}
# Tables whose changes rebuild the port lookups of SbContext.
_PORT_TABLES = {"Port_Binding", "Datapath_Binding"}


class SbSync:
    """The Southbound IDL and the caches derived from it (main thread)."""

    def __init__(self, shared: SharedState, remotes: str, schema_json: dict,
                 probe_interval_ms: int | None = None) -> None:
        self.shared = shared
        self.remotes = remotes
        self.idl = dbutil.make_idl(remotes, schema_json, SB_TABLES,
                                   leader_only=False,
                                   probe_interval_ms=probe_interval_ms)
        self._seen_seqno = -1
        self.n_rebuilds = 0
        # Tables with row changes since the last rebuild, recorded by the
        # IDL's notify hook during idl.run() (main thread).
        self._dirty: set[str] = set()
        self._dns_rows_seen = 0
        self.n_dns_rebuilds = 0
        self.idl.notify = self._notify
        mac_binding.create_index(self.idl)
        fdb.create_index(self.idl)
        # MAC_Binding rows created or updated during the last idl.run().
        self._changed_mac_bindings: list = []
        self.ctx = SbContext(self.idl)
        self._ports_seen = (-1, -1)
        self.mac_bindings = MacBindingWriter(shared)
        self.txn_loop = TxnLoop(self.idl, [
            self.mac_bindings, VportWriter(shared), ControllerEventWriter(
                shared), FdbWriter(shared), ActivationWriter(shared)])
        # Summary for pinctrl/show, rebuilt with the caches (main thread).
        self.summary: dict[str, int | bool] = {}

    def run(self, chassis_name: str | None) -> None:
        """One main-loop step: pull DB updates, rebuild what changed, write
        what the handler learnt."""
        self.idl.run()
        if self.idl.change_seqno != self._seen_seqno:
            self._seen_seqno = self.idl.change_seqno
            self._rebuild(chassis_name)
        if self.ctx.chassis_name != chassis_name:
            self.ctx.chassis_name = chassis_name
            self._find_chassis()
        self._release_buffered()
        self.txn_loop.run(self.ctx, ovs.timeval.msec(), self.writable())

    def _notify(self, event, row, updates=None) -> None:
        """IDL hook (main thread, inside idl.run()): remember the table and
        the MAC_Binding rows that appeared or changed."""
        table = row._table.name
        self._dirty.add(table)
        if table == "MAC_Binding" and event != ovs.db.idl.ROW_DELETE:
            self._changed_mac_bindings.append(row)

    def wait(self, poller: ovs.poller.Poller) -> None:
        self.idl.wait(poller)
        self.txn_loop.wait(poller, ovs.timeval.msec(), self.writable())

    def close(self) -> None:
        self.idl.close()

    def connected(self) -> bool:
        return dbutil.idl_connected(self.idl)

    def writable(self) -> bool:
        """Connected and monitoring: a transaction can be committed."""
        return (self.connected()
                and self.idl.state == self.idl.IDL_S_MONITORING)

    def _rebuild(self, chassis_name: str | None) -> None:
        """Build new snapshots from the IDL (outside the mutex)."""
        coverage.inc("sb_sync_rebuild")
        self.n_rebuilds += 1
        tables = self.idl.tables
        chassis_rows = tables["Chassis"].rows.values()
        self.summary = {
            "datapaths": len(tables["Datapath_Binding"].rows),
            "port_bindings": len(tables["Port_Binding"].rows),
            "chassis_found": any(c.name == chassis_name
                                 for c in chassis_rows),
            "dns_rows": len(tables["DNS"].rows) if "DNS" in tables else 0,
        }
        dirty, self._dirty = self._dirty, set()
        self._sync_dns(dirty)
        self._sync_ports(dirty)
        if "Chassis" in dirty or self.ctx.chassis is None:
            self._find_chassis()

    def _sync_ports(self, dirty: set[str]) -> None:
        """Rebuild the port lookups when ports or datapaths changed (the
        row counts catch a reconnection, which clears without notices)."""
        tables = self.idl.tables
        counts = (len(tables["Port_Binding"].rows),
                  len(tables["Datapath_Binding"].rows))
        if not dirty & _PORT_TABLES and counts == self._ports_seen:
            return
        self._ports_seen = counts
        by_key, by_name = {}, {}
        for pb in tables["Port_Binding"].rows.values():
            by_name[pb.logical_port] = pb
            dp = pb.datapath[0] if isinstance(pb.datapath, list) else \
                pb.datapath
            if dp is not None:
                by_key[(dp.tunnel_key, pb.tunnel_key)] = pb
        self.ctx.pb_by_key, self.ctx.pb_by_name = by_key, by_name

    def _find_chassis(self) -> None:
        name = self.ctx.chassis_name
        self.ctx.chassis = next(
            (c for c in self.idl.tables["Chassis"].rows.values()
             if c.name == name), None) if name else None

    def _release_buffered(self) -> None:
        """Tell the handler which neighbours new/changed MAC_Binding rows
        resolve, when it has packets buffered (OVN run_buffered_binding)."""
        rows, self._changed_mac_bindings = self._changed_mac_bindings, []
        if rows and self.shared.n_buffered_packets:
            resolved = mac_binding.resolved_neighbors(rows, self.ctx)
            if resolved:
                self.shared.add_resolved_neighbors(resolved)

    def _sync_dns(self, dirty: set[str]) -> None:
        """Rebuild and publish the DNS cache if the DNS table or the
        datapaths changed.  A reconnection clears the IDL without row
        notifications, hence the row-count check as well."""
        table = self.idl.tables.get("DNS")
        n_rows = len(table.rows) if table is not None else 0
        if (not dirty & {"DNS", "Datapath_Binding"}
                and n_rows == self._dns_rows_seen):
            return
        self._dns_rows_seen = n_rows
        rows = table.rows.values() if table is not None else ()
        cache = build_dns_cache(
            (r.external_ids.get("dns_id"), r.records,
             [dp.tunnel_key for dp in r.datapaths])
            for r in rows)
        self.n_dns_rebuilds += 1
        coverage.inc("sb_sync_dns_cache_rebuild")
        self.shared.set_dns_cache(cache)
