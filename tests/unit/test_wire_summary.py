"""testbed.wire_summary, the demo's one-line frame descriptions, on the
recording's own frames (tests/golden/ovn-23.03)."""

from __future__ import annotations

import pytest

from testbed.golden import exchange_names, load_exchange
from testbed.wire_summary import periodic_kind, summarize


def frame(name: str, step: int = 0, kind: str = "replies",
          i: int = 0) -> bytes:
    return bytes.fromhex(load_exchange(name)["steps"][step][kind][i]["hex"])


@pytest.mark.parametrize("name,kind,want", [
    ("dhcpv4_discover_offer", "inject",
     "DHCPDISCOVER xid=0x11223344 (0.0.0.0 > 255.255.255.255)"),
    ("dhcpv4_request_ack", "replies",
     "DHCPACK xid=0x11223344 yiaddr=10.0.0.11 server-id=10.0.0.1 "
     "mask=255.255.255.0 router=10.0.0.1 lease=3600s "
     "(10.0.0.1 > 10.0.0.11)"),
    ("dns_a_hit", "inject",
     "DNS query id=0x1001 A vm1.ovn.test. (10.0.0.11 > 10.0.0.1)"),
    ("dns_a_hit", "replies",
     "DNS answer id=0x1001 A vm1.ovn.test. -> 10.0.0.11 "
     "(10.0.0.1 > 10.0.0.11)"),
    ("nd_rs_ra_sw0_dhcpv6_stateful", "inject",
     "ICMPv6 RS fe80::5254:ff:fe00:1 > ff02::2"),
    ("nd_rs_ra_sw0_dhcpv6_stateful", "replies",
     "ICMPv6 RA M=1 O=0 mtu 1400 prefix 2001:db8::/64 "
     "fe80::200:ff:fe00:ff01 > fe80::5254:ff:fe00:1"),
    ("arp_resolve_nexthop_put_arp", "replies",
     "ARP who-has 172.16.0.254 tell 172.16.0.1 (00:00:00:00:ff:03)"),
    ("router_tcp_reset_v4", "replies",
     "TCP 10.0.0.254:80 > 10.0.0.11:40000 [R.]"),
    ("router_udp_port_unreachable_v4", "replies",
     "ICMP unreachable (port) 10.0.0.254 > 10.0.0.11"),
])
def test_recorded_frames(name, kind, want):
    assert summarize(frame(name, kind=kind)) == want


def test_periodic_kinds():
    assert periodic_kind(frame("periodic_ra_sw1")) == "periodic RA"
    assert periodic_kind(frame("bind_vport_garp")) == "gARP"
    assert periodic_kind(frame("activation_strategy_rarp", 1)) == "RARP"
    # A solicited RA (unicast) and the router's ARP request are not.
    assert periodic_kind(frame("nd_rs_ra_sw0_dhcpv6_stateful")) is None
    assert periodic_kind(frame("arp_resolve_nexthop_put_arp")) is None
    assert summarize(frame("activation_strategy_rarp", 1)).startswith(
        "RARP request who-is 50:54:00:00:00:06")


def test_every_recorded_frame_and_its_truncations_summarize():
    """Never raises, whatever the frame or how short it is cut."""
    seen = 0
    for name in exchange_names():
        for st in load_exchange(name)["steps"]:
            for rec in st.get("inject", []) + st.get("replies", []):
                f = bytes.fromhex(rec["hex"])
                for n in sorted({0, 13, 14, 20, 34, 42, 54, 60, 100,
                                 len(f) - 1, len(f)}):
                    assert isinstance(summarize(f[:max(n, 0)]), str)
                    periodic_kind(f[:max(n, 0)])
                seen += 1
    assert seen > 200
