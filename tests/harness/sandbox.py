"""A private, real Open vSwitch + OVN Southbound sandbox for integration tests.

Reproduces the OVS side of the golden recording (tests/golden/ovn-23.03,
sandbox-start.sh): ovsdb-server + ovs-vswitchd (--enable-dummy) with br-int
(dummy datapath, fail-mode=secure), gdvif1..6 (ofport 1..6), the localnet patch
port (7) to br-phys/gdphys, the geneve tunnel ovn-hv2-0 (8), an OVN_Southbound
ovsdb-server restored from sb.backup.db, and the recorded br-int groups and
flows.  There is no ovn-controller: the daemon under test plays pinctrl.

Every process runs as a child of this Python process (no --detach, so they are
reaped; pids are also written to pidfiles) inside one fresh temp dir, and all
OVS_*DIR / OVN_*DIR variables point there, so sandboxes can run in parallel.

    with Sandbox() as sb:
        m = sb.mark()
        sb.inject("gdvif1", hexstr)
        pkts = sb.collect(since=m, timeout=1.0)        # [Packet(port, ts, data)]

Set PINCTRL_KEEP_SANDBOX=1 to keep the directory after stop().
"""

from __future__ import annotations

import collections
import json
import os
import re
import shlex
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable

from .pcap import PcapTail, Record

REPO = Path(__file__).resolve().parents[2]
GOLDEN = REPO / "tests" / "golden" / "ovn-23.03"
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


class SandboxError(RuntimeError):
    pass


@dataclass(frozen=True)
class Packet:
    port: str
    ts: float
    data: bytes

    @property
    def hex(self) -> str:
        return self.data.hex()


def eui64_lla(mac: str) -> str:
    """The link-local address the kernel derives from `mac` (EUI-64)."""
    b = bytes(int(x, 16) for x in mac.split(":"))
    groups = [(b[0] ^ 0x02) << 8 | b[1], b[2] << 8 | 0xFF, 0xFE << 8 | b[3],
              b[4] << 8 | b[5]]
    return "fe80::" + ":".join(f"{g:x}" for g in groups)


@dataclass(frozen=True)
class NetNs:
    """A network namespace standing in for dummy port `port` (netdev
    datapath): veth `host_veth` on br-int, `ifname` with `mac` inside."""
    port: str
    name: str
    host_veth: str
    ifname: str
    mac: str

    @property
    def lla(self) -> str:
        return eui64_lla(self.mac)


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


def _connectable(path: str) -> bool:
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        s.settimeout(0.5)
        s.connect(path)
        return True
    except OSError:
        return False
    finally:
        s.close()


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie still "exists"; treat it as dead.
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def tail(path: str | Path, n: int = 40) -> str:
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            size = f.tell()
            f.seek(max(0, size - 64 * 1024))
            lines = f.read().decode("utf-8", "replace").splitlines()
    except OSError:
        return ""
    return "\n".join(lines[-n:])


def load_exchange(name: str) -> dict:
    with open(GOLDEN / "exchanges" / f"{name}.json") as f:
        return json.load(f)


def golden_flows(normalize: bool = True) -> list[str]:
    """flows.txt lines; with normalize, in the form they dump after add-flows
    (see Sandbox.install_flows for the one known formatting difference)."""
    lines = [l.strip() for l in (GOLDEN / "flows.txt").read_text().splitlines()]
    lines = [l for l in lines if l and not l.startswith(("OFPST", "NXST", "#"))]
    if normalize:
        lines = [l.replace("dec_ttl()", "dec_ttl") for l in lines]
    return lines


def golden_groups() -> list[str]:
    lines = [l.strip() for l in (GOLDEN / "groups.txt").read_text().splitlines()]
    return [l for l in lines if l and not l.startswith(("OFPST", "NXST", "#"))]


