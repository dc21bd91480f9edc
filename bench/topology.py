"""The benchmark sandbox: real OVS (netdev datapath) + OVN NB/SB + northd +
ovn-controller, with the load generator's two interfaces in a netns.

Built on testbed.ovs_sandbox.Sandbox (process spawning by pid, command log,
netns set-up, stop) with its own start():

    netns pinctrl-<tag>: eth0 (sw0-p1, 50:54:00:00:00:01) --veth-- br-int ofport 1
                         eth1 (sw1-p4, 50:54:00:00:00:04) --veth-- br-int ofport 4

    sw0 10.0.0.0/24   sw0-p1 10.0.0.11, DHCPv4 options, DNS vm1/vm2.ovn.test
    lr0               lr0-sw0 00:00:00:00:ff:01 10.0.0.1/24, lr0-sw1 00:00:00:00:ff:02 10.1.0.1/16
    sw1 10.1.0.0/16   sw1-p4 10.1.0.11 (next hops 10.1.128.0/17 are unresolved)
    lr1               lr1-sw0 00:00:00:00:ff:04 10.0.0.254/24, no gateway port:
                      TCP to it is answered with tcp_reset

No IP address is configured in the netns: its kernel ignores the traffic,
only the generator's raw sockets see it.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time

from testbed.ovs_sandbox import SB_SCHEMA, VSWITCH_SCHEMA, Sandbox, SandboxError
from testbed.processes import connectable

NB_SCHEMA = "/usr/share/ovn/ovn-nb.ovsschema"
OVN_BINARIES = ("ovn-northd", "ovn-controller", "ovn-nbctl", "ovn-appctl", "ovsdb-tool")

# NB commands after `init`: one ovn-nbctl call each (DHCP_Options by @name).
TOPOLOGY = [
    ["ls-add", "sw0", "--", "ls-add", "sw1", "--", "lr-add", "lr0", "--", "lr-add", "lr1",
     "--", "lsp-add", "sw0", "sw0-p1", "--", "lsp-set-addresses", "sw0-p1",
     "50:54:00:00:00:01 10.0.0.11",
     "--", "lsp-add", "sw1", "sw1-p4", "--", "lsp-set-addresses", "sw1-p4",
     "50:54:00:00:00:04 10.1.0.11",
     "--", "lrp-add", "lr0", "lr0-sw0", "00:00:00:00:ff:01", "10.0.0.1/24",
     "--", "lsp-add", "sw0", "sw0-lr0", "--", "lsp-set-type", "sw0-lr0", "router",
     "--", "lsp-set-addresses", "sw0-lr0", "router",
     "--", "lsp-set-options", "sw0-lr0", "router-port=lr0-sw0",
     "--", "lrp-add", "lr0", "lr0-sw1", "00:00:00:00:ff:02", "10.1.0.1/16",
     "--", "lsp-add", "sw1", "sw1-lr0", "--", "lsp-set-type", "sw1-lr0", "router",
     "--", "lsp-set-addresses", "sw1-lr0", "router",
     "--", "lsp-set-options", "sw1-lr0", "router-port=lr0-sw1",
     "--", "lrp-add", "lr1", "lr1-sw0", "00:00:00:00:ff:04", "10.0.0.254/24",
     "--", "lsp-add", "sw0", "sw0-lr1", "--", "lsp-set-type", "sw0-lr1", "router",
     "--", "lsp-set-addresses", "sw0-lr1", "router",
     "--", "lsp-set-options", "sw0-lr1", "router-port=lr1-sw0"],
    ["--id=@d", "create", "DHCP_Options", "cidr=10.0.0.0/24",
     "options:server_id=10.0.0.1", "options:server_mac=00:00:00:00:ff:01",
     "options:lease_time=3600", "options:router=10.0.0.1",
     'options:dns_server={10.0.0.1, 8.8.8.8}', 'options:domain_name="\\"ovn.test\\""',
     "options:mtu=1400",
     "--", "set", "Logical_Switch_Port", "sw0-p1", "dhcpv4_options=@d"],
    ["--id=@n", "create", "DNS", 'records:vm1.ovn.test="10.0.0.11"',
     'records:vm2.ovn.test="10.0.0.12"', "external_ids:name=bench-dns",
     "--", "add", "Logical_Switch", "sw0", "dns_records", "@n"],
]


def missing_prerequisites() -> str | None:
    """Why the bench sandbox cannot run here, or None."""
    import shutil

    from testbed.ovs_sandbox import missing_prerequisites as base
    why = base(netdev=True)
    if why:
        return why
    missing = [b for b in OVN_BINARIES if shutil.which(b) is None]
    if missing:
        return "missing binaries: " + " ".join(missing)
    if not os.path.exists(NB_SCHEMA):
        return f"missing {NB_SCHEMA}"
    return None


class BenchSandbox(Sandbox):
    """See the module docstring.  The ctor/stop/run/vsctl/... of Sandbox;
    start() builds the OVN stack instead of loading the recorded flows."""

    def __init__(self, keep: bool | None = None) -> None:
        super().__init__(datapath_type="netdev", install_flows=False, keep=keep)
        self.nb_db = f"unix:{self.dir}/ovnnb_db.sock"
        self.controller_ctl = ""
        self.p4_host: str | None = None
        self.p4_ifname = "eth1"
        self.ifnames = {"p1": self.ns_ifname, "p4": self.p4_ifname}

    # -------------------------------------------------------------- commands
    def nbctl(self, *args: str, wait: str | None = None, timeout: float = 60) -> str:
        w = [f"--wait={wait}"] if wait else []
        return self.run(["ovn-nbctl", f"--db={self.nb_db}", f"--timeout={int(timeout)}", *w,
                         *args], timeout=timeout + 5).stdout

    def ovn_appctl(self, target: str, *args: str, check: bool = True) -> str:
        return self.run(["ovn-appctl", "-t", target, *args], check=check).stdout

    # -------------------------------------------------------------- start
    def start(self) -> BenchSandbox:
        t0 = time.monotonic()
        d = self.dir
        self._setup_netns()
        self.p4_host = f"pc4{self.tag}"[:15]
        self.run(["ip", "link", "add", self.p4_host, "type", "veth", "peer", "name",
                  self.p4_ifname, "netns", self.netns])
        self.run(["sysctl", "-qw", f"net.ipv6.conf.{self.p4_host}.disable_ipv6=1"], check=False)
        self.netns_exec("ip", "link", "set", self.p4_ifname, "address", "50:54:00:00:00:04")
        self.netns_exec("ethtool", "-K", self.p4_ifname, "tx", "off")
        self.netns_exec("ip", "link", "set", self.p4_ifname, "up")
        self.run(["ip", "link", "set", self.p4_host, "up"])

        for name, schema in (("conf", VSWITCH_SCHEMA), ("ovnnb", NB_SCHEMA),
                             ("ovnsb", SB_SCHEMA)):
            self.run(["ovsdb-tool", "create", f"{d}/{name}.db", schema])
        self._ovsdb_server("ovsdb-server", f"{d}/conf.db", f"{d}/db.sock")
        self._ovsdb_server("ovnnb_db", f"{d}/ovnnb.db", f"{d}/ovnnb_db.sock")
        self._ovsdb_server("ovnsb_db", f"{d}/ovnsb.db", f"{d}/ovnsb_db.sock")
        self.vsctl("--no-wait", "init")
        self.nbctl("init")
        self.run(["ovn-sbctl", f"--db={self.sb_db}", "init"])
        self._spawn("ovn-northd", [
            "ovn-northd", "--no-chdir", f"--pidfile={d}/ovn-northd.pid",
            f"--log-file={d}/ovn-northd.log", "-vconsole:off",
            f"--unixctl={d}/ovn-northd.ctl", f"--ovnnb-db={self.nb_db}",
            f"--ovnsb-db={self.sb_db}"],
            ready=lambda: connectable(f"{d}/ovn-northd.ctl"), pidfile=f"{d}/ovn-northd.pid")

        self.vsctl("--no-wait", "set", "open", ".", "external_ids:system-id=hv1",
                   f"external_ids:ovn-remote={self.sb_db}",
                   "external_ids:ovn-encap-type=geneve", "external_ids:ovn-encap-ip=127.0.0.1")
        self._start_vswitchd()
        self.vsctl("add-br", "br-int", "--", "set", "bridge", "br-int", "fail-mode=secure",
                   "other-config:disable-in-band=true", "datapath-type=netdev",
                   "--", "add-port", "br-int", self.host_veth, "--", "set", "interface",
                   self.host_veth, "ofport_request=1", "external_ids:iface-id=sw0-p1",
                   "--", "add-port", "br-int", self.p4_host, "--", "set", "interface",
                   self.p4_host, "ofport_request=4", "external_ids:iface-id=sw1-p4")
        for cmd in TOPOLOGY:
            self.nbctl(*cmd)
        self.start_controller()
        self.nbctl("sync", wait="hv", timeout=60)
        self.wait_ports_up()
        self.started = True
        self.timings["start"] = time.monotonic() - t0
        return self

    def start_controller(self) -> None:
        d = self.dir
        # 23.03's ovn-controller has no --unixctl: <OVN_RUNDIR>/ovn-controller.<pid>.ctl
        proc = self._spawn("ovn-controller", [
            "ovn-controller", "--no-chdir", f"--pidfile={d}/ovn-controller.pid",
            f"--log-file={d}/ovn-controller.log", "-vconsole:off", self.db],
            ready=lambda: any(connectable(f"{d}/ovn-controller.{p}.ctl")
                              for p in self._procs["ovn-controller"].pids()),
            pidfile=f"{d}/ovn-controller.pid")
        self.controller_ctl = f"{d}/ovn-controller.{proc.popen.pid}.ctl"

    def wait_ports_up(self, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while True:
            up = self.nbctl("--bare", "--columns=up", "list", "Logical_Switch_Port",
                            "sw0-p1", "sw1-p4").split()
            if up.count("true") == 2:
                return
            if time.monotonic() > deadline:
                raise SandboxError(f"sw0-p1/sw1-p4 not up after {timeout}s: {up}")
            time.sleep(0.2)

    def controller_pid(self) -> int | None:
        proc = self._procs.get("ovn-controller")
        return proc.popen.pid if proc is not None and proc.alive() else None

    def controller_exit_restart(self, timeout: float = 10.0) -> None:
        """`ovn-appctl exit --restart`: ovn-controller leaves br-int's flows
        and its SB chassis in place (take-over mode)."""
        proc = self._procs.get("ovn-controller")
        if proc is None:
            return
        self.ovn_appctl(self.controller_ctl, "exit", "--restart")
        try:
            proc.popen.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill(signal.SIGTERM)
        self._procs.pop("ovn-controller", None)

    def ofport(self, which: str) -> int:
        return 1 if which == "p1" else 4

    def add_reflect_flow(self, which: str) -> None:
        """The harness ceiling: every frame from the generator's `which`
        interface goes straight back, no controller (table 0, top priority)."""
        self.ofctl("add-flow", "br-int",
                   f"table=0,priority=65535,in_port={self.ofport(which)},actions=in_port")

    def del_reflect_flow(self, which: str) -> None:
        self.ofctl("--strict", "del-flows", "br-int",
                   f"table=0,priority=65535,in_port={self.ofport(which)}")

    # -------------------------------------------------------------- stop
    def stop(self) -> None:
        """ovn-controller and northd first (they would react to the others
        going away), then everything Sandbox.stop() stops, by pid."""
        for name in ("ovn-controller", "ovn-northd"):
            proc = self._procs.pop(name, None)
            if proc is not None:
                proc.kill(signal.SIGTERM, timeout=5)
        if self.p4_host:
            subprocess.run(["ip", "link", "del", self.p4_host], check=False, capture_output=True)
            self.p4_host = None
        super().stop()

    def log_files(self) -> list[str]:
        extra = [f"{self.dir}/{n}" for n in ("ovn-controller.log", "ovn-northd.log")
                 if os.path.exists(f"{self.dir}/{n}")]
        return super().log_files() + extra
