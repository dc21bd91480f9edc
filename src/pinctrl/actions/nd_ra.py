"""put_nd_ra_opts (opcode 8): answer a Router Solicitation with the Router
Advertisement the logical flow carries, as OVN 23.03 does; and the ND
option encoders the periodic RAs (pinctrl.ipv6_ra) share with it.

Reference §13.2 (pinctrl_handle_put_nd_ra_opts, pinctrl.c:6185).  The flow
`reg0[5] = put_nd_ra_opts(addr_mode = ..., slla = ..., prefix = ...)`
pauses the RS; the userdata holds, after the result destination, a whole
RA message (RA header and options) that northd's compiler built
(lib/actions.c encode_PUT_ND_RA_OPTS).  The reply is the RS's Ethernet and
IPv6 headers followed by that RA verbatim, with the IPv6 payload length
and the ICMPv6 checksum computed; it is resumed with the result bit set
and the next logical table swaps the addresses.

The option encoders below (ra_header, opt_slla, opt_mtu, opt_prefix,
opt_rdnss, opt_dnssl, opt_route_info) are the formats of §13.1, which
lib/actions.c and pinctrl.c's periodic RAs write identically; the unit
tests rebuild the recorded put_nd_ra_opts userdata with them.

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

from pinctrl.actions import Resume, action, result_action
from pinctrl.actions.nested import NoReply, Reporter
from pinctrl.openflow.packet_in import PacketIn
from pinctrl.packet.flow import ETH_TYPE_IPV6, IPPROTO_ICMPV6, extract
from pinctrl.packet.headers import IPV6_HEADER_LEN, IPV6_PLEN_OFS, csum, pseudo_sum_ipv6
from pinctrl.support import coverage
from pinctrl.support.log import RateLimit

vlog = ovs.vlog.Vlog("pinctrl")

ND_ROUTER_SOLICIT = 133
ND_ROUTER_ADVERT = 134

# ND option types (RFC 4861 §4.6, RFC 4191, RFC 8106).
ND_OPT_SOURCE_LINKADDR = 1
ND_OPT_PREFIX_INFORMATION = 3
ND_OPT_MTU = 5
ND_OPT_ROUTE_INFO = 24
ND_OPT_RDNSS = 25
ND_OPT_DNSSL = 31

# RA header flags byte (lib/ovn-l7.h).
RA_FLAG_MANAGED = 0x80
RA_FLAG_OTHER = 0x40
PRF_NORMAL, PRF_HIGH, PRF_LOW = 0x00, 0x08, 0x18
# Prefix Information L and A flags.
PREFIX_ON_LINK = 0x80
PREFIX_AUTONOMOUS = 0x40

RA_HOP_LIMIT = 255
RA_ROUTER_LIFETIME = 0xFFFF
INFINITE = 0xFFFFFFFF
RA_HEADER_LEN = 16
ICMP6_CSUM_OFS = 2
# encode_ra_dnssl_opt() builds the option in a 255-byte buffer.
DNSSL_MAX = 255

_RA_HDR = struct.Struct("!BBHBBHII")
_OPT_HDR = struct.Struct("!BB")
_U16 = struct.Struct("!H")

COUNTER_PREFIX = "pinctrl_nd_ra_drop_"


def prf_flags(prf: str) -> int:
    """Router preference bits for "HIGH" / "LOW" (anything else: medium),
    as both the RA header and Route Information use them."""
    return {"HIGH": PRF_HIGH, "LOW": PRF_LOW}.get(prf, PRF_NORMAL)


def ra_header(mo_flags: int) -> bytes:
    """The 16-byte RA message header: type 134, code 0, checksum 0, cur
    hop limit 255, 'mo_flags' (M/O and PRF bits), router lifetime 65535,
    reachable time and retrans timer 0."""
    return _RA_HDR.pack(ND_ROUTER_ADVERT, 0, 0, RA_HOP_LIMIT, mo_flags & 0xFF,
                        RA_ROUTER_LIFETIME, 0, 0)


def opt_slla(mac: bytes) -> bytes:
    """Source Link-Layer Address option."""
    return _OPT_HDR.pack(ND_OPT_SOURCE_LINKADDR, 1) + bytes(mac)


def opt_mtu(mtu: int) -> bytes:
    """MTU option (a negative configured MTU is sent as its 32-bit two's
    complement, like 23.03's htonl of an int)."""
    return struct.pack("!BBHI", ND_OPT_MTU, 1, 0, mtu & 0xFFFFFFFF)


def opt_prefix(plen: int, la_flags: int, prefix: bytes) -> bytes:
    """Prefix Information option, valid and preferred lifetimes infinite.
    'prefix' is sent as given (23.03 does not mask it)."""
    return struct.pack("!BBBBIII16s", ND_OPT_PREFIX_INFORMATION, 4, plen,
                       la_flags, INFINITE, INFINITE, 0, prefix)


def opt_rdnss(addr: bytes) -> bytes:
    """Recursive DNS Server option with one address, lifetime infinite."""
    return struct.pack("!BBHI16s", ND_OPT_RDNSS, 3, 0, INFINITE, addr)


def _tokens(s: str, delim: str) -> list[str]:
    """strtok_r(): the non-empty runs between delimiters."""
    return [t for t in s.split(delim) if t]


def opt_dnssl(domains: str) -> bytes | None:
    """DNS Search List option for a comma-separated domain list, as
    encode_ra_dnssl_opt() (lib/actions.c): no trimming, each label as
    length + bytes (at most 255), a zero byte per domain; the length
    counts strlen + 2 per domain, rounded up to 8.  None when that count
    exceeds 255 bytes (23.03 then omits the option)."""
    size = 8
    body = bytearray()
    for domain in _tokens(domains, ","):
        raw = domain.encode("utf-8", "surrogateescape")
        size += len(raw) + 2
        if size > DNSSL_MAX:
            return None
        for label in raw.split(b"."):
            if label:
                label = label[:255]
                body += bytes((len(label),)) + label
        body += b"\0"
    total = (size + 7) // 8 * 8
    body += bytes(total - 8 - len(body))
    return struct.pack("!BBHI", ND_OPT_DNSSL, total // 8, 0, INFINITE) + body


def opt_route_info(flags: int, plen: int, network: bytes) -> bytes:
    """Route Information option: length 1 + ceil(plen / 64) units, the
    first ceil(plen / 64) * 8 bytes of the (masked) network."""
    n = (plen + 63) // 64
    return (struct.pack("!BBBBI", ND_OPT_ROUTE_INFO, 1 + n, plen, flags,
                        INFINITE) + bytes(network[:8 * n]))


def icmp6_set_csum(buf: bytearray, l4_ofs: int, src: bytes, dst: bytes
                   ) -> None:
    """ICMPv6 checksum of buf[l4_ofs:] (next header 58, upper-layer length
    = that length), stored in place."""
    body_len = len(buf) - l4_ofs
    buf[l4_ofs + ICMP6_CSUM_OFS:l4_ofs + ICMP6_CSUM_OFS + 2] = b"\0\0"
    value = csum(bytes(buf[l4_ofs:]),
                 pseudo_sum_ipv6(src, dst, IPPROTO_ICMPV6, body_len))
    _U16.pack_into(buf, l4_ofs + ICMP6_CSUM_OFS, value)


def build_reply(frame: bytes, ra: bytes) -> bytes:
    """Pure.  The RA answering the Router Solicitation 'frame': its
    headers up to ICMPv6 (VLAN and extension headers included) followed
    by the RA message 'ra' from the userdata.  Raises NoReply when the
    frame is not an RS or the reply cannot be built."""
    fl = extract(frame)
    if not (fl.dl_type == ETH_TYPE_IPV6 and fl.nw_proto == IPPROTO_ICMPV6
            and fl.l4_ok and fl.tp_src == ND_ROUTER_SOLICIT
            and fl.tp_dst == 0):
        raise NoReply(COUNTER_PREFIX + "not_rs", "put_nd_ra action on "
                      "invalid or unsupported packet")
    if len(ra) < RA_HEADER_LEN:
        raise NoReply(COUNTER_PREFIX + "short_ra", "IPv6 ND RA options "
                      "shorter than an RA header in the userdata")
    l3, l4 = fl.l3_ofs, fl.l4_ofs
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


reporter = Reporter(vlog)
# 23.03 has one VLOG_RATE_LIMIT_INIT(1, 5) for the bad result header too.
_rl_bad_result = RateLimit(1, 5)


@action(8, "put_nd_ra_opts", pause=True)
def put_nd_ra_opts(pin: PacketIn, env: object = None) -> Resume:
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

    return result_action(pin, answer, COUNTER_PREFIX, vlog, _rl_bad_result)
