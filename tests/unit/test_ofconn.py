"""openflow/conn.py (OfConn) against a fake ovs.stream: HELLO
negotiation, message framing, the transmit queue, reconnect with
ovs.reconnect's backoff (1 s doubling to 8 s) and the inactivity probe.
Time is the 'now' (msec) passed to run(); nothing waits on a clock.
"""

from __future__ import annotations

import errno
import struct

import ovs.stream
import pytest

from pinctrl.openflow import conn as m
from pinctrl.openflow import messages as ofmsg
from tests.helpers import counter_delta

OFPT_HELLO, OFPT_ECHO_REQUEST = 0, 2


def msg(msg_type: int, body: bytes = b"", xid: int = 0,
        version: int = ofmsg.OFP15_VERSION) -> bytes:
    return struct.pack("!BBHI", version, msg_type, 8 + len(body), xid) + body


SWITCH_HELLO = ofmsg.hello(1)
ECHO_A = msg(OFPT_ECHO_REQUEST, b"aaaa", xid=10)
ECHO_B = msg(OFPT_ECHO_REQUEST, b"bb", xid=11)


class FakeStream:
    """What OfConn uses of an ovs.stream.Stream.  The test plays the
    switch: 'chunks' are what each recv() returns in turn (then EAGAIN,
    or end of file once 'eof'), 'sent' what each send() accepted."""

    def __init__(self, connect_result: int = 0) -> None:
        self.connect_result = connect_result
        self.chunks: list[bytes] = []
        self.eof = False
        self.sent: list[bytes] = []
        self.send_limit: int | None = None      # bytes accepted per send()
        self.blocked = False                    # send() says EAGAIN
        self.recv_calls = 0
        self.closed = False

    def connect(self) -> int:
        return self.connect_result

    def recv(self, n: int) -> tuple[int, bytes]:
        self.recv_calls += 1
        if self.chunks:
            return 0, self.chunks.pop(0)
        return (0, b"") if self.eof else (errno.EAGAIN, b"")

    def send(self, buf) -> int:
        if self.blocked:
            return -errno.EAGAIN
        n = len(buf) if self.send_limit is None else min(len(buf),
                                                         self.send_limit)
        self.sent.append(bytes(buf[:n]))
        return n

    def close(self) -> None:
        self.closed = True

    def connect_wait(self, poller) -> None:
        poller.calls.append("connect_wait")

    def recv_wait(self, poller) -> None:
        poller.calls.append("recv_wait")

    def send_wait(self, poller) -> None:
        poller.calls.append("send_wait")

    def received(self) -> bytes:
        return b"".join(self.sent)


class FakePoller:
    def __init__(self) -> None:
        self.calls: list[str] = []

    def immediate_wake(self) -> None:
        self.calls.append("immediate_wake")

    def timer_wait(self, msec) -> None:
        self.calls.append("timer_wait")

    def timer_wait_until(self, msec) -> None:
        self.calls.append("timer_wait")


class Switch:
    """Stands in for ovs.stream.Stream.open: each open() is recorded with
    its time and hands out the next stream (refused ones fail connect())."""

    def __init__(self) -> None:
        self.streams: list[FakeStream] = []
        self.refuse = False

    def open(self, target: str):
        s = FakeStream(errno.ECONNREFUSED if self.refuse else 0)
        self.streams.append(s)
        return 0, s

    @property
    def stream(self) -> FakeStream:
        return self.streams[-1]


@pytest.fixture
def switch(monkeypatch):
    sw = Switch()
    monkeypatch.setattr(ovs.stream.Stream, "open", staticmethod(sw.open))
    return sw


def connect(switch: Switch, now: int = 0, **kw) -> m.OfConn:
    """An OfConn negotiated with 'switch' at time 'now'."""
    c = m.OfConn(now, **kw)
    c.set_target("unix:/fake/br-int.mgmt", now)
    c.run(now)                  # CONNECT: stream opened
    c.run(now)                  # connected: our HELLO sent
    switch.stream.chunks.append(SWITCH_HELLO)
    c.run(now)                  # their HELLO read
    assert c.is_connected()
    return c


def loop(c: m.OfConn, now: int) -> list[bytes]:
    """One pinctrl_handler iteration at 'now': run, read everything, flush
    (the second run() is the loop's next wake-up at once, e.g. after
    connect_wait).  Returns what was received."""
    c.run(now)
    c.run(now)
    got = []
    while (x := c.recv(now)) is not None:
        got.append(x)
    c.flush(now)
    return got


