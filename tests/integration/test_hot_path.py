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
