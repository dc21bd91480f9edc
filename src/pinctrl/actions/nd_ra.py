"""put_nd_ra_opts (opcode 8): answer a Router Solicitation with the Router
Advertisement the logical flow carries, as OVN 23.03 does; and the ND
option encoders the periodic RAs (handler/ra_job.py) share with it.

controller/pinctrl.c pinctrl_handle_put_nd_ra_opts().  The flow
`reg0[5] = put_nd_ra_opts(addr_mode = ..., slla = ..., prefix = ...)`
pauses the RS; the userdata holds, after the result destination, a whole
RA message (RA header and options) that northd's compiler built
(lib/actions.c encode_PUT_ND_RA_OPTS).  The reply is the RS's Ethernet and
IPv6 headers followed by that RA verbatim, with the IPv6 payload length
and the ICMPv6 checksum computed; it is resumed with the result bit set
and the next logical table swaps the addresses.

The option encoders of packet/nd_options.py (ra_header, opt_slla,
opt_mtu, opt_prefix, opt_rdnss, opt_dnssl, opt_route_info) are the formats
lib/actions.c encode_PUT_ND_RA_OPTS() and controller/pinctrl.c
ipv6_ra_send() (the periodic RAs) write identically; the unit tests
rebuild the recorded put_nd_ra_opts userdata with them.

Two layers: pure functions (build_reply, process, the encoders; any
thread) and the registered handler (pinctrl_handler thread), which adds
the counters and logs.

Deviations (docs/opcodes.md): an RA body shorter than the 16-byte RA
header is refused (23.03 writes the checksum past a body under 4 bytes
and sends the rest); with IPv6 extension headers in the RS the payload
length covers them and the checksum uses next header 58 (23.03 sets the
payload length to the RA length and sums the first next header).
"""

from __future__ import annotations

import struct

import ovs.vlog

from pinctrl.actions import action
from pinctrl.actions.env import NO_ENV, HandlerEnv
from pinctrl.actions.nested import l4_span
from pinctrl.actions.replies import NoReply, Reporter, Resume, result_action
from pinctrl.openflow.packet_in import PacketIn
from pinctrl.packet.flow import ETH_TYPE_IPV6, IPPROTO_ICMPV6, extract
from pinctrl.packet.headers import IPV6_HEADER_LEN, IPV6_PLEN_OFS
from pinctrl.packet.nd_options import ND_ROUTER_SOLICIT, RA_HEADER_LEN, icmp6_set_csum
from pinctrl.support import coverage

vlog = ovs.vlog.Vlog("pinctrl")
# One VLOG_RATE_LIMIT_INIT(1, 5) per counter, the bad result header's
# included.
reporter = Reporter(vlog)

_U16 = struct.Struct("!H")

COUNTER_PREFIX = "pinctrl_nd_ra_drop_"


def build_reply(frame: bytes, ra: bytes) -> bytes:
    """Pure.  The RA answering the Router Solicitation 'frame': its
    headers up to ICMPv6 (VLAN and extension headers included) followed
    by the RA message 'ra' from the userdata.  Raises NoReply when the
    frame is not an RS or the reply cannot be built."""
    fl = extract(frame)
    span = l4_span(fl)
    if not (fl.dl_type == ETH_TYPE_IPV6 and fl.nw_proto == IPPROTO_ICMPV6
            and span is not None and fl.tp_src == ND_ROUTER_SOLICIT
            and fl.tp_dst == 0):
        raise NoReply(COUNTER_PREFIX + "not_rs", "put_nd_ra action on "
                      "invalid or unsupported packet")
    if len(ra) < RA_HEADER_LEN:
        raise NoReply(COUNTER_PREFIX + "short_ra", "IPv6 ND RA options "
                      "shorter than an RA header in the userdata")
    l3, l4 = span.l3, span.l4
    plen = l4 - l3 - IPV6_HEADER_LEN + len(ra)
    if plen > 0xFFFF:
        raise NoReply(COUNTER_PREFIX + "too_big", "IPv6 ND RA reply too "
                      "big")
    out = bytearray(frame[:l4])
    out += ra
    _U16.pack_into(out, l3 + IPV6_PLEN_OFS, plen)
    icmp6_set_csum(out, l4, fl.ipv6_src, fl.ipv6_dst)
    return bytes(out)


def process(rest: bytes, frame: bytes) -> bytes:
    """Pure.  put_nd_ra_opts after the result destination: 'rest' is the
    RA message from the userdata, 'frame' the RS.  Returns the reply;
    raises NoReply (never anything else) in 23.03's check order."""
    if not rest:
        raise NoReply(COUNTER_PREFIX + "no_options", "IPv6 ND RA options "
                      "not present in the userdata")
    return build_reply(frame, rest)


@action(8, "put_nd_ra_opts", pause=True)
def put_nd_ra_opts(pin: PacketIn, env: HandlerEnv = NO_ENV,
                   now: int = 0) -> Resume:
    """Handler for opcode 8, called by the pinctrl_handler thread ('env'
    is not needed).  Returns the RA with result 1, or the RS with result
    0; if the result destination is unusable, the RS with its metadata
    unchanged."""
    def answer(rest: bytes) -> bytes | None:
        try:
            reply = process(rest, pin.packet)
        except NoReply as e:
            reporter.report(e)
            return None
        coverage.inc("pinctrl_nd_ra_reply")
        return reply

    return result_action(pin, answer, reporter, COUNTER_PREFIX)
