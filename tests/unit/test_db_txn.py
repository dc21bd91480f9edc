"""db/txn.py: RetryQueue (what a writer still has to write) and TxnLoop
(one Southbound transaction in flight, retried after a failure once the
IDL changed or a back-off passed), with a fake IDL and a fake
ovs.db.idl.Transaction whose commit() statuses the test scripts.
"""

from __future__ import annotations

import ovs.db.idl
import pytest

from pinctrl.db import txn as m
from tests.helpers import counter_delta

Txn = ovs.db.idl.Transaction


# --- RetryQueue -------------------------------------------------------------------

def test_add_keeps_the_newest_value_or_merges():
    q = m.RetryQueue("test_drop")
    q.add({"a": 1, "b": 1})
    q.add({"a": 2})
    assert q.pending == {"a": 2, "b": 1}
    merged = m.RetryQueue("test_drop", merge=lambda old, new: old + new)
    merged.add({"a": 1})
    merged.add({"a": 2, "b": 5})
    assert merged.pending == {"a": 3, "b": 5}


def test_start_moves_everything_or_what_is_due():
    q = m.RetryQueue("test_drop")
    q.add({"a": 1, "b": 5, "c": 9})
    assert q.start(lambda v: v < 6) == [("a", 1), ("b", 5)]
    assert q.pending == {"c": 9} and q.in_flight == {"a": 1, "b": 5}
    assert len(q) == 3
    assert q.start() == [("c", 9)]
    assert q.pending == {} and len(q) == 3


def test_committed_forgets_what_was_in_flight():
    q = m.RetryQueue("test_drop")
    q.add({"a": 1})
    q.start()
    q.add({"b": 2})                     # arrived meanwhile
    q.committed()
    assert (q.in_flight, q.pending) == ({}, {"b": 2})


def test_failed_puts_back_unless_a_newer_value_arrived():
    q = m.RetryQueue("test_drop")
    q.add({"a": 1, "b": 1})
    q.start()
    q.add({"a": 2})                     # newer value while in flight
    q.failed()
    assert q.pending == {"a": 2, "b": 1} and q.in_flight == {}


def test_dropped_entry_is_not_brought_back():
    q = m.RetryQueue("test_drop")
    q.add({"a": 1, "b": 1})
    q.start()
    q.drop("a")
    q.failed()
    assert q.pending == {"b": 1}


def test_cap_drops_the_oldest_and_counts_them():
    q = m.RetryQueue("test_drop_capped", cap=3)
    q.add({1: "x", 2: "x"})
    _, n = counter_delta("test_drop_capped",
                         lambda: q.add({3: "x", 4: "x", 5: "x"}))
    assert n == 2 and list(q.pending) == [3, 4, 5]
    # A failed attempt putting entries back is capped too.
    q.start()
    q.add({6: "y"})
    _, n = counter_delta("test_drop_capped", q.failed)
    assert n == 1 and len(q.pending) == 3


# --- TxnLoop ----------------------------------------------------------------------

class FakeIdl:
    def __init__(self) -> None:
        self.change_seqno = 1


class FakeTxn:
    """ovs.db.idl.Transaction as TxnLoop uses it.  Writers record their
    entries in 'ops'.  commit() returns the next of FakeTxn.script (then
    INCOMPLETE); with FakeTxn.refuse, ERROR when an entry it names is in
    the transaction and SUCCESS otherwise, as a server refusing that
    entry's row for good."""
    INCOMPLETE, SUCCESS, UNCHANGED = Txn.INCOMPLETE, Txn.SUCCESS, Txn.UNCHANGED
    TRY_AGAIN, ERROR, NOT_LOCKED = Txn.TRY_AGAIN, Txn.ERROR, Txn.NOT_LOCKED
    script: list[str] = []
    refuse: set | None = None
    made: list["FakeTxn"] = []

    def __init__(self, idl) -> None:
        self.idl = idl
        self.comments: list[str] = []
        self.ops: list = []
        self.aborted = False
        self.n_commits = 0
        FakeTxn.made.append(self)

    def add_comment(self, text: str) -> None:
        self.comments.append(text)

    def commit(self) -> str:
        self.n_commits += 1
        if FakeTxn.refuse is not None:
            return Txn.ERROR if FakeTxn.refuse & set(self.ops) \
                else Txn.SUCCESS
        return FakeTxn.script.pop(0) if FakeTxn.script else Txn.INCOMPLETE

    def abort(self) -> None:
        self.aborted = True

    def get_error(self) -> str:
        return "constraint violation"


