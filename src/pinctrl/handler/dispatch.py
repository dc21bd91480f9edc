"""Packet-in dispatch: opcode → action handler → OpenFlow replies.

Called by the pinctrl_handler thread for every NXT_PACKET_IN2.  Pure apart
from counters and rate-limited logs: takes a decoded PacketIn, returns the
encoded messages to send.  It is the exception barrier of the actions:
bad input or a bug in one handler is counted and logged, never fatal, and a
paused packet-in is always resumed exactly once (OVS drops a paused packet
whose continuation never comes back).
"""

from __future__ import annotations

import itertools
import struct
import traceback
from collections.abc import Iterable
from typing import TYPE_CHECKING, Callable

import ovs.vlog

from pinctrl.actions import REGISTRY, Action, load_all
from pinctrl.actions.env import (
    BfdSessions,
    McastSnooping,
    PrefixDelegation,
    SvcMonitors,
)
from pinctrl.actions.replies import PacketOut, Reply, Resume
from pinctrl.openflow import messages as ofmsg
from pinctrl.openflow.packet_in import OFPR_ACTION, PacketIn, PacketInError
from pinctrl.openflow.resume import encode_resume
from pinctrl.shared.state import SharedState

if TYPE_CHECKING:
    from pinctrl.handler.buffered_packets import BufferedPackets
from pinctrl.support import coverage
from pinctrl.support.log import RateLimit, rl_log

vlog = ovs.vlog.Vlog("pinctrl")
_rl_bad = RateLimit(5, 10)
_rl_exc = RateLimit(5, 5)

load_all()


class Env:
    """The concrete actions.env.HandlerEnv, owned by the pinctrl_handler
    thread.  'shared' gives access to the snapshots the main thread
    publishes (read them under shared.mutex only to take a reference, then
    use them lock-free: they are immutable).  'buffered_packets' is
    handler-private (handler.buffered_packets): only the pinctrl_handler
    thread touches it, so it needs no lock; so are the handler jobs
    actions reach ('bfd': handler.bfd_job, 'mcast': handler.mcast_job,
    'svc_monitors': handler.svc_monitor_job, attached by
    jobs.make_jobs()).  Nothing here changes per packet-in:
    the time of the batch is passed to each action as 'now'."""

    __slots__ = ("next_xid", "shared", "buffered_packets", "mcast", "bfd", "prefixd",
                 "svc_monitors")

    def __init__(self, next_xid: Callable[[], int] | None = None,
                 shared: SharedState | None = None,
                 buffered_packets: BufferedPackets | None = None) -> None:
        self.next_xid = next_xid or itertools.count(1).__next__
        self.shared = shared
        self.buffered_packets = buffered_packets
        self.bfd: BfdSessions | None = None
        # handler.pd_job.PdJob, attached by jobs.make_jobs().
        self.prefixd: PrefixDelegation | None = None
        self.mcast: McastSnooping | None = None
        self.svc_monitors: SvcMonitors | None = None


def _as_list(out: Reply | Iterable[Reply] | None) -> list[Reply]:
    if out is None:
        return []
    if isinstance(out, (Resume, PacketOut)):
        return [out]
    return list(out)


def process_packet_in(pin: PacketIn, env: Env, now: int = 0,
                      registry: dict[int, Action] = REGISTRY) -> list[bytes]:
    """Handle one packet-in received at 'now' (ovs.timeval.msec()); return
    the OpenFlow messages to send."""
    coverage.inc("pinctrl_total_pin_pkts")
    if pin.reason != OFPR_ACTION:
        # 23.03 ignores these without a RESUME.
        coverage.inc("pinctrl_drop_pin_reason")
        return []
    try:
        opcode = pin.opcode
    except PacketInError:
        coverage.inc("pinctrl_drop_short_userdata")
        rl_log(vlog, "warn", _rl_bad, "packet-in userdata lacks action header")
        return []
    act = registry.get(opcode)
    if act is None:
        # Unknown opcode (version skew, e.g. a newer northd): the flow was
        # not paused as far as we know, so resuming could duplicate it.
        coverage.inc("pinctrl_drop_unknown_opcode")
        rl_log(vlog, "warn", _rl_bad,
               f"unrecognized packet-in opcode {opcode}")
        return []
    coverage.inc(act.counter)

    try:
        replies = _as_list(act.handler(pin, env, now))
    except Exception:
        coverage.inc("pinctrl_action_exception")
        rl_log(vlog, "err", _rl_exc,
               f"{act.name}: handler failed on a packet-in:\n"
               + traceback.format_exc(limit=8))
        replies = []

    msgs: list[bytes] = []
    resumed = False
    for r in replies:
        try:
            if isinstance(r, Resume):
                if not act.pause or resumed or pin.continuation is None:
                    coverage.inc("pinctrl_drop_bad_resume")
                    continue
                msg = _encode_resume(pin, r)
                resumed = True
            else:
                msg = ofmsg.packet_out(env.next_xid(), r.actions, r.packet)
        except (ValueError, struct.error) as e:
            # E.g. a reply over OpenFlow's 64 KiB message limit.
            coverage.inc("pinctrl_drop_bad_reply")
            rl_log(vlog, "warn", _rl_bad,
                   f"{act.name}: cannot encode the reply ({e})")
            continue
        msgs.append(msg)
    if act.pause and not resumed and pin.continuation is not None:
        # The handler failed to answer: let the packet continue unchanged.
        coverage.inc("pinctrl_resume_fallback")
        try:
            msgs.append(encode_resume(pin, pin.packet))
        except (ValueError, struct.error):
            coverage.inc("pinctrl_drop_bad_reply")
    return msgs


def _encode_resume(pin: PacketIn, r: Resume) -> bytes:
    """NXT_RESUME for 'r', writing its result bit into a copy of the
    metadata first, so a failure leaves the packet-in's own unchanged for
    the fallback resume."""
    if r.dest is None:
        return encode_resume(pin, r.packet)
    saved = [list(e) for e in pin.metadata.entries]
    try:
        pin.metadata.set_reg_bit(r.dest.reg, r.dest.bit, r.result)
        return encode_resume(pin, r.packet)
    except (ValueError, struct.error):
        pin.metadata.entries = saved
        raise
