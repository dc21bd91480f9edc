"""IGMP/MLD snooping, the state: handler/mcast_job.py (the snooping
tables as OVS 3.1's mcast-snooping.c keeps them, the querier's schedule,
the hand-over), db/mcast_plan.py (IP_Multicast -> configuration, 23.03's
defaults and warnings) and db/writers/igmp_group.py (the SB IGMP_Group
rows), with fake clocks, rows and transactions.  The golden exchanges
igmp_join_sw1 / mld_join_sw1 / igmp_mld_queries_sw1 end to end."""

from __future__ import annotations

import ipaddress
from types import SimpleNamespace

import pytest

from pinctrl.db.local_datapaths import PortBindings
from pinctrl.db.mcast_plan import McastPlan, mcast_config, mcast_configs
from pinctrl.db.writers import SbContext
from pinctrl.db.writers.igmp_group import (
    IgmpGroupWriter,
    address_bytes,
    address_text,
)
from pinctrl.handler import dispatch
from pinctrl.handler.mcast_job import McastJob, SnoopTable
from pinctrl.packet import igmp as pi
from pinctrl.shared.records import McastConfig, McastGroups
from pinctrl.shared.state import SharedState
from testbed import golden as goldens
from tests.helpers import counter_delta as delta
from tests.unit.test_garp import FakePoller

G1, G2, G3 = (ipaddress.IPv6Address(f"::ffff:239.1.1.{i}").packed
              for i in (1, 2, 3))
G6 = ipaddress.IPv6Address("ff0e::1234").packed
IDLE = 30


def join(*groups: bytes) -> pi.McastMessage:
    return pi.McastMessage(tuple((pi.JOIN, g) for g in groups), False,
                           pi.FORWARD_REPORT)


def leave(group: bytes) -> pi.McastMessage:
    return pi.McastMessage(((pi.LEAVE, group),), False, pi.FORWARD_REPORT)


QUERY = pi.McastMessage((), True, pi.FORWARD_QUERY)


# --- SnoopTable ---------------------------------------------------------------

def test_join_refresh_leave():
    t = SnoopTable(2048, IDLE)
    assert t.join(G1, 1, 0) and t.join(G1, 2, 0)
    assert not t.join(G1, 1, 5000)              # refresh: nothing new
    assert t.snapshot() == McastGroups({G1: frozenset({1, 2})}, frozenset())
    assert t.leave(G1, 2) and not t.leave(G1, 2) and not t.leave(G2, 1)
    assert t.snapshot().groups == {G1: frozenset({1})}


def test_aging_per_port():
    """Each (group, port) lives idle_time after its last report."""
    t = SnoopTable(2048, IDLE)
    t.join(G1, 1, 0)
    t.join(G1, 2, 10_000)
    assert t.next_expiry() == 30_000
    assert not t.expire(29_999)
    assert t.expire(30_000)
    assert t.snapshot().groups == {G1: frozenset({2})}
    assert t.next_expiry() == 40_000
    assert t.expire(40_000) and t.snapshot().groups == {}
    assert t.next_expiry() > 10 ** 15


def test_left_group_goes_at_next_expire():
    t = SnoopTable(2048, IDLE)
    t.join(G1, 1, 0)
    t.leave(G1, 1)
    assert t.next_expiry() == 0 and t.expire(1) and not t.groups


def test_limits_clamped_like_ovs():
    t = SnoopTable(0, 0)
    assert (t.max_entries, t.idle_ms) == (10, 15_000)
    t = SnoopTable(5_000_000, 100_000)
    assert (t.max_entries, t.idle_ms) == (1_000_000, 3_600_000)


def test_full_table_evicts_least_recently_joined():
    t = SnoopTable(10, IDLE)
    groups = [ipaddress.IPv6Address(f"ff0e::{i + 1}").packed
              for i in range(11)]
    for i, g in enumerate(groups[:10]):
        t.join(g, 1, i)
    t.join(groups[0], 2, 100)                   # groups[0] used again
    _, n = delta("pinctrl_mcast_table_full",
                 lambda: t.join(groups[10], 1, 200))
    assert n == 1 and len(t.groups) == 10
    assert groups[1] not in t.groups and groups[0] in t.groups
    t.set_max(10)
    t.max_entries = 5                           # as a smaller mcast_table_size
    assert t.expire(300) and len(t.groups) == 5