class FakeWriter:
    """A writer with one RetryQueue holding 'work' entries ("<name><i>");
    write() takes what the transaction has room for and adds one operation
    per entry (if 'writes')."""

    def __init__(self, name: str, work: int = 0, writes: bool = True,
                 due: int | None = None) -> None:
        self.name = name
        self.q: m.RetryQueue = m.RetryQueue(f"test_drop_{name}", name=name)
        self.n = 0
        self.add(work)
        self.writes = writes
        self.due = due
        self.calls: list[str] = []

    def add(self, n: int, now: int = 0) -> None:
        self.q.add({f"{self.name}{self.n + i}": i for i in range(n)}, now)
        self.n += n

    def collect(self, now: int) -> None:
        self.calls.append("collect")

    def has_work(self, now: int) -> bool:
        return bool(self.q.pending)

    def write(self, txn, ctx, now: int) -> bool:
        self.calls.append("write")
        if not self.writes:
            return False
        batch = self.q.start()
        txn.ops += [k for k, _ in batch]
        return bool(batch)

    def queues(self):
        return (self.q,)

    def next_due(self) -> int | None:
        return self.due

    def __len__(self) -> int:
        return len(self.q)


class FakePoller:
    def __init__(self) -> None:
        self.calls: list[tuple] = []

    def immediate_wake(self) -> None:
        self.calls.append(("immediate",))

    def timer_wait_until(self, msec: int) -> None:
        self.calls.append(("until", msec))


@pytest.fixture(autouse=True)
def fake_txn(monkeypatch):
    FakeTxn.script, FakeTxn.made, FakeTxn.refuse = [], [], None
    monkeypatch.setattr(m, "Txn", FakeTxn)


def loop(*writers) -> m.TxnLoop:
    return m.TxnLoop(FakeIdl(), writers)


def test_nothing_to_write_no_transaction():
    w = FakeWriter("w")
    tl = loop(w)
    tl.run(None, 0, True)
    assert FakeTxn.made == [] and w.calls == ["collect"]


def test_one_transaction_carries_every_writer_and_commits():
    a, b, idle = FakeWriter("a", 2), FakeWriter("b", 1), FakeWriter("idle")
    tl = loop(a, b, idle)
    FakeTxn.script = [Txn.SUCCESS]
    _, n = counter_delta("sb_txn_commit", lambda: tl.run(None, 0, True))
    assert n == 1 and tl.n_commits == 1 and tl.txn is None
    (txn,) = FakeTxn.made
    assert txn.comments == ["pinctrl-daemon"]
    assert sorted(txn.ops) == ["a0", "a1", "b0"]
    assert tl.pending() == {"a": 0, "b": 0, "idle": 0}


def test_writers_adding_nothing_abort_the_transaction():
    w = FakeWriter("w", 1, writes=False)
    tl = loop(w)
    tl.run(None, 0, True)
    (txn,) = FakeTxn.made
    assert txn.aborted and tl.txn is None


def test_not_connected_starts_nothing_but_collects():
    w = FakeWriter("w", 1)
    tl = loop(w)
    tl.run(None, 0, False)
    assert FakeTxn.made == [] and w.calls == ["collect"]


def test_one_transaction_in_flight_at_a_time():
    w = FakeWriter("w", 1)
    tl = loop(w)
    tl.run(None, 0, True)               # INCOMPLETE: in flight
    w.add(5)                            # more arrives
    tl.run(None, 10, True)
    tl.run(None, 20, True)
    (txn,) = FakeTxn.made
    assert txn.n_commits == 3           # polled, not replaced
    FakeTxn.script = [Txn.SUCCESS, Txn.INCOMPLETE]
    tl.run(None, 30, True)              # done; the next one starts
    assert len(FakeTxn.made) == 2 and tl.txn is FakeTxn.made[1]
    assert len(w.q.in_flight) == 5 and len(w) == 5


