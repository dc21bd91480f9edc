"""SbSync's local side against a real SB ovsdb-server holding the golden
SB: the gARP and RA snapshots published to the handler, the MAC_Binding
rows a new local announcement implies (pinctrl.c send_garp_locally()), and SB edits changing what
the handler jobs send within one main-loop iteration.
"""

from __future__ import annotations

import pytest
from ovs.timeval import msec

from pinctrl.db.ovs_config import ChassisInputs
from pinctrl.handler import dispatch
from pinctrl.handler.garp_job import GarpJob
from pinctrl.handler.ra_job import RaJob
from pinctrl.sb_sync import SbSync
from pinctrl.shared.state import SharedState
from testbed.ovs_sandbox import sb_schema, step_until_change
from tests.unit.test_garp import GOLDEN_ENTRIES, first_round, zero_xid
from tests.unit.test_local_datapaths import CHASSIS, IFACES, NETWORKS
from tests.integration.test_sb_writers import settle

pytestmark = pytest.mark.integration

INPUTS = ChassisInputs(tuple(IFACES), NETWORKS)


@pytest.fixture
def sync(sb_server):
    """conftest's sync, also run once with this chassis's inputs."""
    s = SbSync(SharedState(), sb_server.remote, sb_schema())
    try:
        step_until_change(s)
        s.run(msec(), CHASSIS, INPUTS)
        yield s
    finally:
        s.close()


def step(s: SbSync) -> None:
    """One main-loop iteration that sees the last ovn-sbctl edit."""
    step_until_change(_WithInputs(s))


class _WithInputs:
    """An SbSync stepped with this chassis's br-int interfaces and bridge
    mappings (the writers' helpers step it with the chassis alone, which
    would plan for a chassis without interfaces)."""

    def __init__(self, s: SbSync) -> None:
        self.s, self.idl, self.txn_loop = s, s.idl, s.txn_loop

    def run(self, now, _chassis) -> None:
        self.s.run(now, CHASSIS, INPUTS)

    def wait(self, poller, now) -> None:
        self.s.wait(poller, now)


def test_golden_snapshots_published(sync):
    version, entries = sync.shared.get_garp()
    assert version == 1 and dict(entries) == GOLDEN_ENTRIES
    _, ras = sync.shared.get_ras()
    assert list(ras) == ["lr0-sw1"]
    # Nothing changed: the same snapshot, no new version, no wake-up.  The
    # local MAC_Binding writes of the first plan land first (their IDL
    # change is not "nothing").
    settle(_WithInputs(sync))
    seq = sync.shared.handler_seq.read()
    sync.run(msec(), CHASSIS, INPUTS)
    assert sync.shared.get_garp()[0] == 1
    assert sync.shared.handler_seq.read() == seq


def test_handler_job_sends_the_golden_garps(sync):
    job = GarpJob(sync.shared.get_garp)
    env = dispatch.Env()
    assert job.run(env, 0) == []
    assert {zero_xid(m) for m in job.run(env, 1000)} == first_round()


def test_new_announcement_writes_the_peer_router_binding(sync, sb_server):
    settle(_WithInputs(sync))
    (row,) = [r for r in sb_server.rows("MAC_Binding",
                                        "logical_port=lr0-public")
              if r["ip"] == "172.16.0.50"]
    assert row["mac"] == "50:54:00:00:00:05"


def test_sb_edit_changes_what_is_sent_in_one_iteration(sync, sb_server):
    job = GarpJob(sync.shared.get_garp)
    env = dispatch.Env()
    job.run(env, 0)
    sb_server.sbctl("set", "Port_Binding", "public-lr0",
                    'nat_addresses="00:00:00:00:ff:03 172.16.0.1 '
                    'is_chassis_resident(\\"cr-lr0-public\\")"')
    step(sync)
    assert set(sync.shared.get_garp()[1]) == {"public-p5",
                                              "public-lr0-172.16.0.1"}
    assert len(job.run(env, 1000)) == 2


def test_periodic_ra_toggles(sync, sb_server):
    ra = RaJob(sync.shared.get_ras, rand=lambda n: 0)
    env = dispatch.Env()
    ra.run(env, 0)
    assert len(ra.run(env, 3000)) == 1          # min interval 3 s
    sb_server.sbctl("set", "Port_Binding", "lr0-sw1",
                    "options:ipv6_ra_send_periodic=false")
    step(sync)
    assert dict(sync.shared.get_ras()[1]) == {}
    assert ra.run(env, 6000) == []


def test_interfaces_change_the_announcements(sync):
    """public-p5 is announced only while its interface is on br-int."""
    without = ChassisInputs(tuple(i for i in IFACES
                                  if i.iface_id != "public-p5"), NETWORKS)
    sync.run(msec(), CHASSIS, without)
    assert "public-p5" not in sync.shared.get_garp()[1]
    sync.run(msec(), CHASSIS, INPUTS)
    assert "public-p5" in sync.shared.get_garp()[1]