class _Proc:
    """A daemon started by the sandbox (foreground child, pidfile written)."""

    def __init__(self, name: str, popen: subprocess.Popen, pidfile: str | None):
        self.name, self.popen, self.pidfile = name, popen, pidfile

    def pids(self) -> set[int]:
        pids = {self.popen.pid}
        if self.pidfile:
            try:
                pids.add(int(Path(self.pidfile).read_text().strip()))
            except (OSError, ValueError):
                pass
        return pids

    def alive(self) -> bool:
        return self.popen.poll() is None

    def kill(self, sig: int = signal.SIGTERM, timeout: float = 5.0) -> None:
        """sig, then SIGKILL after timeout; always by pid."""
        for pid in self.pids():
            if pid == self.popen.pid and self.popen.poll() is not None:
                continue
            if pid != self.popen.pid and not _pid_alive(pid):
                continue
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                pass
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.popen.poll()
            if not any(_pid_alive(p) for p in self.pids()):
                break
            time.sleep(0.02)
        else:
            for pid in self.pids():
                if _pid_alive(pid):
                    try:
                        os.kill(pid, signal.SIGKILL)
                    except ProcessLookupError:
                        pass
        try:
            self.popen.wait(timeout=5)
        except subprocess.TimeoutExpired:
            pass


