"""Local datapaths (db/local_datapaths.py), the gARP/RARP announcement
set (db/garp_plan.py) and the address parsers (db/addresses.py) on
hand-made rows: HA rules, bridge mappings, nesting, NAT elements.  The
same computed from the golden Southbound through a real ovsdb-server and
compared with what OVN 23.03 announced on chassis hv1:
tests/integration/test_local_datapaths_sb.py, which shares CHASSIS,
IFACES and NETWORKS (br-int and the bridge mappings of the recording).
"""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from pinctrl.db import addresses, local_datapaths
from pinctrl.db.addresses import (
    extract_addresses_with_port,
    extract_ip_addresses,
    extract_lsp_addresses,
)
from pinctrl.db.garp_plan import Iface, garp_announcements
from pinctrl.db.local_datapaths import (
    PortBindings,
    bridge_mapping_networks,
    compute_local_datapaths,
    ha_chassis_group_is_active,
)
from pinctrl.shared.records import GarpEntry
from tests.helpers import VlogRecorder
from tests.unit.test_garp import ip4

CHASSIS = "hv1"
# br-int as sandbox-start.sh built it (ovs-vsctl-show.txt): gdvif1..6 are
# ofports 1..6 with these iface-ids; the localnet patch port and the
# tunnel to hv2 carry ovn-controller's Port external_ids.
IFACES = [Iface(lsp, i, {}) for i, lsp in enumerate(
    ["sw0-p1", "sw0-p2", "sw0-p3", "sw1-p4", "public-p5", "sw0-p6"], 1)] + [
    Iface(None, 7, {"ovn-localnet-port": "public-ln"}),
    Iface(None, 8, {"ovn-chassis-id": "hv2@127.0.0.2%127.0.0.1"}),
]
NETWORKS = bridge_mapping_networks(
    {"ovn-bridge-mappings": "physnet1:br-phys"}, CHASSIS,
    {"br-int", "br-phys"})


# --- HA rules, mappings, nesting on hand-made rows --------------------------------

def ns(**kw):
    return SimpleNamespace(**kw)


def ch(name):
    return ns(name=name)


def ha_group(*members, ref=()):
    return ns(ha_chassis=[ns(chassis=[ch(n)] if n else [], priority=p)
                          for n, p in members],
              ref_chassis=[ch(r) for r in ref])


@pytest.mark.parametrize("members,tunnels,ref,active", [
    ([("hv1", 10)], set(), (), True),
    ([("hv2", 10)], set(), (), False),
    ([("hv1", 10), (None, 20)], set(), (), True),       # only candidate
    ([("hv1", 10), ("hv2", 20)], set(), (), False),      # cut off
    ([("hv1", 10), ("hv2", 20)], {"hv2"}, (), False),
    ([("hv1", 30), ("hv2", 20)], {"hv2"}, (), True),
    ([("hv1", 10), ("hv2", 20)], {"hv3"}, ("hv3",), True),   # hv2 down
    ([("hv1", 10), ("hv2", 20)], {"hv3"}, (), False),    # no ref reachable
    ([("hv1", 20), ("hv2", 20)], {"hv2"}, (), False),    # tie: name desc
    ([("hv3", 20), ("hv1", 20)], {"hv3"}, (), False),
])
def test_ha_chassis_group_is_active(members, tunnels, ref, active):
    assert ha_chassis_group_is_active(ha_group(*members, ref=ref), tunnels,
                                      "hv1") is active


def test_bridge_mappings():
    ids = {"ovn-bridge-mappings": "a:br1,b:nobr,c:br2,,d:br1",
           "ovn-bridge-mappings-hvX": "z:br1"}
    assert bridge_mapping_networks(ids, "hv1", {"br1", "br2"}) == {"a", "c"}
    assert bridge_mapping_networks(ids, "hvX", {"br1"}) == {"z"}
    assert bridge_mapping_networks({"ovn-bridge-mappings": "bad,a:br1"},
                                   None, {"br1"}) == frozenset()
    assert bridge_mapping_networks({}, None, {"br1"}) == frozenset()


