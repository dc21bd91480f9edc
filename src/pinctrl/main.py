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
from pinctrl import coverage, dbutil
from pinctrl.log import fix_vlog_time_format
from pinctrl.handler_thread import HEARTBEAT_MS, PinctrlHandler
from pinctrl.ovs_config import OVS_DB_NAME, OvsConfig
from pinctrl.sb_sync import SB_DB_NAME, SbSync
from pinctrl.seq import Latch
from pinctrl.state import SharedState

PROGRAM = "pinctrl-daemon"
vlog = ovs.vlog.Vlog("main")

EXIT_OK = 0
EXIT_FAILURE = 1


class StartupError(Exception):
    """A fatal configuration or connectivity problem before the main loop."""


def build_parser() -> argparse.ArgumentParser:
    rundir_default = os.environ.get("OVS_RUNDIR", "/var/run/openvswitch")
    p = argparse.ArgumentParser(
        prog=PROGRAM,
        description="OVN pinctrl as a standalone daemon: answers the packets "
        "OVN's flows punt to the controller on an OVS integration bridge "
        "(DHCP, ...).  Do not run it next to an ovn-controller that serves "
        "the same bridge: both would answer.",
        epilog="The Southbound remote and the chassis name default to "
        "external_ids:ovn-remote and external_ids:system-id of the local "
        "Open_vSwitch table, as for ovn-controller.")
    p.add_argument("--br-int", default="br-int", metavar="BRIDGE",
                   help="integration bridge (default: %(default)s)")
    p.add_argument("--ovs-rundir", default=rundir_default, metavar="DIR",
                   help="OVS run directory holding BRIDGE.mgmt and db.sock "
                   "(default: $OVS_RUNDIR or /var/run/openvswitch)")
    p.add_argument("--ovs-db", metavar="REMOTE",
                   help="local OVS database (default: unix:DIR/db.sock)")
    p.add_argument("--ovnsb-db", metavar="REMOTES",
                   help="OVN Southbound remote(s), comma-separated "
                   "(default: external_ids:ovn-remote)")
    p.add_argument("--unixctl", metavar="SOCKET",
                   help="control socket (default: DIR/pinctrl-daemon.PID.ctl)")
    p.add_argument("--db-timeout", type=float, default=30.0, metavar="SECS",
                   help="give up at start-up if a database cannot be "
                   "reached within SECS (0: wait forever; default 30)")
    p.add_argument("--probe-interval", type=int, default=0, metavar="MSECS",
                   help="OpenFlow inactivity probe on BRIDGE.mgmt "
                   "(0 = off, the default, as in current OVN)")
    ssl = p.add_argument_group("SSL options (for ssl: remotes)")
    ssl.add_argument("--private-key", metavar="FILE")
    ssl.add_argument("--certificate", metavar="FILE")
    ssl.add_argument("--ca-cert", metavar="FILE")
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
    d.add_argument("--overwrite-pidfile", action="store_true")
    d.add_argument("--detach", action="store_true",
                   help="run in the background as a daemon")
    d.add_argument("--no-chdir", action="store_true")
    d.add_argument("--monitor", action="store_true",
                   help="restart the daemon if it crashes")
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
    if args.private_key:
        ovs.stream.Stream.ssl_set_private_key_file(args.private_key)
    if args.certificate:
        ovs.stream.Stream.ssl_set_certificate_file(args.certificate)
    if args.ca_cert:
        ovs.stream.Stream.ssl_set_ca_cert_file(args.ca_cert)
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


def _timeout(args: argparse.Namespace) -> float:
    return args.db_timeout if args.db_timeout > 0 else float("inf")


def _open_ovs_config(args: argparse.Namespace) -> OvsConfig:
    try:
        schema = dbutil.fetch_schema(args.ovs_db, OVS_DB_NAME, _timeout(args))
    except dbutil.DbError as e:
        raise StartupError(f"cannot reach the OVS database {args.ovs_db} "
                           f"({e})") from None
    cfg = OvsConfig(args.ovs_db, schema)
    deadline = time.monotonic() + _timeout(args)
    while not cfg.ready():
        cfg.run()
        if cfg.ready():
            break
        if time.monotonic() > deadline:
            raise StartupError(f"no Open_vSwitch row in {args.ovs_db}")
        poller = ovs.poller.Poller()
        cfg.wait(poller)
        poller.timer_wait(200)
        poller.block()
    return cfg


