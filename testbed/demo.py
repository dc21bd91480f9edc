"""`make run`: a private OVS + OVN Southbound sandbox with the golden DHCP
topology, pinctrl-daemon in the foreground, a DHCP DISCOVER and REQUEST from
sw0-p1, a one-line summary of every reply; then it waits for Ctrl-C and tears
everything down (daemon and sandbox processes, by pid).

    python -m testbed.demo [--keep] [--log-level info]
"""

from __future__ import annotations

import argparse
import ipaddress
import signal
import struct
import sys
import time

from testbed.daemon_under_test import daemon_unavailable
from testbed.golden import load_exchange
from testbed.ovs_sandbox import Sandbox, SandboxError, missing_prerequisites
from testbed.pcap import Packet

DHCP_TYPES = {1: "DISCOVER", 2: "OFFER", 3: "REQUEST", 4: "DECLINE", 5: "ACK", 6: "NAK",
              7: "RELEASE", 8: "INFORM"}


def _ip(b: bytes) -> str:
    return str(ipaddress.IPv4Address(b))


def summarize(port: str, frame: bytes) -> str:
    """One line per frame; DHCPv4 decoded with struct (no scapy)."""
    dst, src = frame[0:6].hex(":"), frame[6:12].hex(":")
    if len(frame) < 14:
        return f"{port}: runt frame ({len(frame)} bytes)"
    (etype,) = struct.unpack_from("!H", frame, 12)
    if etype != 0x0800 or len(frame) < 34:
        return f"{port}: {src} > {dst} ethertype 0x{etype:04x}, {len(frame)} bytes"
    ihl = (frame[14] & 0x0F) * 4
    proto = frame[23]
    ip_src, ip_dst = _ip(frame[26:30]), _ip(frame[30:34])
    l4 = 14 + ihl
    if proto != 17 or len(frame) < l4 + 8:
        return f"{port}: IPv4 {ip_src} > {ip_dst} proto {proto}, {len(frame)} bytes"
    sport, dport = struct.unpack_from("!HH", frame, l4)
    bootp = l4 + 8
    if {sport, dport} != {67, 68} or len(frame) < bootp + 240 \
            or frame[bootp + 236:bootp + 240] != b"\x63\x82\x53\x63":
        return f"{port}: UDP {ip_src}:{sport} > {ip_dst}:{dport}, {len(frame)} bytes"
    (xid,) = struct.unpack_from("!I", frame, bootp + 4)
    yiaddr = _ip(frame[bootp + 16:bootp + 20])
    opts, i = {}, bootp + 240
    while i < len(frame):
        code = frame[i]
        if code == 255:
            break
        if code == 0:
            i += 1
            continue
        if i + 1 >= len(frame):
            break
        ln = frame[i + 1]
        opts.setdefault(code, frame[i + 2:i + 2 + ln])
        i += 2 + ln
    mtype = DHCP_TYPES.get(opts.get(53, b"\0")[0], f"type{opts.get(53, b'?')!r}")
    parts = [f"{port}: DHCP{mtype:<8} xid=0x{xid:08x} yiaddr={yiaddr}"]
    if 54 in opts and len(opts[54]) == 4:
        parts.append(f"server-id={_ip(opts[54])}")
    if 51 in opts and len(opts[51]) == 4:
        parts.append(f"lease={struct.unpack('!I', opts[51])[0]}s")
    if 1 in opts and len(opts[1]) == 4:
        parts.append(f"mask={_ip(opts[1])}")
    if 3 in opts and len(opts[3]) >= 4:
        parts.append(f"router={_ip(opts[3][:4])}")
    parts.append(f"({ip_src} > {ip_dst}, {len(frame)} bytes)")
    return " ".join(parts)


def print_new(sb: Sandbox, mark: dict, seen: int) -> int:
    pkts: list[Packet] = sb.packets_since(mark)
    for p in pkts[seen:]:
        print("  reply  " + summarize(p.port, p.data), flush=True)
    return len(pkts)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m testbed.demo", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--keep", action="store_true", help="keep the sandbox directory")
    ap.add_argument("--log-level", default="info", help="daemon console log level")
    args = ap.parse_args(argv)

    reason = missing_prerequisites()
    if reason:
        print(f"demo: cannot start the sandbox: {reason}", file=sys.stderr)
        return 1
    reason = daemon_unavailable()
    if reason:
        print(f"demo: {reason}", file=sys.stderr)
        return 1

    stop = {"flag": False}

    def on_signal(signum, frame):
        stop["flag"] = True
        raise KeyboardInterrupt

    # Explicit handlers: a shell starts background jobs with SIGINT ignored,
    # and Python then keeps it ignored.
    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)

    sb = Sandbox(keep=args.keep or None)
    try:
        print(f"== starting sandbox in {sb.dir}", flush=True)
        sb.start()
        print(f"   ovs-vswitchd + ovsdb-server + OVN SB up, {len(sb.dump_flows())} flows "
              f"on br-int ({sb.timings['start']:.2f}s)", flush=True)
        print("== starting pinctrl-daemon (console log below)", flush=True)
        daemon = sb.daemon(console=True, console_level=args.log_level, inherit_output=True)
        print("   $ " + " ".join(daemon.command()), flush=True)
        daemon.start(timeout=15)
        print(f"   connected to br-int.mgmt after {daemon.connect_time:.2f}s", flush=True)

        mark = sb.mark()
        seen = 0
        for name in ("dhcpv4_discover_offer", "dhcpv4_request_ack"):
            inj = load_exchange(name)["steps"][0]["inject"][0]
            print(f"== inject on {inj['port']} ({inj['lport']}): {inj['summary']}", flush=True)
            sb.inject(inj["port"], inj["hex"])
            sb.collect(since=mark, timeout=2.0, settle=0.1,
                       until=lambda pk, n=seen: len(pk) > n)
            seen = print_new(sb, mark, seen)
        if not seen:
            print("   (no reply: see the daemon log above)", flush=True)

        ctl, d = sb.vswitchd_ctl, sb.dir
        disc = load_exchange("dhcpv4_discover_offer")["steps"][0]["inject"][0]["hex"]
        print(f"""
== ready.  Sandbox: {d}
   Inject more packets (any hex frame; ports gdvif1..6 on br-int, gdphys on br-phys):
     ovs-appctl -t {ctl} netdev-dummy/receive gdvif1 {disc}
   Replies are appended to {d}/<port>-tx.pcap and summarized here;
     tcpdump -nr {d}/gdvif1-tx.pcap -e -v
   Daemon:  ovs-appctl -t {daemon.ctl} pinctrl/show | coverage/show | vlog/list
   Flows:   OVS_RUNDIR={d} ovs-ofctl -O OpenFlow15 dump-flows br-int
   SB:      ovn-sbctl --db={sb.sb_db} show
   Press Ctrl-C to stop everything.""", flush=True)
        while not stop["flag"]:
            time.sleep(0.2)
            seen = print_new(sb, mark, seen)
            if not daemon.alive():
                print(f"demo: pinctrl-daemon exited with {daemon.popen.returncode}",
                      file=sys.stderr)
                return 1
        return 0
    except KeyboardInterrupt:
        print("\n== interrupted: stopping", flush=True)
        return 0
    except SandboxError as e:
        print(f"demo: {e}", file=sys.stderr)
        return 1
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)   # no second Ctrl-C mid-teardown
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        sb.stop()
        print("== stopped: daemon and sandbox processes ended"
              + (f", kept {sb.dir}" if sb.keep else f", {sb.dir} removed"), flush=True)


if __name__ == "__main__":
    sys.exit(main())