def test_nested_too_deep_is_cut(monkeypatch):
    logs = VlogRecorder()
    monkeypatch.setattr(local_datapaths, "vlog", logs)
    monkeypatch.setattr(local_datapaths, "_rl_warn",
                        local_datapaths.RateLimit(100, 100))
    rows = []
    for i in range(150):            # a chain of 150 datapaths
        dp = ns(tunnel_key=i, external_ids={})
        if i:
            rows.append(ns(logical_port=f"b{i}", type="patch", datapath=dp,
                           tunnel_key=2, options={"peer": f"a{i - 1}"},
                           chassis=[], ha_chassis_group=[]))
        rows.append(ns(logical_port=f"a{i}", type="patch", datapath=dp,
                       tunnel_key=1, options={"peer": f"b{i + 1}"},
                       chassis=[], ha_chassis_group=[]))
    rows.append(ns(logical_port="vif", type="", datapath=rows[0].datapath,
                   tunnel_key=3, options={}, chassis=[ch("hv1")],
                   ha_chassis_group=[], additional_chassis=[]))
    lds = compute_local_datapaths(PortBindings(rows), "hv1", frozenset())
    assert len(lds) == local_datapaths.MAX_DEPTH + 1
    assert ("WARN", "datapaths nested too deep") in logs.lines


# --- address parsing (lib/ovn-util.c with OVS's ovs_scan rules) --------------------

def v4(la):
    return [(".".join(map(str, a)), p) for a, p in la.ipv4]


@pytest.mark.parametrize("text,mac,ips,rest", [
    ("50:54:00:00:00:05 172.16.0.50", "505400000005", [("172.16.0.50", 32)],
     ""),
    ("00:00:00:00:ff:03 172.16.0.1/24 2001:db8:ff::1/64",
     "00000000ff03", [("172.16.0.1", 24)], ""),
    (" 0x0:1:2:3:4:1ff 10.0.0.1", "0001020304ff", [("10.0.0.1", 32)], ""),
    ("00:00:00:00:00:01 10. 0.0.1 junk", "000000000001", [("10.0.0.1", 32)],
     " junk"),
    # An IPv4 with a bad prefix is skipped and the scan goes on as IPv6.
    ("00:00:00:00:00:01 10.0.0.1/33 2001::1", "000000000001", [], ""),
    ("00:00:00:00:00:01 10.0.0.1/255.0.255.0", "000000000001", [],
     " 10.0.0.1/255.0.255.0"),
    # "%hhx" stops at the first non-hex digit: the MAC is 00:..:00:00.
    ("00:00:00:00:00:0g", "000000000000", [], "g"),
])
def test_extract_addresses(text, mac, ips, rest):
    la, ofs = addresses._parse_addresses(text)
    assert la.mac.hex() == mac and v4(la) == ips and text[ofs:] == rest


@pytest.mark.parametrize("text", ["unknown", "router", "dynamic", "",
                                  "00:00:00:00:00", "00:00:00:00:00:",
                                  "g0:00:00:00:00:00"])
def test_not_a_mac(text):
    assert extract_lsp_addresses(text) is None


def test_ip_list_and_bogus_token():
    la = extract_ip_addresses("2001:db8:1::/64 42037:2001:db8:aaaa:1::/64")
    assert [(a.hex(), p) for a, p in la.ipv6] == [
        ("20010db8000100000000000000000000", 64)]
    assert extract_ip_addresses("") is None
    assert extract_ip_addresses("x 2001::1") is None
    la = extract_ip_addresses("2001::1/ffff:ffff::")
    assert la.ipv6[0][1] == 32
    assert extract_ip_addresses("2001::1/ffff:0:ffff::") is None


