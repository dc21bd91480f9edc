"""Small packet helpers shared by the packet builders (DHCP, DNS, ICMP...).

Pure functions on bytes, no I/O, safe to call from any thread (in practice
the pinctrl_handler thread).  Parsing follows what OVS's flow_extract()
accepts, because pinctrl re-parses each packet-in with it and the
re-implementation must agree on which frames have an L3/L4 header.
Parsers never raise on short or malformed input: they return None.
"""

from __future__ import annotations

import struct
from typing import NamedTuple

ETH_HEADER_LEN = 14
ETH_TYPE_IP = 0x0800
ETH_TYPE_IPV6 = 0x86DD
ETH_TYPE_VLAN_8021Q = 0x8100
ETH_TYPE_VLAN_8021AD = 0x88A8
VLAN_HEADER_LEN = 4
# OVS parses at most two VLAN headers (FLOW_MAX_VLAN_HEADERS).
MAX_VLAN_HEADERS = 2

IP_HEADER_LEN = 20
IPPROTO_UDP = 17
UDP_HEADER_LEN = 8
IP_CSUM_OFS = 10            # within the IPv4 header
IP_TOT_LEN_OFS = 2
IP_DST_OFS = 16

IPV6_HEADER_LEN = 40
IPV6_PLEN_OFS = 4
IPV6_SRC_OFS = 8            # source, then destination: 32 bytes
# Next-header values OVS's parse_ipv6_ext_hdrs() walks over.
IPV6_EXT_HEADERS = frozenset((0, 43, 44, 50, 51, 60))
UDP_LEN_OFS = 4
UDP_CSUM_OFS = 6

_U16 = struct.Struct("!H")