def _open_sb(args: argparse.Namespace, shared: SharedState,
             remote: str) -> SbSync:
    try:
        schema = dbutil.fetch_schema(remote, SB_DB_NAME, _timeout(args))
    except dbutil.DbError as e:
        raise StartupError(f"cannot reach the OVN Southbound database "
                           f"{remote} ({e})") from None
    return SbSync(shared, remote, schema)


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
        self.unixctl: ovs.unixctl.server.UnixctlServer | None = None
        self.started = time.monotonic()

    # --- start-up ---------------------------------------------------------
    def start(self) -> None:
        args = self.args
        self.ovs_cfg = _open_ovs_config(args)
        remote = args.ovnsb_db or self.ovs_cfg.ovn_remote
        if not remote:
            raise StartupError(
                "no Southbound remote: set external_ids:ovn-remote in the "
                "Open_vSwitch table or pass --ovnsb-db")
        self.sb = _open_sb(args, self.shared, remote)
        chassis = self.ovs_cfg.system_id
        if not chassis:
            vlog.warn("external_ids:system-id is not set; chassis unknown")
        self._start_unixctl()
        self.shared.set_bridge(args.br_int, chassis)
        self.handler = PinctrlHandler(self.shared, args.ovs_rundir,
                                      args.probe_interval)
        self.handler.start()
        vlog.info(f"{PROGRAM} {pinctrl.__version__} started: bridge "
                  f"{args.br_int}, chassis {chassis}, Southbound {remote}")

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
        reg = ovs.unixctl.command_register
        reg("exit", "", 0, 0, self._cmd_exit, None)
        reg("pinctrl/show", "", 0, 0, self._cmd_show, None)
        reg("coverage/show", "", 0, 0, self._cmd_coverage, None)

    # --- loop -------------------------------------------------------------
    def run(self) -> None:
        while not self.exiting:
            poller = ovs.poller.Poller()
            self.ovs_cfg.run()
            self._follow_remote()
            # Read main_seq before draining what the handler queued, so a
            # change made while sb.run() works wakes the next iteration.
            seen_main = self.shared.main_seq.read()
            self.sb.run(self.ovs_cfg.system_id)
            self.shared.set_bridge(self.args.br_int, self.ovs_cfg.system_id)
            self.unixctl.run()
            if not self.handler.is_alive() and not self.exiting:
                coverage.inc("pinctrl_handler_thread_dead")
                vlog.err("pinctrl handler thread died; restarting it")
                self.handler = PinctrlHandler(self.shared,
                                              self.args.ovs_rundir,
                                              self.args.probe_interval)
                self.handler.start()
            if self.exiting:
                break
            self.ovs_cfg.wait(poller)
            self.sb.wait(poller)
            self.unixctl.wait(poller)
            self.shared.main_seq.wait(poller, seen_main)
            self.stop_latch.wait(poller)
            poller.block()
            if self.stop_latch.is_set():
                self.exiting = True

    def _follow_remote(self) -> None:
        """Reconnect the Southbound IDL if external_ids:ovn-remote changed
        (unless --ovnsb-db pinned it)."""
        if self.args.ovnsb_db:
            return
        remote = self.ovs_cfg.ovn_remote
        if remote and remote != self.sb.remotes:
            vlog.info(f"ovn-remote changed to {remote}; reconnecting")
            try:
                new = _open_sb(self.args, self.shared, remote)
            except StartupError as e:
                vlog.warn(str(e))
                return
            self.sb.close()
            self.sb = new

    def shutdown(self) -> None:
        vlog.info("exiting")
        if self.handler is not None:
            self.handler.stop()
        if self.unixctl is not None:
            self.unixctl.close()
        for db in (self.sb, self.ovs_cfg):
            if db is not None:
                db.close()

    def request_exit(self) -> None:
        """Any thread or signal handler: make the main loop exit."""
        self.stop_latch.set()

    # --- unixctl commands (main thread) ---------------------------------------
    def _cmd_exit(self, conn, argv, aux) -> None:
        self.exiting = True
        conn.reply(None)

    def _cmd_coverage(self, conn, argv, aux) -> None:
        conn.reply(coverage.format_show())

    def _cmd_show(self, conn, argv, aux) -> None:
        conn.reply(self.show())

    def _handler_health(self) -> str:
        if not self.handler.is_alive():
            return "DEAD"
        age = time.monotonic() - self.handler.heartbeat
        state = "alive" if age < 5 * HEARTBEAT_MS / 1000 else "STUCK"
        return f"{state} (last loop {age:.1f} s ago)"

    def show(self) -> str:
        h, sb = self.handler, self.sb
        with self.shared.mutex:
            br, chassis = self.shared.br_int_name, self.shared.chassis_name
        oc = h.conn
        lines = [
            f"Chassis: {chassis or '(unknown)'}"
            + ("" if sb.summary.get("chassis_found") else
               " (no Chassis row in the Southbound DB)"),
            f"Bridge: {br}",
            f"OpenFlow: {oc.state}"
            + (f" ({oc.target}, OpenFlow 1.5)" if oc.target else ""),
            f"OpenFlow connections: {oc.n_connects}"
            + (f", last error: {oc.last_error}" if oc.last_error else ""),
            f"Southbound: {'connected' if sb.connected() else 'connecting'}"
            f" ({sb.remotes}, leader-only: false)",
            f"Southbound rows: {sb.summary.get('datapaths', 0)} datapaths, "
            f"{sb.summary.get('port_bindings', 0)} port bindings, "
            f"{sb.summary.get('dns_rows', 0)} DNS rows",
            f"Handler thread: {self._handler_health()}",
            f"Uptime: {int(time.monotonic() - self.started)} s",
        ]
        return "\n".join(lines) + "\n"


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
