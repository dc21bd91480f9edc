"""put_dhcp_opts (opcode 2): answer a DHCPv4 request, as OVN 23.03 does.

controller/pinctrl.c pinctrl_handle_put_dhcp_opts(); the flows are
northd/northd.c build_dhcpv4_action().  The logical flow
`reg0[3] = put_dhcp_opts(offerip = A, opts...)` pauses the client's
DISCOVER/REQUEST/INFORM/RELEASE/DECLINE; we turn it into the reply in place
and resume it with the result bit set; the next logical table swaps the
addresses and sends it back to the client.

Two layers:
* pure functions (no I/O, no globals; any thread, in practice the
  pinctrl_handler thread): parse_args, parse_request, strip_inform_options,
  rewrite_boot_options, build_reply, process;
* put_dhcp_opts(), the registered handler (pinctrl_handler thread), which
  only adds the side effects: coverage counters and rate-limited logs.

Byte compatibility with 23.03 is the goal, quirks included: the options are
the userdata TLVs verbatim (no minimum-size padding), 4 zero bytes surround
END, the UDP checksum is 0.  Deviation (docs/compat.md #6): the IPv4
header checksum covers the whole header, IP options included (23.03 sums
only the first 20 bytes).
"""

from __future__ import annotations

import functools
import struct
from typing import NamedTuple

import ovs.vlog

from pinctrl.actions import action
from pinctrl.actions.env import NO_ENV, HandlerEnv
from pinctrl.actions.replies import (
    LogLine,
    NoReply,
    Outcome,
    Reporter,
    Resume,
    result_action,
)
from pinctrl.openflow.packet_in import PacketIn
from pinctrl.packet.headers import (
    ETH_TYPE_IP,
    IP_DST_OFS,
    IP_TOT_LEN_OFS,
    IPPROTO_UDP,
    UDP_HEADER_LEN,
    eth_parse,
    fmt_ip4,
    fmt_mac,
    ipv4_parse,
    ipv4_set_csum,
)

vlog = ovs.vlog.Vlog("pinctrl")

# BOOTP header (RFC 951/2131) offsets within the UDP payload.
DHCP_HEADER_LEN = 236
_OP, _FLAGS, _CIADDR, _YIADDR, _SIADDR = 0, 10, 12, 16, 20
MAGIC_COOKIE = b"\x63\x82\x53\x63"
BROADCAST_FLAG = 0x8000
OP_REQUEST, OP_REPLY = 1, 2

# Message types (option 53).
DISCOVER, OFFER, REQUEST, DECLINE, ACK, NAK, RELEASE, INFORM = range(1, 9)
_REPLY_NAMES = {OFFER: "OFFER", ACK: "ACK", NAK: "NAK"}

# Option codes.
OPT_PAD, OPT_END = 0, 255
OPT_NETMASK, OPT_LEASE_TIME, OPT_T1, OPT_T2 = 1, 51, 58, 59
OPT_REQ_IP, OPT_MSG_TYPE = 50, 53
OPT_BOOTFILE = 67
OPT_ETHERBOOT = 175          # present in requests from iPXE
OPT_NEXT_SERVER = 253        # OVN pseudo-option → siaddr
OPT_BOOTFILE_ALT = 254       # OVN pseudo-option, iPXE-aware bootfile
_INFORM_STRIPPED = frozenset((OPT_NETMASK, OPT_LEASE_TIME, OPT_T1, OPT_T2))

# cookie + "35 01 type" + 4 zero bytes + END + 4 zero bytes
_OPTS_OVERHEAD = 16
_TRAILER = b"\0\0\0\0\xff\0\0\0\0"
_BCAST = b"\xff\xff\xff\xff"
_ZERO_IP = bytes(4)
_U16 = struct.Struct("!H")

COUNTER_PREFIX = "pinctrl_dhcpv4_drop_"


def _reject(reason: str, text: str) -> NoReply:
    """A request 23.03 does not answer: 'reason' completes the coverage
    counter name, 'text' is 23.03's warning."""
    return NoReply(COUNTER_PREFIX + reason, text)


class DhcpArgs(NamedTuple):
    offer_ip: bytes     # 4 bytes
    options: bytes      # option TLVs as northd encoded them


class DhcpRequest(NamedTuple):
    l3_ofs: int
    l4_ofs: int         # UDP header; the BOOTP header follows it
    msg_type: int
    request_ip: bytes   # option 50 if present (len 4), else ciaddr
    ipxe: bool          # option 175 present
    eth_src: bytes
    ip_src: bytes


