"""Seq and Latch: cross-thread wake-ups that plug into an ovs.poller loop.

Modelled on OVS lib/seq.c and lib/latch.c.  A Seq is a counter that any
thread may bump with change(); a consumer remembers read() and later calls
wait(poller, seen), which makes its next Poller.block() return as soon as the
counter differs from 'seen'.  The wake-up is a byte in a non-blocking pipe, so
it integrates with everything else the poll loop waits for (sockets, timers).

Thread-safety: change(), read() and wait() may be called from any thread; the
internal lock guards the counter and the "a byte is in the pipe" flag.
"""

from __future__ import annotations

import errno
import os
import select
import threading

import ovs.poller


def _make_pipe() -> tuple[int, int]:
    r, w = os.pipe()
    os.set_blocking(r, False)
    os.set_blocking(w, False)
    return r, w


def _close_pipe(obj: object) -> None:
    """Close obj's pipe once (close() and __del__ may both run)."""
    for attr in ("_rfd", "_wfd"):
        fd = getattr(obj, attr, -1)
        if fd >= 0:
            setattr(obj, attr, -1)
            try:
                os.close(fd)
            except OSError as e:  # pragma: no cover
                if e.errno != errno.EBADF:
                    raise


def _drain(fd: int) -> None:
    try:
        while os.read(fd, 512):
            pass
    except BlockingIOError:
        pass


class _PipeOwner:
    """Closes the wake-up pipe of a Seq or Latch, once, also when the object
    is collected."""

    __slots__ = ()

    def close(self) -> None:
        _close_pipe(self)

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:   # at interpreter exit the module may be gone
            pass


class Seq(_PipeOwner):
    """A sequence number whose change wakes a waiting poll loop."""

    __slots__ = ("_lock", "_value", "_signalled", "_rfd", "_wfd")

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._value = 1
        self._signalled = False     # a wake-up byte sits in the pipe
        self._rfd, self._wfd = _make_pipe()

    def change(self) -> None:
        """Bump the sequence number and wake every waiter (any thread)."""
        with self._lock:
            self._value += 1
            if not self._signalled:
                self._signalled = True
                try:
                    os.write(self._wfd, b"\0")
                except BlockingIOError:
                    pass

    def read(self) -> int:
        """Current sequence number (any thread)."""
        with self._lock:
            return self._value

    def wait(self, poller: ovs.poller.Poller, seen: int) -> None:
        """Make poller.block() return once the value differs from 'seen'."""
        with self._lock:
            if self._value != seen:
                poller.immediate_wake()
                return
            if self._signalled:
                # The byte belongs to a change the caller has already seen.
                _drain(self._rfd)
                self._signalled = False
        poller.fd_wait(self._rfd, select.POLLIN)



class Latch(_PipeOwner):
    """A one-way flag that wakes a poll loop once set (OVS lib/latch.c)."""

    __slots__ = ("_rfd", "_wfd")

    def __init__(self) -> None:
        self._rfd, self._wfd = _make_pipe()

    def set(self) -> None:
        try:
            os.write(self._wfd, b"\0")
        except BlockingIOError:
            pass

    def is_set(self) -> bool:
        p = select.poll()
        p.register(self._rfd, select.POLLIN)
        return bool(p.poll(0))

    def wait(self, poller: ovs.poller.Poller) -> None:
        poller.fd_wait(self._rfd, select.POLLIN)

