"""The daemon survives ovs-vswitchd dying: it notices, reconnects to the new
br-int.mgmt with a bounded backoff, and answers again."""

import time

import pytest

from testbed.golden import load_exchange, replay_exchange

pytestmark = pytest.mark.integration

MAX_BACKOFF = 8.0      # seconds, the daemon's maximum reconnect backoff
DOWN_FOR = 3.0         # keep ovs-vswitchd down long enough for a few backoff rounds


def wait_for(pred, timeout, step=0.05):
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        if pred():
            return time.monotonic() - t0
        time.sleep(step)
    return None


def test_reconnect_after_vswitchd_restart(sandbox, daemon):
    offer = load_exchange("dhcpv4_discover_offer")
    replay_exchange(sandbox, offer)

    sandbox.kill_vswitchd()
    noticed = wait_for(lambda: not daemon.is_connected(), 5)
    assert noticed is not None, "daemon still claims 'OpenFlow: connected' 5 s after " \
                                "ovs-vswitchd was SIGKILLed:\n" + daemon.show()
    time.sleep(DOWN_FOR)
    assert daemon.alive(), "daemon exited while ovs-vswitchd was down"

    t_restart = time.monotonic()
    sandbox.restart_vswitchd()          # returns once br-int.mgmt answers and flows are in
    t_ready = time.monotonic()
    reconnect = wait_for(daemon.is_connected, MAX_BACKOFF + 4)
    assert reconnect is not None, "no reconnect within max backoff + 4 s:\n" + daemon.show()
    total = t_ready - t_restart + reconnect
    print(f"\nvswitchd restart+flows {t_ready - t_restart:.2f}s, daemon reconnected "
          f"{total:.2f}s after restart began ({reconnect:.2f}s after br-int was ready)")
    assert total <= MAX_BACKOFF + 1.5

    # answers again, byte for byte (a short grace period for the handshake)
    res = replay_exchange(sandbox, offer, check=False)
    if not res.ok:
        time.sleep(1)
        res = replay_exchange(sandbox, offer, check=False)
    assert res.ok, res.report()
    assert daemon.alive()
