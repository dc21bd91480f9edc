"""The systemd notify protocol (sd_notify(3)) in stdlib: one datagram of
"KEY=value" lines to the AF_UNIX socket named by $NOTIFY_SOCKET.

A leading '@' in $NOTIFY_SOCKET names a Linux abstract socket.  Without
$NOTIFY_SOCKET every call is a no-op, so the daemon behaves the same outside
systemd.  The watchdog interval comes from $WATCHDOG_USEC, and applies to us
only if $WATCHDOG_PID is unset or is our pid (systemd sets it to the main
pid; a forked child must not feed the parent's watchdog).

Only the main thread sends (the Notifier is not shared with the handler).
"""

from __future__ import annotations

import os
import socket
from typing import Mapping

import ovs.vlog

from pinctrl.support import coverage
from pinctrl.support.log import RateLimit, rl_log

vlog = ovs.vlog.Vlog("sd_notify")


def socket_address(name: str) -> str | bytes | None:
    """Pure.  $NOTIFY_SOCKET → an address for socket.sendto(), or None if
    unusable.  '@name' is the abstract socket '\\0name'."""
    if not name:
        return None
    if name[0] == "@":
        return b"\0" + name[1:].encode()
    if name[0] == "/":
        return name
    return None             # systemd also allows vsock:..., which we lack


def watchdog_usec(env: Mapping[str, str], pid: int) -> int | None:
    """Pure.  The watchdog timeout in µs that systemd expects us to feed,
    or None (no watchdog, a malformed value, or meant for another pid)."""
    try:
        usec = int(env.get("WATCHDOG_USEC", ""))
    except ValueError:
        return None
    if usec <= 0:
        return None
    wpid = env.get("WATCHDOG_PID")
    if wpid is not None:
        try:
            if int(wpid) != pid:
                return None
        except ValueError:
            return None
    return usec


def format_message(**fields: str | int) -> bytes:
    """Pure.  notify(READY=1, STATUS="x") → b"READY=1\\nSTATUS=x".  Newlines
    inside a value would start a new field, so they become spaces."""
    return "\n".join(f"{k}={str(v).replace(chr(10), ' ')}"
                     for k, v in fields.items()).encode()


class Notifier:
    """sd_notify for one process.  Main thread only."""

    def __init__(self, env: Mapping[str, str] | None = None,
                 pid: int | None = None) -> None:
        env = os.environ if env is None else env
        self.address = socket_address(env.get("NOTIFY_SOCKET", ""))
        self.watchdog_usec = (watchdog_usec(env, os.getpid() if pid is None
                                            else pid)
                              if self.address is not None else None)
        self._sock: socket.socket | None = None
        self._rl = RateLimit(5, 5)
        self.last_status: str | None = None

    @property
    def enabled(self) -> bool:
        return self.address is not None

    def watchdog_interval(self) -> float | None:
        """Seconds between WATCHDOG=1 pings (half the timeout, as
        sd_watchdog_enabled(3) recommends), or None without a watchdog."""
        if self.watchdog_usec is None:
            return None
        return self.watchdog_usec / 2e6

    def notify(self, **fields: str | int) -> bool:
        """Send one datagram; True if sent.  Failures (systemd gone, socket
        full) are counted and logged at a limited rate, never raised."""
        if self.address is None:
            return False
        try:
            if self._sock is None:
                self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM
                                           | socket.SOCK_CLOEXEC
                                           | socket.SOCK_NONBLOCK)
            self._sock.sendto(format_message(**fields), self.address)
            return True
        except OSError as e:
            coverage.inc("sd_notify_send_error")
            rl_log(vlog, "warn", self._rl,
                   f"cannot notify systemd at {self.address!r}: {e}")
            return False

    def ready(self, status: str) -> bool:
        self.last_status = status
        return self.notify(READY=1, STATUS=status)

    def status(self, status: str) -> bool:
        """STATUS=... only when it differs from the last one sent."""
        if status == self.last_status:
            return False
        self.last_status = status
        return self.notify(STATUS=status)

    def stopping(self) -> bool:
        return self.notify(STOPPING=1, STATUS="stopping")

    def watchdog(self) -> bool:
        return self.notify(WATCHDOG=1)

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None
