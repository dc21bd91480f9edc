"""db/writers/: what each Southbound writer adds to a transaction, with a
fake IDL (tables, the (column...) indexes the writers look rows up by)
and a fake transaction recording inserts.  The same writers against a
real ovsdb-server: tests/integration/test_sb_writers.py.
"""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from ovs.db.idl import ROW_CREATE

from pinctrl.db.garp_plan import MacBindingWrite
from pinctrl.db.local_datapaths import PortBindings
from pinctrl.db.writers import SbContext
from pinctrl.db.writers import controller_event, fdb, mac_binding, port_claims
from pinctrl.shared.records import Learnt, ipv4_mapped
from pinctrl.shared.state import SharedState
from tests.helpers import counter_delta

HV1 = SimpleNamespace(name="hv1")
MAC_A, MAC_B = bytes.fromhex("00000000fefe"), bytes.fromhex("00000000fe01")
IP = ipv4_mapped(0xAC1000FE)                  # 172.16.0.254


class FakeTable:
    def __init__(self, columns=()) -> None:
        self.columns = {c: None for c in columns}
        self.rows: dict[int, SimpleNamespace] = {}

    def add(self, **cols) -> SimpleNamespace:
        row = SimpleNamespace(uuid=len(self.rows), **cols)
        self.rows[row.uuid] = row
        return row


class FakeRows(dict):
    """table.rows: also builds index probes (python-ovs IndexEntry)."""

    @staticmethod
    def IndexEntry(**cols):
        return cols


class FakeIdl:
    def __init__(self, **tables: FakeTable) -> None:
        self.tables = tables
        for t in tables.values():
            t.rows = FakeRows(t.rows)

    def index_equal(self, table: str, index: str, probe: dict):
        return (r for r in self.tables[table].rows.values()
                if all(getattr(r, k) == v for k, v in probe.items()))


class FakeTxn:
    def __init__(self) -> None:
        self.inserted: list[tuple[str, SimpleNamespace]] = []

    def insert(self, table: FakeTable) -> SimpleNamespace:
        row = SimpleNamespace()
        self.inserted.append((table, row))
        return row


def port(dp: int, key: int, name: str, type: str = "", **kw):
    """A Port_Binding row; setkey() edits its options like python-ovs."""
    row = SimpleNamespace(datapath=SimpleNamespace(tunnel_key=dp),
                          tunnel_key=key, logical_port=name, type=type,
                          options=dict(kw.pop("options", {})), chassis=[],
                          virtual_parent=[], **kw)
    row.setkey = lambda col, k, v: getattr(row, col).__setitem__(k, v)
    return row


def ctx(idl, *ports, chassis=HV1) -> SbContext:
    c = SbContext(idl, chassis.name if chassis else None, chassis,
                  PortBindings(ports))
    # What SbSync's IDL notify hook feeds the MAC_Binding index with.
    table = idl.tables.get("MAC_Binding") if idl is not None else None
    for row in table.rows.values() if table is not None else ():
        c.mac_binding_index.row_event(ROW_CREATE, row)
    return c


def write(writer, c: SbContext, now: int = 0) -> tuple[bool, FakeTxn]:
    txn = FakeTxn()
    writer.collect(now)
    return writer.write(txn, c, now), txn


# --- FDB ---------------------------------------------------------------------------

def fdb_idl() -> FakeIdl:
    return FakeIdl(FDB=FakeTable(("mac", "dp_key", "port_key")))


def test_fdb_inserts_an_absent_row():
    shared = SharedState()
    w = fdb.FdbWriter(shared)
    idl = fdb_idl()
    shared.put_fdbs.put((1, bytes.fromhex("505400000034")), 3)
    used, txn = write(w, ctx(idl))
    (table, row), = txn.inserted
    assert used and table is idl.tables["FDB"]
    assert vars(row) == {"mac": "50:54:00:00:00:34", "dp_key": 1,
                         "port_key": 3}


def test_fdb_updates_a_moved_port_and_skips_an_unchanged_one():
    shared = SharedState()
    w = fdb.FdbWriter(shared)
    idl = fdb_idl()
    moved = idl.tables["FDB"].add(mac="50:54:00:00:00:34", dp_key=1,
                                  port_key=3)
    same = idl.tables["FDB"].add(mac="50:54:00:00:00:35", dp_key=1,
                                 port_key=2)
    shared.put_fdbs.put((1, bytes.fromhex("505400000034")), 5)
    shared.put_fdbs.put((1, bytes.fromhex("505400000035")), 2)
    used, txn = write(w, ctx(idl))
    assert used and txn.inserted == []
    assert (moved.port_key, same.port_key) == (5, 2)


# --- MAC_Binding --------------------------------------------------------------------------

LR0_PUBLIC = port(4, 3, "lr0-public")


def mb_idl(timestamp: bool = True) -> FakeIdl:
    cols = ("logical_port", "ip", "mac", "datapath") + (
        ("timestamp",) if timestamp else ())
    return FakeIdl(MAC_Binding=FakeTable(cols))


