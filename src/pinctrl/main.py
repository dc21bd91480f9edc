"""pinctrl-daemon entry point: options, daemonization, the main thread loop.

The main thread owns the OVSDB connections (local Open_vSwitch DB for the
chassis configuration, OVN Southbound through sb_sync), the unixctl server
and the pinctrl_handler thread's life cycle.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import time

import ovs.daemon
import ovs.dirs
import ovs.poller
import ovs.stream
import ovs.timeval
import ovs.unixctl
import ovs.unixctl.server
import ovs.util
import ovs.vlog

import pinctrl
from pinctrl.daemon.keepalive import ALIVE, KeepAlive, ThreadHealth
from pinctrl.daemon.metrics import MetricsServer, parse_address
from pinctrl.daemon.sd_notify import Notifier
from pinctrl.db import idl_util
from pinctrl.db.ovs_config import OVS_DB_NAME, OvsConfig
from pinctrl.handler.latency import DispatchLatency, Histogram
from pinctrl.handler_thread import HEARTBEAT_MS, PinctrlHandler
from pinctrl.sb_sync import SB_DB_NAME, SbSync
from pinctrl.shared.seq import Latch
from pinctrl.shared.state import SharedState
from pinctrl.support import appctl, coverage
from pinctrl.support.log import fix_vlog_time_format

PROGRAM = "pinctrl-daemon"
vlog = ovs.vlog.Vlog("main")

EXIT_OK = 0
SWITCH_INTERVAL_S = 0.0005
EXIT_FAILURE = 1

# A thread that has not gone round its loop for this long is STUCK.  The
# handler wakes at least every HEARTBEAT_MS, so 5 missed wake-ups.
KEEPALIVE_TIMEOUT_S = 5 * HEARTBEAT_MS / 1000
# The main loop wakes at least this often to check the threads.
KEEPALIVE_CHECK_MS = 1000
# ... and this often until READY=1 (the handler does not wake it when the
# OpenFlow connection comes up).
READY_POLL_MS = 100
# Start-up waits for a database in slices this long, feeding the systemd
# watchdog in between.
STARTUP_SLICE_S = 5.0
# Test hooks (appctl pinctrl/test-*) exist only with this set to 1.
TEST_HOOKS_ENV = "PINCTRL_TEST_HOOKS"


class StartupError(Exception):
    """A fatal configuration or connectivity problem before the main loop."""


_DESCRIPTION = """\
OVN pinctrl as a standalone daemon.  pinctrl-daemon connects to the
management socket of an Open vSwitch integration bridge (DIR/BRIDGE.mgmt)
as OVN's ovn-controller does, reads the OVN Southbound database and answers
the packets OVN's logical flows punt to the controller (DHCPv4/v6, DNS,
ICMP errors, TCP resets, ...) byte for byte as OVN 23.03 does.

Never run it next to an ovn-controller that serves the same bridge: both
would answer every packet-in.
"""

_EPILOG = """\
The Southbound remote(s) and the chassis name default to
external_ids:ovn-remote and external_ids:system-id of the local Open_vSwitch
table, as for ovn-controller.

examples:
  pinctrl-daemon --br-int br-int
      foreground, next to the system's OVS (remotes from the OVS DB)
  pinctrl-daemon --pidfile --detach --log-file -vconsole:off
      background daemon, logging to /var/log/openvswitch/pinctrl-daemon.log
  pinctrl-daemon --ovnsb-db ssl:10.0.0.1:6642,ssl:10.0.0.2:6642 \\
      --private-key /etc/ovn/key.pem --certificate /etc/ovn/cert.pem \\
      --ca-cert /etc/ovn/cacert.pem
      clustered Southbound over SSL: any member, followers are fine
  pinctrl-daemon --metrics-address 127.0.0.1:9476
      Prometheus metrics at http://127.0.0.1:9476/metrics
  ovs-appctl -t pinctrl-daemon pinctrl/show
      connection states, thread health, cache sizes (also: coverage/show,
      memory/show, pinctrl/dns-cache, vlog/list, vlog/set, exit)

files:
  DIR/BRIDGE.mgmt              OpenFlow management socket of the bridge
  DIR/db.sock                  local Open_vSwitch database
  DIR/pinctrl-daemon.PID.ctl   control socket (ovs-appctl -t pinctrl-daemon)

