"""Issue 15: the main thread survives what the Southbound hands it (numbers
int() refuses, exception barriers per loop stage, bad rows skipped), the
Southbound probe interval, and the smaller defences (log rate limits, log
handles).  Pure: no server."""

from __future__ import annotations

import logging
import ssl

import pytest

from pinctrl.actions import dhcpv4
from pinctrl.actions.replies import LogLine, Reporter
from pinctrl.daemon import daemon
from pinctrl.db import dns_cache, idl_util, ra_plan
from pinctrl.support import barrier
from pinctrl.support.log import RateLimit
from tests.helpers import VlogRecorder, counter_delta

# More digits than Python 3.11's int() accepts (4300): int() raises.
HUGE = "9" * 5000


# --- numbers with thousands of digits in SB rows ---------------------------------

def test_ra_option_with_huge_number_is_ignored_like_any_bad_int():
    opts = {"ipv6_ra_max_interval": HUGE, "ipv6_ra_mtu": "-" + HUGE,
            "ipv6_ra_min_interval": "0" * 5000 + "5"}
    assert ra_plan.smap_get_int(opts, "ipv6_ra_max_interval", 600) == 600
    assert ra_plan.smap_get_int(opts, "ipv6_ra_mtu", 0) == 0
    # Leading zeros are not magnitude: still the C int 5.
    assert ra_plan.smap_get_int(opts, "ipv6_ra_min_interval", 1) == 5


@pytest.mark.parametrize("value, v4, v6", [
    # An octet or prefix with 5000 digits ends the scan, as any out-of-range
    # number does (OVN extract_ip_addresses): what came before is kept.
    ("10.0.0.1 1" + HUGE + ".0.0.1", ["0a000001"], []),
    ("10.0.0.1 10.0.0.2/" + HUGE, ["0a000001"], []),
    ("10.0.0.1 2001:db8::1/" + HUGE, ["0a000001"], []),
    ("10.0.0.1/-" + HUGE, [], []),
    # Leading zeros: still in range.
    ("0000000000000000000010.0.0.1/00000000000000000024", ["0a000001"], []),
    ("2001:db8::1/" + "0" * 5000 + "64", [], ["20010db8" + "0" * 23 + "1"]),
])
def test_dns_addresses_with_huge_numbers_are_parsed_not_raised(value, v4, v6):
    got4, got6 = dns_cache.parse_ip_addresses(value)
    assert [a.hex() for a in got4] == v4
    assert [a.hex() for a in got6] == v6


def test_dns_row_with_huge_number_leaves_the_other_rows_served():
    cache = dns_cache.build_dns_cache([
        ("1", {"bad.test": "1" + HUGE + ".0.0.1"}, [1]),
        ("2", {"vm1.test": "10.0.0.11"}, [1])])
    assert cache[1][b"vm1.test"].ipv4 == (bytes([10, 0, 0, 11]),)
    assert cache[1][b"bad.test"].ipv4 == ()


# --- DHCPDECLINE -----------------------------------------------------------------

def test_dhcpdecline_log_is_rate_limited():
    """A VM sending DECLINEs in a loop must not fill the disk: the decline
    site has a limit (23.03 logs every one)."""
    rec = VlogRecorder()
    reporter = Reporter(rec, site_limits=dhcpv4.SITE_LIMITS)
    line = LogLine("info", "DHCPDECLINE from 50:54:00:00:00:01, 10.0.0.11 "
                           "duplicated", "decline")
    for _ in range(1000):
        reporter.log(line, "pinctrl_dhcpv4_decline")
    rate, burst = dhcpv4.SITE_LIMITS["decline"] or (0, 0)
    assert 0 < len(rec.lines) <= burst + 1, len(rec.lines)


# --- the main loop's exception barriers ------------------------------------------

class Poller:
    def __init__(self) -> None:
        self.timers: list[int] = []

    def timer_wait_until(self, when: int) -> None:
        self.timers.append(when)


