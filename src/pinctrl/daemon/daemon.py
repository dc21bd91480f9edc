"""The daemon: start-up, the main thread's loop, supervision, shutdown.

The main thread owns the OVSDB connections (local Open_vSwitch DB for the
chassis configuration, OVN Southbound through sb_sync), the unixctl server
and the pinctrl_handler thread's life cycle.  Options come parsed and
applied (daemon/cli.py); serve() runs the process from there.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import time
from typing import Callable

import ovs.daemon
import ovs.poller
import ovs.timeval
import ovs.unixctl
import ovs.unixctl.server
import ovs.vlog

import pinctrl
from pinctrl.daemon import split_mode, test_hooks
from pinctrl.daemon.cli import (
    EXIT_FAILURE,
    EXIT_OK,
    PROGRAM,
    StartupError,
    check_ssl_remotes,
    db_timeout,
)
from pinctrl.daemon.context import AppctlView, MetricsView
from pinctrl.daemon.keepalive import KeepAlive
from pinctrl.daemon.metrics import MetricsServer
from pinctrl.daemon.sd_notify import Notifier
from pinctrl.daemon.split_mode import SplitMode, SplitModeError
from pinctrl.daemon.supervisor import Supervisor
from pinctrl.db import idl_util
from pinctrl.db.ovs_config import OVS_DB_NAME, OvsConfig
from pinctrl.handler.latency import DispatchLatency
from pinctrl.handler.jobs import HandlerJob
from pinctrl.handler_thread import HEARTBEAT_MS, THREAD_NAME, PinctrlHandler
from pinctrl.sb_sync import SB_DB_NAME, RemoteSwitch, SbSync
from pinctrl.shared.seq import Latch
from pinctrl.shared.state import SharedState
from pinctrl.support import appctl, coverage, runtime
from pinctrl.support.barrier import Barrier, where
from pinctrl.support.log import RateLimit, rl_log

vlog = ovs.vlog.Vlog("main")

# A thread that has not gone round its loop for this long is STUCK.  The
# handler wakes at least every HEARTBEAT_MS, so 5 missed wake-ups.
KEEPALIVE_TIMEOUT_S = 5 * HEARTBEAT_MS / 1000
# Start-up waits for a database in slices this long, feeding the systemd
# watchdog in between.
STARTUP_SLICE_S = 5.0
# The handler thread waits for the GIL whenever the main thread is busy
# with Southbound work; CPython hands it over only every switch interval
# (5 ms by default, several times per packet-in: after poll, recv and
# send).  0.5 ms bounds that wait (make bench: p99 under SB churn); the
# main thread's throughput barely notices.
SWITCH_INTERVAL_S = 0.0005


class Daemon:
    """The main thread's objects and loop."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.shared = SharedState()
        self.stop_latch = Latch()
        self.exiting = False
        self.ovs_cfg: OvsConfig | None = None
        # Replaced (main thread) when external_ids:ovn-remote changes, once
        # 'switch' has replicated the new remote in the background.
        self.sb: SbSync | None = None
        self.switch: RemoteSwitch | None = None
        self._refused_remote: str | None = None     # logged once
        self._probe_seen: tuple[int, str] | None = None
        # One exception barrier per stage of the main loop.
        self.stages = {name: Barrier(name) for name in (
            "ovs_db", "remote", "southbound", "unixctl", "handler_check",
            "supervisor")}
        # Replaced (main thread) if the thread dies.
        self.handler: PinctrlHandler | None = None
        self.handler_started = 0.0
        # Fed by the handler thread, kept across handler restarts.
        self.latency = DispatchLatency()
        self.unixctl: ovs.unixctl.server.UnixctlServer | None = None
        self.metrics: MetricsServer | None = None
        self.split: SplitMode | None = None     # --proxy-rundir
        self.sup = Supervisor(KeepAlive(KEEPALIVE_TIMEOUT_S), Notifier({}),
                              time.monotonic())

    # --- start-up ---------------------------------------------------------
    def start(self) -> None:
        """Main thread, after daemonize_start(): connect both databases,
        serve the control socket, start the handler thread."""
        args = self.args
        self.sup.notifier = Notifier()
        self._start_split_mode()
        self.sup.notifier.notify(STATUS="connecting to the databases")
        self.ovs_cfg = self._open_ovs_config()
        remote = args.ovnsb_db or self.ovs_cfg.ovn_remote
        if not remote:
            raise StartupError(
                "no Southbound remote: set external_ids:ovn-remote in the "
                "Open_vSwitch table or pass --ovnsb-db")
        self.sb = self._open_sb(remote)
        chassis = self.ovs_cfg.system_id
        if not chassis:
            vlog.warn("external_ids:system-id is not set; chassis unknown")
        self._start_unixctl()
        if args.metrics_address is not None:
            self._start_metrics(*args.metrics_address)
        self.shared.set_bridge(args.br_int, chassis)
        keepalive = self.sup.keepalive
        keepalive.register("main")
        keepalive.register(THREAD_NAME, last_mark=self._handler_mark,
                           is_alive=self._handler_alive)
        self._start_handler()
        vlog.info(f"{PROGRAM} {pinctrl.__version__} started: bridge "
                  f"{args.br_int}, chassis {chassis}, Southbound {remote}")
        runtime.warn_if_slow(vlog)

    def _start_split_mode(self) -> None:
        """Split mode's proxy first: ovn-controller reconnects to it while
        the databases are still being reached."""
        try:
            own = split_mode.ownership(self.args)
            if self.args.proxy_rundir:
                self.split = SplitMode(self.args, own)
                self.split.start(self.sup.keepalive, time.monotonic())
        except SplitModeError as e:
            raise StartupError(str(e)) from None

    def _start_handler(self) -> None:
        """Main thread: a new pinctrl_handler thread (at start-up, or in
        place of one that died)."""
        registry = (split_mode.handler_registry(self.split.ownership)
                    if self.split is not None else None)
        self.handler = PinctrlHandler(self.shared, self.args.ovs_rundir,
                                      self.args.probe_interval, self.latency,
                                      registry)
        self.handler_started = time.monotonic()
        self.handler.start()

    def _handler_mark(self) -> float:
        """Any thread: the handler's last loop (its start until then)."""
        h = self.handler
        return (h.heartbeat if h is not None else 0.0) or self.handler_started

    def _handler_alive(self) -> bool:
        """Any thread."""
        return self.handler is not None and self.handler.is_alive()

    def _fetch_schema(self, remote: str, db_name: str, what: str) -> dict:
        """idl_util.fetch_schema bounded by --db-timeout, in slices so that
        the systemd watchdog is fed while a database is unreachable."""
        deadline = time.monotonic() + db_timeout(self.args)
        while True:
            left = deadline - time.monotonic()
            try:
                return idl_util.fetch_schema(remote, db_name,
                                             max(0.1, min(left,
                                                          STARTUP_SLICE_S)))
            except idl_util.DbError as e:
                if time.monotonic() >= deadline:
                    raise StartupError(f"cannot reach the {what} {remote} "
                                       f"({e})") from None
            self.sup.startup_ping(time.monotonic())

    def _open_ovs_config(self) -> OvsConfig:
        """Main thread: the local OVS DB, once its Open_vSwitch row is
        replicated (bounded by --db-timeout)."""
        args = self.args
        schema = self._fetch_schema(args.ovs_db, OVS_DB_NAME, "OVS database")
        cfg = OvsConfig(args.ovs_db, schema)
        deadline = time.monotonic() + db_timeout(args)
        while not cfg.ready():
            cfg.run()
            if cfg.ready():
                break
            if time.monotonic() > deadline:
                raise StartupError(f"no Open_vSwitch row in {args.ovs_db}")
            self.sup.startup_ping(time.monotonic())
            poller = ovs.poller.Poller()
            cfg.wait(poller)
            poller.timer_wait(200)
            poller.block()
        return cfg

    def _open_sb(self, remote: str) -> SbSync:
        """Main thread, at start-up: a Southbound connection to 'remote'
        (bounded by --db-timeout)."""
        check_ssl_remotes(self.args, remote)
        schema = self._fetch_schema(remote, SB_DB_NAME,
                                    "OVN Southbound database")
        return SbSync(self.shared, remote, schema, self._probe_interval(
            remote))

    def _probe_interval(self, remotes: str) -> int:
        """The Southbound inactivity probe ovn-controller would use."""
        cfg = self.ovs_cfg
        assert cfg is not None
        return idl_util.sb_probe_interval(cfg.external_ids, cfg.system_id,
                                          remotes)

    def _start_unixctl(self) -> None:
        """Main thread: the control socket, serving every command."""
        path = self.args.unixctl
        if path is None:
            path = os.path.join(self.args.ovs_rundir,
                                f"{PROGRAM}.{os.getpid()}.ctl")
        err, server = ovs.unixctl.server.UnixctlServer.create(
            os.path.abspath(path), version=pinctrl.__version__)
        if err:
            raise StartupError(f"cannot create control socket {path} "
                               f"({os.strerror(err)})")
        self.unixctl = server
        close_dropped_log_handlers()
        ovs.unixctl.command_register("exit", "", 0, 0, self._cmd_exit, None)
        if test_hooks.enabled():
            test_hooks.register_test_hooks(self._add_handler_job)
        appctl.install(AppctlView(self))
        guard_unixctl_commands()

    def _add_handler_job(self, job: HandlerJob) -> None:
        """Main thread (test hooks): hand 'job' to the running handler."""
        if self.handler is not None:
            self.handler.add_job(job)

    def _start_metrics(self, host: str, port: int) -> None:
        """Main thread: the Prometheus endpoint (its own thread)."""
        self.metrics = MetricsServer(MetricsView(self), host, port)
        try:
            self.metrics.start()
        except (OSError, ImportError) as e:
            self.metrics = None
            raise StartupError(f"cannot serve metrics on {host}:{port} "
                               f"({e})") from None

    # --- loop -------------------------------------------------------------
    def run(self) -> None:
        """The main thread's loop, until exit or a signal.  Each stage is
        behind an exception barrier (support/barrier.py): an exception is
        counted and logged, that stage is skipped (for a back-off when it
        would fail again at once), the other stages go on."""
        cfg, unixctl = self.ovs_cfg, self.unixctl
        assert cfg is not None and unixctl is not None, "start() first"
        st = self.stages
        while not self.exiting:
            poller = ovs.poller.Poller()
            now_ms = ovs.timeval.msec()
            self.sup.keepalive.mark("main")
            st["ovs_db"].run(now_ms, cfg.run)
            st["remote"].run(now_ms, self._follow_remote, cfg, now_ms)
            # Read main_seq before draining what the handler queued, so a
            # change made while sb.run() works wakes the next iteration.
            seen_main = self.shared.main_seq.read()
            st["southbound"].run(now_ms, self._run_sb, cfg, now_ms)
            st["unixctl"].run(now_ms, unixctl.run)
            st["handler_check"].run(now_ms, self._check_handler)
            if self.exiting:
                break
            now = time.monotonic()
            st["supervisor"].run(now_ms, self.sup.run, now, self._sb_state(),
                                 self._of_state(), self._backlog(now_ms))
            runtime.gc_maintenance(now)
            self.sup.wait(poller, now)
            self._wait(poller, now_ms, "ovs_db", lambda: cfg.wait(poller))
            self._wait(poller, now_ms, "remote", lambda: self._wait_remote(
                poller, now_ms))
            self._wait(poller, now_ms, "southbound", lambda: self._wait_sb(
                poller, now_ms))
            self._wait(poller, now_ms, "unixctl", lambda: unixctl.wait(
                poller))
            self.shared.main_seq.wait(poller, seen_main)
            self.stop_latch.wait(poller)
            poller.block()
            if self.stop_latch.is_set():
                self.exiting = True

    def _wait(self, poller: ovs.poller.Poller, now_ms: int, stage: str,
              wait: Callable[[], None]) -> None:
        """Main thread: the stage's own wait, or while it backs off after
        an exception, a timer for its next attempt."""
        b = self.stages[stage]
        if b.backing_off(now_ms):
            b.wait(poller)
        else:
            wait()

    def _run_sb(self, cfg: OvsConfig, now_ms: int) -> None:
        """Main thread: the Southbound stage."""
        sb = self.sb
        assert sb is not None, "start() first"
        seen = (cfg.idl.change_seqno, sb.remotes)
        if seen != self._probe_seen:            # the configuration changed
            self._probe_seen = seen
            sb.set_probe_interval(self._probe_interval(sb.remotes))
        sb.run(now_ms, cfg.system_id, cfg.chassis_inputs(self.args.br_int))
        self.shared.set_bridge(self.args.br_int, cfg.system_id)

    def _backlog(self, now_ms: int) -> dict[str, tuple[int, float]]:
        """Main thread: the Southbound writes still to do, per writer."""
        return self.sb.txn_loop.backlog(now_ms) if self.sb is not None \
            else {}

    def _wait_sb(self, poller: ovs.poller.Poller, now_ms: int) -> None:
        if self.sb is not None:
            self.sb.wait(poller, now_ms)

    def _check_handler(self) -> None:
        """Main thread: restart a handler thread that died."""
        if not self._handler_alive() and not self.exiting:
            coverage.inc("pinctrl_handler_thread_dead")
            vlog.err("pinctrl handler thread died; restarting it")
            self._start_handler()

    def _follow_remote(self, cfg: OvsConfig, now_ms: int) -> None:
        """Main thread: follow external_ids:ovn-remote (unless --ovnsb-db
        pinned the remotes) without blocking.  A new remote is connected
        and replicated in the background (sb_sync.RemoteSwitch) while the
        current connection keeps serving its snapshots and writing; once
        the new IDL holds the server's contents it takes over, with every
        write still pending."""
        sb = self.sb
        assert sb is not None, "start() first"
        remote = cfg.ovn_remote
        if self.args.ovnsb_db or not remote or remote == sb.remotes:
            if self.switch is not None:
                vlog.info(f"ovn-remote is {remote or 'unset'} again: "
                          f"staying on {sb.remotes}")
                self._drop_switch()
            return
        switch = self.switch
        if switch is None or switch.remotes != remote:
            self._drop_switch()
            if remote == self._refused_remote:
                return
            try:
                check_ssl_remotes(self.args, remote)
            except StartupError as e:
                self._refused_remote = remote
                vlog.warn(f"ovn-remote changed but not followed: {e}")
                return
            vlog.info(f"ovn-remote changed to {remote}: connecting in the "
                      f"background, serving from {sb.remotes} meanwhile")
            switch = self.switch = RemoteSwitch(
                self.shared, remote, self._probe_interval(remote))
        new = switch.run(now_ms)
        if new is None:
            return
        vlog.info(f"Southbound {remote} replicated: switching over from "
                  f"{sb.remotes}")
        new.adopt_writes(sb)
        sb.close()
        self.sb, self.switch = new, None
        coverage.inc("sb_remote_switch")

    def _wait_remote(self, poller: ovs.poller.Poller, now_ms: int) -> None:
        if self.switch is not None:
            self.switch.wait(poller, now_ms)

    def _drop_switch(self) -> None:
        if self.switch is not None:
            self.switch.close()
            self.switch = None

    def _sb_state(self) -> str:
        """'synced' (connected and the IDL holds the server's contents;
        sb.run() builds the snapshots in the same call that receives
        them), 'connected' or 'connecting'."""
        sb = self.sb
        if sb is not None and sb.writable():
            return "synced"
        return "connected" if sb is not None and sb.connected() \
            else "connecting"

    def _of_state(self) -> str:
        """The handler's OpenFlow connection state (a display read)."""
        return self.handler.conn.state if self.handler is not None \
            else "idle"

    def shutdown(self) -> None:
        """Main thread: stop everything started, in reverse order."""
        vlog.info("exiting")
        self.sup.notifier.stopping()
        test_hooks.release_test_stalls()
        if self.handler is not None:
            self.handler.stop()
        if self.split is not None:
            self.split.stop()
        if self.metrics is not None:
            self.metrics.close()
        if self.unixctl is not None:
            self.unixctl.close()
        self._drop_switch()
        for db in (self.sb, self.ovs_cfg):
            if db is not None:
                db.close()
        self.sup.notifier.close()

    def request_exit(self) -> None:
        """Any thread or signal handler: make the main loop exit."""
        self.stop_latch.set()

    def _cmd_exit(self, conn: ovs.unixctl.server.UnixctlConnection,
                  argv: list[str], aux: object) -> None:
        """ovs-appctl exit (main thread)."""
        self.exiting = True
        conn.reply(None)


