"""Packet-in flood (issue 9): frames that OVN's flows punt to the controller,
injected into the sandbox's ovs-vswitchd as fast as one pipelined unixctl
connection allows, for a bounded time.  Meanwhile:

  * the daemon's RSS stays bounded (VmRSS sampled before and during);
  * drops are counted (buffered packets beyond 3 per next hop; OVS's own
    packet-in queue overflows, if any, show in the daemon's silence, not
    in its memory);
  * DHCP is still answered (a DISCOVER gets its OFFER);
  * `ovs-appctl -t pinctrl-daemon pinctrl/show` answers within 1 s.

Durations: PINCTRL_FLOOD_SECONDS (default 6; `make soak` sets more).  With
PINCTRL_SOAK_REPORT=<file> a JSON line of measurements is appended for the
soak table (tests/soak/run_soak.py).
"""

from __future__ import annotations

import json
import os
import struct
import threading
import time

import pytest

from testbed.daemon_under_test import UnixctlClient
from testbed.golden import load_exchange

pytestmark = pytest.mark.integration

SECONDS = float(os.environ.get("PINCTRL_FLOOD_SECONDS", "6"))
RSS_GROWTH_MAX_KIB = 64 * 1024      # peak minus warmed-up RSS
APPCTL_MAX_S = 1.0


