"""systemd notify protocol end to end: the daemon runs with NOTIFY_SOCKET
and WATCHDOG_USEC pointing at a datagram socket this test owns (standing in
for systemd).  READY=1 comes once the Southbound DB is synced and OpenFlow
is connected; WATCHDOG=1 pings come while both threads are alive and stop
while the handler thread is stuck (made stuck through the test-only
pinctrl/test-stall-handler command, PINCTRL_TEST_HOOKS=1); STOPPING=1 on
exit."""

import os
import socket
import time

import pytest

pytestmark = pytest.mark.integration

WATCHDOG_USEC = 1_000_000           # pings every 0.5 s
KEEPALIVE_TIMEOUT = 5.0             # main.KEEPALIVE_TIMEOUT_S
READY_STATUS = "STATUS=ready: Southbound synced, OpenFlow connected"


class FakeSystemd:
    """The receiving end of $NOTIFY_SOCKET: (monotonic time, message)."""

    def __init__(self, path: str) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(path)
        self.path = path
        self.msgs: list[tuple[float, str]] = []

    def poll(self, seconds: float, until=None) -> list[tuple[float, str]]:
        """Collect for up to 'seconds' (less if until(msg) is true)."""
        deadline = time.monotonic() + seconds
        new = []
        while (left := deadline - time.monotonic()) > 0:
            self.sock.settimeout(left)
            try:
                data = self.sock.recv(4096)
            except TimeoutError:
                break
            m = (time.monotonic(), data.decode())
            self.msgs.append(m)
            new.append(m)
            if until is not None and until(m[1]):
                break
        return new

    def close(self) -> None:
        self.sock.close()


def pings(msgs):
    return [t for t, m in msgs if m == "WATCHDOG=1"]


@pytest.fixture
def systemd(sandbox):
    fake = FakeSystemd(os.path.join(sandbox.dir, "notify.sock"))
    sandbox.env.update(NOTIFY_SOCKET=fake.path,
                       WATCHDOG_USEC=str(WATCHDOG_USEC),
                       PINCTRL_TEST_HOOKS="1")
    try:
        yield fake
    finally:
        fake.close()


def test_ready_watchdog_stuck_handler_and_stopping(sandbox, systemd):
    d = sandbox.daemon().start(wait=False)

    # READY=1 only once both connections are up, with a STATUS saying so.
    systemd.poll(15, until=lambda m: "READY=1" in m)
    ready = [m for _, m in systemd.msgs if "READY=1" in m]
    assert ready == [f"READY=1\n{READY_STATUS}"], systemd.msgs
    statuses = [m for _, m in systemd.msgs if m.startswith("STATUS=")]
    assert statuses and all("starting" in s or "connecting" in s
                            for s in statuses), statuses
    show = d.show()
    assert "OpenFlow: connected" in show and "Southbound: connected" in show
    assert "systemd: ready, watchdog every 0.5 s" in show, show

    # Pings every 0.5 s while both threads are alive.
    t = pings(systemd.poll(2.2))
    assert len(t) >= 3, systemd.msgs[-10:]
    assert max(b - a for a, b in zip(t, t[1:])) < 0.9

    # Stall the handler thread: after the keep-alive timeout the main thread
    # reports it and stops feeding the watchdog.
    t_stall = time.monotonic()
    assert "stalls" in d.appctl("pinctrl/test-stall-handler", "30")
    got = systemd.poll(KEEPALIVE_TIMEOUT + 3,
                       until=lambda m: "ovn_pinctrl STUCK" in m)
    stuck = [(t, m) for t, m in got if "ovn_pinctrl STUCK" in m]
    assert stuck, got
    t_stuck = stuck[0][0]
    assert KEEPALIVE_TIMEOUT - 0.5 < t_stuck - t_stall < KEEPALIVE_TIMEOUT + 2.5
    assert "Handler thread: STUCK" in d.show()
    silent = systemd.poll(2.0)
    assert pings(silent) == [], silent
    assert pings(systemd.msgs) and max(pings(systemd.msgs)) < t_stuck

    # Released, it is alive again: pings resume, STATUS clears.
    d.appctl("pinctrl/test-unstall")
    back = systemd.poll(3.0)
    assert pings(back), back
    assert any(m == READY_STATUS for _, m in back), back
    cov = d.coverage()
    assert cov.get("keepalive_thread_stuck") == 1, cov

    d.appctl("exit", check=False)
    assert d.popen.wait(timeout=10) == 0
    assert any("STOPPING=1" in m for _, m in systemd.poll(1.0)), systemd.msgs[-5:]


def test_no_watchdog_for_another_pid(sandbox, systemd):
    """WATCHDOG_PID naming another process: notifications, but no pings."""
    sandbox.env["WATCHDOG_PID"] = "1"
    d = sandbox.daemon().start(wait=False)
    systemd.poll(15, until=lambda m: "READY=1" in m)
    assert any("READY=1" in m for _, m in systemd.msgs), systemd.msgs
    systemd.poll(1.5)
    assert pings(systemd.msgs) == []
    assert "systemd: ready, no watchdog" in d.show()
