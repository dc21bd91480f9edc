"""A real IPv6 client, rdisc6 (ndisc6), in a network namespace on sw1-p4
through a netdev-datapath br-int: the Router Solicitation is answered by
put_nd_ra_opts (opcode 8) with lr0-sw1's RA, and the daemon's periodic RA
follows a Southbound change of the router port's options."""

from __future__ import annotations

import re
import shutil

import pytest

from tests.helpers import unavailable

pytestmark = pytest.mark.integration

NETNS_PORTS = ("gdvif4",)                      # sw1-p4
ROUTER_LLA = "fe80::200:ff:fe00:ff02"          # lr0-sw1, 00:00:00:00:ff:02


@pytest.fixture(scope="module")
def ns(shared_netdev_sandbox, shared_netdev_daemon):
    if shutil.which("rdisc6") is None:
        unavailable("needs rdisc6 (Debian package ndisc6)")
    sb = shared_netdev_sandbox
    sb.netns_enable_ipv6()
    return sb


def rdisc6(sb, *args: str, timeout: float = 15.0) -> str:
    r = sb.netns_exec("rdisc6", *args, sb._ns(None).ifname, check=False,
                      timeout=timeout)
    return r.stdout + r.stderr


def field(out: str, name: str) -> list[str]:
    return [m.group(1).strip() for m in
            re.finditer(rf"^\s*{re.escape(name)}\s*:\s*(.*)$", out, re.M)]


def test_router_solicitation_is_answered(ns, shared_netdev_daemon):
    before = shared_netdev_daemon.coverage().get("pinctrl_pin_put_nd_ra_opts", 0)
    out = rdisc6(ns, "-1", "-w", "2000", "-r", "3")
    assert f"from {ROUTER_LLA}" in out, out
    # lr0-sw1: slaac, prefix 2001:db8:1::/64, 23.03's router lifetime.
    assert field(out, "Prefix") == ["2001:db8:1::/64"], out
    assert field(out, "Autonomous address conf.") == ["Yes"], out
    assert field(out, "On-link") == ["Yes"], out
    assert field(out, "Stateful address conf.") == ["No"], out
    assert field(out, "Stateful other conf.") == ["No"], out
    assert field(out, "Router lifetime")[0].startswith("65535"), out
    assert field(out, "Source link-layer address") == ["00:00:00:00:FF:02"], out
    after = shared_netdev_daemon.coverage().get("pinctrl_pin_put_nd_ra_opts", 0)
    assert after > before


def test_periodic_ra_follows_the_southbound(ns):
    """lr0-sw1 sends periodic RAs (send_periodic, every 3-4 s); an MTU
    added in the SB appears in the next one the client receives."""
    ns.sbctl("set", "Port_Binding", "lr0-sw1", "options:ipv6_ra_mtu=1400")
    try:
        # No -1: collect every RA for 6 s (the solicited answer, which the
        # recorded flows build without MTU, and at least one periodic RA).
        out = rdisc6(ns, "-w", "6000", "-r", "1")
        assert "1400" in " ".join(field(out, "MTU")), out
        assert out.count(f"from {ROUTER_LLA}") >= 2, out
    finally:
        ns.sbctl("remove", "Port_Binding", "lr0-sw1", "options",
                 "ipv6_ra_mtu")
