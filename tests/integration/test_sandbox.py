"""The sandbox itself, validated without any controller: OVS reproduces the
golden exchanges that OVN answers purely with flows, byte for byte."""

import pytest

from testbed.bfd_peer import forget_bfd_peer
from testbed.golden import golden_flows, golden_groups, load_exchange, replay_exchange
from testbed.ovs_sandbox import PATCH_INT, TUNNEL, VIFS
from testbed.pcap import PcapTail

pytestmark = pytest.mark.integration

FLOWS_ONLY = ["arp_request_vif_flows_only", "arp_request_router_flows_only",
              "icmp_echo_router_flows_only"]


def test_topology_and_flows(sandbox):
    # ofports as in the recording (ofctl-show-br-int.txt)
    show = sandbox.ofctl("show", "br-int")
    for name, (_, ofport) in VIFS.items():
        assert f" {ofport}({name}):" in show
    assert " 7(patch-br-int-to):" in show
    assert " 8(ovn-hv2-0):" in show
    assert sandbox.vsctl("get", "interface", TUNNEL, "type").strip() == "geneve"
    assert sandbox.vsctl("get", "interface", PATCH_INT, "options:peer").strip() \
        == "patch-public-ln-to-br-int"
    assert sandbox.vsctl("get", "bridge", "br-int", "fail_mode").strip() == "secure"
    assert sandbox.vsctl("get", "interface", "gdvif1", "external_ids:iface-id").strip() \
        == "sw0-p1"
    ext = sandbox.vsctl("get", "open", ".", "external_ids")
    assert 'system-id=hv1' in ext and f'ovn-remote="{sandbox.sb_db}"' in ext

    # all 1100 recorded flows and the group, identical after re-dump (the
    # fixture resolved lr0's BFD peer as the recording's later scenarios
    # had: take its two flows and row away first)
    forget_bfd_peer(sandbox)
    flows = sandbox.dump_flows()
    assert len(flows) == 1100
    assert sorted(flows) == sorted(golden_flows())
    assert sandbox.dump_groups() == golden_groups()


def test_southbound_restored(sandbox):
    # UUIDs preserved: flow cookies are the first 32 bits of the SB row
    # (Logical_Flow or Port_Binding) that produced them.
    uuids = set()
    for table in ("logical_flow", "port_binding"):
        uuids |= {u.replace("-", "")[:8] for u in
                  sandbox.sbctl("--bare", "--columns=_uuid", "list", table).split()}
    cookies = {l.split(",")[0].split("=")[1][2:].rjust(8, "0") for l in golden_flows()}
    cookies.discard("00000000")
    assert len(uuids) > 400
    found = cookies & uuids
    assert len(found) / len(cookies) > 0.95, sorted(cookies - uuids)[:20]
    assert "hv1" in sandbox.sbctl("--bare", "--columns=name", "list", "chassis").split()
    assert "sw0-p1" in sandbox.sbctl("--bare", "--columns=logical_port", "list",
                                     "port_binding").split()


@pytest.mark.parametrize("name", FLOWS_ONLY)
def test_flows_only_exchange(sandbox, name):
    res = replay_exchange(sandbox, load_exchange(name))
    assert res.ok
    assert all(not s.ignored for s in res.steps)
    assert sum(len(s.got) for s in res.steps) == sum(len(s.expected) for s in res.steps) > 0


def test_dhcp_not_answered_without_controller(sandbox):
    """put_dhcp_opts pauses to the controller: with none connected, no OFFER."""
    ex = load_exchange("dhcpv4_discover_offer")
    res = replay_exchange(sandbox, ex, check=False, timeout=0.5)
    assert not res.ok and res.steps[0].missing and not res.steps[0].got


def test_mark_and_incremental_pcap(sandbox):
    ex = load_exchange("arp_request_vif_flows_only")
    inj, reply = ex["steps"][0]["inject"][0], ex["steps"][0]["replies"][0]
    m1 = sandbox.mark()
    sandbox.inject(inj["port"], inj["hex"])
    first = sandbox.new_packets("gdvif1", m1, timeout=2)
    assert [p.hex for p in first] == [reply["hex"]]
    m2 = sandbox.mark()
    assert sandbox.new_packets("gdvif1", m2, timeout=0.2) == []
    sandbox.inject(inj["port"], inj["hex"])
    sandbox.inject(inj["port"], inj["hex"])
    assert len(sandbox.new_packets("gdvif1", m2, timeout=2, count=2)) == 2
    assert len(sandbox.new_packets("gdvif1", m1, timeout=0)) == 3
    # tail reader sees the same
    t = PcapTail(sandbox.pcap_path("gdvif1"))
    assert [r.data.hex() for r in t.read_new()] == [reply["hex"]] * 3
    assert t.read_new() == []


def test_vswitchd_kill_restart(sandbox):
    sandbox.kill_vswitchd()
    assert sandbox.packets_since() == []
    took = sandbox.restart_vswitchd()
    assert len(sandbox.dump_flows()) == 1100
    assert took < 10
    res = replay_exchange(sandbox, load_exchange("arp_request_vif_flows_only"))
    assert res.ok


def test_netdev_sandbox_veth(netdev_sandbox):
    """sw0-p1 is a veth in a netns; the flows answer a real ARP request."""
    sb = netdev_sandbox
    assert sb.vsctl("get", "bridge", "br-int", "datapath_type").strip() == "netdev"
    assert f" 1({sb.host_veth[:15]})" in sb.ofctl("show", "br-int")
    link = sb.netns_exec("ip", "link", "show", sb.ns_ifname).stdout
    assert "50:54:00:00:00:01" in link
    sb.netns_exec("ip", "addr", "add", "10.0.0.11/24", "dev", sb.ns_ifname)
    cp = sb.netns_exec("busybox", "arping", "-I", sb.ns_ifname, "-c", "1", "-w", "3",
                       "10.0.0.12", check=False, timeout=10)
    assert cp.returncode == 0, cp.stdout + cp.stderr
    assert "50:54:00:00:00:02" in cp.stdout
