"""`make run`: a private OVS + OVN sandbox with the topology of the golden
recording (tests/golden/ovn-23.03), pinctrl-daemon answering, and a short
tour of the exchanges that matter, each frame on one line.

Two modes (`make run MODE=split`):

  takeover  (default) br-int gets the flows real ovn-controller 23.03
            installed for the recording; no ovn-controller runs and the
            daemon answers every packet-in (take-over mode).
  split     real ovn-northd and ovn-controller 23.03 on the recording's
            Northbound; ovn-controller programs br-int through the
            daemon's OpenFlow proxy (--proxy-rundir), the daemon answers
            what it implements (split mode, testbed.live_sandbox).

The tour, injected on the dummy ports with the recording's frames: DHCP
DISCOVER/OFFER and REQUEST/ACK, a DNS query, a Router Solicitation and
its RA, and an ARP resolution through router lr0 (it asks for its next
hop and holds the packets; the answer becomes a Southbound MAC_Binding,
in split mode also ovn-controller's flow, so the next packet is no
longer punted).  Then every frame br-int sends is printed as it comes,
except periodic traffic (gARP, periodic RA, BFD, IGMP/MLD queries, ...),
which is counted: one line per 10 s.  Ctrl-C stops every process by pid.

    python -m testbed.demo [--mode takeover|split] [--keep] [--log-level warn]

Test (demo) process, main thread.
"""

from __future__ import annotations

import re
import warnings

# Import-time warnings of third-party code, not ours: os-ken installs
# eventlet, python-ovs's poller imports it (EventletDeprecationWarning),
# eventlet's greendns imports dnspython, whose DSA module uses
# cryptography's deprecated DSA classes (CryptographyDeprecationWarning,
# eight of them).  Ignored where they are raised, in this process (before
# the imports below) and, through PYTHONWARNINGS, in the daemon's.
QUIET_WARNINGS = (("DSA is deprecated", "dns.dnssecalgs.dsa"),
                  ("", "ovs.poller"))


def quiet_warnings() -> str:
    """Install QUIET_WARNINGS here; the same as a PYTHONWARNINGS value."""
    for msg, mod in QUIET_WARNINGS:
        warnings.filterwarnings("ignore", message=re.escape(msg),
                                module=re.escape(mod) + r"\Z")
    return ",".join(f"ignore:{msg}::{mod}" for msg, mod in QUIET_WARNINGS)


PYTHONWARNINGS = quiet_warnings()

import argparse  # noqa: E402
import collections  # noqa: E402
import os  # noqa: E402
import signal  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from typing import Callable  # noqa: E402

from testbed.daemon_under_test import Daemon, daemon_unavailable  # noqa: E402
from testbed.golden import load_exchange  # noqa: E402
from testbed.live_sandbox import LiveSandbox, missing_ovn  # noqa: E402
from testbed.ovs_sandbox import (Sandbox, SandboxError,  # noqa: E402
                                 missing_prerequisites)
from testbed.pcap import Packet, PcapTail  # noqa: E402
from testbed.wire_summary import periodic_kind, summarize  # noqa: E402

SUMMARY_EVERY = 10.0          # s between two lines of periodic counts
REPLY_TIMEOUT = 3.0           # s to wait for a step's replies
ARP_EXCHANGE = "arp_resolve_nexthop_put_arp"
NEXT_HOP, NEXT_HOP_MAC = "172.16.0.254", "00:00:00:00:fe:fe"

# (title, [(golden exchange, step)]): injected in order.
TOUR = (
    ("DHCPv4: sw0-p1 (gdvif1) asks for an address",
     (("dhcpv4_discover_offer", 0), ("dhcpv4_request_ack", 0))),
    ("DNS: sw0-p1 asks its router for vm1.ovn.test",
     (("dns_a_hit", 0),)),
    ("IPv6 router discovery: sw0-p1 solicits, lr0 advertises",
     (("nd_rs_ra_sw0_dhcpv6_stateful", 0),)),
    (f"ARP resolution through lr0: sw0-p1 sends to 8.8.8.8 via {NEXT_HOP}, "
     "whose MAC is unknown:\n   lr0 asks for it (out br-phys) and holds "
     "the packets",
     ((ARP_EXCHANGE, 0),)),
    (f"... {NEXT_HOP} answers: learnt (put_arp), the held packets leave",
     ((ARP_EXCHANGE, 1),)),
)


