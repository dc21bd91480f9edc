"""State shared by the main thread and the pinctrl_handler thread.

One mutex ('mutex') guards the fields marked "(mutex)".  It is held only to
swap in a snapshot built outside the lock or to hand a queue over; never
across database work, so the handler never waits behind the main thread
(OVN spent 2024-2026 removing long pinctrl_mutex holds, see
docs/architecture.md).

Two Seqs wake the threads (OVN's pinctrl_handler_seq / pinctrl_main_seq):
  handler_seq  main -> handler: "new configuration or data for you"
  main_seq     handler -> main: "something to write to the Southbound DB"
"""

from __future__ import annotations

import threading
from types import MappingProxyType
from typing import Any, Mapping

from pinctrl.shared.handover import Handover
from pinctrl.shared.records import (
    EMPTY_MAP,
    EventKey,
    FdbKey,
    Learnt,
    MacBindingKey,
    McastGroups,
    PortKey,
    SvcKey,
)
from pinctrl.shared.seq import Seq
from pinctrl.support import coverage


class SharedState:
    __slots__ = ("mutex", "handler_seq", "main_seq", "br_int_name",
                 "chassis_name", "dns_cache", "put_mac_bindings",
                 "put_fdbs", "controller_events", "put_vport_bindings",
                 "ports_to_activate", "resolved_neighbors",
                 "n_buffered_packets", "buffered_keys", "garp_snapshot", "ra_snapshot",
                 "bfd_snapshot", "bfd_status", "pd_snapshot", "pd_prefixes", "mcast_snapshot",
                 "mcast_groups", "svc_snapshot", "svc_status")

    def __init__(self) -> None:
        self.mutex = threading.Lock()
        self.handler_seq = Seq()
        self.main_seq = Seq()
        # (mutex) Integration bridge name; written by main, read by handler
        # to build the OpenFlow target.  None: stay disconnected.
        self.br_int_name: str | None = None
        # (mutex) This chassis's name (external_ids:system-id); main writes.
        self.chassis_name: str | None = None
        # (mutex) DNS records for dns_lookup: datapath tunnel key ->
        # {query name as lower-case bytes -> DnsRecord} (actions/dns.py,
        # build_dns_cache).  Written only by the main thread (SbSync), which
        # builds a new immutable mapping outside the mutex and swaps the
        # reference in under it; the handler takes the reference under the
        # mutex and reads it after releasing it.  Never mutated in place.
        self.dns_cache: Mapping[int, Mapping[bytes, Any]] = EMPTY_MAP

        # Handler -> main tables of learnt data for the Southbound DB
        # (pinctrl.handover; each guarded by 'mutex', capped at 1000, put by
        # the handler, taken whole by the main thread's writers in
        # db/writers/).
        self.put_mac_bindings: Handover[MacBindingKey, Learnt] = Handover(
            self.mutex, "pinctrl_drop_put_mac_binding",
            cap=MAC_BINDING_HANDOVER_CAP, merge=_keep_commit_time)
        # -> port key
        self.put_fdbs: Handover[FdbKey, int] = Handover(
            self.mutex, "pinctrl_drop_put_fdb")
        # -> event type; first one wins
        self.controller_events: Handover[EventKey, str] = Handover(
            self.mutex, "pinctrl_drop_controller_event",
            merge=lambda old, new: old)
        # (dp key, virtual port key) -> parent port key
        self.put_vport_bindings: Handover[PortKey, int] = Handover(
            self.mutex, "pinctrl_drop_put_vport_binding")
        # -> True: ports a RARP activated here
        self.ports_to_activate: Handover[PortKey, bool] = Handover(
            self.mutex, "pinctrl_drop_activated_port")
        # (mutex) Main -> handler: neighbours the Southbound MAC_Binding
        # table learnt, for the buffered packets waiting on them: a list of
        # (candidate buffer keys, MAC bytes).  Appended by the main thread,
        # swapped out by the handler (take_resolved_neighbors).
        self.resolved_neighbors: list[tuple[tuple, bytes]] = []
        # Number of buffered packets keys; written by the handler (a plain
        # int store), read by the main thread without the lock to skip
        # publishing resolutions nobody waits for.
        self.n_buffered_packets = 0
        # (mutex) The next hops buffered packets wait for, as an immutable
        # frozenset of (dp key, port key, ip16) (actions.env.BufferKey).
        # Written by the handler whenever its key set changes, read by the
        # main thread, which looks each one up in MAC_Binding (OVN
        # run_buffered_binding: a binding that already exists releases
        # the packets, not only a new or changed one).
        self.buffered_keys: frozenset[tuple[int, int, bytes]] = frozenset()
        # (mutex) What the handler announces, as (version, immutable
        # mapping): name -> garp.GarpEntry and port name ->
        # ipv6_ra.RaEntry.  Written by the main thread (SbSync) only when
        # the mapping changed (the version then grows); the handler jobs
        # re-diff only on a new version.
        self.garp_snapshot: tuple[int, Mapping[str, Any]] = (0, EMPTY_MAP)
        self.ra_snapshot: tuple[int, Mapping[str, Any]] = (0, EMPTY_MAP)
        # (mutex) The BFD sessions this chassis runs, (version, immutable
        # mapping bfd_key -> records.BfdConfig): written by the main thread
        # (SbSync, db/bfd_plan.py) only when it changed, read by the
        # handler's BfdJob, which owns the sessions' state.
        self.bfd_snapshot: tuple[int, Mapping[str, Any]] = (0, EMPTY_MAP)
        # Handler -> main: SB BFD.status to write, bfd_key -> status; put
        # by BfdJob on every state change, taken by the main thread's
        # BfdStatusWriter (db/writers/bfd.py); the latest status wins.
        self.bfd_status: Handover[str, str] = Handover(
            self.mutex, "pinctrl_drop_bfd_status")
        # (mutex) The DHCPv6 prefix-delegation clients, (version, immutable
        # mapping downstream port -> records.PdConfig): written by the main
        # thread (SbSync, db/pd_plan.py) only when it changed, read by the
        # handler's PdJob, which owns the clients' state.
        self.pd_snapshot: tuple[int, Mapping[str, Any]] = (0, EMPTY_MAP)
        # Handler -> main: delegated prefixes, downstream port ->
        # options:ipv6_ra_pd_list value; put by PdJob on a REPLY, taken by
        # the main thread's PdPrefixWriter (db/writers/pd.py).
        self.pd_prefixes: Handover[str, str] = Handover(
            self.mutex, "pinctrl_drop_pd_prefix")
        # (mutex) IGMP/MLD snooping configuration of the local datapaths,
        # (version, immutable mapping dp key -> records.McastConfig):
        # written by the main thread (SbSync, db/mcast_plan.py) only when
        # it changed, read by the handler's McastJob, which owns the
        # snooping tables.
        self.mcast_snapshot: tuple[int, Mapping[int, Any]] = (0, EMPTY_MAP)
        # Handler -> main: a datapath's snooping table
        # (records.McastGroups; None: no snooping there any more), put by
        # McastJob when it changed, taken by IgmpGroupWriter
        # (db/writers/igmp_group.py); the latest table wins.
        self.mcast_groups: Handover[int, McastGroups | None] = Handover(
            self.mutex, "pinctrl_drop_mcast_groups")
        # (mutex) The load-balancer health checks this chassis runs,
        # (version, immutable mapping SvcKey -> records.SvcMonitorConfig):
        # written by the main thread (SbSync, db/svc_monitor_plan.py) only
        # when it changed, read by the handler's SvcMonitorJob, which owns
        # the probing state.
        self.svc_snapshot: tuple[int, Mapping[Any, Any]] = (0, EMPTY_MAP)
        # Handler -> main: Service_Monitor.status to write ("online" /
        # "offline"), put by SvcMonitorJob on every change, taken by
        # SvcStatusWriter (db/writers/svc_monitor.py); the latest wins.
        self.svc_status: Handover[SvcKey, str] = Handover(
            self.mutex, "pinctrl_drop_svc_status")

    def set_bridge(self, br_int_name: str | None,
                   chassis_name: str | None) -> None:
        """Main thread: publish the bridge and chassis; wake the handler if
        they changed."""
        with self.mutex:
            changed = (br_int_name != self.br_int_name
                       or chassis_name != self.chassis_name)
            self.br_int_name = br_int_name
            self.chassis_name = chassis_name
        if changed:
            self.handler_seq.change()

    def set_dns_cache(self, cache: Mapping[int, Mapping[bytes, Any]]) -> None:
        """Main thread: publish a new DNS cache snapshot (built outside the
        mutex, never mutated afterwards) and wake the handler."""
        with self.mutex:
            self.dns_cache = cache
        self.handler_seq.change()

    def get_dns_cache(self) -> Mapping[int, Mapping[bytes, Any]]:
        """Handler thread: the current DNS snapshot.  The mutex is held only
        to read the reference; use the result lock-free."""
        with self.mutex:
            return self.dns_cache

    def set_garp(self, entries: Mapping[str, Any]) -> bool:
        """Main thread: publish the gARP/RARP announcement set; wakes the
        handler and returns True only if it changed."""
        return self._publish("garp_snapshot", entries)

    def get_garp(self) -> tuple[int, Mapping[str, Any]]:
        """Handler thread: (version, announcements)."""
        with self.mutex:
            return self.garp_snapshot

    def set_ras(self, entries: Mapping[str, Any]) -> bool:
        """Main thread: publish the periodic RA set (see set_garp)."""
        return self._publish("ra_snapshot", entries)

    def get_ras(self) -> tuple[int, Mapping[str, Any]]:
        """Handler thread: (version, RA entries)."""
        with self.mutex:
            return self.ra_snapshot

    def set_bfd(self, entries: Mapping[str, Any]) -> bool:
        """Main thread: publish the BFD sessions (see set_garp)."""
        return self._publish("bfd_snapshot", entries)

    def get_bfd(self) -> tuple[int, Mapping[str, Any]]:
        """Handler thread (and appctl): (version, bfd_key -> BfdConfig)."""
        with self.mutex:
            return self.bfd_snapshot

    def set_prefixd(self, entries: Mapping[str, Any]) -> bool:
        """Main thread: publish the prefix-delegation clients."""
        return self._publish("pd_snapshot", entries)

    def get_prefixd(self) -> tuple[int, Mapping[str, Any]]:
        """Handler thread (and appctl): (version, port -> PdConfig)."""
        with self.mutex:
            return self.pd_snapshot

    def set_mcast(self, entries: Mapping[int, Any]) -> bool:
        """Main thread: publish the snooping configuration (see
        set_garp)."""
        return self._publish("mcast_snapshot", entries)

    def get_mcast(self) -> tuple[int, Mapping[int, Any]]:
        """Handler thread (and appctl): (version, dp key -> McastConfig)."""
        with self.mutex:
            return self.mcast_snapshot

    def set_svc_monitors(self, entries: Mapping[Any, Any]) -> bool:
        """Main thread: publish the service monitors (see set_garp)."""
        return self._publish("svc_snapshot", entries)

    def get_svc_monitors(self) -> tuple[int, Mapping[Any, Any]]:
        """Handler thread (and appctl): (version, SvcKey ->
        SvcMonitorConfig)."""
        with self.mutex:
            return self.svc_snapshot

    def _publish(self, field: str, entries: Mapping[Any, Any]) -> bool:
        # Only the main thread writes these fields, so reading the old
        # value without the mutex is safe.
        version, old = getattr(self, field)
        if dict(old) == dict(entries):
            return False
        with self.mutex:
            setattr(self, field, (version + 1, MappingProxyType(dict(entries))))
        self.handler_seq.change()
        return True

    def notify_main(self) -> None:
        """Handler thread: wake the main thread, which has Southbound work
        (OVN's notify_pinctrl_main)."""
        coverage.inc("pinctrl_notify_main_thread")
        self.main_seq.change()

    def set_buffered_keys(self, keys: frozenset[tuple[int, int, bytes]]
                          ) -> None:
        """Handler thread: publish the next hops buffered packets wait for;
        wake the main thread when one is new (it may already be bound)."""
        with self.mutex:
            new = not keys <= self.buffered_keys
            self.buffered_keys = keys
        self.n_buffered_packets = len(keys)
        if new:
            self.notify_main()

    def get_buffered_keys(self) -> frozenset[tuple[int, int, bytes]]:
        """Main thread: the next hops buffered packets wait for."""
        with self.mutex:
            return self.buffered_keys

    def add_resolved_neighbors(self, resolved: list[tuple[tuple, bytes]]
                               ) -> None:
        """Main thread: hand resolved neighbours to the handler, wake it.
        The list is capped so a stuck handler cannot grow it forever."""
        with self.mutex:
            room = MAX_RESOLVED - len(self.resolved_neighbors)
            self.resolved_neighbors.extend(resolved[:max(room, 0)])
        if len(resolved) > room:
            coverage.inc("pinctrl_drop_resolved_neighbor",
                         len(resolved) - max(room, 0))
        self.handler_seq.change()

    def take_resolved_neighbors(self) -> list[tuple[tuple, bytes]]:
        """Handler thread: the neighbours resolved since the last call."""
        with self.mutex:
            if not self.resolved_neighbors:
                return []
            out, self.resolved_neighbors = self.resolved_neighbors, []
        return out


MAX_RESOLVED = 10000
# put_arp/put_nd bindings awaiting the main thread (OVN: 1000).  Sized from
# the rates (issue 18): the main thread writes ~5k bindings/s and is away
# up to ~0.5 s in one iteration (a 1000-row transaction built and the echo
# of the previous one parsed) while the handler learns 10k/s, and a 2 s
# burst at 10k/s must fit in it and the writer's RetryQueue behind it
# (twice this, db/writers): ~300 bytes each, ~7 MB when both are full.
MAC_BINDING_HANDOVER_CAP = 8192


def _keep_commit_time(old: Learnt, new: Learnt) -> Learnt:
    """put_mac_bindings: a re-learnt key updates the MAC, keeps the first
    commit time (OVN mac-learn.c)."""
    return new._replace(commit_at=old.commit_at)