class Sandbox:
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
        self.netns_ports = tuple(netns_ports) if datapath_type == "netdev" else ()
        bad = [p for p in self.netns_ports if p not in VIFS]
        if bad or (datapath_type == "netdev" and not self.netns_ports) \
                or len(set(self.netns_ports)) != len(self.netns_ports):
            raise ValueError(f"netns_ports must be distinct ports of {sorted(VIFS)}: "
                             f"{self.netns_ports!r}")
        self.datapath_type = datapath_type
        self.want_flows = install_flows
        self.keep = (os.environ.get("PINCTRL_KEEP_SANDBOX") == "1") if keep is None else keep
        self.dir = tempfile.mkdtemp(prefix="pinctrl-sb-", dir=base_dir or "/tmp")
        os.chmod(self.dir, 0o755)
        self.tag = Path(self.dir).name.rsplit("-", 1)[-1][:8].lower()
        d = self.dir
        self.db = f"unix:{d}/db.sock"
        self.sb_db = f"unix:{d}/ovnsb_db.sock"
        self.vswitchd_ctl = f"{d}/ovs-vswitchd.ctl"
        self.ovsdb_ctl = f"{d}/ovsdb-server.ctl"
        self.sb_ctl = f"{d}/ovnsb_db.ctl"
        self.mgmt = f"{d}/br-int.mgmt"
        self.cmdlog = f"{d}/commands.log"
        self.env = dict(os.environ)
        for p in ("OVS", "OVN"):
            for k in ("RUNDIR", "LOGDIR", "DBDIR", "SYSCONFDIR"):
                self.env[f"{p}_{k}"] = d
        self._procs: dict[str, _Proc] = {}
        self._daemons: list["Daemon"] = []
        self._tails: dict[str, PcapTail] = {}
        self._last_mark: dict[str, int] | None = None
        self.netns: str | None = None
        self.host_veth: str | None = None
        self.ns_ifname = "eth0"
        self.namespaces: dict[str, NetNs] = {}
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
    def _log(self, text: str) -> None:
        with open(self.cmdlog, "a") as f:
            f.write(text if text.endswith("\n") else text + "\n")

    def run(self, args: list[str], input: str | bytes | None = None, check: bool = True,
            timeout: float = 30.0, stdin_path: str | Path | None = None
            ) -> subprocess.CompletedProcess:
        """Run a command with the sandbox environment; logged to commands.log.
        stdin_path: a (seekable) file as stdin, e.g. for `ovsdb-client restore`."""
        t0 = time.monotonic()
        text = not isinstance(input, bytes)
        stdin = open(stdin_path, "rb") if stdin_path is not None else None
        try:
            cp = subprocess.run(args, input=input, stdin=stdin, capture_output=True, text=text,
                                env=self.env, cwd=self.dir, timeout=timeout)
        except subprocess.TimeoutExpired as e:
            self._log(f"$ {shlex.join(args)}\n  TIMEOUT after {timeout}s")
            raise SandboxError(f"timeout ({timeout}s): {shlex.join(args)}") from e
        finally:
            if stdin is not None:
                stdin.close()
        out = cp.stdout if text else cp.stdout.decode("utf-8", "replace")
        err = cp.stderr if text else cp.stderr.decode("utf-8", "replace")
        self._log(f"$ {shlex.join(args)}   # rc={cp.returncode} {time.monotonic() - t0:.3f}s"
                  + (f"\n{out[:2000]}" if out else "") + (f"\n[stderr] {err[:4000]}" if err else ""))
        if check and cp.returncode != 0:
            raise SandboxError(f"{shlex.join(args)} failed (rc={cp.returncode}): {err.strip()[-2000:]}")
        return cp

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

    def _ns(self, ns: str | None) -> NetNs:
        """The namespace replacing port `ns` (default: the first one)."""
        if not self.namespaces:
            raise SandboxError("no network namespace (use datapath_type='netdev')")
        port = ns or self.netns_ports[0]
        if port not in self.namespaces:
            raise SandboxError(f"{port} is not a netns port of this sandbox "
                               f"({', '.join(self.namespaces)})")
        return self.namespaces[port]

    def _netns_argv(self, args: tuple[str, ...], ns: str | None = None) -> list[str]:
        return ["ip", "netns", "exec", self._ns(ns).name, *args]

    def netns_exec(self, *args: str, check: bool = True, timeout: float = 30.0,
                   ns: str | None = None) -> subprocess.CompletedProcess:
        """Run a command in the netns of port `ns` (default: the first)."""
        return self.run(self._netns_argv(args, ns), check=check, timeout=timeout)

    def netns_spawn(self, name: str, *args: str, ns: str | None = None) -> subprocess.Popen:
        """Start a long-running command (e.g. `dhclient -d`) in the netns,
        stdout+stderr to <dir>/<name>.stdout.  `ip netns exec` execs the
        command, so the pid is the client's; stop() kills it by that pid if
        the caller has not (see netns_stop)."""
        return self._spawn(name, self._netns_argv(args, ns), ready=lambda: True,
                           pidfile=None).popen

    def netns_stop(self, name: str, timeout: float = 5.0) -> int | None:
        """SIGTERM (then SIGKILL) what netns_spawn(name) started; its exit code."""
        proc = self._procs.pop(name, None)
        if proc is None:
            return None
        proc.kill(signal.SIGTERM, timeout=timeout)
        return proc.popen.returncode

    def netns_enable_ipv6(self, *addrs: str, timeout: float = 5.0,
                          ns: str | None = None) -> None:
        """Turn IPv6 on for the netns interface (off by default, see
        _setup_netns) and add `addrs` ("2001:db8::11/64").  No DAD (an
        address is usable at once: dhclient -6 binds the link-local one), no
        router solicitations or RA processing (OVN's RS answer is another
        opcode; SLAAC would add addresses behind the test's back).  Waits
        for the EUI-64 link-local address of its MAC (SW0_P1_LLA for gdvif1)."""
        n = self._ns(ns)
        conf = f"net.ipv6.conf.{n.ifname}"
        for knob in ("accept_dad=0", "accept_ra=0", "router_solicitations=0",
                     "disable_ipv6=0"):
            self.netns_exec("sysctl", "-qw", f"{conf}.{knob}", ns=n.port)
        for a in addrs:
            self.netns_exec("ip", "-6", "addr", "add", a, "dev", n.ifname, "nodad",
                            ns=n.port)
        deadline = time.monotonic() + timeout
        while n.lla not in self.netns_exec("ip", "-6", "addr", "show", "dev",
                                           n.ifname, ns=n.port).stdout:
            if time.monotonic() > deadline:
                raise SandboxError(f"no {n.lla} on {n.ifname} in {n.name} after {timeout}s")
            time.sleep(0.05)

    # ------------------------------------------------------------------ processes
    def _spawn(self, name: str, args: list[str], ready: Callable[[], bool],
               pidfile: str | None, timeout: float = 15.0) -> _Proc:
        out = open(f"{self.dir}/{name}.stdout", "ab")
        self._log(f"$ {shlex.join(args)} &")
        popen = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=out,
                                 stderr=subprocess.STDOUT, env=self.env, cwd=self.dir,
                                 start_new_session=True)
        out.close()
        proc = _Proc(name, popen, pidfile)
        self._procs[name] = proc
        deadline = time.monotonic() + timeout
        while not ready():
            if popen.poll() is not None:
                raise SandboxError(f"{name} exited with {popen.returncode}:\n"
                                   + tail(f"{self.dir}/{name}.stdout") + "\n"
                                   + tail(f"{self.dir}/{name}.log"))
            if time.monotonic() > deadline:
                raise SandboxError(f"{name} not ready after {timeout}s:\n"
                                   + tail(f"{self.dir}/{name}.log"))
            time.sleep(0.01)
        return proc

    def _ovsdb_server(self, name: str, db_file: str, sock: str) -> _Proc:
        d = self.dir
        ctl = f"{d}/{name}.ctl"
        return self._spawn(name, [
            "ovsdb-server", "--no-chdir", f"--pidfile={d}/{name}.pid",
            f"--log-file={d}/{name}.log", "-vconsole:off",
            f"--remote=punix:{sock}", f"--unixctl={ctl}", db_file],
            ready=lambda: _connectable(sock) and _connectable(ctl), pidfile=f"{d}/{name}.pid")

    def _start_vswitchd(self) -> None:
        d = self.dir
        self._spawn("ovs-vswitchd", [
            "ovs-vswitchd", "--enable-dummy", "--disable-system", "--disable-system-route",
            "--no-chdir", f"--pidfile={d}/ovs-vswitchd.pid", f"--log-file={d}/ovs-vswitchd.log",
            "-vconsole:off", f"--unixctl={self.vswitchd_ctl}", self.db],
            ready=lambda: _connectable(self.vswitchd_ctl), pidfile=f"{d}/ovs-vswitchd.pid")

    def wait_br_int(self, timeout: float = 15.0) -> None:
        """Until br-int.mgmt accepts OpenFlow (a stale socket file may exist)."""
        deadline = time.monotonic() + timeout
        while True:
            if _connectable(self.mgmt):
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

        # OVN Southbound from the recording.  Row UUIDs must be preserved (flow
        # cookies are the first 32 bits of Logical_Flow / Port_Binding UUIDs),
        # but `ovsdb-client restore` assigns new UUIDs (ovsdb-client(1): "UUIDs
        # for rows in the restored database will differ from those in
        # snapshot").  A backup is a standalone database file, so it is served
        # directly, as that man page recommends for preserving UUIDs.
        self._restore_sb()

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

    def _restore_sb(self) -> None:
        d = self.dir
        backup = GOLDEN / "sb.backup.db"
        shutil.copyfile(backup, f"{d}/ovnsb.db")
        name = self.run(["ovsdb-tool", "db-name", f"{d}/ovnsb.db"]).stdout.strip()
        have = self.run(["ovsdb-tool", "db-version", f"{d}/ovnsb.db"]).stdout.strip()
        want = self.run(["ovsdb-tool", "schema-version", SB_SCHEMA]).stdout.strip()
        if name != "OVN_Southbound" or have != want:
            raise SandboxError(f"{backup}: database {name} schema {have}, "
                               f"installed {SB_SCHEMA} is {want}")
        self._ovsdb_server("ovnsb_db", f"{d}/ovnsb.db", f"{d}/ovnsb_db.sock")

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
            # Registered before it exists, so stop() cleans up a half-made one.
            self.namespaces[port] = n
            if i == 0:
                self.netns, self.host_veth = n.name, n.host_veth
            self._setup_one_netns(n)

    def _setup_one_netns(self, n: NetNs) -> None:
        self.run(["ip", "netns", "add", n.name])
        self.run(["ip", "link", "add", n.host_veth, "type", "veth", "peer", "name",
                  n.ifname, "netns", n.name])
        # No IPv6 on either end: keeps DAD/RS/MLD noise out of the pipeline.
        self.run(["sysctl", "-qw", f"net.ipv6.conf.{n.host_veth}.disable_ipv6=1"],
                 check=False)
        for conf in ("all", "default"):
            self.netns_exec("sysctl", "-qw", f"net.ipv6.conf.{conf}.disable_ipv6=1",
                            check=False, ns=n.port)
        self.netns_exec("ip", "link", "set", n.ifname, "address", n.mac, ns=n.port)
        # UDP/TCP from a kernel socket must leave the netns with a complete L4
        # checksum.  With TX checksum offload (veth default) the frame carries
        # only the pseudo-header sum (CHECKSUM_PARTIAL); OVS 3.1's netdev
        # datapath reads it from an AF_PACKET socket without a vnet header and
        # cannot know; its userspace conntrack counts conntrack_l4csum_err and
        # returns ct.inv, and OVN's ls_in_acl priority-65532 "ct.inv" flow
        # (table 16) drops it: dig never reached dns_lookup.  Packet-socket
        # clients (udhcpc) write full checksums themselves.  The host end needs
        # nothing: OVS's AF_PACKET sends are never offloaded.
        self.netns_exec("ethtool", "-K", n.ifname, "tx", "off", ns=n.port)
        self.netns_exec("ip", "link", "set", "lo", "up", ns=n.port)
        self.netns_exec("ip", "link", "set", n.ifname, "up", ns=n.port)
        self.run(["ip", "link", "set", n.host_veth, "up"])

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
        while any(_pid_alive(p) for p in proc.pids()) and time.monotonic() < deadline:
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
    def daemon(self, **kw) -> "Daemon":
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
        for name in ("ovs-vswitchd", "ovnsb_db", "ovsdb-server"):
            proc = self._procs.pop(name, None)
            if proc is not None:
                proc.kill(signal.SIGTERM, timeout=5)
        for proc in self._procs.values():
            proc.kill(signal.SIGTERM, timeout=5)
        self._procs.clear()
        for n in reversed(list(self.namespaces.values())):
            # Either may be gone already (deleting the netns deletes the pair).
            subprocess.run(["ip", "link", "del", n.host_veth], capture_output=True, check=False)
            subprocess.run(["ip", "netns", "del", n.name], capture_output=True, check=False)
        self.namespaces.clear()
        self.netns = None
        self.started = False
        if not self.keep and os.path.isdir(self.dir):
            shutil.rmtree(self.dir, ignore_errors=True)