def parse_args(rest: bytes) -> DhcpArgs:
    """Pure.  Split the userdata left after the result header and offset
    (lib/actions.c encode_PUT_DHCPV4_OPTS()): 4-byte offer IP, then at
    least one option byte.  Raises NoReply."""
    if len(rest) < 4:
        raise _reject("bad_userdata",
                      "offset or offer_ip not present in the userdata")
    if len(rest) == 4:
        raise _reject("bad_userdata",
                      "DHCP options not present in the userdata")
    return DhcpArgs(bytes(rest[:4]), bytes(rest[4:]))


def parse_request(frame: bytes) -> DhcpRequest:
    """Pure.  Validate a client frame in 23.03's order
    (pinctrl_handle_put_dhcp_opts()) and pull out what the reply needs.
    The DHCP data ends where the IPv4 total length says (OVS strips
    Ethernet padding); the UDP length field is not used, as upstream.
    Raises NoReply."""
    eth = eth_parse(frame)
    ip = (ipv4_parse(frame, eth.l3_ofs)
          if eth is not None and eth.ethertype == ETH_TYPE_IP else None)
    if eth is None or ip is None:
        raise _reject("not_ipv4",
                      "Invalid or incomplete DHCP packet received")
    if ip.proto != IPPROTO_UDP:
        # Flows only punt UDP; upstream would misread anything else as UDP.
        raise _reject("not_udp",
                      "Invalid or incomplete DHCP packet received")
    l3 = eth.l3_ofs
    l4 = l3 + ip.ihl
    end = l3 + ip.total_len
    dhcp = l4 + UDP_HEADER_LEN
    if dhcp > end:
        raise _reject("short_udp",
                      "Invalid or incomplete DHCP packet received")
    if dhcp + DHCP_HEADER_LEN > end:
        raise _reject("short_bootp",
                      "Invalid or incomplete DHCP packet received, "
                      "bad data length")
    op = frame[dhcp + _OP]
    if op != OP_REQUEST:
        raise _reject("not_request",
                      f"Invalid opcode in the DHCP packet: {op}")
    p = dhcp + DHCP_HEADER_LEN
    if p + 4 > end or frame[p:p + 4] != MAGIC_COOKIE:
        raise _reject("bad_cookie",
                      "DHCP magic cookie not present in the DHCP packet")
    msg_type, req_ip_opt, ipxe = scan_options(frame, p + 4, end)
    if msg_type is None:
        raise _reject("no_msg_type", "Missing DHCP message type")
    request_ip = (req_ip_opt if req_ip_opt is not None
                  else bytes(frame[dhcp + _CIADDR:dhcp + _CIADDR + 4]))
    return DhcpRequest(l3, l4, msg_type, request_ip, ipxe,
                       bytes(frame[6:12]), ip.src)


def scan_options(frame: bytes, p: int, end: int
                 ) -> tuple[int | None, bytes | None, bool]:
    """Pure.  The request's option TLVs from 'p' (after the cookie) to
    'end': (message type, requested IP (option 50) or None, iPXE (option
    175 present)).  Same walk as upstream: stop at END or at the first
    option that does not fit; only options that fit are looked at.  The
    handler's fast path caches the result by the options' bytes."""
    msg_type = None
    request_ip = None
    ipxe = False
    while p < end:
        code = frame[p]
        if code == OPT_END:
            break
        if code == OPT_PAD:
            p += 1
            continue
        if p + 2 > end:
            break
        length = frame[p + 1]
        val = p + 2
        p = val + length
        if p > end:
            break
        if code == OPT_MSG_TYPE:
            if length == 1:
                msg_type = frame[val]
        elif code == OPT_REQ_IP:
            if length == 4:
                request_ip = bytes(frame[val:val + 4])
        elif code == OPT_ETHERBOOT:
            ipxe = True
    return msg_type, request_ip, ipxe


def strip_inform_options(options: bytes) -> bytes:
    """Pure.  The option TLVs for an INFORM's ACK: everything but netmask,
    lease time, T1 and T2 (RFC 2131 §3.4: no address or lease).  A TLV
    running past the end is copied as far as it goes."""
    out = bytearray()
    p, end = 0, len(options)
    while p < end:
        code = options[p]
        length = options[p + 1] if p + 1 < end else 0
        if code not in _INFORM_STRIPPED:
            out += options[p:p + 2 + length]
        p += 2 + length
    return bytes(out)


