"""Load-balancer health checks: the probes and resets the service monitor
sends, and what a reply punted by handle_svc_check says.  Pure code, any
thread (in practice the pinctrl_handler thread).

Probes (OVN 23.03 controller/pinctrl.c svc_monitor_send_tcp_health_check__
and svc_monitor_send_udp_health_check): from svc_monitor_mac /
Service_Monitor.src_ip to the backend's MAC and IP, TTL / hop limit 63,
IPv4 with DF and ID 0 (pinctrl_compose_ipv4);

* TCP: a 20-byte header (no options), window 65160, the given flags,
  sequence and acknowledgement numbers, checksum over the pseudo-header;
* UDP: 8 bytes of zeros after the header; the UDP checksum is left 0 over
  IPv4 and computed over IPv6 (0 sent as 0xffff).

parse_reply() reads what handle_svc_check is punted (pinctrl_handle_svc_
check()): a TCP segment from the backend (its flags, sequence and
acknowledgement numbers), or an ICMP / ICMPv6 port unreachable quoting a
UDP probe (the quoted UDP ports).  Everything is read within the IP
payload; anything else raises SvcReplyError with the reason 23.03 logs.
"""

from __future__ import annotations

import struct
from typing import NamedTuple

from pinctrl.packet.flow import (
    ETH_TYPE_IP,
    ETH_TYPE_IPV6,
    IPPROTO_ICMP,
    IPPROTO_ICMPV6,
    IPPROTO_TCP,
    IPPROTO_UDP,
    extract,
)
from pinctrl.packet.headers import (
    IP_HEADER_LEN,
    IPV6_HEADER_LEN,
    UDP_HEADER_LEN,
    compose_ipv4,
    compose_ipv6,
    csum,
    pseudo_sum_ipv4,
    pseudo_sum_ipv6,
)
from pinctrl.shared.records import IPV4_MAPPED_PREFIX

PROBE_TTL = 63
TCP_WINDOW = 65160
TCP_FIN, TCP_SYN, TCP_RST, TCP_ACK = 0x01, 0x02, 0x04, 0x10
UDP_PROBE_PAYLOAD = bytes(8)
ICMP4_DST_UNREACH, ICMP4_PORT_UNREACH = 3, 3
ICMP6_DST_UNREACH, ICMP6_PORT_UNREACH = 1, 4
ICMP_HEADER_LEN = 8

_TCP = struct.Struct("!HHIIHHHH")
_UDP = struct.Struct("!HHHH")


def _l4_frame(eth_src: bytes, eth_dst: bytes, ip_src: bytes, ip_dst: bytes,
              proto: int, l4: bytearray, csum_ofs: int | None) -> bytes:
    """An IPv4 (4-byte addresses) or IPv6 frame around 'l4', its checksum
    at 'csum_ofs' computed over the pseudo-header (None: left as is)."""
    if len(ip_src) == 4:
        if csum_ofs is not None:
            struct.pack_into("!H", l4, csum_ofs, csum(l4, pseudo_sum_ipv4(
                ip_src, ip_dst, proto, len(l4))))
        return compose_ipv4(eth_src, eth_dst, ip_src, ip_dst, proto,
                            PROBE_TTL, bytes(l4))
    if csum_ofs is not None:
        struct.pack_into("!H", l4, csum_ofs, csum(l4, pseudo_sum_ipv6(
            ip_src, ip_dst, proto, len(l4))) or 0xFFFF)
    return compose_ipv6(eth_src, eth_dst, ip_src, ip_dst, proto, PROBE_TTL,
                        bytes(l4))


def build_tcp_probe(eth_src: bytes, eth_dst: bytes, ip_src: bytes,
                    ip_dst: bytes, sport: int, dport: int, flags: int,
                    seq: int, ack: int) -> bytes:
    """Pure.  A TCP probe (SYN) or reset (RST|ACK); addresses are 4 bytes
    for IPv4, 16 for IPv6."""
    l4 = bytearray(_TCP.pack(sport, dport, seq & 0xFFFFFFFF,
                             ack & 0xFFFFFFFF, (5 << 12) | flags,
                             TCP_WINDOW, 0, 0))
    return _l4_frame(eth_src, eth_dst, ip_src, ip_dst, IPPROTO_TCP, l4, 16)