def close_dropped_log_handlers() -> None:
    """python-ovs's vlog/reopen and vlog/close take the log file's handler
    off the "file" logger without closing it: every logrotate leaked a
    descriptor on the old, deleted file.  Close what they take off.  Main
    thread, before the control socket serves."""
    file_logger = logging.getLogger("file")
    if getattr(file_logger.removeHandler, "closes", False):
        return
    remove = file_logger.removeHandler

    def remove_and_close(handler: logging.Handler) -> None:
        remove(handler)
        try:
            handler.close()
        except OSError:         # a full disk fails the flush; the file is
            pass                # closed all the same

    remove_and_close.closes = True      # type: ignore[attr-defined]
    setattr(file_logger, "removeHandler", remove_and_close)


_rl_command = RateLimit(5, 10)


def guard_unixctl_commands() -> None:
    """Every registered ovs-appctl command behind an exception barrier:
    one that raises (vlog/reopen on a read-only or full filesystem, a bug
    in a feature's command) answers an error instead of leaving the
    client waiting, is counted (unixctl_command_error) and logged at a
    limited rate.  Main thread, once every command is registered."""
    for name, cmd in ovs.unixctl.commands.items():
        if getattr(cmd.callback, "guarded", False):
            continue
        cmd.callback = _guarded(name, cmd.callback)


