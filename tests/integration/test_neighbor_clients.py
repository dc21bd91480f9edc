"""Real clients for issue 4: a host pings an address behind the logical
router that no logical port claims; the router's arp / nd_ns punts the echo
request, the daemon solicits the neighbour and buffers the packet, the
neighbour's answer is learnt (put_arp / put_nd -> SB MAC_Binding) and the
buffered echo request is delivered: the very first echo is answered.

Topology (the recorded SB and flows, netdev datapath):

    netns on sw1-p4 (gdvif4)                 netns on sw0-p3 (gdvif3, addresses=unknown)
    50:54:00:00:00:04                        50:54:00:00:00:33
    10.0.1.11/24 via 10.0.1.1                10.0.0.50/24 via 10.0.0.1
    2001:db8:1::5254:ff:fe00:4/64            2001:db8::50/64 via 2001:db8::1
      via 2001:db8:1::1
            sw1 -- lr0 (lr0-sw1 10.0.1.1, lr0-sw0 10.0.0.1) -- sw0

10.0.0.50 / 2001:db8::50 are the recording's "host behind sw0-p3"
(arp_resolve_sw0_unknown_host): lr0 has no MAC for them until it learns one.
The IPv6 case also needs the daemon's nd_na_router: the switch answers
both hosts' solicitations for their gateway through pinctrl.

After the first echo the stand-in for ovn-controller
(test_neighbor_golden.OvnControllerStandIn) installs the flows for the new
MAC_Binding row, as ovn-controller would, and later echoes go through
flows alone: the row the daemon wrote is usable as written.
"""

from __future__ import annotations

import re
import shutil
import time

import pytest

from testbed.netns import eui64_lla
from testbed.ovs_sandbox import NETNS_MACS, SW0_P1_LLA, SW0_P1_MAC
from tests.helpers import unavailable
from tests.integration.test_neighbor_golden import OvnControllerStandIn, sb_rows

pytestmark = pytest.mark.integration

CLIENT, HOST = "gdvif4", "gdvif3"
NETNS_PORTS = (CLIENT, HOST)          # read by conftest's shared_netdev_sandbox
HOST_MAC = NETNS_MACS[HOST]          # the recording's host behind sw0-p3


@pytest.fixture(scope="module")
def hosts(request):
    """The module's sandbox (conftest's shared_netdev_*) with both
    namespaces addressed and routed; its daemon; the ovn-controller
    stand-in."""
    if shutil.which("busybox") is None:
        unavailable("missing binary: busybox (ping, ping6)")
    sb = request.getfixturevalue("shared_netdev_sandbox")
    for ns, v4, gw4, v6, gw6 in (
            (CLIENT, "10.0.1.11/24", "10.0.1.1", "2001:db8:1::5254:ff:fe00:4/64",
             "2001:db8:1::1"),
            (HOST, "10.0.0.50/24", "10.0.0.1", "2001:db8::50/64", "2001:db8::1")):
        sb.netns_exec("ip", "addr", "add", v4, "dev", sb.ns_ifname, ns=ns)
        sb.netns_exec("ip", "route", "add", "default", "via", gw4, ns=ns)
        sb.netns_enable_ipv6(v6, ns=ns)
        sb.netns_exec("ip", "-6", "route", "add", "default", "via", gw6, ns=ns)
    return sb, request.getfixturevalue("shared_netdev_daemon"), OvnControllerStandIn(sb)


def ping(sb, dst: str, count: int, ipv6: bool = False):
    """busybox ping from the client netns; (rc, output, {seq: rtt ms})."""
    cmd = ["busybox", "ping6" if ipv6 else "ping", "-c", str(count), "-W", "5"]
    if count > 1:
        cmd += ["-i", "0.2"]
    cp = sb.netns_exec(*cmd, dst, ns=CLIENT, check=False, timeout=30)
    out = cp.stdout + cp.stderr
    replies = {int(m.group(1)): float(m.group(2))
               for m in re.finditer(r"seq=(\d+) ttl=\d+ time=([\d.]+) ms", out)}
    return cp.returncode, out, replies