def rss_kib(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise AssertionError(f"no VmRSS for {pid}")


def injected(name: str) -> list[tuple[str, bytes]]:
    """(port, frame) of every injected packet of a golden exchange."""
    return [(i["port"], bytes.fromhex(i["hex"]))
            for s in load_exchange(name)["steps"] for i in s["inject"]]


def garp(i: int) -> bytes:
    """A gratuitous ARP from the localnet side (punted to put_arp) for
    172.16.0.<100 + i % 150> from a MAC that changes with i."""
    mac = bytes([2, 0, 0, 0x10, (i >> 8) & 0xFF, i & 0xFF])
    ip = bytes([172, 16, 0, 100 + i % 150])
    return (b"\xff" * 6 + mac + b"\x08\x06" + bytes.fromhex("0001080006040001")
            + mac + ip + bytes(6) + ip)


def flood_frames(n: int) -> list[tuple[str, bytes]]:
    """A mix that exercises every queue: UDP to an unknown host (arp +
    buffered packets: far more than 3 per next hop), gARPs (MAC_Binding
    handover), DHCP DISCOVERs (paused, resumed) and DNS queries (paused,
    answered from the SB snapshot)."""
    (port_u, udp_unknown), _ = injected("arp_resolve_sw0_unknown_host")
    (port_d, discover), = injected("dhcpv4_discover_offer")
    (port_q, dns_q), = injected("dns_a_hit")
    out = []
    for i in range(n):
        k = i % 4
        if k == 0:
            out.append((port_u, udp_unknown))
        elif k == 1:
            out.append(("gdphys", garp(i)))
        elif k == 2:
            out.append((port_d, discover))
        else:
            out.append((port_q, dns_q))
    return out


class Flood:
    """Injects flood_frames() in a loop from a thread until stop()."""

    def __init__(self, sb) -> None:
        self.sb = sb
        self.frames = [(p, f.hex()) for p, f in flood_frames(400)]
        self.sent = 0
        self.error: BaseException | None = None
        self._stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        try:
            with UnixctlClient(self.sb.vswitchd_ctl, timeout=30) as c:
                while not self._stop.is_set():
                    self.sent += c.inject(self.frames)
        except BaseException as e:      # reported by stop()
            self.error = e

    def __enter__(self) -> "Flood":
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    def stop(self) -> int:
        self._stop.set()
        self.thread.join(30)
        if self.error is not None:
            raise AssertionError(f"flood injector failed: {self.error!r}")
        return self.sent


def dhcp_answered(sb, timeout: float = 2.0, attempts: int = 1) -> bool:
    """Inject the golden DISCOVER (with a transaction id of ours) up to
    'attempts' times, like a client retrying; True once its OFFER leaves
    on the client's port within 'timeout' of an attempt."""
    return any(_dhcp_attempt(sb, timeout) for _ in range(attempts))


def _dhcp_attempt(sb, timeout: float) -> bool:
    (port, discover), = injected("dhcpv4_discover_offer")
    xid = bytes.fromhex("c0ffee01")
    f = bytearray(discover)
    f[46:50] = xid                                  # a transaction id of ours
    m = sb.mark()
    sb.inject(port, bytes(f))
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for p in sb.packets_since(m, [port]):
            d = p.data
            if (len(d) > 282 and d[12:14] == b"\x08\x00" and d[23] == 17
                    and struct.unpack_from("!HH", d, 34) == (67, 68)
                    and d[46:50] == xid):
                return True
        time.sleep(0.02)
    return False


def report(**fields) -> None:
    path = os.environ.get("PINCTRL_SOAK_REPORT")
    if path:
        with open(path, "a") as f:
            f.write(json.dumps(fields) + "\n")


def test_flood_rss_bounded_drops_counted_still_answering(sandbox, daemon):
    pid = daemon.popen.pid
    # Warm up (imports, first snapshots, one of each packet-in) so the
    # baseline is the steady state, not the start-up.
    with UnixctlClient(sandbox.vswitchd_ctl) as c:
        c.inject_many("gdvif1", [f for _, f in flood_frames(8)][2::4])
    assert dhcp_answered(sandbox), "no OFFER before the flood"
    time.sleep(0.5)
    rss0 = peak = rss_kib(pid)
    pins0 = daemon.coverage().get("pinctrl_total_pin_pkts", 0)

    slowest = 0.0
    answered = tries = 0
    with UnixctlClient(daemon.ctl, timeout=10) as ctl, Flood(sandbox) as fl:
        t_end = time.monotonic() + SECONDS
        while time.monotonic() < t_end:
            _, took = ctl.timed_call("pinctrl/show")
            slowest = max(slowest, took)
            peak = max(peak, rss_kib(pid))
            tries += 1
            # Above capacity OVS drops packet-ins (its queue to us holds
            # 100); a client retries, so do we.
            answered += dhcp_answered(sandbox, timeout=0.5, attempts=3)
        sent = fl.stop()
    assert daemon.alive(), daemon.log_tail()
    cov = daemon.coverage()
    pins = cov.get("pinctrl_total_pin_pkts", 0) - pins0
    dropped = sum(v for k, v in cov.items() if "drop" in k)
    print(f"\nflood {SECONDS:.0f}s: {sent} frames injected, {pins} packet-ins"
          f" handled, RSS {rss0} -> peak {peak} KiB, slowest pinctrl/show "
          f"{slowest * 1000:.0f} ms, DHCP answered {answered}/{tries}, "
          f"drops counted {dropped}")
    report(test="flood", seconds=SECONDS, inputs=sent, packet_ins=pins,
           rss0_kib=rss0, peak_rss_kib=peak, crashes=int(not daemon.alive()),
           slowest_appctl_s=slowest, dhcp_answered=answered, dhcp_tries=tries)

    assert sent > 1000 and pins > 500, (sent, pins)
    assert peak - rss0 < RSS_GROWTH_MAX_KIB, (rss0, peak)
    assert slowest < APPCTL_MAX_S, f"pinctrl/show took {slowest:.2f} s"
    assert answered >= 1 and answered >= tries // 2, (answered, tries)
    # More than 3 frames per unknown next hop: the oldest are dropped,
    # counted (23.03's buffered-packets ring).
    assert cov.get("pinctrl_drop_buffered_packets_oldest", 0) > 0, \
        sorted(cov.items())
    assert cov.get("pinctrl_action_exception", 0) == 0
    assert "Traceback" not in open(daemon.log_file).read()
