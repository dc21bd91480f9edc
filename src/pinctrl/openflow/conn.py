"""An OpenFlow 1.5 client connection with reconnect and backoff.

The pinctrl_handler thread's equivalent of OVS's rconn: ovs.stream opens
the socket and completes the connection, ovs.reconnect is the state
machine (backoff 1 s doubling to 8 s, inactivity probe), then the hot path
talks to the socket itself:

* receive: recv_into() a buffer allocated once, up to RX_BUFFER bytes per
  call, and frame with offsets into it (receive() hands the handler every
  complete message of a wake-up as memoryviews, no copy);
* transmit: send() queues, flush() writes everything queued in one
  send() system call (ovs-vswitchd then reads the batch in one go too).

Everything here is called by the pinctrl_handler thread only; other
threads may read the status properties for display (single attribute
reads).
"""

from __future__ import annotations

import errno
import os
import select
import socket
from typing import Protocol

import ovs.reconnect
import ovs.stream
import ovs.timeval
import ovs.vlog

from pinctrl.openflow import messages as ofmsg
from pinctrl.support import coverage

vlog = ovs.vlog.Vlog("ofconn")

MIN_BACKOFF_MS = 1000
MAX_BACKOFF_MS = 8000
MAX_TX_BYTES = 8 << 20       # beyond this we drop (and count) new messages
# Receive buffer: a few hundred packet-ins per wake-up, and always room
# for one whole message (64 KiB) after a partial one.
RX_BUFFER = 512 << 10
_OFP_HEADER_LEN = 8
_MAX_MSG_LEN = 0xFFFF


class Poller(Protocol):
    """What wait() calls (ovs.poller.Poller or handler.poll_loop)."""

    def fd_wait(self, fd: int, events: int) -> None: ...

    def immediate_wake(self) -> None: ...

    def timer_wait(self, msec: float) -> None: ...

    def timer_wait_until(self, msec: float) -> None: ...


class _SocketIO:
    """Data transfer on a connected plain (unix or tcp) stream's socket."""

    __slots__ = ("recv_into", "send", "fd")

    def __init__(self, sock: socket.socket) -> None:
        self.recv_into = sock.recv_into
        self.send = sock.send
        self.fd = sock.fileno()

    def wait(self, poller: Poller, events: int) -> None:
        poller.fd_wait(self.fd, events)


class _StreamIO:
    """The same calls through ovs.stream's recv()/send(), for the streams
    whose socket is not a plain one (ssl:)."""

    __slots__ = ("stream",)

    def __init__(self, stream: ovs.stream.Stream) -> None:
        self.stream = stream

    def recv_into(self, view: memoryview) -> int:
        err, data = self.stream.recv(len(view))
        if err == errno.EAGAIN:
            raise BlockingIOError(err, os.strerror(err))
        if err:
            raise OSError(err, os.strerror(err))
        view[:len(data)] = data
        return len(data)

    def send(self, buf: memoryview | bytes) -> int:
        n: int = self.stream.send(buf)
        if n == -errno.EAGAIN:
            raise BlockingIOError(errno.EAGAIN, os.strerror(errno.EAGAIN))
        if n < 0:
            raise OSError(-n, os.strerror(-n))
        return n

    def wait(self, poller: Poller, events: int) -> None:
        if events & select.POLLIN:
            self.stream.recv_wait(poller)
        if events & select.POLLOUT:
            self.stream.send_wait(poller)


def _io_for(stream: ovs.stream.Stream) -> _SocketIO | _StreamIO:
    if type(stream) in (ovs.stream.UnixStream, ovs.stream.TCPStream):
        return _SocketIO(stream.socket)
    return _StreamIO(stream)