def wait_mac_binding(sb, port: str, ip: str, timeout: float = 3.0) -> list[dict]:
    deadline = time.monotonic() + timeout
    while True:
        rows = [r for r in sb_rows(sb, "MAC_Binding")
                if (r["logical_port"], r["ip"]) == (port, ip)]
        if rows or time.monotonic() > deadline:
            return rows
        time.sleep(0.05)


COUNTERS = ("pinctrl_pin_arp", "pinctrl_pin_put_arp", "pinctrl_pin_nd_ns",
            "pinctrl_pin_put_nd", "pinctrl_pin_nd_na_router",
            "pinctrl_buffered_packets_released")


def counters(daemon) -> dict[str, int]:
    cov = daemon.coverage()
    return {n: cov.get(n, 0) for n in COUNTERS}


@pytest.mark.parametrize("ipv6", [False, True], ids=["ipv4", "ipv6"])
def test_first_echo_is_the_buffered_packet(hosts, ipv6):
    sb, daemon, stand_in = hosts
    dst = "2001:db8::50" if ipv6 else "10.0.0.50"
    before = counters(daemon)
    # Take-over mode: nobody turns the binding into a flow, so every echo
    # is punted and buffered again; the binding that already exists must
    # release echoes 2 and 3 too (OVN run_buffered_binding), not only the
    # first, whose binding was new.
    rc, out, replies = ping(sb, dst, 3, ipv6)
    after = counters(daemon)
    delta = {k: after[k] - before[k] for k in COUNTERS}
    diag = f"{out}\ncounters {delta}\n{daemon.log_tail(20)}"
    # seq 0 is busybox's first echo: it was buffered, not dropped.
    assert rc == 0 and sorted(replies) == [0, 1, 2], diag
    rows = wait_mac_binding(sb, "lr0-sw0", dst)
    assert [r["mac"] for r in rows] == [HOST_MAC], (rows, diag)
    if ipv6:
        # NS for the next hop (nd_ns, once per echo), the host's NA learnt
        # (put_nd); the switch answered the client's and the host's NS for
        # their gateway.
        assert delta["pinctrl_pin_nd_ns"] == 3, diag
        assert delta["pinctrl_pin_put_nd"] >= 1, diag
        assert delta["pinctrl_pin_nd_na_router"] >= 2, diag
    else:
        assert delta["pinctrl_pin_arp"] == 3, diag
        assert delta["pinctrl_pin_put_arp"] >= 1, diag
    assert delta["pinctrl_buffered_packets_released"] == 3, diag
    print(f"\nfirst {'ping6' if ipv6 else 'ping'} to {dst} answered in {replies[0]:.1f} ms "
          "(neighbour solicitation, answer, SB MAC_Binding write and read back, "
          "buffered echo released, echo reply)")

    # ovn-controller's part: flows for the row; then no controller at all.
    stand_in.sync()
    before = counters(daemon)
    rc, out, replies = ping(sb, dst, 3, ipv6)
    after = counters(daemon)
    assert rc == 0 and sorted(replies) == [0, 1, 2], out
    assert after["pinctrl_pin_arp"] == before["pinctrl_pin_arp"], out
    assert after["pinctrl_pin_nd_ns"] == before["pinctrl_pin_nd_ns"], out


def test_netns_link_local_addresses():
    """The addresses netns_enable_ipv6 waits for (kernel EUI-64)."""
    assert eui64_lla(SW0_P1_MAC) == SW0_P1_LLA
    assert eui64_lla(NETNS_MACS[HOST]) == "fe80::5254:ff:fe00:33"
    assert eui64_lla("00:00:00:00:ff:01") == "fe80::200:ff:fe00:ff01"
