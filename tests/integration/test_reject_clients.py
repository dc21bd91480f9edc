"""Real clients for issue 6: kernel sockets in a network namespace on sw0-p1
(50:54:00:00:00:01, 10.0.0.11, 2001:db8::11) against the recorded ACLs and
routers, answered by the daemon's reject / tcp_reset / icmp actions.

What the recording configured (README-upstream.md, acl_reject_* exchanges):
  to-lport ACLs on outport sw0-p2 (10.0.0.12, 2001:db8::12):
    tcp.dst == 81  reject                 -> RST|ACK          -> ECONNREFUSED
    udp.dst == 81  reject, log(warning)   -> ICMP 3/3, 1/4    -> ECONNREFUSED
    tcp.dst == 83  drop, log(alert)       -> nothing          -> timeout
  lr1 (10.0.0.254, no gateway port) answers TCP to itself with tcp_reset and
  UDP with ICMP port unreachable; lr0 answers TTL 1 with time exceeded.

A refused connection is immediate (well under the socket timeout), so the
reply came from the daemon, not from a retry or a timeout.  The IPv6 cases
also resolve 2001:db8::12 through the daemon's nd_na (the switch answers NS
for its VIFs through pinctrl).
"""

from __future__ import annotations

import json
import re
import shutil
import sys

import pytest

from tests.helpers import unavailable

pytestmark = pytest.mark.integration

# Run in the netns with the test's Python: one connection attempt, its
# outcome as JSON.  argv: tcp|udp host port timeout.
PROBE = r"""
import json, socket, sys, time
proto, host, port, timeout = sys.argv[1], sys.argv[2], int(sys.argv[3]), float(sys.argv[4])
fam = socket.AF_INET6 if ":" in host else socket.AF_INET
s = socket.socket(fam, socket.SOCK_STREAM if proto == "tcp" else socket.SOCK_DGRAM)
s.settimeout(timeout)
t0 = time.monotonic()
try:
    s.connect((host, port))
    if proto == "udp":
        s.send(b"pinctrl-daemon")
        s.recv(100)
    out = "connected" if proto == "tcp" else "answered"
except ConnectionRefusedError:
    out = "refused"
except socket.timeout:
    out = "timeout"
except OSError as e:
    out = "error %s %s" % (e.errno, e.strerror)
print(json.dumps({"outcome": out, "elapsed": time.monotonic() - t0}))
"""
TIMEOUT = 3.0
IMMEDIATE = 1.0       # seconds; a refusal later than this was not our answer


@pytest.fixture(scope="module")
def client(request):
    """The module's sandbox (conftest's shared_netdev_*) with the netns as
    sw0-p1, default routes via lr0; its daemon."""
    if shutil.which("busybox") is None:
        unavailable("missing binary: busybox (traceroute)")
    sb = request.getfixturevalue("shared_netdev_sandbox")
    sb.netns_exec("ip", "addr", "add", "10.0.0.11/24", "dev", sb.ns_ifname)
    sb.netns_exec("ip", "route", "add", "default", "via", "10.0.0.1")
    sb.netns_enable_ipv6("2001:db8::11/64")
    return sb, request.getfixturevalue("shared_netdev_daemon")


def probe(sb, proto: str, host: str, port: int, timeout: float = TIMEOUT) -> dict:
    cp = sb.netns_exec(sys.executable, "-c", PROBE, proto, host, str(port), str(timeout),
                       timeout=timeout + 20)
    return json.loads(cp.stdout)


def counters(daemon, *names: str) -> dict[str, int]:
    cov = daemon.coverage()
    return {n: cov.get(n, 0) for n in names}


def acl_log_lines(daemon) -> list[str]:
    """The text of the daemon's acl_log lines so far (module field
    "acl_log" or "acl_log (<thread>)")."""
    with open(daemon.log_file, errors="replace") as f:
        fields = [l.split("|", 4) for l in f if l.count("|") >= 4]
    return [f[4].strip() for f in fields if f[2].split()[0] == "acl_log"]


