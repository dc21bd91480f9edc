"""LoopPoller: the pinctrl_handler thread's poller, made once.

python-ovs's Poller is made per loop iteration and, since 2.16, emulates
poll() with select() (SelectPoll): every wake-up paid for a new object, a
dict of fds and three lists.  LoopPoller offers the same calls the handler's
components make (fd_wait, timer_wait, timer_wait_until, immediate_wake,
block), so the jobs, OfConn, Seq and Latch wait on it unchanged, but keeps
one select.poll object for the life of the thread: an fd waited for in two
rounds in a row with the same events is registered once.  The fds waited
for in a round are compared with the last round's in user space (a dict
compare, no system call); the one system call per wake-up is poll().

poll(), not epoll: the kernel keeps no registration, so a socket closed
and replaced by another with the same fd number is simply polled again
(epoll would keep watching the closed file description).

Used by the pinctrl_handler thread only.
"""

from __future__ import annotations

import errno
import select
from typing import Any, Protocol

import ovs.timeval
import ovs.vlog

vlog = ovs.vlog.Vlog("poller")


class HasFileno(Protocol):
    def fileno(self) -> int: ...


class LoopPoller:
    """An ovs.poller.Poller look-alike that lives as long as its thread.
    Registrations are one-shot, as python-ovs's: what is not waited for
    again before the next block() is not polled then."""

    __slots__ = ("_poll", "_registered", "_wanted", "timeout")

    def __init__(self) -> None:
        self._poll = select.poll()
        self._registered: dict[int, int] = {}   # fd -> events, in _poll
        self._wanted: dict[int, int] = {}       # fd -> events, this round
        self.timeout: float = -1                # msec; -1: no timer

    # --- the ovs.poller.Poller calls ----------------------------------------
    def fd_wait(self, fd: int | HasFileno, events: int) -> None:
        """Wake the next block() when 'fd' (an int or an object with
        fileno()) is ready for 'events' (select.POLLIN / POLLOUT)."""
        if not isinstance(fd, int):
            fd = fd.fileno()
        wanted = self._wanted
        wanted[fd] = wanted.get(fd, 0) | events

    def timer_wait(self, msec: float) -> None:
        """Wake the next block() after at most 'msec' ms."""
        if msec <= 0:
            self.timeout = 0
        elif self.timeout < 0 or msec < self.timeout:
            self.timeout = msec

    def timer_wait_until(self, msec: float) -> None:
        """Wake the next block() once ovs.timeval.msec() reaches 'msec'."""
        self.timer_wait(msec - ovs.timeval.msec())

    def immediate_wake(self) -> None:
        self.timeout = 0

    def block(self) -> list[tuple[int, int]]:
        """Wait for what this round asked for; returns poll()'s events
        (an empty list on timeout or EINTR).  Starts the next round."""
        wanted, registered = self._wanted, self._registered
        if wanted != registered:
            self._sync(wanted, registered)
        timeout = self.timeout
        self._wanted = {}
        self.timeout = -1
        try:
            return self._poll.poll(None if timeout < 0 else timeout)
        except OSError as e:             # pragma: no cover - EINTR is retried
            if e.errno != errno.EINTR:
                vlog.err(f"poll: {e.strerror}")
            return []

    # --- internals ------------------------------------------------------------
    def _sync(self, wanted: dict[int, int], registered: dict[int, int]
              ) -> None:
        poll = self._poll
        for fd in [fd for fd in registered if fd not in wanted]:
            poll.unregister(fd)
            del registered[fd]
        for fd, events in wanted.items():
            if registered.get(fd) != events:
                poll.register(fd, events)       # register() also modifies
                registered[fd] = events

    def registered(self) -> dict[int, Any]:
        """The fds polled by the last block() (tests)."""
        return dict(self._registered)
