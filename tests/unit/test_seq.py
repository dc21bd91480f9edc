"""Seq and Latch wake an ovs.poller loop across threads."""

import threading
import time

import ovs.poller

from pinctrl.shared.seq import Latch, Seq


def _blocks_for(setup, timeout_ms=300) -> float:
    poller = ovs.poller.Poller()
    setup(poller)
    poller.timer_wait(timeout_ms)
    t = time.monotonic()
    poller.block()
    return time.monotonic() - t


def test_seq_wait_returns_at_once_if_changed_since_read():
    s = Seq()
    seen = s.read()
    s.change()
    assert s.read() != seen
    assert _blocks_for(lambda p: s.wait(p, seen)) < 0.1


def test_seq_wait_blocks_until_another_thread_changes_it():
    s = Seq()
    seen = s.read()
    threading.Timer(0.05, s.change).start()
    elapsed = _blocks_for(lambda p: s.wait(p, seen), timeout_ms=2000)
    assert 0.03 < elapsed < 1.0
    assert s.read() == seen + 1


def test_seq_stale_wakeup_is_drained():
    s = Seq()
    s.change()
    seen = s.read()         # the pending byte belongs to a seen change
    assert _blocks_for(lambda p: s.wait(p, seen), timeout_ms=100) >= 0.09


def test_latch():
    latch = Latch()
    assert not latch.is_set()
    threading.Timer(0.05, latch.set).start()
    assert _blocks_for(latch.wait, timeout_ms=2000) < 1.0
    assert latch.is_set()


def test_pipes_are_released():
    import os
    before = len(os.listdir("/proc/self/fd"))
    for _ in range(2000):           # would exhaust a 1024-fd limit if leaked
        Seq().change()
        Latch().set()
    assert len(os.listdir("/proc/self/fd")) <= before + 4
