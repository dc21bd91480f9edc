"""metrics.py: the HOST:PORT parser and the Prometheus exposition of the
custom collector (fed the handler's histogram of the golden DHCP
packet-in, through the MetricsSource)."""

import pytest
from prometheus_client import CollectorRegistry, generate_latest

from pinctrl.daemon import metrics
from pinctrl.daemon.keepalive import ThreadHealth
from pinctrl.handler.latency import DispatchLatency
from pinctrl.support import coverage
from tests.unit.test_latency import golden_dhcp_packet_in, with_opcode


@pytest.mark.parametrize("text, want", [
    ("127.0.0.1:9476", ("127.0.0.1", 9476)),
    ("[::1]:9476", ("::1", 9476)),
    (":9476", ("127.0.0.1", 9476)),      # loopback unless told
    ("0.0.0.0:9476", ("0.0.0.0", 9476)),
    ("localhost:0", ("localhost", 0)),
])
def test_parse_address(text, want):
    assert metrics.parse_address(text) == want


@pytest.mark.parametrize("text", ["9476", "host:", "host:x", "h:70000"])
def test_parse_address_rejects(text):
    with pytest.raises(ValueError):
        metrics.parse_address(text)


class FakeSource:
    def __init__(self, latency):
        self.latency = latency

    def dispatch_latency(self):
        return self.latency.snapshot()

    def thread_health(self):
        return [ThreadHealth("main", "alive", 0.1),
                ThreadHealth("ovn_pinctrl", "STUCK", 9.0)]

    def metrics_gauges(self):
        return {"ready": 1.0, "openflow_connected": 0.0}

    def queue_depths(self):
        return {"put_mac_bindings": 3}


def test_collector_exposition():
    lat = DispatchLatency()
    lat.observe(golden_dhcp_packet_in(), 4e-5)
    lat.observe(with_opcode(golden_dhcp_packet_in(), 4242), 2.0)
    coverage.inc("metrics_unit_test_counter", 2)
    reg = CollectorRegistry(auto_describe=False)
    reg.register(metrics.Collector(FakeSource(lat)))
    text = generate_latest(reg).decode()
    assert ('pinctrl_coverage_total{counter="metrics_unit_test_counter"} '
            f'{float(coverage.get("metrics_unit_test_counter"))}') in text
    assert ('pinctrl_dispatch_latency_seconds_bucket'
            '{le="5e-05",opcode="put_dhcp_opts"} 1.0') in text
    assert ('pinctrl_dispatch_latency_seconds_count'
            '{opcode="put_dhcp_opts"} 1.0') in text
    assert ('pinctrl_dispatch_latency_seconds_bucket'
            '{le="+Inf",opcode="unknown"} 1.0') in text
    assert 'opcode="4242"' not in text
    assert 'pinctrl_thread_alive{thread="ovn_pinctrl"} 0.0' in text
    assert 'pinctrl_thread_alive{thread="main"} 1.0' in text
    assert "pinctrl_ready 1.0" in text
    assert "pinctrl_openflow_connected 0.0" in text
    assert 'pinctrl_queue_depth{queue="put_mac_bindings"} 3.0' in text