def test_router_ports():
    """A query makes its port a router port for 180 s; joins from it are
    ignored (OVS: "avoid duplicate packets")."""
    t = SnoopTable(2048, IDLE)
    assert t.add_mrouter(3, 0) and not t.add_mrouter(3, 1000)
    assert not t.join(G1, 3, 2000) and not t.groups
    assert t.snapshot().mrouters == frozenset({3})
    assert t.next_expiry() == 181_000
    assert t.expire(181_000) and not t.mrouters


def test_idle_change_moves_expiries():
    t = SnoopTable(2048, 60)
    t.join(G1, 1, 0)
    t.set_idle(20)
    assert t.next_expiry() == 20_000
    t.set_idle(2)                               # clamped to 15
    assert t.next_expiry() == 15_000


# --- McastJob -----------------------------------------------------------------

SW1 = 2
ETH = bytes.fromhex("00000000ff02")
IGMP_Q = pi.build_igmp_query(ETH, bytes([10, 0, 1, 1]), 1)
MLD_Q = pi.build_mld_query(ETH, ipaddress.IPv6Address(
    "fe80::200:ff:fe00:ff02").packed, 1)


def cfg(**kw) -> McastConfig:
    base = dict(enabled=True, table_size=2048, idle_time_s=IDLE,
                query_interval_s=10, seq_no=0, igmp_query=IGMP_Q,
                mld_query=MLD_Q)
    return McastConfig(**{**base, **kw})


class Harness:
    """A McastJob with its configuration snapshot and hand-over."""

    def __init__(self, **cfgs) -> None:
        self.shared = SharedState()
        self.woken = 0
        self.job = McastJob(self.shared.get_mcast, self.shared.mcast_groups,
                            self.wake)
        self.env = dispatch.Env()
        self.env.mcast = self.job

    def wake(self) -> None:
        self.woken += 1

    def configure(self, cfgs: dict) -> None:
        self.shared.set_mcast(cfgs)

    def run(self, now: int) -> list[bytes]:
        return self.job.run(self.env, now)

    def taken(self) -> dict:
        return self.shared.mcast_groups.take()


def test_configure_learn_hand_over():
    h = Harness()
    h.configure({SW1: cfg(igmp_query=None, mld_query=None), 3: cfg(
        enabled=False)})
    assert h.run(0) == []
    assert h.job.snooping(SW1) and not h.job.snooping(3)
    assert not h.job.snooping(99)
    # The new table is handed over (empty) so stale rows can go.
    assert h.taken() == {SW1: McastGroups({}, frozenset())} and h.woken == 1
    assert h.job.learn(SW1, 1, join(G1, G6), 100)
    assert not h.job.learn(3, 1, join(G1), 100)     # snooping off
    h.run(100)
    assert h.taken() == {SW1: McastGroups({G1: frozenset({1}),
                                           G6: frozenset({1})}, frozenset())}
    assert not h.job.learn(SW1, 1, join(G1), 200)   # refresh only
    h.run(200)
    assert h.taken() == {}


def test_expiry_hands_over_and_wakes_on_time():
    h = Harness()
    h.configure({SW1: cfg(igmp_query=None, mld_query=None)})
    h.run(0)
    h.taken()
    h.job.learn(SW1, 1, join(G1), 1000)
    h.run(1000)
    h.taken()
    poller = FakePoller()
    h.job.wait(poller, 2000)
    assert poller.until == [31_000]
    h.run(30_999)
    assert h.taken() == {}
    h.run(31_000)
    assert h.taken() == {SW1: McastGroups({}, frozenset())}


def test_past_deadline_does_not_spin():
    """wait() with a deadline already past (run() not called: OpenFlow
    down) re-checks a second later instead of waking at once."""
    h = Harness()
    h.configure({SW1: cfg()})
    h.run(0)
    poller = FakePoller()
    h.job.wait(poller, 50_000)
    assert poller.until == [51_000]


