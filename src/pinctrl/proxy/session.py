"""One proxied connection: ovn-controller's socket ("down") and ours to the
real br-int.mgmt ("up").

Bytes are forwarded as received, message boundaries kept by framing only
(the 16-bit length of every OpenFlow header), so xids, HELLO version
negotiation, echo and everything this daemon does not know pass untouched.
Two things are dropped, each counted:

* from the switch: packet-ins whose OVN opcode the daemon owns;
* from ovn-controller's pinctrl connection: packet-outs of the periodic
  duties the daemon owns (classify.frame_duty).

What ovn-controller sends on its other connections (ofctrl's flow and
group programming: the bulk, tens of thousands of messages at start) is
framed only until the connection's role is known and then pumped as raw
bytes.

Back-pressure, not memory: while one side's transmit buffer holds
TX_HIGH_WATER bytes, the other side is not read, so the kernel socket
buffers and then the sender (ovs-vswitchd's per-connection queue,
ovn-controller's rconn) hold the backlog, as on a direct connection.

End of a connection: when one side closes, what was already received for
the other side is written to it (for at most LINGER_MS) and then both are
closed, so ovn-controller sees ovs-vswitchd going away as a disconnect of
its own connection and resyncs as it would without the proxy.

Everything here runs on the proxy thread ("ofproxy"); the main thread
reads the counters for pinctrl/show (single attribute reads, and copies of
'passed' taken with dict(), both atomic under the GIL).
"""

from __future__ import annotations

import os
import socket
import time
from typing import Callable

import ovs.poller
import ovs.vlog

from pinctrl.proxy import classify
from pinctrl.support import coverage
from pinctrl.support.log import RateLimit, rl_log

vlog = ovs.vlog.Vlog("ofproxy")
_rl = RateLimit(30, 10)

RECV_CHUNK = 256 << 10
TX_HIGH_WATER = 1 << 20
# Chunks read from one socket per wake-up: other sessions get their turn.
MAX_READS_PER_RUN = 16
LINGER_MS = 1000
_OFP_HEADER_LEN = 8
_OFPT_PACKET_IN = 10

Handler = Callable[[bytes, bytearray], None]
Verdict = Callable[[bytearray, int, int], bool]

OPEN = "open"
DRAINING = "draining"
CLOSED = "closed"


class _Side:
    """One socket of a session and the bytes waiting to be written to it."""

    __slots__ = ("sock", "tx", "n_bytes_in")

    def __init__(self, sock: socket.socket) -> None:
        sock.setblocking(False)
        self.sock = sock
        self.tx = bytearray()
        self.n_bytes_in = 0

    def recv(self) -> bytes | None:
        """Up to RECV_CHUNK bytes; b"" at end of stream; None if nothing is
        waiting.  Raises OSError on a socket error."""
        try:
            data = self.sock.recv(RECV_CHUNK)
        except (BlockingIOError, InterruptedError):
            return None
        self.n_bytes_in += len(data)
        return data

    def flush(self) -> None:
        """Write what the socket takes now.  Raises OSError."""
        while self.tx:
            try:
                n = self.sock.send(self.tx)
            except (BlockingIOError, InterruptedError):
                return
            del self.tx[:n]

    def close(self) -> None:
        self.sock.close()
        self.tx.clear()


