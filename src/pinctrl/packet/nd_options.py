"""IPv6 Neighbour Discovery: the Router Advertisement header and option
encoders (RFC 4861, 6106, 4191), pure, any thread.  The formats of OVN's
lib/actions.c (encode_PUT_ND_RA_OPTS) and pinctrl.c's periodic RAs
(ipv6_ra_send), which write them identically: put_nd_ra_opts
(actions/nd_ra.py) and the periodic RA plan (db/ra_plan.py) share them."""

from __future__ import annotations

import struct

from pinctrl.packet.flow import IPPROTO_ICMPV6
from pinctrl.packet.headers import csum, pseudo_sum_ipv6

PRF_NORMAL, PRF_HIGH, PRF_LOW = 0x00, 0x08, 0x18
ICMP6_CSUM_OFS = 2
_U16 = struct.Struct("!H")
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


# Prefix Information L and A flags.
PREFIX_ON_LINK = 0x80
PREFIX_AUTONOMOUS = 0x40
RA_HOP_LIMIT = 255
RA_ROUTER_LIFETIME = 0xFFFF
INFINITE = 0xFFFFFFFF
RA_HEADER_LEN = 16


# encode_ra_dnssl_opt() builds the option in a 255-byte buffer.
DNSSL_MAX = 255
_RA_HDR = struct.Struct("!BBHBBHII")
_OPT_HDR = struct.Struct("!BB")


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