def test_barrier_counts_logs_and_backs_off_a_failing_stage(monkeypatch):
    rec = VlogRecorder()
    monkeypatch.setattr(barrier, "vlog", rec)
    monkeypatch.setattr(barrier, "_rl", RateLimit(1000, 1000))
    b = barrier.Barrier("test_stage")
    calls = []

    def boom() -> None:
        calls.append(1)
        raise ssl.SSLError("[SSL] PEM lib")

    ran, n = counter_delta("main_stage_error_test_stage",
                           lambda: b.run(1000, boom))
    assert (ran, n, len(calls)) == (False, 1, 1)
    assert rec.lines[0][0] == "ERR" and "SSLError" in rec.lines[0][1] \
        and "test_main_hardening.py" in rec.lines[0][1]
    # Skipped until the back-off passed: a persistent failure does not spin.
    assert b.backing_off(1099) and not b.run(1099, boom) and len(calls) == 1
    p = Poller()
    b.wait(p)
    assert p.timers == [1000 + barrier.BACKOFF_MIN_MS]
    b.run(1100, boom)                       # fails again: doubled
    assert b.backing_off(1100 + 199) and not b.backing_off(1100 + 200)
    for t in range(20):                     # ... up to the cap
        b.run(10_000 * (t + 1), boom)
    assert b.backing_off(200_000 + barrier.BACKOFF_MAX_MS - 1)
    assert not b.backing_off(200_000 + barrier.BACKOFF_MAX_MS)
    # A pass that works resets it.
    assert b.run(300_000, lambda: None) and b.n_errors == 22
    b.run(400_000, boom)
    assert not b.backing_off(400_000 + barrier.BACKOFF_MIN_MS)


def test_change_driven_stage_is_not_skipped_after_an_error():
    b = barrier.Barrier("test_change_stage", backoff=False)
    assert not b.run(5, lambda: 1 / 0)
    assert not b.backing_off(5) and b.run(5, lambda: None)
    assert b.last_error == "ZeroDivisionError: division by zero"


def test_bad_row_is_counted_and_named(monkeypatch):
    rec = VlogRecorder()
    monkeypatch.setattr(barrier, "vlog", rec)
    monkeypatch.setattr(barrier, "_rl_row", RateLimit(1000, 1000))
    try:
        int(HUGE)
    except ValueError as e:
        _, n = counter_delta("sb_bad_row",
                             lambda: barrier.bad_row("DNS", "uuid-1", e))
    assert n == 1
    assert rec.lines[0][0] == "WARN" and "DNS row uuid-1 skipped" in \
        rec.lines[0][1]


def test_ra_plan_skips_a_row_that_raises_and_serves_the_others():
    class Pb:
        def __init__(self, name: str, options) -> None:
            self.logical_port = name
            self.options = options

    class Explodes(dict):
        def get(self, *a):
            raise RuntimeError("bad row")

    class Pbs:
        rows = [Pb("bad", Explodes()), Pb("good", {})]

        def peer(self, pb):
            return None

    _, n = counter_delta("sb_bad_row", lambda: ra_plan.prepare_ras(Pbs()))
    assert n == 1


# --- ovn-remote-probe-interval ---------------------------------------------------

@pytest.mark.parametrize("ext, remote, want", [
    ({}, "tcp:10.0.0.1:6642", 5000),                # ovn-controller default
    ({}, "ssl:10.0.0.1:6642,ssl:10.0.0.2:6642", 5000),
    ({}, "unix:/run/ovn/ovnsb_db.sock", 0),         # no probes needed
    ({"ovn-remote-probe-interval": "30000"}, "tcp:1.1.1.1:6642", 30000),
    ({"ovn-remote-probe-interval": "0"}, "tcp:1.1.1.1:6642", 0),
    ({"ovn-remote-probe-interval": "1000"}, "unix:/x.sock", 1000),
    ({"ovn-remote-probe-interval": "x"}, "tcp:1.1.1.1:6642", 5000),
    ({"ovn-remote-probe-interval": HUGE}, "tcp:1.1.1.1:6642", 5000),
    ({"ovn-remote-probe-interval": "3000",           # per chassis wins
      "ovn-remote-probe-interval-hv1": "7000"}, "tcp:1.1.1.1:6642", 7000),
    ({"ovn-remote-probe-interval-hv2": "7000"}, "tcp:1.1.1.1:6642", 5000),
])
def test_sb_probe_interval_as_ovn_controller(ext, remote, want):
    assert idl_util.sb_probe_interval(ext, "hv1", remote) == want