def say(text: str = "") -> None:
    print(text, flush=True)


class Watch:
    """What br-int transmits on the sandbox's dummy ports from now on:
    new frames, with periodic ones only counted (by kind and port)."""

    def __init__(self, sb: Sandbox) -> None:
        self.tails = {p: PcapTail(sb.pcap_path(p), start_at_end=True)
                      for p in sb.tx_ports()}
        self.periodic: collections.Counter[tuple[str, str]] = \
            collections.Counter()
        self.since = time.monotonic()

    def poll(self) -> list[Packet]:
        """New frames that are not periodic, by pcap time."""
        new = sorted((Packet(p, r.ts, r.data) for p, t in self.tails.items()
                      for r in t.read_new()), key=lambda pk: pk.ts)
        out = []
        for pk in new:
            kind = periodic_kind(pk.data)
            if kind:
                self.periodic[kind, pk.port] += 1
            else:
                out.append(pk)
        return out

    def wait(self, want: int, timeout: float = REPLY_TIMEOUT,
             settle: float = 0.2) -> list[Packet]:
        """Non-periodic frames until 'want' of them came (and 'settle' s
        more, for extra ones) or 'timeout' s passed."""
        got: list[Packet] = []
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            got += self.poll()
            if len(got) >= want:
                deadline = min(deadline, time.monotonic() + settle)
            time.sleep(0.02)
        return got

    def summary(self) -> str | None:
        """One line of periodic counts every SUMMARY_EVERY s (then the
        counts restart), None in between."""
        now = time.monotonic()
        if now - self.since < SUMMARY_EVERY:
            return None
        by_kind: dict[str, list[str]] = {}
        totals: collections.Counter[str] = collections.Counter()
        for (kind, port), n in sorted(self.periodic.items()):
            totals[kind] += n
            by_kind.setdefault(kind, []).append(f"{port} {n}")
        parts = [f"{kind} {totals[kind]} ({', '.join(ports)})"
                 for kind, ports in by_kind.items()]
        line = (f"   [periodic, last {now - self.since:.0f} s] "
                + ("; ".join(parts) if parts else "none"))
        self.periodic.clear()
        self.since = now
        return line


