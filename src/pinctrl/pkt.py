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

_U16 = struct.Struct("!H")


def csum(data: bytes, initial: int = 0) -> int:
    """RFC 1071 Internet checksum of 'data' (odd length padded with a zero
    byte): the 16-bit value to store in the header.  'initial' is a partial
    one's-complement sum to start from (e.g. a pseudo-header sum)."""
    if len(data) % 2:
        data = bytes(data) + b"\0"
    total = initial + sum(struct.unpack(f"!{len(data) // 2}H", data))
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


def fmt_mac(mac: bytes) -> str:
    """'50:54:00:00:00:01', like OVS's ETH_ADDR_FMT."""
    return ":".join(f"{b:02x}" for b in mac[:6])


def fmt_ip4(ip: bytes) -> str:
    """Dotted quad, like OVS's IP_FMT."""
    return ".".join(str(b) for b in ip[:4])
