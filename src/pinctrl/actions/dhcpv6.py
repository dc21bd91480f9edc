"""put_dhcpv6_opts (opcode 5): answer a DHCPv6 client, as OVN 23.03 does.

controller/pinctrl.c pinctrl_handle_put_dhcpv6_opts() and
compose_out_dhcpv6_opts(); the flows are northd/northd.c
build_dhcpv6_action().
The logical flow `reg0[3] = put_dhcpv6_opts(ia_addr = A, opts...)` pauses
the client's message; we turn it into the ADVERTISE/REPLY in place and
resume it with the result bit set; the next logical table swaps the
addresses and sends it back.

Two layers:
* pure functions (no I/O, no globals; any thread, in practice the
  pinctrl_handler thread): parse_args, parse_request, compose_options,
  compose_release_options, build_reply, process;
* put_dhcpv6_opts(), the registered handler (pinctrl_handler thread),
  which only adds the side effects: coverage counters and logs.

Byte compatibility with 23.03 is the goal: SOLICIT -> ADVERTISE; REQUEST,
CONFIRM, DECLINE, INFORMATION-REQUEST -> REPLY; the reply is the request's
headers, the new type and the request's transaction id, the request's
Client Identifier verbatim, then the server options in userdata order:
IA_NA (IAID from the request, T1 = T2 = lifetimes = infinity) around the
IA Address, DNS servers copied, domain search as 23.03 encodes it (one
length byte, the raw string dots included, a zero byte), Server Identifier
as a DUID-LL.  UDP checksum over the IPv6 pseudo-header.

Deviations (docs/compat.md): RELEASE is answered as OVN >= 24.03 does
(96088d496: REPLY with Client ID, Server ID and Status Code Success);
RENEW and REBIND stay unanswered, as in every OVN release.  Client options
are validated strictly (a truncated option or an IA_NA shorter than 12
bytes rejects the message, where 23.03 reads past them); an IA_NA with
IAID 0 counts as present; requests with IPv6 extension headers are not
answered.
"""

from __future__ import annotations

import struct
from typing import NamedTuple

import ovs.vlog

from pinctrl.actions import action
from pinctrl.actions.env import NO_ENV, HandlerEnv
from pinctrl.actions.replies import (
    NoReply,
    Outcome,
    Reporter,
    Resume,
    result_action,
)
from pinctrl.openflow.packet_in import PacketIn
from pinctrl.packet.headers import (
    UDP_HEADER_LEN,
    UdpError,
    UdpInfo,
    udp6_set_csum,
    udp_parse,
    udp_set_lengths,
)

vlog = ovs.vlog.Vlog("pinctrl")

# Message types (RFC 8415 §7.3).
SOLICIT, ADVERTISE, REQUEST, CONFIRM, RENEW, REBIND, REPLY, RELEASE, \
    DECLINE = range(1, 10)
INFORMATION_REQUEST = 11
_REPLY_TYPE = {SOLICIT: ADVERTISE, REQUEST: REPLY, CONFIRM: REPLY,
               DECLINE: REPLY, INFORMATION_REQUEST: REPLY, RELEASE: REPLY}

# Option codes (RFC 8415 §21).
OPT_CLIENT_ID, OPT_SERVER_ID, OPT_IA_NA, OPT_IA_ADDR = 1, 2, 3, 5
OPT_STATUS_CODE = 13
OPT_DNS_SERVERS, OPT_DOMAIN_LIST = 23, 24
STATUS_SUCCESS = 0
DUID_LL, HW_TYPE_ETHERNET = 3, 1
INFINITY = 0xFFFFFFFF

MSG_HEADER_LEN = 4          # msg-type + 3-byte transaction id
OPT_HEADER_LEN = 4          # be16 code, be16 length
IA_NA_FIXED_LEN = 12        # IAID, T1, T2
_OPT = struct.Struct("!HH")
_U32 = struct.Struct("!I")
_STATUS_SUCCESS = _OPT.pack(OPT_STATUS_CODE, 2) + struct.pack(
    "!H", STATUS_SUCCESS)

COUNTER_PREFIX = "pinctrl_dhcpv6_drop_"


def _reject(reason: str, text: str | None = None) -> NoReply:
    """A message we do not answer: 'reason' completes the counter name,
    'text' is 23.03's warning (None: 23.03 is silent)."""
    return NoReply(COUNTER_PREFIX + reason, text)