# ====================================================================== daemon
def daemon_executable() -> str:
    """$PINCTRL_DAEMON, else pinctrl-daemon next to this Python, else PATH."""
    exe = os.environ.get("PINCTRL_DAEMON")
    if exe:
        return exe
    cand = Path(sys.executable).parent / "pinctrl-daemon"
    if cand.exists():
        return str(cand)
    return shutil.which("pinctrl-daemon") or str(cand)


_daemon_help_cache: dict[str, tuple[int, str]] = {}


def daemon_help() -> tuple[int, str]:
    exe = daemon_executable()
    if exe not in _daemon_help_cache:
        try:
            cp = subprocess.run([exe, "--help"], capture_output=True, text=True, timeout=60)
            _daemon_help_cache[exe] = (cp.returncode, cp.stdout + cp.stderr)
        except (OSError, subprocess.TimeoutExpired) as e:
            _daemon_help_cache[exe] = (-1, repr(e))
    return _daemon_help_cache[exe]


def daemon_unavailable() -> str | None:
    """Why the daemon cannot be run (its --help fails), or None."""
    rc, out = daemon_help()
    if rc != 0:
        return f"{daemon_executable()} --help failed (rc={rc}): {out.strip()[-600:]}"
    return None


_COV_RE = re.compile(r"^\s*(\S+)\s+.*?total:\s*(\d+)\s*$")