@functools.lru_cache(maxsize=1024)
def rewrite_boot_options(options: bytes, ipxe: bool, siaddr: bytes
                         ) -> tuple[bytes, bytes]:
    """Pure.  23.03's boot-file / next-server rewriting of the reply's
    option TLVs (pinctrl_handle_put_dhcp_opts(), the loop that looks for
    DHCP_OPT_BOOTFILE_CODE, DHCP_OPT_BOOTFILE_ALT_CODE and
    DHCP_OPT_NEXT_SERVER_CODE); returns (options, next_server).  Option 253 sets siaddr (default 'siaddr') and stays in
    the list.  67 followed by 254: a non-iPXE client gets 254's value as
    67, an iPXE client keeps 67 and loses 254; a lone 254 becomes 67.

    This replays upstream's in-place edit of the buffer (dropping bytes at
    the *front* of the list, and moving on from the old position), so the
    result is 23.03's for any input, with reads past the end treated as
    absent.  It matches the rule above only when 67 and 254 are the first
    two TLVs (OVN's encoder guarantees it) and, for an iPXE client, when
    bootfile_name is not longer than bootfile_name_alt (nor exactly one
    byte shorter): otherwise the walk goes on inside the moved 67 value
    and usually misses a 253 after it, leaving siaddr alone."""
    mem = bytearray(options)
    start, end = 0, len(mem)
    next_server = siaddr
    bootfile_seen = False
    p = 0
    while p < end:
        code = mem[p]
        length = mem[p + 1] if p + 1 < end else 0
        if code == OPT_NEXT_SERVER:
            if p + 6 <= end:
                next_server = bytes(mem[p + 2:p + 6])
        elif code == OPT_BOOTFILE:
            tlv_len = 2 + length
            q = p + tlv_len
            if p + 1 < end and q < end and mem[q] == OPT_BOOTFILE_ALT:
                if not ipxe:
                    start = min(start + tlv_len, end)
                    mem[q] = OPT_BOOTFILE
                else:
                    alt_len = 2 + (mem[q + 1] if q + 1 < end else 0)
                    saved = bytes(mem[p:q])
                    start = min(start + alt_len, end)
                    n = min(len(saved), end - start)
                    mem[start:start + n] = saved[:n]
            bootfile_seen = True
        elif code == OPT_BOOTFILE_ALT and not bootfile_seen:
            mem[p] = OPT_BOOTFILE
        # Re-read the length: the edits above may have overwritten it.
        p += 2 + (mem[p + 1] if p + 1 < end else 0)
    return bytes(mem[start:end]), next_server


def build_reply(frame: bytes, req: DhcpRequest, msg_type: int,
                offer_ip: bytes, options: bytes, next_server: bytes
                ) -> bytes:
    """Pure.  The reply frame pinctrl_handle_put_dhcp_opts() builds:
    L2/L3/UDP/BOOTP headers copied from the request (VLAN tags and IP
    options included), op = 2, yiaddr/siaddr set (both 0 for NAK; INFORM
    has yiaddr 0 and keeps siaddr), then cookie, option 53, 'options'
    (not for NAK) and the 23.03 trailer."""
    dhcp = req.l4_ofs + UDP_HEADER_LEN
    out = bytearray(frame[:dhcp + DHCP_HEADER_LEN])
    out[dhcp + _OP] = OP_REPLY
    if req.msg_type == INFORM:
        out[dhcp + _YIADDR:dhcp + _YIADDR + 4] = _ZERO_IP
    elif msg_type == NAK:
        out[dhcp + _YIADDR:dhcp + _YIADDR + 4] = _ZERO_IP
        out[dhcp + _SIADDR:dhcp + _SIADDR + 4] = _ZERO_IP
    else:
        out[dhcp + _YIADDR:dhcp + _YIADDR + 4] = offer_ip
        out[dhcp + _SIADDR:dhcp + _SIADDR + 4] = next_server
    if msg_type == NAK:
        options = b""
    out += MAGIC_COOKIE
    out += bytes((OPT_MSG_TYPE, 1, msg_type))
    out += options
    out += _TRAILER

    # Lengths are 16-bit in 23.03 too; mask rather than raise on absurd
    # userdata (a single OpenFlow message cannot carry that much anyway).
    l4_len = (UDP_HEADER_LEN + DHCP_HEADER_LEN + _OPTS_OVERHEAD
              + len(options)) & 0xFFFF
    _U16.pack_into(out, req.l4_ofs + 4, l4_len)
    _U16.pack_into(out, req.l4_ofs + 6, 0)      # UDP checksum: none

    l3 = req.l3_ofs
    flags = _U16.unpack_from(out, dhcp + _FLAGS)[0]
    dst = _BCAST if flags & BROADCAST_FLAG else offer_ip
    out[l3 + IP_DST_OFS:l3 + IP_DST_OFS + 4] = dst
    _U16.pack_into(out, l3 + IP_TOT_LEN_OFS,
                   (req.l4_ofs - l3 + l4_len) & 0xFFFF)
    # The whole IHL: 23.03 sums only 20 bytes, which leaves a bad checksum
    # on requests with IP options (docs/compat.md).
    ipv4_set_csum(out, l3, req.l4_ofs - l3)
    return bytes(out)


