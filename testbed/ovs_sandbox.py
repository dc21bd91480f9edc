"""A private, real Open vSwitch + OVN Southbound sandbox for integration tests.

Reproduces the OVS side of the golden recording (tests/golden/ovn-23.03,
sandbox-start.sh): ovsdb-server + ovs-vswitchd (--enable-dummy) with br-int
(dummy datapath, fail-mode=secure), gdvif1..6 (ofport 1..6), the localnet patch
port (7) to br-phys/gdphys, the geneve tunnel ovn-hv2-0 (8), an OVN_Southbound
ovsdb-server serving sb.backup.db, and the recorded br-int groups and
flows.  There is no ovn-controller: the daemon under test plays pinctrl.

Every process runs as a child of this Python process (no --detach, so they are
reaped; pids are also written to pidfiles) inside one fresh temp dir, and all
OVS_*DIR / OVN_*DIR variables point there, so sandboxes can run in parallel.

    with Sandbox() as sb:
        m = sb.mark()
        sb.inject("gdvif1", hexstr)
        pkts = sb.collect(since=m, timeout=1.0)        # [Packet(port, ts, data)]

Set PINCTRL_KEEP_SANDBOX=1 to keep the directory after stop().

Also here, for tests of the main thread's Southbound side without a switch:
SbServer (only the golden SB ovsdb-server, in a given directory) and
step_until_change() (run an IDL user's main-loop step until the IDL
changed).  Test (or bench) process, main thread.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import tempfile
import time
from pathlib import Path
from typing import Any, Callable, Iterable

import ovs.poller
import ovs.timeval

from testbed.daemon_under_test import Daemon
from testbed.golden import GOLDEN, golden_flows, golden_groups
from testbed.netns import NetNs, NetnsHosts
from testbed.pcap import Packet, PcapTail, Record
from testbed.processes import Proc, ProcessGroup, SandboxError, connectable, pid_alive, tail

VSWITCH_SCHEMA = "/usr/share/openvswitch/vswitch.ovsschema"
SB_SCHEMA = "/usr/share/ovn/ovn-sb.ovsschema"

# gdvifN -> (logical port, ofport); exactly as in sandbox-start.sh / ofctl-show.
VIFS = {
    "gdvif1": ("sw0-p1", 1),
    "gdvif2": ("sw0-p2", 2),
    "gdvif3": ("sw0-p3", 3),
    "gdvif4": ("sw1-p4", 4),
    "gdvif5": ("public-p5", 5),
    "gdvif6": ("sw0-p6", 6),
}
PHYS_PORT = "gdphys"
PATCH_INT = "patch-br-int-to-public-ln"
PATCH_PHYS = "patch-public-ln-to-br-int"
TUNNEL = "ovn-hv2-0"
# ovn-controller maps OVN's geneve option (class 0x102, type 0x80, 4 bytes) to
# tun_metadata0 before installing flows; flows.txt uses tun_metadata0.
OVN_TLV_MAP = "{class=0x102,type=0x80,len=4}->tun_metadata0"
SW0_P1_MAC = "50:54:00:00:00:01"
# The EUI-64 link-local address the kernel derives from SW0_P1_MAC.
SW0_P1_LLA = "fe80::5254:ff:fe00:1"
# The MAC a netns gets when it replaces gdvifN (netdev datapath): the logical
# port's address, and for sw0-p3 (addresses=unknown) the recording's "host
# behind sw0-p3" (arp_resolve_sw0_unknown_host, put_fdb_unknown_port).
NETNS_MACS = {
    "gdvif1": SW0_P1_MAC,
    "gdvif2": "50:54:00:00:00:02",
    "gdvif3": "50:54:00:00:00:33",
    "gdvif4": "50:54:00:00:00:04",
    "gdvif5": "50:54:00:00:00:05",
    "gdvif6": "50:54:00:00:00:06",
}

REQUIRED_BINARIES = ("ovsdb-tool", "ovsdb-server", "ovs-vswitchd", "ovs-vsctl",
                     "ovs-ofctl", "ovs-appctl", "ovsdb-client", "ovn-sbctl")
# For datapath_type="netdev": the netns, its veth, and its offload settings.
NETDEV_BINARIES = ("ip", "ethtool")


def missing_prerequisites(netdev: bool = False) -> str | None:
    """Why a sandbox cannot start here, or None."""
    if os.geteuid() != 0:
        return "integration sandbox needs root"
    missing = [b for b in REQUIRED_BINARIES if shutil.which(b) is None]
    if netdev:
        missing += [b for b in NETDEV_BINARIES if shutil.which(b) is None]
    if missing:
        return "missing binaries: " + " ".join(missing)
    for f in (VSWITCH_SCHEMA, SB_SCHEMA, GOLDEN / "flows.txt", GOLDEN / "sb.backup.db"):
        if not Path(f).exists():
            return f"missing {f}"
    return None


def ovsdb_server(group: ProcessGroup, name: str, db_file: str, sock: str) -> Proc:
    """Start ovsdb-server 'name' serving 'db_file' on punix:'sock' (and
    <dir>/<name>.ctl) as a child of 'group'; ready once both accept."""
    d = group.dir
    ctl = f"{d}/{name}.ctl"
    return group._spawn(name, [
        "ovsdb-server", "--no-chdir", f"--pidfile={d}/{name}.pid",
        f"--log-file={d}/{name}.log", "-vconsole:off",
        f"--remote=punix:{sock}", f"--unixctl={ctl}", db_file],
        ready=lambda: connectable(sock) and connectable(ctl), pidfile=f"{d}/{name}.pid")


def serve_golden_sb(group: ProcessGroup) -> Proc:
    """Copy the recording's SB (sb.backup.db) to <dir>/ovnsb.db and serve
    it as "ovnsb_db" on <dir>/ovnsb_db.sock.

    Row UUIDs must be preserved (flow cookies are the first 32 bits of
    Logical_Flow / Port_Binding UUIDs), but `ovsdb-client restore` assigns
    new UUIDs (ovsdb-client(1): "UUIDs for rows in the restored database
    will differ from those in snapshot").  A backup is a standalone
    database file, so it is served directly, as that man page recommends
    for preserving UUIDs."""
    d = group.dir
    backup = GOLDEN / "sb.backup.db"
    shutil.copyfile(backup, f"{d}/ovnsb.db")
    name = group.run(["ovsdb-tool", "db-name", f"{d}/ovnsb.db"]).stdout.strip()
    have = group.run(["ovsdb-tool", "db-version", f"{d}/ovnsb.db"]).stdout.strip()
    want = group.run(["ovsdb-tool", "schema-version", SB_SCHEMA]).stdout.strip()
    if name != "OVN_Southbound" or have != want:
        raise SandboxError(f"{backup}: database {name} schema {have}, "
                           f"installed {SB_SCHEMA} is {want}")
    return ovsdb_server(group, "ovnsb_db", f"{d}/ovnsb.db", f"{d}/ovnsb_db.sock")


class Sandbox(NetnsHosts):
    """See the module docstring.  datapath_type="dummy" (default) mirrors the
    recording; "netdev" replaces gdvif1 by a veth pair whose other end lives in a
    private network namespace (self.netns, interface self.ns_ifname) with
    sw0-p1's MAC, for real DHCP clients.

    netns_ports (netdev only) chooses which dummy ports become namespaces,
    default ("gdvif1",); each gets the MAC of NETNS_MACS and is described in
    self.namespaces[port].  self.netns / self.host_veth are the first one's,
    and every netns_* method acts on it unless given ns=<port>."""

    def __init__(self, datapath_type: str = "dummy", install_flows: bool = True,
                 keep: bool | None = None, base_dir: str | None = None,
                 netns_ports: Iterable[str] = ("gdvif1",)) -> None:
        if datapath_type not in ("dummy", "netdev"):
            raise ValueError("datapath_type must be 'dummy' or 'netdev'")
        ports = tuple(netns_ports) if datapath_type == "netdev" else ()
        bad = [p for p in ports if p not in VIFS]
        if bad or (datapath_type == "netdev" and not ports) \
                or len(set(ports)) != len(ports):
            raise ValueError(f"netns_ports must be distinct ports of {sorted(VIFS)}: "
                             f"{ports!r}")
        d = tempfile.mkdtemp(prefix="pinctrl-sb-", dir=base_dir or "/tmp")
        os.chmod(d, 0o755)
        env = dict(os.environ)
        for p in ("OVS", "OVN"):
            for k in ("RUNDIR", "LOGDIR", "DBDIR", "SYSCONFDIR"):
                env[f"{p}_{k}"] = d
        super().__init__(d, env, ports)
        self.datapath_type = datapath_type
        self.want_flows = install_flows
        self.keep = (os.environ.get("PINCTRL_KEEP_SANDBOX") == "1") if keep is None else keep
        self.tag = Path(d).name.rsplit("-", 1)[-1][:8].lower()
        self.db = f"unix:{d}/db.sock"
        self.sb_db = f"unix:{d}/ovnsb_db.sock"
        self.vswitchd_ctl = f"{d}/ovs-vswitchd.ctl"
        self.ovsdb_ctl = f"{d}/ovsdb-server.ctl"
        self.sb_ctl = f"{d}/ovnsb_db.ctl"
        self.mgmt = f"{d}/br-int.mgmt"
        self._daemons: list[Daemon] = []
        self._tails: dict[str, PcapTail] = {}
        self._last_mark: dict[str, int] | None = None
        self.netns: str | None = None
        self.host_veth: str | None = None
        self.ns_ifname = "eth0"
        self.started = False
        self.timings: dict[str, float] = {}

    # ------------------------------------------------------------------ context
    def __enter__(self) -> "Sandbox":
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    # ------------------------------------------------------------------ commands
    def vsctl(self, *args: str, check: bool = True) -> str:
        return self.run(["ovs-vsctl", f"--db={self.db}", "--timeout=30", *args], check=check).stdout

    def ofctl(self, *args: str, check: bool = True) -> str:
        return self.run(["ovs-ofctl", "-O", "OpenFlow15", *args], check=check).stdout

    def appctl(self, *args: str, target: str | None = None, check: bool = True,
               timeout: float = 30.0) -> str:
        """ovs-appctl -t <target> (default: this sandbox's ovs-vswitchd)."""
        return self.run(["ovs-appctl", "-t", target or self.vswitchd_ctl, *args],
                        check=check, timeout=timeout).stdout

    def sbctl(self, *args: str, check: bool = True) -> str:
        return self.run(["ovn-sbctl", f"--db={self.sb_db}", "--timeout=30", *args],
                        check=check).stdout

    def ovsdb_client(self, *args: str, check: bool = True,
                     stdin_path: str | Path | None = None) -> str:
        return self.run(["ovsdb-client", *args], check=check, stdin_path=stdin_path).stdout

    # ------------------------------------------------------------------ processes
    def _ovsdb_server(self, name: str, db_file: str, sock: str) -> Proc:
        return ovsdb_server(self, name, db_file, sock)

    def _start_vswitchd(self) -> None:
        d = self.dir
        self._spawn("ovs-vswitchd", [
            "ovs-vswitchd", "--enable-dummy", "--disable-system", "--disable-system-route",
            "--no-chdir", f"--pidfile={d}/ovs-vswitchd.pid", f"--log-file={d}/ovs-vswitchd.log",
            "-vconsole:off", f"--unixctl={self.vswitchd_ctl}", self.db],
            ready=lambda: connectable(self.vswitchd_ctl), pidfile=f"{d}/ovs-vswitchd.pid")

    def wait_br_int(self, timeout: float = 15.0) -> None:
        """Until br-int.mgmt accepts OpenFlow (a stale socket file may exist)."""
        deadline = time.monotonic() + timeout
        while True:
            if connectable(self.mgmt):
                cp = self.run(["ovs-ofctl", "-O", "OpenFlow15", "show", "br-int"], check=False)
                if cp.returncode == 0 and "(gdvif2)" in cp.stdout:
                    return
            if time.monotonic() > deadline:
                raise SandboxError(f"br-int.mgmt not ready after {timeout}s:\n"
                                   + tail(f"{self.dir}/ovs-vswitchd.log"))
            time.sleep(0.02)

    # ------------------------------------------------------------------ start
    def start(self) -> "Sandbox":
        t0 = time.monotonic()
        d = self.dir
        if self.datapath_type == "netdev":
            self._setup_netns()
        self.run(["ovsdb-tool", "create", f"{d}/conf.db", VSWITCH_SCHEMA])
        self._ovsdb_server("ovsdb-server", f"{d}/conf.db", f"{d}/db.sock")
        self.vsctl("--no-wait", "init")

        serve_golden_sb(self)

        self.vsctl("--no-wait", "set", "open", ".", "external_ids:system-id=hv1",
                   f"external_ids:ovn-remote={self.sb_db}",
                   "external_ids:ovn-encap-type=geneve", "external_ids:ovn-encap-ip=127.0.0.1",
                   "external_ids:ovn-bridge-mappings=physnet1:br-phys")
        self._start_vswitchd()

        dp = self.datapath_type
        cmd = ["add-br", "br-int", "--", "set", "bridge", "br-int", "fail-mode=secure",
               "other-config:disable-in-band=true", f"datapath-type={dp}",
               "--", "add-br", "br-phys", "--", "set", "bridge", "br-phys",
               f"datapath-type={dp}", "other-config:disable-in-band=true"]
        for name, (lsp, ofport) in VIFS.items():
            if name in self.namespaces:
                veth = self.namespaces[name].host_veth
                cmd += ["--", "add-port", "br-int", veth, "--", "set", "interface",
                        veth, f"ofport_request={ofport}",
                        f"external_ids:iface-id={lsp}"]
                continue
            cmd += ["--", "add-port", "br-int", name, "--", "set", "interface", name,
                    "type=dummy", f"ofport_request={ofport}", f"external_ids:iface-id={lsp}",
                    f"options:tx_pcap={d}/{name}-tx.pcap", f"options:rxq_pcap={d}/{name}-rx.pcap"]
        cmd += ["--", "add-port", "br-phys", PHYS_PORT, "--", "set", "interface", PHYS_PORT,
                "type=dummy", f"options:tx_pcap={d}/{PHYS_PORT}-tx.pcap",
                f"options:rxq_pcap={d}/{PHYS_PORT}-rx.pcap",
                "--", "add-port", "br-int", PATCH_INT, "--", "set", "interface", PATCH_INT,
                "type=patch", f"options:peer={PATCH_PHYS}", "ofport_request=7",
                "--", "add-port", "br-phys", PATCH_PHYS, "--", "set", "interface", PATCH_PHYS,
                "type=patch", f"options:peer={PATCH_INT}",
                "--", "add-port", "br-int", TUNNEL, "--", "set", "interface", TUNNEL,
                "type=geneve", "options:csum=true", "options:key=flow",
                "options:remote_ip=127.0.0.2", "ofport_request=8"]
        self.vsctl(*cmd)
        self.wait_br_int()
        self.started = True
        self._check_ofports()
        if self.want_flows:
            self.install_flows()
        for p in self.tx_ports():
            self._tails[p] = PcapTail(self.pcap_path(p), start_at_end=True)
        self.timings["start"] = time.monotonic() - t0
        self._log(f"# sandbox started in {self.timings['start']:.3f}s")
        return self

    def _check_ofports(self) -> None:
        want = {n: o for n, (_, o) in VIFS.items()}
        for port, n in self.namespaces.items():
            want[n.host_veth] = want.pop(port)
        want[PATCH_INT] = 7
        want[TUNNEL] = 8
        got = {}
        for name in want:
            got[name] = int(self.vsctl("get", "interface", name, "ofport").strip())
        if got != want:
            raise SandboxError(f"unexpected ofports {got}, wanted {want}: "
                               + self.vsctl("--columns=name,ofport,error", "list", "interface"))

    def _setup_netns(self) -> None:
        """One namespace per netns port, in order.  The first keeps the
        names of the single-namespace sandbox (pinctrl-<tag>, pcv<tag>);
        the others add their ofport."""
        for i, port in enumerate(self.netns_ports):
            suffix = "" if i == 0 else f"-{VIFS[port][1]}"
            n = NetNs(port, f"pinctrl-{self.tag}{suffix}", f"pcv{self.tag}{suffix}"[:15],
                      self.ns_ifname, NETNS_MACS[port])
            if i == 0:
                self.netns, self.host_veth = n.name, n.host_veth
            self._add_netns(n)

    # ------------------------------------------------------------------ flows
    def install_flows(self) -> int:
        """TLV map, groups.txt, flows.txt (in one atomic bundle); returns the
        flow count read back.

        The golden files are dumps; adapted in code: the 'OFPST_... reply'
        header lines and leading spaces are dropped.  A dump cannot express
        OVN's `dec_ttl()` (NXAST_DEC_TTL_CNT_IDS with zero controller ids), the
        parser reads it as plain `dec_ttl` (one controller id 0), so the 14
        flows using it dump as `dec_ttl`; no difference for OVN's pipeline, which
        checks ip.ttl itself before every dec_ttl."""
        t0 = time.monotonic()
        d = self.dir
        self.ofctl("add-tlv-map", "br-int", OVN_TLV_MAP)
        Path(f"{d}/groups.in").write_text("\n".join(golden_groups()) + "\n")
        Path(f"{d}/flows.in").write_text("\n".join(golden_flows(normalize=False)) + "\n")
        self.ofctl("add-groups", "br-int", f"{d}/groups.in")
        self.ofctl("--bundle", "add-flows", "br-int", f"{d}/flows.in")
        n = len(self.dump_flows())
        if n != len(golden_flows()):
            raise SandboxError(f"{n} flows installed, expected {len(golden_flows())}")
        self.timings["install_flows"] = time.monotonic() - t0
        return n

    def dump_flows(self) -> list[str]:
        out = self.ofctl("dump-flows", "br-int", "--no-stats")
        return [l.strip() for l in out.splitlines()
                if l.strip() and not l.startswith(("OFPST", "NXST"))]

    def dump_groups(self) -> list[str]:
        out = self.ofctl("dump-groups", "br-int")
        return [l.strip() for l in out.splitlines()
                if l.strip() and not l.startswith(("OFPST", "NXST"))]

    # ------------------------------------------------------------------ vswitchd
    def vswitchd_pid(self) -> int:
        return int(Path(f"{self.dir}/ovs-vswitchd.pid").read_text().strip())

    def kill_vswitchd(self) -> None:
        """SIGKILL ovs-vswitchd (by pid) and wait until it is gone."""
        proc = self._procs.get("ovs-vswitchd")
        if proc is None:
            raise SandboxError("ovs-vswitchd not started by this sandbox")
        for pid in proc.pids():
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        proc.popen.wait(timeout=10)
        deadline = time.monotonic() + 10
        while any(pid_alive(p) for p in proc.pids()) and time.monotonic() < deadline:
            time.sleep(0.01)
        self._log("# ovs-vswitchd killed (SIGKILL)")

    def restart_vswitchd(self) -> float:
        """Start ovs-vswitchd again, wait for br-int.mgmt, reinstall groups and
        flows (they are not persistent).  Returns the seconds it took."""
        t0 = time.monotonic()
        proc = self._procs.get("ovs-vswitchd")
        if proc is not None and proc.alive():
            raise SandboxError("ovs-vswitchd still running")
        self._start_vswitchd()
        self.wait_br_int()
        if self.want_flows:
            self.install_flows()
        self.timings["restart_vswitchd"] = time.monotonic() - t0
        return self.timings["restart_vswitchd"]

    # ------------------------------------------------------------------ packets
    def tx_ports(self) -> list[str]:
        ports = [p for p in VIFS if p not in self.netns_ports]
        return ports + [PHYS_PORT]

    def pcap_path(self, port: str) -> str:
        return f"{self.dir}/{port}-tx.pcap"

    def inject(self, port: str, hexstr: str | bytes) -> None:
        """Make dummy interface `port` receive one frame (hex string or bytes)."""
        if isinstance(hexstr, (bytes, bytearray)):
            hexstr = bytes(hexstr).hex()
        if port not in self._tails:
            raise SandboxError(f"{port} is not a dummy port of this sandbox")
        self.appctl("netdev-dummy/receive", port, hexstr)

    def mark(self) -> dict[str, int]:
        """Remember the current end of every tx pcap; later reads start here."""
        m = {}
        for p, t in self._tails.items():
            t.read_new()
            m[p] = t.offset()
        self._last_mark = m
        return m

    def _read_since(self, port: str, since: dict[str, int] | None) -> list[Record]:
        since = since if since is not None else self._last_mark
        t = PcapTail(self.pcap_path(port))
        if since is not None and port in since:
            t.read_new()        # parses the header
            t.seek(since[port])
        return t.read_new()

    def packets_since(self, since: dict[str, int] | None = None,
                      ports: Iterable[str] | None = None) -> list[Packet]:
        """Everything transmitted on `ports` (default all) since the mark,
        sorted by pcap timestamp."""
        out = []
        for p in ports or self._tails:
            out += [Packet(p, r.ts, r.data) for r in self._read_since(p, since)]
        out.sort(key=lambda pk: pk.ts)
        return out

    def new_packets(self, port: str, since_mark: dict[str, int] | None = None,
                    timeout: float = 1.0, count: int = 1) -> list[Packet]:
        """Packets sent on `port` since the mark (default: last mark()); waits
        up to `timeout` for at least `count` of them."""
        deadline = time.monotonic() + timeout
        while True:
            pkts = self.packets_since(since_mark, [port])
            if len(pkts) >= count or time.monotonic() >= deadline:
                return pkts
            time.sleep(0.01)

    def collect(self, since: dict[str, int] | None = None, timeout: float = 1.0,
                until: Callable[[list[Packet]], bool] | None = None,
                settle: float = 0.2) -> list[Packet]:
        """All packets on all ports since the mark.  Without `until`, waits the
        whole `timeout`; with it, returns `settle` s after until(pkts) is true."""
        deadline = time.monotonic() + timeout
        while True:
            pkts = self.packets_since(since)
            now = time.monotonic()
            if until is not None and until(pkts):
                deadline = min(deadline, now + settle)
                until = None
            if now >= deadline:
                return self.packets_since(since)
            time.sleep(0.01)

    # ------------------------------------------------------------------ daemon
    def daemon(self, **kw) -> Daemon:
        d = Daemon(self, **kw)
        self._daemons.append(d)
        return d

    # ------------------------------------------------------------------ logs
    def log_files(self) -> list[str]:
        names = ["commands.log", "ovs-vswitchd.log", "ovs-vswitchd.stdout", "ovsdb-server.log",
                 "ovnsb_db.log", "pinctrl-daemon.log", "pinctrl-daemon.stderr"]
        return [f"{self.dir}/{n}" for n in names if os.path.exists(f"{self.dir}/{n}")]

    def log_tails(self, n: int = 30) -> str:
        parts = []
        for f in self.log_files():
            t = tail(f, n)
            if t:
                parts.append(f"----- {f} (last {n} lines) -----\n{t}")
        return "\n".join(parts)

    # ------------------------------------------------------------------ stop
    def stop(self) -> None:
        """Stop every process this sandbox started (by pid), remove the netns
        and veth, delete the directory (unless keep)."""
        for dmn in reversed(self._daemons):
            try:
                dmn.stop()
            except Exception as e:      # keep tearing down
                self._log(f"# daemon stop failed: {e!r}")
        self.stop_processes(first=("ovs-vswitchd", "ovnsb_db", "ovsdb-server"))
        self._remove_netns()
        self.netns = None
        self.started = False
        if not self.keep and os.path.isdir(self.dir):
            shutil.rmtree(self.dir, ignore_errors=True)


# ====================================================================== SB only
SB_TOOLS = ("ovsdb-server", "ovsdb-tool", "ovsdb-client", "ovn-sbctl")


def sb_server_unavailable() -> str | None:
    """Why an SbServer cannot start here, or None (no root needed)."""
    missing = [t for t in SB_TOOLS if shutil.which(t) is None]
    if missing:
        return "missing binaries: " + " ".join(missing)
    for f in (SB_SCHEMA, GOLDEN / "sb.backup.db"):
        if not Path(f).exists():
            return f"missing {f}"
    return None


def sb_schema() -> dict[str, Any]:
    """The installed OVN_Southbound schema, as SbSync and make_idl take it."""
    with open(SB_SCHEMA) as f:
        return json.load(f)


class SbServer(ProcessGroup):
    """The golden OVN Southbound alone: one ovsdb-server child serving a
    copy of sb.backup.db in 'dir' (tests of SbSync and the writers).

    'remote' is its unix: remote; after start(), 'dns_row', 'sw0' and
    'sw1' are the UUIDs of the DNS row and of datapaths 1 and 2."""

    NAME = "ovnsb_db"

    def __init__(self, dir: str | Path) -> None:
        super().__init__(str(dir), dict(os.environ))
        self.sock = f"{self.dir}/ovnsb_db.sock"
        self.remote = f"unix:{self.sock}"
        self.db = f"{self.dir}/ovnsb.db"

    def sbctl(self, *args: str) -> str:
        """ovn-sbctl against this server; its stripped output."""
        return self.run(["ovn-sbctl", f"--db={self.remote}", "--timeout=30",
                         *args]).stdout.strip()

    def start(self) -> SbServer:
        serve_golden_sb(self)
        self.dns_row = self.sbctl("--bare", "--columns=_uuid", "list", "DNS")
        self.sw0 = self.dp_uuid(1)
        self.sw1 = self.dp_uuid(2)
        return self

    def launch(self) -> None:
        """Serve the existing database file again (after stop())."""
        ovsdb_server(self, self.NAME, self.db, self.sock)

    @property
    def pid(self) -> int | None:
        """The running server's pid, None once stopped."""
        proc = self._procs.get(self.NAME)
        return proc.popen.pid if proc is not None and proc.alive() else None

    def dp_uuid(self, key: int) -> str:
        return self.sbctl("--bare", "--columns=_uuid", "find",
                          "Datapath_Binding", f"tunnel_key={key}")

    def rows(self, table: str, *cond: str) -> list[dict[str, Any]]:
        """`ovn-sbctl find table cond...` as dicts (ovsdb JSON values:
        ["uuid", u], ["map", [...]], ["set", [...]] or a scalar)."""
        data = json.loads(self.sbctl("--format=json", "find", table, *cond))
        return [dict(zip(data["headings"], r)) for r in data["data"]]

    def stop(self, sig: int = signal.SIGTERM) -> None:
        """End the server with 'sig' (SIGKILL after 5 s), by pid; its
        clients see the connection go away."""
        proc = self._procs.pop(self.NAME, None)
        if proc is not None:
            proc.kill(sig, timeout=5)


def step_until_change(s: Any, timeout: float = 10.0,
                      chassis: str | None = None) -> None:
    """Run main-loop steps of 's' (an SbSync, or anything with .idl,
    run(now, chassis) and wait(poller, now)) until one run() call has seen an IDL
    change (and so, in the same call, rebuilt what it derives)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        before = s.idl.change_seqno
        now = ovs.timeval.msec()
        s.run(now, chassis)
        if s.idl.change_seqno != before:
            return
        poller = ovs.poller.Poller()
        s.wait(poller, now)
        poller.timer_wait(100)
        poller.block()
    raise AssertionError("no IDL change seen")