@pytest.mark.parametrize("ip16,text", [
    (IP, "172.16.0.254"),
    (bytes.fromhex("fd000000000000000000000000000010"), "fd00::10"),
])
def test_ip_text_as_ovn_writes_it(ip16, text):
    assert mac_binding.format_ip(ip16) == text
    assert mac_binding.parse_ip(text) == ip16


def test_unparsable_ip_text():
    assert mac_binding.parse_ip("not an ip") is None


@pytest.mark.parametrize("timestamp", [True, False])
def test_learnt_binding_is_inserted(timestamp):
    shared = SharedState()
    w = mac_binding.MacBindingWriter(shared)
    idl = mb_idl(timestamp)
    shared.put_mac_bindings.put((4, 3, IP), Learnt(MAC_A, 0))
    used, txn = write(w, ctx(idl, LR0_PUBLIC))
    (_, row), = txn.inserted
    assert used
    assert (row.logical_port, row.ip, row.mac, row.datapath) == (
        "lr0-public", "172.16.0.254", "00:00:00:00:fe:fe",
        LR0_PUBLIC.datapath)
    assert hasattr(row, "timestamp") is timestamp
    assert w.n_written == 1
    assert list(w.recent) == [("lr0-public", "172.16.0.254",
                               "00:00:00:00:fe:fe")]


def test_unchanged_mac_writes_nothing_a_new_one_updates_in_place():
    shared = SharedState()
    w = mac_binding.MacBindingWriter(shared)
    idl = mb_idl()
    row = idl.tables["MAC_Binding"].add(
        logical_port="lr0-public", ip="172.16.0.254",
        mac="00:00:00:00:fe:fe", timestamp=1)
    shared.put_mac_bindings.put((4, 3, IP), Learnt(MAC_A, 0))
    _, txn = write(w, ctx(idl, LR0_PUBLIC))
    assert txn.inserted == [] and row.timestamp == 1 and w.n_written == 0
    w.committed()
    shared.put_mac_bindings.put((4, 3, IP), Learnt(MAC_B, 0))
    _, txn = write(w, ctx(idl, LR0_PUBLIC))
    assert txn.inserted == [] and row.mac == "00:00:00:00:fe:01"
    assert row.timestamp > 1 and w.n_written == 1


def test_binding_waits_for_its_commit_time():
    shared = SharedState()
    w = mac_binding.MacBindingWriter(shared)
    shared.put_mac_bindings.put((4, 3, IP), Learnt(MAC_A, 5000))
    w.collect(0)
    assert not w.has_work(4999) and w.next_due() == 5000
    used, txn = write(w, ctx(mb_idl(), LR0_PUBLIC), now=4999)
    assert not used and txn.inserted == []
    assert w.has_work(5000)
    used, txn = write(w, ctx(mb_idl(), LR0_PUBLIC), now=5000)
    assert used and len(txn.inserted) == 1


def test_relearnt_binding_keeps_its_first_commit_time():
    shared = SharedState()
    w = mac_binding.MacBindingWriter(shared)
    shared.put_mac_bindings.put((4, 3, IP), Learnt(MAC_A, 5000))
    w.collect(0)
    shared.put_mac_bindings.put((4, 3, IP), Learnt(MAC_B, 9000))
    w.collect(0)
    assert w.queue.pending[(4, 3, IP)] == Learnt(MAC_B, 5000)


def test_binding_for_an_unknown_port_is_dropped_and_counted():
    shared = SharedState()
    w = mac_binding.MacBindingWriter(shared)
    shared.put_mac_bindings.put((4, 99, IP), Learnt(MAC_A, 0))
    (used, txn), n = counter_delta(
        "pinctrl_drop_mac_binding_unknown_port",
        lambda: write(w, ctx(mb_idl(), LR0_PUBLIC)))
    assert n == 1 and txn.inserted == []
    w.failed()                          # not brought back by a failure
    assert len(w) == 0


def test_local_announcement_writes_and_update_only_rows():
    """send_garp_locally: an update_only write never inserts."""
    shared = SharedState()
    w = mac_binding.MacBindingWriter(shared)
    idl = mb_idl()
    dp = SimpleNamespace(tunnel_key=4)
    w.add_local([
        MacBindingWrite("lr0-public", dp, "172.16.0.50", "50:54:00:00:00:05",
                        False),
        MacBindingWrite("lr0-public", dp, "172.16.0.51", "50:54:00:00:00:06",
                        True),
    ])
    assert w.has_work(0) and len(w) == 2
    used, txn = write(w, ctx(idl))
    assert used
    assert [r.ip for _, r in txn.inserted] == ["172.16.0.50"]
    w.failed()
    assert len(w.local.pending) == 2    # retried, both


# --- Controller_Event ----------------------------------------------------------------------

EVENT = ("10.0.0.100:80", "tcp", "lb-uuid")


