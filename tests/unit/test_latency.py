"""handler/latency.py: the handler-side dispatch latency histogram, fed the
golden DHCP packet-in; series bounded to the registered opcodes plus one
"unknown"."""

import pytest

from pinctrl.handler import latency
from pinctrl.handler.latency import UNKNOWN, DispatchLatency
from pinctrl.openflow.packet_in import PacketIn
from testbed.golden import iter_of_messages, load_exchange, packet_in_from_hex

OPCODE_PUT_DHCP_OPTS = 2


def golden_dhcp_packet_in() -> PacketIn:
    ex = load_exchange("dhcpv4_discover_offer")
    rec = next(iter_of_messages(ex, "NXT_PACKET_IN2"))
    return packet_in_from_hex(rec["hex"])


def with_opcode(pin: PacketIn, opcode: int) -> PacketIn:
    pin.userdata = opcode.to_bytes(4, "big") + pin.userdata[4:]
    return pin


def test_buckets_are_cumulative_and_keyed_by_action_name():
    lat = DispatchLatency()
    pin = golden_dhcp_packet_in()
    assert pin.opcode == OPCODE_PUT_DHCP_OPTS
    for secs in (5e-6, 1e-5, 3e-5, 2.0):
        lat.observe(pin, secs)
    snap = lat.snapshot()
    assert list(snap) == ["put_dhcp_opts"]
    h = snap["put_dhcp_opts"]
    bounds = [b for b, _ in h.buckets]
    assert bounds == [*latency.LATENCY_BUCKETS, float("inf")]
    cum = [n for _, n in h.buckets]
    # le=1e-5 holds 5 µs and exactly 10 µs; le=5e-5 adds 30 µs; 2 s only +Inf.
    assert cum[0] == 2 and cum[2] == 3 and cum[-2] == 3 and cum[-1] == 4
    assert h.total == pytest.approx(2.000045)


def test_no_action_header_is_unknown():
    lat = DispatchLatency()
    pin = golden_dhcp_packet_in()
    pin.userdata = b"\x00"
    lat.observe(pin, 1e-3)
    assert list(lat.snapshot()) == [UNKNOWN]


def test_unregistered_opcodes_share_one_series():
    """A flood of made-up opcodes cannot grow the histogram."""
    lat = DispatchLatency()
    for opcode in range(1000, 3000):
        lat.observe(with_opcode(golden_dhcp_packet_in(), opcode), 1e-4)
    lat.observe(golden_dhcp_packet_in(), 1e-4)
    snap = lat.snapshot()
    assert sorted(snap) == ["put_dhcp_opts", UNKNOWN]
    assert snap[UNKNOWN].buckets[-1] == (float("inf"), 2000)


def test_empty_histogram_has_no_series():
    assert DispatchLatency().snapshot() == {}