class UserOpt(NamedTuple):
    code: int
    value: bytes


class Dhcp6Request(NamedTuple):
    udp: UdpInfo
    msg_type: int
    client_id: bytes        # the whole option, header included
    iaid: bytes | None      # 4 bytes of the last IA_NA; None: no IA_NA


_INVALID_USERDATA = "Invalid userdata"


def parse_args(rest: bytes) -> tuple[UserOpt, ...]:
    """Pure.  The userdata TLVs after the result header (lib/actions.c
    encode_PUT_DHCPV6_OPTS(), encode_put_dhcpv6_option()): be16 code,
    be16 length, value.  Raises NoReply if there are none or one does
    not fit (23.03 checks the latter only while composing, i.e. after the
    request passed; process() keeps that order)."""
    if not rest:
        raise _reject("bad_userdata",
                      "DHCPv6 options not present in the userdata")
    opts = []
    p, end = 0, len(rest)
    while p < end:
        if p + OPT_HEADER_LEN > end:
            raise _reject("bad_userdata", _INVALID_USERDATA)
        code, length = _OPT.unpack_from(rest, p)
        p += OPT_HEADER_LEN
        if p + length > end:
            raise _reject("bad_userdata", _INVALID_USERDATA)
        opts.append(UserOpt(code, bytes(rest[p:p + length])))
        p += length
    return tuple(opts)


def parse_request(frame: bytes) -> Dhcp6Request:
    """Pure.  Validate a client message in 23.03's order
    (pinctrl_handle_put_dhcpv6_opts()), with strict option bounds, and
    pull out what the reply needs.  The message ends at min(UDP length,
    IPv6 payload).  Raises NoReply."""
    try:
        u = udp_parse(frame)
    except UdpError as e:
        raise _reject(e.reason, "truncated dhcpv6 packet"
                      if e.reason == "short_udp" else None) from None
    if not u.ipv6:
        raise _reject("not_ipv6")
    msg = u.l4_ofs + UDP_HEADER_LEN
    end = u.data_end
    if msg + MSG_HEADER_LEN > end:
        raise _reject("short_msg", "truncated dhcpv6 packet")
    msg_type = frame[msg]
    if msg_type not in _REPLY_TYPE:
        # RENEW, REBIND, replies, relay messages...: no answer, no log.
        raise _reject("unsupported_msg_type")

    client_id = None
    iaid = None
    p = msg + MSG_HEADER_LEN
    while p < end:
        if p + OPT_HEADER_LEN > end:
            raise _reject("bad_option", "malformed DHCPv6 option "
                          "header")
        code, length = _OPT.unpack_from(frame, p)
        body = p + OPT_HEADER_LEN
        if body + length > end:
            raise _reject("bad_option", f"DHCPv6 option {code} "
                          f"overruns the packet")
        if code == OPT_IA_NA:
            if length < IA_NA_FIXED_LEN:
                raise _reject("bad_option", "DHCPv6 IA_NA option too "
                              "short")
            iaid = bytes(frame[body:body + 4])          # the last one wins
        elif code == OPT_CLIENT_ID:
            client_id = bytes(frame[p:body + length])   # the last one wins
        p = body + length

    if client_id is None:
        raise _reject("no_client_id", "DHCPv6 option - Client id not "
                      "present in the DHCPv6 packet")
    if iaid is None and msg_type != INFORMATION_REQUEST:
        raise _reject("no_ia_na", "DHCPv6 option - IA NA not present "
                      "in the DHCPv6 packet")
    return Dhcp6Request(u, msg_type, client_id, iaid)


def _server_id(mac: bytes) -> bytes:
    """Server Identifier option: DUID-LL, hardware type Ethernet."""
    return _OPT.pack(OPT_SERVER_ID, 10) + struct.pack(
        "!HH", DUID_LL, HW_TYPE_ETHERNET) + mac


