"""The command line: options, their checks, and the python-ovs module state
they set (vlog, pidfile, daemonize, SSL).  Main thread, before the daemon
starts."""

from __future__ import annotations

import argparse
import logging
import os

import ovs.daemon
import ovs.dirs
import ovs.stream
import ovs.util
import ovs.vlog

import pinctrl
from pinctrl.daemon import split_mode
from pinctrl.daemon.metrics import parse_address
from pinctrl.db import idl_util
from pinctrl.support.log import fix_vlog_time_format

PROGRAM = "pinctrl-daemon"
EXIT_OK = 0
EXIT_FAILURE = 1
_SSL_OPTIONS = ("private_key", "certificate", "ca_cert")


class StartupError(Exception):
    """A fatal configuration or connectivity problem before the main loop."""


_DESCRIPTION = """\
OVN pinctrl as a standalone daemon.  pinctrl-daemon connects to the
management socket of an Open vSwitch integration bridge (DIR/BRIDGE.mgmt)
as OVN's ovn-controller does, reads the OVN Southbound database and answers
the packets OVN's logical flows punt to the controller (DHCPv4/v6, DNS,
ICMP errors, TCP resets, ...) byte for byte as OVN 23.03 does.

Next to an ovn-controller that serves the same bridge, run it only in
split mode (--proxy-rundir): otherwise both would answer every packet-in.
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
  pinctrl-daemon --proxy-rundir /run/pinctrl-daemon
      split mode: ovn-controller, started with OVS_RUNDIR=/run/pinctrl-daemon,
      programs br-int through us; we answer what we implement
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
    """argparse type of --metrics-address."""
    try:
        return parse_address(text)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def build_parser() -> argparse.ArgumentParser:
    """Every option, grouped as --help shows them."""
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
    split_mode.add_options(p)
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
                     ":PORT is loopback, 0.0.0.0:PORT every address; "
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


def configure(args: argparse.Namespace) -> None:
    """Fill in the defaults that depend on other options and apply what
    python-ovs reads from module state.  Raises on a bad SSL file, log
    file or -v spec (the caller prints it and exits)."""
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
    for opt in _SSL_OPTIONS:
        path = getattr(args, opt)
        if path is not None and not os.access(path, os.R_OK):
            raise ValueError(f"{_option(opt)} {path}: not a readable file")
    if args.private_key:
        ovs.stream.Stream.ssl_set_private_key_file(args.private_key)
    if args.certificate:
        ovs.stream.Stream.ssl_set_certificate_file(args.certificate)
    if args.ca_cert:
        ovs.stream.Stream.ssl_set_ca_cert_file(args.ca_cert)


def check_ssl_remotes(args: argparse.Namespace, remotes: str) -> None:
    """ssl: remotes need all three SSL options (StartupError otherwise)."""
    if any(r.startswith("ssl:") for r in idl_util.split_remotes(remotes)):
        missing = [_option(o) for o in _SSL_OPTIONS if getattr(args, o) is None]
        if missing:
            raise StartupError(f"{remotes}: ssl: remotes need "
                               + ", ".join(missing))


def db_timeout(args: argparse.Namespace) -> float:
    """--db-timeout in seconds; 0 means forever."""
    return args.db_timeout if args.db_timeout > 0 else float("inf")


def _option(dest: str) -> str:
    return "--" + dest.replace("_", "-")