def parse_coverage(text: str) -> dict[str, int]:
    """`coverage/show` output (OVS or this daemon's format) -> {name: total}."""
    out = {}
    for line in text.splitlines():
        m = _COV_RE.match(line)
        if m:
            out[m.group(1)] = int(m.group(2))
    return out


class Daemon:
    """pinctrl-daemon run against a Sandbox (child process, stopped by pid)."""

    def __init__(self, sandbox: Sandbox, extra_args: Iterable[str] = (), console: bool = False,
                 file_level: str = "dbg", console_level: str = "info",
                 inherit_output: bool = False) -> None:
        self.sb = sandbox
        d = sandbox.dir
        self.ctl = f"{d}/pinctrl-daemon.ctl"
        self.log_file = f"{d}/pinctrl-daemon.log"
        self.pidfile = f"{d}/pinctrl-daemon.pid"
        self.extra_args = list(extra_args)
        self.console, self.file_level, self.console_level = console, file_level, console_level
        self.inherit_output = inherit_output
        self.popen: subprocess.Popen | None = None
        self.start_time: float | None = None
        self.connect_time: float | None = None

    def command(self) -> list[str]:
        d = self.sb.dir
        return [daemon_executable(), "--br-int", "br-int", "--ovs-rundir", d,
                "--ovs-db", self.sb.db, "--unixctl", self.ctl, "--log-file", self.log_file,
                "--pidfile", self.pidfile,
                f"-vconsole:{self.console_level}" if self.console else "-vconsole:off",
                f"-vfile:{self.file_level}", *self.extra_args]

    def start(self, wait: bool = True, timeout: float = 10.0) -> "Daemon":
        cmd = self.command()
        self.sb._log(f"$ {shlex.join(cmd)} &")
        if self.inherit_output:
            out = err = None
        else:
            out = open(f"{self.sb.dir}/pinctrl-daemon.stdout", "ab")
            err = open(f"{self.sb.dir}/pinctrl-daemon.stderr", "ab")
        self.start_time = time.monotonic()
        self.popen = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=out, stderr=err,
                                      env=self.sb.env, cwd=self.sb.dir, start_new_session=True)
        for f in (out, err):
            if f:
                f.close()
        if wait:
            self.connect_time = self.wait_connected(timeout)
        return self

    def alive(self) -> bool:
        return self.popen is not None and self.popen.poll() is None

    def appctl(self, *args: str, check: bool = True, timeout: float = 10.0) -> str:
        return self.sb.appctl(*args, target=self.ctl, check=check, timeout=timeout)

    def show(self) -> str:
        return self.appctl("pinctrl/show", check=False)

    def is_connected(self) -> bool:
        if not os.path.exists(self.ctl):
            return False
        cp = self.sb.run(["ovs-appctl", "-t", self.ctl, "pinctrl/show"], check=False, timeout=5)
        # "OpenFlow: connected" or "OpenFlow: connected (unix:..., OpenFlow 1.5)"
        return cp.returncode == 0 and any(re.match(r"OpenFlow: connected\b", l.strip())
                                          for l in cp.stdout.splitlines())

    def wait_connected(self, timeout: float = 10.0) -> float:
        """Poll pinctrl/show until 'OpenFlow: connected'; returns seconds waited."""
        t0 = time.monotonic()
        while True:
            if self.popen is not None and self.popen.poll() is not None:
                raise SandboxError(f"pinctrl-daemon exited with {self.popen.returncode}:\n"
                                   + tail(f"{self.sb.dir}/pinctrl-daemon.stderr") + "\n"
                                   + tail(self.log_file))
            if self.is_connected():
                return time.monotonic() - t0
            if time.monotonic() - t0 > timeout:
                raise SandboxError(f"pinctrl-daemon not connected after {timeout}s; "
                                   f"pinctrl/show: {self.show()!r}\n" + tail(self.log_file))
            time.sleep(0.1)

    def coverage(self) -> dict[str, int]:
        return parse_coverage(self.appctl("coverage/show"))

    def pids(self) -> set[int]:
        pids = set()
        if self.popen is not None:
            pids.add(self.popen.pid)
        try:
            pids.add(int(Path(self.pidfile).read_text().strip()))
        except (OSError, ValueError):
            pass
        return pids

    def stop(self, timeout: float = 5.0) -> int | None:
        """SIGTERM, then SIGKILL after `timeout`; by pid.  Returns the exit code."""
        if self.popen is None:
            return None
        _Proc("pinctrl-daemon", self.popen, self.pidfile).kill(signal.SIGTERM, timeout)
        return self.popen.returncode

    def log_tail(self, n: int = 40) -> str:
        return tail(self.log_file, n)