environment:
  OVS_RUNDIR, OVS_LOGDIR       default DIR and log directory
  NOTIFY_SOCKET, WATCHDOG_USEC, WATCHDOG_PID
                               set by systemd (Type=notify, WatchdogSec=):
                               READY=1 once the Southbound DB is synced and
                               the OpenFlow connection is up; WATCHDOG=1
                               only while every thread is alive

signals:
  SIGTERM, SIGINT, SIGHUP      exit cleanly (as `ovs-appctl ... exit`)

See docs/operations.md for the service, the commands and the metrics.
"""


def _metrics_address(text: str) -> tuple[str, int]:
    try:
        return parse_address(text)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def build_parser() -> argparse.ArgumentParser:
    rundir_default = os.environ.get("OVS_RUNDIR", "/var/run/openvswitch")
    p = argparse.ArgumentParser(
        prog=PROGRAM, description=_DESCRIPTION, epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter)
    c = p.add_argument_group("Connections")
    c.add_argument("--br-int", default="br-int", metavar="BRIDGE",
                   help="integration bridge (default: %(default)s)")
    c.add_argument("--ovs-rundir", default=rundir_default, metavar="DIR",
                   help="OVS run directory holding BRIDGE.mgmt and db.sock "
                   "(default: $OVS_RUNDIR or /var/run/openvswitch)")
    c.add_argument("--ovs-db", metavar="REMOTE",
                   help="local OVS database (default: unix:DIR/db.sock)")
    c.add_argument("--ovnsb-db", metavar="REMOTES",
                   help="OVN Southbound remote(s), comma-separated; for a "
                   "clustered SB list the members, any of them will do "
                   "(default: external_ids:ovn-remote)")
    c.add_argument("--db-timeout", type=float, default=30.0, metavar="SECS",
                   help="give up at start-up if a database cannot be "
                   "reached within SECS (0: wait forever; default 30)")
    c.add_argument("--probe-interval", type=int, default=0, metavar="MSECS",
                   help="OpenFlow inactivity probe on BRIDGE.mgmt "
                   "(0 = off, the default, as in current OVN)")
    ssl = p.add_argument_group(
        "SSL options", "for ssl: remotes; all three are required")
    ssl.add_argument("--private-key", metavar="FILE",
                     help="our private key (PEM)")
    ssl.add_argument("--certificate", metavar="FILE",
                     help="our certificate, signed by a CA the server "
                     "trusts (PEM)")
    ssl.add_argument("--ca-cert", metavar="FILE",
                     help="CA certificate that signed the server's "
                     "certificate (PEM)")
    ctl = p.add_argument_group("Control and monitoring")
    ctl.add_argument("--unixctl", metavar="SOCKET",
                     help="control socket (default: "
                     "DIR/pinctrl-daemon.PID.ctl)")
    ctl.add_argument("--metrics-address", type=_metrics_address,
                     metavar="HOST:PORT",
                     help="serve Prometheus metrics at "
                     "http://HOST:PORT/metrics (off by default; "
                     "[::1]:PORT for IPv6, port 0 picks a free port)")
    lg = p.add_argument_group("Logging options")
    lg.add_argument("--log-file", nargs="?", const="default", metavar="FILE",
                    help="also log to FILE (default "
                    "$OVS_LOGDIR/pinctrl-daemon.log)")
    # Not ovs.vlog.add_args: its -v keeps only the last occurrence, so
    # "-vconsole:off -vfile:dbg" would silently drop the first spec.
    lg.add_argument("-v", "--verbose", nargs="*", action="extend",
                    metavar="SPEC", help="vlog levels, e.g. -vconsole:off "
                    "-vfile:dbg -vpinctrl:dbg (bare -v: everything at dbg)")
    d = p.add_argument_group("Daemon options")
    d.add_argument("--pidfile", nargs="?", const="default", metavar="FILE",
                   help="create a pidfile (default DIR/pinctrl-daemon.pid)")
    d.add_argument("--overwrite-pidfile", action="store_true",
                   help="replace a pidfile left by a dead process")
    d.add_argument("--detach", action="store_true",
                   help="run in the background (not under systemd "
                   "Type=notify: the forked child is not the main pid)")
    d.add_argument("--no-chdir", action="store_true",
                   help="with --detach: keep the working directory")
    d.add_argument("--monitor", action="store_true",
                   help="restart the daemon if it crashes (prefer systemd "
                   "Restart=on-failure)")
    p.add_argument("-V", "--version", action="version",
                   version=f"{PROGRAM} {pinctrl.__version__}")
    return p


def _configure(args: argparse.Namespace) -> None:
    """Apply global options that python-ovs reads from module state."""
    ovs.util.PROGRAM_NAME = PROGRAM
    ovs.dirs.RUNDIR = args.ovs_rundir
    if args.ovs_db is None:
        args.ovs_db = f"unix:{args.ovs_rundir}/db.sock"
    if args.log_file == "default":
        args.log_file = os.path.join(
            os.environ.get("OVS_LOGDIR", "/var/log/openvswitch"),
            f"{PROGRAM}.log")
    if args.verbose == []:
        args.verbose = ["any:any:dbg"]
    fix_vlog_time_format()
    ovs.vlog.handle_args(args)
    for dest in ("file", "syslog"):
        # A vlog destination without a handler would fall through to
        # logging's last-resort stderr handler and print every warning twice.
        logging.getLogger(dest).addHandler(logging.NullHandler())
    _configure_ssl(args)
    if args.pidfile:
        ovs.daemon.set_pidfile(None if args.pidfile == "default"
                               else os.path.abspath(args.pidfile))
    if args.overwrite_pidfile:
        ovs.daemon.ignore_existing_pidfile()
    if args.detach:
        ovs.daemon.set_detach()
    if args.no_chdir:
        ovs.daemon.set_no_chdir()
    if args.monitor:
        ovs.daemon.set_monitor()


def _configure_ssl(args: argparse.Namespace) -> None:
    """python-ovs's SSLStream reads its key, certificate and CA from
    ovs.stream.Stream class state when it opens a connection; an unreadable
    file would surface there as an exception, so check them now."""
    for opt in ("private_key", "certificate", "ca_cert"):
        path = getattr(args, opt)
        if path is not None and not os.access(path, os.R_OK):
            raise ValueError(f"--{opt.replace('_', '-')} {path}: "
                             f"not a readable file")
    if args.private_key:
        ovs.stream.Stream.ssl_set_private_key_file(args.private_key)
    if args.certificate:
        ovs.stream.Stream.ssl_set_certificate_file(args.certificate)
    if args.ca_cert:
        ovs.stream.Stream.ssl_set_ca_cert_file(args.ca_cert)


def _check_ssl_remotes(args: argparse.Namespace, remotes: str) -> None:
    if any(r.startswith("ssl:") for r in idl_util.split_remotes(remotes)):
        missing = [f"--{o.replace('_', '-')}" for o in
                   ("private_key", "certificate", "ca_cert")
                   if getattr(args, o) is None]
        if missing:
            raise StartupError(f"{remotes}: ssl: remotes need "
                               + ", ".join(missing))


def _timeout(args: argparse.Namespace) -> float:
    return args.db_timeout if args.db_timeout > 0 else float("inf")


class Daemon:
    """The main thread's objects and loop."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.shared = SharedState()
        self.stop_latch = Latch()
        self.exiting = False
        self.ovs_cfg: OvsConfig | None = None
        self.sb: SbSync | None = None
        self.handler: PinctrlHandler | None = None
        self.handler_started = 0.0
        # Fed by the handler thread, kept across handler restarts.
        self.latency = DispatchLatency()
        self.unixctl: ovs.unixctl.server.UnixctlServer | None = None
        self.metrics: MetricsServer | None = None
        self.started = time.monotonic()
        # Replaced in start(), after the fork: WATCHDOG_PID must be ours.
        self.notifier = Notifier({})
        self.keepalive = KeepAlive(KEEPALIVE_TIMEOUT_S)
        self.health: list[ThreadHealth] = []
        self.ready = False
        self._next_ping = 0.0
        # Published by the main thread each loop for the metrics thread
        # (a new dict each time: readers never see a half-updated one).
        self.gauges: dict[str, float] = {}

    # --- start-up ---------------------------------------------------------
    def start(self) -> None:
        """Main thread, after daemonize_start(): connect both databases,
        serve the control socket, start the handler thread."""
        args = self.args
        self.notifier = Notifier()
        self.notifier.notify(STATUS="connecting to the databases")
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
        self.keepalive.register("main")
        self.keepalive.register(
            "ovn_pinctrl",
            last_mark=lambda: self.handler.heartbeat or self.handler_started,
            is_alive=lambda: self.handler.is_alive())
        self._start_handler()
        vlog.info(f"{PROGRAM} {pinctrl.__version__} started: bridge "
                  f"{args.br_int}, chassis {chassis}, Southbound {remote}")

    def _start_handler(self) -> None:
        self.handler = PinctrlHandler(self.shared, self.args.ovs_rundir,
                                      self.args.probe_interval, self.latency)
        self.handler_started = time.monotonic()
        self.handler.start()

    def _startup_ping(self) -> None:
        """While the main thread waits for a database (at start-up, when
        only it exists, or when ovn-remote changes) it is alive: feed the
        watchdog if every other thread is too."""
        if KeepAlive.all_alive(self.keepalive.check()):
            self._feed_watchdog(time.monotonic())

    def _feed_watchdog(self, now: float) -> float | None:
        """WATCHDOG=1 if one is due; seconds until the next one is due
        (None without a watchdog).  The caller decides that every thread
        is alive."""
        interval = self.notifier.watchdog_interval()
        if interval is None:
            return None
        if now >= self._next_ping:
            self.notifier.watchdog()
            self._next_ping = now + interval
        return self._next_ping - now

    def _fetch_schema(self, remote: str, db_name: str, what: str) -> dict:
        """idl_util.fetch_schema bounded by --db-timeout, in slices so that
        the systemd watchdog is fed while a database is unreachable."""
        deadline = time.monotonic() + _timeout(self.args)
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
            self._startup_ping()

    def _open_ovs_config(self) -> OvsConfig:
        args = self.args
        schema = self._fetch_schema(args.ovs_db, OVS_DB_NAME, "OVS database")
        cfg = OvsConfig(args.ovs_db, schema)
        deadline = time.monotonic() + _timeout(args)
        while not cfg.ready():
            cfg.run()
            if cfg.ready():
                break
            if time.monotonic() > deadline:
                raise StartupError(f"no Open_vSwitch row in {args.ovs_db}")
            self._startup_ping()
            poller = ovs.poller.Poller()
            cfg.wait(poller)
            poller.timer_wait(200)
            poller.block()
        return cfg

    def _open_sb(self, remote: str) -> SbSync:
        _check_ssl_remotes(self.args, remote)
        schema = self._fetch_schema(remote, SB_DB_NAME,
                                    "OVN Southbound database")
        return SbSync(self.shared, remote, schema)

    def _start_unixctl(self) -> None:
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
        appctl.register("pinctrl/show", lambda ctx, argv: ctx.show())
        appctl.register("coverage/show",
                        lambda ctx, argv: coverage.format_show())
        appctl.register("memory/show", lambda ctx, argv: appctl.format_memory(
            appctl.memory_counts(ctx)))
        appctl.register("pinctrl/dns-cache", _cmd_dns_cache)
        if os.environ.get(TEST_HOOKS_ENV) == "1":
            appctl.register_test_hooks()
        appctl.install(self)

    def _start_metrics(self, host: str, port: int) -> None:
        self.metrics = MetricsServer(self, host, port)
        try:
            self.metrics.start()
        except (OSError, ImportError) as e:
            self.metrics = None
            raise StartupError(f"cannot serve metrics on {host}:{port} "
                               f"({e})") from None

    # --- loop -------------------------------------------------------------
    def run(self) -> None:
        """The main thread's loop, until exit or a signal."""
        while not self.exiting:
            poller = ovs.poller.Poller()
            self.keepalive.mark("main")
            self.ovs_cfg.run()
            self._follow_remote()
            # Read main_seq before draining what the handler queued, so a
            # change made while sb.run() works wakes the next iteration.
            seen_main = self.shared.main_seq.read()
            self.sb.run(self.ovs_cfg.system_id,
                        self.ovs_cfg.chassis_inputs(self.args.br_int))
            self.shared.set_bridge(self.args.br_int, self.ovs_cfg.system_id)
            self.unixctl.run()
            if not self.handler.is_alive() and not self.exiting:
                coverage.inc("pinctrl_handler_thread_dead")
                vlog.err("pinctrl handler thread died; restarting it")
                self._start_handler()
            if self.exiting:
                break
            self._supervise(poller)
            self.ovs_cfg.wait(poller)
            self.sb.wait(poller)
            self.unixctl.wait(poller)
            self.shared.main_seq.wait(poller, seen_main)
            self.stop_latch.wait(poller)
            poller.block()
            if self.stop_latch.is_set():
                self.exiting = True

    def _sb_synced(self) -> bool:
        """Connected and the IDL holds the server's contents (sb.run()
        builds the snapshots in the same call that receives them)."""
        return self.sb.writable()

    def _supervise(self, poller: ovs.poller.Poller) -> None:
        """Keep-alive check, systemd READY/STATUS/WATCHDOG, metrics gauges
        (main thread, once per loop); arms the timers that bring the loop
        back in time for the next check or ping."""
        now = time.monotonic()
        self.health = self.keepalive.run(now)
        alive = KeepAlive.all_alive(self.health)
        sb_ok, of_ok = self._sb_synced(), self.handler.conn.is_connected()
        if not self.ready and sb_ok and of_ok:
            self.ready = True
            vlog.info("Southbound synced and OpenFlow connected: ready")
            self.notifier.ready(self.status_line())
        else:
            self.notifier.status(self.status_line())
        self.gauges = {"ready": float(self.ready),
                       "southbound_connected": float(sb_ok),
                       "openflow_connected": float(of_ok),
                       "uptime_seconds": now - self.started}

        wait_ms = KEEPALIVE_CHECK_MS if self.ready else READY_POLL_MS
        due = self._feed_watchdog(now) if alive else None
        if due is not None:
            wait_ms = min(wait_ms, int(due * 1000) + 1)
        poller.timer_wait(wait_ms)

    def _follow_remote(self) -> None:
        """Reconnect the Southbound IDL if external_ids:ovn-remote changed
        (unless --ovnsb-db pinned it)."""
        if self.args.ovnsb_db:
            return
        remote = self.ovs_cfg.ovn_remote
        if remote and remote != self.sb.remotes:
            vlog.info(f"ovn-remote changed to {remote}; reconnecting")
            try:
                new = self._open_sb(remote)
            except StartupError as e:
                vlog.warn(str(e))
                return
            self.sb.close()
            self.sb = new

    def shutdown(self) -> None:
        """Main thread: stop everything started, in reverse order."""
        vlog.info("exiting")
        self.notifier.stopping()
        appctl.release_test_stalls()
        if self.handler is not None:
            self.handler.stop()
        if self.metrics is not None:
            self.metrics.close()
        if self.unixctl is not None:
            self.unixctl.close()
        for db in (self.sb, self.ovs_cfg):
            if db is not None:
                db.close()
        self.notifier.close()

    def request_exit(self) -> None:
        """Any thread or signal handler: make the main loop exit."""
        self.stop_latch.set()

    # --- what the commands, STATUS= and the metrics report -----------------
    def _cmd_exit(self, conn, argv, aux) -> None:
        self.exiting = True
        conn.reply(None)

    def thread_health(self) -> list[ThreadHealth]:
        """Any thread (the metrics thread calls it on every scrape)."""
        return self.keepalive.check()

    def dispatch_latency(self) -> dict[str, Histogram]:
        """Any thread: the handler's dispatch latency histograms."""
        return self.latency.snapshot()

    def metrics_gauges(self) -> dict[str, float]:
        """Any thread: the gauges the main loop last published."""
        return self.gauges

    def queue_depths(self) -> dict[str, int]:
        """Any thread: sizes of the shared state's containers, the handler's
        OpenFlow transmit backlog and its buffered packets (plain len()
        reads; attributes other features have not added yet are skipped)."""
        out = appctl.shared_sizes(self.shared)
        h = self.handler
        if h is not None:
            out["openflow_tx_bytes"] = h.openflow_tx_bytes()
            out["buffered_packets"] = h.buffered_packets_summary()[1]
        return out

    def status_line(self) -> str:
        """One line for systemd's STATUS= (changes only with the state, so
        it is sent only on state changes)."""
        sb = "synced" if self._sb_synced() else (
            "connected" if self.sb.connected() else "connecting")
        of = self.handler.conn.state
        bad = [f"thread {h.name} {h.state}" for h in self.health
               if h.state != ALIVE]
        head = "; ".join(bad) + "; " if bad else ""
        return (f"{head}{'ready' if self.ready else 'starting'}: "
                f"Southbound {sb}, OpenFlow {of}")

    def show(self) -> str:
        """pinctrl/show (main thread)."""
        h, sb = self.handler, self.sb
        with self.shared.mutex:
            br, chassis = self.shared.br_int_name, self.shared.chassis_name
            dns = self.shared.dns_cache
        sizes = appctl.shared_sizes(self.shared)
        sizes["dns_cache names"] = appctl.dns_name_count(dns)
        oc = h.conn
        n = self.notifier
        systemd = ("not under systemd" if not n.enabled else
                   ("ready" if self.ready else "starting")
                   + (f", watchdog every {n.watchdog_interval():g} s"
                      if n.watchdog_interval() else ", no watchdog"))
        health = self.keepalive.check()
        lines = [
            f"Chassis: {chassis or '(unknown)'}"
            + ("" if sb.summary.get("chassis_found") else
               " (no Chassis row in the Southbound DB)"),
            f"Bridge: {br}",
            f"OpenFlow: {oc.state}"
            + (f" ({oc.target}, OpenFlow 1.5)" if oc.target else ""),
            f"OpenFlow connections: {oc.n_connects}"
            + (f", last error: {oc.last_error}" if oc.last_error else ""),
            (f"Southbound: {'connected' if sb.connected() else 'connecting'}"
             f" ({sb.remotes}, leader-only: false)"),
            (f"Southbound server: {idl_util.idl_remote(sb.idl)} "
             f"({appctl.sb_server_info(sb.idl, SB_DB_NAME)})"),
            (f"Southbound rows: {sb.summary.get('datapaths', 0)} datapaths, "
             f"{sb.summary.get('port_bindings', 0)} port bindings, "
             f"{sb.summary.get('dns_rows', 0)} DNS rows"),
            "Caches: " + ", ".join(f"{k} {v}" for k, v in sorted(
                sizes.items())),
            f"Handler thread: {_health_text(health, 'ovn_pinctrl')}",
            "Threads: " + ", ".join(str(t) for t in health),
            f"systemd: {systemd}",
        ]
        if self.metrics is not None:
            lines.append(f"Metrics: http://{self.metrics.host}:"
                         f"{self.metrics.port}/metrics")
        lines.append(f"Uptime: {int(time.monotonic() - self.started)} s")
        return "\n".join(lines) + "\n"


def _health_text(health: list[ThreadHealth], name: str) -> str:
    for t in health:
        if t.name == name:
            return str(t).split(": ", 1)[1]
    return "unknown"


def _cmd_dns_cache(ctx: Daemon, argv: list[str]) -> str:
    with ctx.shared.mutex:
        cache = ctx.shared.dns_cache
    return appctl.format_dns_cache(cache)


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        _configure(args)
    except Exception as e:          # bad SSL file, log file, ...
        print(f"{PROGRAM}: {e}", file=sys.stderr)
        return EXIT_FAILURE

    daemon = Daemon(args)
    # Our handlers first, so python-ovs's fatal_signal does not install its
    # own (which would kill us without joining the handler thread).
    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, lambda signum, frame: daemon.request_exit())

    ovs.daemon.daemonize_start()            # fork before any thread exists
    # The handler thread waits for the GIL whenever the main thread is busy
    # with Southbound work; CPython hands it over only every switch
    # interval (5 ms by default, several times per packet-in: after poll,
    # recv and send).  0.5 ms bounds that wait (make bench: p99 under SB
    # churn); the main thread's throughput barely notices.
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


if __name__ == "__main__":
    sys.exit(main())
