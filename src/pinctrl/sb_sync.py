"""Main-thread side of pinctrl: the Southbound IDL, caches built from it for
the handler, and (in later issues) Southbound writes.

Everything here runs in the main thread.  The IDL is never touched by the
pinctrl_handler thread: when the DB changes, the main thread builds new
immutable snapshots outside the shared mutex and swaps them in under it,
then wakes the handler through handler_seq.
"""

from __future__ import annotations

from typing import Any

import ovs.db.idl
import ovs.poller
import ovs.vlog

from pinctrl.db import idl_util
from pinctrl.db.bfd_plan import bfd_sessions
from pinctrl.db.pd_plan import prefix_delegation
from pinctrl.db.dns_cache import DnsCacheBuilder
from pinctrl.db.garp_plan import garp_announcements, local_mac_bindings
from pinctrl.db.local_datapaths import PortBindings, compute_local_datapaths
from pinctrl.db.mcast_plan import McastPlan
from pinctrl.db.ovs_config import ChassisInputs
from pinctrl.db.ra_plan import prepare_ras
from pinctrl.db.svc_monitor_plan import SvcMonitorPlan
from pinctrl.db.txn import TxnLoop
from pinctrl.db.writers import SbContext, fdb, mac_binding
from pinctrl.db.writers.bfd import BfdStatusWriter
from pinctrl.db.writers.pd import PdPrefixWriter
from pinctrl.db.writers.controller_event import ControllerEventWriter
from pinctrl.db.writers.fdb import FdbWriter
from pinctrl.db.writers.mac_binding import MacBindingWriter
from pinctrl.db.writers.port_claims import ActivationWriter, VportWriter
from pinctrl.shared.state import SharedState
from pinctrl.support import coverage
from pinctrl.support.barrier import Barrier, bad_row

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
                     "type", "options", "virtual_parent", "mac",
                     "nat_addresses", "additional_chassis",
                     "ha_chassis_group"],
    # chassisredirect residency and local datapaths (local_datapaths.py)
    "HA_Chassis_Group": ["name", "ha_chassis", "ref_chassis"],
    "HA_Chassis": ["chassis", "priority"],
    # Written from what the handler learns (db/writers/), and read
    # back: MAC_Binding changes release buffered packets.
    "MAC_Binding": ["logical_port", "ip", "mac", "datapath", "timestamp"],
    "FDB": ["mac", "dp_key", "port_key"],
    "Controller_Event": ["event_type", "event_info", "chassis", "seq_num"],
    # BFD sessions (db/bfd_plan.py); status written by db/writers/bfd.py.
    "BFD": ["logical_port", "dst_ip", "src_port", "disc", "min_tx",
            "min_rx", "detect_mult", "status"],
    # IGMP/MLD snooping configuration (db/mcast_plan.py) and the groups
    # this chassis learnt (db/writers/igmp_group.py).
    "IP_Multicast": ["datapath", "enabled", "querier", "eth_src", "ip4_src",
                     "ip6_src", "table_size", "idle_timeout",
                     "query_interval", "query_max_resp", "seq_no"],
    "IGMP_Group": ["address", "datapath", "chassis", "ports"],
    # Load-balancer health checks (db/svc_monitor_plan.py); status
    # written by db/writers/svc_monitor.py.
    "Service_Monitor": ["ip", "protocol", "port", "logical_port",
                        "src_mac", "src_ip", "status", "options"],
}
# Tables whose changes rebuild the port lookups of SbContext.
_PORT_TABLES = {"Port_Binding", "Datapath_Binding"}
# ... and the local datapaths, gARP and RA snapshots.
_LOCAL_TABLES = _PORT_TABLES | {"Chassis", "HA_Chassis_Group", "HA_Chassis",
                                "BFD"}
# Replicated only for the local datapaths (conditional monitoring): a large
# Southbound holds far more of these than one chassis needs.
_LOCAL_ONLY = {"MAC_Binding": "datapath", "FDB": "dp_key",
               "IP_Multicast": "datapath", "IGMP_Group": "datapath"}


