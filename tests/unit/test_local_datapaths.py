"""Local datapaths (pinctrl.local_datapaths), the gARP/RARP announcement
set (pinctrl.garp_prepare) and the periodic-RA input (ipv6_ra.prepare_ras)
computed from the golden Southbound DB, read through a python-ovs IDL from
a real ovsdb-server, compared with what OVN 23.03 announced on chassis hv1;
then SB edits made with ovn-sbctl and what they change.  Plus the pure
address parsers and HA rules on hand-made rows.

The server part needs ovsdb-server, ovsdb-tool, ovsdb-client and ovn-sbctl
(helpers.unavailable otherwise); everything started is stopped by pid.
"""

from __future__ import annotations

import json
from types import SimpleNamespace

import pytest

from pinctrl.db import garp_plan as garp_prepare
from pinctrl.db import addresses, idl_util, local_datapaths
from pinctrl.db.addresses import (
    extract_addresses_with_port,
    extract_ip_addresses,
    extract_lsp_addresses,
)
from pinctrl.db.garp_plan import (
    Iface,
    MacBindingWrite,
    garp_announcements,
    local_mac_bindings,
)
from pinctrl.db.local_datapaths import (
    PortBindings,
    bridge_mapping_networks,
    compute_local_datapaths,
    ha_chassis_group_is_active,
)
from pinctrl.db.ra_plan import prepare_ras
from pinctrl.handler.garp_job import GarpJob
from pinctrl.shared.records import GarpEntry
from tests.helpers import VlogRecorder
from tests.sb_server import SCHEMA, sb_server, step_until_change  # noqa: F401
from tests.unit.test_garp import GOLDEN_ENTRIES, Env, Snap, encode, first_round, ip4
from tests.unit.test_ipv6_ra import golden_packet_outs

CHASSIS = "hv1"
SB_TABLES = {
    "Port_Binding": ["logical_port", "type", "tunnel_key", "datapath",
                     "chassis", "additional_chassis", "options", "mac",
                     "nat_addresses", "ha_chassis_group"],
    "Datapath_Binding": ["tunnel_key", "external_ids"],
    "Chassis": ["name", "hostname"],
    "HA_Chassis_Group": ["name", "ha_chassis", "ref_chassis"],
    "HA_Chassis": ["chassis", "priority"],
}
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


@pytest.fixture
def idl(sb_server):  # noqa: F811
    idl = idl_util.make_idl(sb_server.remote, json.loads(SCHEMA.read_text()),
                          SB_TABLES)
    try:
        idl_sync(idl)
        yield idl
    finally:
        idl.close()


class IdlStep:
    """Our IDL in the shape tests.sb_server.step_until_change() drives
    (an SbSync: run(now, chassis), wait(poller, now), .idl)."""

    def __init__(self, idl) -> None:
        self.idl = idl

    def run(self, now, _chassis) -> None:
        self.idl.run()

    def wait(self, poller, now) -> None:
        self.idl.wait(poller)


def idl_sync(idl) -> None:
    """Run the IDL until it has applied a change (the initial contents or
    the last ovn-sbctl edit)."""
    step_until_change(IdlStep(idl))


def compute(idl):
    pbs = PortBindings(idl.tables["Port_Binding"].rows.values())
    lds = compute_local_datapaths(pbs, CHASSIS, NETWORKS)
    plan = garp_announcements(pbs, IFACES, CHASSIS, lds)
    return pbs, lds, plan, prepare_ras(pbs)


def edit(sb_server, idl, *cmd: str) -> None:  # noqa: F811
    sb_server.sbctl(*cmd)
    idl_sync(idl)


def test_golden_local_datapaths(idl):
    _, lds, _, _ = compute(idl)
    # sw0, sw1, public have ports on hv1; lr0 and lr1 through patch ports.
    assert sorted(lds) == [1, 2, 3, 4, 5]
    assert lds[3].localnet_port.logical_port == "public-ln"
    assert all(lds[k].localnet_port is None for k in (1, 2, 4, 5))
    links = {k: sorted((lo.logical_port, re.logical_port)
                       for lo, re in ld.peer_ports) for k, ld in lds.items()}
    assert links[4] == [("lr0-public", "public-lr0"), ("lr0-sw0", "sw0-lr0"),
                        ("lr0-sw1", "sw1-lr0")]
    assert links[3] == [("public-lr0", "lr0-public")]
    assert links[1] == [("sw0-lr0", "lr0-sw0"), ("sw0-lr1", "lr1-sw0")]


def test_golden_announcements_equal_23_03(idl):
    """hv1 announced exactly public-p5 (VIF on the localnet switch) and
    lr0-public's router/NAT addresses through public-lr0: the same entries,
    hence byte-identical packet-outs."""
    _, _, plan, _ = compute(idl)
    assert plan.entries == GOLDEN_ENTRIES
    assert encode(plan.entries) == first_round()
    assert {n: pb.logical_port for n, pb in plan.sources.items()} == {
        "public-p5": "public-p5", "public-lr0-172.16.0.1": "public-lr0",
        "public-lr0-172.16.0.100": "public-lr0",
        "public-lr0-172.16.0.110": "public-lr0"}


