"""Keep-alive monitor: marks, STUCK/DEAD detection, one log line and one
counter per change of state (a fake clock, no sleeping)."""

import pytest

from pinctrl.daemon import keepalive
from pinctrl.daemon.keepalive import ALIVE, DEAD, STUCK, KeepAlive, ThreadHealth
from tests.helpers import VlogRecorder, counter_delta


class Clock:
    def __init__(self) -> None:
        self.t = 100.0

    def __call__(self) -> float:
        return self.t


@pytest.fixture
def rec(monkeypatch):
    r = VlogRecorder()
    monkeypatch.setattr(keepalive, "vlog", r)
    return r


def test_marked_thread_goes_stuck_after_timeout_and_recovers(rec):
    clock = Clock()
    ka = KeepAlive(5.0, clock)
    ka.register("main")
    clock.t += 4.9
    assert ka.run() == [ThreadHealth("main", ALIVE, pytest.approx(4.9))]
    clock.t += 0.2
    health, n = counter_delta("keepalive_thread_stuck", ka.run)
    assert [h.state for h in health] == [STUCK] and n == 1
    assert not KeepAlive.all_alive(health)
    # Still stuck: no second log line, no second count.
    _, n = counter_delta("keepalive_thread_stuck", ka.run)
    assert n == 0
    ka.mark("main")
    assert KeepAlive.all_alive(ka.run())
    levels = [lvl for lvl, _ in rec.lines]
    assert levels == ["WARN", "INFO"], rec.lines
    assert "main is STUCK" in rec.lines[0][1]
    assert "alive again" in rec.lines[1][1]


def test_external_mark_and_dead_thread(rec):
    clock = Clock()
    beat = {"t": clock.t, "alive": True}
    ka = KeepAlive(5.0, clock)
    ka.register("ovn_pinctrl", last_mark=lambda: beat["t"],
                is_alive=lambda: beat["alive"])
    clock.t += 3
    assert ka.check()[0].state == ALIVE
    beat["alive"] = False
    health, n = counter_delta("keepalive_thread_dead", ka.run)
    assert health[0].state == DEAD and n == 1
    assert str(health[0]) == "ovn_pinctrl: DEAD (last loop 3.0 s ago)"


def test_check_reports_every_thread_in_order_and_never_negative_age():
    clock = Clock()
    ka = KeepAlive(1.0, clock)
    ka.register("main")
    ka.register("other", last_mark=lambda: clock.t + 10)   # clock skew
    clock.t += 2
    ka.mark("main")
    assert [(h.name, h.state, h.age) for h in ka.check()] == [
        ("main", ALIVE, 0.0), ("other", ALIVE, 0.0)]
    assert KeepAlive.all_alive([])
