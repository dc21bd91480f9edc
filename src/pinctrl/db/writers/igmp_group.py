"""SB IGMP_Group: the snooping tables of this chassis (OVN 23.03
controller/pinctrl.c ip_mcast_sync(), second half, and controller/
ip-mcast.c).  Main thread only.

The handler's McastJob hands over each datapath's table when it changes
(SharedState.mcast_groups: records.McastGroups, or None once snooping
stopped there); this writer keeps the latest one per datapath and makes
the IGMP_Group rows of this chassis on the local datapaths follow, as
23.03 does on every main-loop iteration:

* a row of a datapath whose snooping stopped is deleted;
* a group row whose group is no longer in the table is deleted (a group
  expired, was left, or the table was flushed);
* every group of the table has a row (address as 23.03 prints it:
  dotted quad for IPv4, RFC 5952 text for IPv6), its ports the
  Port_Binding rows of the table's port keys;
* every snooping datapath has one "mrouters" row whose ports are the
  router ports (empty most of the time).

Rows of other chassis, and of datapaths that are not local, are left
alone; so are those of a datapath the handler never reported (split mode
with igmp passed to ovn-controller: its pinctrl owns them).  The
operations are recomputed from the IDL on every attempt (TxnLoop), so a
retry after a conflict on the (address, datapath, chassis) index never
duplicates a row.
"""

from __future__ import annotations

import socket
from collections.abc import Mapping
from typing import Any

import ovs.db.idl

from pinctrl.db.local_datapaths import ref
from pinctrl.db.writers import SbContext
from pinctrl.shared.records import IPV4_MAPPED_PREFIX, McastGroups
from pinctrl.shared.state import SharedState
from pinctrl.support import coverage

TABLE = "IGMP_Group"
MROUTERS = "mrouters"               # OVN_IGMP_GROUP_MROUTERS


def address_text(group: bytes) -> str:
    """ipv6_string_mapped(): IPv4-mapped groups as a dotted quad."""
    if group.startswith(IPV4_MAPPED_PREFIX):
        return socket.inet_ntop(socket.AF_INET, group[12:])
    return socket.inet_ntop(socket.AF_INET6, group)


def address_bytes(text: str) -> bytes | None:
    """A row's address as a 16-byte group (ip_parse, then ipv6_parse);
    None if neither parses."""
    for family in (socket.AF_INET, socket.AF_INET6):
        try:
            packed = socket.inet_pton(family, text)
        except (OSError, ValueError):
            continue
        return IPV4_MAPPED_PREFIX + packed if len(packed) == 4 else packed
    return None


class IgmpGroupWriter:
    """mcast_groups -> SB IGMP_Group (main thread; a db.txn.Writer)."""
    name = "igmp_groups"

    def __init__(self, shared: SharedState) -> None:
        self.handover = shared.mcast_groups
        # dp key -> the handler's latest table (None: snooping stopped).
        self.tables: dict[int, McastGroups | None] = {}
        # dp key -> Datapath_Binding row of the local datapaths.
        self.local: Mapping[int, Any] = {}
        self._dirty = False

    def set_local(self, local: Mapping[int, Any]) -> None:
        """Main thread: the local datapaths changed."""
        self.local = local
        self._dirty = True

    def touch(self) -> None:
        """The IDL's IGMP_Group rows or this chassis changed: compare
        again."""
        self._dirty = True

    # --- db.txn.Writer ---------------------------------------------------------
    def collect(self, now: int) -> None:
        """Main thread: take the tables the handler handed over."""
        taken = self.handover.take()
        if taken:
            self.tables.update(taken)
            self._dirty = True

    def has_work(self, now: int) -> bool:
        return self._dirty

    def write(self, txn: ovs.db.idl.Transaction, ctx: SbContext,
              now: int) -> bool:
        """Main thread: the inserts, deletes and port updates that make
        this chassis's rows follow the tables; True if there are any."""
        self._dirty = False
        if ctx.chassis is None or TABLE not in ctx.idl.tables:
            return False
        table = ctx.idl.tables[TABLE]
        rows: dict[tuple[int, bytes | str], Any] = {}
        changed = False
        for row in list(table.rows.values()):
            dp = ref(row.datapath)
            if (ref(row.chassis) is not ctx.chassis or dp is None
                    or dp.tunnel_key not in self.local):
                continue
            if dp.tunnel_key not in self.tables:
                continue
            groups = self.tables[dp.tunnel_key]
            key: bytes | str = MROUTERS
            if row.address != MROUTERS:
                parsed = address_bytes(row.address)
                if parsed is None:
                    continue        # 23.03 leaves what it cannot parse
                key = parsed
            # Snooping stopped, the group went, or a second row for it.
            if (groups is None or (dp.tunnel_key, key) in rows
                    or key != MROUTERS and key not in groups.groups):
                row.delete()
                coverage.inc("pinctrl_igmp_group_deleted")
                changed = True
                continue
            rows[(dp.tunnel_key, key)] = row
        for dp_key, groups in self.tables.items():
            datapath = self.local.get(dp_key)
            if groups is None or datapath is None:
                continue
            wanted: list[tuple[bytes | str, frozenset[int]]] = [
                *groups.groups.items(), (MROUTERS, groups.mrouters)]
            for key, ports in wanted:
                row = rows.get((dp_key, key))
                if row is None:
                    row = txn.insert(table)
                    row.address = (key if isinstance(key, str)
                                   else address_text(key))
                    row.datapath = datapath
                    row.chassis = ctx.chassis
                    coverage.inc("pinctrl_igmp_group_inserted")
                    changed = True
                changed |= _set_ports(row, ctx, dp_key, ports)
        return changed

    def committed(self) -> None:
        pass

    def failed(self) -> None:
        self._dirty = True

    def next_due(self) -> int | None:
        return None

    def __len__(self) -> int:
        return int(self._dirty)


def _set_ports(row: Any, ctx: SbContext, dp_key: int,
               ports: frozenset[int]) -> bool:
    """igmp_group_update_ports(): the row's ports become the Port_Binding
    rows of 'ports' that exist; True if that changed them."""
    pbs = [pb for pb in (ctx.ports.by_key.get((dp_key, p))
                         for p in sorted(ports)) if pb is not None]
    old = getattr(row, "ports", None) or []
    if {pb.uuid for pb in pbs} == {pb.uuid for pb in old}:
        return False
    row.ports = pbs
    return True