def build_udp_probe(eth_src: bytes, eth_dst: bytes, ip_src: bytes,
                    ip_dst: bytes, sport: int, dport: int) -> bytes:
    """Pure.  A UDP probe: 8 zero bytes, no checksum over IPv4."""
    l4 = bytearray(_UDP.pack(sport, dport,
                             UDP_HEADER_LEN + len(UDP_PROBE_PAYLOAD), 0)
                   + UDP_PROBE_PAYLOAD)
    return _l4_frame(eth_src, eth_dst, ip_src, ip_dst, IPPROTO_UDP, l4,
                     None if len(ip_src) == 4 else 6)


class SvcReplyError(ValueError):
    """A punted frame that is no usable reply; 'reason' is the counter's
    suffix (not_ip, bad_ip_len, unsupported_proto, bad_tcp, not_unreach,
    no_quote, bad_quote)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class SvcReply(NamedTuple):
    """What a reply says about a probe, as the service monitor looks it up
    (Service_Monitor: backend IP, service port, protocol)."""
    protocol: str       # "tcp", or "udp" for a port unreachable
    ip: bytes           # the backend (the reply's source), 16 bytes
    port: int           # the service port (TCP source / quoted UDP dest)
    probe_port: int     # our probe's source port (TCP dest / quoted src)
    flags: int = 0      # TCP flags
    seq: int = 0        # TCP sequence number
    ack: int = 0        # TCP acknowledgement number


def _quoted_udp(l4: bytes, ipv6: bool) -> tuple[int, int]:
    """The (source, destination) ports of the UDP probe an ICMP error
    quotes.  23.03 wants the quoted IPv4 total length to be exactly a
    probe's (36) and only warns when an IPv6 payload length differs."""
    quote = ICMP_HEADER_LEN
    if ipv6:
        if len(l4) < quote + IPV6_HEADER_LEN:
            raise SvcReplyError("no_quote")
        ofs = quote + IPV6_HEADER_LEN
    else:
        if len(l4) < quote + IP_HEADER_LEN:
            raise SvcReplyError("no_quote")
        tot_len = struct.unpack_from("!H", l4, quote + 2)[0]
        if tot_len != IP_HEADER_LEN + UDP_HEADER_LEN + len(UDP_PROBE_PAYLOAD):
            raise SvcReplyError("bad_quote")
        ofs = quote + IP_HEADER_LEN
    if len(l4) < ofs + 4:
        raise SvcReplyError("bad_quote")
    sport, dport = struct.unpack_from("!HH", l4, ofs)
    return sport, dport


def parse_reply(frame: bytes) -> SvcReply:
    """The reply in a handle_svc_check packet-in.  Raises SvcReplyError;
    never anything else."""
    f = extract(frame)
    if f.dl_type == ETH_TYPE_IP:
        if f.l3_ofs is None or f.l4_ofs is None:
            raise SvcReplyError("bad_ip_len")
        ip = IPV4_MAPPED_PREFIX + f.nw_src
    elif f.dl_type == ETH_TYPE_IPV6 and f.l4_ofs is not None:
        ip = f.ipv6_src
    else:
        raise SvcReplyError("not_ip")
    l4 = bytes(frame[f.l4_ofs:f.l4_end])
    if f.nw_proto == IPPROTO_TCP:
        if not f.l4_ok:
            raise SvcReplyError("bad_tcp")
        sport, dport, seq, ack, off_flags = struct.unpack_from("!HHIIH", l4)
        return SvcReply("tcp", ip, sport, dport, off_flags & 0x0FFF, seq, ack)
    ipv6 = f.dl_type == ETH_TYPE_IPV6
    if f.nw_proto != (IPPROTO_ICMPV6 if ipv6 else IPPROTO_ICMP):
        raise SvcReplyError("unsupported_proto")
    if len(l4) < ICMP_HEADER_LEN:
        raise SvcReplyError("no_quote")
    if (l4[0], l4[1]) != ((ICMP6_DST_UNREACH, ICMP6_PORT_UNREACH) if ipv6
                          else (ICMP4_DST_UNREACH, ICMP4_PORT_UNREACH)):
        raise SvcReplyError("not_unreach")
    sport, dport = _quoted_udp(l4, ipv6)
    return SvcReply("udp", ip, dport, sport)
