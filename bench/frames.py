"""Request frames of each benchmark workload and how to recognise answers.

Pure functions on bytes; no I/O.  The load generator sends millions of
frames, so a request is built once as a template and only its identifier
is patched per send (struct.pack_into plus an incremental RFC 1624 checksum
update), and an answer is recognised by a handful of fixed-offset reads.

Addresses follow bench/topology.py (which mirrors the golden recording's
sw0-p1 / lr0 / lr1, with sw1 widened to 10.1.0.0/16 for 64k distinct
next hops and learned neighbours).
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from dataclasses import dataclass

from pinctrl.packet import headers as pkt

ETH_HDR = 14
L3 = ETH_HDR
L4 = ETH_HDR + pkt.IP_HEADER_LEN      # every template has a 20-byte IPv4 header

P1_MAC = bytes.fromhex("505400000001")       # sw0-p1, the generator's eth0
P1_IP = bytes([10, 0, 0, 11])
P4_MAC = bytes.fromhex("505400000004")       # sw1-p4, the generator's eth1
LR0_SW0_MAC = bytes.fromhex("00000000ff01")
LR0_SW0_IP = bytes([10, 0, 0, 1])
LR0_SW1_MAC = bytes.fromhex("00000000ff02")
LR0_SW1_IP = bytes([10, 1, 0, 1])
LR1_SW0_MAC = bytes.fromhex("00000000ff04")
LR1_SW0_IP = bytes([10, 0, 0, 254])
BROADCAST = b"\xff" * 6
DNS_NAME = "vm1.ovn.test"

# 10.1.128.0/17 are ARP-resolution targets, 10.1.1.0 .. 10.1.127.255 the
# senders put_arp learns: the two workloads never resolve each other's IPs.
ARP_TARGET_BASE = (10 << 24) | (1 << 16) | (128 << 8)
PUT_ARP_BASE = (10 << 24) | (1 << 16) | (1 << 8)
ARP_TARGET_SPACE = 32768
PUT_ARP_SPACE = 32512

_U16 = struct.Struct("!H")
_U32 = struct.Struct("!I")
_HH = struct.Struct("!HH")


def csum_adjust(old: int, added: int) -> int:
    """RFC 1624 incremental update: the checksum of data whose checksum was
    'old' when the patched fields were zero, after adding 'added' (the
    one's-complement sum of the fields' new 16-bit words)."""
    s = (~old & 0xFFFF) + added
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return ~s & 0xFFFF


def _ipv4(eth_src: bytes, eth_dst: bytes, src: bytes, dst: bytes, proto: int,
          l4: bytes) -> bytearray:
    """Ethernet + IPv4 (ID 1, no DF, TTL 64: what scapy sends, as in the golden
    injections) + l4; header checksum set, L4 checksum left to the caller."""
    hdr = bytearray(struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(l4), 1, 0, 64,
                                proto, 0, src, dst))
    pkt.ipv4_set_csum(hdr, 0)
    return bytearray(eth_dst + eth_src + b"\x08\x00" + bytes(hdr) + l4)


def _l4_csum(frame: bytearray, csum_ofs: int) -> None:
    """Set the UDP/TCP checksum at csum_ofs over the IPv4 pseudo-header."""
    src, dst, proto = frame[L3 + 12:L3 + 16], frame[L3 + 16:L3 + 20], frame[L3 + 9]
    frame[csum_ofs:csum_ofs + 2] = b"\0\0"
    c = pkt.csum(frame[L4:], pkt.pseudo_sum_ipv4(src, dst, proto, len(frame) - L4))
    _U16.pack_into(frame, csum_ofs, c)


def dhcp_discover() -> bytearray:
    """DHCPDISCOVER from sw0-p1, xid 0 (what udhcpc/scapy send: client id,
    parameter request list)."""
    bootp = struct.pack("!BBBBIHH4s4s4s4s16s64s128s", 1, 1, 6, 0, 0, 0, 0,
                        b"\0" * 4, b"\0" * 4, b"\0" * 4, b"\0" * 4,
                        P1_MAC + b"\0" * 10, b"", b"")
    opts = (b"\x63\x82\x53\x63" + b"\x35\x01\x01" + b"\x3d\x07\x01" + P1_MAC
            + b"\x37\x04\x01\x03\x06\x0f" + b"\xff")
    udp = struct.pack("!HHHH", 68, 67, 8 + len(bootp) + len(opts), 0) + bootp + opts
    f = _ipv4(P1_MAC, BROADCAST, b"\0" * 4, b"\xff" * 4, 17, udp)
    _l4_csum(f, L4 + 6)
    return f


def dns_query(name: str = DNS_NAME) -> bytearray:
    """DNS A query for 'name' from sw0-p1 to lr0's 10.0.0.1, id 0, sport 0."""
    q = b"".join(bytes([len(p)]) + p.encode() for p in name.split(".")) + b"\0"
    dns = struct.pack("!HHHHHH", 0, 0x0100, 1, 0, 0, 0) + q + b"\x00\x01\x00\x01"
    udp = struct.pack("!HHHH", 0, 53, 8 + len(dns), 0) + dns
    f = _ipv4(P1_MAC, LR0_SW0_MAC, P1_IP, LR0_SW0_IP, 17, udp)
    _l4_csum(f, L4 + 6)
    return f