SCHEMA = {"name": "T", "version": "1.0.0", "tables": {
    "T": {"columns": {"c": {"type": "integer"}}}}}


def test_probe_interval_is_applied_to_the_idl_session():
    idl = idl_util.make_idl("unix:/nonexistent/sb.sock", SCHEMA,
                            {"T": ["c"]})
    try:
        fsm = idl._session.reconnect
        assert fsm.get_probe_interval() == 0        # python-ovs: unix
        assert idl_util.set_probe_interval(idl, 3000)
        assert fsm.get_probe_interval() == 3000
        assert not idl_util.set_probe_interval(idl, 3000)
        assert idl_util.set_probe_interval(idl, 10)
        assert fsm.get_probe_interval() == 1000     # at least 1 s, as OVS
        assert not idl_util.set_probe_interval(idl, 999)
        assert idl_util.set_probe_interval(idl, 0)
        assert fsm.get_probe_interval() == 0
    finally:
        idl.close()


def test_schema_fetch_never_blocks_on_an_unreachable_remote():
    f = idl_util.SchemaFetch("unix:/nonexistent/sb.sock,tcp:127.0.0.1:1",
                             "OVN_Southbound")
    try:
        for _ in range(5):
            assert f.run() is None
        assert not f.session.is_connected()
    finally:
        f.close()


# --- vlog/reopen -----------------------------------------------------------------

def test_log_handler_taken_off_by_vlog_reopen_is_closed(tmp_path):
    file_logger = logging.getLogger("file")
    daemon.close_dropped_log_handlers()
    daemon.close_dropped_log_handlers()         # idempotent
    h = logging.FileHandler(tmp_path / "x.log")
    file_logger.addHandler(h)
    assert h.stream is not None
    file_logger.removeHandler(h)               # what vlog/reopen does
    assert h.stream is None and h not in file_logger.handlers


def test_log_handler_closed_even_when_its_disk_is_full(tmp_path):
    daemon.close_dropped_log_handlers()
    h = logging.FileHandler(tmp_path / "y.log")
    raw = h.stream

    class FullDisk:
        def write(self, text):
            pass

        def flush(self):
            raise OSError(28, "No space left on device")

        def close(self):
            raw.close()
            self.flush()

    h.stream = FullDisk()
    logging.getLogger("file").addHandler(h)
    logging.getLogger("file").removeHandler(h)      # must not raise
    assert raw.closed


def test_an_appctl_command_that_raises_answers_an_error():
    """Before issue 15 it propagated out of unixctl.run() and ended the
    process; with the loop's barrier alone, the client would never get an
    answer."""
    import ovs.unixctl

    def boom(conn, argv, aux):
        raise OSError(30, "Read-only file system")

    class Conn:
        _request_id = 7
        errors: list[str] = []

        def reply_error(self, text):
            self.errors.append(text)
            self._request_id = None

    # python-ovs's registry is global: leave it as found.
    ovs.unixctl.command_register("test/boom-h11", "", 0, 0, boom, None)
    try:
        daemon.guard_unixctl_commands()
        daemon.guard_unixctl_commands()         # idempotent
        conn = Conn()
        cmd = ovs.unixctl.commands["test/boom-h11"]
        _, n = counter_delta("unixctl_command_error",
                             lambda: cmd.callback(conn, [], None))
    finally:
        del ovs.unixctl.commands["test/boom-h11"]
    assert n == 1 and conn.errors == [
        "test/boom-h11 failed: OSError: [Errno 30] Read-only file system"]