@pytest.mark.parametrize("text,port,ok", [
    ('00:00:00:00:ff:03 172.16.0.1 is_chassis_resident("cr-lr0-public")',
     "cr-lr0-public", True),
    ('00:00:00:00:ff:03 1.2.3.4 /* c */ is_chassis_resident ( "a\\"b" ) x',
     'a"b', True),
    ("00:00:00:00:ff:03 1.2.3.4 something(else)", None, True),
    ("00:00:00:00:ff:03 1.2.3.4 is_chassis_resident", None, False),
    ("00:00:00:00:ff:03 1.2.3.4 is_chassis_resident(port)", None, False),
    ('00:00:00:00:ff:03 1.2.3.4 is_chassis_resident("p"', None, False),
    ('00:00:00:00:ff:03 1.2.3.4 is_chassis_resident("p', None, False),
    ('00:00:00:00:ff:03 1.2.3.4 is_chassis_resident("\\q")', None, False),
    ("not a mac", None, False),
])
def test_extract_addresses_with_port(text, port, ok, monkeypatch):
    monkeypatch.setattr(addresses, "vlog", VlogRecorder())
    la, lport = extract_addresses_with_port(text)
    assert (la is not None, lport) == (ok, port)


def test_last_nat_element_wins_a_name():
    """23.03 pops a port's elements last-added first: with two elements
    for the same IPv4, the later one's MAC is announced."""
    dp = ns(tunnel_key=3, external_ids={})
    ln = ns(logical_port="ln", type="localnet", datapath=dp, tunnel_key=1,
            options={"network_name": "n"}, chassis=[], mac=[],
            nat_addresses=[], ha_chassis_group=[])
    gw = ns(logical_port="gw", type="l3gateway", datapath=dp, tunnel_key=2,
            options={"l3gateway-chassis": "hv1"}, chassis=[ch("hv1")],
            mac=[], ha_chassis_group=[],
            nat_addresses=["00:00:00:00:00:01 10.0.0.1",
                           "00:00:00:00:00:02 10.0.0.1 10.0.0.2"])
    pbs = PortBindings([ln, gw])
    lds = compute_local_datapaths(pbs, "hv1", {"n"})
    plan = garp_announcements(pbs, [], "hv1", lds)
    assert plan.entries == {
        "gw-10.0.0.1": GarpEntry(bytes.fromhex("000000000002"),
                                 ip4("10.0.0.1"), 3, 2),
        "gw-10.0.0.2": GarpEntry(bytes.fromhex("000000000002"),
                                 ip4("10.0.0.2"), 3, 2)}


def test_virtual_port_claimed_here_is_not_announced():
    """A virtual port bind_vport claimed for this chassis has no br-int
    interface, and 23.03's get_localnet_vifs_l3gwports() takes VIFs only
    from br-int interfaces: it is not announced (the recording
    bind_vport_garp has no packet-out; its replies are the VM's own gARP
    flooded by flows, before the packet-ins).  docs/compat.md, issue 16."""
    dp = ns(tunnel_key=1, external_ids={})
    ln = ns(logical_port="ln", type="localnet", datapath=dp, tunnel_key=1,
            options={"network_name": "n"}, chassis=[], mac=[],
            nat_addresses=[], ha_chassis_group=[])
    parent = ns(logical_port="sw0-p1", type="", datapath=dp, tunnel_key=2,
                options={}, chassis=[ch("hv1")], ha_chassis_group=[],
                mac=["50:54:00:00:00:01 10.0.0.11"], nat_addresses=[])
    vip = ns(logical_port="sw0-vip", type="virtual", datapath=dp,
             tunnel_key=9, chassis=[ch("hv1")], ha_chassis_group=[],
             options={"virtual-ip": "10.0.0.10",
                      "virtual-parents": "sw0-p1"},
             virtual_parent="sw0-p1", mac=[], nat_addresses=[])
    pbs = PortBindings([ln, parent, vip])
    lds = compute_local_datapaths(pbs, "hv1", {"n"})
    plan = garp_announcements(pbs, [Iface("sw0-p1", 1, {})], "hv1", lds)
    assert plan.entries == {
        "sw0-p1": GarpEntry(bytes.fromhex("505400000001"),
                            ip4("10.0.0.11"), 1, 2)}
