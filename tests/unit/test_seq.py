"""Seq and Latch wake an ovs.poller loop across threads.

What a Poller is asked to wait for is recorded by a fake poller; whether
that wait would end is then asked of the kernel with poll(2) on the same
descriptor: at once (timeout 0) for "not woken", or with a long timeout
that only readiness can end before it for "woken".  No test measures
time.
"""

import os
import select
import threading

from pinctrl.shared.seq import Latch, Seq

LONG_MS = 60_000     # a wake-up that never comes fails the test after this


class RecordingPoller:
    """ovs.poller.Poller as Seq/Latch use it."""

    def __init__(self) -> None:
        self.immediate = False
        self.fds: list[tuple[int, int]] = []

    def immediate_wake(self) -> None:
        self.immediate = True

    def fd_wait(self, fd: int, events: int) -> None:
        self.fds.append((fd, events))


def waits(setup) -> RecordingPoller:
    p = RecordingPoller()
    setup(p)
    return p


def ready(p: RecordingPoller, timeout_ms: int = 0) -> bool:
    """Whether poller.block() would return for the fds 'p' was given
    within 'timeout_ms' (it returns at once if immediate)."""
    if p.immediate:
        return True
    poll = select.poll()
    for fd, events in p.fds:
        poll.register(fd, events)
    return bool(poll.poll(timeout_ms))


def test_seq_wait_returns_at_once_if_changed_since_read():
    s = Seq()
    seen = s.read()
    s.change()
    assert s.read() == seen + 1
    assert waits(lambda p: s.wait(p, seen)).immediate


def test_seq_wait_blocks_until_a_change():
    s = Seq()
    seen = s.read()
    p = waits(lambda p: s.wait(p, seen))
    assert not p.immediate and not ready(p)
    s.change()
    assert ready(p)


def test_seq_change_from_another_thread_wakes_the_waiter():
    s = Seq()
    seen = s.read()
    p = waits(lambda p: s.wait(p, seen))
    t = threading.Thread(target=s.change)
    t.start()
    try:
        assert ready(p, LONG_MS)        # readiness, not the timeout
    finally:
        t.join()
    assert s.read() == seen + 1


def test_seq_stale_wakeup_is_drained():
    """The byte of a change the consumer has already seen must not wake
    it again."""
    s = Seq()
    s.change()
    seen = s.read()
    p = waits(lambda p: s.wait(p, seen))
    assert not p.immediate and not ready(p)


def test_many_changes_one_wakeup_byte():
    s = Seq()
    seen = s.read()
    for _ in range(10000):              # would fill a 64 KiB pipe
        s.change()
    assert s.read() == seen + 10000
    p = waits(lambda p: s.wait(p, s.read()))
    assert not ready(p)                 # drained in one go


def test_latch():
    latch = Latch()
    assert not latch.is_set()
    p = waits(latch.wait)
    assert not ready(p)
    t = threading.Thread(target=latch.set)
    t.start()
    try:
        assert ready(p, LONG_MS)
    finally:
        t.join()
    assert latch.is_set()
    assert latch.is_set()               # stays set


def test_pipes_are_released():
    before = len(os.listdir("/proc/self/fd"))
    for _ in range(2000):           # would exhaust a 1024-fd limit if leaked
        Seq().change()
        Latch().set()
    assert len(os.listdir("/proc/self/fd")) <= before + 4
