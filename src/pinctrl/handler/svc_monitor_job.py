"""Load-balancer service monitors: the probes and their state machine
(pinctrl_handler thread).  OVN 23.03 controller/pinctrl.c
svc_monitors_run(), svc_monitor_send_health_check(),
pinctrl_handle_tcp_svc_check() and the port-unreachable half of
pinctrl_handle_svc_check().

For every monitor of the main thread's snapshot (db/svc_monitor_plan.py:
the Service_Monitor rows whose backend port is bound here):

* a probe goes out at once, then 'interval' after the last verdict: a TCP
  SYN from a random port >= 1024 with a random sequence number, or a UDP
  datagram from a port drawn once; injected as 23.03's local output to
  the backend's port (openflow/inject.local_output_actions);
* verdicts: a SYN-ACK acknowledging the probe is a success (answered with
  RST|ACK, seq = its ack + 1, ack = its seq + 1, as 23.03), a RST
  acknowledging it a failure; a port unreachable quoting the UDP probe a
  failure; no answer within 'timeout' a failure for TCP and a success for
  UDP;
* 'success_count' successes in a row make the status "online",
  'failure_count' failures "offline" (counted from the last status
  change); each status change goes to the main thread through
  SharedState.svc_status (db/writers/svc_monitor.py writes
  Service_Monitor.status).

Replies arrive through actions/svc_monitor.py (handle_svc_check), which
reaches this job as env.svc_monitors: on_reply() takes only a reply to
the monitor's current probe (port, acknowledgement number), anything
else is refused with a reason the action counts (CVE-2023-3153: any
workload can send frames to svc_monitor_mac, each one is punted).

Deviations: 23.03 re-examines every monitor on every loop iteration; here
each monitor is woken only when due (a heap) or when a reply changed it.
Its sequence numbers and ports come from a CSPRNG (23.03: random_uint32()),
since a guessed one lets a workload mark a dead backend online.  A reply
before the first probe is refused (23.03 compares with uninitialised
values).
"""

from __future__ import annotations

import heapq
import itertools
import secrets
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING

import ovs.poller

from pinctrl.actions.env import HandoverPut
from pinctrl.actions.replies import PacketOut
from pinctrl.openflow import messages as ofmsg
from pinctrl.openflow.inject import local_output_actions
from pinctrl.packet.svc_monitor import (
    TCP_ACK,
    TCP_RST,
    TCP_SYN,
    SvcReply,
    build_tcp_probe,
    build_udp_probe,
)
from pinctrl.shared.records import (
    IPV4_MAPPED_PREFIX,
    SvcKey,
    SvcMonitorConfig,
)
from pinctrl.support import coverage

if TYPE_CHECKING:
    from pinctrl.handler.dispatch import Env

S_INIT, S_WAITING, S_ONLINE, S_OFFLINE = range(4)
ONLINE, OFFLINE = "online", "offline"
MIN_SRC_PORT = 1024
PAST_DUE_RECHECK_MS = 1000      # see mcast_job.py / garp_job.py


def random_seq() -> int:
    return secrets.randbits(32)


def random_port() -> int:
    """23.03's get_random_src_port(): uniform in [1024, 65535]."""
    return MIN_SRC_PORT + secrets.randbelow(0x10000 - MIN_SRC_PORT)


class _Monitor:
    """One monitor's state (23.03 struct svc_monitor)."""
    __slots__ = ("cfg", "state", "status", "n_success", "n_failures",
                 "wait_time", "next_send", "seq_no", "tp_src", "due")

    def __init__(self, cfg: SvcMonitorConfig) -> None:
        self.cfg = cfg
        self.state = S_INIT
        self.status: str | None = None      # unknown until a verdict
        self.n_success = self.n_failures = 0
        self.wait_time = self.next_send = 0
        self.seq_no = self.tp_src = 0
        self.due: int | None = None


