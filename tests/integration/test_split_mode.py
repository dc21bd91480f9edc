"""Split mode on a live chassis: real ovn-northd and ovn-controller 23.03
programming br-int through pinctrl-daemon's proxy (ovn-controller runs
with OVS_RUNDIR=<sandbox>/split), the daemon answering what it owns.

One sandbox for the module (bench/topology.py's: netdev br-int, sw0-p1
as eth0 of a netns, sw1-p4 as eth1), the tests in order; the last ones
kill the daemon and ovs-vswitchd and print the recovery times.  Every
process is stopped by pid, also on failure (BenchSandbox.stop)."""

from __future__ import annotations

import os
import re
import signal
import time
from typing import Callable

import pytest

from bench.topology import BenchSandbox, missing_prerequisites
from testbed.daemon_under_test import daemon_unavailable
from testbed.netns import NetNs
from testbed.pcap import read_all
from testbed.processes import connectable, pid_alive
from tests.helpers import unavailable

pytestmark = pytest.mark.integration

ROLES = ("features", "ofctrl", "pinctrl")
SW1_HIDDEN = "10.1.0.99"          # on sw1-p4's netns, unknown to OVN


def wait_for(what: str, cond: Callable[[], object], timeout: float = 20.0,
             step: float = 0.05) -> float:
    """Poll cond() until truthy; seconds it took.  Fails naming 'what'."""
    t0 = time.monotonic()
    while not cond():
        if time.monotonic() - t0 > timeout:
            pytest.fail(f"{what}: not after {timeout} s")
        time.sleep(step)
    return time.monotonic() - t0


def wait_for_value(what: str, read: Callable[[], int],
                   timeout: float) -> int:
    """Poll read() until it is non-zero; that value."""
    value = 0

    def nonzero() -> bool:
        nonlocal value
        value = read()
        return value > 0
    wait_for(what, nonzero, timeout, step=0.2)
    return value


class SplitSandbox(BenchSandbox):
    """BenchSandbox whose ovn-controller reaches br-int only through
    pinctrl-daemon --proxy-rundir <dir>/split."""

    def __init__(self) -> None:
        super().__init__()
        self.proxy_dir = f"{self.dir}/split"
        # igmp passed explicitly: the opcode these tests see reach
        # ovn-controller, whatever this build implements.
        self.pinctrl = self.daemon(
            file_level="info",
            extra_args=["--proxy-rundir", self.proxy_dir,
                        "--pass-opcodes", "igmp"])

    def start_controller(self) -> None:
        if not self.pinctrl.alive():
            self.pinctrl.start(wait=True, timeout=20)
        saved = self.env
        self.env = dict(saved, OVS_RUNDIR=self.proxy_dir)
        try:
            super().start_controller()
        finally:
            self.env = saved

    # --- what the tests read -------------------------------------------------
    def controller_counter(self, name: str) -> int:
        out = self.ovn_appctl(self.controller_ctl, "coverage/read-counter",
                              name)
        return int(out.split()[0])

    def sessions(self) -> dict[str, dict[str, int]]:
        """The open proxied connections by role, with their counters, as
        pinctrl/show lists them."""
        out = {}
        for line in self.pinctrl.show().splitlines():
            m = re.match(r"\s+#\d+ (\w+) \(\d+ s\): packet-ins from the "
                         r"switch (\d+), dropped \(answered here\) (\d+), "
                         r"passed (\d+).*periodic packet-outs dropped (\d+)",
                         line)
            if m:
                out[m.group(1)] = dict(zip(
                    ("packet_ins", "dropped", "passed", "dropped_outs"),
                    map(int, m.groups()[1:])))
        return out

    def reconnected(self) -> bool:
        return sorted(self.sessions()) == list(ROLES)

    def add_netns(self, port: str, name: str, host_veth: str, mac: str,
                  move_from: str | None = None) -> NetNs:
        """A netns for 'port': a new veth pair, or (move_from) the
        existing interface eth1 moved out of that netns."""
        n = NetNs(port, name, host_veth, "eth1" if move_from else "eth0",
                  mac)
        if move_from is None:
            self._add_netns(n)
            return n
        self.namespaces[port] = n       # registered first: stop() cleans up
        self.run(["ip", "netns", "add", name])
        self.run(["ip", "netns", "exec", move_from, "ip", "link", "set",
                  n.ifname, "netns", name])
        for args in (("lo", "up"), (n.ifname, "up")):
            self.netns_exec("ip", "link", "set", *args, ns=port)
        return n

    def udhcpc(self, ns: str | None = None) -> str:
        """busybox udhcpc's output; fails the test without a lease."""
        cp = self.netns_exec("busybox", "udhcpc", "-i",
                             self._ns(ns).ifname, "-n", "-q", "-f", "-t",
                             "5", "-T", "1", check=False, timeout=30, ns=ns)
        assert cp.returncode == 0 and "lease of" in cp.stderr + cp.stdout, \
            cp.stdout + cp.stderr
        return cp.stderr + cp.stdout

    def kill9(self, pids: set[int]) -> None:
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        wait_for("killed", lambda: not any(pid_alive(p) for p in pids), 10)


