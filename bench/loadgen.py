"""The load generator: closed loop (capacity) and open loop (fixed rate).

Runs in the bench process's main thread, alone (the SB churn writer is
another process), on AF_PACKET sockets opened in the generator's netns
(rawsock.py).  Sends go out in sendmmsg batches of up to 64 pre-built
frames whose identifier is patched in place; answers are read with
recvmmsg and matched by identifier (frames.py), so the per-packet Python
work is a dict pop and a few struct reads.  Time stamps are taken in user
space right after the batch send / receive call: they include the
generator's own loop latency, which `ceiling()` measures.
"""

from __future__ import annotations

import select
import socket
import time
from array import array
from dataclasses import dataclass, field

from .frames import Workload
from .rawsock import Batch, Receiver, drops

MAX_BATCH = 64


@dataclass
class RunResult:
    """One measurement.  rtts_us: request->answer round trips (µs)."""
    workload: str
    mode: str                 # "closed" or "open"
    offered: float            # requests/s offered (open loop) or window (closed)
    duration: float
    sent: int = 0
    answered: int = 0
    rx_drops: int = 0         # the generator's own socket drops (kernel count)
    rtts_us: array = field(default_factory=lambda: array("d"))

    @property
    def rate(self) -> float:
        return self.answered / self.duration if self.duration else 0.0

    @property
    def loss(self) -> float:
        return 1.0 - self.answered / self.sent if self.sent else 0.0

    def percentile(self, p: float) -> float | None:
        if not self.rtts_us:
            return None
        s = sorted(self.rtts_us)
        return s[min(len(s) - 1, int(p / 100.0 * len(s)))]


class Generator:
    """Sockets on the generator's interfaces ({"p1": sock, "p4": sock})."""

    def __init__(self, socks: dict[str, socket.socket]) -> None:
        self.socks = socks
        self.rx = Receiver(MAX_BATCH)

    def _drain(self, sock: socket.socket) -> None:
        while self.rx.recv(sock):
            pass
        drops(sock)             # reset the kernel's counters

    def _answers(self, sock: socket.socket, match, pending: dict, res: RunResult) -> int:
        """Read every queued frame; account matched answers.  Returns how
        many requests were answered."""
        n = 0
        while True:
            frames = self.rx.recv(sock)
            if not frames:
                return n
            now = time.perf_counter()
            rtts = res.rtts_us
            for f in frames:
                ident = match(f)
                if ident is None:
                    continue
                t = pending.pop(ident, None)
                if t is None:           # not ours, timed out, or a duplicate
                    continue
                rtts.append((now - t) * 1e6)
                n += 1
            if len(frames) < self.rx.n:
                return n

    def _prepare(self, w: Workload, echo: bool):
        """(tx socket, rx socket, answer matcher, sender, poller) of a run."""
        tx, rx = self.socks[w.tx], self.socks[w.tx if echo else w.rx]
        self._drain(rx)
        poller = select.poll()
        poller.register(rx.fileno(), select.POLLIN)
        return tx, rx, (w.echo_id if echo else w.answer_id), _Sender(w), poller

    def _finish(self, res: RunResult, rx, poller, match, pending: dict, t0: float,
                timeout: float) -> RunResult:
        """Close the measured window; answers still in flight within
        `timeout` count, but not toward the rate's duration."""
        res.duration = time.perf_counter() - t0
        deadline = time.perf_counter() + timeout
        while pending and time.perf_counter() < deadline:
            poller.poll(5)
            res.answered += self._answers(rx, match, pending, res)
        res.rx_drops = drops(rx)[1]
        return res

    def closed_loop(self, w: Workload, duration: float, window: int = 64,
                    timeout: float = 0.2, echo: bool = False, refill: int = 8) -> RunResult:
        """Keep up to `window` requests outstanding for `duration` s, sending
        again once `refill` slots are free (fewer syscalls and wake-ups: the
        generator shares 2 CPUs with what it measures).  A request not
        answered within `timeout` s is lost and its slot refilled.
        echo: answers are the requests reflected (the ceiling flow)."""
        refill = min(refill, window)
        tx, rx, match, sender, poller = self._prepare(w, echo)
        res = RunResult(w.name, "closed", window, duration)
        pending: dict[int, float] = {}
        t0 = time.perf_counter()
        end, next_expire = t0 + duration, t0 + timeout
        now = t0
        while now < end:
            free = window - len(pending)
            if free >= refill:
                res.sent += sender.send(tx, free, pending)
            poller.poll(1)
            res.answered += self._answers(rx, match, pending, res)
            now = time.perf_counter()
            if now >= next_expire:
                cutoff = now - timeout
                for x in [x for x, t in pending.items() if t < cutoff]:
                    del pending[x]
                next_expire = now + timeout / 4
        return self._finish(res, rx, poller, match, pending, t0, timeout)

    def open_loop(self, w: Workload, rate: float, duration: float, timeout: float = 0.5,
                  echo: bool = False, expect_answers: bool = True) -> RunResult:
        """Send at `rate`/s for `duration` s (batches of whatever is due,
        at most 64), whatever comes back."""
        tx, rx, match, sender, poller = self._prepare(w, echo)
        res = RunResult(w.name, "open", rate, duration)
        pending: dict[int, float] = {}
        t0 = time.perf_counter()
        end = t0 + duration
        now = t0
        while now < end:
            due = int((now - t0) * rate) + 1 - res.sent
            if due > 0:
                res.sent += sender.send(tx, due, pending if expect_answers else None)
            wait_ms = max(0, int(((res.sent + 1) / rate - (time.perf_counter() - t0)) * 1000))
            poller.poll(min(wait_ms, 5))
            if expect_answers:
                res.answered += self._answers(rx, match, pending, res)
            else:
                self._drain(rx)
            now = time.perf_counter()
        return self._finish(res, rx, poller, match, pending, t0, timeout)

    def send_ceiling(self, w: Workload, duration: float = 1.0) -> float:
        """Frames/s this generator can patch and hand to the kernel (no
        answers awaited): its own ceiling on the send side."""
        tx, sender = self.socks[w.tx], _Sender(w)
        sent, t0 = 0, time.perf_counter()
        while time.perf_counter() - t0 < duration:
            sent += sender.send(tx, MAX_BATCH, None)
        return sent / (time.perf_counter() - t0)


class _Sender:
    """A workload's request batch and identifier counter."""

    def __init__(self, w: Workload) -> None:
        template, self.c0 = w.template()
        self.batch = Batch(template, MAX_BATCH)
        self.patch, self.space, self.ident = w.patch, w.id_space, 0

    def send(self, sock: socket.socket, n: int, pending: dict | None) -> int:
        """Patch and send up to n (≤ 64) new requests; record their send
        time in `pending` (id -> time) unless None.  Returns how many left."""
        ids, views, ident = [], self.batch.views, self.ident
        for i in range(min(n, MAX_BATCH)):
            ident = (ident + 1) % self.space
            self.patch(views[i], ident, self.c0)
            ids.append(ident)
        k = self.batch.send(sock, len(ids))
        self.ident = ids[k - 1] if k else self.ident
        if pending is not None:
            ts = time.perf_counter()
            for x in ids[:k]:
                pending[x] = ts
        return k


def match_cost_us(w: Workload, n: int = 20000) -> float:
    """µs the generator spends recognising one answer (frames.py parser on
    the workload's own echo), for the generator's ceiling line."""
    f = w.frame(12345)
    t0 = time.perf_counter()
    for _ in range(n):
        w.echo_id(f)
    return (time.perf_counter() - t0) / n * 1e6