# ====================================================================== replay
BACKGROUND_CLASSES = ("periodic_ra", "bfd", "bfd_peer_arp", "garp", "igmp_query", "mld_query",
                      "svc_monitor_probe", "prefix_delegation")


def _l3(frame: bytes) -> tuple[int, int]:
    """(ethertype, offset of L3), skipping VLAN tags."""
    off, et = 12, struct.unpack_from("!H", frame, 12)[0] if len(frame) >= 14 else 0
    while et in (0x8100, 0x88A8) and len(frame) >= off + 6:
        off += 4
        et = struct.unpack_from("!H", frame, off)[0]
    return et, off + 2


def classify_background(port: str, frame: bytes) -> str | None:
    """Class of the periodic traffic pinctrl sends on its own (as the golden
    recording classified it), or None.  Used to ignore such packets when they
    are not part of an exchange's expected replies."""
    try:
        et, o = _l3(frame)
        if et == 0x0806 and len(frame) >= o + 28:
            op = struct.unpack_from("!H", frame, o + 6)[0]
            spa, tpa = frame[o + 14:o + 18], frame[o + 24:o + 28]
            if spa == tpa:
                return "garp"
            if op == 1 and tpa == bytes([172, 16, 0, 253]):
                return "bfd_peer_arp"
            return None
        if et == 0x0800 and len(frame) >= o + 20:
            ihl = (frame[o] & 0x0F) * 4
            proto = frame[o + 9]
            src = frame[o + 12:o + 16]
            l4 = o + ihl
            if proto == 2 and len(frame) > l4 and frame[l4] == 0x11:
                return "igmp_query"
            if proto == 17 and len(frame) >= l4 + 4:
                sport, dport = struct.unpack_from("!HH", frame, l4)
                if dport in (3784, 4784) or sport in (3784,):
                    return "bfd"
            if proto == 6 and src == bytes([10, 0, 1, 2]):
                return "svc_monitor_probe"
            return None
        if et == 0x86DD and len(frame) >= o + 40:
            nh, l4 = frame[o + 6], o + 40
            while nh in (0, 43, 60) and len(frame) >= l4 + 8:   # HBH / routing / dstopts
                nh, l4 = frame[l4], l4 + (frame[l4 + 1] + 1) * 8
            dst = frame[o + 24:o + 40]
            if nh == 58 and len(frame) > l4:
                t = frame[l4]
                if t == 134 and dst == bytes.fromhex("ff020000000000000000000000000001"):
                    return "periodic_ra"
                if t == 130:
                    return "mld_query"
            if nh == 17 and len(frame) >= l4 + 4:
                sport, dport = struct.unpack_from("!HH", frame, l4)
                if dport == 547 and sport == 546:
                    return "prefix_delegation"
                if dport in (3784, 4784):
                    return "bfd"
            return None
    except (struct.error, IndexError):
        return None
    return None