class SbSync:
    """The Southbound IDL and the caches derived from it (main thread)."""

    def __init__(self, shared: SharedState, remotes: str, schema_json: dict,
                 probe_interval_ms: int | None = None) -> None:
        self.shared = shared
        self.remotes = remotes
        self.idl = idl_util.make_idl(remotes, schema_json, SB_TABLES,
                                   leader_only=False)
        if probe_interval_ms is not None:
            self.set_probe_interval(probe_interval_ms)
        self._seen_seqno = -1
        self.n_rebuilds = 0
        # Tables with row changes since the last rebuild, recorded by the
        # IDL's notify hook during idl.run() (main thread).
        self._dirty: set[str] = set()
        # The same, for the feature plans run after the local datapaths.
        self._changed: set[str] = set()
        self._local_dirty = True
        # DNS rows as the cache knows them; uuids the IDL reported changed.
        self._dns_builder = DnsCacheBuilder()
        self._dns_known: set = set()
        self._dns_changed: set = set()
        self.n_dns_rebuilds = 0
        self.idl.notify = self._notify
        fdb.create_index(self.idl)
        # MAC_Binding rows created or updated during the last idl.run(),
        # and the buffered next hops last looked up (_release_buffered).
        self._mac_bindings_changed = False
        self._buffered_keys_seen: frozenset = frozenset()
        self._buffered_keys_bound: frozenset = frozenset()
        self.ctx = SbContext(self.idl)
        self._ports_seen = (-1, -1)
        self.mac_bindings = MacBindingWriter(shared)
        self.mcast = McastPlan(shared)
        self.svc_monitors = SvcMonitorPlan(shared)
        # Local datapaths and what was last announced (main thread).
        self._local_seen: tuple | None = None
        self.local_datapaths: dict = {}
        self._garp_names: set[str] = set()
        # Monitor conditions of the _LOCAL_ONLY tables (none until the
        # local datapaths are known).
        self._local_conds: dict[str, list] = {t: [] for t in _LOCAL_ONLY}
        self._conditions_acked()
        self.txn_loop = TxnLoop(self.idl, [
            self.mac_bindings, VportWriter(shared), ControllerEventWriter(
                shared), FdbWriter(shared), ActivationWriter(shared),
            BfdStatusWriter(shared), PdPrefixWriter(shared),
            self.mcast.writer, self.svc_monitors.writer])
        # Summary for pinctrl/show, rebuilt with the caches (main thread).
        self.summary: dict[str, int | bool] = {}
        # One exception barrier per step of run() (support/barrier.py).
        # The IDL and the writes are retried after a back-off (they would
        # fail again at once); the others run again on the next change.
        self.barriers = {"idl": Barrier("sb_idl"),
                         "writes": Barrier("sb_writes")}
        for step in ("dns", "ports", "local", "buffered", "mcast",
                     "svc_monitors"):
            self.barriers[step] = Barrier(f"sb_{step}", backoff=False)

    def run(self, now: int, chassis_name: str | None,
            inputs: ChassisInputs | None = None) -> None:
        """One main-loop step: pull DB updates, rebuild what changed, write
        what the handler learnt.  'now' is ovs.timeval.msec() (the write
        retries' clock); 'inputs' come from the local OVS DB.  Each step
        is behind its own exception barrier: a step that raises is
        counted, logged and skipped, the others go on with what they
        have (the snapshots published before stay in place)."""
        b = self.barriers
        b["idl"].run(now, self.idl.run)
        if self.ctx.chassis_name != chassis_name:
            self.ctx.chassis_name = chassis_name
            self._find_chassis()
        if self.idl.change_seqno != self._seen_seqno:
            self._seen_seqno = self.idl.change_seqno
            self._rebuild(now, chassis_name)
        b["local"].run(now, self._sync_local, chassis_name, inputs)
        changed, self._changed = self._changed, set()
        b["mcast"].run(now, self.mcast.run, self.idl, self.ctx,
                       self.local_datapaths, changed)
        b["svc_monitors"].run(now, self.svc_monitors.run, self.idl,
                              self.ctx, changed)
        b["buffered"].run(now, self._release_buffered)
        b["writes"].run(now, self.txn_loop.run, self.ctx, now,
                        self.writes_ready())

    def _notify(self, event: str, row: Any, updates: Any = None) -> None:
        """IDL hook (main thread, inside idl.run()): remember the table and
        the MAC_Binding rows that appeared or changed."""
        table = row._table.name
        self._dirty.add(table)
        if table == "MAC_Binding":
            self.ctx.mac_binding_index.row_event(event, row)
            if event != ovs.db.idl.ROW_DELETE:
                self._mac_bindings_changed = True
        elif table == "DNS":
            self._dns_changed.add(row.uuid)

    def wait(self, poller: ovs.poller.Poller, now: int) -> None:
        """Wake on DB traffic and when a write retry is due after 'now';
        a step backing off after an exception wakes when it may run."""
        for step, wait in (("idl", lambda: self.idl.wait(poller)),
                           ("writes", lambda: self.txn_loop.wait(
                               poller, now, self.writes_ready()))):
            if self.barriers[step].backing_off(now):
                self.barriers[step].wait(poller)
            else:
                wait()

    def set_probe_interval(self, interval_ms: int) -> None:
        """The inactivity probe of the Southbound connection (main
        thread; ovn-remote-probe-interval, idl_util.sb_probe_interval)."""
        if idl_util.set_probe_interval(self.idl, interval_ms):
            vlog.info(f"Southbound inactivity probe interval: "
                      f"{interval_ms} ms")

    def adopt_writes(self, old: SbSync) -> None:
        """Main thread, when the Southbound remotes changed and this
        connection replaces 'old': carry over the writers with everything
        they still have to write (learnt bindings, claims, events), so a
        switch loses nothing.  What old had in flight is retried here: the
        operations are recomputed from this IDL, so an entry that did land
        on the old server is not written twice."""
        old.txn_loop.abandon()
        self.txn_loop.writers = old.txn_loop.writers
        self.mac_bindings = old.mac_bindings
        self.mcast.adopt(old.mcast)
        self.svc_monitors.adopt(old.svc_monitors)

    def close(self) -> None:
        self.idl.close()

    def connected(self) -> bool:
        return idl_util.idl_connected(self.idl)

    def writable(self) -> bool:
        """Connected and monitoring: a transaction can be committed."""
        return (self.connected()
                and self.idl.state == self.idl.IDL_S_MONITORING)

    def _rebuild(self, now: int, chassis_name: str | None) -> None:
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
        self._changed |= dirty
        if dirty & _LOCAL_TABLES:
            self._local_dirty = True
        self.barriers["dns"].run(now, self._sync_dns, dirty)
        self.barriers["ports"].run(now, self._sync_ports, dirty)
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
        self.ctx.ports = PortBindings(tables["Port_Binding"].rows.values())

    def _sync_local(self, chassis: str | None,
                    inputs: ChassisInputs | None) -> None:
        """Recompute the local datapaths and the gARP / RA snapshots when
        the ports, the chassis or the local interfaces changed (OVN
        send_garp_rarp_prepare, prepare_ipv6_ras); restrict MAC_Binding and
        FDB replication to the local datapaths."""
        dirty, self._local_dirty = self._local_dirty, False
        seen = (chassis, inputs, self._ports_seen)
        if not dirty and seen == self._local_seen:
            return
        self._local_seen = seen
        coverage.inc("sb_sync_local_rebuild")
        pbs = self.ctx.ports
        if inputs is None:          # no local OVS DB (tests): no ifaces
            inputs = ChassisInputs((), frozenset())
        if chassis is None:
            lds, entries = {}, {}
            plan = None
        else:
            lds = compute_local_datapaths(pbs, chassis, inputs.networks)
            plan = garp_announcements(pbs, inputs.ifaces, chassis, lds)
            entries = plan.entries
        self.local_datapaths = lds
        self.shared.set_garp(entries)
        self.shared.set_ras(prepare_ras(pbs))
        bfd_rows = self.idl.tables["BFD"].rows.values() \
            if "BFD" in self.idl.tables and chassis is not None else ()
        self.shared.set_bfd(bfd_sessions(pbs, bfd_rows, chassis or "",
                                         inputs.ifaces))
        self.shared.set_prefixd(prefix_delegation(pbs, chassis or "", lds))
        new = entries.keys() - self._garp_names
        self._garp_names = set(entries)
        if plan is not None and new:
            self.mac_bindings.add_local(local_mac_bindings(plan, new, lds))
        for table, column in _LOCAL_ONLY.items():
            if column == "dp_key":
                cond = [[column, "==", key] for key in sorted(lds)]
            else:
                cond = [[column, "==", ["uuid", str(ld.datapath.uuid)]]
                        for _, ld in sorted(lds.items())]
            self._local_conds[table] = cond

    def writes_ready(self) -> bool:
        """Writable, and the replicated MAC_Binding/FDB rows are those of
        the current local datapaths."""
        return self.writable() and self._conditions_acked()

    def _conditions_acked(self) -> bool:
        """Set the local-datapath conditions; True once the server has
        applied them (ovn-controller's ovnsb_expected_cond_seqno).  Until
        then the replicated MAC_Binding/FDB rows may be missing some, and a
        write decided from them could insert a row that exists.  Called
        every iteration: after a reconnection python-ovs restarts its
        condition sequence numbers."""
        expected = 0
        for table, cond in self._local_conds.items():
            if table in self.idl.tables:
                expected = max(expected, self.idl.cond_change(table, cond))
        return bool(self.idl.cond_seqno >= expected)

    def _find_chassis(self) -> None:
        name = self.ctx.chassis_name
        self.ctx.chassis = next(
            (c for c in self.idl.tables["Chassis"].rows.values()
             if c.name == name), None) if name else None

    def _release_buffered(self) -> None:
        """Tell the handler which of the next hops its buffered packets
        wait for have a MAC_Binding row (OVN run_buffered_binding): a row
        that already exists releases them, not only a new or changed one,
        so a packet buffered again behind a known neighbour (take-over
        mode: no flow for the binding) still leaves.  Looked up again only
        when the handler's key set or the MAC_Binding table changed."""
        changed, self._mac_bindings_changed = self._mac_bindings_changed, False
        keys = self.shared.get_buffered_keys()
        if keys == self._buffered_keys_seen and not changed:
            return
        # Unless MAC_Binding changed, only the keys not looked up before
        # (a new next hop each ARP punted at 1k/s made this O(keys) each),
        # and those found bound last time: their frames were released, a
        # key seen again was buffered again behind the same neighbour.
        todo = (keys if changed else (keys - self._buffered_keys_seen)
                | (keys & self._buffered_keys_bound))
        self._buffered_keys_seen = keys
        if todo:
            resolved = mac_binding.bound_next_hops(todo, self.idl, self.ctx)
            self._buffered_keys_bound = frozenset(
                k for keys_, _ in resolved for k in keys_)
            if resolved:
                self.shared.add_resolved_neighbors(resolved)

    def _sync_dns(self, dirty: set[str]) -> None:
        """Update and publish the DNS cache if DNS rows or the datapaths
        changed.  Only the DNS rows the IDL reported as changed are re-read
        (DnsCacheBuilder); a datapath change, or a reconnection (which
        clears the IDL without row notices: the set of rows differs),
        re-reads them all."""
        changed, self._dns_changed = self._dns_changed, set()
        table = self.idl.tables.get("DNS")
        rows = table.rows if table is not None else {}
        if "Datapath_Binding" in dirty or set(rows) != self._dns_known:
            self._dns_builder.clear()
            changed = set(rows)
        elif not changed:
            return
        self._dns_known = set(rows)
        for uuid in changed:
            r = rows.get(uuid)
            if r is None:
                self._dns_builder.remove_row(uuid)
                continue
            try:
                self._dns_builder.set_row(
                    uuid, r.external_ids.get("dns_id"), r.records,
                    [dp.tunnel_key for dp in r.datapaths])
            except Exception as e:      # this row only: the others serve
                self._dns_builder.remove_row(uuid)
                bad_row("DNS", uuid, e)
        cache = self._dns_builder.build()
        self.n_dns_rebuilds += 1
        coverage.inc("sb_sync_dns_cache_rebuild")
        self.shared.set_dns_cache(cache)