def compose_options(opts: tuple[UserOpt, ...], iaid: bytes | None
                    ) -> bytes:
    """Pure.  The server options 23.03's compose_out_dhcpv6_opts()
    writes, in userdata order.  An ia_addr is skipped when the request
    had no IA_NA.  Raises NoReply ("Invalid userdata") on a code 23.03 does not know or a wrong length
    (server_id must be a 6-byte MAC: 23.03 would read past a shorter one;
    ia_addr 16 bytes)."""
    out = bytearray()
    for o in opts:
        n = len(o.value)
        if o.code == OPT_SERVER_ID and n == 6:
            out += _server_id(o.value)
        elif o.code == OPT_IA_ADDR and n == 16:
            if iaid is None:
                continue
            out += _OPT.pack(OPT_IA_NA, IA_NA_FIXED_LEN + 28) + iaid
            out += struct.pack("!II", INFINITY, INFINITY)
            out += _OPT.pack(OPT_IA_ADDR, 24) + o.value
            out += struct.pack("!II", INFINITY, INFINITY)
        elif o.code == OPT_DNS_SERVERS:
            out += _OPT.pack(OPT_DNS_SERVERS, n) + o.value
        elif o.code == OPT_DOMAIN_LIST:
            # 23.03: not DNS labels but one length byte (8 bits of it),
            # the raw string, a zero byte.
            out += _OPT.pack(OPT_DOMAIN_LIST, (n + 2) & 0xFFFF)
            out += bytes((n & 0xFF,)) + o.value + b"\0"
        else:
            raise _reject("bad_userdata", _INVALID_USERDATA)
    return bytes(out)


def compose_release_options(opts: tuple[UserOpt, ...]) -> bytes:
    """Pure.  OVN >= 24.03's options for the REPLY to a RELEASE
    (compose_dhcpv6_status): the first server_id as Server Identifier,
    other userdata ignored, then Status Code Success (no message)."""
    for o in opts:
        if o.code == OPT_SERVER_ID:
            if len(o.value) != 6:
                raise _reject("bad_userdata", _INVALID_USERDATA)
            return _server_id(o.value) + _STATUS_SUCCESS
    return _STATUS_SUCCESS


def build_reply(frame: bytes, req: Dhcp6Request, options: bytes
                ) -> bytes | None:
    """Pure.  The reply pinctrl_handle_put_dhcpv6_opts() builds: headers
    up to UDP copied, msg type replaced, the transaction id kept, the
    request's Client Identifier, 'options'; UDP length = IPv6 payload
    length, checksum computed.  None if it would not fit in a UDP
    datagram."""
    u = req.udp
    msg = u.l4_ofs + UDP_HEADER_LEN
    l4_len = UDP_HEADER_LEN + MSG_HEADER_LEN + len(req.client_id) + \
        len(options)
    if l4_len > 0xFFFF:
        return None
    out = bytearray(frame[:msg + MSG_HEADER_LEN])
    out[msg] = _REPLY_TYPE[req.msg_type]
    out += req.client_id
    out += options
    udp_set_lengths(out, u, l4_len)
    udp6_set_csum(out, u.l3_ofs, u.l4_ofs)
    return bytes(out)


def process(rest: bytes, frame: bytes) -> Outcome:
    """Pure.  The whole of put_dhcpv6_opts after the result destination:
    'rest' is the userdata TLVs, 'frame' the client's Ethernet frame.
    Never raises on malformed input."""
    try:
        if not rest:
            parse_args(rest)        # raises with 23.03's message
        req = parse_request(frame)
        opts = parse_args(rest)
        if req.msg_type == RELEASE:
            options = compose_release_options(opts)
        else:
            options = compose_options(opts, req.iaid)
    except NoReply as e:
        return e.outcome()
    reply = build_reply(frame, req, options)
    if reply is None:
        return Outcome(None, COUNTER_PREFIX + "reply_too_big")
    return Outcome(reply, "pinctrl_dhcpv6_reply")


# 23.03 has one VLOG_RATE_LIMIT_INIT(1, 5) for the whole function.
reporter = Reporter(vlog, default_site="put_dhcpv6_opts")


@action(5, "put_dhcpv6_opts", pause=True)
def put_dhcpv6_opts(pin: PacketIn, env: HandlerEnv = NO_ENV,
                    now: int = 0) -> Resume:
    """Handler for opcode 5, called by the pinctrl_handler thread ('env' is
    not needed).  Returns the reply with result 1, or the request with
    result 0; if the result destination itself is unusable, the request
    with the metadata echoed unchanged."""
    def answer(rest: bytes) -> bytes | None:
        return reporter.outcome(process(rest, pin.packet))

    return result_action(pin, answer, reporter, COUNTER_PREFIX)