class SvcMonitorJob:
    """The handler job of the service monitors (module docstring), and
    what handle_svc_check reaches as env.svc_monitors.  pinctrl_handler
    thread only.  'get_snapshot' returns (version, {SvcKey:
    SvcMonitorConfig}); 'status' is the hand-over to the main thread;
    'seq' and 'port' draw probe sequence numbers and source ports
    (injectable for tests)."""

    def __init__(self, get_snapshot: Callable[[], tuple[int, Mapping]],
                 status: HandoverPut[SvcKey, str],
                 notify_main: Callable[[], None],
                 seq: Callable[[], int] = random_seq,
                 port: Callable[[], int] = random_port) -> None:
        self._get_snapshot = get_snapshot
        self._handover = status
        self._notify_main = notify_main
        self._seq, self._port = seq, port
        self._version: int | None = None
        self.monitors: dict[SvcKey, _Monitor] = {}
        self._heap: list[tuple[int, int, SvcKey, _Monitor]] = []
        self._order = itertools.count()
        self._touched: set[SvcKey] = set()      # changed by a reply
        self._unreported: set[SvcKey] = set()   # status not handed over

    # --- handle_svc_check (actions.env.SvcMonitors) --------------------------
    def on_reply(self, dp_key: int, port_key: int, reply: SvcReply,
                 now: int) -> tuple[PacketOut | None, str | None]:
        """pinctrl_handler thread, from handle_svc_check (see
        actions.env.SvcMonitors)."""
        key = (dp_key, port_key, reply.ip, reply.port, reply.protocol)
        m = self.monitors.get(key)
        if m is None:
            return None, "no_monitor"
        if m.state == S_INIT or reply.probe_port != m.tp_src:
            return None, "unexpected"
        out = None
        if reply.protocol == "tcp":
            if reply.ack != (m.seq_no + 1) & 0xFFFFFFFF:
                return None, "unexpected"
            if reply.flags & (TCP_SYN | TCP_ACK) == TCP_SYN | TCP_ACK:
                m.n_success += 1
                m.state = S_ONLINE
                out = self._tcp(m, TCP_RST | TCP_ACK, reply.ack + 1,
                                reply.seq + 1)
                coverage.inc("pinctrl_svc_monitor_rst_sent")
            elif reply.flags & TCP_RST:
                m.n_failures += 1
                m.state = S_OFFLINE
            else:
                return None, "unexpected"
        else:                       # a port unreachable quoting the probe
            m.n_failures += 1
            m.state = S_OFFLINE
        m.next_send = now + m.cfg.interval_ms
        self._touched.add(key)
        return out, None

    # --- HandlerJob ----------------------------------------------------------
    def run(self, env: Env, now: int) -> list[bytes]:
        """New monitors, the turns of those due or changed by a reply, the
        status hand-over (pinctrl_handler thread, while connected)."""
        version, snapshot = self._get_snapshot()
        if version != self._version:
            self._version = version
            self._update(snapshot, now)
        out: list[PacketOut] = []
        for key in self._touched:
            m = self.monitors.get(key)
            if m is not None:
                self._step(key, m, now, out)
        self._touched.clear()
        while self._heap and self._heap[0][0] <= now:
            _, _, key, m = heapq.heappop(self._heap)
            if self.monitors.get(key) is m and m.due is not None \
                    and m.due <= now:
                self._step(key, m, now, out)
        if self._unreported:
            self._report()
        return [ofmsg.packet_out(env.next_xid(), po.actions, po.packet)
                for po in out]

    def wait(self, poller: ovs.poller.Poller, now: int) -> None:
        """Wake for the next due monitor (pinctrl_handler thread)."""
        while self._heap and not self._valid(self._heap[0]):
            heapq.heappop(self._heap)
        when = self._heap[0][0] if self._heap else None
        if self._unreported or self._touched:
            when = now + PAST_DUE_RECHECK_MS if when is None else \
                min(when, now + PAST_DUE_RECHECK_MS)
        if when is not None:
            poller.timer_wait_until(when if when > now
                                    else now + PAST_DUE_RECHECK_MS)

    # --- internals -----------------------------------------------------------
    def _valid(self, item: tuple[int, int, SvcKey, _Monitor]) -> bool:
        due, _, key, m = item
        return self.monitors.get(key) is m and m.due == due

    def _schedule(self, key: SvcKey, m: _Monitor, due: int) -> None:
        m.due = due
        heapq.heappush(self._heap, (due, next(self._order), key, m))
        if len(self._heap) > 2 * len(self.monitors) + 64:
            self._heap = [i for i in self._heap if self._valid(i)]
            heapq.heapify(self._heap)

    def _update(self, snapshot: Mapping[SvcKey, SvcMonitorConfig],
                now: int) -> None:
        """sync_svc_monitors()'s handler half: new monitors probe at once;
        a changed one keeps its state with the new settings."""
        for key in [k for k in self.monitors if k not in snapshot]:
            del self.monitors[key]
            self._unreported.discard(key)
        for key, cfg in snapshot.items():
            m = self.monitors.get(key)
            if m is None:
                m = self.monitors[key] = _Monitor(cfg)
                self._schedule(key, m, now)
            else:
                m.cfg = cfg

    def _step(self, key: SvcKey, m: _Monitor, now: int,
              out: list[PacketOut]) -> None:
        """One monitor's turn of svc_monitors_run(); schedules the next."""
        old_status = m.status
        cfg = m.cfg
        if m.state == S_INIT:
            out.append(self._probe(m, now))
            due = m.wait_time + 1           # 23.03: strictly after
        elif m.state == S_WAITING:
            if now > m.wait_time:
                if cfg.protocol == "tcp":
                    m.n_failures += 1
                    m.state = S_OFFLINE
                else:
                    m.n_success += 1
                    m.state = S_ONLINE
                m.next_send = now + cfg.interval_ms
                # The new state's turn decides the status at once (23.03:
                # at its next loop iteration, whenever that comes).
                due = now
            else:
                due = m.wait_time + 1
        else:
            if m.state == S_ONLINE and m.n_success >= cfg.success_count:
                m.status, m.n_success = ONLINE, 0
            elif m.state == S_OFFLINE and \
                    m.n_failures >= cfg.failure_count:
                m.status, m.n_failures = OFFLINE, 0
            if now >= m.next_send:
                out.append(self._probe(m, now))
                due = m.wait_time + 1
            else:
                due = m.next_send
        if m.status != old_status:
            coverage.inc(f"pinctrl_svc_monitor_{m.status}")
            self._unreported.add(key)
        self._schedule(key, m, due)

    def _probe(self, m: _Monitor, now: int) -> PacketOut:
        """svc_monitor_send_health_check()."""
        cfg = m.cfg
        if cfg.protocol == "tcp":
            m.seq_no, m.tp_src = self._seq(), self._port()
            po = self._tcp(m, TCP_SYN, m.seq_no, 0)
        else:
            if not m.tp_src:
                m.tp_src = self._port()
            po = PacketOut(build_udp_probe(cfg.src_mac, cfg.mac, cfg.src_ip,
                                           _dst(cfg), m.tp_src, cfg.port),
                           local_output_actions(cfg.dp_key, cfg.port_key))
        m.wait_time = now + cfg.timeout_ms
        m.state = S_WAITING
        coverage.inc("pinctrl_svc_monitor_probe_sent")
        return po

    @staticmethod
    def _tcp(m: _Monitor, flags: int, seq: int, ack: int) -> PacketOut:
        cfg = m.cfg
        return PacketOut(build_tcp_probe(cfg.src_mac, cfg.mac, cfg.src_ip,
                                         _dst(cfg), m.tp_src, cfg.port,
                                         flags, seq, ack),
                         local_output_actions(cfg.dp_key, cfg.port_key))

    def _report(self) -> None:
        """Hand the changed statuses over; what does not fit waits for
        the next run()."""
        stored = False
        for key in list(self._unreported):
            m = self.monitors.get(key)
            if m is None or m.status is None:
                self._unreported.discard(key)
            elif self._handover.put(key, m.status):
                self._unreported.discard(key)
                stored = True
        if stored:
            self._notify_main()


def _dst(cfg: SvcMonitorConfig) -> bytes:
    """The backend's address as the frame carries it: 4 bytes for IPv4."""
    return cfg.ip[12:] if cfg.ip.startswith(IPV4_MAPPED_PREFIX) else cfg.ip
