"""The daemon under test: pinctrl-daemon started against a Sandbox, and
a persistent unixctl client.

    daemon_executable()    $PINCTRL_DAEMON, else the venv's entry point
    daemon_help()          (rc, text) of its --help, cached
    daemon_unavailable()   why it cannot be run here, or None
    parse_coverage(text)   `coverage/show` output -> {name: total}
    Daemon(sb)             one pinctrl-daemon child of the test process,
                           connected to sb's br-int, stopped by pid
    UnixctlClient(path)    JSON-RPC over a .ctl socket, one connection for
                           many calls (`ovs-appctl` costs a process per
                           call, ~5 ms; floods inject thousands of frames):

        with UnixctlClient(sb.vswitchd_ctl) as c:
            c.inject_many("gdvif1", frames)          # netdev-dummy/receive
            print(c.call("coverage/show"))

Test (or bench) process, one thread per object.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Iterable

from testbed.processes import Proc, SandboxError, tail

if TYPE_CHECKING:
    from testbed.ovs_sandbox import Sandbox


def daemon_executable() -> str:
    """$PINCTRL_DAEMON, else pinctrl-daemon next to this Python, else PATH."""
    exe = os.environ.get("PINCTRL_DAEMON")
    if exe:
        return exe
    cand = Path(sys.executable).parent / "pinctrl-daemon"
    if cand.exists():
        return str(cand)
    return shutil.which("pinctrl-daemon") or str(cand)


_daemon_help_cache: dict[str, tuple[int, str]] = {}


def daemon_help() -> tuple[int, str]:
    """(exit code, output) of `pinctrl-daemon --help`, run once per executable."""
    exe = daemon_executable()
    if exe not in _daemon_help_cache:
        try:
            cp = subprocess.run([exe, "--help"], capture_output=True, text=True, timeout=60)
            _daemon_help_cache[exe] = (cp.returncode, cp.stdout + cp.stderr)
        except (OSError, subprocess.TimeoutExpired) as e:
            _daemon_help_cache[exe] = (-1, repr(e))
    return _daemon_help_cache[exe]


def daemon_unavailable() -> str | None:
    """Why the daemon cannot be run (its --help fails), or None."""
    rc, out = daemon_help()
    if rc != 0:
        return f"{daemon_executable()} --help failed (rc={rc}): {out.strip()[-600:]}"
    return None


_COV_RE = re.compile(r"^\s*(\S+)\s+.*?total:\s*(\d+)\s*$")


def parse_coverage(text: str) -> dict[str, int]:
    """`coverage/show` output (OVS or this daemon's format) -> {name: total}."""
    out = {}
    for line in text.splitlines():
        m = _COV_RE.match(line)
        if m:
            out[m.group(1)] = int(m.group(2))
    return out


class Daemon:
    """pinctrl-daemon run against a Sandbox (child process, stopped by pid)."""

    def __init__(self, sandbox: Sandbox, extra_args: Iterable[str] = (), console: bool = False,
                 file_level: str = "dbg", console_level: str = "info",
                 inherit_output: bool = False) -> None:
        self.sb = sandbox
        d = sandbox.dir
        self.ctl = f"{d}/pinctrl-daemon.ctl"
        self.log_file = f"{d}/pinctrl-daemon.log"
        self.pidfile = f"{d}/pinctrl-daemon.pid"
        self.extra_args = list(extra_args)
        self.console, self.file_level, self.console_level = console, file_level, console_level
        self.inherit_output = inherit_output
        self.popen: subprocess.Popen | None = None
        self.start_time: float | None = None
        self.connect_time: float | None = None

    def command(self) -> list[str]:
        d = self.sb.dir
        return [daemon_executable(), "--br-int", "br-int", "--ovs-rundir", d,
                "--ovs-db", self.sb.db, "--unixctl", self.ctl, "--log-file", self.log_file,
                "--pidfile", self.pidfile,
                f"-vconsole:{self.console_level}" if self.console else "-vconsole:off",
                f"-vfile:{self.file_level}", *self.extra_args]

    def start(self, wait: bool = True, timeout: float = 10.0) -> "Daemon":
        cmd = self.command()
        self.sb._log(f"$ {shlex.join(cmd)} &")
        if self.inherit_output:
            out = err = None
        else:
            out = open(f"{self.sb.dir}/pinctrl-daemon.stdout", "ab")
            err = open(f"{self.sb.dir}/pinctrl-daemon.stderr", "ab")
        self.start_time = time.monotonic()
        self.popen = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=out, stderr=err,
                                      env=self.sb.env, cwd=self.sb.dir, start_new_session=True)
        for f in (out, err):
            if f:
                f.close()
        if wait:
            self.connect_time = self.wait_connected(timeout)
        return self

    def alive(self) -> bool:
        return self.popen is not None and self.popen.poll() is None

    def appctl(self, *args: str, check: bool = True, timeout: float = 10.0) -> str:
        return self.sb.appctl(*args, target=self.ctl, check=check, timeout=timeout)

    def show(self) -> str:
        return self.appctl("pinctrl/show", check=False)

    def is_connected(self) -> bool:
        if not os.path.exists(self.ctl):
            return False
        cp = self.sb.run(["ovs-appctl", "-t", self.ctl, "pinctrl/show"], check=False, timeout=5)
        # "OpenFlow: connected" or "OpenFlow: connected (unix:..., OpenFlow 1.5)"
        return cp.returncode == 0 and any(re.match(r"OpenFlow: connected\b", l.strip())
                                          for l in cp.stdout.splitlines())

    def wait_connected(self, timeout: float = 10.0) -> float:
        """Poll pinctrl/show until 'OpenFlow: connected'; returns seconds waited."""
        t0 = time.monotonic()
        while True:
            if self.popen is not None and self.popen.poll() is not None:
                raise SandboxError(f"pinctrl-daemon exited with {self.popen.returncode}:\n"
                                   + tail(f"{self.sb.dir}/pinctrl-daemon.stderr") + "\n"
                                   + tail(self.log_file))
            if self.is_connected():
                return time.monotonic() - t0
            if time.monotonic() - t0 > timeout:
                raise SandboxError(f"pinctrl-daemon not connected after {timeout}s; "
                                   f"pinctrl/show: {self.show()!r}\n" + tail(self.log_file))
            time.sleep(0.1)

    def coverage(self) -> dict[str, int]:
        return parse_coverage(self.appctl("coverage/show"))

    def _proc(self) -> Proc | None:
        return None if self.popen is None else \
            Proc("pinctrl-daemon", self.popen, self.pidfile)

    def pids(self) -> set[int]:
        """The child's pid and its pidfile's (empty before start())."""
        proc = self._proc()
        return proc.pids() if proc is not None else set()

    def stop(self, timeout: float = 5.0) -> int | None:
        """SIGTERM, then SIGKILL after `timeout`; by pid.  Returns the exit code."""
        proc = self._proc()
        if proc is None:
            return None
        proc.kill(signal.SIGTERM, timeout)
        return proc.popen.returncode

    def log_tail(self, n: int = 40) -> str:
        return tail(self.log_file, n)


