"""daemon/show.py: the exact text of pinctrl/show, STATUS=, pinctrl/dns-cache
and memory/show, from figures given to it (pure formatting)."""

import dataclasses
import types

import pytest

from pinctrl.daemon import show
from pinctrl.daemon.keepalive import ThreadHealth
from pinctrl.db.dns_cache import build_dns_cache
from pinctrl.shared.state import SharedState
from pinctrl.support import appctl

HEALTHY = (ThreadHealth("main", "alive", 0.04),
           ThreadHealth("ovn_pinctrl", "alive", 0.5))
REPORT = show.ShowReport(
    chassis="hv1", chassis_found=True, bridge="br-int",
    openflow_state="connected",
    openflow_target="unix:/run/ovs/br-int.mgmt", openflow_connects=1,
    openflow_last_error="", sb_connected=True,
    sb_remotes="tcp:10.0.0.1:6642,tcp:10.0.0.2:6642",
    sb_server="tcp:10.0.0.2:6642", sb_server_role="clustered, follower",
    sb_rows={"datapaths": 5, "port_bindings": 17, "dns_rows": 1,
             "chassis_found": True},
    caches={"dns_cache": 1, "put_fdbs": 0, "dns_cache names": 4},
    health=HEALTHY, systemd="not under systemd", metrics_url=None,
    uptime_s=42)


def test_show_text():
    assert show.format_show(REPORT) == (
        "Chassis: hv1\n"
        "Bridge: br-int\n"
        "OpenFlow: connected (unix:/run/ovs/br-int.mgmt, OpenFlow 1.5)\n"
        "OpenFlow connections: 1\n"
        "Southbound: connected (tcp:10.0.0.1:6642,tcp:10.0.0.2:6642, "
        "leader-only: false)\n"
        "Southbound server: tcp:10.0.0.2:6642 (clustered, follower)\n"
        "Southbound rows: 5 datapaths, 17 port bindings, 1 DNS rows\n"
        "Caches: dns_cache 1, dns_cache names 4, put_fdbs 0\n"
        "Handler thread: alive (last loop 0.5 s ago)\n"
        "Threads: main: alive (last loop 0.0 s ago), "
        "ovn_pinctrl: alive (last loop 0.5 s ago)\n"
        "systemd: not under systemd\n"
        "Uptime: 42 s\n")


def test_show_text_while_things_are_missing():
    r = dataclasses.replace(
        REPORT, chassis=None, chassis_found=False, openflow_state="idle",
        openflow_target=None, openflow_connects=3,
        openflow_last_error="Connection refused", sb_connected=False,
        sb_rows={}, health=HEALTHY[:1],
        metrics_url="http://127.0.0.1:9476/metrics")
    lines = show.format_show(r).splitlines()
    assert lines[0] == "Chassis: (unknown) (no Chassis row in the Southbound DB)"
    assert lines[2] == "OpenFlow: idle"
    assert lines[3] == "OpenFlow connections: 3, last error: Connection refused"
    assert lines[4].startswith("Southbound: connecting (")
    assert lines[6] == "Southbound rows: 0 datapaths, 0 port bindings, 0 DNS rows"
    assert lines[8] == "Handler thread: unknown"
    assert lines[-2:] == ["Metrics: http://127.0.0.1:9476/metrics",
                          "Uptime: 42 s"]


def test_status_line_names_unhealthy_threads_first():
    assert show.status_line(True, "synced", "connected", HEALTHY) == (
        "ready: Southbound synced, OpenFlow connected")
    stuck = [HEALTHY[0], ThreadHealth("ovn_pinctrl", "STUCK", 9.0)]
    assert show.status_line(False, "connecting", "idle", stuck) == (
        "thread ovn_pinctrl STUCK; starting: Southbound connecting, "
        "OpenFlow idle")


@pytest.mark.parametrize("enabled, ready, interval, want", [
    (False, True, 5.0, "not under systemd"),
    (True, False, None, "starting, no watchdog"),
    (True, True, 0.5, "ready, watchdog every 0.5 s"),
])
def test_systemd_text(enabled, ready, interval, want):
    assert show.systemd_text(enabled, ready, interval) == want


def test_dns_cache_listing_is_sorted_with_addresses_or_ptr_value():
    cache = build_dns_cache([
        ("id1", {"vm1.ovn.test": "10.0.0.11 2001:db8::11",
                 "11.0.0.10.in-addr.arpa": "vm1.ovn.test"}, [3]),
        ("id2", {"vm2.ovn.test": "10.0.0.12"}, [1, 3]),
    ])
    assert show.format_dns_cache(cache) == (
        "datapath 1 (1 names):\n"
        "  vm2.ovn.test -> 10.0.0.12\n"
        "datapath 3 (3 names):\n"
        "  11.0.0.10.in-addr.arpa -> vm1.ovn.test\n"
        "  vm1.ovn.test -> 10.0.0.11 2001:db8::11\n"
        "  vm2.ovn.test -> 10.0.0.12\n")
    assert show.dns_name_count(cache) == 4
    assert show.format_dns_cache({}) == "DNS cache is empty\n"


def _idl_with_server_rows(*rows):
    table = types.SimpleNamespace(
        rows={i: types.SimpleNamespace(**r) for i, r in enumerate(rows)})
    return types.SimpleNamespace(server_tables={"Database": table})


@pytest.mark.parametrize("rows, want", [
    ([], "unknown"),
    ([{"name": "OVN_Southbound", "model": "standalone"}], "standalone"),
    ([{"name": "_Server", "model": "standalone"},
      {"name": "OVN_Southbound", "model": "clustered", "leader": True,
       "connected": True}], "clustered, leader"),
    ([{"name": "OVN_Southbound", "model": "clustered", "leader": False,
       "connected": False}],
     "clustered, follower, disconnected from the cluster"),
])
def test_sb_server_info(rows, want):
    assert show.sb_server_info(_idl_with_server_rows(*rows),
                               "OVN_Southbound") == want


def test_sb_server_info_before_the_idl_read_it():
    assert show.sb_server_info(types.SimpleNamespace(),
                               "OVN_Southbound") == "unknown"


class MemoryView:
    """A MemoryContext: the shared state and one two-table IDL."""

    def __init__(self):
        self.shared = SharedState()
        self.shared.set_dns_cache(build_dns_cache(
            [("id1", {"a.test": "10.0.0.1", "b.test": "10.0.0.2"}, [1])]))
        table = types.SimpleNamespace(rows={1: 0, 2: 0}, columns=["a", "b", "c"])
        self.idl = types.SimpleNamespace(tables={"T": table, "U": table})

    def buffered_packets_summary(self):
        return (0, 0)

    def databases(self):
        return {"OVN_Southbound": self.idl}


def test_memory_counts(monkeypatch):
    monkeypatch.setattr(appctl, "MEMORY_REPORTERS",
                        [lambda ctx: {"extra-thing": 7}])
    counts = show.memory_counts(MemoryView())
    assert counts["idl-cells-OVN_Southbound"] == 12     # 2 tables x 2 x 3
    assert counts["dns-cache"] == 1 and counts["dns-cache-names"] == 2
    assert counts["put-mac-bindings"] == 0
    assert counts["extra-thing"] == 7
    assert counts["rss-kB"] > 0
