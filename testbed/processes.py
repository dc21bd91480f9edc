"""Processes started by the test bed: children of this Python process,
tracked and stopped by pid, never by name.

    ProcessGroup(dir, env)   one working directory, one environment, a
                             commands.log of everything run; run() a
                             command, _spawn() a long-running child,
                             stop_processes() ends them all
    Proc                     one started child (its pid and its pidfile's)
    connectable(path)        a unix socket accepts connections
    pid_alive(pid)           the process exists and is not a zombie
    tail(path, n)            the last lines of a log file

Used from the test (or bench) process's main thread only.
"""

from __future__ import annotations

import os
import shlex
import signal
import socket
import subprocess
import time
from pathlib import Path
from typing import Callable


class SandboxError(RuntimeError):
    """A command of the test bed failed, or a process did not come up."""


def connectable(path: str) -> bool:
    """Whether the unix socket 'path' accepts a connection now."""
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        s.settimeout(0.5)
        s.connect(path)
        return True
    except OSError:
        return False
    finally:
        s.close()


def pid_alive(pid: int) -> bool:
    """Whether 'pid' exists; a zombie counts as dead."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def tail(path: str | Path, n: int = 40) -> str:
    """The last 'n' lines of 'path' (reads at most its last 64 KiB); "" if
    it cannot be read."""
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            size = f.tell()
            f.seek(max(0, size - 64 * 1024))
            lines = f.read().decode("utf-8", "replace").splitlines()
    except OSError:
        return ""
    return "\n".join(lines[-n:])


class Proc:
    """A child started in the foreground (so it is reaped), whose own
    pidfile may name another pid (a daemon that re-execs)."""

    def __init__(self, name: str, popen: subprocess.Popen,
                 pidfile: str | None) -> None:
        self.name, self.popen, self.pidfile = name, popen, pidfile

    def pids(self) -> set[int]:
        pids = {self.popen.pid}
        if self.pidfile:
            try:
                pids.add(int(Path(self.pidfile).read_text().strip()))
            except (OSError, ValueError):
                pass
        return pids

    def alive(self) -> bool:
        return self.popen.poll() is None

    def kill(self, sig: int = signal.SIGTERM, timeout: float = 5.0) -> None:
        """'sig', then SIGKILL after 'timeout' s; always by pid."""
        for pid in self.pids():
            if pid == self.popen.pid and self.popen.poll() is not None:
                continue
            if pid != self.popen.pid and not pid_alive(pid):
                continue
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                pass
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.popen.poll()
            if not any(pid_alive(p) for p in self.pids()):
                break
            time.sleep(0.02)
        else:
            for pid in self.pids():
                if pid_alive(pid):
                    try:
                        os.kill(pid, signal.SIGKILL)
                    except ProcessLookupError:
                        pass
        try:
            self.popen.wait(timeout=5)
        except subprocess.TimeoutExpired:
            pass


class ProcessGroup:
    """Commands and children of one test-bed directory (see the module
    docstring).  Subclasses add what they start."""

    def __init__(self, dir: str, env: dict[str, str]) -> None:
        self.dir = dir
        self.env = env
        self.cmdlog = f"{dir}/commands.log"
        self._procs: dict[str, Proc] = {}

    def _log(self, text: str) -> None:
        with open(self.cmdlog, "a") as f:
            f.write(text if text.endswith("\n") else text + "\n")

    def run(self, args: list[str], input: str | bytes | None = None,
            check: bool = True, timeout: float = 30.0,
            stdin_path: str | Path | None = None
            ) -> subprocess.CompletedProcess:
        """Run a command in the group's environment; logged to
        commands.log.  stdin_path: a (seekable) file as stdin, e.g. for
        `ovsdb-client restore`."""
        t0 = time.monotonic()
        text = not isinstance(input, bytes)
        stdin = open(stdin_path, "rb") if stdin_path is not None else None
        try:
            cp = subprocess.run(args, input=input, stdin=stdin,
                                capture_output=True, text=text, env=self.env,
                                cwd=self.dir, timeout=timeout)
        except subprocess.TimeoutExpired as e:
            self._log(f"$ {shlex.join(args)}\n  TIMEOUT after {timeout}s")
            raise SandboxError(
                f"timeout ({timeout}s): {shlex.join(args)}") from e
        finally:
            if stdin is not None:
                stdin.close()
        out = cp.stdout if text else cp.stdout.decode("utf-8", "replace")
        err = cp.stderr if text else cp.stderr.decode("utf-8", "replace")
        self._log(f"$ {shlex.join(args)}   # rc={cp.returncode} "
                  f"{time.monotonic() - t0:.3f}s"
                  + (f"\n{out[:2000]}" if out else "")
                  + (f"\n[stderr] {err[:4000]}" if err else ""))
        if check and cp.returncode != 0:
            raise SandboxError(f"{shlex.join(args)} failed "
                               f"(rc={cp.returncode}): {err.strip()[-2000:]}")
        return cp

    def _spawn(self, name: str, args: list[str], ready: Callable[[], bool],
               pidfile: str | None, timeout: float = 15.0) -> Proc:
        """Start 'args' as child 'name' (stdout and stderr to
        <dir>/<name>.stdout) and poll ready() until it is true."""
        out = open(f"{self.dir}/{name}.stdout", "ab")
        self._log(f"$ {shlex.join(args)} &")
        popen = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=out,
                                 stderr=subprocess.STDOUT, env=self.env,
                                 cwd=self.dir, start_new_session=True)
        out.close()
        proc = Proc(name, popen, pidfile)
        self._procs[name] = proc
        deadline = time.monotonic() + timeout
        while not ready():
            if popen.poll() is not None:
                raise SandboxError(f"{name} exited with {popen.returncode}:\n"
                                   + tail(f"{self.dir}/{name}.stdout") + "\n"
                                   + tail(f"{self.dir}/{name}.log"))
            if time.monotonic() > deadline:
                raise SandboxError(f"{name} not ready after {timeout}s:\n"
                                   + tail(f"{self.dir}/{name}.log"))
            time.sleep(0.01)
        return proc

    def stop_processes(self, first: tuple[str, ...] = ()) -> None:
        """SIGTERM (then SIGKILL) the children named in 'first', in that
        order, then every other one."""
        for name in first:
            proc = self._procs.pop(name, None)
            if proc is not None:
                proc.kill(signal.SIGTERM, timeout=5)
        for proc in self._procs.values():
            proc.kill(signal.SIGTERM, timeout=5)
        self._procs.clear()
