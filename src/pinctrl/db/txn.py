"""Southbound writes: one transaction in flight, retried until it lands,
in capped batches, a failing entry isolated.

Main thread only.  Each writer (db/writers/*) keeps what it still has
to write in one or more RetryQueues.  Every main-loop iteration
TxnLoop.run():

  1. lets each writer collect() what the handler handed over;
  2. if a transaction is in flight, polls its status: on SUCCESS (or
     UNCHANGED) the queues forget what it carried; on any failure
     (TRY_AGAIN after a reconnection or leader change, ERROR such as an
     index conflict with another chassis that inserted the same row,
     NOT_LOCKED) they put it back, so nothing learnt is lost;
  3. otherwise, when the IDL is connected and a writer has work, builds one
     transaction of at most MAX_BATCH entries, every writer in turn (the
     first writer rotates, so a large backlog of one does not starve the
     others), and commits it.

After a failure the next attempt waits for the IDL to change (the other
writer's row arriving, the reconnection completing) or for a back-off
timer, so a conflict is resolved by re-reading, not by hammering.  As the
operations are recomputed from the IDL on each attempt (look up, insert
only if absent, update only if different), a retry never duplicates a row.

An entry the server refuses for good (ERROR every time: a constraint it
violates, a bug of ours) must not block the others.  The entries of a
batch that ended in ERROR become suspects; suspects are retried apart from
the other entries (turn about with normal batches), in halves of the
failed batch (doubling again after a success), until a suspect that fails
alone MAX_ALONE_FAILURES times is dropped, counted
('sb_txn_drop_failing_entry') and named in the log.  A suspect that lands
is cleared.  TRY_AGAIN and NOT_LOCKED are not the entries' fault: they
retry as they were.

Each queue is capped (the oldest are dropped and counted);
TxnLoop.backlog() gives each writer's depth and the age of its oldest
entry, for pinctrl/show and the metrics.
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import islice
from typing import (TYPE_CHECKING, Callable, Generic, Hashable, Iterable,
                    Protocol, Sequence, TypeVar)

import ovs.db.idl
import ovs.poller
import ovs.timeval
import ovs.vlog
from ovs.db.idl import Transaction as Txn

from pinctrl.support import coverage
from pinctrl.support.log import RateLimit, rl_log

if TYPE_CHECKING:
    from pinctrl.db.writers import SbContext

vlog = ovs.vlog.Vlog("sb_txn")
_rl = RateLimit(5, 5)
_rl_drop = RateLimit(10, 20)

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")
RETRY_MIN_MS = 250
RETRY_MAX_MS = 8000
# Per queue: entries kept while the DB is away (a queue fed by a handover
# table holds twice that table instead: writers.HandoverWriter).  Beyond
# this the oldest are dropped and counted (memory stays bounded under a
# flood; a neighbour that is still there is learnt again).
MAX_PENDING = 2048
# Entries in one transaction (the handler's handover tables hold 1000).
MAX_BATCH = 1000
# A suspect that fails alone this many times is dropped.
MAX_ALONE_FAILURES = 5

# What a failed attempt says about the entries it carried.
NOT_THEIRS, BATCH_FAILED, ALONE_FAILED = range(3)


@dataclass
class Batch:
    """The room left in the transaction being built: 'left' more entries,
    only suspects or only the others."""
    left: int
    suspects: bool = False


class RetryQueue(Generic[K, V]):
    """What a writer still has to write, K -> V (main thread only).

    'pending' holds entries not yet attempted (or put back after a failed
    attempt); 'in_flight' those carried by the transaction in flight.  A
    newer value for a key that is in flight is kept in 'pending' and wins
    over the in-flight one if that transaction fails.  'since' is when
    each key was first queued (msec), until it is written or dropped;
    'suspects' the keys carried by a batch that ended in ERROR, with the
    times each then failed alone.  'batch' is set by TxnLoop while it
    builds a transaction: start() takes no more than it allows."""

    __slots__ = ("name", "pending", "in_flight", "merge", "cap",
                 "drop_counter", "since", "suspects", "batch", "describe")

    def __init__(self, drop_counter: str,
                 merge: Callable[[V, V], V] | None = None,
                 cap: int = MAX_PENDING, name: str = "",
                 describe: Callable[[K], str] = repr) -> None:
        self.name = name or drop_counter
        self.pending: dict[K, V] = {}
        self.in_flight: dict[K, V] = {}
        self.merge = merge
        self.cap = cap
        self.drop_counter = drop_counter
        self.since: dict[K, int] = {}
        self.suspects: dict[K, int] = {}
        self.batch: Batch | None = None
        self.describe = describe

    def add(self, entries: dict[K, V], now: int | None = None) -> None:
        """Merge entries taken from the handler ('now' in msec, default
        the clock)."""
        now = ovs.timeval.msec() if now is None else now
        pending, since = self.pending, self.since
        for key, value in entries.items():
            old = pending.get(key)
            if old is not None and self.merge is not None:
                value = self.merge(old, value)
            pending[key] = value
            since.setdefault(key, now)
        self._trim()

    def start(self, due: Callable[[V], bool] | None = None
              ) -> list[tuple[K, V]]:
        """Move the entries to attempt now (those 'due', within the room
        'batch' leaves) to in_flight and return them."""
        b = self.batch
        items: Iterable[tuple[K, V]] = self.pending.items()
        if b is not None:
            suspects = self.suspects
            items = ((k, v) for k, v in items
                     if (k in suspects) == b.suspects)
        if due is not None:
            items = ((k, v) for k, v in items if due(v))
        if b is not None:
            items = islice(items, max(b.left, 0))
        batch = list(items)
        if b is not None:
            b.left -= len(batch)
        for k, v in batch:
            del self.pending[k]
            self.in_flight[k] = v
        return batch

    def committed(self) -> None:
        for key in self.in_flight:
            if key not in self.pending:
                self.since.pop(key, None)
            self.suspects.pop(key, None)
        self.in_flight.clear()

    def failed(self, blame: int = NOT_THEIRS) -> list[K]:
        """The attempt failed: what it carried goes back to pending, unless
        a newer value for the same key arrived meanwhile.  BATCH_FAILED
        makes the carried keys suspects; ALONE_FAILED counts a failure
        for each and drops those that reached MAX_ALONE_FAILURES (returned,
        for the caller to name)."""
        dropped = []
        for key, value in self.in_flight.items():
            if blame == BATCH_FAILED:
                self.suspects.setdefault(key, 0)
            elif blame == ALONE_FAILED:
                n = self.suspects.get(key, 0) + 1
                if n >= MAX_ALONE_FAILURES:
                    dropped.append(key)
                    self.pending.pop(key, None)
                    self._forget(key)
                    continue
                self.suspects[key] = n
            if key not in self.pending:
                self.pending[key] = value
        self.in_flight.clear()
        self._trim()
        return dropped

    def drop(self, key: K) -> None:
        """Forget an in-flight entry that can never be written (e.g. its
        port no longer exists), so a failed transaction does not bring it
        back."""
        self.in_flight.pop(key, None)
        if key not in self.pending:
            self._forget(key)

    def _forget(self, key: K) -> None:
        self.since.pop(key, None)
        self.suspects.pop(key, None)

    def _trim(self) -> None:
        excess = len(self.pending) - self.cap
        if excess > 0:
            for key in list(self.pending)[:excess]:
                del self.pending[key]
                if key not in self.in_flight:
                    self._forget(key)
            coverage.inc(self.drop_counter, excess)

    def oldest(self) -> int | None:
        """msec time the oldest entry still to write was queued.  'since'
        is in insertion order and a key is re-inserted only after it was
        forgotten, so the first is the oldest."""
        return next(iter(self.since.values()), None)

    def __len__(self) -> int:
        return len(self.pending) + len(self.in_flight)


class Writer(Protocol):
    """A Southbound writer (main thread).  A writer whose entries live in
    RetryQueues also has queues() -> Sequence[RetryQueue], as
    writers.HandoverWriter: TxnLoop then limits how many go in a
    transaction, and commits and fails the queues itself, isolating the
    entries the server refuses.  A writer without (one that syncs a
    state, such as IGMP_Group) is told committed() / failed() and never
    goes in a transaction of suspects."""
    name: str

    def collect(self, now: int) -> None:
        """Take what the handler handed over."""

    def has_work(self, now: int) -> bool:
        """Whether write() would add operations now."""

    def write(self, txn: Txn, ctx: SbContext, now: int) -> bool:
        """Add this writer's operations to 'txn' (a QueueWriter takes its
        entries with RetryQueue.start()); True if it added any."""

    def committed(self) -> None: ...

    def failed(self) -> None: ...

    def next_due(self) -> int | None:
        """msec time of the next entry that becomes due, if any."""

    def __len__(self) -> int:
        """Entries still to write (pending and in flight)."""


def _queues(w: Writer) -> Sequence[RetryQueue]:
    """A QueueWriter's queues; () for any other writer."""
    queues: Callable[[], Sequence[RetryQueue]] | None = getattr(
        w, "queues", None)
    return queues() if queues is not None else ()


