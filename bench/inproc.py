"""The handler's hot path in one process, without OVS: CPU per answer.

`make bench` measures the daemon end to end beside ovn-controller; on a
2-core machine shared with other work its wall-clock figures are noisy.
This harness isolates the pinctrl_handler thread instead: a fake switch
(a forked child process, so it takes no GIL from the handler) serves
`<dir>/br-int.mgmt`, does the OpenFlow handshake, then keeps a closed loop
of NXT_PACKET_IN2 messages (<= 'outstanding' unanswered) built from the
bench's request frames (bench/frames.py, identifier patched per request)
and the golden recording's packet-in properties (metadata, userdata,
continuation).  The figure reported is the handler thread's own CPU time
(clock_gettime on its pthread CPU clock) per answer, which does not depend
on how busy the other CPU is; answers/s is printed too but is wall-clock.

    .venv/bin/python -m bench.inproc dhcp dns tcp_rst arp_resolve
    .venv/bin/python -m bench.inproc --seconds 5 --outstanding 64 dhcp

put_arp has no answer: the harness sends 'rate' packet-ins per second
(open loop) and reports the handler's CPU per packet-in and how many
bindings reached the handover table.
"""

from __future__ import annotations

import argparse
import os
import socket
import struct
import sys
import tempfile
import threading
import time
from dataclasses import dataclass

from bench import frames
from pinctrl.openflow.oxm import OXM_CLASS_PKT_REGS, Metadata
from pinctrl.support import runtime
from testbed import golden

_HDR = struct.Struct("!BBHI")
_PROP = struct.Struct("!HH")
NXT_PACKET_IN2_HDR = bytes.fromhex("0604000000000000000023200000001e")


@dataclass
class Source:
    """Where a workload's packet-in properties come from: the golden
    exchange and the opcode of the packet-in to take (its first one)."""
    exchange: str
    opcode: int
    reg0_is_target: bool = False     # reg0 carries the frame's next hop


SOURCES = {
    "dhcp": Source("dhcpv4_discover_offer", 2),
    "dns": Source("dns_a_hit", 6),
    "tcp_rst": Source("router_tcp_reset_v4", 11),
    "arp_resolve": Source("arp_resolve_nexthop_put_arp", 0, True),
    "put_arp": Source("arp_resolve_nexthop_put_arp", 1, True),
}


def _golden_packet_in(src: Source) -> bytes:
    for rec in golden.iter_of_messages(golden.load_exchange(src.exchange),
                                       msg="NXT_PACKET_IN2"):
        if int(rec["userdata_hex"][:8], 16) == src.opcode:
            return bytes.fromhex(rec["hex"])
    raise LookupError(f"{src.exchange}: no packet-in with opcode {src.opcode}")