def attempt_times(switch: Switch, c: m.OfConn, until: int,
                  step: int = 100) -> list[int]:
    """Loop every 'step' ms up to 'until'; the times at which the
    connection opened a stream."""
    times, n = [], len(switch.streams)
    for now in range(0, until + 1, step):
        loop(c, now)
        if len(switch.streams) != n:
            n = len(switch.streams)
            times.append(now)
    return times


# --- negotiation ----------------------------------------------------------------

def test_negotiates_openflow_15(switch):
    c = m.OfConn(0)
    assert c.state == "idle"
    c.set_target("unix:/fake/br-int.mgmt", 0)
    c.run(0)
    assert c.state == "connecting" and not c.is_connected()
    c.run(0)
    (hello,) = switch.stream.sent
    assert hello[1] == OFPT_HELLO
    assert ofmsg.hello_versions(hello) == {ofmsg.OFP15_VERSION}
    switch.stream.chunks.append(SWITCH_HELLO)
    c.run(0)
    assert (c.state, c.seqno, c.n_connects, c.last_error) == (
        "connected", 1, 1, "")


def test_switch_without_openflow_15_is_refused(switch):
    c = m.OfConn(0)
    c.set_target("unix:/fake/br-int.mgmt", 0)
    c.run(0)
    c.run(0)
    switch.stream.chunks.append(msg(OFPT_HELLO, version=4))  # 1.0..1.3 only
    c.run(0)
    assert not c.is_connected() and switch.stream.closed
    assert c.last_error == "Protocol not supported"
    assert c.seqno == 0


def test_first_message_other_than_hello_drops_the_connection(switch):
    c = m.OfConn(0)
    c.set_target("unix:/fake/br-int.mgmt", 0)
    c.run(0)
    c.run(0)
    switch.stream.chunks.append(ECHO_A)
    c.run(0)
    assert not c.is_connected() and switch.stream.closed


def test_nothing_is_received_before_negotiation(switch):
    c = m.OfConn(0)
    c.set_target("unix:/fake/br-int.mgmt", 0)
    assert c.recv(0) is None


# --- framing ----------------------------------------------------------------------

def test_message_split_across_reads(switch):
    c = connect(switch)
    data = ECHO_A + ECHO_B
    switch.stream.chunks += [data[i:i + 3] for i in range(0, len(data), 3)]
    got = [c.recv(0) for _ in range(len(data))]
    assert [g for g in got if g is not None] == [ECHO_A, ECHO_B]


def test_reads_the_socket_only_when_no_message_is_buffered(switch):
    """Back-pressure stays in the kernel: two messages in one read are
    handed out one per recv() without reading again, and wait() then asks
    for an immediate wake-up instead of blocking on the socket."""
    c = connect(switch)
    s = switch.stream
    s.chunks.append(ECHO_A + ECHO_B)
    before = s.recv_calls
    assert c.recv(0) == ECHO_A
    poller = FakePoller()
    c.wait(poller, 0)
    assert "immediate_wake" in poller.calls
    assert c.recv(0) == ECHO_B
    assert s.recv_calls == before + 1
    poller = FakePoller()
    c.wait(poller, 0)
    assert "immediate_wake" not in poller.calls and "recv_wait" in poller.calls


def test_bad_length_is_counted_and_drops_the_connection(switch):
    c = connect(switch)
    switch.stream.chunks.append(msg(OFPT_ECHO_REQUEST)[:2] + b"\x00\x04"
                                + bytes(4))
    out, n = counter_delta("ofconn_rx_bad_length", lambda: c.recv(0))
    assert (out, n) == (None, 1)
    assert not c.is_connected() and switch.stream.closed


def test_peer_close_drops_the_connection(switch):
    c = connect(switch)
    switch.stream.eof = True
    assert c.recv(0) is None
    assert c.state == "disconnected"
    assert c.last_error == "connection closed by peer"


# --- transmit -----------------------------------------------------------------------

def test_send_before_connected_is_dropped_and_counted(switch):
    c = m.OfConn(0)
    ok, n = counter_delta("ofconn_drop_tx_not_connected",
                          lambda: c.send(ECHO_A))
    assert (ok, n) == (False, 1)