class Demo:
    """The sandbox, its daemon and the tour (see the module docstring)."""

    def __init__(self, sb: Sandbox, daemon: Daemon, split: bool) -> None:
        self.sb, self.daemon, self.split = sb, daemon, split
        self.watch = Watch(sb)

    def show(self, pk: Packet, t0: float | None = None) -> None:
        after = f"  (+{(pk.ts - t0) * 1000:.0f} ms)" if t0 else ""
        say(f"   < {pk.port:<7} {summarize(pk.data)}{after}")

    def exchange(self, name: str, step: int) -> list[Packet]:
        """Inject the recorded frames of one step, print them and what
        br-int sends back (the non-periodic frames)."""
        st = load_exchange(name)["steps"][step]
        want = sum(1 for r in st.get("replies", ())
                   if not periodic_kind(bytes.fromhex(r["hex"])))
        t0 = time.time()
        for inj in st["inject"]:
            say(f"   > {inj['port']:<7} "
                f"{summarize(bytes.fromhex(inj['hex']))}")
            self.sb.inject(inj["port"], inj["hex"])
        got = self.watch.wait(want)
        for pk in got:
            self.show(pk, t0)
        if len(got) < want:
            say(f"   (expected {want} frames back, saw {len(got)} within "
                f"{REPLY_TIMEOUT:.0f} s: see {self.daemon.log_file})")
        return got

    def tour(self) -> None:
        for title, steps in TOUR:
            say(f"\n== {title}")
            for name, step in steps:
                self.exchange(name, step)
        self.learnt_neighbour()
        if self.split:
            say("\n== ovn-controller's pinctrl connection, as the proxy "
                "saw it")
            for line in self.daemon.show().splitlines():
                if " pinctrl (" in line and "packet-ins" in line:
                    say("   " + line.strip())

    def learnt_neighbour(self) -> None:
        """After the ARP resolution: the MAC_Binding the daemon wrote,
        (split) ovn-controller's flow for it, and the next packet."""
        mac = wait_for(lambda: self.sb.sbctl(
            "--bare", "--columns=mac", "find", "MAC_Binding",
            f"ip={NEXT_HOP}").strip(), 3.0)
        if mac:
            say(f"   Southbound MAC_Binding {NEXT_HOP} is-at {mac} on "
                "lr0-public (written by pinctrl-daemon)")
        t0 = time.monotonic()
        if self.split and wait_for(self.has_neighbour_flow, 10.0):
            say("   ovn-controller turned it into a flow on br-int "
                f"(through the proxy) after {time.monotonic() - t0:.2f} s")
        elif not self.split:
            say("   (take-over mode: no ovn-controller, so it never becomes "
                "a flow; every packet to it is punted)")
        say("\n== the next packet to 8.8.8.8")
        got = self.exchange(ARP_EXCHANGE, 2)
        if any(arp_request_for(pk.data, NEXT_HOP) for pk in got):
            say(f"   punted again: lr0 asked for {NEXT_HOP} once more (the "
                "daemon let the packet go as it knows the MAC_Binding)")
        elif got:
            say("   no ARP this time: ovn-controller's flow sent it "
                "straight out, no packet-in")

    def has_neighbour_flow(self) -> bool:
        return any(f"reg0=0x{ip_hex(NEXT_HOP)}" in f
                   and f"{NEXT_HOP_MAC}->eth_dst" in f
                   for f in self.sb.dump_flows())

    def follow(self, stop: dict[str, bool]) -> int:
        """Print new frames and the periodic counts until stop['flag']."""
        while not stop["flag"]:
            time.sleep(0.2)
            for pk in self.watch.poll():
                self.show(pk)
            line = self.watch.summary()
            if line:
                say(line)
            if not self.daemon.alive():
                print(f"demo: pinctrl-daemon exited with "
                      f"{self.daemon.popen.returncode}", file=sys.stderr)
                return 1
        return 0

    def ready_text(self) -> str:
        sb, d = self.sb, self.sb.dir
        disc = load_exchange("dhcpv4_discover_offer")["steps"][0]["inject"][0]
        text = f"""
== ready.  Sandbox: {d}
   Inject more frames (hex; ports gdvif1..6 on br-int, gdphys on br-phys):
     ovs-appctl -t {sb.vswitchd_ctl} netdev-dummy/receive gdvif1 {disc['hex']}
   Frames br-int sends are printed below (also in {d}/<port>-tx.pcap:
     tcpdump -nr {d}/gdvif1-tx.pcap -e -v)
   Daemon:  ovs-appctl -t {self.daemon.ctl} pinctrl/show | coverage/show
            log: {self.daemon.log_file}
   Flows:   OVS_RUNDIR={d} ovs-ofctl -O OpenFlow15 dump-flows br-int
   SB:      ovn-sbctl --db={sb.sb_db} show"""
        if isinstance(sb, LiveSandbox):
            text += f"""
   NB:      ovn-nbctl --db={sb.nb_db} show
   ovn-controller: ovn-appctl -t {sb.controller_ctl} coverage/show
            log: {d}/ovn-controller.log"""
        return text + "\n   Press Ctrl-C to stop everything."


def arp_request_for(frame: bytes, ip: str) -> bool:
    """Whether 'frame' is an ARP request (untagged) for IPv4 'ip'."""
    return (frame[12:14] == b"\x08\x06" and frame[20:22] == b"\x00\x01"
            and frame[38:42] == bytes(int(x) for x in ip.split(".")))


