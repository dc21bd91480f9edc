"""Local datapaths (db/local_datapaths.py), the gARP/RARP announcement
set (db/garp_plan.py) and the periodic-RA input (db/ra_plan.py) computed
from the golden Southbound DB, read through a python-ovs IDL from a real
ovsdb-server, compared with what OVN 23.03 announced on chassis hv1; then
SB edits made with ovn-sbctl and what they change.  (The same rules on
hand-made rows: tests/unit/test_local_datapaths.py.)

Needs ovsdb-server, ovsdb-tool, ovsdb-client and ovn-sbctl (conftest's
sb_server fixture); everything started is stopped by pid.
"""

from __future__ import annotations

import pytest

from pinctrl.db import idl_util
from pinctrl.db.garp_plan import MacBindingWrite, garp_announcements, local_mac_bindings
from pinctrl.db.local_datapaths import PortBindings, compute_local_datapaths
from pinctrl.db.ra_plan import prepare_ras
from pinctrl.handler.garp_job import GarpJob
from pinctrl.shared.records import GarpEntry
from testbed.ovs_sandbox import sb_schema, step_until_change
from tests.unit.test_garp import GOLDEN_ENTRIES, Env, Snap, encode, first_round
from tests.unit.test_ipv6_ra import golden_packet_outs
from tests.unit.test_local_datapaths import CHASSIS, IFACES, NETWORKS

pytestmark = pytest.mark.integration

SB_TABLES = {
    "Port_Binding": ["logical_port", "type", "tunnel_key", "datapath",
                     "chassis", "additional_chassis", "options", "mac",
                     "nat_addresses", "ha_chassis_group"],
    "Datapath_Binding": ["tunnel_key", "external_ids"],
    "Chassis": ["name", "hostname"],
    "HA_Chassis_Group": ["name", "ha_chassis", "ref_chassis"],
    "HA_Chassis": ["chassis", "priority"],
}


@pytest.fixture
def idl(sb_server):
    idl = idl_util.make_idl(sb_server.remote, sb_schema(), SB_TABLES)
    try:
        idl_sync(idl)
        yield idl
    finally:
        idl.close()


class IdlStep:
    """Our IDL in the shape testbed.ovs_sandbox.step_until_change() drives
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


def edit(sb_server, idl, *cmd: str) -> None:
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


def test_sb_edits_change_what_is_announced(idl, sb_server):
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


def test_sb_edits_toggle_periodic_ra(idl, sb_server):
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
