"""An OpenFlow 1.5 client connection with reconnect and backoff.

The pinctrl_handler thread's equivalent of OVS's rconn: ovs.stream for the
socket, ovs.reconnect for the state machine (backoff 1 s doubling to 8 s),
HELLO version negotiation, message framing and a bounded transmit queue.
Everything here is called by the pinctrl_handler thread only; other threads
may read the status properties for display (single attribute reads).
"""

from __future__ import annotations

import collections
import errno
import os

import ovs.poller
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
RECV_CHUNK = 256 << 10
_OFP_HEADER_LEN = 8
_MAX_MSG_LEN = 0xFFFF


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
        self.connecting = False
        self.negotiated = False
        self.seqno = 0
        self.n_connects = 0
        self.last_error = ""
        self._rx = bytearray()
        self._rx_ofs = 0
        self._tx: collections.deque[memoryview] = collections.deque()
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
                self.fsm.connected(now)
                self._queue(ofmsg.hello(self.next_xid()))
            elif err != errno.EAGAIN:
                self._fail(now, err, connect=True)
        if self.stream is not None and not self.connecting:
            self._flush(now)
            if not self.negotiated:
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

    def wait(self, poller: ovs.poller.Poller, now: float) -> None:
        if self.stream is not None:
            if self.connecting:
                self.stream.connect_wait(poller)
            else:
                if self._has_complete_msg():
                    poller.immediate_wake()
                self.stream.recv_wait(poller)
                if self._tx:
                    self.stream.send_wait(poller)
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
        self._queue(msg)
        coverage.inc("ofconn_tx_msgs")
        return True

    def flush(self, now: float) -> None:
        """Write what is queued: the replies of a whole batch of
        packet-ins go out in one system call (cheaper for us and for
        ovs-vswitchd, which then reads them in one go)."""
        if self._tx and self.stream is not None and not self.connecting:
            self._flush(now)

    def recv(self, now: float) -> bytes | None:
        """Next complete OpenFlow message received after negotiation, or
        None.  Reads from the socket only when no complete message is
        buffered, so the socket (not this process) holds any backlog."""
        if not self.negotiated:
            return None
        msg = self._next_msg(now)
        if msg is not None:
            self.fsm.activity(now)
        return msg

    # --- internals ----------------------------------------------------------
    def _next_msg(self, now: float) -> bytes | None:
        while self.stream is not None and not self.connecting:
            msg = self._pop_msg(now)
            if msg is not None or self.stream is None:
                return msg
            # ovs.reconnect lets an expired probe interval fire only after
            # a receive attempt (jsonrpc.Session.recv() reports it too).
            self.fsm.receive_attempted(now)
            err, data = self.stream.recv(RECV_CHUNK)
            if err == errno.EAGAIN:
                return None
            if err or not data:
                self._fail(now, err or 0)
                return None
            self._rx += data
        return None

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
        avail = len(self._rx) - self._rx_ofs
        if avail < _OFP_HEADER_LEN:
            return False
        length = int.from_bytes(self._rx[self._rx_ofs + 2:self._rx_ofs + 4],
                                "big")
        return avail >= length

    def _pop_msg(self, now: float) -> bytes | None:
        rx, ofs = self._rx, self._rx_ofs
        if len(rx) - ofs < _OFP_HEADER_LEN:
            return None
        length = int.from_bytes(rx[ofs + 2:ofs + 4], "big")
        if length < _OFP_HEADER_LEN:
            vlog.warn(f"{self.target}: received message with bad length "
                      f"{length}")
            coverage.inc("ofconn_rx_bad_length")
            self._fail(now, errno.EPROTO)
            return None
        if len(rx) - ofs < length:
            return None
        msg = bytes(rx[ofs:ofs + length])
        ofs += length
        if ofs == len(rx):
            rx.clear()
            ofs = 0
        elif ofs > 65536:
            del rx[:ofs]
            ofs = 0
        self._rx_ofs = ofs
        return msg

    def _queue(self, msg: bytes) -> None:
        self._tx.append(memoryview(msg))
        self._tx_bytes += len(msg)

    def _flush(self, now: float) -> None:
        if len(self._tx) > 1:
            joined = memoryview(b"".join(self._tx))
            self._tx.clear()
            self._tx.append(joined)
        while self._tx and self.stream is not None:
            buf = self._tx[0]
            n = self.stream.send(buf)
            if n == -errno.EAGAIN:
                return
            if n < 0:
                self._fail(now, -n)
                return
            self._tx_bytes -= n
            if n == len(buf):
                self._tx.popleft()
            else:
                self._tx[0] = buf[n:]

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
        self.connecting = False
        self.negotiated = False
        self._rx.clear()
        self._rx_ofs = 0
        self._tx.clear()
        self._tx_bytes = 0
