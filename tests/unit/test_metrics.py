"""metrics.py: the handler-side latency accumulator (fed the golden DHCP
packet-in), the HOST:PORT parser, and the Prometheus exposition of the
custom collector."""

import pytest
from prometheus_client import CollectorRegistry, generate_latest

from pinctrl.daemon import metrics
from pinctrl.daemon.keepalive import ThreadHealth
from pinctrl.openflow.packet_in import PacketIn
from pinctrl.support import coverage
from tests.goldens import iter_of_messages, load_exchange, packet_in_from_hex

OPCODE_PUT_DHCP_OPTS = 2


def golden_dhcp_packet_in() -> PacketIn:
    ex = load_exchange("dhcpv4_discover_offer")
    rec = next(iter_of_messages(ex, "NXT_PACKET_IN2"))
    return packet_in_from_hex(rec["hex"])


def test_latency_buckets_are_cumulative_per_opcode():
    lat = metrics.DispatchLatency()
    pin = golden_dhcp_packet_in()
    assert pin.opcode == OPCODE_PUT_DHCP_OPTS
    for secs in (5e-6, 1e-5, 3e-5, 2.0):
        lat.observe(pin, secs)
    cum, total = lat.snapshot()[OPCODE_PUT_DHCP_OPTS]
    assert len(cum) == len(metrics.LATENCY_BUCKETS) + 1
    # le=1e-5 holds 5 µs and exactly 10 µs; le=5e-5 adds 30 µs; 2 s only +Inf.
    assert cum[0] == 2 and cum[2] == 3 and cum[-2] == 3 and cum[-1] == 4
    assert total == pytest.approx(2.000045)


def test_latency_without_action_header_is_filed_under_no_opcode():
    lat = metrics.DispatchLatency()
    pin = golden_dhcp_packet_in()
    pin.userdata = b"\x00"
    lat.observe(pin, 1e-3)
    assert list(lat.snapshot()) == [metrics.NO_OPCODE]


@pytest.mark.parametrize("text, want", [
    ("127.0.0.1:9476", ("127.0.0.1", 9476)),
    ("[::1]:9476", ("::1", 9476)),
    (":9476", ("0.0.0.0", 9476)),
    ("localhost:0", ("localhost", 0)),
])
def test_parse_address(text, want):
    assert metrics.parse_address(text) == want


@pytest.mark.parametrize("text", ["9476", "host:", "host:x", "h:70000"])
def test_parse_address_rejects(text):
    with pytest.raises(ValueError):
        metrics.parse_address(text)


class FakeSource:
    def thread_health(self):
        return [ThreadHealth("main", "alive", 0.1),
                ThreadHealth("ovn_pinctrl", "STUCK", 9.0)]

    def metrics_gauges(self):
        return {"ready": 1.0, "openflow_connected": 0.0}

    def queue_depths(self):
        return {"put_mac_bindings": 3}


def test_collector_exposition():
    lat = metrics.DispatchLatency()
    lat.observe(golden_dhcp_packet_in(), 4e-5)
    coverage.inc("metrics_unit_test_counter", 2)
    reg = CollectorRegistry(auto_describe=False)
    reg.register(metrics.Collector(FakeSource(), lat))
    text = generate_latest(reg).decode()
    assert ('pinctrl_coverage_total{counter="metrics_unit_test_counter"} '
            f'{float(coverage.get("metrics_unit_test_counter"))}') in text
    assert ('pinctrl_dispatch_latency_seconds_bucket'
            '{le="5e-05",opcode="put_dhcp_opts"} 1.0') in text
    assert ('pinctrl_dispatch_latency_seconds_count'
            '{opcode="put_dhcp_opts"} 1.0') in text
    assert 'pinctrl_thread_alive{thread="ovn_pinctrl"} 0.0' in text
    assert 'pinctrl_thread_alive{thread="main"} 1.0' in text
    assert "pinctrl_ready 1.0" in text
    assert "pinctrl_openflow_connected 0.0" in text
    assert 'pinctrl_queue_depth{queue="put_mac_bindings"} 3.0' in text