REJECTED = [
    # (id, proto, host, port, opcode counters that must grow by one, ACL log)
    ("tcp4_reject_acl", "tcp", "10.0.0.12", 81, ("pinctrl_pin_reject",), None),
    ("udp4_reject_acl", "udp", "10.0.0.12", 81, ("pinctrl_pin_reject", "pinctrl_pin_log"),
     'name="rej-udp81", verdict=reject, severity=warning, direction=to-lport: udp,'),
    ("tcp6_reject_acl", "tcp", "2001:db8::12", 81, ("pinctrl_pin_reject",), None),
    ("udp6_reject_acl", "udp", "2001:db8::12", 81, ("pinctrl_pin_reject", "pinctrl_pin_log"),
     'name="rej-udp81", verdict=reject, severity=warning, direction=to-lport: udp6,'),
    ("tcp4_router_reset", "tcp", "10.0.0.254", 80, ("pinctrl_pin_tcp_reset",), None),
    ("udp4_router_unreachable", "udp", "10.0.0.254", 5000, ("pinctrl_pin_icmp",), None),
    ("tcp6_router_reset", "tcp", "2001:db8::fe", 80, ("pinctrl_pin_tcp_reset",), None),
    ("udp6_router_unreachable", "udp", "2001:db8::fe", 5000, ("pinctrl_pin_icmp",), None),
]


@pytest.mark.parametrize("proto,host,port,grown,log", [c[1:] for c in REJECTED],
                         ids=[c[0] for c in REJECTED])
def test_refused_at_once(client, proto, host, port, grown, log):
    sb, daemon = client
    names = grown + ("pinctrl_total_pin_pkts",)
    before = counters(daemon, *names)
    logs_before = len(acl_log_lines(daemon))
    r = probe(sb, proto, host, port)
    after = counters(daemon, *names)
    delta = {k: after[k] - before[k] for k in names}
    diag = f"{r}\ncounters {delta}\n{daemon.log_tail(20)}"
    assert r["outcome"] == "refused", diag
    assert r["elapsed"] < IMMEDIATE, diag
    for name in grown:
        assert delta[name] == 1, diag
    new_logs = acl_log_lines(daemon)[logs_before:]
    if log:
        assert len(new_logs) == 1 and new_logs[0].startswith(log), (new_logs, diag)
        assert f"tp_dst={port}" in new_logs[0], new_logs
    else:
        assert not new_logs, new_logs


def test_drop_acl_logs_and_times_out(client):
    """tcp.dst == 83 is dropped with log(alert): no answer (the SYN is
    not rejected), one ACL log line."""
    sb, daemon = client
    names = ("pinctrl_pin_log", "pinctrl_pin_reject", "pinctrl_pin_tcp_reset")
    before = counters(daemon, *names)
    logs_before = len(acl_log_lines(daemon))
    r = probe(sb, "tcp", "10.0.0.12", 83, timeout=0.5)
    after = counters(daemon, *names)
    new_logs = acl_log_lines(daemon)[logs_before:]
    assert r["outcome"] == "timeout", r
    assert {k: after[k] - before[k] for k in names} == {
        "pinctrl_pin_log": 1, "pinctrl_pin_reject": 0, "pinctrl_pin_tcp_reset": 0}
    assert len(new_logs) == 1, new_logs
    assert new_logs[0].startswith('name="log-drop83", verdict=drop, severity=alert, '
                                  "direction=to-lport: tcp,"), new_logs
    assert "nw_src=10.0.0.11,nw_dst=10.0.0.12" in new_logs[0], new_logs


def test_traceroute_first_hop_is_the_router(client):
    """TTL 1 through lr0: the router's time exceeded (icmp4 action) names
    10.0.0.1 as hop 1."""
    sb, daemon = client
    before = counters(daemon, "pinctrl_pin_icmp")
    cp = sb.netns_exec("busybox", "traceroute", "-n", "-m", "1", "-q", "1", "-w", "2",
                       "172.16.0.50", check=False, timeout=20)
    after = counters(daemon, "pinctrl_pin_icmp")
    out = cp.stdout + cp.stderr
    assert re.search(r"^\s*1\s+10\.0\.0\.1\s+[\d.]+ ms", out, re.MULTILINE), out
    assert after["pinctrl_pin_icmp"] - before["pinctrl_pin_icmp"] == 1, out