def test_golden_ra_input(idl):
    _, _, _, ras = compute(idl)
    assert list(ras) == ["lr0-sw1"]
    ra = ras["lr0-sw1"]
    assert (ra.min_interval, ra.max_interval, ra.dp_key, ra.port_key) == (
        3, 4, 2, 2)
    recorded = golden_packet_outs("periodic_ra_sw1")[0][1]
    assert recorded.endswith(ra.frame)


def test_golden_local_mac_bindings(idl):
    """send_garp_locally: the VIF's address is written for lr0's port on
    public; public-lr0's own link is skipped."""
    _, lds, plan, _ = compute(idl)
    writes = local_mac_bindings(plan, list(plan.entries), lds)
    assert [w._replace(datapath=w.datapath.tunnel_key) for w in writes] == [
        MacBindingWrite("lr0-public", 4, "172.16.0.50", "50:54:00:00:00:05",
                        False)]


def test_sb_edits_change_what_is_announced(idl, sb_server):  # noqa: F811
    snap = Snap(compute(idl)[2].entries)
    job = GarpJob(snap)
    env = Env()
    job.run(env, 0)
    assert len(job.run(env, 1000)) == 4

    # Remove a NAT: only the router address stays on public-lr0.
    edit(sb_server, idl, "set", "Port_Binding", "public-lr0",
         'nat_addresses="00:00:00:00:ff:03 172.16.0.1 '
         'is_chassis_resident(\\"cr-lr0-public\\")"')
    entries = compute(idl)[2].entries
    assert set(entries) == {"public-p5", "public-lr0-172.16.0.1"}
    snap.set(entries)
    assert len(job.run(env, 3000)) == 2         # removed ones not sent

    # Add one (legacy options:nat-addresses, used when the column is
    # empty) and an IPv6-only element: RARP "-noip".
    edit(sb_server, idl, "clear", "Port_Binding", "public-lr0",
         "nat_addresses")
    edit(sb_server, idl, "set", "Port_Binding", "public-lr0",
         'options:nat-addresses="00:00:00:00:ff:07 2001:db8:ff::7 '
         'is_chassis_resident(\\"cr-lr0-public\\")"')
    entries = compute(idl)[2].entries
    assert entries["public-lr0-noip"] == GarpEntry(
        bytes.fromhex("00000000ff07"), None, 3, 3)
    snap.set(entries)
    assert job.run(env, 3500) == []
    assert len(job.run(env, 4500)) == 1         # the new one, 1 s later

    # A patch port's element without is_chassis_resident is not used.
    edit(sb_server, idl, "set", "Port_Binding", "public-lr0",
         'options:nat-addresses="00:00:00:00:ff:07 172.16.0.7"')
    assert set(compute(idl)[2].entries) == {"public-p5"}

    # The gateway moves to hv2: nothing is resident here any more.
    edit(sb_server, idl, "set", "Port_Binding", "public-lr0",
         'nat_addresses="00:00:00:00:ff:03 172.16.0.1 '
         'is_chassis_resident(\\"cr-lr0-public\\")"')
    assert "public-lr0-172.16.0.1" in compute(idl)[2].entries
    ha = sb_server.sbctl("--bare", "--columns=_uuid", "list", "HA_Chassis")
    hv2 = sb_server.sbctl("--bare", "--columns=_uuid", "find", "Chassis",
                          "name=hv2")
    edit(sb_server, idl, "set", "HA_Chassis", ha, f"chassis={hv2}")
    assert set(compute(idl)[2].entries) == {"public-p5"}

    # A localport or an unbound VIF is not announced.
    edit(sb_server, idl, "set", "Port_Binding", "public-p5", "type=localport")
    assert compute(idl)[2].entries == {}
    edit(sb_server, idl, "set", "Port_Binding", "public-p5", 'type=""')
    assert set(compute(idl)[2].entries) == {"public-p5"}
    edit(sb_server, idl, "clear", "Port_Binding", "public-p5", "chassis")
    _, lds, plan, _ = compute(idl)
    assert plan.entries == {}
    # Nothing of public is here any more: lr0 reaches it only through an
    # always-redirect gateway port whose gateway is now hv2.
    assert 3 not in lds and 4 in lds


def test_sb_edits_toggle_periodic_ra(idl, sb_server):  # noqa: F811
    edit(sb_server, idl, "set", "Port_Binding", "lr0-sw1",
         "options:ipv6_ra_send_periodic=false")
    assert compute(idl)[3] == {}
    edit(sb_server, idl, "set", "Port_Binding", "lr0-sw1",
         "options:ipv6_ra_send_periodic=true", "options:ipv6_ra_mtu=1400")
    ra = compute(idl)[3]["lr0-sw1"]
    assert len(ra.frame) == 110 + 8             # the MTU option
    edit(sb_server, idl, "remove", "Port_Binding", "lr0-sw1", "options",
         "ipv6_ra_src_eth")
    assert compute(idl)[3] == {}                # invalid: no RA


def test_localnet_needs_a_plugged_network(idl):
    pbs = PortBindings(idl.tables["Port_Binding"].rows.values())
    lds = compute_local_datapaths(pbs, CHASSIS, frozenset())
    assert lds[3].localnet_port is None
    assert garp_announcements(pbs, IFACES, CHASSIS, lds).entries == {}


def test_other_chassis_sees_nothing_local(idl):
    pbs = PortBindings(idl.tables["Port_Binding"].rows.values())
    assert compute_local_datapaths(pbs, "hv9", NETWORKS) == {}


# --- pure parts on hand-made rows ------------------------------------------------

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