@pytest.mark.parametrize("status", [Txn.TRY_AGAIN, Txn.ERROR, Txn.NOT_LOCKED])
def test_failure_puts_back_and_waits_for_a_change(status):
    w = FakeWriter("w", 3)
    tl = loop(w)
    FakeTxn.script = [status]
    _, n = counter_delta("sb_txn_retry", lambda: tl.run(None, 0, True))
    assert n == 1 and tl.n_failures == 1 and tl.last_status == status
    assert len(w.q.pending) == 3 and not w.q.in_flight
    tl.run(None, 100, True)             # same IDL, before the back-off
    assert len(FakeTxn.made) == 1
    tl.idl.change_seqno += 1            # e.g. the other chassis' row arrived
    tl.run(None, 101, True)
    assert len(FakeTxn.made) == 2


def attempts(tl: m.TxnLoop, start: int, until: int,
             step: int = 50) -> list[int]:
    """Run the loop every 'step' ms; the times a transaction started."""
    out = []
    for t in range(start, until, step):
        n = len(FakeTxn.made)
        tl.run(None, t, True)
        if len(FakeTxn.made) != n:
            out.append(t)
    return out


def test_retry_backoff_doubles_to_8_s_and_resets_on_success():
    w = FakeWriter("w", 1)
    tl = loop(w)
    FakeTxn.script = [Txn.TRY_AGAIN] * 8        # every attempt fails
    times = attempts(tl, 0, 30000)
    gaps = [b - a for a, b in zip(times, times[1:])]
    assert gaps == [250, 500, 1000, 2000, 4000, 8000, 8000]
    # The next attempt succeeds; a later failure starts again at 250 ms.
    FakeTxn.script = [Txn.SUCCESS]
    (ok_at,) = attempts(tl, times[-1] + 50, times[-1] + 9000)[:1]
    assert tl.last_status == Txn.SUCCESS
    w.add(1)
    FakeTxn.script = [Txn.TRY_AGAIN]
    first, second = attempts(tl, ok_at + 50, ok_at + 2000)[:2]
    assert second - first == m.RETRY_MIN_MS


def test_wait_for_work_due_retry_and_in_flight():
    w = FakeWriter("w", 1)
    tl = loop(w)
    p = FakePoller()
    tl.wait(p, 0, True)
    assert p.calls == [("immediate",)]          # work now
    tl.run(None, 0, True)                       # in flight
    p = FakePoller()
    tl.wait(p, 0, True)
    assert p.calls == []                        # idl.wait() wakes us
    FakeTxn.script = [Txn.TRY_AGAIN]
    tl.run(None, 10, True)                      # failed at 10
    p = FakePoller()
    tl.wait(p, 10, True)
    assert p.calls == [("until", 10 + m.RETRY_MIN_MS)]
    p = FakePoller()
    tl.wait(p, 10, False)
    assert p.calls == []                        # disconnected: the IDL wakes us


def test_wait_until_a_writer_entry_is_due():
    w = FakeWriter("w", 0, due=5000)
    tl = loop(w)
    p = FakePoller()
    tl.wait(p, 0, True)
    assert p.calls == [("until", 5000)]


# --- issue 15: capped batches, a failing entry isolated, backlog ------------------

def drain(tl: m.TxnLoop, until: int = 600_000, step: int = 50) -> None:
    """Run the loop until nothing is left to write (or 'until' ms)."""
    for t in range(0, until, step):
        tl.run(None, t, True)
        if not any(len(w) for w in tl.writers):
            return
    raise AssertionError(f"still to write: {tl.pending()}")


def test_a_transaction_carries_at_most_max_batch_entries():
    a, b = FakeWriter("a", 2000), FakeWriter("b", 10)
    tl = loop(a, b)
    FakeTxn.refuse = set()                      # every commit succeeds
    drain(tl)
    sizes = [len(t.ops) for t in FakeTxn.made]
    assert max(sizes) == m.MAX_BATCH and sum(sizes) == 2010
    # The first writer rotates: b's 10 entries do not wait for all of a's.
    assert any(op.startswith("b") for op in FakeTxn.made[0].ops
               + FakeTxn.made[1].ops)


