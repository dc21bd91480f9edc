"""The running daemon's hot path (issue 18), against real ovs-vswitchd:

* recorded exchanges answered through the reply templates, on the wire,
  byte-identical to 23.03 (the fast path's hit counters move);
* no eventlet in the daemon: python-ovs's poller would import it (os-ken
  depends on it, so it is installed); greenlet's extension, which eventlet
  loads, is not mapped, and the log has no eventlet deprecation banner;
* pinctrl/show names the JSON parser of the IDLs.
"""

from __future__ import annotations

import re

import pytest

from pinctrl.support import runtime
from testbed.golden import load_exchange, replay_exchange

pytestmark = pytest.mark.integration


def test_templates_answer_on_the_wire(daemon, sandbox):
    for name in ("dhcpv4_discover_offer", "dns_a_hit"):
        for _ in range(3):
            r = replay_exchange(sandbox, load_exchange(name))
            assert r.ok, r.report()
    cov = daemon.coverage()
    assert cov.get("pinctrl_fast_path_hit_dhcpv4", 0) >= 2, cov
    assert cov.get("pinctrl_fast_path_hit_dns", 0) >= 2, cov


def test_daemon_runs_without_eventlet(daemon, sandbox):
    (pid,) = {daemon.popen.pid}
    with open(f"/proc/{pid}/maps") as f:
        maps = f.read()
    assert "greenlet" not in maps and "eventlet" not in maps
    with open(f"{sandbox.dir}/pinctrl-daemon.stderr", errors="replace") as f:
        assert "Eventlet is deprecated" not in f.read()


def test_show_names_the_json_parser(daemon):
    m = re.search(r"^OVSDB JSON parser: (.*)$", daemon.show(), re.M)
    assert m is not None
    assert m.group(1) in (runtime.C_PARSER, runtime.PY_PARSER)


def test_buffered_next_hops_looked_up_incrementally(sb_server, monkeypatch):
    """The main thread looks up only the next hops it has not looked up
    yet (each ARP-punted packet to a new next hop used to redo them all),
    every one again when MAC_Binding changed, and a bound one again when
    it comes back (its frames left, the handler buffered behind the same
    neighbour again)."""
    from ovs.timeval import msec

    from pinctrl.db.writers import mac_binding
    from tests.integration.test_sb_writers import (
        GW_IP, HV1, LR0_DP, LR0_PUBLIC, MAC_A, _sync, wait_writes_ready)
    from testbed.ovs_sandbox import step_until_change

    looked_up: list[set] = []
    real = mac_binding.bound_next_hops

    def spy(keys, idl, ctx):
        looked_up.append(set(keys))
        return real(keys, idl, ctx)

    monkeypatch.setattr(mac_binding, "bound_next_hops", spy)
    sync = _sync(sb_server.remote)
    try:
        step_until_change(sync, chassis=HV1)
        wait_writes_ready(sync)
        bound = (LR0_DP, LR0_PUBLIC, GW_IP)
        others = [(LR0_DP, LR0_PUBLIC, bytes(12) + bytes((10, 9, 0, i)))
                  for i in range(3)]
        keys = frozenset(others[:2])
        sync.shared.set_buffered_keys(keys)
        sync.run(msec(), HV1)
        assert looked_up[-1] == set(keys)
        sync.shared.set_buffered_keys(keys | {others[2]})
        sync.run(msec(), HV1)
        assert looked_up[-1] == {others[2]}             # only the new one
        sb_server.sbctl("create", "MAC_Binding", "logical_port=lr0-public",
                        'ip="172.16.0.254"', 'mac="00:00:00:00:fe:fe"',
                        f"datapath={sb_server.dp_uuid(LR0_DP)}")
        sync.shared.set_buffered_keys(frozenset(others) | {bound})
        step_until_change(sync, chassis=HV1)
        assert looked_up[-1] == set(others) | {bound}   # MAC_Binding changed
        assert sync.shared.take_resolved_neighbors() == [((bound,), MAC_A)]
        n = len(looked_up)
        sync.shared.set_buffered_keys(frozenset(others) | {bound})
        sync.run(msec(), HV1)                           # same set: nothing
        assert len(looked_up) == n
        sync.shared.set_buffered_keys(frozenset(others))
        sync.run(msec(), HV1)
        sync.shared.set_buffered_keys(frozenset(others) | {bound})
        sync.run(msec(), HV1)                           # buffered again
        assert looked_up[-1] == {bound}
        assert sync.shared.take_resolved_neighbors() == [((bound,), MAC_A)]
    finally:
        sync.close()