@pytest.fixture(scope="module")
def split():
    why = missing_prerequisites() or daemon_unavailable()
    if why:
        unavailable(why)
    sb = SplitSandbox()
    try:
        sb.start()
        # Sandbox.start() only reaches here with everything up.
        wait_for("ovn-controller's three connections", sb.reconnected)
        yield sb
    finally:
        sb.stop()


def test_ovn_controller_programs_br_int_through_the_proxy(split):
    """Its three connections come through, by role; its flows are on
    br-int; OVS copies packet-ins only to the connection that asked
    (pinctrl's: a service connection with miss_send_len 0 gets none),
    so each packet-in is read twice (daemon, proxy), not four times."""
    flows = split.ofctl("dump-flows", "br-int").splitlines()
    assert len(flows) > 300
    assert "passed to ovn-controller: igmp(16)" in split.pinctrl.show()
    split.udhcpc()
    s = split.sessions()
    assert s["pinctrl"]["packet_ins"] >= 2
    assert s["ofctrl"]["packet_ins"] == s["features"]["packet_ins"] == 0


def test_owned_packet_ins_are_dropped_on_ovn_controllers_connection(split):
    """DHCP answered by the daemon; the copies OVS sent to
    ovn-controller's pinctrl connection were dropped, none passed."""
    before = split.sessions()["pinctrl"]
    out = split.udhcpc()
    assert "lease of 10.0.0.11 obtained from 10.0.0.1" in out
    after = split.sessions()["pinctrl"]
    assert after["dropped"] >= before["dropped"] + 2
    assert after["passed"] == before["passed"]


def test_ping_through_the_router_to_a_host_found_by_arp(split):
    """All five echoes answered (the first one waits in the daemon's
    buffer for the ARP reply), the MAC_Binding row the daemon wrote
    became ovn-controller's lr_in_arp_resolve flow, and later echoes are
    no longer punted."""
    ns1 = split.netns
    split.add_netns("sw1-p4", f"pinctrl-s1{split.tag}"[:15], split.p4_host,
                    "50:54:00:00:00:04", move_from=ns1)
    split.netns_exec("ip", "addr", "add", "10.0.0.11/24", "dev", "eth0")
    split.netns_exec("ip", "route", "add", "default", "via", "10.0.0.1")
    for a in ("10.1.0.11/16", f"{SW1_HIDDEN}/16"):
        split.netns_exec("ip", "addr", "add", a, "dev", "eth1", ns="sw1-p4")
    split.netns_exec("ip", "route", "add", "default", "via", "10.1.0.1",
                     ns="sw1-p4")
    cov0 = split.pinctrl.coverage()
    cp = split.netns_exec("busybox", "ping", "-c", "5", "-W", "3", SW1_HIDDEN,
                          check=False, timeout=30)
    assert "5 packets transmitted, 5 packets received" in cp.stdout, cp.stdout
    cov1 = split.pinctrl.coverage()
    assert cov1.get("pinctrl_pin_arp", 0) > cov0.get("pinctrl_pin_arp", 0)
    rows = split.sbctl("--bare", "--columns=ip,mac", "find", "MAC_Binding",
                       f'ip="{SW1_HIDDEN}"').split()
    assert rows == [SW1_HIDDEN, "50:54:00:00:00:04"], rows
    wait_for("the MAC_Binding's flow", lambda: any(
        "reg0=0xa010063" in f for f in split.ofctl(
            "dump-flows", "br-int").splitlines()))
    cp = split.netns_exec("busybox", "ping", "-c", "3", "-W", "3", SW1_HIDDEN,
                          check=False, timeout=30)
    assert "3 packets received" in cp.stdout, cp.stdout
    cov2 = split.pinctrl.coverage()
    assert cov2.get("pinctrl_pin_arp", 0) == cov1.get("pinctrl_pin_arp", 0)


