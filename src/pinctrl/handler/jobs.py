"""The periodic jobs of the pinctrl_handler thread (OVN's "injection block"
of pinctrl_handler: gARPs, RAs, buffered-packet release, ...).

A job is handler-private state plus two methods, both called only by the
pinctrl_handler thread:

    run(env, now) -> list[bytes]   OpenFlow messages to send now.  Called on
                                   every loop iteration while connected; it
                                   must return quickly when nothing is due
                                   (no scan of everything per iteration).
    wait(poller, now) -> None      arm a poll timer for the next due time
                                   (called every iteration, connected or not)

'now' is ovs.timeval.msec().  Jobs take it as an argument so unit tests can
drive their schedules without sleeping.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Protocol

import ovs.poller
import ovs.timeval

from pinctrl.actions import REGISTRY, Action
from pinctrl.handler.bfd_job import BfdJob
from pinctrl.handler.buffered_packets import BufferedPackets
from pinctrl.handler.dispatch import Env
from pinctrl.handler.garp_job import GarpJob
from pinctrl.handler.pd_job import PdJob
from pinctrl.handler.mcast_job import McastJob
from pinctrl.handler.ra_job import RaJob
from pinctrl.handler.svc_monitor_job import SvcMonitorJob
from pinctrl.shared.state import SharedState


class HandlerJob(Protocol):
    def run(self, env: Env, now: int) -> list[bytes]: ...

    def wait(self, poller: ovs.poller.Poller, now: int) -> None: ...


def owns(registry: Mapping[int, Action] | None, opcode: int) -> bool:
    """Whether the handler dispatching with 'registry' answers 'opcode'
    itself (split mode replaces the actions it passes to ovn-controller).
    A feature whose Southbound state ovn-controller writes too runs its
    job only then."""
    if registry is None:
        return True
    act, ours = registry.get(opcode), REGISTRY.get(opcode)
    return act is not None and ours is not None and \
        act.handler is ours.handler


def make_jobs(shared: SharedState, buffered_packets: BufferedPackets,
              env: Env | None = None,
              registry: Mapping[int, Action] | None = None
              ) -> list[HandlerJob]:
    """The handler's jobs, in the order they run each iteration.  Each
    feature adds its job here; a job that actions reach is also attached
    to 'env' (the handler's dispatch.Env).  'registry': what the handler
    dispatches with (default: every action)."""
    jobs: list[HandlerJob] = []
    # Frames waiting for arp/nd_ns resolutions: actions push through
    # env.buffered_packets, the job releases and expires them.
    jobs.append(buffered_packets)
    # Periodic announcements of the main thread's snapshots.
    jobs.append(GarpJob(shared.get_garp))
    jobs.append(RaJob(shared.get_ras))
    # The jobs actions reach through env.<attr>: each runs only when the
    # handler answers its opcode (split mode may leave it to
    # ovn-controller, whose pinctrl then does that job).
    reached: list[tuple[int, str, Callable[[], HandlerJob]]] = [
        # BFD sessions (handle_bfd_msg).
        (23, "bfd", lambda: BfdJob(shared.get_bfd, shared.bfd_status,
                                   shared.notify_main,
                                   now=ovs.timeval.msec())),
        # DHCPv6 prefix-delegation clients (handle_dhcpv6_reply).
        (19, "prefixd", lambda: PdJob(shared.get_prefixd,
                                      shared.pd_prefixes,
                                      shared.notify_main)),
        # IGMP/MLD snooping tables and querier (igmp).
        (16, "mcast", lambda: McastJob(shared.get_mcast, shared.mcast_groups,
                                       shared.notify_main)),
        # Load-balancer health checks (handle_svc_check).
        (18, "svc_monitors", lambda: SvcMonitorJob(
            shared.get_svc_monitors, shared.svc_status, shared.notify_main)),
    ]
    for opcode, attr, make in reached:
        if owns(registry, opcode):
            job = make()
            if env is not None:
                setattr(env, attr, job)
            jobs.append(job)
    return jobs