def reply_log_text(msg_type: int, eth_src: bytes, offer_ip: bytes) -> str:
    """Pure.  23.03's INFO line for a reply: 'DHCPOFFER <mac> <offer ip>'
    (ACK and NAK alike; the MAC is still the client's)."""
    return f"DHCP{_REPLY_NAMES[msg_type]} {fmt_mac(eth_src)} {fmt_ip4(offer_ip)}"


def process(rest: bytes, frame: bytes) -> Outcome:
    """Pure.  The whole of put_dhcp_opts after the result destination:
    'rest' is the userdata from the offer IP on, 'frame' the client's
    Ethernet frame.  Never raises on malformed input."""
    try:
        args = parse_args(rest)
        req = parse_request(frame)
    except NoReply as e:
        return e.outcome()

    offer = args.offer_ip
    logs: list[LogLine] = []
    options = args.options
    mt = req.msg_type
    if mt == DISCOVER:
        # Whatever its IP destination (RFC 2131 §4.4.4: a client that knows
        # its server may unicast to it; 23.03's renewal flow punts such a
        # DISCOVER).  The refusal OVN 2132acb16 added in v24.03.0 was
        # removed again by f74b38f77 (v25.03.0; backported to 24.03.4 and
        # 24.09.1): docs/compat.md #10.
        reply_type = OFFER
    elif mt == REQUEST:
        reply_type = ACK
        if req.request_ip != offer:
            logs.append(LogLine(
                "warn", f"DHCPREQUEST requested IP {fmt_ip4(req.request_ip)} "
                f"does not match offer {fmt_ip4(offer)}", "nak"))
            reply_type = NAK
    elif mt == INFORM:
        reply_type = ACK
        options = strip_inform_options(options)
        logs.append(LogLine("info", f"DHCPINFORM from {fmt_mac(req.eth_src)} "
                            f"{fmt_ip4(req.ip_src)}", "inform"))
    elif mt == RELEASE:
        dhcp = req.l4_ofs + UDP_HEADER_LEN
        ciaddr = frame[dhcp + _CIADDR:dhcp + _CIADDR + 4]
        return Outcome(None, "pinctrl_dhcpv4_release", (LogLine(
            "info", f"DHCPRELEASE {fmt_mac(req.eth_src)} {fmt_ip4(ciaddr)}",
            "release"),))
    elif mt == DECLINE:
        # Logged only when the client declines the address we offer.
        if req.request_ip == offer:
            logs.append(LogLine(
                "info", f"DHCPDECLINE from {fmt_mac(req.eth_src)}, "
                f"{fmt_ip4(offer)} duplicated", "decline"))
        return Outcome(None, "pinctrl_dhcpv4_decline", tuple(logs))
    else:
        return _reject("bad_msg_type",
                       f"Invalid DHCP message type: {mt}").outcome()

    dhcp = req.l4_ofs + UDP_HEADER_LEN
    siaddr = bytes(frame[dhcp + _SIADDR:dhcp + _SIADDR + 4])
    options, next_server = rewrite_boot_options(options, req.ipxe, siaddr)
    reply = build_reply(frame, req, reply_type, offer, options, next_server)
    logs.append(LogLine("info", reply_log_text(reply_type, req.eth_src,
                                               offer), "reply"))
    return Outcome(reply, None, tuple(logs))


# Rate limits per 23.03 call site: VLOG_RATE_LIMIT_INIT(20, 40) for the
# INFO lines, (1, 5) for warnings (one per counter).  23.03 logs DECLINE
# without a limit; a VM sending DECLINEs in a loop would fill the disk, so
# it gets the INFO lines' limit (docs/operations.md, failures).
SITE_LIMITS: dict[str, tuple[int, int] | None] = {
    "reply": (20, 40), "release": (20, 40), "inform": (20, 40),
    "decline": (20, 40)}
reporter = Reporter(vlog, site_limits=SITE_LIMITS)


@action(2, "put_dhcp_opts", pause=True)
def put_dhcp_opts(pin: PacketIn, env: HandlerEnv = NO_ENV,
                  now: int = 0) -> Resume:
    """Handler for opcode 2, called by the pinctrl_handler thread ('env' is
    not needed).  Returns the reply with result 1, or the request with
    result 0; if the result destination itself is unusable, the request
    with the metadata echoed unchanged."""
    return result_action(
        pin, lambda rest: reporter.outcome(process(rest, pin.packet)),
        reporter, COUNTER_PREFIX)