def test_an_entry_the_server_always_refuses_is_isolated_and_dropped():
    """Before issue 15 one such entry failed every transaction, carrying
    everything else with it, forever."""
    a, b = FakeWriter("a", 600), FakeWriter("b", 300)
    tl = loop(a, b)
    FakeTxn.refuse = {"a123"}
    _, dropped = counter_delta("sb_txn_drop_failing_entry", lambda: drain(tl))
    assert dropped == 1 and tl.n_dropped == 1
    written = {op for t in FakeTxn.made
               if not (FakeTxn.refuse & set(t.ops)) for op in t.ops}
    assert written == {f"a{i}" for i in range(600)} - {"a123"} \
        | {f"b{i}" for i in range(300)}
    # Alone, it failed MAX_ALONE_FAILURES times; bisection found it in a
    # handful of transactions, not one per entry.
    alone = [t for t in FakeTxn.made if t.ops == ["a123"]]
    assert len(alone) == m.MAX_ALONE_FAILURES
    assert len(FakeTxn.made) < 40, len(FakeTxn.made)
    assert not a.q.suspects and not a.q.since


def test_new_entries_are_written_while_suspects_are_isolated():
    a = FakeWriter("a", 4)
    tl = loop(a)
    FakeTxn.refuse = {"a0"}
    tl.run(None, 0, True)                       # the batch of 4 fails
    assert set(a.q.suspects) == {"a0", "a1", "a2", "a3"}
    a.add(3)                                    # a4..a6, not suspects
    t = 0
    while "a4" not in {op for tr in FakeTxn.made for op in tr.ops}:
        t += 50
        tl.run(None, t, True)
    # The normal batch that carried them held no suspect.
    (normal,) = [tr for tr in FakeTxn.made if "a4" in tr.ops]
    assert sorted(normal.ops) == ["a4", "a5", "a6"]


def test_try_again_makes_no_suspects():
    w = FakeWriter("w", 5)
    tl = loop(w)
    FakeTxn.script = [Txn.TRY_AGAIN]
    tl.run(None, 0, True)
    assert not w.q.suspects and len(w.q.pending) == 5


def test_a_suspect_that_lands_is_cleared():
    q = m.RetryQueue("test_drop")
    q.add({"a": 1, "b": 2}, 0)
    q.start()
    q.failed(m.BATCH_FAILED)
    assert q.suspects == {"a": 0, "b": 0}
    q.batch = m.Batch(1, suspects=True)
    assert q.start() == [("a", 1)]
    assert q.failed(m.ALONE_FAILED) == [] and q.suspects["a"] == 1
    q.batch = m.Batch(5, suspects=True)
    q.start()
    q.committed()
    assert q.suspects == {} and q.pending == {} and q.since == {}


def test_batch_room_and_suspect_filter():
    q = m.RetryQueue("test_drop")
    q.add({i: i for i in range(10)}, 0)
    q.suspects[3] = 0
    q.batch = m.Batch(4)
    assert [k for k, _ in q.start()] == [0, 1, 2, 4]
    assert q.batch.left == 0 and q.start() == []
    q.batch = m.Batch(4, suspects=True)
    assert q.start() == [(3, 3)] and q.batch.left == 3


def test_backlog_depth_and_age():
    a, b = FakeWriter("a"), FakeWriter("b")
    tl = loop(a, b)
    a.add(3, now=1000)
    a.add(2, now=4000)
    assert tl.backlog(6000) == {"a": (5, 5.0), "b": (0, 0.0)}
    FakeTxn.script = [Txn.INCOMPLETE]
    tl.run(None, 6000, True)                    # in flight: still backlog
    assert tl.backlog(7000)["a"] == (5, 6.0)
    FakeTxn.script = [Txn.SUCCESS]
    tl.run(None, 7000, True)
    assert tl.backlog(8000)["a"] == (0, 0.0)


