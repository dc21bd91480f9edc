"""The opt-in Prometheus endpoint, scraped with urllib while the daemon
answers a recorded DHCP exchange; a port that cannot be bound is a clean
start-up error."""

import re
import socket
import subprocess
import urllib.request

import pytest

from testbed.golden import load_exchange, replay_exchange

pytestmark = pytest.mark.integration


def scrape(url: str) -> dict[str, float]:
    """Exposition text → {'name{labels}': value} (comments dropped)."""
    with urllib.request.urlopen(url, timeout=5) as r:
        assert r.status == 200
        assert r.headers["Content-Type"].startswith("text/plain")
        text = r.read().decode()
    out = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            key, value = line.rsplit(" ", 1)
            out[key] = float(value)
    return out


def test_scrape(sandbox):
    d = sandbox.daemon(extra_args=["--metrics-address", "127.0.0.1:0"])
    d.start(timeout=15)
    m = re.search(r"^Metrics: (http://127\.0\.0\.1:\d+/metrics)$", d.show(),
                  re.M)
    assert m, d.show()
    url = m.group(1)

    before = scrape(url)
    replay_exchange(sandbox, load_exchange("dhcpv4_discover_offer"))
    after = scrape(url)

    pin = 'pinctrl_coverage_total{counter="pinctrl_pin_put_dhcp_opts"}'
    assert after[pin] == before.get(pin, 0) + 1
    count = 'pinctrl_dispatch_latency_seconds_count{opcode="put_dhcp_opts"}'
    assert after[count] == before.get(count, 0) + 1
    inf = ('pinctrl_dispatch_latency_seconds_bucket'
           '{le="+Inf",opcode="put_dhcp_opts"}')
    assert after[inf] == after[count]
    total = 'pinctrl_dispatch_latency_seconds_sum{opcode="put_dhcp_opts"}'
    assert 0 < after[total] < 0.5
    assert after['pinctrl_thread_alive{thread="ovn_pinctrl"}'] == 1
    assert after['pinctrl_thread_alive{thread="main"}'] == 1
    assert after['pinctrl_thread_last_loop_age_seconds{thread="ovn_pinctrl"}'] < 5
    assert after["pinctrl_ready"] == 1
    assert after["pinctrl_openflow_connected"] == 1
    assert after["pinctrl_southbound_connected"] == 1
    assert after['pinctrl_queue_depth{queue="dns_cache"}'] == 1
    assert after['pinctrl_queue_depth{queue="openflow_tx_bytes"}'] == 0


def test_port_in_use_is_a_startup_error(sandbox):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        d = sandbox.daemon(extra_args=["--metrics-address",
                                       f"127.0.0.1:{port}"])
        d.start(wait=False)
        try:
            rc = d.popen.wait(timeout=20)
        except subprocess.TimeoutExpired:
            pytest.fail("daemon kept running without its metrics port")
    assert rc == 1
    with open(f"{sandbox.dir}/pinctrl-daemon.stderr") as f:
        err = f.read()
    assert f"cannot serve metrics on 127.0.0.1:{port}" in err, err
    assert "Traceback" not in err
