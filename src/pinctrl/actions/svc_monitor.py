"""Load-balancer health-check replies: handle_svc_check (HANDLE_SVC_CHECK,
18), OVN 23.03 controller/pinctrl.c pinctrl_handle_svc_check().

Called by the pinctrl_handler thread.  northd punts every TCP / ICMP /
ICMPv6 frame sent to svc_monitor_mac (ls_in_l2_lkup, priority 110,
handle_svc_check(inport)): the backends' answers to the probes of
handler/svc_monitor_job.py.  The frame is parsed (packet/svc_monitor.py)
and handed to the monitor of (datapath, inport, source IP, port,
protocol) through env.svc_monitors: a SYN-ACK to the current probe is a
success and is answered with 23.03's RST|ACK (a packet-out to the
backend's port), a RST or an ICMP port unreachable quoting the UDP probe
a failure.

Any workload can address frames to svc_monitor_mac, and each one costs a
packet-in (CVE-2023-3153): everything that is not a reply to a current
probe is dropped after a parse and a dictionary lookup, counted by reason
(pinctrl_svc_check_drop_<reason>) and logged at 23.03's rate (1 line per
minute per reason, bursts of 5); nothing else is kept per frame.
"""

from __future__ import annotations

import ovs.vlog

from pinctrl.actions import action
from pinctrl.actions.env import NO_ENV, HandlerEnv
from pinctrl.actions.replies import NoReply, PacketOut, Reporter
from pinctrl.openflow.packet_in import PacketIn
from pinctrl.packet.svc_monitor import SvcReplyError, parse_reply

vlog = ovs.vlog.Vlog("pinctrl")
reporter = Reporter(vlog)

MFF_LOG_INPORT = 14
# reason -> the warning (23.03's wording where it has one; None: counted
# only, as 23.03 silently ignores these).
_WARNINGS: dict[str, str | None] = {
    "not_ip": "handle service check: not an IP packet",
    "bad_ip_len": "IP packet with invalid length",
    "unsupported_proto": "handle service check: Unsupported protocol",
    "bad_tcp": "handle service check: truncated TCP header",
    "no_quote": "Original IP datagram not present in ICMP packet",
    "bad_quote": "Invalid original IP datagram length present in ICMP "
                 "packet",
    "no_monitor": "handle service check: Service monitor not found",
    "not_unreach": None,
    "unexpected": None,
}


def _drop(reason: str) -> None:
    reporter.report(NoReply(f"pinctrl_svc_check_drop_{reason}",
                            _WARNINGS.get(reason)))


@action(18, "handle_svc_check")
def handle_svc_check(pin: PacketIn, env: HandlerEnv = NO_ENV,
                     now: int = 0) -> PacketOut | None:
    """Opcode 18: a backend's answer to a health-check probe."""
    try:
        reply = parse_reply(pin.packet)
    except SvcReplyError as e:
        _drop(e.reason)
        return None
    monitors = env.svc_monitors
    if monitors is None:
        _drop("no_monitor")
        return None
    md = pin.metadata
    out, why = monitors.on_reply(md.datapath, md.reg(MFF_LOG_INPORT), reply,
                                 now)
    if why is not None:
        _drop(why)
    return out