def test_abandon_puts_the_transaction_in_flight_back():
    w = FakeWriter("w", 3)
    tl = loop(w)
    tl.run(None, 0, True)                       # in flight
    assert len(w.q.in_flight) == 3
    tl.abandon()
    assert tl.txn is None and len(w.q.pending) == 3 and not w.q.in_flight


def test_queue_caps_are_the_documented_ones():
    from pinctrl.db.writers.fdb import FdbWriter
    from pinctrl.db.writers.mac_binding import MacBindingWriter
    from pinctrl.shared.state import MAC_BINDING_HANDOVER_CAP, SharedState
    shared = SharedState()
    assert MacBindingWriter(shared).queue.cap == 2 * MAC_BINDING_HANDOVER_CAP
    assert FdbWriter(shared).queue.cap == 2000
    assert MacBindingWriter(shared).local.cap == m.MAX_PENDING == 2048


def test_writers_that_cannot_write_yet_do_not_spin_the_loop():
    """Controller events wait for our Chassis row: before, the loop woke
    at once forever (has_work true, nothing written)."""
    w = FakeWriter("w", 2, writes=False)
    tl = loop(w)
    tl.run(None, 0, True)
    tl.run(None, 10, True)
    assert len(FakeTxn.made) == 1                 # tried once
    p = FakePoller()
    tl.wait(p, 10, True)
    assert ("immediate",) not in p.calls
    tl.idl.change_seqno += 1                      # e.g. the row arrived
    w.writes = True
    FakeTxn.script = [Txn.SUCCESS]
    tl.run(None, 20, True)
    assert len(FakeTxn.made) == 2 and len(w) == 0


def test_an_entry_becoming_due_is_written_while_another_writer_stalls():
    """A learnt binding is committed 1..50 ms after a broadcast: it became
    due while another writer could not write (events waiting for our
    Chassis row), and nothing else changed.  The stall must not hold it:
    once due, it goes (test_neighbor_golden bind_vport_garp's put_arp rows
    were written only when the next exchange's traffic changed the IDL)."""
    class DueWriter(FakeWriter):
        def has_work(self, now: int) -> bool:
            return bool(self.q.pending) and now >= 40

        def write(self, txn, ctx, now: int) -> bool:
            return self.has_work(now) and super().write(txn, ctx, now)

    stuck = FakeWriter("stuck", 1, writes=False)
    later = DueWriter("later", 1, due=40)
    tl = loop(stuck, later)
    tl.run(None, 0, True)                           # nothing can go
    assert FakeTxn.made and FakeTxn.made[-1].ops == []
    p = FakePoller()
    tl.wait(p, 0, True)
    assert p.calls == [("until", 40)]               # woken when it is due
    FakeTxn.script = [Txn.SUCCESS]
    tl.run(None, 40, True)
    assert FakeTxn.made[-1].ops == ["later0"] and len(later) == 0


class StateWriter:
    """A writer without queues (it syncs a state, as IGMP_Group's)."""
    name = "state"

    def __init__(self) -> None:
        self.dirty = True
        self.calls: list[str] = []

    def collect(self, now: int) -> None:
        pass

    def has_work(self, now: int) -> bool:
        return self.dirty

    def write(self, txn, ctx, now: int) -> bool:
        self.dirty = False
        txn.ops.append("state")
        return True

    def committed(self) -> None:
        self.calls.append("committed")

    def failed(self) -> None:
        self.calls.append("failed")
        self.dirty = True

    def next_due(self) -> int | None:
        return None

    def __len__(self) -> int:
        return int(self.dirty)


def test_a_writer_without_queues_is_told_and_never_suspect():
    st, a = StateWriter(), FakeWriter("a", 3)
    tl = loop(st, a)
    FakeTxn.refuse = {"state"}          # the state's write fails for good
    for t in range(0, 20_000, 50):
        tl.run(None, t, True)
    assert "failed" in st.calls and "committed" not in st.calls
    # a's entries were isolated from it and written.
    assert len(a) == 0
    assert all("state" not in tr.ops for tr in FakeTxn.made
               if any(op.startswith("a") for op in tr.ops)
               and not FakeTxn.refuse & set(tr.ops))
