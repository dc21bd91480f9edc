"""The DNS cache built by SbSync (main thread) from a real Southbound
ovsdb-server holding the golden SB backup, following ovn-sbctl edits within
one SbSync.run() after the IDL receives them.

Needs ovsdb-server, ovsdb-tool, ovsdb-client and ovn-sbctl (conftest's
sb_server fixture: skipped outside CI, failed in CI otherwise).
Everything started here is stopped by pid, also on failure.
"""

from __future__ import annotations

import pytest

from pinctrl.actions import dns as d
from pinctrl.sb_sync import SbSync
from testbed.ovs_sandbox import step_until_change
from tests.unit.test_dns import GOLDEN_CACHE, GOLDEN_DNS_ID, dns_msg, frame4

pytestmark = pytest.mark.integration


def _answer(s: SbSync, name: str, dp: int = 1, qtype: int = d.TYPE_A):
    out = d.process(frame4(dns_msg(name, qtype)), dp,
                    s.shared.get_dns_cache())
    return out.reply


def test_initial_cache_equals_golden(sync):
    assert dict(sync.shared.get_dns_cache()) == dict(GOLDEN_CACHE)
    assert sync.n_dns_rebuilds == 1


def test_cache_follows_sb_edits(sync, sb_server):
    sh = sync.shared

    def apply(*cmd: str) -> None:
        seq = sh.handler_seq.read()
        n = sync.n_dns_rebuilds
        sb_server.sbctl(*cmd)
        step_until_change(sync)
        assert sync.n_dns_rebuilds == n + 1
        assert sh.handler_seq.read() != seq          # handler woken

    # Add a record.
    apply("set", "DNS", sb_server.dns_row, "records:vm3.ovn.test=10.0.0.13")
    assert sh.get_dns_cache()[1][b"vm3.ovn.test"].ipv4 == (
        bytes([10, 0, 0, 13]),)
    assert _answer(sync, "VM3.ovn.test") is not None

    # Change one.
    apply("set", "DNS", sb_server.dns_row, 'records:vm1.ovn.test="10.0.0.99 fd00::9"')
    rec = sh.get_dns_cache()[1][b"vm1.ovn.test"]
    assert rec.ipv4 == (bytes([10, 0, 0, 99]),) and len(rec.ipv6) == 1

    # Delete one.
    apply("remove", "DNS", sb_server.dns_row, "records", "vm2.ovn.test")
    assert b"vm2.ovn.test" not in sh.get_dns_cache()[1]
    assert _answer(sync, "vm2.ovn.test") is None

    # A second row on sw1 (key 2), and one without dns_id (ignored).
    apply("create", "DNS", f"datapaths={sb_server.sw1}",
          "records:web.sw1.test=10.0.1.50", "external_ids:dns_id=zz")
    assert _answer(sync, "web.sw1.test", dp=2) is not None
    assert _answer(sync, "web.sw1.test", dp=1) is None
    apply("create", "DNS", f"datapaths={sb_server.sw1}",
          "records:hidden.test=10.0.1.51")
    assert b"hidden.test" not in sh.get_dns_cache()[2]

    # The DNS row moves to another datapath key when the key changes.
    apply("set", "Datapath_Binding", sb_server.sw0, "tunnel_key=77")
    assert 1 not in sh.get_dns_cache()
    assert _answer(sync, "vm1.ovn.test", dp=77) is not None

    # Destroy the golden row.
    apply("destroy", "DNS", sb_server.dns_row)
    assert 77 not in sh.get_dns_cache()
    assert _answer(sync, "vm1.ovn.test", dp=77) is None


def test_unrelated_changes_do_not_rebuild(sync, sb_server):
    n = sync.n_dns_rebuilds
    cache = sync.shared.get_dns_cache()
    sb_server.sbctl("chassis-add", "hv9", "geneve", "127.0.0.9")
    step_until_change(sync)
    assert sync.n_dns_rebuilds == n
    assert sync.shared.get_dns_cache() is cache


def test_published_snapshot_never_changes(sync, sb_server):
    old = sync.shared.get_dns_cache()
    before = {dp: dict(names) for dp, names in old.items()}
    sb_server.sbctl("set", "DNS", sb_server.dns_row, "records:new.test=10.9.9.9")
    step_until_change(sync)
    assert sync.shared.get_dns_cache() is not old
    assert {dp: dict(names) for dp, names in old.items()} == before
    assert GOLDEN_DNS_ID      # the row's dns_id the golden cache uses