def ce_idl() -> FakeIdl:
    return FakeIdl(Controller_Event=FakeTable(
        ("event_type", "event_info", "chassis", "seq_num")))


def test_event_inserted_with_increasing_seq_num():
    shared = SharedState()
    w = controller_event.ControllerEventWriter(shared)
    shared.controller_events.put(EVENT, "empty_lb_backends")
    shared.controller_events.put(("10.0.0.101:80", "tcp", "lb"),
                                 "empty_lb_backends")
    used, txn = write(w, ctx(ce_idl()))
    rows = [r for _, r in txn.inserted]
    assert used and [r.seq_num for r in rows] == [1, 2]
    assert rows[0].event_info == {"vip": "10.0.0.100:80", "protocol": "tcp",
                                  "load_balancer": "lb-uuid"}
    assert rows[0].event_type == "empty_lb_backends"
    assert rows[0].chassis is HV1


def test_event_already_reported_by_this_chassis_is_not_repeated():
    shared = SharedState()
    w = controller_event.ControllerEventWriter(shared)
    idl = ce_idl()
    idl.tables["Controller_Event"].add(
        event_type="empty_lb_backends", chassis=[HV1],
        event_info={"vip": "10.0.0.100:80", "protocol": "tcp",
                    "load_balancer": "lb-uuid"})
    shared.controller_events.put(EVENT, "empty_lb_backends")
    used, txn = write(w, ctx(idl))
    assert used and txn.inserted == []


def test_events_wait_for_the_chassis_row():
    shared = SharedState()
    w = controller_event.ControllerEventWriter(shared)
    shared.controller_events.put(EVENT, "empty_lb_backends")
    used, txn = write(w, ctx(ce_idl(), chassis=None))
    assert not used and len(w.queue.pending) == 1


# --- Port_Binding claims ----------------------------------------------------------------------

def test_vport_claimed_with_its_parent():
    shared = SharedState()
    w = port_claims.VportWriter(shared)
    vip = port(1, 4, "sw0-vip", "virtual")
    parent = port(1, 1, "sw0-p1")
    shared.put_vport_bindings.put((1, 4), 1)
    used, _ = write(w, ctx(None, vip, parent))
    assert used and (vip.chassis, vip.virtual_parent) == (HV1, "sw0-p1")


def test_vport_already_claimed_is_left_alone():
    shared = SharedState()
    w = port_claims.VportWriter(shared)
    vip = port(1, 4, "sw0-vip", "virtual")
    vip.chassis, vip.virtual_parent = [HV1], ["sw0-p1"]
    shared.put_vport_bindings.put((1, 4), 1)
    write(w, ctx(None, vip, port(1, 1, "sw0-p1")))
    assert (vip.chassis, vip.virtual_parent) == ([HV1], ["sw0-p1"])


@pytest.mark.parametrize("vport_type,parent_key", [("", 1), ("virtual", 9)])
def test_vport_binding_without_virtual_port_or_parent_is_dropped(
        vport_type, parent_key):
    shared = SharedState()
    w = port_claims.VportWriter(shared)
    p = port(1, 2, "sw0-p2", vport_type)
    shared.put_vport_bindings.put((1, 2), parent_key)
    _, n = counter_delta("pinctrl_drop_bind_vport_unknown_port",
                         lambda: write(w, ctx(None, p, port(1, 1, "p1"))))
    assert n == 1 and p.chassis == []
    w.failed()
    assert len(w) == 0


@pytest.mark.parametrize("before,after", [
    (None, "hv1"), ("hv2", "hv2,hv1"), ("hv2,hv1", "hv2,hv1")])
def test_activation_adds_this_chassis_once(before, after):
    shared = SharedState()
    w = port_claims.ActivationWriter(shared)
    opts = {port_claims.ACTIVATED: before} if before else {}
    p = port(1, 7, "sw0-p6", options=opts)
    shared.ports_to_activate.put((1, 7), True)
    used, _ = write(w, ctx(None, p))
    assert used and p.options[port_claims.ACTIVATED] == after


def test_activation_of_an_unknown_port_is_forgotten():
    shared = SharedState()
    w = port_claims.ActivationWriter(shared)
    shared.ports_to_activate.put((1, 99), True)
    write(w, ctx(None, port(1, 7, "sw0-p6")))
    w.failed()
    assert len(w) == 0


def test_claims_wait_for_the_chassis():
    shared = SharedState()
    vports, activation = (port_claims.VportWriter(shared),
                          port_claims.ActivationWriter(shared))
    shared.put_vport_bindings.put((1, 4), 1)
    shared.ports_to_activate.put((1, 7), True)
    c = ctx(None, port(1, 4, "sw0-vip", "virtual"), port(1, 7, "sw0-p6"),
            chassis=None)
    assert not write(vports, c)[0] and not write(activation, c)[0]
    assert (len(vports), len(activation)) == (1, 1)