def test_a_port_created_while_running_gets_flows_and_a_lease(split):
    n = split.add_netns("sw0-p9", f"pinctrl-s9{split.tag}"[:15],
                        f"p9{split.tag}"[:15], "50:54:00:00:00:09")
    dhcp = split.nbctl("--bare", "--columns=_uuid", "find", "DHCP_Options",
                       "cidr=10.0.0.0/24").strip()
    split.vsctl("add-port", "br-int", n.host_veth, "--", "set", "interface",
                n.host_veth, "external_ids:iface-id=sw0-p9")
    split.nbctl("lsp-add", "sw0", "sw0-p9", "--", "lsp-set-addresses",
                "sw0-p9", "50:54:00:00:00:09 10.0.0.19", "--",
                "lsp-set-dhcpv4-options", "sw0-p9", dhcp, wait="hv")
    assert "lease of 10.0.0.19 obtained" in split.udhcpc(ns="sw0-p9")


def test_a_passed_opcode_reaches_ovn_controller(split):
    """IGMP (passed) goes to ovn-controller's pinctrl, which
    snoops it into the Southbound IGMP_Group table, while none of the
    owned packet-ins of the tests before (DHCP, ARP, put_arp) reached it:
    its pinctrl_total_pin_pkts never exceeds what the proxy passed, and
    23.03's pinctrl logs no DHCPOFFER/DHCPACK of its own.

    ovn-controller's pinctrl thread adds its coverage counts to what
    read-counter sees only when it wakes at least 1 s after it last did,
    so the second group joins later to wake it."""
    split.nbctl("set", "logical_switch", "sw0",
                "other_config:mcast_snoop=true", wait="hv")
    for group in ("239.1.1.1", "239.1.1.2"):
        time.sleep(1.2)
        split.netns_exec("ip", "addr", "add", f"{group}/32", "dev", "eth0",
                         "autojoin")
        wait_for(f"IGMP_Group {group}", lambda: group in split.sbctl(
            "--bare", "--columns=address", "list", "IGMP_Group").split())
    s = split.sessions()["pinctrl"]
    assert s["passed"] >= 2 and s["dropped"] >= 4, s
    assert "igmp(16)" in split.pinctrl.show()
    # The daemon got its own copy and left it alone.
    assert split.pinctrl.coverage().get("pinctrl_passed_igmp", 0) >= 2
    counted = wait_for_value(
        "ovn-controller counting a passed packet-in",
        lambda: split.controller_counter("pinctrl_total_pin_pkts"), 10)
    assert counted <= split.sessions()["pinctrl"]["passed"]
    with open(f"{split.dir}/ovn-controller.log") as f:
        log = f.read()
    assert "DHCPOFFER" not in log and "DHCPACK" not in log


def test_periodic_garp_and_ra_are_sent_once(split):
    """A localnet switch with a VIF (gARPs) and a router port sending
    periodic RAs: ovn-controller's pinctrl tries too (the proxy drops its
    packet-outs), yet each announcement is on the wire once."""
    d = split.dir
    split.vsctl(
        "set", "open", ".", "external_ids:ovn-bridge-mappings=physnet1:br-phys",
        "--", "add-br", "br-phys", "--", "set", "bridge", "br-phys",
        "datapath-type=netdev", "other-config:disable-in-band=true",
        "--", "add-port", "br-phys", "gdphys", "--", "set", "interface",
        "gdphys", "type=dummy", f"options:tx_pcap={d}/gdphys-tx.pcap",
        f"options:rxq_pcap={d}/gdphys-rx.pcap",
        "--", "add-port", "br-int", "gdsw2", "--", "set", "interface", "gdsw2",
        "type=dummy", "external_ids:iface-id=sw2-p1",
        f"options:tx_pcap={d}/gdsw2-tx.pcap",
        f"options:rxq_pcap={d}/gdsw2-rx.pcap")
    outs0 = split.sessions()["pinctrl"]["dropped_outs"]
    split.nbctl(
        "ls-add", "sw2", "--", "lsp-add", "sw2", "sw2-p1",
        "--", "lsp-set-addresses", "sw2-p1", "50:54:00:00:00:21 10.2.0.11",
        "--", "lsp-add", "sw2", "ln-sw2", "--", "lsp-set-type", "ln-sw2",
        "localnet", "--", "lsp-set-addresses", "ln-sw2", "unknown",
        "--", "lsp-set-options", "ln-sw2", "network_name=physnet1",
        "--", "lrp-add", "lr0", "lr0-sw2", "00:00:00:00:ff:21", "10.2.0.1/24",
        "2001:db8:2::1/64",
        "--", "set", "logical_router_port", "lr0-sw2",
        "ipv6_ra_configs:address_mode=slaac",
        "ipv6_ra_configs:send_periodic=true",
        "ipv6_ra_configs:max_interval=4", "ipv6_ra_configs:min_interval=3",
        "--", "lsp-add", "sw2", "sw2-lr0", "--", "lsp-set-type", "sw2-lr0",
        "router", "--", "lsp-set-addresses", "sw2-lr0", "router",
        "--", "lsp-set-options", "sw2-lr0", "router-port=lr0-sw2", wait="hv")
    time.sleep(9)
    garps = [r.ts for r in read_all(f"{d}/gdphys-tx.pcap")
             if r.data[12:14] == b"\x08\x06" and r.data[28:32] == r.data[38:42]
             == bytes([10, 2, 0, 11])]
    ras = [r.ts for r in read_all(f"{d}/gdsw2-tx.pcap")
           if r.data[12:14] == b"\x86\xdd" and r.data[54] == 134]
    # 23.03's schedule: 1, 3, 7 s after the port appears; RA every 3-4 s.
    assert len(garps) == 3, garps
    assert 2 <= len(ras) <= 3, ras
    for ts in (garps, ras):
        gaps = [b - a for a, b in zip(ts, ts[1:])]
        assert all(g > 1.5 for g in gaps), gaps
    assert split.sessions()["pinctrl"]["dropped_outs"] >= outs0 + 4