def tcp_syn() -> bytearray:
    """TCP SYN from sw0-p1 to lr1's own 10.0.0.254:80 (answered by
    tcp_reset), sport 0, seq 0."""
    tcp = struct.pack("!HHIIBBHHH", 0, 80, 0, 0, 0x50, 0x02, 64240, 0, 0)
    f = _ipv4(P1_MAC, LR1_SW0_MAC, P1_IP, LR1_SW0_IP, 6, tcp)
    _l4_csum(f, L4 + 16)
    return f


def udp_to_unresolved() -> bytearray:
    """UDP from sw0-p1 through lr0 to 0.0.0.0 (patched to an unbound
    10.1.128.0/17 address): lr0 has no MAC for it and punts to `arp`."""
    payload = b"bench-arp-resolve"
    udp = struct.pack("!HHHH", 40000, 9, 8 + len(payload), 0) + payload
    f = _ipv4(P1_MAC, LR0_SW0_MAC, P1_IP, b"\0" * 4, 17, udp)
    _l4_csum(f, L4 + 6)
    return f


def arp_reply_to_router() -> bytearray:
    """ARP reply to lr0-sw1 from 02:00:00:00:00:00 / 0.0.0.0 (both patched):
    lr0 learns every sender it does not know with put_arp."""
    arp = struct.pack("!HHBBH6s4s6s4s", 1, 0x0800, 6, 4, 2, b"\0" * 6, b"\0" * 4,
                      LR0_SW1_MAC, LR0_SW1_IP)
    return bytearray(LR0_SW1_MAC + b"\x02" + b"\0" * 5 + b"\x08\x06" + arp)


# ---------------------------------------------------------------- patchers
def _patch_dhcp(buf, ident: int, c0: int) -> None:
    _U32.pack_into(buf, L4 + 8 + 4, ident)
    _U16.pack_into(buf, L4 + 6, csum_adjust(c0, (ident >> 16) + (ident & 0xFFFF)) or 0xFFFF)


def _patch_dns(buf, ident: int, c0: int) -> None:
    # id = dns id (low 16 bits) and UDP source port (high 16 bits, >= 1024)
    sport, qid = 1024 + (ident >> 16) % 64000, ident & 0xFFFF
    _HH.pack_into(buf, L4, sport, 53)
    _U16.pack_into(buf, L4 + 8, qid)
    _U16.pack_into(buf, L4 + 6, csum_adjust(c0, sport + qid) or 0xFFFF)


def _patch_tcp(buf, ident: int, c0: int) -> None:
    sport = 1024 + ident % 64000
    _U16.pack_into(buf, L4, sport)
    _U32.pack_into(buf, L4 + 4, ident)
    _U16.pack_into(buf, L4 + 16, csum_adjust(c0, sport + (ident >> 16) + (ident & 0xFFFF)))


def _patch_arp_target(buf, ident: int, c0: tuple[int, int]) -> None:
    ip = ARP_TARGET_BASE + ident % ARP_TARGET_SPACE
    words = (ip >> 16) + (ip & 0xFFFF)
    _U32.pack_into(buf, L3 + 16, ip)
    _U16.pack_into(buf, L3 + 10, csum_adjust(c0[0], words))
    _U16.pack_into(buf, L4 + 6, csum_adjust(c0[1], words) or 0xFFFF)


def _patch_put_arp(buf, ident: int, c0: None) -> None:
    ip = PUT_ARP_BASE + ident % PUT_ARP_SPACE
    mac = b"\x02\x00" + _U32.pack(ip)
    buf[6:12] = mac
    buf[ETH_HDR + 8:ETH_HDR + 14] = mac
    _U32.pack_into(buf, ETH_HDR + 14, ip)


# ---------------------------------------------------------------- answers
def _ip_proto_ports(f: bytes) -> tuple[int, int, int] | None:
    if len(f) < L4 + 8 or f[12:14] != b"\x08\x00" or f[L3] != 0x45:
        return None
    return (f[L3 + 9],) + _HH.unpack_from(f, L4)


def dhcp_id(f: bytes, op: int) -> int | None:
    """xid of a DHCP message with BOOTP op 'op' (2: the OFFER; 1: a reflected
    DISCOVER); None for anything else."""
    if _ip_proto_ports(f) != ((17, 67, 68) if op == 2 else (17, 68, 67)) or len(f) < L4 + 16:
        return None
    if f[L4 + 8] != op:
        return None
    return _U32.unpack_from(f, L4 + 12)[0]


