"""ovs-appctl commands through the real ovs-appctl binary, against a daemon
started the way the packaged service starts it (no --unixctl: the control
socket is found through the pidfile, `ovs-appctl -t pinctrl-daemon`)."""

import os
import re
import time

import pytest

from testbed.daemon_under_test import Daemon
from testbed.golden import load_exchange, replay_exchange

pytestmark = pytest.mark.integration


class ServiceLikeDaemon(Daemon):
    """The harness daemon minus --unixctl; its pidfile in the rundir."""

    def command(self):
        cmd = super().command()
        i = cmd.index("--unixctl")
        del cmd[i:i + 2]
        i = cmd.index("--pidfile")
        cmd[i + 1:i + 2] = []            # bare --pidfile: DIR/pinctrl-daemon.pid
        return cmd

    def start(self, wait=True, timeout=15.0):
        super().start(wait=False)
        self.ctl = f"{self.sb.dir}/pinctrl-daemon.{self.popen.pid}.ctl"
        if wait:
            self.connect_time = self.wait_connected(timeout)
        return self


@pytest.fixture(scope="module")
def daemon(shared_sandbox):
    d = ServiceLikeDaemon(shared_sandbox)
    shared_sandbox._daemons.append(d)        # stopped with the sandbox too
    try:
        d.start()
        yield d
    finally:
        d.stop()


def appctl(d, *args, check=True):
    """ovs-appctl -t pinctrl-daemon ... (OVS_RUNDIR is the sandbox dir)."""
    return d.sb.run(["ovs-appctl", "-t", "pinctrl-daemon", *args],
                    check=check, timeout=10)


def test_show(daemon):
    out = appctl(daemon, "pinctrl/show").stdout
    fields = dict(l.split(": ", 1) for l in out.splitlines())
    assert fields["Chassis"] == "hv1"
    assert fields["Bridge"] == "br-int"
    assert re.fullmatch(r"connected \(unix:.*/br-int\.mgmt, OpenFlow 1\.5\)",
                        fields["OpenFlow"]), out
    assert fields["Southbound"].startswith("connected (unix:"), out
    assert fields["Southbound server"].endswith("(standalone)"), out
    assert fields["Southbound rows"] == (
        "5 datapaths, 17 port bindings, 1 DNS rows"), out
    assert "dns_cache 1" in fields["Caches"], out
    assert "dns_cache names 4" in fields["Caches"], out
    assert fields["Handler thread"].startswith("alive"), out
    assert re.fullmatch(r"main: alive \(.*\), ovn_pinctrl: alive \(.*\)",
                        fields["Threads"]), out
    assert fields["systemd"] == "not under systemd"


def test_dns_cache(daemon):
    out = appctl(daemon, "pinctrl/dns-cache").stdout
    assert out.startswith("datapath 1 (4 names):\n"), out
    assert "  vm1.ovn.test -> 10.0.0.11 2001:db8::11\n" in out
    assert "  11.0.0.10.in-addr.arpa -> vm1.ovn.test\n" in out


def test_feature_commands(daemon):
    """The feature modules' own commands, through the real ovs-appctl."""
    out = appctl(daemon, "pinctrl/garp").stdout
    # hv1 announces public-p5 and lr0's NAT/router addresses (the golden
    # SB, br-int's interfaces and ovn-bridge-mappings of the sandbox).
    for name in ("public-p5: 50:54:00:00:00:05 gARP 172.16.0.50",
                 "public-lr0-172.16.0.1:", "public-lr0-172.16.0.100:",
                 "public-lr0-172.16.0.110:"):
        assert name in out, out
    out = appctl(daemon, "pinctrl/ipv6-ra").stdout
    assert "lr0-sw1: every 3-4 s" in out, out
    out = appctl(daemon, "pinctrl/buffered-packets").stdout
    assert out.startswith("next hops awaited: 0, frames buffered: 0"), out
    out = appctl(daemon, "pinctrl/mac-bindings").stdout
    assert "recently written (logical_port ip mac):" in out, out
    # The binding the local gARP implies (lr0-public 172.16.0.50) already
    # exists: found once the local-datapath conditions were acked, so no
    # insert conflicted and nothing had to be retried.  The write plan may
    # still be pending right after start-up: wait for the queue to drain.
    deadline = time.monotonic() + 10
    while "pending: 0, in flight: 0" not in out and \
            time.monotonic() < deadline:
        time.sleep(0.1)
        out = appctl(daemon, "pinctrl/mac-bindings").stdout
    assert "pending: 0, in flight: 0" in out, out
    cov = appctl(daemon, "coverage/show").stdout
    assert "sb_txn_retry" not in cov, cov


