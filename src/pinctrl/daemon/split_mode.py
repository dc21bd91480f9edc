"""Split mode, the daemon's side: its options, who owns which opcode (from
the actions registry, which proxy/ must not import), the proxy thread's
life cycle and its pinctrl/show lines.  docs/operations.md "Split mode".

Main thread only, except handler_registry()'s result, which the
pinctrl_handler thread reads (an immutable-by-convention dict built once).
"""

from __future__ import annotations

import argparse
import dataclasses
from typing import Mapping

from pinctrl.actions import REGISTRY, Action, load_all
from pinctrl.actions.env import NO_ENV, HandlerEnv
from pinctrl.actions.not_yet import NOT_IMPLEMENTED
from pinctrl.daemon.keepalive import KeepAlive
from pinctrl.openflow.packet_in import PacketIn
from pinctrl.proxy.ownership import Ownership, OwnershipError, resolve
from pinctrl.proxy.server import (OfProxy, ProxyConfig, ProxyError,
                                  mgmt_paths)

THREAD_NAME = "ofproxy"
# Implemented here, but ovn-controller's own pinctrl also writes their
# Southbound state from its main thread, whatever its handler sees:
# ip_mcast_sync() deletes this chassis's IGMP_Group rows its own snooping
# table lacks, sync_svc_monitors() writes Service_Monitor.status from its
# own probes, bfd_monitor_run() writes BFD.status from its own sessions
# (and its handler keeps sending BFD), fill_ipv6_prefix_state() writes
# ipv6_ra_pd_list (and its handler keeps soliciting).  Split mode leaves
# them with ovn-controller unless --own-opcodes says otherwise
# (docs/operations.md, "Split mode").
PASSED_BY_DEFAULT = frozenset((16, 18, 19, 23))


def default_passed() -> frozenset[int]:
    """The opcodes split mode passes to ovn-controller by default."""
    return frozenset(NOT_IMPLEMENTED) | PASSED_BY_DEFAULT


class SplitModeError(Exception):
    """A split-mode option that cannot work (the caller makes it a
    start-up error)."""


def add_options(p: argparse.ArgumentParser) -> None:
    """The "Split mode" option group of build_parser()."""
    g = p.add_argument_group(
        "Split mode", "run beside a live ovn-controller that programs the "
        "flows (docs/operations.md, \"Split mode\")")
    g.add_argument("--proxy-rundir", metavar="PDIR",
                   help="serve PDIR/BRIDGE.mgmt to ovn-controller (started "
                   "with OVS_RUNDIR=PDIR) and forward it to DIR/BRIDGE.mgmt; "
                   "packet-ins this daemon answers do not reach "
                   "ovn-controller (default: off, take-over mode)")
    g.add_argument("--own-opcodes", action="append", default=[],
                   metavar="OPCODES",
                   help="also answer these (OVN names or numbers, "
                   "comma-separated), even if not implemented here")
    g.add_argument("--pass-opcodes", action="append", default=[],
                   metavar="OPCODES",
                   help="leave these to ovn-controller (default: the ones "
                   "not implemented here, and igmp and handle_svc_check, "
                   "whose Southbound state ovn-controller writes too)")


def ownership(args: argparse.Namespace) -> Ownership:
    """Who answers what, from the registry and the options.  Raises
    SplitModeError."""
    if (args.own_opcodes or args.pass_opcodes) and not args.proxy_rundir:
        raise SplitModeError("--own-opcodes and --pass-opcodes need "
                             "--proxy-rundir")
    names = {op: act.name for op, act in load_all().items()}
    try:
        return resolve(names, default_passed(), args.own_opcodes,
                       args.pass_opcodes)
    except OwnershipError as e:
        raise SplitModeError(str(e)) from None


def _passed(pin: PacketIn, env: HandlerEnv = NO_ENV, now: int = 0) -> None:
    """A packet-in ovn-controller answers: nothing to send."""
    return None


def handler_registry(own: Ownership,
                     registry: Mapping[int, Action] = REGISTRY
                     ) -> dict[int, Action]:
    """The registry the handler dispatches with: opcodes passed to
    ovn-controller keep their name but only count their packet-ins
    (pinctrl_passed_<name>) and never pause-resume, so the daemon never
    answers what ovn-controller answers."""
    return {op: act if own.owns(op) else dataclasses.replace(
                act, pause=False, handler=_passed,
                counter=f"pinctrl_passed_{act.name}")
            for op, act in registry.items()}


class SplitMode:
    """The proxy started for --proxy-rundir (main thread)."""

    def __init__(self, args: argparse.Namespace, own: Ownership) -> None:
        try:
            listen, upstream = mgmt_paths(args.proxy_rundir, args.ovs_rundir,
                                          args.br_int)
        except ProxyError as e:
            raise SplitModeError(str(e)) from None
        self.ownership = own
        self.proxy = OfProxy(ProxyConfig(listen, upstream, own))
        self._started = 0.0

    def start(self, keepalive: KeepAlive, now: float) -> None:
        """Listen and start the proxy thread, watched by 'keepalive'
        ('now': time.monotonic()).  Raises SplitModeError."""
        try:
            self.proxy.open()
        except ProxyError as e:
            raise SplitModeError(str(e)) from None
        self._started = now
        self.proxy.start()
        keepalive.register(THREAD_NAME, last_mark=self._mark,
                           is_alive=self.proxy.is_alive)

    def _mark(self) -> float:
        """Any thread: the proxy's last loop (its start until then)."""
        return self.proxy.heartbeat or self._started

    def stop(self) -> None:
        self.proxy.stop()

    def show_lines(self) -> list[str]:
        return self.proxy.show()