def test_daemon_kill9_and_restart(split):
    """ovn-controller sees its connections end, reconnects by itself once
    the daemon listens again (its rconn back-off), and the chassis is
    whole again: --wait=hv completes, DHCP answers."""
    split.kill9(split.pinctrl.pids())
    t0 = time.monotonic()
    split.nbctl("set", "logical_switch", "sw0", "other_config:kill9=1")
    split.pinctrl.start(wait=True, timeout=20)
    t_up = time.monotonic() - t0
    t_conn = t_up + wait_for("ovn-controller reconnected", split.reconnected)
    t1 = time.monotonic()
    split.nbctl("sync", wait="hv", timeout=30)
    t_sync = t_conn + time.monotonic() - t1
    split.udhcpc()
    t_lease = time.monotonic() - t0
    print(f"\ndaemon kill -9 -> restarted and connected {t_up:.2f} s, "
          f"ovn-controller reconnected {t_conn:.2f} s, --wait=hv sync "
          f"{t_sync:.2f} s, DHCP lease {t_lease:.2f} s")


def test_ovn_controller_kill9_and_restart(split):
    """The proxy closes our side of its connections; the restarted
    ovn-controller connects again and catches up; the daemon never
    noticed."""
    n_connects = split.pinctrl.show().count("closed #")
    split.kill9({split.controller_pid()})
    split._procs.pop("ovn-controller", None)
    t0 = time.monotonic()
    wait_for("ovn-controller's connections closed",
             lambda: not split.sessions(), 10)
    split.start_controller()
    t_conn = wait_for("ovn-controller reconnected", split.reconnected, 30)
    split.nbctl("sync", wait="hv", timeout=30)
    t_sync = time.monotonic() - t0
    split.udhcpc()
    assert split.pinctrl.show().count("closed #") >= n_connects + 3
    print(f"\novn-controller kill -9 -> restarted and reconnected "
          f"{t_conn:.2f} s, --wait=hv sync {t_sync:.2f} s")


def test_ovs_vswitchd_kill9_and_restart(split):
    """The proxy closes ovn-controller's connections when the switch goes
    away; after the restart both reconnect, ovn-controller reinstalls its
    flows through the proxy and DHCP answers again."""
    n_flows = len(split.ofctl("dump-flows", "br-int").splitlines())
    split.kill_vswitchd()
    t0 = time.monotonic()
    wait_for("ovn-controller's connections closed",
             lambda: not split.sessions(), 10)
    split._start_vswitchd()
    wait_for("br-int.mgmt", lambda: connectable(split.mgmt), 20)
    t_up = time.monotonic() - t0
    t_conn = t_up + wait_for("ovn-controller reconnected", split.reconnected,
                             30)
    t_flows = t_up + wait_for("flows reinstalled", lambda: len(split.ofctl(
        "dump-flows", "br-int", check=False).splitlines()) >= n_flows, 30)
    split.pinctrl.wait_connected(20)
    split.udhcpc()
    t_lease = time.monotonic() - t0
    print(f"\novs-vswitchd kill -9 -> restarted {t_up:.2f} s, "
          f"ovn-controller reconnected {t_conn:.2f} s, flows back "
          f"{t_flows:.2f} s, DHCP lease {t_lease:.2f} s")
