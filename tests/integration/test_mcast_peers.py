"""IGMP/MLD snooping with a real host (issue 20): sw1-p4 (gdvif4) is a
network namespace on the netdev sandbox whose kernel joins groups
(`ip addr add GROUP dev eth0 autojoin`), answers the daemon's queries and
leaves; the SB IGMP_Group rows appear, stay while the host answers the
queries, and go when it leaves.

Not here: a multicast sender reaching the joined receiver and not the
others.  The group's flows come from ovn-controller after the IGMP_Group
change; in take-over mode nobody installs them, and in split mode igmp
stays with ovn-controller (daemon/split_mode.py PASSED_BY_DEFAULT: its
main thread deletes the IGMP_Group rows its own snooping table lacks, so
the daemon cannot snoop for it).
"""

from __future__ import annotations

import time

import pytest

from tests.integration.test_mcast import (
    igmp_groups,
    set_ip_multicast,
    wait_until,
)
from tests.integration.test_neighbor_golden import sb_rows

pytestmark = pytest.mark.integration

NETNS_PORTS = ("gdvif4",)       # read by conftest's shared_netdev_sandbox
QUERY_INTERVAL = 1
IDLE = 15                       # mcast_idle_timeout's minimum


@pytest.fixture(scope="module")
def host(shared_netdev_sandbox, shared_netdev_daemon):
    """sw1-p4's namespace with its addresses, and the daemon querying
    every second with groups aging after 15 s."""
    sb, daemon = shared_netdev_sandbox, shared_netdev_daemon
    sb.netns_exec("ip", "addr", "add", "10.0.1.11/24", "dev", sb.ns_ifname)
    sb.netns_enable_ipv6("2001:db8:1::5254:ff:fe00:4/64")
    set_ip_multicast(sb, query_interval=QUERY_INTERVAL, idle_timeout=IDLE)
    wait_until("the querier running", lambda: daemon.coverage().get(
        "pinctrl_mcast_query_sent", 0) >= 4, timeout=10)
    p4 = next(r["_uuid"] for r in sb_rows(sb, "Port_Binding",
                                          "_uuid,logical_port")
              if r["logical_port"] == "sw1-p4")
    return sb, daemon, p4


def members(sb, address: str) -> frozenset[str] | None:
    """The ports of the IGMP_Group row of 'address', None without one."""
    return next((g[3] for g in igmp_groups(sb) if g[0] == address), None)


def test_kernel_joins_answers_queries_and_leaves(host):
    sb, daemon, p4 = host
    sb.netns_exec("ip", "addr", "add", "239.1.1.1/32", "dev", sb.ns_ifname,
                  "autojoin")
    wait_until("the join", lambda: members(sb, "239.1.1.1") == {p4})
    # The host answers every query with a report: the group outlives its
    # idle time only thanks to those answers.
    pins = daemon.coverage().get("pinctrl_pin_igmp", 0)
    time.sleep(IDLE + 2)
    assert members(sb, "239.1.1.1") == {p4}
    assert daemon.coverage().get("pinctrl_pin_igmp", 0) - pins >= IDLE // 2
    sb.netns_exec("ip", "addr", "del", "239.1.1.1/32", "dev", sb.ns_ifname)
    took = wait_until("the leave", lambda: members(sb, "239.1.1.1") is None)
    assert took < 2


def test_kernel_mld_join_and_done(host):
    sb, _, p4 = host
    sb.netns_exec("ip", "-6", "addr", "add", "ff0e::1234/128", "dev",
                  sb.ns_ifname, "autojoin")
    wait_until("the MLD join", lambda: members(sb, "ff0e::1234") == {p4})
    # The kernel reports its solicited-node groups too.
    assert members(sb, "ff02::1:ff00:4") == {p4}
    sb.netns_exec("ip", "-6", "addr", "del", "ff0e::1234/128", "dev",
                  sb.ns_ifname)
    wait_until("the MLD done", lambda: members(sb, "ff0e::1234") is None)