def csum(data: bytes | bytearray, initial: int = 0) -> int:
    """RFC 1071 Internet checksum of 'data' (odd length padded with a zero
    byte): the 16-bit value to store in the header.  'initial' is a partial
    one's-complement sum to start from (e.g. a pseudo-header sum)."""
    if len(data) % 2:
        data = bytes(data) + b"\0"
    total: int = initial + sum(struct.unpack(f"!{len(data) // 2}H", data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


class EthInfo(NamedTuple):
    ethertype: int      # after any VLAN tags
    l3_ofs: int         # offset of the L3 header in the frame


def eth_parse(frame: bytes) -> EthInfo | None:
    """Ethernet header plus up to two 802.1Q/802.1ad tags, as OVS parses
    them.  None if the frame is too short for the headers it announces."""
    if len(frame) < ETH_HEADER_LEN:
        return None
    ofs = 12
    etype = _U16.unpack_from(frame, ofs)[0]
    for _ in range(MAX_VLAN_HEADERS):
        if etype not in (ETH_TYPE_VLAN_8021Q, ETH_TYPE_VLAN_8021AD):
            break
        if len(frame) < ofs + 2 + VLAN_HEADER_LEN:
            return None
        ofs += VLAN_HEADER_LEN
        etype = _U16.unpack_from(frame, ofs)[0]
    return EthInfo(etype, ofs + 2)


class IPv4Info(NamedTuple):
    ihl: int            # header length in bytes, options included
    proto: int
    total_len: int      # from the header; validated against the frame
    src: bytes          # 4 bytes
    dst: bytes          # 4 bytes


def ipv4_parse(frame: bytes, ofs: int) -> IPv4Info | None:
    """IPv4 header at 'ofs', with OVS's ipv4_sanity_check(): header length
    >= 20 and present, total length covering the header and not beyond the
    frame (bytes after total length are Ethernet padding).  The version
    nibble is not checked, like OVS.  None if the header is unusable."""
    size = len(frame) - ofs
    if ofs < 0 or size < IP_HEADER_LEN:
        return None
    ihl = (frame[ofs] & 0x0F) * 4
    tot_len = _U16.unpack_from(frame, ofs + IP_TOT_LEN_OFS)[0]
    if ihl < IP_HEADER_LEN or size < ihl or tot_len > size or ihl > tot_len:
        return None
    return IPv4Info(ihl, frame[ofs + 9], tot_len,
                    bytes(frame[ofs + 12:ofs + 16]),
                    bytes(frame[ofs + 16:ofs + 20]))


def ipv4_set_csum(buf: bytearray, ofs: int, length: int = IP_HEADER_LEN
                  ) -> None:
    """Recompute the IPv4 header checksum in place over 'length' header
    bytes starting at 'ofs' (pass the full IHL to cover IP options)."""
    buf[ofs + IP_CSUM_OFS:ofs + IP_CSUM_OFS + 2] = b"\0\0"
    _U16.pack_into(buf, ofs + IP_CSUM_OFS, csum(buf[ofs:ofs + length]))


class IPv6Info(NamedTuple):
    next_header: int    # of the fixed header (an extension header or L4)
    payload_len: int    # from the header; validated against the frame
    src: bytes          # 16 bytes
    dst: bytes          # 16 bytes


def ipv6_parse(frame: bytes, ofs: int) -> IPv6Info | None:
    """Fixed IPv6 header at 'ofs', with OVS's ipv6_sanity_check(): 40
    bytes present and the payload length not beyond the frame (bytes after
    it are Ethernet padding).  Extension headers are not walked: callers
    that need L4 check next_header (see IPV6_EXT_HEADERS).  None if the
    header is unusable."""
    if ofs < 0 or len(frame) - ofs < IPV6_HEADER_LEN:
        return None
    plen = _U16.unpack_from(frame, ofs + IPV6_PLEN_OFS)[0]
    if plen > len(frame) - ofs - IPV6_HEADER_LEN:
        return None
    return IPv6Info(frame[ofs + 6], plen,
                    bytes(frame[ofs + 8:ofs + 24]),
                    bytes(frame[ofs + 24:ofs + 40]))


class UdpInfo(NamedTuple):
    """Where the parts of an IPv4/IPv6 UDP frame are.  l4_end is the end
    of the L3 payload (OVS's dp_packet_l4_size(): Ethernet padding
    excluded); data_end = min(l4_end, l4_ofs + UDP length), the end
    pinctrl uses for UDP payloads."""
    ipv6: bool
    l3_ofs: int
    l4_ofs: int
    l4_end: int
    data_end: int


class UdpError(ValueError):
    """A frame that is not a usable UDP datagram; 'reason' names the
    check that failed (not_ip, not_udp, ipv6_ext_hdr, short_udp)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def udp_parse(frame: bytes) -> UdpInfo:
    """Locate the UDP header of an IPv4 or IPv6 frame (VLAN tags allowed).
    IPv6 extension headers are refused (reason ipv6_ext_hdr): pinctrl's
    replies set the payload length and checksum as if there were none.
    Raises UdpError; never anything else."""
    eth = eth_parse(frame)
    if eth is None:
        raise UdpError("not_ip")
    l3 = eth.l3_ofs
    if eth.ethertype == ETH_TYPE_IP:
        ip4 = ipv4_parse(frame, l3)
        if ip4 is None:
            raise UdpError("not_ip")
        if ip4.proto != IPPROTO_UDP:
            raise UdpError("not_udp")
        ipv6, l4, l4_end = False, l3 + ip4.ihl, l3 + ip4.total_len
    elif eth.ethertype == ETH_TYPE_IPV6:
        ip6 = ipv6_parse(frame, l3)
        if ip6 is None:
            raise UdpError("not_ip")
        if ip6.next_header != IPPROTO_UDP:
            raise UdpError("ipv6_ext_hdr"
                           if ip6.next_header in IPV6_EXT_HEADERS
                           else "not_udp")
        ipv6, l4 = True, l3 + IPV6_HEADER_LEN
        l4_end = l4 + ip6.payload_len
    else:
        raise UdpError("not_ip")
    if l4_end - l4 < UDP_HEADER_LEN:
        raise UdpError("short_udp")
    udp_len = _U16.unpack_from(frame, l4 + UDP_LEN_OFS)[0]
    return UdpInfo(ipv6, l3, l4, l4_end, min(l4_end, l4 + udp_len))


def udp_set_lengths(buf: bytearray, u: UdpInfo, l4_len: int) -> None:
    """Store the new UDP length 'l4_len' (UDP header included) in the UDP
    header and in the IPv4 total length / IPv6 payload length of 'buf',
    a reply laid out like the request 'u' describes.  The IPv4 header
    checksum is not touched (see ipv4_set_csum)."""
    _U16.pack_into(buf, u.l4_ofs + UDP_LEN_OFS, l4_len)
    if u.ipv6:
        _U16.pack_into(buf, u.l3_ofs + IPV6_PLEN_OFS, l4_len)
    else:
        _U16.pack_into(buf, u.l3_ofs + IP_TOT_LEN_OFS,
                       u.l4_ofs - u.l3_ofs + l4_len)


def udp6_set_csum(buf: bytearray, l3_ofs: int, l4_ofs: int) -> None:
    """UDP checksum over the IPv6 pseudo-header (addresses of the header
    at 'l3_ofs', next header 17) and the segment from 'l4_ofs' to the end
    of 'buf', stored in place; 0 is sent as 0xffff (RFC 8200 §8.1), like
    OVS's csum_finish() users in pinctrl."""
    buf[l4_ofs + UDP_CSUM_OFS:l4_ofs + UDP_CSUM_OFS + 2] = b"\0\0"
    seg = bytes(buf[l4_ofs:])
    addrs = bytes(buf[l3_ofs + IPV6_SRC_OFS:l3_ofs + IPV6_HEADER_LEN])
    pseudo = sum(struct.unpack("!16H", addrs)) + len(seg) + IPPROTO_UDP
    value = csum(seg, pseudo) or 0xFFFF
    _U16.pack_into(buf, l4_ofs + UDP_CSUM_OFS, value)


def fmt_mac(mac: bytes) -> str:
    """'50:54:00:00:00:01', like OVS's ETH_ADDR_FMT."""
    return bytes(mac[:6]).hex(":")


def fmt_ip4(ip: bytes) -> str:
    """Dotted quad, like OVS's IP_FMT."""
    return ".".join(str(b) for b in ip[:4])


# --- frame composition for pinctrl-originated IP packets (ICMP errors, TCP
# RST, SCTP ABORT): pinctrl_compose_ipv4/ipv6 and friends ---------------------

ETH_TYPE_IPV6 = 0x86DD
IP_DF = 0x4000


def pseudo_sum_ipv4(src: bytes, dst: bytes, proto: int, length: int) -> int:
    """Partial one's-complement sum of the IPv4 pseudo-header, to pass as
    csum(..., initial=)."""
    words: tuple[int, ...] = struct.unpack("!4H", src + dst)
    return sum(words) + proto + length


def pseudo_sum_ipv6(src: bytes, dst: bytes, proto: int, length: int) -> int:
    """Partial sum of the IPv6 pseudo-header (RFC 8200 §8.1)."""
    words: tuple[int, ...] = struct.unpack("!16H", src + dst)
    return sum(words) + (length >> 16) + (length & 0xFFFF) + proto


def compose_ipv4(eth_src: bytes, eth_dst: bytes, src: bytes, dst: bytes,
                 proto: int, ttl: int, l4: bytes) -> bytes:
    """Ethernet + 20-byte IPv4 header + 'l4', as 23.03's
    pinctrl_compose_ipv4(): TOS 0, ID 0, DF, header checksum; no padding."""
    hdr = bytearray(struct.pack("!BBHHHBBH4s4s", 0x45, 0,
                                (IP_HEADER_LEN + len(l4)) & 0xFFFF, 0, IP_DF,
                                ttl, proto, 0, src, dst))
    ipv4_set_csum(hdr, 0)
    return (eth_dst + eth_src + _U16.pack(ETH_TYPE_IP) + bytes(hdr)
            + bytes(l4))


def compose_ipv6(eth_src: bytes, eth_dst: bytes, src: bytes, dst: bytes,
                 proto: int, hop_limit: int, l4: bytes) -> bytes:
    """Ethernet + IPv6 header + 'l4', as pinctrl_compose_ipv6(): traffic
    class and flow label 0; no padding."""
    hdr = struct.pack("!IHBB16s16s", 0x60000000, len(l4) & 0xFFFF, proto,
                      hop_limit, src, dst)
    return eth_dst + eth_src + _U16.pack(ETH_TYPE_IPV6) + hdr + bytes(l4)


def vlan_push(frame: bytes, tci: int) -> bytes:
    """Insert an 802.1Q tag (TPID 0x8100) with 'tci' after the MAC
    addresses; the CFI/DEI bit is cleared, as OVS's eth_push_vlan()."""
    return (frame[:12] + struct.pack("!HH", ETH_TYPE_VLAN_8021Q,
                                     tci & ~0x1000 & 0xFFFF) + frame[12:])


def _crc32c_table() -> tuple[int, ...]:
    table = []
    for i in range(256):
        c = i
        for _ in range(8):
            c = (c >> 1) ^ 0x82F63B78 if c & 1 else c >> 1
        table.append(c)
    return tuple(table)


_CRC32C = _crc32c_table()


def crc32c(data: bytes | bytearray) -> int:
    """CRC32c (Castagnoli, RFC 4960 appendix B) of 'data'."""
    c = 0xFFFFFFFF
    for b in data:
        c = _CRC32C[(c ^ b) & 0xFF] ^ (c >> 8)
    return c ^ 0xFFFFFFFF