def _guarded(name: str, callback: Callable[..., None]) -> Callable[..., None]:
    def guarded(conn: ovs.unixctl.server.UnixctlConnection,
                argv: list[str], aux: object) -> None:
        try:
            callback(conn, argv, aux)
        except Exception as e:
            coverage.inc("unixctl_command_error")
            rl_log(vlog, "err", _rl_command,
                   f"ovs-appctl {name}: {type(e).__name__}: {e} ({where(e)})")
            if conn._request_id is not None:    # not answered yet
                conn.reply_error(f"{name} failed: {type(e).__name__}: {e}")

    guarded.guarded = True      # type: ignore[attr-defined]
    return guarded


def serve(args: argparse.Namespace) -> int:
    """The process once the options are applied (main thread): daemonize,
    start, loop until exit or a signal, shut down.  Returns the exit
    code."""
    daemon = Daemon(args)
    # Our handlers first, so python-ovs's fatal_signal does not install its
    # own (which would kill us without joining the handler thread).
    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, lambda signum, frame: daemon.request_exit())

    ovs.daemon.daemonize_start()            # fork before any thread exists
    sys.setswitchinterval(SWITCH_INTERVAL_S)
    try:
        daemon.start()
    except StartupError as e:
        vlog.err(str(e))
        print(f"{PROGRAM}: {e}", file=sys.stderr)
        daemon.shutdown()
        return EXIT_FAILURE
    ovs.daemon.daemonize_complete()
    try:
        daemon.run()
    finally:
        daemon.shutdown()
    return EXIT_OK