def _props(msg: bytes) -> list[tuple[int, bytes]]:
    out, ofs, end = [], 16, _HDR.unpack_from(msg)[2]
    while ofs < end:
        ptype, plen = _PROP.unpack_from(msg, ofs)
        out.append((ptype, msg[ofs:ofs + (plen + 7) // 8 * 8]))
        ofs += (plen + 7) // 8 * 8
    return out


def _packet_prop(frame: bytes) -> bytes:
    pad = -(4 + len(frame)) % 8
    return _PROP.pack(0, 4 + len(frame)) + frame + bytes(pad)


def _reg0_offset(tail: bytes, tail_ofs: int) -> int | None:
    """Offset in the message of reg0 (the high half of xreg0, unmasked)
    in the METADATA property found in 'tail'."""
    ofs = 0
    while ofs < len(tail):
        ptype, plen = _PROP.unpack_from(tail, ofs)
        if ptype == 6:                       # NXPINT_METADATA
            md = tail[ofs + 4:ofs + plen]
            p = 0
            for e in Metadata.parse(md).entries:
                if e[0] == OXM_CLASS_PKT_REGS and e[1] == 0 and e[4] is None:
                    return tail_ofs + ofs + 4 + p + 4
                p += len(e[2]) + len(e[3]) + (len(e[4]) if e[4] else 0)
        ofs += (plen + 7) // 8 * 8
    return None


def build_messages(workload: str, count: int) -> list[bytes]:
    """'count' distinct NXT_PACKET_IN2 messages of 'workload': the bench
    frame with identifiers 0..count-1, the golden packet-in's other
    properties."""
    src = SOURCES[workload]
    w = frames.WORKLOADS[workload]
    props = _props(_golden_packet_in(src))
    tail = b"".join(p for t, p in props if t != 0)
    tmpl, c0 = w.template()
    out = []
    for ident in range(count):
        f = bytearray(tmpl)
        w.patch(f, ident % w.id_space, c0)
        packet = _packet_prop(bytes(f))
        msg = bytearray(NXT_PACKET_IN2_HDR + packet + tail)
        struct.pack_into("!H", msg, 2, len(msg))
        if src.reg0_is_target:
            ofs = _reg0_offset(tail, 16 + len(packet))
            ip = f[30:34] if workload == "arp_resolve" else f[28:32]
            if ofs is not None:
                msg[ofs:ofs + 4] = ip
        out.append(bytes(msg))
    return out


# --- the fake switch (child process) -------------------------------------------

def _recv_msg(s: socket.socket, buf: bytearray) -> bytes:
    while True:
        if len(buf) >= 8:
            n = _HDR.unpack_from(buf)[2]
            if len(buf) >= n:
                msg = bytes(buf[:n])
                del buf[:n]
                return msg
        chunk = s.recv(65536)
        if not chunk:
            raise EOFError
        buf += chunk


def _handshake(s: socket.socket, buf: bytearray) -> None:
    _recv_msg(s, buf)                                     # HELLO
    s.sendall(bytes.fromhex("060000080000000a"))
    get_config = _recv_msg(s, buf)
    _recv_msg(s, buf)                                     # packet-in format
    s.sendall(bytes.fromhex("0608000c") + get_config[4:8] + bytes(4))
    _recv_msg(s, buf)                                     # SET_CONFIG


def _closed_loop(s: socket.socket, buf: bytearray, msgs: list[bytes],
                 outstanding: int, seconds: float) -> tuple[int, float]:
    """Keep 'outstanding' requests in flight for 'seconds'; (answers,
    elapsed)."""
    n, i, answered = len(msgs), 0, 0
    s.sendall(b"".join(msgs[j % n] for j in range(outstanding)))
    i = outstanding
    t0 = time.perf_counter()
    end = t0 + seconds
    while True:
        chunk = s.recv(1 << 20)
        if not chunk:
            raise EOFError
        buf += chunk
        got, ofs = 0, 0
        while len(buf) - ofs >= 8:
            length = _HDR.unpack_from(buf, ofs)[2]
            if len(buf) - ofs < length:
                break
            mtype = buf[ofs + 1]
            if mtype == 13 or (mtype == 4 and buf[ofs + 15] == 28):
                got += 1
            ofs += length
        del buf[:ofs]
        answered += got
        if time.perf_counter() >= end:
            return answered, time.perf_counter() - t0
        if got:
            s.sendall(b"".join(msgs[(i + j) % n] for j in range(got)))
            i += got


def _open_loop(s: socket.socket, msgs: list[bytes], rate: int,
               seconds: float) -> tuple[int, float]:
    """Send 'rate' messages per second in 1 ms batches; (sent, elapsed)."""
    n, i = len(msgs), 0
    t0 = time.perf_counter()
    while (now := time.perf_counter()) - t0 < seconds:
        due = int((now - t0) * rate)
        if due > i:
            s.sendall(b"".join(msgs[j % n] for j in range(i, due)))
            i = due
        time.sleep(0.001)
    return i, time.perf_counter() - t0


def _ping_pong(s: socket.socket, buf: bytearray, msgs: list[bytes], rate: int,
               seconds: float) -> tuple[int, float, list[float]]:
    """One request at a time, 'rate' per second: (answers, elapsed, round
    trips in µs)."""
    rtts, n, i = [], len(msgs), 0
    t0 = time.perf_counter()
    while (start := time.perf_counter()) - t0 < seconds:
        s.sendall(msgs[i % n])
        _recv_msg(s, buf)
        rtts.append((time.perf_counter() - start) * 1e6)
        i += 1
        pause = t0 + i / rate - time.perf_counter()
        if pause > 0:
            time.sleep(pause)
    return len(rtts), time.perf_counter() - t0, rtts


def _switch(listener: socket.socket, msgs: list[bytes], args: argparse.Namespace,
            report: int) -> None:
    s, _ = listener.accept()
    buf = bytearray()
    _handshake(s, buf)
    time.sleep(0.2)
    os.write(report, b"go\n")
    rtts: list[float] = []
    if args.workload == "put_arp":
        n, elapsed = _open_loop(s, msgs, args.rate, args.seconds)
    elif args.latency:
        n, elapsed, rtts = _ping_pong(s, buf, msgs, args.rate, args.seconds)
    else:
        n, elapsed = _closed_loop(s, buf, msgs, args.outstanding, args.seconds)
    rtts.sort()
    pct = [rtts[min(len(rtts) - 1, int(q * len(rtts)))] if rtts else 0.0
           for q in (0.5, 0.99, 1.0)]
    os.write(report, f"{n} {elapsed} {' '.join(map(str, pct))}\n".encode())
    s.close()


# --- the handler (this process) -------------------------------------------------

class _BusyMain:
    """Stands in for a main thread busy in pure Python (an IDL parsing a
    big update): a thread that never blocks, so the handler gets the GIL
    only when sys.getswitchinterval() makes it drop it."""

    def __init__(self) -> None:
        self._stop = False
        self._thread = threading.Thread(target=self._spin, name="busy-main")
        self._thread.start()

    def _spin(self) -> None:
        d: dict[int, int] = {}
        while not self._stop:
            for i in range(1000):
                d[i] = d.get(i, 0) + i

    def stop(self) -> None:
        self._stop = True
        self._thread.join()


def _thread_cpu(thread_ident: int) -> float:
    return time.clock_gettime(time.pthread_getcpuclockid(thread_ident))


def run(args: argparse.Namespace) -> dict[str, float]:
    """One workload; returns its figures."""
    from pinctrl.db import dns_cache
    from pinctrl.handler_thread import PinctrlHandler
    from pinctrl.shared.state import SharedState

    msgs = build_messages(args.workload, args.distinct)
    d = tempfile.mkdtemp(prefix="pinctrl-inproc-")
    path = os.path.join(d, "br-int.mgmt")
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(path)
    listener.listen(1)
    rfd, wfd = os.pipe()
    pid = os.fork()
    if pid == 0:                                       # the fake switch
        os.close(rfd)
        try:
            _switch(listener, msgs, args, wfd)
        finally:
            os._exit(0)
    os.close(wfd)
    listener.close()
    shared = SharedState()
    shared.set_bridge("br-int", "hv1")
    shared.set_dns_cache(dns_cache.build_dns_cache(
        [("bench", {frames.DNS_NAME: "10.0.0.11 2001:db8::11"}, [1])]))
    handler = PinctrlHandler(shared, d)
    handler.start()
    busy = _BusyMain() if args.busy_main else None
    rd = os.fdopen(rfd)
    try:
        rd.readline()                                  # "go": handshake done
        cpu0 = _thread_cpu(handler.thread.ident)
        n, elapsed, p50, p99, pmax = (float(x) for x in rd.readline().split())
        cpu = _thread_cpu(handler.thread.ident) - cpu0
    finally:
        if busy is not None:
            busy.stop()
        handler.stop()
        os.waitpid(pid, 0)
        os.unlink(path)
        os.rmdir(d)
    out = {"answers": n, "per_s": n / elapsed,
           "handler_cpu_us": 1e6 * cpu / max(n, 1)}
    if args.latency:
        out.update(p50_us=p50, p99_us=p99, max_us=pmax)
    if args.workload == "put_arp":
        out["learnt"] = len(shared.put_mac_bindings.take())
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.inproc",
                                description=__doc__.split("\n\n")[0])
    p.add_argument("workloads", nargs="*", choices=[*sorted(SOURCES), []],
                   help="default: dhcp dns tcp_rst arp_resolve")
    p.add_argument("--seconds", type=float, default=3.0)
    p.add_argument("--outstanding", type=int, default=64)
    p.add_argument("--distinct", type=int, default=4096,
                   help="distinct requests (identifiers) cycled through")
    p.add_argument("--rate", type=int, default=5000,
                   help="put_arp, --latency: per second")
    p.add_argument("--latency", action="store_true",
                   help="one request at a time at --rate/s: round-trip p50/p99/max")
    p.add_argument("--busy-main", action="store_true",
                   help="a busy pure-Python thread beside the handler (GIL waits)")
    p.add_argument("--switch-interval", type=float, default=None,
                   help="sys.setswitchinterval() in seconds (default: the daemon's)")
    p.add_argument("--repeat", type=int, default=1)
    args = p.parse_args(argv)
    sys.setswitchinterval(runtime.GIL_SWITCH_INTERVAL_S
                          if args.switch_interval is None
                          else args.switch_interval)
    print(f"load average {os.getloadavg()[0]:.2f}, "
          f"switch interval {sys.getswitchinterval() * 1e3:g} ms")
    for w in args.workloads or ["dhcp", "dns", "tcp_rst", "arp_resolve"]:
        for _ in range(args.repeat):
            args.workload = w
            r = run(args)
            extra = f"  learnt {r['learnt']}" if "learnt" in r else ""
            if "p99_us" in r:
                extra += (f"  round trip p50 {r['p50_us']:.0f} p99 {r['p99_us']:.0f} "
                          f"max {r['max_us']:.0f} µs")
            print(f"{w:12s} {r['answers']:9.0f} answers  {r['per_s']:9.0f}/s  "
                  f"handler CPU {r['handler_cpu_us']:6.2f} µs/answer{extra}",
                  flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
