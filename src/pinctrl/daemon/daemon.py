"""The daemon: start-up, the main thread's loop, supervision, shutdown.

The main thread owns the OVSDB connections (local Open_vSwitch DB for the
chassis configuration, OVN Southbound through sb_sync), the unixctl server
and the pinctrl_handler thread's life cycle.  Options come parsed and
applied (daemon/cli.py); serve() runs the process from there.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import time

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
from pinctrl.sb_sync import SB_DB_NAME, SbSync
from pinctrl.shared.seq import Latch
from pinctrl.shared.state import SharedState
from pinctrl.support import appctl, coverage

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
        # Replaced (main thread) when external_ids:ovn-remote changes.
        self.sb: SbSync | None = None
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
        """Main thread: a Southbound connection to 'remote'."""
        check_ssl_remotes(self.args, remote)
        schema = self._fetch_schema(remote, SB_DB_NAME,
                                    "OVN Southbound database")
        return SbSync(self.shared, remote, schema)

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
        ovs.unixctl.command_register("exit", "", 0, 0, self._cmd_exit, None)
        if test_hooks.enabled():
            test_hooks.register_test_hooks(self._add_handler_job)
        appctl.install(AppctlView(self))

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
        """The main thread's loop, until exit or a signal."""
        cfg, unixctl = self.ovs_cfg, self.unixctl
        assert cfg is not None and unixctl is not None, "start() first"
        br_int = self.args.br_int
        while not self.exiting:
            poller = ovs.poller.Poller()
            self.sup.keepalive.mark("main")
            cfg.run()
            sb = self._follow_remote(cfg)
            # Read main_seq before draining what the handler queued, so a
            # change made while sb.run() works wakes the next iteration.
            seen_main = self.shared.main_seq.read()
            sb.run(ovs.timeval.msec(), cfg.system_id,
                   cfg.chassis_inputs(br_int))
            self.shared.set_bridge(br_int, cfg.system_id)
            unixctl.run()
            if not self._handler_alive() and not self.exiting:
                coverage.inc("pinctrl_handler_thread_dead")
                vlog.err("pinctrl handler thread died; restarting it")
                self._start_handler()
            if self.exiting:
                break
            now = time.monotonic()
            self.sup.run(now, self._sb_state(), self._of_state())
            self.sup.wait(poller, now)
            cfg.wait(poller)
            sb.wait(poller, ovs.timeval.msec())
            unixctl.wait(poller)
            self.shared.main_seq.wait(poller, seen_main)
            self.stop_latch.wait(poller)
            poller.block()
            if self.stop_latch.is_set():
                self.exiting = True

    def _follow_remote(self, cfg: OvsConfig) -> SbSync:
        """Reconnect the Southbound IDL if external_ids:ovn-remote changed
        (unless --ovnsb-db pinned it).  Returns the current SbSync."""
        sb = self.sb
        assert sb is not None, "start() first"
        remote = cfg.ovn_remote
        if self.args.ovnsb_db or not remote or remote == sb.remotes:
            return sb
        vlog.info(f"ovn-remote changed to {remote}; reconnecting")
        try:
            new = self._open_sb(remote)
        except StartupError as e:
            vlog.warn(str(e))
            return sb
        sb.close()
        self.sb = new
        return new

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
