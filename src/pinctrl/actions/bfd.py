"""handle_bfd_msg (opcode 23) and the BFD session state machine, as OVN
23.03 does them (controller/pinctrl.c pinctrl_check_bfd_msg(),
pinctrl_handle_bfd_msg(), bfd_check_detection_timeout(),
bfd_monitor_send_msg()); RFC 5880 where 23.03 leaves it open.

Two layers:
* pure: check_bfd_msg() (validation of a received control packet) and
  BfdSession (one session's variables and transitions; time is passed
  in, randomness too), unit-tested against RFC 5880 and the recording;
* handle_bfd_msg(), the registered handler (pinctrl_handler thread): the
  checks, then env.bfd (handler/bfd_job.py, which owns the sessions) finds
  the session and runs it; a Poll is answered at once with a Final.

The flows (northd build_lrouter_bfd_flows) send every UDP packet to port
3784 of a router address here, whoever sent it.  23.03 then picks the
session by the packet's source address and Your Discriminator only; here
the packet must also have entered the router through the session's own
port (metadata, reg14) and not through a tunnel interface: BFD from a
workload behind a tunnel is refused, as OVN's fix for CVE-2024-2182 made
OVS refuse it on tunnels (check_tnl_key).

23.03's state machine, kept: a packet with Your Discriminator 0 is ignored
even in state Down (RFC 5880 §6.8.6 would select the session by address;
the peer must echo our discriminator first), diagnostics are never set,
the detection time is the remote multiplier times max(remote Desired Min
TX, local Required Min RX).  Differences (docs/compat.md): the UDP payload
and the Length field are checked against the frame (23.03 read past a
short packet); Required Min RX is kept in microseconds (23.03 truncated a
sub-millisecond value to 0 and stopped sending); the remote Demand bit is
followed both ways (23.03 never cleared it); a Poll is answered in every
state; with a detect multiplier of 1 the transmit interval is 75-90 %
instead of 75-100 % (RFC 5880 §6.8.7).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import ovs.vlog

from pinctrl.actions import action
from pinctrl.actions.env import NO_ENV, HandlerEnv
from pinctrl.actions.replies import LogLine, NoReply, PacketOut, Reporter
from pinctrl.openflow.packet_in import PacketIn
from pinctrl.packet import bfd
from pinctrl.packet.bfd import ADMIN_DOWN, DOWN, INIT, UP, BfdMsg
from pinctrl.packet.flow import (
    ETH_TYPE_IP,
    ETH_TYPE_IPV6,
    IPPROTO_UDP,
    Flow,
    extract,
)
from pinctrl.shared.records import BfdConfig, ipv4_mapped

vlog = ovs.vlog.Vlog("pinctrl")
# 23.03: VLOG_RATE_LIMIT_INIT(30, 30), debug level, for every check.
reporter = Reporter(vlog, 30, 30, default_site="bfd")

INITIAL_DETECTION_MS = 30000     # 23.03's until the peer is heard
C_DROP = "pinctrl_bfd_drop_"


def _drop(reason: str, text: str) -> NoReply:
    return NoReply(C_DROP + reason, text, "dbg")


def udp_payload(packet: bytes, f: Flow) -> bytes:
    """The UDP payload as far as both the UDP length and the frame go."""
    assert f.l4_ofs is not None
    start = f.l4_ofs + 8
    udp_len = int.from_bytes(packet[f.l4_ofs + 4:f.l4_ofs + 6], "big")
    end = min(f.l4_ofs + udp_len, f.l4_end)
    return packet[start:end] if end > start else b""


def check_bfd_msg(packet: bytes) -> tuple[Flow, BfdMsg]:
    """Pure.  pinctrl_check_bfd_msg(): the flow and the control packet of
    a BFD packet-in, or NoReply with the reason (counted
    pinctrl_bfd_drop_<reason>, logged at debug level as 23.03)."""
    f = extract(packet)
    if f.dl_type not in (ETH_TYPE_IP, ETH_TYPE_IPV6):
        raise _drop("not_ip", f"BFD action on non-IP packet ({f.dl_type:x})")
    if f.nw_proto != IPPROTO_UDP or not f.l4_ok or f.l4_ofs is None:
        raise _drop("not_udp", f"BFD action on non-UDP packet {f.nw_proto:02x}")
    if f.tp_dst != bfd.BFD_DEST_PORT:
        raise _drop("port", f"BFD action on wrong UDP dst port ({f.tp_dst:x})")
    payload = udp_payload(packet, f)
    msg = bfd.parse_bfd(payload)
    if msg is None:
        raise _drop("short", f"BFD action: packet is too short {len(payload)}")
    if msg.version != bfd.BFD_VERSION:
        raise _drop("version", f"BFD action: unsupported version {msg.version}")
    if msg.flags & bfd.FLAG_AUTH:
        raise _drop("auth", "BFD action: AUTH not supported yet")
    if msg.length < bfd.BFD_PACKET_LEN or msg.length > len(payload):
        raise _drop("length", f"BFD action: packet is too short "
                    f"{msg.length}" if msg.length < bfd.BFD_PACKET_LEN
                    else f"BFD action: length {msg.length} beyond the UDP "
                    "payload")
    if not msg.mult:
        raise _drop("mult", "BFD action: multiplier not set")
    if msg.flags & bfd.FLAG_MULTIPOINT:
        raise _drop("multipoint", "BFD action: MULTIPOINT not supported yet")
    if not msg.my_disc:
        raise _drop("my_disc", "BFD action: my_disc not set")
    if msg.flags & bfd.FLAG_FINAL and msg.flags & bfd.FLAG_POLL:
        raise _drop("flags", f"BFD action: wrong flags combination {msg.flags:08x}")
    if msg.state >= INIT and not msg.your_disc:
        raise _drop("your_disc", f"BFD action: remote state is "
                    f"{bfd.STATE_NAMES[msg.state]} and your_disc is not set")
    return f, msg


def source_ip(f: Flow) -> bytes:
    """The packet's source as 16 bytes (IPv4-mapped for IPv4)."""
    if f.dl_type == ETH_TYPE_IP:
        return ipv4_mapped(int.from_bytes(f.nw_src, "big"))
    return f.ipv6_src