def _mask_allowed(exchange: dict) -> bool:
    ftv = [str(f).strip().lower() for f in exchange.get("fields_that_vary") or []]
    return bool(ftv) and not all(f.startswith("none expected") for f in ftv)


@dataclass
class StepResult:
    title: str
    expected: list[tuple[str, str]]
    got: list[Packet]
    missing: list[tuple[str, str]] = field(default_factory=list)
    unexpected: list[Packet] = field(default_factory=list)
    ignored: list[tuple[str, Packet]] = field(default_factory=list)   # (class, packet)
    elapsed: float = 0.0

    @property
    def ok(self) -> bool:
        return not self.missing and not self.unexpected


@dataclass
class ReplayResult:
    name: str
    steps: list[StepResult]

    @property
    def ok(self) -> bool:
        return all(s.ok for s in self.steps)

    def report(self) -> str:
        lines = [f"exchange {self.name}:"]
        for s in self.steps:
            lines.append(f"  step {s.title!r}: expected {len(s.expected)}, got {len(s.got)} "
                         f"({len(s.ignored)} background ignored) -> {'OK' if s.ok else 'MISMATCH'}")
            for port, hx in s.missing:
                lines.append(f"    missing    {port}: {hx}")
            for p in s.unexpected:
                lines.append(f"    unexpected {p.port}: {p.hex}")
            if s.missing and s.unexpected:
                for port, hx in s.missing:
                    for p in s.unexpected:
                        if p.port == port and len(p.data) * 2 == len(hx):
                            diff = [i for i in range(len(p.data))
                                    if p.data[i] != bytes.fromhex(hx)[i]]
                            lines.append(f"    {port}: same length, differing byte offsets {diff[:40]}")
        return "\n".join(lines)


