"""appctl.py: the open command registry and the pure reports behind
pinctrl/show, pinctrl/dns-cache and memory/show."""

import types

import ovs.unixctl
import pytest

from pinctrl.db.dns_cache import build_dns_cache
from pinctrl.shared.state import SharedState
from pinctrl.support import appctl
from tests.helpers import counted


def test_dns_cache_listing_is_sorted_with_addresses_or_ptr_value():
    cache = build_dns_cache([
        ("id1", {"vm1.ovn.test": "10.0.0.11 2001:db8::11",
                 "11.0.0.10.in-addr.arpa": "vm1.ovn.test"}, [3]),
        ("id2", {"vm2.ovn.test": "10.0.0.12"}, [1, 3]),
    ])
    assert appctl.format_dns_cache(cache) == (
        "datapath 1 (1 names):\n"
        "  vm2.ovn.test -> 10.0.0.12\n"
        "datapath 3 (3 names):\n"
        "  11.0.0.10.in-addr.arpa -> vm1.ovn.test\n"
        "  vm1.ovn.test -> 10.0.0.11 2001:db8::11\n"
        "  vm2.ovn.test -> 10.0.0.12\n")
    assert appctl.dns_name_count(cache) == 4
    assert appctl.format_dns_cache({}) == "DNS cache is empty\n"


def test_shared_sizes_reports_every_sized_field_only():
    shared = SharedState()
    shared.br_int_name = "br-int"           # a str: not a container
    sizes = appctl.shared_sizes(shared)
    assert sizes["dns_cache"] == 0
    assert "br_int_name" not in sizes and "mutex" not in sizes
    assert "handler_seq" not in sizes


def test_shared_sizes_reads_n_counts_and_plain_objects():
    obj = types.SimpleNamespace(n_waiting=3, n_flag=True, queue=[1, 2],
                                name="x", number=7)
    assert appctl.shared_sizes(obj) == {"waiting": 3, "queue": 2}


def test_format_memory_is_ovs_style():
    assert appctl.format_memory({"b": 2, "a-x": 1}) == "a-x:1 b:2\n"


def test_proc_status_kb(tmp_path):
    f = tmp_path / "status"
    f.write_text("Name:\tx\nVmHWM:\t  2048 kB\nVmRSS:\t  1024 kB\n")
    assert appctl.proc_status_kb("VmRSS", str(f)) == 1024
    assert appctl.proc_status_kb("VmSwap", str(f)) is None
    assert appctl.proc_status_kb("VmRSS", str(tmp_path / "none")) is None
    assert appctl.proc_status_kb("VmRSS") > 0          # this process


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
    assert appctl.sb_server_info(_idl_with_server_rows(*rows),
                                 "OVN_Southbound") == want


def test_sb_server_info_before_the_idl_read_it():
    assert appctl.sb_server_info(types.SimpleNamespace(),
                                 "OVN_Southbound") == "unknown"


class Conn:
    def __init__(self):
        self.replies, self.errors = [], []

    def reply(self, text):
        self.replies.append(text)

    def reply_error(self, text):
        self.errors.append(text)


def test_registered_command_runs_with_ctx_and_errors_are_replies(monkeypatch):
    monkeypatch.setattr(appctl, "COMMANDS", {})
    monkeypatch.setattr(appctl, "_ctx", None)
    monkeypatch.setattr(ovs.unixctl, "commands", {})

    @appctl.command("test/echo", "[ARG]", 0, 1)
    def echo(ctx, args):
        return f"{ctx}:{' '.join(args)}\n"

    appctl.install("CTX")
    # Registered after install: served at once.
    appctl.register("test/fail", lambda ctx, args: 1 / 0)
    conn = Conn()
    ovs.unixctl.commands["test/echo"].callback(conn, ["a"], None)
    assert conn.replies == ["CTX:a\n"]
    counted(lambda: ovs.unixctl.commands["test/fail"].callback(
        conn, [], None), "appctl_command_error")
    assert conn.errors and "ZeroDivisionError" in conn.errors[0]
