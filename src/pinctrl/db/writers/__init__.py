"""Main-thread Southbound writers: each takes one handover table of
SharedState (filled by the handler), keeps what it has not yet written in
a db.txn.RetryQueue, and adds its operations to the transaction TxnLoop
builds.  Operations are recomputed from the IDL on every attempt (look up,
insert only if absent, update only if different), so retries never
duplicate rows.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Generic, Hashable, TypeVar

import ovs.db.idl

from pinctrl.db.local_datapaths import PortBindings
from pinctrl.db.row_index import RowIndex
from pinctrl.db.txn import RetryQueue
from pinctrl.shared.handover import Handover

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


@dataclass
class SbContext:
    """What writers need from the IDL, built by SbSync (main thread) when
    the tables it derives from changed.  Rows are IDL rows: valid until
    the next idl.run()."""
    idl: ovs.db.idl.Idl
    chassis_name: str | None = None
    chassis: Any = None                  # our Chassis row, if it exists
    # Port_Binding lookups (by name, by datapath, by (datapath key, port
    # key)), rebuilt when ports or datapaths change.
    ports: PortBindings = field(default_factory=lambda: PortBindings(()))
    # MAC_Binding rows by (logical_port, ip), fed by SbSync's IDL notify
    # hook (db/row_index.py).
    mac_binding_index: RowIndex = field(
        default_factory=lambda: RowIndex("logical_port", "ip"))


class HandoverWriter(Generic[K, V]):
    """The common part of the writers: collect from a handover table of
    K -> V into a retry queue, attempt what is pending (TxnLoop caps how
    much per transaction; db/txn.py)."""
    name = "?"

    def __init__(self, handover: Handover[K, V], drop_counter: str,
                 merge: Callable[[V, V], V] | None = None,
                 describe: Callable[[K], str] = repr) -> None:
        self.handover = handover
        # Twice the hand-over table: a burst taken whole always fits, and
        # while the SB is away the queue bounds what is kept (db/txn.py).
        self.queue: RetryQueue[K, V] = RetryQueue(
            drop_counter, merge, cap=2 * handover.cap, name=self.name,
            describe=describe)

    def collect(self, now: int) -> None:
        taken = self.handover.take()
        if taken:
            self.queue.add(taken, now)

    def has_work(self, now: int) -> bool:
        return bool(self.queue.pending)

    def next_due(self) -> int | None:
        return None

    def queues(self) -> tuple[RetryQueue, ...]:
        return (self.queue,)

    # What TxnLoop does to the queues when a transaction ends (tests).
    def committed(self) -> None:
        for q in self.queues():
            q.committed()

    def failed(self) -> None:
        for q in self.queues():
            q.failed()

    def __len__(self) -> int:
        """Entries still to write (pending and in flight)."""
        return len(self.queue)