def test_querier_schedule_and_packet_outs():
    """Queries at once when configured, then every query_interval; IGMP
    then MLD, each 23.03's local output to the flood group."""
    h = Harness()
    h.configure({SW1: cfg()})
    msgs = h.run(5000)
    ex = goldens.load_exchange("igmp_mld_queries_sw1")
    recorded = [bytes.fromhex(r["hex"]) for r in goldens.iter_of_messages(
        ex, "OFPT_PACKET_OUT", "c2s")]
    assert len(msgs) == 2
    assert [goldens.same_message(m, r) for m, r in zip(msgs, recorded)] \
        == [True, True]
    assert h.run(14_999) == []
    poller = FakePoller()
    h.job.wait(poller, 14_999)
    assert min(poller.until) == 15_000
    assert len(h.run(15_000)) == 2


def test_querier_interval_change_reschedules():
    """23.03: a shorter interval brings the next query forward to now."""
    h = Harness()
    h.configure({SW1: cfg(query_interval_s=100)})
    h.run(0)
    h.configure({SW1: cfg(query_interval_s=5)})
    assert len(h.run(1000)) == 2
    assert h.run(5999) == [] and len(h.run(6000)) == 2


def test_querier_per_family_and_off_with_snooping():
    h = Harness()
    h.configure({SW1: cfg(mld_query=None), 3: cfg(enabled=False)})
    assert [m[-len(IGMP_Q):] for m in h.run(0)] == [IGMP_Q]


def test_seq_no_flushes_and_disable_hands_over_none():
    h = Harness()
    h.configure({SW1: cfg(igmp_query=None, mld_query=None)})
    h.run(0)
    h.job.learn(SW1, 1, join(G1), 0)
    h.run(0)
    h.taken()
    h.configure({SW1: cfg(igmp_query=None, mld_query=None, seq_no=1)})
    h.run(10)
    assert h.taken() == {SW1: McastGroups({}, frozenset())}
    h.configure({SW1: cfg(enabled=False)})
    h.run(20)
    assert h.taken() == {SW1: None} and not h.job.snooping(SW1)
    h.configure({SW1: cfg()})
    h.run(30)
    h.taken()
    h.configure({})                             # no longer local
    h.run(40)
    assert h.taken() == {SW1: None}


def test_full_hand_over_is_retried():
    h = Harness()
    h.shared.mcast_groups.cap = 0
    h.configure({SW1: cfg(igmp_query=None, mld_query=None)})
    _, n = delta("pinctrl_drop_mcast_groups", lambda: h.run(0))
    assert n == 1 and h.woken == 0
    poller = FakePoller()
    h.job.wait(poller, 10)
    assert poller.until == [1010]
    h.shared.mcast_groups.cap = 1000
    h.run(1010)
    assert h.taken() == {SW1: McastGroups({}, frozenset())}


@pytest.mark.parametrize("name, groups", [
    ("igmp_join_sw1", {"239.1.1.1", "239.2.2.2"}),
    ("mld_join_sw1", {"ff0e::1234"}),
])
def test_golden_joins_end_to_end(name, groups):
    """The recorded packet-ins through the dispatcher with sw1's golden
    configuration: the packet-outs as recorded and sw1-p4 (port 1) in
    the recorded groups."""
    h = Harness()
    h.configure({SW1: cfg(igmp_query=None, mld_query=None)})
    h.run(0)
    h.taken()
    step, = goldens.load_exchange(name)["steps"]
    produced, expected = goldens.replay_step(step, h.env)
    assert [m[8:] for m in produced] == [m[8:] for m in expected]
    h.run(10)
    got = h.taken()[SW1]
    assert {address_text(g) for g in got.groups} == groups
    assert set(got.groups.values()) == {frozenset({1})}


# --- db/mcast_plan.py -----------------------------------------------------------