class Session:
    """ovn-controller's connection 'down' spliced to our connection 'up' to
    the switch.  'owned' are the opcodes whose packet-ins are dropped,
    'duties' the classify.DUTY_* whose packet-outs are dropped on the
    pinctrl connection."""

    def __init__(self, sid: int, down: socket.socket, up: socket.socket,
                 owned: frozenset[int], duties: frozenset[str]) -> None:
        self.sid = sid
        self.down = _Side(down)
        self.up = _Side(up)
        self.owned = owned
        self.duties = duties
        self.state = OPEN
        self.close_reason = ""
        self.opened = time.monotonic()
        self.ended: float | None = None
        self.role = classify.ROLE_UNKNOWN
        # Counters (written here only).
        self.n_packet_ins = 0           # every packet-in the switch sent us
        self.n_dropped_packet_ins = 0   # ... of an owned opcode
        self.n_dropped_packet_outs = 0  # periodic duty packet-outs
        self.n_stalls = 0               # reads paused by back-pressure
        self.passed: dict[int | None, int] = {}   # opcode -> packet-ins
        self._from_switch = bytearray()     # incomplete message, each way
        self._from_controller = bytearray()
        self._inspect_controller = True
        self._linger_until = 0
        self._drain: _Side | None = None

    # --- run/wait -----------------------------------------------------------
    def run(self, now: int) -> None:
        """Forward what is readable, write what is pending ('now':
        ovs.timeval.msec())."""
        try:
            if self.state == OPEN:
                self._run_open(now)
            if self.state == DRAINING:
                self._run_draining(now)
        except OSError as e:
            self.close(os.strerror(e.errno) if e.errno else str(e))

    def wait(self, poller: ovs.poller.Poller) -> None:
        if self.state == OPEN:
            if len(self.down.tx) < TX_HIGH_WATER:
                poller.fd_wait(self.up.sock, ovs.poller.POLLIN)
            if len(self.up.tx) < TX_HIGH_WATER:
                poller.fd_wait(self.down.sock, ovs.poller.POLLIN)
            for side in (self.down, self.up):
                if side.tx:
                    poller.fd_wait(side.sock, ovs.poller.POLLOUT)
        elif self.state == DRAINING and self._drain is not None:
            poller.fd_wait(self._drain.sock, ovs.poller.POLLOUT)
            poller.timer_wait_until(self._linger_until)

    def close(self, reason: str) -> None:
        if self.state == CLOSED:
            return
        self.state = CLOSED
        self.close_reason = reason
        self.ended = time.monotonic()
        self.down.close()
        self.up.close()
        rl_log(vlog, "info", _rl, f"connection #{self.sid} ({self.role}) "
               f"closed: {reason}")

    # --- internals -------------------------------------------------------
    def _run_open(self, now: int) -> None:
        up_eof = self._pump(self.up, self.down, self._switch_data)
        down_eof = self._pump(self.down, self.up, self._controller_data)
        if self.state != OPEN:
            return
        self.down.flush()
        self.up.flush()
        if up_eof or down_eof:
            # The survivor gets what the closed side sent before closing.
            self.state = DRAINING
            self._drain = self.down if up_eof else self.up
            self.close_reason = ("switch closed the connection" if up_eof
                                 else "ovn-controller closed the connection")
            self._linger_until = now + LINGER_MS

    def _run_draining(self, now: int) -> None:
        assert self._drain is not None
        self._drain.flush()
        if not self._drain.tx or now >= self._linger_until:
            self.close(self.close_reason)

    def _pump(self, src: _Side, dst: _Side, handle: Handler) -> bool:
        """Read 'src' into 'dst''s buffer through 'handle'; True at end of
        stream."""
        for _ in range(MAX_READS_PER_RUN):
            if len(dst.tx) >= TX_HIGH_WATER:
                self.n_stalls += 1
                coverage.inc("ofproxy_backpressure")
                return False
            data = src.recv()
            if data is None:
                return False
            if not data:
                return True
            handle(data, dst.tx)
            if self.state != OPEN:
                return False
        return False

    def _frame(self, rx: bytearray, out: bytearray, drop: Verdict) -> None:
        """Append the complete messages in 'rx' to 'out' except those
        'drop'(buf, ofs, end) is true for; keep an incomplete tail."""
        n, ofs, start = len(rx), 0, 0
        with memoryview(rx) as view:
            while n - ofs >= _OFP_HEADER_LEN:
                length = rx[ofs + 2] << 8 | rx[ofs + 3]
                if length < _OFP_HEADER_LEN:
                    coverage.inc("ofproxy_bad_length")
                    self.close(f"message with bad length {length}")
                    return
                end = ofs + length
                if end > n:
                    break
                if drop(rx, ofs, end):
                    out += view[start:ofs]
                    start = end
                ofs = end
            out += view[start:ofs]
        del rx[:ofs]

    def _switch_data(self, data: bytes, out: bytearray) -> None:
        self._from_switch += data
        self._frame(self._from_switch, out, self._drop_from_switch)

    def _controller_data(self, data: bytes, out: bytearray) -> None:
        if not self._inspect_controller:
            out += data
            return
        rx = self._from_controller
        rx += data
        self._frame(rx, out, self._drop_from_controller)
        if self.role in (classify.ROLE_OFCTRL, classify.ROLE_FEATURES):
            # Nothing of theirs is ever dropped: raw bytes from now on.
            self._inspect_controller = False
            out += rx
            rx.clear()

    def _drop_from_switch(self, buf: bytearray, ofs: int, end: int) -> bool:
        if buf[ofs + 1] not in (classify.OFPT_EXPERIMENTER, _OFPT_PACKET_IN):
            return False
        if not classify.is_packet_in(buf, ofs, end):
            return False
        self.n_packet_ins += 1
        opcode = classify.packet_in_opcode(buf, ofs, end)
        if opcode is not None and opcode in self.owned:
            self.n_dropped_packet_ins += 1
            coverage.inc("ofproxy_drop_owned_packet_in")
            return True
        self.passed[opcode] = self.passed.get(opcode, 0) + 1
        coverage.inc("ofproxy_passed_packet_in")
        return False

    def _drop_from_controller(self, buf: bytearray, ofs: int,
                              end: int) -> bool:
        if self.role == classify.ROLE_UNKNOWN:
            hint = classify.role_hint(buf, ofs, end)
            if hint is not None:
                self.role = hint
        if (self.role != classify.ROLE_PINCTRL
                or buf[ofs + 1] != classify.OFPT_PACKET_OUT):
            return False
        duty = classify.packet_out_duty(buf, ofs, end)
        if duty is None or duty not in self.duties:
            return False
        self.n_dropped_packet_outs += 1
        coverage.inc(f"ofproxy_drop_{duty}_packet_out")
        return True


def connect_upstream(path: str, timeout: float) -> socket.socket:
    """A connected socket to the switch's unix socket 'path'.  A unix
    connect either succeeds or fails at once unless the listen backlog is
    full, so this blocks for at most 'timeout' seconds.  Raises OSError."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.settimeout(timeout)
        sock.connect(path)
    except BaseException:
        sock.close()
        raise
    return sock
