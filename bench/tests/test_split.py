"""Pure tests of the bench's split-mode phase (bench/split.py): the ABBA
order, the NB operations of the N-flow change, the split column of the
table."""

from __future__ import annotations

from bench import split
from bench.report import Results, table


def test_abba_order_balances_modes_and_switches_rarely():
    assert split.abba(2) == [True, False, False, True]
    for n in (1, 2, 3, 4):
        order = split.abba(n)
        assert order.count(True) == order.count(False) == n
        assert order[0] is True          # the mode the phase starts in
        switches = sum(a != b for a, b in zip(order, order[1:]))
        assert switches == n


def test_add_ops_build_the_address_set_and_an_acl_using_it():
    ins_as, ins_acl, link = split.add_ops(3)
    assert ins_as["row"]["addresses"] == [
        "set", ["10.200.0.0", "10.200.0.1", "10.200.0.2"]]
    assert f"${ins_as['row']['name']}" in ins_acl["row"]["match"]
    assert link["mutations"] == [
        ["acls", "insert", ["set", [["named-uuid", ins_acl["uuid-name"]]]]]]
    assert link["where"] == [["name", "==", "sw1"]]


def test_remove_ops_unlink_the_acls_and_delete_the_set():
    unlink, delete = split.remove_ops(["u1", "u2"])
    assert unlink["mutations"] == [
        ["acls", "delete", ["set", [["uuid", "u1"], ["uuid", "u2"]]]]]
    assert delete == {"op": "delete", "table": "Address_Set",
                      "where": [["name", "==", split.ADDRESS_SET]]}


def test_bump_reads_nb_cfg_back_last():
    bump, read = split.bump_ops()
    assert bump["mutations"] == [["nb_cfg", "+=", 1]]
    assert read["op"] == "select" and read["columns"] == ["nb_cfg"]


def test_wait_op_waits_for_equality_in_milliseconds():
    op = split.wait_op("NB_Global", [], ["hv_cfg"], [{"hv_cfg": 7}], 1.5)
    assert op == {"op": "wait", "timeout": 1500, "table": "NB_Global",
                  "where": [], "columns": ["hv_cfg"], "until": "==",
                  "rows": [{"hv_cfg": 7}]}


def test_table_has_the_split_column_and_its_ratio():
    res = Results()
    for impl, v in (("ovn-controller", 2.0), ("split", 2.3),
                    ("split", 2.5), ("split", 2.4)):
        res.add("flow_install", "install", "s", impl, v)
    res.add("dhcp", "DHCP answered/s", "/s", "pinctrl-daemon", 100)
    res.add("dhcp", "DHCP answered/s", "/s", "ovn-controller", 200)
    lines = table(res).splitlines()
    head = [c.strip() for c in lines[0].strip("|").split("|")]
    install = [c.strip() for c in lines[2].strip("|").split("|")]
    dhcp = [c.strip() for c in lines[3].strip("|").split("|")]
    assert install[head.index("split mode")] == "2.40 (2.30–2.50)"
    assert install[head.index("split/ovn")] == "1.20×"
    assert install[head.index("daemon/ovn")] == "-"
    assert dhcp[head.index("split mode")] == "-"
    assert dhcp[head.index("daemon/ovn")] == "0.50×"
