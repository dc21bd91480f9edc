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

from typing import Protocol

import ovs.poller
import ovs.timeval

from pinctrl.handler.bfd_job import BfdJob
from pinctrl.handler.buffered_packets import BufferedPackets
from pinctrl.handler.dispatch import Env
from pinctrl.handler.garp_job import GarpJob
from pinctrl.handler.pd_job import PdJob
from pinctrl.handler.ra_job import RaJob
from pinctrl.shared.state import SharedState


class HandlerJob(Protocol):
    def run(self, env: Env, now: int) -> list[bytes]: ...

    def wait(self, poller: ovs.poller.Poller, now: int) -> None: ...


def make_jobs(shared: SharedState, buffered_packets: BufferedPackets,
              env: Env | None = None) -> list[HandlerJob]:
    """The handler's jobs, in the order they run each iteration.  Each
    feature adds its job here; a job that actions reach is also attached
    to 'env' (the handler's dispatch.Env)."""
    jobs: list[HandlerJob] = []
    # Frames waiting for arp/nd_ns resolutions: actions push through
    # env.buffered_packets, the job releases and expires them.
    jobs.append(buffered_packets)
    # Periodic announcements of the main thread's snapshots.
    jobs.append(GarpJob(shared.get_garp))
    jobs.append(RaJob(shared.get_ras))
    # BFD sessions: handle_bfd_msg reaches them through env.bfd.
    bfd = BfdJob(shared.get_bfd, shared.bfd_status, shared.notify_main,
                 now=ovs.timeval.msec())
    if env is not None:
        env.bfd = bfd
    jobs.append(bfd)
    # DHCPv6 prefix-delegation clients: handle_dhcpv6_reply reaches them
    # through env.prefixd.
    prefixd = PdJob(shared.get_prefixd, shared.pd_prefixes,
                    shared.notify_main)
    if env is not None:
        env.prefixd = prefixd
    jobs.append(prefixd)
    return jobs