def dns_id(f: bytes, response: bool) -> int | None:
    """(sport slot << 16 | id) of our query / its response, else None."""
    pp = _ip_proto_ports(f)
    if pp is None or pp[0] != 17 or len(f) < L4 + 12:
        return None
    port = pp[2] if response else pp[1]
    if (pp[1] if response else pp[2]) != 53 or port < 1024:
        return None
    if bool(f[L4 + 10] & 0x80) != response:
        return None
    return ((port - 1024) << 16) | _U16.unpack_from(f, L4 + 8)[0]


def tcp_rst_id(f: bytes) -> int | None:
    """The seq of the SYN a RST+ACK answers (its ack - 1), else None."""
    pp = _ip_proto_ports(f)
    if pp is None or pp[0] != 6 or pp[1] != 80 or len(f) < L4 + 14 or not f[L4 + 13] & 0x04:
        return None
    return (_U32.unpack_from(f, L4 + 8)[0] - 1) & 0xFFFFFFFF


def tcp_syn_id(f: bytes) -> int | None:
    pp = _ip_proto_ports(f)
    if pp is None or pp[0] != 6 or pp[2] != 80 or len(f) < L4 + 14 or f[L4 + 13] != 0x02:
        return None
    return _U32.unpack_from(f, L4 + 4)[0]


def arp_request_id(f: bytes) -> int | None:
    """Slot of the target IP of lr0's ARP request, else None."""
    if len(f) < 42 or f[12:14] != b"\x08\x06" or f[21] != 1:
        return None
    return (_U32.unpack_from(f, 38)[0] - ARP_TARGET_BASE) % ARP_TARGET_SPACE


def unresolved_udp_id(f: bytes) -> int | None:
    pp = _ip_proto_ports(f)
    if pp is None or pp[0] != 17 or pp[2] != 9:
        return None
    return (_U32.unpack_from(f, L3 + 16)[0] - ARP_TARGET_BASE) % ARP_TARGET_SPACE


def put_arp_id(f: bytes) -> int | None:
    if len(f) < 42 or f[12:14] != b"\x08\x06" or f[21] != 2:
        return None
    return (_U32.unpack_from(f, 28)[0] - PUT_ARP_BASE) % PUT_ARP_SPACE


def _udp_csum(f: bytearray) -> int:
    return _U16.unpack_from(f, L4 + 6)[0]


def _tcp_csum(f: bytearray) -> int:
    return _U16.unpack_from(f, L4 + 16)[0]


def _ip_udp_csums(f: bytearray) -> tuple[int, int]:
    return _U16.unpack_from(f, L3 + 10)[0], _udp_csum(f)


# ---------------------------------------------------------------- workloads
@dataclass(frozen=True)
class Workload:
    """One request kind.  tx/rx name the generator interface ("p1" = sw0-p1,
    "p4" = sw1-p4) the request leaves by and the answer arrives on;
    answer_id recognises an answer, echo_id the request reflected by the
    ceiling flow.  Identifiers repeat modulo id_space."""
    name: str
    title: str
    tx: str
    rx: str
    build: Callable[[], bytearray]
    patch: Callable
    checksums: Callable[[bytearray], object]
    answer_id: Callable[[bytes], int | None]
    echo_id: Callable[[bytes], int | None]
    id_space: int

    def template(self) -> tuple[bytearray, object]:
        """The frame with identifier fields zero, plus what patch() needs
        (the checksums of that frame)."""
        f = self.build()
        return f, self.checksums(f)

    def frame(self, ident: int) -> bytes:
        """One request with identifier 'ident' (for tests and the ceiling)."""
        f, c0 = self.template()
        self.patch(f, ident % self.id_space, c0)
        return bytes(f)


WORKLOADS: dict[str, Workload] = {w.name: w for w in (
    Workload("dhcp", "DHCPv4 DISCOVER->OFFER", "p1", "p1", dhcp_discover, _patch_dhcp, _udp_csum,
             lambda f: dhcp_id(f, 2), lambda f: dhcp_id(f, 1), 1 << 32),
    Workload("dns", "DNS A query", "p1", "p1", dns_query, _patch_dns, _udp_csum,
             lambda f: dns_id(f, True), lambda f: dns_id(f, False), 64000 << 16),
    Workload("tcp_rst", "TCP SYN->RST (tcp_reset)", "p1", "p1", tcp_syn, _patch_tcp, _tcp_csum,
             tcp_rst_id, tcp_syn_id, 1 << 32),
    Workload("arp_resolve", "ARP resolution (arp packet-out)", "p1", "p4",
             udp_to_unresolved, _patch_arp_target, _ip_udp_csums, arp_request_id, unresolved_udp_id,
             ARP_TARGET_SPACE),
    Workload("put_arp", "put_arp learning (MAC_Binding)", "p4", "p4",
             arp_reply_to_router, _patch_put_arp, lambda f: None, lambda f: None, put_arp_id,
             PUT_ARP_SPACE),
)}


def put_arp_ip(ident: int) -> str:
    """The sender IP (dotted) that put_arp request 'ident' makes lr0 learn."""
    ip = PUT_ARP_BASE + ident % PUT_ARP_SPACE
    return ".".join(str(b) for b in _U32.pack(ip))
