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

from collections.abc import Mapping
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
    # BFD sessions: handle_bfd_msg reaches them through env.bfd.
    if owns(registry, 23):
        bfd = BfdJob(shared.get_bfd, shared.bfd_status, shared.notify_main,
                     now=ovs.timeval.msec())
        if env is not None:
            env.bfd = bfd
        jobs.append(bfd)
    # DHCPv6 prefix-delegation clients: handle_dhcpv6_reply reaches them
    # through env.prefixd.
    if owns(registry, 19):
        prefixd = PdJob(shared.get_prefixd, shared.pd_prefixes,
                        shared.notify_main)
        if env is not None:
            env.prefixd = prefixd
        jobs.append(prefixd)
    # IGMP/MLD snooping tables and querier: the igmp action reaches them
    # through env.mcast.
    if owns(registry, 16):
        mcast = McastJob(shared.get_mcast, shared.mcast_groups,
                         shared.notify_main)
        if env is not None:
            env.mcast = mcast
        jobs.append(mcast)
    return jobs