def replay_exchange(sb: Sandbox, exchange: dict | str,
                    mask: Callable[[str, bytes], bytes] | None = None,
                    timeout: float = 2.0, settle: float = 0.3, quiet: float = 1.0,
                    check: bool = True) -> ReplayResult:
    """Replay a golden exchange step by step: inject every `inject[]` packet on
    its port (keeping the recorded relative timing, capped at 1 s), collect
    what every port transmits, and compare with `replies[]` as multisets of
    (port, bytes).  Packets that the golden run classified as periodic
    background traffic (gARP, periodic RA, BFD, ...) are ignored unless they
    are expected replies.

    Waits until all expected replies have arrived, then `settle` s more for
    extras; a step expecting nothing is watched for `quiet` s.

    `mask(port, frame) -> frame` may blank fields, but only for exchanges whose
    golden `fields_that_vary` admits varying fields.  With check (default) a
    mismatch raises AssertionError with a hex report."""
    if isinstance(exchange, str):
        exchange = load_exchange(exchange)
    if mask is not None and not _mask_allowed(exchange):
        raise ValueError(f"{exchange['name']}: golden fields_that_vary "
                         f"{exchange.get('fields_that_vary')!r} admits no mask")
    norm = mask or (lambda port, data: data)
    results = []
    for step in exchange["steps"]:
        expected = [(r["port"], r["hex"]) for r in step["replies"]]
        exp_norm = collections.Counter((p, norm(p, bytes.fromhex(h))) for p, h in expected)
        need = sum(exp_norm.values())

        def split(pkts: list[Packet]):
            remaining = exp_norm.copy()
            matched, unexpected, ignored = 0, [], []
            for pk in pkts:
                key = (pk.port, norm(pk.port, pk.data))
                if remaining[key] > 0:
                    remaining[key] -= 1
                    matched += 1
                    continue
                cls = classify_background(pk.port, pk.data)
                if cls is not None:
                    ignored.append((cls, pk))
                else:
                    unexpected.append(pk)
            return matched, remaining, unexpected, ignored

        m = sb.mark()
        t0 = time.monotonic()
        t_prev = None
        for inj in step["inject"]:
            t_rel = float(inj.get("t_rel") or 0.0)
            if t_prev is not None and t_rel > t_prev:
                time.sleep(min(t_rel - t_prev, 1.0))
            t_prev = t_rel
            sb.inject(inj["port"], inj["hex"])
        if need:
            pkts = sb.collect(since=m, timeout=timeout, settle=settle,
                              until=lambda pk: split(pk)[0] >= need)
        else:
            pkts = sb.collect(since=m, timeout=quiet)
        matched, remaining, unexpected, ignored = split(pkts)
        missing = []
        for p, h in expected:
            key = (p, norm(p, bytes.fromhex(h)))
            if remaining[key] > 0:
                remaining[key] -= 1
                missing.append((p, h))
        results.append(StepResult(step.get("title", ""), expected, pkts, missing, unexpected,
                                  ignored, time.monotonic() - t0))
    res = ReplayResult(exchange["name"], results)
    if check and not res.ok:
        raise AssertionError(res.report())
    return res
