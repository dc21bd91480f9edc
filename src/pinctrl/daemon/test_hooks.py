"""Test-only appctl hooks, registered only with PINCTRL_TEST_HOOKS=1.

pinctrl/test-stall-handler SECS makes the pinctrl_handler thread stop going
round its loop (tests/integration/test_systemd_notify.py watches the
keep-alive monitor stop the watchdog pings); pinctrl/test-unstall, or the
daemon's exit, lets it go.
"""

from __future__ import annotations

import os
import threading
from typing import Callable, Mapping

import ovs.poller
import ovs.vlog

from pinctrl.handler.dispatch import Env
from pinctrl.handler.jobs import HandlerJob
from pinctrl.support import appctl
from pinctrl.support.appctl import CommandContext

vlog = ovs.vlog.Vlog("appctl")

TEST_HOOKS_ENV = "PINCTRL_TEST_HOOKS"
MAX_STALL_S = 60.0


class _StallJob:
    """A handler job that blocks the pinctrl_handler thread once, in its
    wait() call, for up to 'seconds' or until released: the thread really
    stops going round its loop, so the keep-alive monitor sees what it
    would see if a lock or a bug held it.  Nothing in the production path
    sleeps; this object exists only when a test asks for it."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.release = threading.Event()
        self.used = False

    def run(self, env: Env, now: int) -> list[bytes]:
        """pinctrl_handler thread: nothing to send."""
        return []

    def wait(self, poller: ovs.poller.Poller, now: int) -> None:
        """pinctrl_handler thread: block, the first time only."""
        if not self.used:
            self.used = True
            self.release.wait(self.seconds)


# Main thread only (the commands and shutdown).
_STALLS: list[_StallJob] = []


def enabled(env: Mapping[str, str] = os.environ) -> bool:
    return env.get(TEST_HOOKS_ENV) == "1"


def register_test_hooks(add_job: Callable[[HandlerJob], None]) -> None:
    """Main thread, at start-up, only when enabled().  'add_job' hands a
    job to the running handler thread."""
    vlog.warn("test hooks enabled (pinctrl/test-stall-handler)")

    def stall(ctx: CommandContext, argv: list[str]) -> str:
        seconds = min(float(argv[0]), MAX_STALL_S)
        job = _StallJob(seconds)
        _STALLS.append(job)
        add_job(job)
        return f"handler thread stalls for up to {seconds:g} s\n"

    appctl.register("pinctrl/test-stall-handler", stall, "SECS", 1, 1)
    appctl.register("pinctrl/test-unstall", _cmd_unstall)


def _cmd_unstall(ctx: CommandContext, argv: list[str]) -> str:
    return f"released {release_test_stalls()} stalls\n"


def release_test_stalls() -> int:
    """Let every stalled handler go (main thread; also at exit)."""
    n = 0
    while _STALLS:
        _STALLS.pop().release.set()
        n += 1
    return n
