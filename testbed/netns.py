"""Network namespaces standing in for hosts on a netdev-datapath bridge:
one veth pair per host, the host end on the bridge, the other end inside
the namespace with the logical port's MAC, TX checksum offload off.

    NetNs          one namespace: port it replaces, names, MAC, link-local
    eui64_lla(mac) the link-local address the kernel derives from a MAC
    NetnsHosts     a ProcessGroup that creates, runs commands in and
                   removes such namespaces (Sandbox and the bench's
                   sandbox build on it)

Needs root, `ip` and `ethtool`.  Test (or bench) process, main thread.
"""

from __future__ import annotations

import signal
import subprocess
import time
from dataclasses import dataclass

from testbed.processes import ProcessGroup, SandboxError


def eui64_lla(mac: str) -> str:
    """The link-local address the kernel derives from `mac` (EUI-64)."""
    b = bytes(int(x, 16) for x in mac.split(":"))
    groups = [(b[0] ^ 0x02) << 8 | b[1], b[2] << 8 | 0xFF, 0xFE << 8 | b[3],
              b[4] << 8 | b[5]]
    return "fe80::" + ":".join(f"{g:x}" for g in groups)


@dataclass(frozen=True)
class NetNs:
    """A network namespace standing in for port `port`: veth `host_veth`
    on the bridge, `ifname` with `mac` inside."""
    port: str
    name: str
    host_veth: str
    ifname: str
    mac: str

    @property
    def lla(self) -> str:
        return eui64_lla(self.mac)


class NetnsHosts(ProcessGroup):
    """See the module docstring.  'namespaces' maps the replaced port to
    its NetNs, in creation order; 'netns_ports' is that order (the first
    one is the default of every netns_* method)."""

    def __init__(self, dir: str, env: dict[str, str],
                 netns_ports: tuple[str, ...] = ()) -> None:
        super().__init__(dir, env)
        self.netns_ports = netns_ports
        self.namespaces: dict[str, NetNs] = {}

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
        _add_netns) and add `addrs` ("2001:db8::11/64").  No DAD (an
        address is usable at once: dhclient -6 binds the link-local one), no
        router solicitations or RA processing (OVN's RS answer is another
        opcode; SLAAC would add addresses behind the test's back).  Waits
        for the EUI-64 link-local address of its MAC."""
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

    def _add_netns(self, n: NetNs) -> None:
        """Create namespace 'n' with its veth pair, both ends up.  It is
        registered before it exists, so _remove_netns() cleans up a
        half-made one."""
        self.namespaces[n.port] = n
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

    def _remove_netns(self) -> None:
        """Delete every namespace and host veth, newest first (either may
        be gone already: deleting the netns deletes the pair)."""
        for n in reversed(list(self.namespaces.values())):
            subprocess.run(["ip", "link", "del", n.host_veth], capture_output=True, check=False)
            subprocess.run(["ip", "netns", "del", n.name], capture_output=True, check=False)
        self.namespaces.clear()
