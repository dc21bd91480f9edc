"""proxy/session.py over socketpairs: what passes untouched, what is
dropped, back-pressure and the end of a connection.  No OVS: the test
plays ovn-controller on one end ('ctl') and the switch on the other
('sw'), and drives Session.run() itself."""

from __future__ import annotations

import socket
import struct

import pytest

from pinctrl.proxy import classify
from pinctrl.proxy.session import (CLOSED, DRAINING, LINGER_MS, OPEN,
                                   RECV_CHUNK, TX_HIGH_WATER, Session)
from testbed.golden import iter_of_messages, load_exchange
from tests.helpers import counter_delta

OWNED = frozenset({2, 6})                   # put_dhcp_opts, dns_lookup
DUTIES = frozenset({classify.DUTY_GARP, classify.DUTY_RA})
HELLO_C = bytes.fromhex("06000010000000040001000800000040")
HELLO_S = bytes.fromhex("060000080000000a")
SET_PIN_FORMAT = bytes.fromhex("0604001400000007000023200000001000000002")
SET_CONFIG = bytes.fromhex("0609000c000000080000ffff")
TLV_REQUEST = struct.pack("!BBHIII", 6, 4, 16, 9, classify.NX_VENDOR_ID,
                          classify.NXT_TLV_TABLE_REQUEST)
ECHO = bytes.fromhex("0602000800000077")


def _recorded(exchange: str, msg: str, opcode: int | None = None) -> bytes:
    for rec in iter_of_messages(load_exchange(exchange), msg):
        if opcode is None or rec.get("userdata_hex", "")[:8] == \
                f"{opcode:08x}":
            return bytes.fromhex(rec["hex"])
    raise AssertionError(f"{exchange}: no {msg}")


PIN_DHCP = _recorded("dhcpv4_discover_offer", "NXT_PACKET_IN2", 2)
PIN_IGMP = _recorded("igmp_join_sw1", "NXT_PACKET_IN2", 16)
PIN_BFD = _recorded("bfd_session_up", "NXT_PACKET_IN2", 23)
GARP_OUT = _recorded("garp_after_controller_restart", "OFPT_PACKET_OUT")
RA_OUT = _recorded("periodic_ra_sw1", "OFPT_PACKET_OUT")
ARP_OUT = next(bytes.fromhex(r["hex"]) for r in iter_of_messages(
    load_exchange("arp_resolve_nexthop_put_arp"), "OFPT_PACKET_OUT")
    if r["packet_hex"][24:28] == "0806")


class Pair:
    """A Session between two socketpairs; ctl/sw are the test's ends."""

    def __init__(self, owned=OWNED, duties=DUTIES) -> None:
        self.ctl, down = socket.socketpair()
        up, self.sw = socket.socketpair()
        for s in (self.ctl, self.sw):
            s.settimeout(2.0)
        self.s = Session(1, down, up, owned, duties)
        self.now = 0

    def run(self, n: int = 3) -> None:
        for _ in range(n):
            self.now += 1
            self.s.run(self.now)

    def read(self, sock: socket.socket, n: int) -> bytes:
        out = b""
        while len(out) < n:
            self.run(1)
            chunk = sock.recv(n - len(out))
            assert chunk, f"EOF after {len(out)} of {n} bytes"
            out += chunk
        return out

    def nothing_waiting(self, sock: socket.socket) -> bool:
        self.run()
        sock.setblocking(False)
        try:
            return sock.recv(1) == b""
        except BlockingIOError:
            return True
        finally:
            sock.settimeout(2.0)

    def close(self) -> None:
        self.s.close("test over")
        self.ctl.close()
        self.sw.close()


@pytest.fixture
def pair():
    p = Pair()
    yield p
    p.close()


def _pinctrl(p: Pair) -> None:
    """ovn-controller's pinctrl_setup() through the proxy."""
    p.ctl.sendall(HELLO_C + SET_PIN_FORMAT + SET_CONFIG)
    want = HELLO_C + SET_PIN_FORMAT + SET_CONFIG
    assert p.read(p.sw, len(want)) == want
    assert p.s.role == "pinctrl"


def test_bytes_pass_untouched_both_ways_in_any_chunking(pair):
    """xids and bytes as sent, a message split over many writes, several
    messages in one write."""
    stream = HELLO_C + SET_PIN_FORMAT + ECHO + ARP_OUT
    for i in range(0, len(stream), 5):
        pair.ctl.sendall(stream[i:i + 5])
        pair.run(1)
    assert pair.read(pair.sw, len(stream)) == stream
    back = HELLO_S + ECHO + PIN_IGMP
    pair.sw.sendall(back[:3])
    pair.run()
    pair.sw.sendall(back[3:])
    assert pair.read(pair.ctl, len(back)) == back


def test_owned_packet_ins_are_dropped_others_pass(pair):
    _pinctrl(pair)
    pair.sw.sendall(PIN_DHCP + PIN_IGMP + PIN_DHCP + PIN_BFD)
    out, dropped = counter_delta(
        "ofproxy_drop_owned_packet_in",
        lambda: pair.read(pair.ctl, len(PIN_IGMP + PIN_BFD)))
    assert out == PIN_IGMP + PIN_BFD and dropped == 2
    assert pair.nothing_waiting(pair.ctl)
    s = pair.s
    assert (s.n_packet_ins, s.n_dropped_packet_ins) == (4, 2)
    assert s.passed == {16: 1, 23: 1}