def test_a_batch_is_written_in_one_send(switch):
    c = connect(switch)
    s = switch.stream
    s.sent.clear()
    for x in (ECHO_A, ECHO_B, ECHO_A):
        assert c.send(x)
    assert s.sent == []                 # queued until flushed
    c.flush(0)
    assert s.sent == [ECHO_A + ECHO_B + ECHO_A]


def test_partial_sends_keep_order(switch):
    c = connect(switch)
    s = switch.stream
    s.sent.clear()
    s.send_limit = 5
    c.send(ECHO_A)
    c.send(ECHO_B)
    c.flush(0)
    assert s.received() == ECHO_A + ECHO_B
    assert all(len(x) <= 5 for x in s.sent)


def test_backlog_is_capped(switch, monkeypatch):
    monkeypatch.setattr(m, "MAX_TX_BYTES", 3 * len(ECHO_A))
    c = connect(switch)
    s = switch.stream
    s.blocked = True
    assert all(c.send(ECHO_A) for _ in range(3))
    ok, n = counter_delta("ofconn_drop_tx_backlog", lambda: c.send(ECHO_A))
    assert (ok, n) == (False, 1)
    poller = FakePoller()
    c.wait(poller, 0)
    assert "send_wait" in poller.calls
    s.blocked = False
    s.sent.clear()
    c.flush(0)
    assert s.received() == ECHO_A * 3
    assert c.send(ECHO_A)               # room again


def test_xids_increase_and_wrap(switch):
    c = m.OfConn(0)
    c._xid = 0xFFFFFFFE
    assert [c.next_xid() for _ in range(3)] == [0xFFFFFFFF, 0, 1]


# --- reconnect and backoff -------------------------------------------------------------

def test_refused_connections_back_off_1_2_4_8_8_seconds(switch):
    switch.refuse = True
    c = m.OfConn(0)
    c.set_target("unix:/fake/br-int.mgmt", 0)
    assert attempt_times(switch, c, 24000) == [0, 1000, 3000, 7000, 15000,
                                               23000]       # 1 2 4 8 8 s
    assert c.last_error == "Connection refused"
    assert not c.is_connected()


def test_reconnects_after_a_drop_and_bumps_seqno(switch):
    c = connect(switch)
    first = switch.stream
    first.eof = True
    loop(c, 0)
    assert first.closed and c.seqno == 1 and len(switch.streams) == 1
    times = attempt_times(switch, c, 10000)
    assert times == [m.MIN_BACKOFF_MS]
    switch.stream.chunks.append(SWITCH_HELLO)
    loop(c, times[0])
    assert c.is_connected() and (c.seqno, c.n_connects) == (2, 2)


def test_new_target_reconnects_within_the_minimum_backoff(switch):
    c = connect(switch)
    old = switch.stream
    c.set_target("unix:/fake/other.mgmt", 0)
    assert old.closed and not c.is_connected()
    c.set_target("unix:/fake/other.mgmt", 0)        # unchanged: no-op
    assert attempt_times(switch, c, 5000) == [m.MIN_BACKOFF_MS]
    c.set_target(None, 6000)
    assert switch.stream.closed and c.state == "idle"
    assert attempt_times(switch, c, 20000) == []


# --- inactivity probe ----------------------------------------------------------------------

def test_idle_connection_is_probed_then_dropped(switch):
    """An echo request once the connection has been silent for the probe
    interval; the connection dropped after another silent interval."""
    c = connect(switch, probe_interval_ms=5000)
    s = switch.stream
    s.sent.clear()
    probe_at = drop_at = None
    for now in range(0, 20001, 100):
        loop(c, now)
        if probe_at is None and s.sent:
            (probe,) = s.sent
            assert probe[1] == OFPT_ECHO_REQUEST
            probe_at = now
        if not c.is_connected():
            drop_at = now
            break
    assert probe_at is not None and 5000 <= probe_at <= 5100
    assert drop_at is not None and 10000 <= drop_at - probe_at + 5000 <= 10200
    assert s.closed


def test_traffic_keeps_the_connection_alive(switch):
    c = connect(switch, probe_interval_ms=5000)
    s = switch.stream
    s.sent.clear()
    for now in range(100, 30001, 100):
        if now % 1000 == 0:
            s.chunks.append(ECHO_A)
        loop(c, now)
    assert c.is_connected()
    assert s.sent == []                 # never needed a probe
