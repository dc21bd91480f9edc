"""Southbound writes: one transaction in flight, retried until it lands.

Main thread only.  Each writer (db/writers/*) keeps what it still has
to write in a RetryQueue.  Every main-loop iteration TxnLoop.run():

  1. lets each writer collect() what the handler handed over;
  2. if a transaction is in flight, polls its status: on SUCCESS (or
     UNCHANGED) the writers forget what it carried; on any failure
     (TRY_AGAIN after a reconnection or leader change, ERROR such as an
     index conflict with another chassis that inserted the same row,
     NOT_LOCKED) they put it back, so nothing learnt is lost;
  3. otherwise, when the IDL is connected and a writer has work, builds one
     transaction with every writer's operations and commits it.

After a failure the next attempt waits for the IDL to change (the other
writer's row arriving, the reconnection completing) or for a back-off
timer, so a conflict is resolved by re-reading, not by hammering.  As the
operations are recomputed from the IDL on each attempt (look up, insert
only if absent, update only if different), a retry never duplicates a row.
"""

from __future__ import annotations

from typing import (TYPE_CHECKING, Callable, Generic, Hashable, Iterable,
                    Protocol, TypeVar)

import ovs.db.idl
import ovs.poller
import ovs.vlog
from ovs.db.idl import Transaction as Txn

from pinctrl.support import coverage
from pinctrl.support.log import RateLimit, rl_log

if TYPE_CHECKING:
    from pinctrl.db.writers import SbContext

vlog = ovs.vlog.Vlog("sb_txn")
_rl = RateLimit(5, 5)

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")
RETRY_MIN_MS = 250
RETRY_MAX_MS = 8000
# Per writer: entries kept for retry while the DB is away.  Beyond this the
# oldest are dropped and counted (memory stays bounded under a flood).
MAX_PENDING = 65536


class RetryQueue(Generic[K, V]):
    """What one writer still has to write, K -> V (main thread only).

    'pending' holds entries not yet attempted (or put back after a failed
    attempt); 'in_flight' those carried by the transaction in flight.  A
    newer value for a key that is in flight is kept in 'pending' and wins
    over the in-flight one if that transaction fails."""

    __slots__ = ("pending", "in_flight", "merge", "cap", "drop_counter")

    def __init__(self, drop_counter: str,
                 merge: Callable[[V, V], V] | None = None,
                 cap: int = MAX_PENDING) -> None:
        self.pending: dict[K, V] = {}
        self.in_flight: dict[K, V] = {}
        self.merge = merge
        self.cap = cap
        self.drop_counter = drop_counter

    def add(self, entries: dict[K, V]) -> None:
        """Merge entries taken from the handler."""
        pending = self.pending
        for key, value in entries.items():
            old = pending.get(key)
            if old is not None and self.merge is not None:
                value = self.merge(old, value)
            pending[key] = value
        self._trim()

    def start(self, due: Callable[[V], bool] | None = None
              ) -> list[tuple[K, V]]:
        """Move the entries to attempt now (all, or those 'due') to
        in_flight and return them."""
        if due is None:
            batch = list(self.pending.items())
            self.pending = {}
        else:
            batch = [(k, v) for k, v in self.pending.items() if due(v)]
            for k, _ in batch:
                del self.pending[k]
        self.in_flight.update(batch)
        return batch

    def committed(self) -> None:
        self.in_flight.clear()

    def failed(self) -> None:
        """The attempt failed: what it carried goes back to pending, unless
        a newer value for the same key arrived meanwhile."""
        for key, value in self.in_flight.items():
            if key not in self.pending:
                self.pending[key] = value
        self.in_flight.clear()
        self._trim()

    def drop(self, key: K) -> None:
        """Forget an in-flight entry that can never be written (e.g. its
        port no longer exists), so a failed transaction does not bring it
        back."""
        self.in_flight.pop(key, None)

    def _trim(self) -> None:
        excess = len(self.pending) - self.cap
        if excess > 0:
            for key in list(self.pending)[:excess]:
                del self.pending[key]
            coverage.inc(self.drop_counter, excess)

    def __len__(self) -> int:
        return len(self.pending) + len(self.in_flight)


