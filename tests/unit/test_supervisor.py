"""daemon/supervisor.py: READY=1 once, STATUS= on changes, WATCHDOG=1 only
while every thread is alive, the gauges and the wake-up timer; driven by
a fake clock, a recording notifier and a recording poller."""

from pinctrl.daemon.keepalive import KeepAlive
from pinctrl.daemon.supervisor import (
    KEEPALIVE_CHECK_MS,
    READY_POLL_MS,
    Supervisor,
)


class Clock:
    def __init__(self) -> None:
        self.t = 100.0

    def __call__(self) -> float:
        return self.t


class Notifier:
    """The sd_notify.Notifier surface, recording what it would send."""

    enabled = True

    def __init__(self, watchdog_s):
        self.watchdog_s = watchdog_s
        self.sent = []
        self.last_status = None

    def watchdog_interval(self):
        return self.watchdog_s

    def ready(self, status):
        self.last_status = status
        self.sent.append(f"READY=1 STATUS={status}")

    def status(self, status):
        if status != self.last_status:
            self.last_status = status
            self.sent.append(f"STATUS={status}")

    def watchdog(self):
        self.sent.append("WATCHDOG=1")


class Poller:
    def __init__(self):
        self.timers = []

    def timer_wait(self, ms):
        self.timers.append(ms)


def make(watchdog_s=2.0):
    clock = Clock()
    ka = KeepAlive(5.0, clock)
    ka.register("main")
    handler_mark = [clock.t]
    ka.register("ovn_pinctrl", last_mark=lambda: handler_mark[0])
    sup = Supervisor(ka, Notifier(watchdog_s), started=clock.t)
    return sup, clock, handler_mark


def step(sup, clock, sb, of):
    poller = Poller()
    sup.run(clock.t, sb, of)
    sup.wait(poller, clock.t)
    return poller.timers[-1]


def test_ready_once_status_on_change_and_watchdog_when_due():
    sup, clock, handler_mark = make(watchdog_s=0.5)
    assert step(sup, clock, "connecting", "idle") == READY_POLL_MS
    assert sup.notifier.sent == [
        "STATUS=starting: Southbound connecting, OpenFlow idle",
        "WATCHDOG=1"]
    assert sup.gauges == {"ready": 0.0, "southbound_connected": 0.0,
                          "openflow_connected": 0.0, "uptime_seconds": 0.0,
                          "sb_write_backlog": 0.0,
                          "sb_write_backlog_age_seconds": 0.0}
    clock.t += 0.25
    step(sup, clock, "connecting", "idle")      # nothing changed, not due
    assert len(sup.notifier.sent) == 2
    clock.t += 0.25
    # Ready: the next check after a second, but the next ping is sooner.
    assert step(sup, clock, "synced", "connected") == 501
    assert sup.ready and sup.notifier.sent[2:] == [
        "READY=1 STATUS=ready: Southbound synced, OpenFlow connected",
        "WATCHDOG=1"]
    assert sup.gauges["ready"] == 1.0 and sup.gauges["uptime_seconds"] == 0.5
    clock.t += 1.0
    sup.keepalive.mark("main")
    handler_mark[0] = clock.t
    step(sup, clock, "connected", "connected")
    # Once ready, always ready (as systemd's READY=1); the status follows.
    assert sup.ready and sup.notifier.sent[4:] == [
        "STATUS=ready: Southbound connected, OpenFlow connected",
        "WATCHDOG=1"]
    assert sup.gauges["southbound_connected"] == 0.0


def test_no_watchdog_while_a_thread_is_stuck():
    sup, clock, handler_mark = make()
    step(sup, clock, "synced", "connected")
    clock.t += 6.0                              # handler silent for 6 s
    sup.keepalive.mark("main")
    assert step(sup, clock, "synced", "connected") == KEEPALIVE_CHECK_MS
    assert sup.notifier.sent[-1] == (
        "STATUS=thread ovn_pinctrl STUCK; ready: Southbound synced, "
        "OpenFlow connected")
    sup.startup_ping(clock.t)                   # not while stuck either
    assert "WATCHDOG=1" not in sup.notifier.sent[2:]
    handler_mark[0] = clock.t                   # back
    step(sup, clock, "synced", "connected")
    assert sup.notifier.sent[-1] == "WATCHDOG=1"


def test_without_watchdog_only_the_check_timer():
    sup, clock, _ = make(watchdog_s=None)
    assert step(sup, clock, "synced", "connected") == KEEPALIVE_CHECK_MS
    assert "WATCHDOG=1" not in sup.notifier.sent
    assert sup.systemd_text() == "ready, no watchdog"


def test_southbound_write_backlog_is_published():
    sup, clock, _ = make()
    sup.run(clock.t, "synced", "connected",
            {"mac_bindings": (1200, 42.5), "fdb": (3, 1.0),
             "controller_events": (0, 0.0)})
    assert sup.gauges["sb_write_backlog"] == 1203.0
    assert sup.gauges["sb_write_backlog_age_seconds"] == 42.5
    assert sup.backlog_depths == {"sb_backlog_mac_bindings": 1200,
                                  "sb_backlog_fdb": 3,
                                  "sb_backlog_controller_events": 0}
