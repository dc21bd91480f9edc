"""BFD control packets (RFC 5880 §4.1, over UDP as RFC 5881): the parser
and the frame OVN 23.03's pinctrl sends (bfd_monitor_put_bfd_msg() in
controller/pinctrl.c).

Pure code: bytes in, bytes or records out; any thread (in practice the
pinctrl_handler thread).

The frame: Ethernet broadcast from the router port's MAC (the logical
router resolves the next hop itself), IPv4 (ID 0, DF, TTL 255, UDP
checksum 0) or IPv6 (hop limit 255, UDP checksum), UDP from the session's
source port to 3784, then the 24-byte control packet: version 1,
diagnostic 0 (23.03 never sets one), the state in the top two flag bits,
Final when answering a Poll, the detect multiplier, length 24, both
discriminators, Desired Min TX and Required Min RX in microseconds (the
SB columns are milliseconds), Required Min Echo RX 0.
"""

from __future__ import annotations

import struct
from typing import NamedTuple

from pinctrl.packet.headers import (
    IPPROTO_UDP,
    compose_ipv4,
    compose_ipv6,
    csum,
    pseudo_sum_ipv6,
)
from pinctrl.shared.records import IPV4_MAPPED_PREFIX

BFD_DEST_PORT = 3784
BFD_VERSION = 1
BFD_PACKET_LEN = 24         # without authentication
MAXTTL = 255
ETH_BROADCAST = b"\xff" * 6

# bfd.SessionState values (RFC 5880 §4.1 "Sta").
ADMIN_DOWN, DOWN, INIT, UP = range(4)
STATE_NAMES = ("admin_down", "down", "init", "up")   # SB BFD.status

# The flag bits below the state (RFC 5880 §4.1).
FLAG_MULTIPOINT = 1 << 0
FLAG_DEMAND = 1 << 1
FLAG_AUTH = 1 << 2
FLAG_CTL = 1 << 3            # Control Plane Independent
FLAG_FINAL = 1 << 4
FLAG_POLL = 1 << 5
FLAGS_MASK = 0x3F

_MSG = struct.Struct("!BBBBIIIII")
_UDP = struct.Struct("!HHHH")


class BfdMsg(NamedTuple):
    """One received control packet, fields as on the wire (intervals in
    microseconds)."""
    version: int
    diag: int
    state: int
    flags: int              # the six bits below the state
    mult: int
    length: int
    my_disc: int
    your_disc: int
    min_tx: int             # Desired Min TX Interval, µs
    min_rx: int             # Required Min RX Interval, µs
    min_echo_rx: int


def parse_bfd(payload: bytes) -> BfdMsg | None:
    """The control packet at the start of a UDP payload; None if the
    payload is shorter than the mandatory 24 bytes (23.03 read past the
    end of such a packet)."""
    if len(payload) < BFD_PACKET_LEN:
        return None
    vd, fl, mult, length, my, your, tx, rx, echo = _MSG.unpack_from(payload)
    return BfdMsg(vd >> 5, vd & 0x1F, fl >> 6, fl & FLAGS_MASK, mult, length,
                  my, your, tx, rx, echo)


def bfd_payload(state: int, mult: int, my_disc: int, your_disc: int,
                min_tx_ms: int, min_rx_ms: int, final: bool = False) -> bytes:
    """The 24-byte control packet pinctrl sends (diagnostic 0, no
    authentication, Final only in answer to a Poll)."""
    flags = (state << 6) | (FLAG_FINAL if final else 0)
    return _MSG.pack(BFD_VERSION << 5, flags, mult & 0xFF, BFD_PACKET_LEN,
                     my_disc & 0xFFFFFFFF, your_disc & 0xFFFFFFFF,
                     (min_tx_ms * 1000) & 0xFFFFFFFF,
                     (min_rx_ms * 1000) & 0xFFFFFFFF, 0)


def is_ipv4_mapped(ip16: bytes) -> bool:
    return ip16[:12] == IPV4_MAPPED_PREFIX


def bfd_frame(src_mac: bytes, ip_src: bytes, ip_dst: bytes, udp_src: int,
              payload: bytes) -> bytes:
    """The whole frame around 'payload'.  'ip_src'/'ip_dst' are 16 bytes,
    IPv4 as IPv4-mapped IPv6 (how 23.03 keeps them)."""
    length = 8 + len(payload)
    if is_ipv4_mapped(ip_src):
        udp = _UDP.pack(udp_src, BFD_DEST_PORT, length, 0) + payload
        return compose_ipv4(src_mac, ETH_BROADCAST, ip_src[12:], ip_dst[12:],
                            IPPROTO_UDP, MAXTTL, udp)
    udp6 = bytearray(_UDP.pack(udp_src, BFD_DEST_PORT, length, 0) + payload)
    sum_ = csum(udp6, pseudo_sum_ipv6(ip_src, ip_dst, IPPROTO_UDP, length))
    struct.pack_into("!H", udp6, 6, sum_ or 0xFFFF)
    return compose_ipv6(src_mac, ETH_BROADCAST, ip_src, ip_dst, IPPROTO_UDP,
                        MAXTTL, bytes(udp6))
