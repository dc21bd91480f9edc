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
import ovs.vlog

from pinctrl import coverage, dbutil
from pinctrl.actions.dns import build_dns_cache
from pinctrl.state import SharedState

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
                     "type"],
}


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
        # Summary for pinctrl/show, rebuilt with the caches (main thread).
        self.summary: dict[str, int | bool] = {}

    def run(self, chassis_name: str | None) -> None:
        """One main-loop step: pull DB updates, rebuild what changed."""
        self.idl.run()
        if self.idl.change_seqno != self._seen_seqno:
            self._seen_seqno = self.idl.change_seqno
            self._rebuild(chassis_name)

    def _notify(self, event, row, updates=None) -> None:
        """IDL hook (main thread, inside idl.run()): remember the table."""
        self._dirty.add(row._table.name)

    def wait(self, poller: ovs.poller.Poller) -> None:
        self.idl.wait(poller)

    def close(self) -> None:
        self.idl.close()

    def connected(self) -> bool:
        return dbutil.idl_connected(self.idl)

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