def test_memory_show(daemon):
    out = appctl(daemon, "memory/show").stdout
    assert out.endswith("\n") and out.count("\n") == 1
    counts = dict(kv.split(":") for kv in out.split())
    assert int(counts["idl-cells-OVN_Southbound"]) > 0
    assert int(counts["idl-cells-Open_vSwitch"]) > 0
    assert counts["dns-cache"] == "1" and counts["dns-cache-names"] == "4"
    assert 1000 < int(counts["rss-kB"]) <= int(counts["peak-rss-kB"])


def test_coverage_counts_a_dhcp_exchange(daemon):
    before = appctl(daemon, "coverage/show").stdout
    replay_exchange(daemon.sb, load_exchange("dhcpv4_discover_offer"))
    after = appctl(daemon, "coverage/show").stdout

    def total(text, name):
        m = re.search(rf"^{name}\s+total: (\d+)$", text, re.M)
        return int(m.group(1)) if m else 0
    assert total(after, "pinctrl_pin_put_dhcp_opts") == \
        total(before, "pinctrl_pin_put_dhcp_opts") + 1, after
    assert total(after, "pinctrl_total_pin_pkts") > 0


def test_vlog_list_and_set(daemon):
    assert re.search(r"^keepalive\s", appctl(daemon, "vlog/list").stdout,
                     re.M)
    appctl(daemon, "vlog/set", "keepalive:file:warn")
    line = re.search(r"^keepalive\s.*$", appctl(daemon, "vlog/list").stdout,
                     re.M).group(0)
    assert line.split()[-1] == "warn", line
    appctl(daemon, "vlog/set", "keepalive:file:dbg")


def test_unknown_command_and_bad_arguments_are_errors(daemon):
    cp = appctl(daemon, "pinctrl/no-such-command", check=False)
    assert cp.returncode != 0 and "is not a valid command" in cp.stderr
    cp = appctl(daemon, "pinctrl/show", "extra", check=False)
    assert cp.returncode != 0
    # Test hooks exist only with PINCTRL_TEST_HOOKS=1.
    cp = appctl(daemon, "pinctrl/test-stall-handler", "1", check=False)
    assert cp.returncode != 0
    assert appctl(daemon, "version").stdout.startswith("pinctrl-daemon")
    listed = appctl(daemon, "help").stdout
    for cmd in ("pinctrl/show", "pinctrl/dns-cache", "memory/show",
                "coverage/show", "vlog/set", "exit"):
        assert cmd in listed, listed
    assert daemon.alive()


def test_exit_removes_the_pidfile(shared_sandbox, daemon):
    """Last: the operator's `ovs-appctl -t pinctrl-daemon exit`."""
    pidfile = f"{shared_sandbox.dir}/pinctrl-daemon.pid"
    with open(pidfile) as f:
        assert int(f.read()) == daemon.popen.pid
    appctl(daemon, "exit")
    assert daemon.popen.wait(timeout=10) == 0
    deadline = time.monotonic() + 2
    while time.monotonic() < deadline and os.path.exists(pidfile):
        time.sleep(0.05)
    assert not os.path.exists(pidfile)