class RemoteSwitch:
    """A move to new Southbound remotes (external_ids:ovn-remote changed
    at run time), made in the background like the IDL's own reconnection
    (main thread).  The daemon keeps running the current SbSync, whose
    snapshots the handler keeps answering from and whose writers keep
    writing, while this fetches the new server's schema
    (idl_util.SchemaFetch: reconnecting with back-off, never blocking the
    loop) and then replicates it into a new SbSync.  run() returns that
    SbSync once its IDL holds the server's contents; the caller makes it
    adopt the old one's writes and closes the old one.  Unreachable
    remotes cost nothing but a reconnection attempt per back-off."""

    def __init__(self, shared: SharedState, remotes: str,
                 probe_interval_ms: int | None = None) -> None:
        self.shared = shared
        self.remotes = remotes
        self.probe_interval_ms = probe_interval_ms
        self._fetch: idl_util.SchemaFetch | None = idl_util.SchemaFetch(
            remotes, SB_DB_NAME, probe_interval_ms)
        self._schema: dict | None = None
        self.sb: SbSync | None = None

    def run(self, now: int) -> SbSync | None:
        """Advance; the new SbSync once synced (this object is then
        spent: the SbSync belongs to the caller)."""
        if self._schema is None:
            assert self._fetch is not None
            self._schema = self._fetch.run()
            if self._schema is None:
                return None
            self._fetch.close()
            self._fetch = None
        if self.sb is None:         # again after a failed attempt
            self.sb = SbSync(self.shared, self.remotes, self._schema,
                             self.probe_interval_ms)
        # The IDL only: SbSync.run() would publish its half-received
        # contents as the snapshots.
        self.sb.barriers["idl"].run(now, self.sb.idl.run)
        return self.sb if self.sb.writable() else None

    def wait(self, poller: ovs.poller.Poller, now: int) -> None:
        if self.sb is not None:
            b = self.sb.barriers["idl"]
            if b.backing_off(now):
                b.wait(poller)
            else:
                self.sb.idl.wait(poller)
        elif self._fetch is not None:
            self._fetch.wait(poller)

    def state(self) -> str:
        """For the log and pinctrl/show."""
        if self.sb is not None:
            return "replicating"
        err = self._fetch.last_error if self._fetch is not None else None
        return "connecting" + (f" (last error: {err})" if err else "")

    def close(self) -> None:
        """Give up (the remotes changed again, or the daemon exits)."""
        if self._fetch is not None:
            self._fetch.close()
            self._fetch = None
        if self.sb is not None:
            self.sb.close()
            self.sb = None