def test_pinctrl_periodic_packet_outs_are_dropped(pair):
    _pinctrl(pair)
    (out, n) = counter_delta("ofproxy_drop_garp_packet_out", lambda: (
        pair.ctl.sendall(GARP_OUT + ARP_OUT + RA_OUT + ECHO),
        pair.read(pair.sw, len(ARP_OUT + ECHO)))[1])
    assert out == ARP_OUT + ECHO        # the arp action's request passes
    assert n == 1
    assert pair.s.n_dropped_packet_outs == 2
    assert pair.nothing_waiting(pair.sw)


def test_ofctrl_packet_outs_pass_and_it_is_then_pumped_raw(pair):
    """A gARP injected through ofctrl (ovn-appctl inject-pkt) is not a
    duty; once the role is known the proxy stops framing that direction
    (even a bad length goes through: OVS will judge it)."""
    pair.ctl.sendall(HELLO_C + TLV_REQUEST)
    assert pair.read(pair.sw, len(HELLO_C + TLV_REQUEST)) == \
        HELLO_C + TLV_REQUEST
    assert pair.s.role == "ofctrl"
    junk = b"\x06\x0e\x00\x02"
    pair.ctl.sendall(GARP_OUT + junk)
    assert pair.read(pair.sw, len(GARP_OUT) + 4) == GARP_OUT + junk
    assert pair.s.state == OPEN and pair.s.n_dropped_packet_outs == 0


def test_nothing_is_dropped_without_ownership():
    p = Pair(owned=frozenset(), duties=frozenset())
    try:
        _pinctrl(p)
        p.sw.sendall(PIN_DHCP)
        p.ctl.sendall(GARP_OUT)
        assert p.read(p.ctl, len(PIN_DHCP)) == PIN_DHCP
        assert p.read(p.sw, len(GARP_OUT)) == GARP_OUT
    finally:
        p.close()


def test_bad_length_from_the_switch_closes(pair):
    _, n = counter_delta("ofproxy_bad_length", lambda: (
        pair.sw.sendall(b"\x06\x02\x00\x04\x00\x00\x00\x00"), pair.run()))
    assert n == 1
    assert pair.s.state == CLOSED
    assert pair.ctl.recv(10) == b""


def test_switch_going_away_closes_ovn_controllers_connection(pair):
    """What the switch sent before closing still reaches ovn-controller,
    then its connection ends: it resyncs as it would with OVS."""
    _pinctrl(pair)
    pair.sw.sendall(ECHO + PIN_IGMP)
    pair.sw.close()
    assert pair.read(pair.ctl, len(ECHO + PIN_IGMP)) == ECHO + PIN_IGMP
    pair.run()
    assert pair.s.state == CLOSED
    assert pair.s.close_reason == "switch closed the connection"
    assert pair.ctl.recv(10) == b""


def test_ovn_controller_going_away_closes_ours(pair):
    pair.ctl.sendall(HELLO_C)
    pair.ctl.close()
    assert pair.read(pair.sw, len(HELLO_C)) == HELLO_C
    pair.run()
    assert pair.s.state == CLOSED
    assert pair.s.close_reason == "ovn-controller closed the connection"
    assert pair.sw.recv(10) == b""


def test_drain_gives_up_after_the_linger_time(pair):
    """ovn-controller not reading: once the switch is gone the proxy
    holds the session for LINGER_MS at most."""
    pair.s.down.sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
    pair.s.down.tx += b"x" * (TX_HIGH_WATER // 2)   # never read
    pair.sw.close()
    pair.s.run(0)
    assert pair.s.state == DRAINING
    pair.s.run(LINGER_MS - 1)
    assert pair.s.state == DRAINING
    pair.s.run(LINGER_MS)
    assert pair.s.state == CLOSED


def test_back_pressure_bounds_memory_and_loses_nothing(pair):
    """ovn-controller does not read: the proxy stops reading the switch
    once TX_HIGH_WATER bytes wait, and everything arrives in order once
    it reads again."""
    _pinctrl(pair)
    pair.ctl.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    msg = PIN_IGMP
    total = (3 * TX_HIGH_WATER) // len(msg) + 1
    sent = 0
    pair.sw.setblocking(False)
    while sent < total:
        try:
            pair.sw.send(msg)
            sent += 1
        except BlockingIOError:
            pair.run(1)
            assert len(pair.s.down.tx) < TX_HIGH_WATER + RECV_CHUNK
            if pair.s.n_stalls:
                break
    assert pair.s.n_stalls > 0
    pair.sw.settimeout(2.0)
    rest = total - sent
    got = bytearray()
    want = len(msg) * total
    while len(got) < want:
        if rest:
            try:
                pair.sw.setblocking(False)
                pair.sw.send(msg)
                rest -= 1
            except BlockingIOError:
                pass
        pair.run(1)
        pair.ctl.setblocking(False)
        try:
            got += pair.ctl.recv(1 << 16)
        except BlockingIOError:
            pass
        assert len(pair.s.down.tx) < TX_HIGH_WATER + RECV_CHUNK
    assert bytes(got) == msg * total
