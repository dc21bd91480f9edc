"""Golden DHCPv4 exchanges replayed against the daemon, byte for byte.

One sandbox + daemon per module: OVN's DHCPv4 handling is stateless (every
reply depends only on the request and the DHCP_Options in the flows), so the
exchanges do not influence each other; this keeps the suite fast."""

import time

import pytest

from testbed.golden import GOLDEN, load_exchange, replay_exchange

pytestmark = pytest.mark.integration

DHCPV4 = sorted(p.stem for p in (GOLDEN / "exchanges").glob("dhcpv4_*.json"))


def golden_packet_ins(exchange: dict) -> int:
    return sum(1 for s in exchange["steps"] for m in s["openflow_pinctrl"]
               if m["dir"] == "s2c" and m["msg"] == "NXT_PACKET_IN2")


def wait_counter(daemon, name: str, at_least: int, timeout: float = 2.0) -> int:
    deadline = time.monotonic() + timeout
    while True:
        v = daemon.coverage().get(name, 0)
        if v >= at_least or time.monotonic() > deadline:
            return v
        time.sleep(0.05)


def test_dhcpv4_golden_set_is_complete():
    assert len(DHCPV4) == 12, DHCPV4


@pytest.mark.parametrize("name", DHCPV4)
def test_dhcpv4_golden(shared_sandbox, shared_daemon, name):
    ex = load_exchange(name)
    before = shared_daemon.coverage().get("pinctrl_total_pin_pkts", 0)
    res = replay_exchange(shared_sandbox, ex)          # raises with a hex diff on mismatch
    assert res.ok
    # nothing unexplained went out, and every expected reply was seen
    for step, gstep in zip(res.steps, ex["steps"]):
        assert sorted((p, h) for p, h in step.expected) == \
            sorted((r["port"], r["hex"]) for r in gstep["replies"])
    want = before + golden_packet_ins(ex)
    got = wait_counter(shared_daemon, "pinctrl_total_pin_pkts", want)
    assert got == want, f"pinctrl_total_pin_pkts {before} -> {got}, golden has " \
                        f"{golden_packet_ins(ex)} packet-in(s)"
    assert shared_daemon.alive()


def test_dhcpv4_offer_then_ack_fresh_daemon(sandbox, daemon):
    """The basic DORA pair on a fresh sandbox/daemon (no shared state)."""
    for name in ("dhcpv4_discover_offer", "dhcpv4_request_ack"):
        res = replay_exchange(sandbox, name)
        assert [p.port for s in res.steps for p in s.got if p.port == "gdvif1"] == ["gdvif1"]
    cov = daemon.coverage()
    assert cov.get("pinctrl_total_pin_pkts", 0) == 2