class UnixctlError(RuntimeError):
    """The server answered with an error, or the connection broke."""


class UnixctlClient:
    """One connection to a unixctl server (see the module docstring)."""

    def __init__(self, path: str, timeout: float = 10.0) -> None:
        self.path = path
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(timeout)
        self.sock.connect(path)
        self._buf = b""
        self._next_id = 0
        self._decoder = json.JSONDecoder()

    def __enter__(self) -> "UnixctlClient":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        self.sock.close()

    def _send(self, method: str, params: list[str]) -> int:
        self._next_id += 1
        self.sock.sendall(json.dumps({"method": method, "params": params,
                                      "id": self._next_id}).encode())
        return self._next_id

    def _recv(self) -> dict:
        while True:
            text = self._buf.lstrip().decode("utf-8", "replace")
            if text:
                try:
                    obj, end = self._decoder.raw_decode(text)
                except json.JSONDecodeError:
                    pass
                else:
                    self._buf = text[end:].encode()
                    return obj
            chunk = self.sock.recv(65536)
            if not chunk:
                raise UnixctlError(f"{self.path}: connection closed")
            self._buf += chunk

    def call(self, method: str, *params: str) -> str:
        """One command; its text answer.  Raises UnixctlError on error."""
        self._send(method, list(params))
        reply = self._recv()
        if reply.get("error") is not None:
            raise UnixctlError(f"{method}: {reply['error']}")
        return reply.get("result") or ""

    def timed_call(self, method: str, *params: str) -> tuple[str, float]:
        """(answer, seconds it took)."""
        t0 = time.monotonic()
        out = self.call(method, *params)
        return out, time.monotonic() - t0

    def inject_many(self, port: str, frames: Iterable[bytes | str],
                    batch: int = 64) -> int:
        """netdev-dummy/receive every frame on 'port'; see inject."""
        return self.inject(((port, f) for f in frames), batch)

    def inject(self, frames: Iterable[tuple[str, bytes | str]],
               batch: int = 64) -> int:
        """netdev-dummy/receive each (port, frame), at most 'batch'
        requests in flight (more, and the server stops reading while its
        replies wait); returns how many were accepted."""
        ok = pending = 0

        def drain(n: int) -> int:
            return sum(self._recv().get("error") is None for _ in range(n))

        for port, f in frames:
            self._send("netdev-dummy/receive",
                       [port, f if isinstance(f, str) else f.hex()])
            pending += 1
            if pending >= batch:
                ok += drain(pending)
                pending = 0
        return ok + drain(pending)
