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
    """ovs.db.idl.Transaction as TxnLoop uses it; each commit() returns
    the next of FakeTxn.script (then INCOMPLETE)."""
    INCOMPLETE, SUCCESS, UNCHANGED = Txn.INCOMPLETE, Txn.SUCCESS, Txn.UNCHANGED
    TRY_AGAIN, ERROR, NOT_LOCKED = Txn.TRY_AGAIN, Txn.ERROR, Txn.NOT_LOCKED
    script: list[str] = []
    made: list["FakeTxn"] = []

    def __init__(self, idl) -> None:
        self.idl = idl
        self.comments: list[str] = []
        self.aborted = False
        self.n_commits = 0
        FakeTxn.made.append(self)

    def add_comment(self, text: str) -> None:
        self.comments.append(text)

    def commit(self) -> str:
        self.n_commits += 1
        return FakeTxn.script.pop(0) if FakeTxn.script else Txn.INCOMPLETE

    def abort(self) -> None:
        self.aborted = True

    def get_error(self) -> str:
        return "constraint violation"


class FakeWriter:
    """A writer with 'work' entries: write() adds one operation per entry
    to the transaction (if 'writes')."""

    def __init__(self, name: str, work: int = 0, writes: bool = True,
                 due: int | None = None) -> None:
        self.name = name
        self.work = work
        self.writes = writes
        self.due = due
        self.calls: list[str] = []
        self.in_flight = 0

    def collect(self, now: int) -> None:
        self.calls.append("collect")

    def has_work(self, now: int) -> bool:
        return self.work > 0

    def write(self, txn, ctx, now: int) -> bool:
        self.calls.append("write")
        if not self.writes or not self.work:
            return False
        self.in_flight, self.work = self.work, 0
        return True

    def committed(self) -> None:
        self.calls.append("committed")
        self.in_flight = 0

    def failed(self) -> None:
        self.calls.append("failed")
        self.work, self.in_flight = self.work + self.in_flight, 0

    def next_due(self) -> int | None:
        return self.due

    def __len__(self) -> int:
        return self.work + self.in_flight


class FakePoller:
    def __init__(self) -> None:
        self.calls: list[tuple] = []

    def immediate_wake(self) -> None:
        self.calls.append(("immediate",))

    def timer_wait_until(self, msec: int) -> None:
        self.calls.append(("until", msec))


@pytest.fixture(autouse=True)
def fake_txn(monkeypatch):
    FakeTxn.script, FakeTxn.made = [], []
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
    assert "committed" in a.calls and "committed" in b.calls
    assert "committed" not in idle.calls        # added nothing
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
    w.work = 5                          # more arrives
    tl.run(None, 10, True)
    tl.run(None, 20, True)
    (txn,) = FakeTxn.made
    assert txn.n_commits == 3           # polled, not replaced
    FakeTxn.script = [Txn.SUCCESS, Txn.INCOMPLETE]
    tl.run(None, 30, True)              # done; the next one starts
    assert len(FakeTxn.made) == 2 and tl.txn is FakeTxn.made[1]
    assert w.in_flight == 5


@pytest.mark.parametrize("status", [Txn.TRY_AGAIN, Txn.ERROR, Txn.NOT_LOCKED])
def test_failure_puts_back_and_waits_for_a_change(status):
    w = FakeWriter("w", 3)
    tl = loop(w)
    FakeTxn.script = [status]
    _, n = counter_delta("sb_txn_retry", lambda: tl.run(None, 0, True))
    assert n == 1 and tl.n_failures == 1 and tl.last_status == status
    assert w.calls[-1] == "failed" and len(w) == 3
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
    w.work = 1
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