class TxnLoop:
    """One Southbound transaction at a time (OVN's ovsdb_idl_loop)."""

    def __init__(self, idl: ovs.db.idl.Idl,
                 writers: Iterable[Writer]) -> None:
        self.idl = idl
        self.writers = list(writers)
        self.txn: Txn | None = None
        self._txn_writers: list[Writer] = []
        self._txn_suspects = False          # the one in flight: suspects
        self._seqno = 0
        self._retry_seqno: int | None = None    # IDL seqno at the failure
        self._retry_at = 0
        self._retry_ms = RETRY_MIN_MS
        self._first = 0                     # writer that goes first
        self._suspect_limit = MAX_BATCH
        self._suspect_turn = True
        self._stalled: tuple | None = None  # _inputs() when nothing could go
        self.n_commits = 0
        self.n_failures = 0
        self.n_dropped = 0
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
        if self._stalled == self._inputs(ctx, now):
            return
        turn = self._suspect_turn and self._has_suspects()
        for suspects in (turn, not turn):
            if not self._has_entries(suspects, now):
                continue
            if self._start(ctx, now, suspects):
                self._stalled = None
                return
        # Nothing could go (e.g. events waiting for our Chassis row): not
        # again until the IDL, the chassis or the backlog changes.
        self._stalled = self._inputs(ctx, now)

    def _inputs(self, ctx: SbContext, now: int) -> tuple:
        """What decides whether the writers can write (main thread).  Which
        writers have due work is part of it: an entry that becomes due
        (a learnt binding's commit time, 1..50 ms after a broadcast) must
        go even if nothing else changed since the stall."""
        return (self.idl.change_seqno, getattr(ctx, "chassis_name", None),
                sum(len(w) for w in self.writers),
                tuple(w.has_work(now) for w in self.writers))

    def _has_suspects(self) -> bool:
        return any(q.suspects for w in self.writers for q in _queues(w))

    def _has_entries(self, suspects: bool, now: int) -> bool:
        """Whether a transaction of suspects (or of the others) would
        have something to carry."""
        for w in self.writers:
            queues = _queues(w)
            if not queues and not suspects and w.has_work(now):
                return True
            for q in queues:
                n = sum(1 for k in q.suspects if k in q.pending)
                if (n if suspects else len(q.pending) - n):
                    return True
        return False

    def _start(self, ctx: SbContext, now: int, suspects: bool) -> bool:
        """Build and commit one transaction; False if it had nothing."""
        seqno = self.idl.change_seqno
        txn = Txn(self.idl)
        txn.add_comment("pinctrl-daemon")
        batch = Batch(self._suspect_limit if suspects else MAX_BATCH,
                      suspects)
        n = len(self.writers)
        order = [self.writers[(self._first + i) % n] for i in range(n)]
        used = []
        for w in order:
            if batch.left <= 0:
                break
            if suspects and not _queues(w):
                continue            # a state, not entries: never suspect
            for q in _queues(w):
                q.batch = batch
            try:
                if w.write(txn, ctx, now):
                    used.append(w)
            finally:
                for q in _queues(w):
                    q.batch = None
        self._first = (self._first + 1) % max(n, 1)
        if not used:
            txn.abort()
            return False
        if self._has_suspects():
            self._suspect_turn = not suspects
        self.txn, self._txn_writers, self._seqno = txn, used, seqno
        self._txn_suspects = suspects
        self._finish(txn, txn.commit(), now)
        return True

    def abandon(self) -> None:
        """Main thread, before this loop's IDL is closed (the remotes
        changed): forget the transaction in flight; what it carried goes
        back to the writers' pending entries."""
        if self.txn is not None:
            for w in self._txn_writers:
                self._failed(w)
            self.txn, self._txn_writers = None, []

    def _failed(self, w: Writer, blame: int = NOT_THEIRS,
                error: str = "") -> None:
        """Give 'w' back what the failed transaction carried."""
        queues = _queues(w)
        if not queues:
            w.failed()
        for q in queues:
            for key in q.failed(blame):
                self._dropped(q, key, error)

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
        queues = [q for w in writers for q in _queues(w)]
        if status in (Txn.SUCCESS, Txn.UNCHANGED):
            self.n_commits += 1
            coverage.inc("sb_txn_commit")
            self._retry_ms = RETRY_MIN_MS
            if self._txn_suspects:
                self._suspect_limit = min(2 * self._suspect_limit, MAX_BATCH)
            for w in writers:
                if not _queues(w):
                    w.committed()
            for q in queues:
                q.committed()
            return
        self.n_failures += 1
        coverage.inc("sb_txn_retry")
        error = txn.get_error() if status == Txn.ERROR else status
        rl_log(vlog, "warn", _rl,
               f"Southbound transaction failed ({error}); will retry")
        # A writer without queues counts as one entry: it cannot be split.
        carried = sum(len(q.in_flight) for q in queues) + sum(
            1 for w in writers if not _queues(w))
        blame = NOT_THEIRS
        if status == Txn.ERROR:
            blame = ALONE_FAILED if carried == 1 else BATCH_FAILED
            if carried > 1:
                self._suspect_limit = max(1, carried // 2)
        for w in writers:
            self._failed(w, blame, error)
        self._retry_seqno = self._seqno
        self._retry_at = now + self._retry_ms
        self._retry_ms = min(self._retry_ms * 2, RETRY_MAX_MS)

    def _dropped(self, q: RetryQueue, key: Hashable, error: str) -> None:
        self.n_dropped += 1
        coverage.inc("sb_txn_drop_failing_entry")
        rl_log(vlog, "warn", _rl_drop,
               f"{q.name}: {q.describe(key)} dropped: its write failed "
               f"alone {MAX_ALONE_FAILURES} times ({error})")

    def wait(self, poller: ovs.poller.Poller, now: int,
             connected: bool) -> None:
        """Main thread: wake when a writer's work becomes due."""
        if self.txn is not None or not connected:
            return          # idl.wait() covers the reply / reconnection
        if self._retry_seqno is not None:
            if any(w.has_work(now) for w in self.writers):
                poller.timer_wait_until(self._retry_at)
            return
        stalled = self._stalled is not None
        for w in self.writers:
            if w.has_work(now) and not stalled:
                poller.immediate_wake()
                return
            due = w.next_due()
            if due is not None and due > now:
                poller.timer_wait_until(due)

    def pending(self) -> dict[str, int]:
        """Entries still to write, per writer (for pinctrl/show)."""
        return {w.name: len(w) for w in self.writers}

    def backlog(self, now: int) -> dict[str, tuple[int, float]]:
        """Per writer: (entries still to write, seconds since the oldest
        of them was queued; 0 when none)."""
        out = {}
        for w in self.writers:
            oldest = [t for q in _queues(w)
                      if (t := q.oldest()) is not None]
            out[w.name] = (len(w), max(0, now - min(oldest)) / 1000
                           if oldest else 0.0)
        return out
