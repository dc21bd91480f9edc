"""Supervision of the running daemon: the keep-alive check, systemd
READY/STATUS/WATCHDOG and the gauges the metrics thread reads.

A small state machine in the python-ovs shape, main thread only: run(now,
...) once per main-loop iteration with the state of both connections,
then wait(poller, now) arms the timer that brings the loop back in time
for the next check or watchdog ping.  'now' is time.monotonic(); tests
pass their own.
"""

from __future__ import annotations

from typing import Mapping

import ovs.poller
import ovs.vlog

from pinctrl.daemon import show
from pinctrl.daemon.keepalive import KeepAlive, ThreadHealth
from pinctrl.daemon.sd_notify import Notifier

vlog = ovs.vlog.Vlog("main")

# The loop wakes at least this often to check the threads ...
KEEPALIVE_CHECK_MS = 1000
# ... and this often until READY=1 (the handler does not wake the main
# thread when the OpenFlow connection comes up).
READY_POLL_MS = 100

SB_SYNCED = "synced"
OF_CONNECTED = "connected"


class Supervisor:
    """Main thread only.  Other threads read 'gauges' (replaced by a new
    dict on every run(), never changed in place) and call
    keepalive.check()."""

    def __init__(self, keepalive: KeepAlive, notifier: Notifier,
                 started: float) -> None:
        self.keepalive = keepalive
        # Replaced by the daemon after the fork (WATCHDOG_PID must be ours).
        self.notifier = notifier
        self.started = started
        self.ready = False
        self.health: list[ThreadHealth] = []
        self.gauges: dict[str, float] = {}
        # Southbound write backlog per writer, "sb_backlog_<writer>" ->
        # entries (replaced on every run(), like 'gauges').
        self.backlog_depths: dict[str, int] = {}
        self._alive = False
        self._next_ping = 0.0

    def run(self, now: float, sb_state: str, of_state: str,
            backlog: Mapping[str, tuple[int, float]] | None = None) -> None:
        """Check the threads; READY=1 the first time the Southbound DB is
        SB_SYNCED and OpenFlow OF_CONNECTED, STATUS= on every change;
        WATCHDOG=1 when due and every thread is alive; publish the
        gauges, with the Southbound write 'backlog' (writer -> (entries,
        age of the oldest in seconds), TxnLoop.backlog())."""
        self.health = self.keepalive.run(now)
        self._alive = KeepAlive.all_alive(self.health)
        sb_ok, of_ok = sb_state == SB_SYNCED, of_state == OF_CONNECTED
        if not self.ready and sb_ok and of_ok:
            self.ready = True
            vlog.info("Southbound synced and OpenFlow connected: ready")
            self.notifier.ready(self.status_line(sb_state, of_state))
        else:
            self.notifier.status(self.status_line(sb_state, of_state))
        backlog = backlog or {}
        self.gauges = {"ready": float(self.ready),
                       "southbound_connected": float(sb_ok),
                       "openflow_connected": float(of_ok),
                       "uptime_seconds": now - self.started,
                       "sb_write_backlog": float(sum(
                           n for n, _ in backlog.values())),
                       "sb_write_backlog_age_seconds": max(
                           (age for _, age in backlog.values()),
                           default=0.0)}
        self.backlog_depths = {f"sb_backlog_{name}": n
                               for name, (n, _) in backlog.items()}
        if self._alive:
            self.feed_watchdog(now)

    def wait(self, poller: ovs.poller.Poller, now: float) -> None:
        """Wake for the next check, and for the next watchdog ping while
        the pings go on."""
        wait_ms = KEEPALIVE_CHECK_MS if self.ready else READY_POLL_MS
        if self._alive and self.notifier.watchdog_interval() is not None:
            due_ms = int((self._next_ping - now) * 1000) + 1
            wait_ms = min(wait_ms, max(due_ms, 0))
        poller.timer_wait(wait_ms)

    def status_line(self, sb_state: str, of_state: str) -> str:
        return show.status_line(self.ready, sb_state, of_state, self.health)

    def startup_ping(self, now: float) -> None:
        """While the main thread waits for a database (at start-up, when
        only it exists, or when ovn-remote changes) it is alive: feed the
        watchdog if every other thread is too."""
        if KeepAlive.all_alive(self.keepalive.check(now)):
            self.feed_watchdog(now)

    def feed_watchdog(self, now: float) -> None:
        """WATCHDOG=1 if one is due (the caller decided that every thread
        is alive)."""
        interval = self.notifier.watchdog_interval()
        if interval is not None and now >= self._next_ping:
            self.notifier.watchdog()
            self._next_ping = now + interval

    def systemd_text(self) -> str:
        """pinctrl/show's systemd line."""
        return show.systemd_text(self.notifier.enabled, self.ready,
                                 self.notifier.watchdog_interval())
