"""The proxy thread ("ofproxy"): listens where ovn-controller looks for
br-int.mgmt and splices every connection it accepts to a new connection to
the real br-int.mgmt (session.Session).

Its own thread, so that forwarding ovn-controller's flow programming (tens
of thousands of messages at start and on every recompute) never waits in
the pinctrl_handler thread's loop, and a packet-in for the daemon is never
behind it: the handler reads its own connection to the switch.  Non-blocking
sockets and one python-ovs poll loop, like the handler's.

If the switch cannot be reached when ovn-controller connects, the accepted
connection is closed at once: ovn-controller sees what it would see with
ovs-vswitchd down and retries with its own back-off.  If the daemon dies,
ovn-controller's connections see end of stream and it reconnects once the
daemon listens again.

Threads: open() and stop() are called by the main thread; everything else
by the proxy thread, except show() and the status reads (main thread):
'_sessions' and '_closed' are guarded by '_lock' (held only to add, remove
or copy), counters are ints written by the proxy thread only.
"""

from __future__ import annotations

import collections
import errno
import os
import socket
import stat
import threading
import time
from dataclasses import dataclass

import ovs.poller
import ovs.timeval
import ovs.vlog

from pinctrl.proxy.ownership import Ownership
from pinctrl.proxy.session import CLOSED, Session, connect_upstream
from pinctrl.shared.seq import Latch
from pinctrl.support import coverage
from pinctrl.support.log import RateLimit, rl_log
from pinctrl.support.threadloop import run_until_exit

vlog = ovs.vlog.Vlog("ofproxy")
_rl = RateLimit(30, 10)

ACCEPTS_PER_RUN = 8
LISTEN_BACKLOG = 16
CONNECT_TIMEOUT_S = 1.0
HEARTBEAT_MS = 1000         # wake at least this often to prove liveness
KEEP_CLOSED = 8             # closed sessions pinctrl/show still lists


class ProxyError(Exception):
    """The proxy cannot listen where it was told to."""


@dataclass(frozen=True)
class ProxyConfig:
    """'listen_path': <proxy rundir>/<br-int>.mgmt, where ovn-controller
    connects; 'upstream_path': the real <ovs rundir>/<br-int>.mgmt."""
    listen_path: str
    upstream_path: str
    ownership: Ownership


def mgmt_paths(proxy_rundir: str, ovs_rundir: str,
               bridge: str) -> tuple[str, str]:
    """(listen, upstream) socket paths for 'bridge'.  Raises ProxyError
    if both name the same file: the proxy would replace OVS's socket."""
    listen = os.path.join(proxy_rundir, f"{bridge}.mgmt")
    upstream = os.path.join(ovs_rundir, f"{bridge}.mgmt")
    if os.path.realpath(proxy_rundir) == os.path.realpath(ovs_rundir):
        raise ProxyError(f"the proxy run directory {proxy_rundir} is the "
                         f"OVS run directory: give ovn-controller its own")
    return listen, upstream


