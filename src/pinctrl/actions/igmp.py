"""IGMP / MLD snooping: igmp (IGMP, 16), OVN 23.03 controller/pinctrl.c
pinctrl_ip_mcast_handle() and its _igmp / _mld halves.

Called by the pinctrl_handler thread.  With mcast_snoop=true northd punts
every IGMP and MLD frame of the switch (ls_in_l2_lkup "igmp;" / "mldv1 ||
mldv2", no "next;"): the flow does not go on, so the frame goes nowhere
unless pinctrl re-injects it.  Here, as in 23.03:

* a frame that is not IPv4/IPv6 is dropped with 23.03's warning;
* on a datapath without snooping (no IP_Multicast row with enabled=true
  for it, or not local) nothing happens;
* the frame is parsed (packet/igmp.py: checksum, reports, leaves, IGMPv3 /
  MLDv2 records, queries) and its joins, leaves and router port are
  learnt in the datapath's snooping table (handler/mcast_job.py, reached
  through env.mcast; it writes SB IGMP_Group through the main thread);
* the frame itself is re-injected unchanged (pinctrl_forward_pkt):
  reports and leaves to the multicast routers (reg15 0x8002), queries to
  the switch's L2 domain (reg15 0x8004), both from the port it came in on,
  resubmit(CONTROLLER, 37).  A bad checksum and other IGMP / MLD types
  are not re-injected (23.03 neither).

Without env.mcast (unit tests, the harnesses) nothing is learnt and every
usable report / query is re-injected.  Deviations: packet/igmp.py (the
truncated MLDv1 report that crashes 23.03.1, non-multicast groups).
"""

from __future__ import annotations

import ovs.vlog

from pinctrl.actions import action
from pinctrl.actions.env import NO_ENV, HandlerEnv
from pinctrl.actions.replies import LogLine, NoReply, PacketOut, Reporter
from pinctrl.openflow.inject import (
    OVN_MCAST_FLOOD_L2_TUNNEL_KEY,
    OVN_MCAST_MROUTER_FLOOD_TUNNEL_KEY,
    forward_actions,
)
from pinctrl.openflow.packet_in import PacketIn
from pinctrl.packet.flow import ETH_TYPE_IP, ETH_TYPE_IPV6
from pinctrl.packet.headers import eth_parse
from pinctrl.packet.igmp import FORWARD_QUERY, FORWARD_REPORT, McastError, parse
from pinctrl.support import coverage

vlog = ovs.vlog.Vlog("pinctrl")
reporter = Reporter(vlog)

MFF_LOG_INPORT = 14
# McastError.reason -> the warning (23.03's wording where it has one).
_WARNINGS = {
    "bad_csum": "multicast snooping received bad IGMP checksum",
    "bad_csum6": "multicast snooping received bad MLD checksum",
    "short_mld": "multicast snooping received a truncated MLD report "
                 "(no group address)",
}
_FORWARD_TO = {FORWARD_REPORT: OVN_MCAST_MROUTER_FLOOD_TUNNEL_KEY,
               FORWARD_QUERY: OVN_MCAST_FLOOD_L2_TUNNEL_KEY}


def _drop(reason: str, text: str | None = None) -> None:
    reporter.report(NoReply(f"pinctrl_igmp_drop_{reason}", text))


@action(16, "igmp")
def igmp(pin: PacketIn, env: HandlerEnv = NO_ENV,
         now: int = 0) -> PacketOut | None:
    """Opcode 16: snoop an IGMP / MLD frame and re-inject it."""
    eth = eth_parse(pin.packet)
    ethertype = eth.ethertype if eth is not None else 0
    if ethertype not in (ETH_TYPE_IP, ETH_TYPE_IPV6):
        _drop("not_ip", f"IGMP action on non-IP packet (eth_type "
                        f"0x{ethertype:x})")
        return None
    md = pin.metadata
    dp_key, inport = md.datapath, md.reg(MFF_LOG_INPORT)
    mcast = env.mcast
    if mcast is not None and not mcast.snooping(dp_key):
        coverage.inc("pinctrl_igmp_drop_snooping_off")
        return None
    try:
        msg = parse(pin.packet)
    except McastError as e:
        reason = e.reason
        if reason == "bad_csum" and ethertype == ETH_TYPE_IPV6:
            reason = "bad_csum6"
        _drop(e.reason, _WARNINGS.get(reason))
        return None
    if msg.n_bad_groups:
        reporter.count("pinctrl_igmp_bad_group", (LogLine(
            "warn", f"multicast snooping: {msg.n_bad_groups} group "
            "address(es) that are not multicast ignored"),))
    if mcast is not None:
        mcast.learn(dp_key, inport, msg, now)
    outport = _FORWARD_TO.get(msg.forward)
    if outport is None:
        coverage.inc("pinctrl_igmp_not_forwarded")
        return None
    coverage.inc("pinctrl_igmp_forwarded")
    return PacketOut(pin.packet, forward_actions(dp_key, inport, outport))
