"""Service monitors against real servers (issue 20): sw1-p4 (gdvif4) is a
network namespace on the netdev sandbox (10.0.1.11,
2001:db8:1::5254:ff:fe00:4) running socat servers behind three
Service_Monitor rows: the recording's TCP 10.0.1.11:80, and UDP
10.0.1.11:5353 and TCP [2001:db8:1::5254:ff:fe00:4]:80 created here; all
probing every second, timeout 1 s, offline after 2 failures.

A live server makes its monitor "online" (TCP: the kernel's SYN-ACK; UDP:
silence); killed, the kernel answers with a RST or an ICMP port
unreachable and the monitor goes "offline" within interval x
failure_count (+ slack); restarted, "online" again.  Every server is
stopped by pid, also on failure (the sandbox's process group).
"""

from __future__ import annotations

import shutil
import time

import pytest

from tests.helpers import unavailable
from tests.integration.test_neighbor_golden import sb_rows

pytestmark = pytest.mark.integration

NETNS_PORTS = ("gdvif4",)       # read by conftest's shared_netdev_sandbox
MONITOR = "76f58b40-47c5-46f1-81e7-471f8fbd4185"   # the recording's TCP row
IP4, IP6 = "10.0.1.11", "2001:db8:1::5254:ff:fe00:4"
SRC6 = "2001:db8:1::2"
SVC_MAC = "0a:00:00:00:00:fe"
INTERVAL, FAILURES = 1, 2
OPTIONS = (f"options:interval={INTERVAL}", "options:timeout=1",
           f"options:failure_count={FAILURES}", "options:success_count=1")
SLACK = 2.5
SERVERS = {"tcp": ("TCP6-LISTEN:80,fork,reuseaddr", "/dev/null"),
           "udp": ("-u", "UDP6-RECV:5353", "/dev/null")}


@pytest.fixture(scope="module")
def peers(shared_netdev_sandbox, shared_netdev_daemon):
    if shutil.which("socat") is None:
        unavailable("missing binary: socat (make deps)")
    sb = shared_netdev_sandbox
    sb.netns_exec("ip", "addr", "add", f"{IP4}/24", "dev", sb.ns_ifname)
    sb.netns_enable_ipv6(f"{IP6}/64")
    # No ND responder for the probes' IPv6 source in the recorded flows.
    sb.netns_exec("ip", "-6", "neigh", "add", SRC6, "lladdr", SVC_MAC,
                  "dev", sb.ns_ifname)
    # One port unreachable per probe, however close together.
    for knob in ("icmp_ratelimit=0", "icmp_msgs_per_sec=100000"):
        sb.netns_exec("sysctl", "-qw", f"net.ipv4.{knob}")
    sb.netns_exec("sysctl", "-qw", "net.ipv6.icmp.ratelimit=0")
    sb.sbctl("set", "Service_Monitor", MONITOR, *OPTIONS)
    udp = sb.sbctl("create", "Service_Monitor", f"ip={IP4}", "protocol=udp",
                   "port=5353", "logical_port=sw1-p4", f'src_mac="{SVC_MAC}"',
                   "src_ip=10.0.1.2", *OPTIONS).strip()
    tcp6 = sb.sbctl("create", "Service_Monitor", f'ip="{IP6}"',
                    "protocol=tcp", "port=80", "logical_port=sw1-p4",
                    f'src_mac="{SVC_MAC}"', f'src_ip="{SRC6}"',
                    *OPTIONS).strip()
    return sb, {"tcp": MONITOR, "udp": udp, "tcp6": tcp6}


def status(sb, uuid: str) -> str | None:
    for r in sb_rows(sb, "Service_Monitor", "_uuid,status"):
        if r["_uuid"] == uuid:
            return r["status"] or None
    return None


def wait_status(sb, uuid: str, want: str, timeout: float) -> float:
    t0 = time.monotonic()
    while status(sb, uuid) != want:
        if time.monotonic() - t0 > timeout:
            pytest.fail(f"Service_Monitor {uuid}: {status(sb, uuid)!r}, "
                        f"not {want!r} after {timeout} s")
        time.sleep(0.05)
    return time.monotonic() - t0


def start(sb, proto: str) -> None:
    sb.netns_spawn(f"socat-{proto}", "socat", *SERVERS[proto])


def stop(sb, proto: str) -> None:
    sb.netns_stop(f"socat-{proto}")


@pytest.mark.parametrize("proto", ["tcp", "udp"])
def test_server_killed_and_restarted(peers, proto):
    sb, monitors = peers
    uuid = monitors[proto]
    start(sb, proto)
    try:
        wait_status(sb, uuid, "online", 10)
        if proto == "tcp":
            # The same server answers the IPv6 monitor.
            wait_status(sb, monitors["tcp6"], "online", 5)
    finally:
        stop(sb, proto)
    took = wait_status(sb, uuid, "offline", INTERVAL * FAILURES + SLACK)
    print(f"\n{proto}: offline {took:.2f} s after the server stopped")
    start(sb, proto)
    try:
        took = wait_status(sb, uuid, "online", INTERVAL + SLACK)
        print(f"{proto}: online {took:.2f} s after the server restarted")
    finally:
        stop(sb, proto)