def ip_mcast(**kw) -> SimpleNamespace:
    """An IP_Multicast row as python-ovs gives it (optional columns are
    lists)."""
    base = dict(datapath=SimpleNamespace(tunnel_key=SW1), enabled=[True],
                querier=[True], eth_src="00:00:00:00:ff:02",
                ip4_src="10.0.1.1", ip6_src="fe80::200:ff:fe00:ff02",
                table_size=[2048], idle_timeout=[IDLE], query_interval=[10],
                query_max_resp=[1], seq_no=0)
    return SimpleNamespace(**{**base, **kw})


def test_golden_row_gives_the_recorded_queries():
    """sw1's IP_Multicast row of the recording (sb.backup.db)."""
    got, warnings = mcast_config(ip_mcast())
    assert warnings == []
    assert got == cfg()


def test_defaults_of_23_03():
    got, _ = mcast_config(ip_mcast(enabled=[], querier=[], table_size=[],
                                   idle_timeout=[], query_interval=[],
                                   query_max_resp=[]))
    assert got == McastConfig(False, 2048, 300, 150, 0, None, None)
    got, _ = mcast_config(ip_mcast(idle_timeout=[1], query_interval=[]))
    assert got.query_interval_s == 1
    got, _ = mcast_config(ip_mcast(query_interval=[0]))
    assert got.query_interval_s == 1            # deviation: never 0


@pytest.mark.parametrize("kw, v4, v6, warnings", [
    (dict(ip4_src=""), False, True, []),
    (dict(ip6_src=""), True, False, []),
    (dict(ip4_src="10.0.1"), False, True,
     ["IGMP Querier enabled with invalid IPv4 src address"]),
    (dict(ip6_src="fe80::zz"), True, False,
     ["MLD Querier enabled with invalid IPv6 src address"]),
    (dict(ip4_src="", ip6_src=""), False, False,
     ["IGMP Querier enabled without a valid IPv4 or IPv6 address"]),
    (dict(eth_src="junk"), False, False,
     ["IGMP Querier enabled with invalid ETH src address"]),
    (dict(querier=[False]), False, False, []),
    (dict(enabled=[False]), False, False, []),
])
def test_querier_per_family(kw, v4, v6, warnings):
    got, said = mcast_config(ip_mcast(**kw))
    assert (got.igmp_query is not None, got.mld_query is not None) == (v4, v6)
    assert said == warnings


def test_only_local_datapaths():
    rows = [ip_mcast(), ip_mcast(datapath=SimpleNamespace(tunnel_key=7)),
            ip_mcast(datapath=[])]
    assert set(mcast_configs(rows, {SW1: object()})) == {SW1}


# --- db/writers/igmp_group.py ---------------------------------------------------

HV1, HV2 = SimpleNamespace(name="hv1"), SimpleNamespace(name="hv2")
DP = SimpleNamespace(tunnel_key=SW1)


class Row(SimpleNamespace):
    def delete(self) -> None:
        self.deleted = True


class Table:
    def __init__(self, *rows: Row) -> None:
        self.rows = {i: r for i, r in enumerate(rows)}


class Txn:
    def __init__(self) -> None:
        self.inserted: list[Row] = []

    def insert(self, table: Table) -> Row:
        row = Row(deleted=False)
        self.inserted.append(row)
        return row


def pb(key: int) -> SimpleNamespace:
    return SimpleNamespace(datapath=DP, tunnel_key=key, uuid=f"pb{key}",
                           logical_port=f"p{key}", options={})


def group_row(address: str, *ports, chassis=HV1, dp=DP) -> Row:
    return Row(address=address, datapath=[dp], chassis=[chassis],
               ports=list(ports), deleted=False)


def writer_with(tables: dict) -> IgmpGroupWriter:
    shared = SharedState()
    w = IgmpGroupWriter(shared)
    w.set_local({SW1: DP})
    for dp, groups in tables.items():
        shared.mcast_groups.put(dp, groups)
    w.collect(0)
    return w


def run_writer(w, *rows, ports=(pb(1), pb(2))):
    table = Table(*rows)
    ctx = SbContext(SimpleNamespace(tables={"IGMP_Group": table}), "hv1",
                    HV1, PortBindings(ports))
    txn = Txn()
    assert w.has_work(0)
    changed = w.write(txn, ctx, 0)
    assert not w.has_work(0)
    return changed, txn.inserted