class RxResult(NamedTuple):
    """What one received packet did to a session."""
    changed: bool           # the state changed
    final: bool             # answer with a Final now (the packet polled)


class BfdSession:
    """One session's variables (RFC 5880 §6.8.1, as 23.03's struct
    bfd_entry).  Pure: callers pass the time (msec) and the random source.
    Owned by the pinctrl_handler thread (handler/bfd_job.py)."""

    __slots__ = ("cfg", "state", "remote_disc", "remote_state",
                 "remote_min_rx_us", "remote_demand", "detection_ms",
                 "last_rx", "next_tx")

    def __init__(self, cfg: BfdConfig, now: int) -> None:
        self.cfg = cfg
        # 23.03 starts in AdminDown and leaves it on the next main-loop
        # run unless SB says admin_down; here directly.
        self.state = ADMIN_DOWN if cfg.admin_down else DOWN
        self.remote_disc = 0
        self.remote_state = DOWN
        self.remote_min_rx_us = 1       # RFC 5880 §6.8.1: 1 until heard
        self.remote_demand = False
        self.detection_ms = INITIAL_DETECTION_MS
        self.last_rx = now
        self.next_tx = now              # the first packet at once

    @property
    def status(self) -> str:
        """SB BFD.status for the current state."""
        return bfd.STATE_NAMES[self.state]

    def configure(self, cfg: BfdConfig) -> bool:
        """A new configuration of the same session: intervals, multiplier
        and admin state (bfd_monitor_check_sb_conf() and the admin_down
        branches of bfd_monitor_run()).  Leaving AdminDown goes Down, as
        entering it; neither is written to SB (23.03).  True if the state
        changed."""
        old, self.cfg = self.state, cfg
        if cfg.admin_down and self.state != ADMIN_DOWN:
            self.state, self.remote_disc = ADMIN_DOWN, 0
        elif not cfg.admin_down and self.state == ADMIN_DOWN:
            self.state, self.remote_disc = DOWN, 0
        return self.state != old

    def receive(self, msg: BfdMsg, now: int) -> RxResult:
        """RFC 5880 §6.8.6 for a packet check_bfd_msg() accepted and whose
        Your Discriminator selected this session."""
        self.remote_disc = msg.my_disc
        self.remote_state = msg.state
        self.remote_min_rx_us = msg.min_rx
        self.remote_demand = bool(msg.flags & bfd.FLAG_DEMAND)
        self.detection_ms = msg.mult * max(msg.min_tx // 1000,
                                           self.cfg.min_rx)
        final = bool(msg.flags & bfd.FLAG_POLL)
        old = self.state
        if old == ADMIN_DOWN:
            return RxResult(False, final)
        self.last_rx = now
        peer = msg.state
        if peer == ADMIN_DOWN:
            if old != DOWN:
                self.state = DOWN
        elif old == DOWN:
            if peer == DOWN:
                self.state = INIT
            elif peer == INIT:
                self.state = UP
        elif old == INIT:
            if peer in (INIT, UP):
                self.state = UP
        elif peer == DOWN:          # Up
            self.state = DOWN
        return RxResult(self.state != old, final)

    def detection_deadline(self) -> int | None:
        """When the session goes Down if nothing is received (only Init
        and Up time out)."""
        if self.state in (INIT, UP) and self.detection_ms:
            return self.last_rx + self.detection_ms
        return None

    def check_timeout(self, now: int) -> bool:
        """bfd_check_detection_timeout(): Down when the detection time
        passed without a packet; the remote discriminator is forgotten
        (RFC 5880 §6.8.1).  True if it went Down."""
        deadline = self.detection_deadline()
        if deadline is None or now < deadline:
            return False
        self.state = DOWN
        self.remote_disc = 0
        return True

    def may_send(self) -> bool:
        """Periodic transmission is on: the peer wants packets (Required
        Min RX not 0), we are not AdminDown, and Demand mode is not active
        (RFC 5880 §6.8.7)."""
        if not self.remote_min_rx_us or self.state == ADMIN_DOWN:
            return False
        return not (self.remote_demand and self.state == UP
                    and self.remote_state == UP)

    def tx_interval(self, rand: Callable[[int], int]) -> int:
        """The next transmit interval (msec): max(local Desired Min TX,
        remote Required Min RX) less 0-25 % jitter (10-25 % with a
        multiplier of 1).  'rand(n)' is uniform in [0, n)."""
        tx = max(self.cfg.min_tx, -(-self.remote_min_rx_us // 1000))
        if tx >= 4:
            if self.cfg.mult == 1:
                tx -= tx // 10 + rand(tx * 15 // 100 + 1)
            else:
                tx -= rand(tx // 4)
        return tx

    def sent(self, now: int, rand: Callable[[int], int]) -> None:
        """A periodic packet went out at 'now': schedule the next."""
        self.next_tx = now + self.tx_interval(rand)

    def frame(self, final: bool = False) -> bytes:
        """The control packet for the current state (bfd_monitor_put_bfd_msg)."""
        c = self.cfg
        return bfd.bfd_frame(c.src_mac, c.ip_src, c.ip_dst, c.src_port,
                             bfd.bfd_payload(self.state, c.mult, c.disc,
                                             self.remote_disc, c.min_tx,
                                             c.min_rx, final))


@action(23, "handle_bfd_msg")
def handle_bfd_msg(pin: PacketIn, env: HandlerEnv = NO_ENV,
                   now: int = 0) -> PacketOut | None:
    """pinctrl_handle_bfd_msg() (pinctrl_handler thread): validate, then
    let the session table run the state machine; the reply is the Final
    answering a Poll, if any."""
    try:
        f, msg = check_bfd_msg(pin.packet)
    except NoReply as e:
        reporter.report(e)
        return None
    sessions = env.bfd
    if sessions is None:
        return None
    md = pin.metadata
    out, reason = sessions.receive(md.datapath, md.reg(14), md.in_port,
                                   source_ip(f), msg, now)
    if reason is not None:
        reporter.count(C_DROP + reason, (LogLine(
            "dbg", f"BFD packet from port {md.in_port} (datapath "
            f"{md.datapath}, inport {md.reg(14)}) matches no session "
            f"({reason})"),))
    return out