class OfConn:
    """One OpenFlow connection to 'target' (e.g. unix:/run/ovs/br-int.mgmt).

    'seqno' increases each time a connection completes version negotiation,
    so the user can notice reconnections and redo its set-up (pinctrl_setup).
    """

    def __init__(self, now: float, probe_interval_ms: int = 0) -> None:
        self.target: str | None = None
        self.fsm = ovs.reconnect.Reconnect(now)
        self.fsm.set_backoff(MIN_BACKOFF_MS, MAX_BACKOFF_MS)
        self.fsm.set_probe_interval(probe_interval_ms)
        self.stream: ovs.stream.Stream | None = None
        self._io: _SocketIO | _StreamIO | None = None
        self.connecting = False
        self.negotiated = False
        self.seqno = 0
        self.n_connects = 0
        self.last_error = ""
        # Received bytes are rx[_rx_start:_rx_end]; rx_view is handed out.
        self._rx = bytearray(RX_BUFFER)
        self.rx_view = memoryview(self._rx)
        self._rx_start = 0
        self._rx_end = 0
        self._tx: list[bytes | memoryview] = []
        self._tx_bytes = 0
        self._xid = 0

    # --- control --------------------------------------------------------
    def set_target(self, target: str | None, now: float) -> None:
        """Connect to 'target' (None: disconnect).  No-op if unchanged."""
        if target == self.target:
            return
        self._close()
        self.target = target
        if target is None:
            self.fsm.disable(now)
            return
        vlog.info(f"{target}: connecting to switch")
        self.fsm.set_name(target)
        self.fsm.enable(now)
        self.fsm.force_reconnect(now)

    def next_xid(self) -> int:
        self._xid = (self._xid + 1) & 0xFFFFFFFF
        return self._xid

    def is_connected(self) -> bool:
        return self.negotiated

    @property
    def state(self) -> str:
        if self.negotiated:
            return "connected"
        if self.stream is not None:
            return "connecting"
        return "disconnected" if self.target else "idle"

    @property
    def tx_bytes(self) -> int:
        """Bytes queued, not yet written (any thread: one int read)."""
        return self._tx_bytes

    # --- run/wait ---------------------------------------------------------
    def run(self, now: float) -> None:
        if self.stream is not None and self.connecting:
            err = self.stream.connect()
            if err == 0:
                self.connecting = False
                self._io = _io_for(self.stream)
                self.fsm.connected(now)
                self._queue(ofmsg.hello(self.next_xid()))
            elif err != errno.EAGAIN:
                self._fail(now, err, connect=True)
        if self._io is not None:
            if self._tx:
                self._flush(now)
            if not self.negotiated and self._io is not None:
                msg = self._next_msg(now)
                if msg is not None:
                    self._negotiate(msg, now)

        action = self.fsm.run(now)
        if action == ovs.reconnect.CONNECT:
            self._start_connect(now)
        elif action == ovs.reconnect.DISCONNECT:
            self.fsm.disconnected(now, 0)
            self._close()
        elif action == ovs.reconnect.PROBE and self.negotiated:
            self.send(ofmsg.echo_request(self.next_xid()))

    def wait(self, poller: Poller, now: float) -> None:
        if self.stream is not None:
            if self.connecting:
                self.stream.connect_wait(poller)
            elif self._io is not None:
                if self._has_complete_msg():
                    poller.immediate_wake()
                self._io.wait(poller, (select.POLLIN | select.POLLOUT)
                              if self._tx else select.POLLIN)
        self.fsm.wait(poller, now)

    # --- I/O ----------------------------------------------------------------
    def send(self, msg: bytes) -> bool:
        """Queue 'msg'; flush() (or the next run()) writes the queue.
        False (and a counted drop) if not connected or the transmit backlog
        is over its cap."""
        if not self.negotiated:
            coverage.inc("ofconn_drop_tx_not_connected")
            return False
        if self._tx_bytes + len(msg) > MAX_TX_BYTES:
            coverage.inc("ofconn_drop_tx_backlog")
            return False
        self._tx.append(msg)
        self._tx_bytes += len(msg)
        coverage.inc("ofconn_tx_msgs")
        return True

    def send_batch(self, msgs: list[bytes]) -> int:
        """Queue 'msgs' (the replies of a batch of packet-ins) like send(),
        counting once; returns how many were queued."""
        if not msgs:
            return 0
        if not self.negotiated:
            coverage.inc("ofconn_drop_tx_not_connected", len(msgs))
            return 0
        size = sum(map(len, msgs))
        if self._tx_bytes + size > MAX_TX_BYTES:
            n = 0
            for m in msgs:
                n += self.send(m)
            return n
        self._tx += msgs
        self._tx_bytes += size
        coverage.inc("ofconn_tx_msgs", len(msgs))
        return len(msgs)

    def flush(self, now: float) -> None:
        """Write what is queued: the replies of a whole batch of
        packet-ins go out in one system call (cheaper for us and for
        ovs-vswitchd, which then reads them in one go)."""
        if self._tx and self._io is not None:
            self._flush(now)

    def receive(self, now: float) -> list[int]:
        """Read what the socket holds (until it has no more or the buffer
        is full) and frame it.  Returns the offsets of the complete
        messages in 'rx_view', [s0, s1, ..., sn]: message i is
        rx_view[s(i):s(i+1)].  The views are valid until the next
        receive() or recv(); nothing complete: [].  The socket, not this
        process, holds what does not fit."""
        if not self.negotiated:
            return []
        if not self._has_complete_msg():
            self._fill(now)
            if not self.negotiated:
                return []
        rx, end = self._rx, self._rx_end
        ofs = self._rx_start
        out = [ofs]
        while end - ofs >= _OFP_HEADER_LEN:
            length = (rx[ofs + 2] << 8) | rx[ofs + 3]
            if length < _OFP_HEADER_LEN:
                self._bad_length(now, length)
                return []
            if end - ofs < length:
                break
            ofs += length
            out.append(ofs)
        self._rx_start = ofs
        if len(out) == 1:
            return []
        self.fsm.activity(now)
        return out

    def recv(self, now: float) -> bytes | None:
        """Next complete OpenFlow message received after negotiation, or
        None (a copy; the handler's loop uses receive()).  Reads from the
        socket only when no complete message is buffered."""
        if not self.negotiated:
            return None
        msg = self._next_msg(now)
        if msg is not None:
            self.fsm.activity(now)
        return msg

    # --- internals ----------------------------------------------------------
    def _fill(self, now: float) -> None:
        """Read into the buffer until the socket is drained (a short read
        says so: no extra system call to hear EAGAIN) or the buffer full.
        Moves an incomplete message to the front first."""
        start, end = self._rx_start, self._rx_end
        if start == end:
            start = end = 0
        elif start:
            self._rx[:end - start] = bytes(self.rx_view[start:end])
            end -= start
            start = 0
        self._rx_start = start
        io, view, size = self._io, self.rx_view, len(self._rx)
        # ovs.reconnect lets an expired probe interval fire only after
        # a receive attempt (jsonrpc.Session.recv() reports it too).
        self.fsm.receive_attempted(now)
        while io is not None and end < size:
            room = size - end
            try:
                n = io.recv_into(view[end:])
            except BlockingIOError:
                break
            except InterruptedError:
                continue
            except OSError as e:
                self._rx_end = end
                self._fail(now, e.errno or errno.EIO)
                return
            if not n:
                self._rx_end = end
                self._fail(now, 0)
                return
            end += n
            if n < room:
                break
        self._rx_end = end

    def _next_msg(self, now: float) -> bytes | None:
        """One complete message, copied out of the buffer (negotiation and
        recv()), reading the socket only if none is buffered."""
        if not self._has_complete_msg():
            self._fill(now)
            if self._io is None:
                return None
        rx, ofs = self._rx, self._rx_start
        if self._rx_end - ofs < _OFP_HEADER_LEN:
            return None
        length = (rx[ofs + 2] << 8) | rx[ofs + 3]
        if length < _OFP_HEADER_LEN:
            self._bad_length(now, length)
            return None
        if self._rx_end - ofs < length:
            return None
        self._rx_start = ofs + length
        return bytes(self.rx_view[ofs:ofs + length])

    def _bad_length(self, now: float, length: int) -> None:
        vlog.warn(f"{self.target}: received message with bad length {length}")
        coverage.inc("ofconn_rx_bad_length")
        self._fail(now, errno.EPROTO)

    def _start_connect(self, now: float) -> None:
        self._close()
        err, stream = ovs.stream.Stream.open(self.target)
        if err:
            self._fail(now, err, connect=True)
            return
        self.stream = stream
        self.connecting = True
        self.fsm.connecting(now)

    def _negotiate(self, msg: bytes, now: float) -> None:
        version, msg_type, _, _ = ofmsg.header(msg)
        if msg_type != 0:                       # OFPT_HELLO
            vlog.warn(f"{self.target}: expected HELLO, got type {msg_type}")
            self._fail(now, errno.EPROTO)
            return
        if ofmsg.OFP15_VERSION not in ofmsg.hello_versions(msg):
            vlog.warn(f"{self.target}: switch does not support OpenFlow 1.5")
            self._fail(now, errno.EPROTONOSUPPORT)
            return
        self.negotiated = True
        self.seqno += 1
        self.n_connects += 1
        self.last_error = ""
        vlog.info(f"{self.target}: connected")

    def _has_complete_msg(self) -> bool:
        ofs = self._rx_start
        avail = self._rx_end - ofs
        if avail < _OFP_HEADER_LEN:
            return False
        rx = self._rx
        return avail >= ((rx[ofs + 2] << 8) | rx[ofs + 3])

    def _queue(self, msg: bytes) -> None:
        self._tx.append(msg)
        self._tx_bytes += len(msg)

    def _flush(self, now: float) -> None:
        tx = self._tx
        buf = memoryview(tx[0] if len(tx) == 1 else b"".join(tx))
        tx.clear()
        while self._io is not None:
            try:
                n = self._io.send(buf)
            except BlockingIOError:
                # The socket is full: keep the rest, wait for POLLOUT.
                tx.append(buf)
                return
            except InterruptedError:
                continue
            except OSError as e:
                self._fail(now, e.errno or errno.EIO)
                return
            self._tx_bytes -= n
            if n == len(buf):
                return
            buf = buf[n:]

    def _fail(self, now: float, err: int, connect: bool = False) -> None:
        what = os.strerror(err) if err else "connection closed by peer"
        self.last_error = what
        if connect:
            vlog.dbg(f"{self.target}: connection attempt failed ({what})")
            self.fsm.connect_failed(now, err)
        else:
            vlog.warn(f"{self.target}: connection dropped ({what})")
            self.fsm.disconnected(now, err)
        self._close()

    def _close(self) -> None:
        if self.stream is not None:
            self.stream.close()
        self.stream = None
        self._io = None
        self.connecting = False
        self.negotiated = False
        self._rx_start = self._rx_end = 0
        self._tx.clear()
        self._tx_bytes = 0