def ip_hex(ip: str) -> str:
    return "".join(f"{int(x):02x}" for x in ip.split("."))


def wait_for(cond: Callable[[], object], timeout: float) -> object:
    """cond()'s first truthy value within 'timeout' s, else the last."""
    deadline = time.monotonic() + timeout
    while True:
        v = cond()
        if v or time.monotonic() > deadline:
            return v
        time.sleep(0.1)


def build(mode: str, keep: bool | None, level: str) -> tuple[Sandbox, Daemon]:
    """The sandbox of 'mode' and its daemon, not started yet."""
    kw = dict(console=True, console_level=level, inherit_output=True,
              file_level="info")
    sb: Sandbox
    if mode == "split":
        sb = LiveSandbox(keep=keep, **kw)
        daemon = sb.pinctrl
    else:
        sb = Sandbox(keep=keep)
        daemon = sb.daemon(**kw)
    sb.env["PYTHONWARNINGS"] = ",".join(
        filter(None, (os.environ.get("PYTHONWARNINGS"), PYTHONWARNINGS)))
    return sb, daemon


def start(sb: Sandbox, daemon: Daemon) -> None:
    """Start everything; prints what it does."""
    say("   $ " + " ".join(daemon.command()))
    sb.start()
    if isinstance(sb, LiveSandbox):
        say(f"   ovs-vswitchd, ovsdb-servers (recorded NB and SB), "
            f"ovn-northd, pinctrl-daemon, and ovn-controller with "
            f"OVS_RUNDIR={sb.proxy_dir}: {len(sb.dump_flows())} flows "
            f"installed through the proxy ({sum(sb.timings.values()):.1f} s)")
        for line in daemon.show().splitlines():
            if line.strip().startswith(("answered by", "passed to")):
                say("   " + line.strip())
    else:
        say(f"   ovs-vswitchd, ovsdb-server, recorded SB and "
            f"{len(sb.dump_flows())} recorded flows on br-int "
            f"({sb.timings['start']:.1f} s)")
        daemon.start(timeout=15)
        say(f"   pinctrl-daemon connected to br-int.mgmt after "
            f"{daemon.connect_time:.1f} s")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        prog="python -m testbed.demo", description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--mode", choices=("takeover", "split"),
                    default="takeover")
    ap.add_argument("--keep", action="store_true",
                    help="keep the sandbox directory")
    ap.add_argument("--log-level", default="warn",
                    help="daemon console log level (its file logs info)")
    args = ap.parse_args(argv)

    reason = missing_prerequisites() or daemon_unavailable() or (
        missing_ovn() if args.mode == "split" else None)
    if reason:
        print(f"demo: cannot start: {reason}", file=sys.stderr)
        return 1

    stop = {"flag": False}

    def on_signal(signum, frame):
        stop["flag"] = True
        raise KeyboardInterrupt

    # Explicit handlers: a shell starts background jobs with SIGINT ignored,
    # and Python then keeps it ignored.
    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)

    sb: Sandbox | None = None
    try:
        sb, daemon = build(args.mode, args.keep or None, args.log_level)
        say(f"== {args.mode} mode: sandbox in {sb.dir}")
        start(sb, daemon)
        demo = Demo(sb, daemon, args.mode == "split")
        demo.tour()
        say(demo.ready_text())
        return demo.follow(stop)
    except KeyboardInterrupt:
        say("\n== interrupted: stopping")
        return 0
    except SandboxError as e:
        print(f"demo: {e}", file=sys.stderr)
        return 1
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)   # no second Ctrl-C mid-teardown
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        if sb is not None:
            sb.stop()
            say("== stopped: every process of the sandbox ended (by pid)"
                + (f", kept {sb.dir}" if sb.keep else f", {sb.dir} removed"))


if __name__ == "__main__":
    sys.exit(main())
