"""Shared fixtures for the integration tests (real OVS sandbox + the daemon).

Rule: when the sandbox (or the daemon) cannot start, the test is skipped
locally but FAILS when CI=true; integration coverage must never silently
disappear in CI.

Fixtures:
  sandbox          fresh dummy-datapath Sandbox per test
  netdev_sandbox   fresh netdev-datapath Sandbox with sw0-p1 as a veth in a netns
  daemon           pinctrl-daemon started against `sandbox`, connected
  netdev_daemon    the same against `netdev_sandbox`
  shared_sandbox / shared_daemon   the same, one per test module (for long
                   parametrized golden replays; tests must not leave state)
  shared_netdev_sandbox / shared_netdev_daemon   netdev, one per test module;
                   the module's NETNS_PORTS (default ("gdvif1",)) names the
                   dummy ports replaced by network namespaces
  sb_server        the golden Southbound alone (testbed.ovs_sandbox.SbServer)
                   in the test's tmp_path; no root needed
  sync             an SbSync (main thread's SB side) on sb_server, after its
                   initial contents arrived
On failure, the tails of the sandbox/daemon logs are attached to the report.

These fixtures live here, not in tests/conftest.py, so that a test under
tests/unit/ cannot ask for a server: unit tests stay pure.
"""

from __future__ import annotations

import pytest

from pinctrl.sb_sync import SbSync
from pinctrl.shared.state import SharedState
from testbed.bfd_peer import resolve_bfd_peer
from testbed.daemon_under_test import Daemon, daemon_unavailable
from testbed.ovs_sandbox import (
    Sandbox,
    SbServer,
    missing_prerequisites,
    sb_schema,
    sb_server_unavailable,
    step_until_change,
)
from tests.helpers import unavailable


def _make_sandbox(datapath_type: str, **kw) -> Sandbox:
    reason = missing_prerequisites(netdev=datapath_type == "netdev")
    if reason:
        unavailable(reason)
    sb = Sandbox(datapath_type=datapath_type, **kw)
    try:
        sb.start()
    except Exception as e:
        logs = sb.log_tails(20)
        sb.stop()
        unavailable(f"sandbox ({datapath_type}) could not start: {e}\n{logs}")
    # The recording's scenarios ran with lr0's BFD peer resolved: no
    # packet-in for each BFD packet (testbed/bfd_peer.py).
    resolve_bfd_peer(sb)
    return sb


def _make_daemon(sb: Sandbox, **kw) -> Daemon:
    reason = daemon_unavailable()
    if reason:
        unavailable(f"pinctrl-daemon not runnable: {reason}")
    d = sb.daemon(**kw)
    try:
        d.start(wait=True, timeout=15)
    except Exception as e:
        # Not an environment problem: the daemon itself failed; always an error.
        d.stop()
        pytest.fail(f"pinctrl-daemon did not come up: {e}\n{sb.log_tails(30)}", pytrace=False)
    return d


def _until_teardown(obj):
    """Yield `obj` (a Sandbox or Daemon) to the tests, stop it afterwards,
    also when they failed."""
    try:
        yield obj
    finally:
        obj.stop()


@pytest.fixture
def sandbox():
    yield from _until_teardown(_make_sandbox("dummy"))


@pytest.fixture
def netdev_sandbox():
    yield from _until_teardown(_make_sandbox("netdev"))


@pytest.fixture
def daemon(sandbox):
    yield from _until_teardown(_make_daemon(sandbox))


@pytest.fixture
def netdev_daemon(netdev_sandbox):
    yield from _until_teardown(_make_daemon(netdev_sandbox))


@pytest.fixture(scope="module")
def shared_sandbox():
    yield from _until_teardown(_make_sandbox("dummy"))


@pytest.fixture(scope="module")
def shared_daemon(shared_sandbox):
    yield from _until_teardown(_make_daemon(shared_sandbox))


@pytest.fixture(scope="module")
def shared_netdev_sandbox(request):
    ports = getattr(request.module, "NETNS_PORTS", ("gdvif1",))
    yield from _until_teardown(_make_sandbox("netdev", netns_ports=ports))


@pytest.fixture(scope="module")
def shared_netdev_daemon(shared_netdev_sandbox):
    yield from _until_teardown(_make_daemon(shared_netdev_sandbox))


@pytest.fixture
def sb_server(tmp_path):
    reason = sb_server_unavailable()
    if reason:
        unavailable(reason)
    srv = SbServer(tmp_path)
    try:
        srv.start()
    except Exception as e:
        srv.stop()
        unavailable(f"SB ovsdb-server could not start: {e}")
    yield from _until_teardown(srv)


@pytest.fixture
def sync(sb_server):
    shared = SharedState()
    s = SbSync(shared, sb_server.remote, sb_schema())
    try:
        step_until_change(s)                # initial contents
        yield s
    finally:
        s.close()
        shared.handler_seq.close()
        shared.main_seq.close()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """Attach log tails of every sandbox the failing test used: directly,
    through a Daemon (or any fixture value with .sb), or in a tuple (the
    directory is removed at teardown, so this is the last chance to see
    them)."""
    outcome = yield
    rep = outcome.get_result()
    if not rep.failed or rep.when not in ("setup", "call"):
        return
    seen = set()
    values = []
    for value in getattr(item, "funcargs", {}).values():
        # Module fixtures often hand out (sandbox, daemon, ...) tuples.
        values += value if isinstance(value, tuple) else [value]
    for value in values:
        sb = getattr(value, "sb", value)     # a Daemon, or a helper holding one
        if isinstance(sb, Sandbox) and id(sb) not in seen:
            seen.add(id(sb))
            try:
                rep.sections.append((f"sandbox logs ({sb.dir})", sb.log_tails(40)))
            except Exception as e:  # never hide the real failure
                rep.sections.append(("sandbox logs", f"could not read logs: {e!r}"))