class OfProxy:
    """The listener, the sessions and the thread that runs them."""

    def __init__(self, config: ProxyConfig) -> None:
        self.config = config
        self.exit_latch = Latch()
        self.listener: socket.socket | None = None
        self._inode: tuple[int, int] | None = None
        self._lock = threading.Lock()
        self._sessions: list[Session] = []
        self._closed: collections.deque[Session] = collections.deque(
            maxlen=KEEP_CLOSED)
        self._next_sid = 1
        self.n_accepted = 0
        self.n_unreachable = 0          # switch not reachable on accept
        self.last_error = ""
        self.heartbeat = 0.0            # time.monotonic() of the last loop
        self.thread = threading.Thread(target=self._main, name="ofproxy")

    # --- main thread -----------------------------------------------------
    def open(self) -> None:
        """Create the run directory if needed and listen.  A stale socket
        left by a killed daemon is replaced; one that answers is another
        process's.  Raises ProxyError."""
        path = self.config.listen_path
        try:
            os.makedirs(os.path.dirname(path), mode=0o755, exist_ok=True)
            _remove_stale_socket(path)
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            try:
                sock.bind(path)
                sock.listen(LISTEN_BACKLOG)
                sock.setblocking(False)
                st = os.stat(path)
            except BaseException:
                sock.close()
                raise
        except OSError as e:
            raise ProxyError(f"cannot listen on {path} ({e.strerror or e})"
                             ) from None
        self.listener = sock
        self._inode = (st.st_dev, st.st_ino)
        vlog.info(f"listening on {path} for ovn-controller, forwarding to "
                  f"{self.config.upstream_path}")

    def start(self) -> None:
        self.thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        """Stop the thread (it closes every session), stop listening and
        remove the socket if it is still ours."""
        self.exit_latch.set()
        if self.thread.is_alive():
            self.thread.join(timeout)
        if self.listener is not None:
            self.listener.close()
            self.listener = None
            path = self.config.listen_path
            try:
                st = os.stat(path)
                if (st.st_dev, st.st_ino) == self._inode:
                    os.unlink(path)
            except OSError:
                pass

    def is_alive(self) -> bool:
        return self.thread.is_alive()

    def sessions(self) -> list[Session]:
        """The open sessions (any thread)."""
        with self._lock:
            return list(self._sessions)

    def show(self) -> list[str]:
        """pinctrl/show lines (main thread)."""
        with self._lock:
            open_, closed = list(self._sessions), list(self._closed)
        cfg = self.config
        lines = [f"Split mode: ovn-controller connects to {cfg.listen_path}"
                 f" (its OVS_RUNDIR={os.path.dirname(cfg.listen_path)}), "
                 f"forwarded to {cfg.upstream_path}"]
        lines += ["  " + line for line in cfg.ownership.describe()]
        lines.append(
            f"  proxied connections: {len(open_)} open, {self.n_accepted} "
            f"accepted, {self.n_unreachable} closed at once (switch "
            f"unreachable"
            + (f": {self.last_error}" if self.last_error else "") + ")")
        now = time.monotonic()
        lines += ["  " + _session_line(s, cfg.ownership, now)
                  for s in open_]
        lines += ["  closed " + _session_line(s, cfg.ownership, now)
                  for s in closed]
        return lines

    # --- proxy thread ----------------------------------------------------
    def _main(self) -> None:
        """The proxy thread: loop until stop()."""
        vlog.info("proxy thread started")
        run_until_exit(self.exit_latch, self.run_once, "proxy",
                       "ofproxy_loop_exception", vlog, _rl)
        for s in self.sessions():
            s.close("pinctrl-daemon exiting")
        vlog.info("proxy thread exiting")

    def run_once(self) -> None:
        """One pass of the loop: accept, forward, then block until there
        is something to do."""
        poller = ovs.poller.Poller()
        now = ovs.timeval.msec()
        self.heartbeat = time.monotonic()
        self._accept()
        done = []
        for s in self.sessions():
            s.run(now)
            if s.state == CLOSED:
                done.append(s)
            else:
                s.wait(poller)
        if done:
            with self._lock:
                for s in done:
                    self._sessions.remove(s)
                    self._closed.append(s)
        if self.listener is not None:
            poller.fd_wait(self.listener, ovs.poller.POLLIN)
        poller.timer_wait(HEARTBEAT_MS)
        self.exit_latch.wait(poller)
        poller.block()

    def _accept(self) -> None:
        for _ in range(ACCEPTS_PER_RUN):
            if self.listener is None:
                return
            try:
                down, _ = self.listener.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError as e:            # e.g. EMFILE: retry next loop
                coverage.inc("ofproxy_accept_error")
                rl_log(vlog, "warn", _rl, f"accept failed: {e}")
                return
            self.n_accepted += 1
            try:
                up = connect_upstream(self.config.upstream_path,
                                      CONNECT_TIMEOUT_S)
            except OSError as e:
                self.n_unreachable += 1
                self.last_error = e.strerror or str(e)
                coverage.inc("ofproxy_upstream_unreachable")
                rl_log(vlog, "warn", _rl,
                       f"{self.config.upstream_path}: {self.last_error}; "
                       f"closing ovn-controller's new connection")
                down.close()
                continue
            own = self.config.ownership
            s = Session(self._next_sid, down, up, own.owned, own.duties)
            self._next_sid += 1
            with self._lock:
                self._sessions.append(s)
            coverage.inc("ofproxy_session_opened")
            rl_log(vlog, "info", _rl, f"connection #{s.sid} from "
                   f"ovn-controller forwarded to {self.config.upstream_path}")


def _remove_stale_socket(path: str) -> None:
    """Unlink 'path' if it is a socket nobody listens on.  Raises OSError
    (EADDRINUSE if a process serves it, EEXIST if it is not a socket)."""
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return
    if not stat.S_ISSOCK(st.st_mode):
        raise FileExistsError(errno.EEXIST, "exists and is not a socket")
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        probe.settimeout(0.5)
        probe.connect(path)
    except OSError:
        os.unlink(path)             # left by a daemon that was killed
        return
    finally:
        probe.close()
    raise OSError(errno.EADDRINUSE, "another process is listening there")


def _session_line(s: Session, own: Ownership, now: float) -> str:
    passed = ", ".join(
        f"{own.label(op) if op is not None else 'other'} {n}"
        for op, n in sorted(dict(s.passed).items(),
                            key=lambda kv: -1 if kv[0] is None else kv[0]))
    age = (s.ended or now) - s.opened
    text = (f"#{s.sid} {s.role} ({int(age)} s): "
            f"packet-ins from the switch {s.n_packet_ins}, dropped "
            f"(answered here) {s.n_dropped_packet_ins}, passed "
            f"{s.n_packet_ins - s.n_dropped_packet_ins}"
            + (f" [{passed}]" if passed else "")
            + f"; periodic packet-outs dropped {s.n_dropped_packet_outs}"
            f"; bytes to the switch {s.down.n_bytes_in}, from the switch "
            f"{s.up.n_bytes_in}")
    if s.n_stalls:
        text += f"; paused by back-pressure {s.n_stalls} times"
    if s.state == CLOSED:
        text += f"; {s.close_reason}"
    return text
