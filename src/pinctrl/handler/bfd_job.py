"""BFD sessions: the table, the transmit schedule, detection timeouts and
the batched SB status hand-over (a handler job).  OVN 23.03's
bfd_monitor_send_msg(), bfd_monitor_need_update() and the session lookup
of pinctrl_handle_bfd_msg() (controller/pinctrl.c).

The main thread plans the sessions (db/bfd_plan.py: one BfdConfig per SB
BFD row resident here) and publishes them in SharedState; BfdJob owns the
sessions (actions/bfd.py BfdSession) and is reached by handle_bfd_msg
through env.bfd.  Everything here runs on the pinctrl_handler thread.

* Transmit: a session sends when its next_tx is due, then waits
  max(local min_tx, remote min_rx) less jitter; packets are injected into
  the router pipeline as if the router port had sent them (metadata,
  reg14, resubmit(CONTROLLER, 8)), so the router resolves the next hop.
* Status: a state change is put in SharedState.bfd_status at once (the
  main thread writes it whenever it runs), but the main thread is woken
  only when 10 changes piled up or the oldest is 5 s old
  (BFD_UPDATE_BATCH_TH, BFD_UPDATE_TIMEOUT); a detection timeout wakes it
  at once.  As in 23.03 (recording: "up" reached SB 3.6 s after the
  session came up).
"""

from __future__ import annotations

import random
from collections.abc import Callable, Mapping

import ovs.poller
import ovs.vlog

from pinctrl.actions.bfd import BfdSession
from pinctrl.actions.env import HandlerEnv, HandoverPut
from pinctrl.actions.replies import PacketOut
from pinctrl.handler.garp_job import inport_actions
from pinctrl.openflow import messages as ofmsg
from pinctrl.packet.bfd import DOWN, BfdMsg, is_ipv4_mapped
from pinctrl.packet.flow import fmt_ip6
from pinctrl.packet.headers import fmt_ip4
from pinctrl.shared.records import BfdConfig
from pinctrl.support import appctl, coverage
from pinctrl.support.log import RateLimit, rl_log

vlog = ovs.vlog.Vlog("pinctrl")
_rl = RateLimit(30, 30)

BFD_UPDATE_BATCH_TH = 10
BFD_UPDATE_TIMEOUT = 5000       # ms


def random_range(n: int) -> int:
    """OVS random_range(n): uniform in [0, n)."""
    return random.randrange(n) if n > 0 else 0


def _identity(c: BfdConfig) -> tuple:
    """What makes a session: a change of any of these restarts it."""
    return (c.logical_port, c.src_mac, c.ip_src, c.ip_dst, c.disc,
            c.dp_key, c.port_key)