class Writer(Protocol):
    """A Southbound writer (main thread)."""
    name: str

    def collect(self, now: int) -> None:
        """Take what the handler handed over."""

    def has_work(self, now: int) -> bool:
        """Whether write() would add operations now."""

    def write(self, txn: Txn, ctx: SbContext, now: int) -> bool:
        """Add this writer's operations to 'txn'; True if it added any."""

    def committed(self) -> None: ...

    def failed(self) -> None: ...

    def next_due(self) -> int | None:
        """msec time of the next entry that becomes due, if any."""

    def __len__(self) -> int:
        """Entries still to write (pending and in flight)."""


class TxnLoop:
    """One Southbound transaction at a time (OVN's ovsdb_idl_loop)."""

    def __init__(self, idl: ovs.db.idl.Idl,
                 writers: Iterable[Writer]) -> None:
        self.idl = idl
        self.writers = list(writers)
        self.txn: Txn | None = None
        self._txn_writers: list[Writer] = []
        self._retry_seqno: int | None = None    # IDL seqno at the failure
        self._retry_at = 0
        self._retry_ms = RETRY_MIN_MS
        self.n_commits = 0
        self.n_failures = 0
        self.last_status: str | None = None

    def run(self, ctx: SbContext, now: int, connected: bool) -> None:
        """Main thread, after idl.run(): poll the transaction in flight,
        then start the next one if there is work."""
        for w in self.writers:
            w.collect(now)
        if self.txn is not None:
            self._finish(self.txn, self.txn.commit(), now)
            if self.txn is not None:
                return
        if not connected or not self._may_retry(now):
            return
        if not any(w.has_work(now) for w in self.writers):
            return
        seqno = self.idl.change_seqno
        txn = Txn(self.idl)
        txn.add_comment("pinctrl-daemon")
        used = [w for w in self.writers if w.write(txn, ctx, now)]
        if not used:
            txn.abort()
            return
        self.txn, self._txn_writers, self._seqno = txn, used, seqno
        self._finish(txn, txn.commit(), now)

    def _may_retry(self, now: int) -> bool:
        if self._retry_seqno is None:
            return True
        if self.idl.change_seqno != self._retry_seqno or now >= self._retry_at:
            self._retry_seqno = None
            return True
        return False

    def _finish(self, txn: Txn, status: str, now: int) -> None:
        """Main thread: act on 'status' of 'txn', the one in flight."""
        if status == Txn.INCOMPLETE:
            return
        writers = self._txn_writers
        self.txn, self._txn_writers = None, []
        self.last_status = status
        if status in (Txn.SUCCESS, Txn.UNCHANGED):
            self.n_commits += 1
            coverage.inc("sb_txn_commit")
            self._retry_ms = RETRY_MIN_MS
            for w in writers:
                w.committed()
            return
        self.n_failures += 1
        coverage.inc("sb_txn_retry")
        error = txn.get_error() if status == Txn.ERROR else status
        rl_log(vlog, "warn", _rl,
               f"Southbound transaction failed ({error}); will retry")
        for w in writers:
            w.failed()
        self._retry_seqno = self._seqno
        self._retry_at = now + self._retry_ms
        self._retry_ms = min(self._retry_ms * 2, RETRY_MAX_MS)

    def wait(self, poller: ovs.poller.Poller, now: int,
             connected: bool) -> None:
        """Main thread: wake when a writer's work becomes due."""
        if self.txn is not None or not connected:
            return          # idl.wait() covers the reply / reconnection
        if self._retry_seqno is not None:
            if any(w.has_work(now) for w in self.writers):
                poller.timer_wait_until(self._retry_at)
            return
        for w in self.writers:
            if w.has_work(now):
                poller.immediate_wake()
                return
            due = w.next_due()
            if due is not None:
                poller.timer_wait_until(due)

    def pending(self) -> dict[str, int]:
        """Entries still to write, per writer (for pinctrl/show)."""
        return {w.name: len(w) for w in self.writers}