def test_rows_follow_the_table():
    """The recording: a row per group with the port, and the mrouters
    row; stale groups and other chassis' rows as 23.03 treats them."""
    w = writer_with({SW1: McastGroups({G1: frozenset({1}),
                                       G6: frozenset({1, 2})}, frozenset())})
    stale = group_row("239.1.1.3", pb(1))
    other = group_row("239.1.1.3", chassis=HV2)
    mrouters = group_row("mrouters")
    kept = group_row("239.1.1.1", pb(2))        # ports change to {1}
    changed, inserted = run_writer(w, stale, other, mrouters, kept)
    assert changed and stale.deleted and not other.deleted
    assert not mrouters.deleted and mrouters.ports == []
    assert [p.tunnel_key for p in kept.ports] == [1]
    new, = inserted
    assert new.address == "ff0e::1234" and new.chassis is HV1
    assert new.datapath is DP
    assert sorted(p.tunnel_key for p in new.ports) == [1, 2]


def test_mrouters_row_created_and_nothing_twice():
    w = writer_with({SW1: McastGroups({}, frozenset({2}))})
    changed, inserted = run_writer(w)
    new, = inserted
    assert (new.address, [p.tunnel_key for p in new.ports]) == \
        ("mrouters", [2])
    w.touch()
    changed, inserted = run_writer(w, group_row("mrouters", pb(2)))
    assert not changed and not inserted


def test_snooping_stopped_deletes_all_of_this_chassis():
    w = writer_with({SW1: None})
    rows = [group_row("mrouters"), group_row("239.1.1.1", pb(1)),
            group_row("ff0e::1", chassis=HV2)]
    run_writer(w, *rows)
    assert [r.deleted for r in rows] == [True, True, False]


def test_unreported_and_non_local_datapaths_left_alone():
    """Split mode with igmp passed: ovn-controller's pinctrl owns the
    rows; a non-local datapath's rows stay as in 23.03."""
    w = writer_with({})
    far = SimpleNamespace(tunnel_key=9)
    rows = [group_row("239.1.1.1", pb(1)), group_row("mrouters", dp=far)]
    changed, inserted = run_writer(w, *rows)
    assert not changed and not inserted
    assert not any(r.deleted for r in rows)


def test_no_chassis_row_yet():
    w = writer_with({SW1: McastGroups({G1: frozenset({1})}, frozenset())})
    ctx = SbContext(SimpleNamespace(tables={"IGMP_Group": Table()}), "hv1",
                    None, PortBindings(()))
    assert not w.write(Txn(), ctx, 0) and not w.has_work(0)
    w.failed()
    assert w.has_work(0)


@pytest.mark.parametrize("text", ["239.2.2.2", "ff0e::1234", "ff02::1:3",
                                  "224.0.0.251"])
def test_address_text_round_trip(text):
    assert address_text(address_bytes(text)) == text
    assert address_bytes("mrouters") is None


def test_plan_publishes_and_informs_the_writer():
    shared = SharedState()
    plan = McastPlan(shared)
    idl = SimpleNamespace(tables={"IP_Multicast": Table(Row(**vars(
        ip_mcast())))})
    ctx = SbContext(idl, "hv1", HV1, PortBindings(()))
    local = {SW1: SimpleNamespace(datapath=DP)}
    plan.run(idl, ctx, local, set())
    assert shared.get_mcast()[1] == {SW1: cfg()}
    assert plan.writer.local == {SW1: DP} and plan.writer.has_work(0)
    plan.writer._dirty = False
    plan.run(idl, ctx, local, {"MAC_Binding"})
    assert not plan.writer.has_work(0)
    plan.run(idl, ctx, local, {"IGMP_Group"})
    assert plan.writer.has_work(0)
    version = shared.get_mcast()[0]
    plan.run(idl, ctx, local, {"IP_Multicast"})
    assert shared.get_mcast()[0] == version     # unchanged: not republished