class BfdJob:
    """The BFD sessions of this chassis (pinctrl_handler thread only).

    'get_snapshot' returns (version, {bfd_key: BfdConfig}); 'status' is
    the handover table of SB status writes (bfd_key -> status);
    'notify_main' wakes the main thread; 'rand(n)' draws the jitter."""

    def __init__(self, get_snapshot: Callable[[], tuple[int, Mapping]],
                 status: HandoverPut[str, str],
                 notify_main: Callable[[], None],
                 rand: Callable[[int], int] = random_range,
                 now: int = 0) -> None:
        self._get_snapshot = get_snapshot
        self._status = status
        self._notify_main = notify_main
        self._rand = rand
        self._version: int | None = None
        self.sessions: dict[str, BfdSession] = {}
        self._by_disc: dict[int, str] = {}
        self._pending = 0               # status changes not yet notified
        self._last_update = now
        self._wake: int | None = None   # earliest deadline, None: none

    # --- the snapshot ----------------------------------------------------
    def update(self, snapshot: Mapping[str, BfdConfig], now: int) -> None:
        """Diff in a new session set: new sessions start Down (or
        AdminDown) and send at once, removed ones stop, a changed identity
        restarts one, other changes (intervals, admin state) apply in
        place (pinctrl_handler thread, on a new snapshot version)."""
        for key in [k for k in self.sessions if k not in snapshot]:
            del self.sessions[key]
        for key, cfg in snapshot.items():
            s = self.sessions.get(key)
            if s is None or _identity(s.cfg) != _identity(cfg):
                self.sessions[key] = BfdSession(cfg, now)
            else:
                s.configure(cfg)
        self._by_disc = {s.cfg.disc: k for k, s in self.sessions.items()}
        self._wake = now

    # --- received packets (env.bfd) ----------------------------------------
    def receive(self, dp_key: int, port_key: int, in_port: int,
                ip_src: bytes, msg: BfdMsg, now: int
                ) -> tuple[PacketOut | None, str | None]:
        """handle_bfd_msg's lookup and state machine (actions.env
        BfdSessions).  The session is the one whose discriminator the
        packet names; it must come from the session's peer, into the
        session's router port, and not through a tunnel."""
        key = self._by_disc.get(msg.your_disc)
        if key is None:
            return None, "no_session"
        s = self.sessions[key]
        c = s.cfg
        if ip_src != c.ip_dst:
            return None, "wrong_source"
        if (dp_key, port_key) != (c.dp_key, c.port_key):
            return None, "wrong_port"
        if in_port in c.tunnel_ofports:
            return None, "tunnel"
        rx = s.receive(msg, now)
        coverage.inc("pinctrl_bfd_rx")
        if rx.changed:
            self._changed(key, s, now)
        for t in (s.next_tx if s.may_send() else None,
                  s.detection_deadline()):
            if t is not None:
                self._wake = t if self._wake is None else min(self._wake, t)
        if not rx.final:
            return None, None
        coverage.inc("pinctrl_bfd_tx_final")
        return PacketOut(s.frame(final=True),
                         inport_actions(c.dp_key, c.port_key)), None

    def _changed(self, key: str, s: BfdSession, now: int,
                 at_once: bool = False) -> None:
        """Hand the new status over; a Down forgets the peer's
        discriminator (23.03 does it when writing the status)."""
        coverage.inc("pinctrl_bfd_state_change")
        rl_log(vlog, "dbg", _rl, f"BFD session {key} "
               f"({s.cfg.logical_port}) is now {s.status}")
        if s.state == DOWN:
            s.remote_disc = 0
        self._status.put(key, s.status)
        if at_once:
            self._last_update = now
            self._pending = 0
            self._notify_main()
        else:
            self._pending += 1

    def _need_update(self, now: int) -> bool:
        """bfd_monitor_need_update(): time to wake the main thread for the
        batched status changes."""
        if not self._pending:
            return False
        if (self._pending < BFD_UPDATE_BATCH_TH
                and now <= self._last_update + BFD_UPDATE_TIMEOUT):
            return False
        self._last_update = now
        self._pending = 0
        return True

    # --- HandlerJob protocol ----------------------------------------------
    def run(self, env: HandlerEnv, now: int) -> list[bytes]:
        """New snapshot, batched notification, timeouts, due packets
        (pinctrl_handler thread, while connected).  Nothing is scanned
        before the earliest deadline."""
        version, snapshot = self._get_snapshot()
        if version != self._version:
            self._version = version
            self.update(snapshot, now)
        if self._need_update(now):
            self._notify_main()
        if self._wake is None or now < self._wake:
            return []
        out = []
        wake: int | None = None
        for key, s in self.sessions.items():
            if s.check_timeout(now):
                self._changed(key, s, now, at_once=True)
            if now >= s.next_tx and s.may_send():
                c = s.cfg
                out.append(ofmsg.packet_out(
                    env.next_xid(), inport_actions(c.dp_key, c.port_key),
                    s.frame()))
                s.sent(now, self._rand)
                coverage.inc("pinctrl_bfd_tx")
            for t in (s.next_tx if s.may_send() else None,
                      s.detection_deadline()):
                if t is not None and (wake is None or t < wake):
                    wake = max(t, now + 1)
        self._wake = wake
        return out

    def wait(self, poller: ovs.poller.Poller, now: int) -> None:
        """Arm a timer for the next packet, timeout or batched status
        notification (pinctrl_handler thread)."""
        when = self._wake
        if self._pending:
            batch = self._last_update + BFD_UPDATE_TIMEOUT + 1
            when = batch if when is None else min(when, batch)
        if when is not None:
            poller.timer_wait_until(when)


def _fmt(ip16: bytes) -> str:
    return fmt_ip4(ip16[12:]) if is_ipv4_mapped(ip16) else fmt_ip6(ip16)


@appctl.command("pinctrl/bfd")
def _cmd_bfd(ctx: appctl.CommandContext, args: list[str]) -> str:
    """ovs-appctl pinctrl/bfd (main thread): the sessions the handler
    runs, as the main thread planned them (the state lives in the handler
    and reaches SB BFD.status)."""
    version, entries = ctx.shared.get_bfd()
    lines = [f"BFD sessions (snapshot {version}): {len(entries)}"]
    for key, c in sorted(entries.items()):
        lines.append(
            f"  {c.logical_port} {_fmt(c.ip_src)} -> {_fmt(c.ip_dst)} "
            f"udp {c.src_port} disc {c.disc} tx {c.min_tx} ms rx "
            f"{c.min_rx} ms mult {c.mult}"
            + (" admin_down" if c.admin_down else ""))
    return "\n".join(lines) + "\n"

