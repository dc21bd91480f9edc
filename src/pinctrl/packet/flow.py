"""The packet headers as OVS's flow_extract() sees them, and flow_format().

Pure code.  23.03's pinctrl runs flow_extract() on every packet-in and its
handlers read the resulting 'struct flow' (addresses, ports, nw_proto after
IPv6 extension headers, the first VLAN TCI); the ACL log prints it with
flow_format().  extract() reproduces OVS 3.1's miniflow_extract() for
Ethernet frames (up to two VLAN tags, LLC/SNAP, IPv4, IPv6 with extension
headers, ARP/RARP, TCP, UDP, SCTP, ICMP, IGMP, ICMPv6 with ND options);
format_flow() reproduces flow_format() for the fields extract() fills.  MPLS and
NSH are not parsed (their ethertype is still reported).  Never raises on
short or malformed frames: what OVS would not parse stays zero.
"""

from __future__ import annotations

import socket
import struct
from dataclasses import dataclass, field

from pinctrl.packet.headers import fmt_ip4, fmt_mac

ETH_TYPE_IP = 0x0800
ETH_TYPE_ARP = 0x0806
ETH_TYPE_RARP = 0x8035
ETH_TYPE_IPV6 = 0x86DD
ETH_TYPE_MPLS = 0x8847
ETH_TYPE_MPLS_MCAST = 0x8848
ETH_TYPE_MIN = 0x600
FLOW_DL_TYPE_NONE = 0x5FF
_VLAN_TPIDS = (0x8100, 0x88A8)
VLAN_CFI = 0x1000
FLOW_MAX_VLAN_HEADERS = 2

IPPROTO_HOPOPTS, IPPROTO_ICMP, IPPROTO_IGMP, IPPROTO_TCP = 0, 1, 2, 6
IPPROTO_UDP, IPPROTO_ROUTING, IPPROTO_FRAGMENT = 17, 43, 44
IPPROTO_AH, IPPROTO_ICMPV6, IPPROTO_DSTOPTS, IPPROTO_SCTP = 51, 58, 60, 132

FLOW_NW_FRAG_ANY = 1
FLOW_NW_FRAG_LATER = 2

_U16 = struct.Struct("!H")
_U32 = struct.Struct("!I")
_ZERO_MAC = bytes(6)
_ZERO_IP6 = bytes(16)


@dataclass(slots=True)
class Flow:
    """The subset of OVS's struct flow that packet parsing fills.  Offsets
    are None where OVS leaves l3_ofs/l4_ofs unset."""
    dl_dst: bytes = _ZERO_MAC
    dl_src: bytes = _ZERO_MAC
    dl_type: int = 0
    vlan_tcis: list[int] = field(default_factory=list)  # CFI bit set
    nw_src: bytes = bytes(4)        # IPv4, or ARP spa
    nw_dst: bytes = bytes(4)        # IPv4, or ARP tpa
    ipv6_src: bytes = _ZERO_IP6
    ipv6_dst: bytes = _ZERO_IP6
    ipv6_label: int = 0
    nw_frag: int = 0
    nw_tos: int = 0
    nw_ttl: int = 0
    nw_proto: int = 0               # after IPv6 extension headers; ARP op
    tp_src: int = 0                 # ports; ICMP type
    tp_dst: int = 0                 # ports; ICMP code
    tcp_flags: int = 0
    arp_sha: bytes = _ZERO_MAC      # also ND sll
    arp_tha: bytes = _ZERO_MAC      # also ND tll
    nd_target: bytes = _ZERO_IP6
    l3_ofs: int | None = None
    l4_ofs: int | None = None
    l4_end: int = 0                 # end of the L3 payload (padding excluded)
    l4_ok: bool = False             # OVS parsed the L4 header (ports/type)

    @property
    def vlan_tci(self) -> int:
        """The first VLAN header's TCI as OVS stores it (CFI set), else 0."""
        return self.vlan_tcis[0] if self.vlan_tcis else 0


def _ethertype(frame: bytes, ofs: int) -> tuple[int, int]:
    """parse_ethertype(): (dl_type, offset after it), LLC/SNAP included."""
    proto = _U16.unpack_from(frame, ofs)[0]
    ofs += 2
    if proto >= ETH_TYPE_MIN:
        return proto, ofs
    if len(frame) - ofs < 8:
        return FLOW_DL_TYPE_NONE, ofs
    if frame[ofs:ofs + 6] != b"\xaa\xaa\x03\x00\x00\x00":
        return FLOW_DL_TYPE_NONE, ofs
    snap_type = _U16.unpack_from(frame, ofs + 6)[0]
    ofs += 8
    return (snap_type if snap_type >= ETH_TYPE_MIN else FLOW_DL_TYPE_NONE,
            ofs)


def _ipv6_ext_hdrs(frame: bytes, ofs: int, end: int, proto: int, f: Flow
                   ) -> tuple[int, int] | None:
    """parse_ipv6_ext_hdrs__(): (nw_proto, l4 offset), None on failure."""
    while proto in (IPPROTO_HOPOPTS, IPPROTO_ROUTING, IPPROTO_DSTOPTS,
                    IPPROTO_AH, IPPROTO_FRAGMENT):
        if end - ofs < 8:
            return None
        if proto == IPPROTO_FRAGMENT:
            proto = frame[ofs]
            offlg = _U16.unpack_from(frame, ofs + 2)[0]
            ofs += 8
            if offlg:
                f.nw_frag = FLOW_NW_FRAG_ANY
                if offlg & 0xFFF8:
                    f.nw_frag |= FLOW_NW_FRAG_LATER
                    return IPPROTO_FRAGMENT, ofs
            continue
        nxt, hlen = frame[ofs], frame[ofs + 1]
        length = (hlen + 2) * 4 if proto == IPPROTO_AH else (hlen + 1) * 8
        if end - ofs < length:
            return None
        proto = nxt
        ofs += length
    return proto, ofs


def _icmpv6_nd(frame: bytes, ofs: int, end: int, f: Flow) -> None:
    """parse_icmpv6() for NS/NA: target and link-layer address options."""
    if end - ofs < 16:
        return
    target = bytes(frame[ofs:ofs + 16])
    ofs += 16
    sll = tll = _ZERO_MAC
    while end - ofs >= 8:
        otype, olen = frame[ofs], frame[ofs + 1] * 8
        if not olen or olen > end - ofs:
            break
        if otype in (1, 2) and olen == 8:
            mac = bytes(frame[ofs + 2:ofs + 8])
            if (sll if otype == 1 else tll) != _ZERO_MAC:
                # A repeated option invalidates the whole ND parse.
                return
            if otype == 1:
                sll = mac
            else:
                tll = mac
        ofs += olen
    f.nd_target, f.arp_sha, f.arp_tha = target, sll, tll


def _l4(frame: bytes, ofs: int, end: int, f: Flow) -> None:
    size = end - ofs
    proto = f.nw_proto
    if proto == IPPROTO_TCP:
        if size >= 20:
            hlen = (frame[ofs + 12] >> 4) * 4
            if hlen >= 20 and size >= hlen:
                f.tp_src, f.tp_dst = struct.unpack_from("!HH", frame, ofs)
                f.tcp_flags = _U16.unpack_from(frame, ofs + 12)[0] & 0x0FFF
                f.l4_ok = True
    elif proto in (IPPROTO_UDP, IPPROTO_SCTP):
        if size >= (8 if proto == IPPROTO_UDP else 12):
            f.tp_src, f.tp_dst = struct.unpack_from("!HH", frame, ofs)
            f.l4_ok = True
    elif proto in (IPPROTO_ICMP, IPPROTO_IGMP):
        if size >= 8:
            f.tp_src, f.tp_dst = frame[ofs], frame[ofs + 1]
            f.l4_ok = True
    elif proto == IPPROTO_ICMPV6:
        if size >= 8:
            f.tp_src, f.tp_dst = frame[ofs], frame[ofs + 1]
            f.l4_ok = True
            if f.tp_dst == 0 and f.tp_src in (135, 136):
                _icmpv6_nd(frame, ofs + 8, end, f)


def extract(frame: bytes) -> Flow:
    """flow_extract() of an Ethernet frame (no packet metadata)."""
    f = Flow()
    n = len(frame)
    if n < 14:
        return f
    f.dl_dst, f.dl_src = bytes(frame[0:6]), bytes(frame[6:12])
    ofs = 12
    while (len(f.vlan_tcis) < FLOW_MAX_VLAN_HEADERS
           and _U16.unpack_from(frame, ofs)[0] in _VLAN_TPIDS
           and n - ofs >= 6):
        f.vlan_tcis.append(_U16.unpack_from(frame, ofs + 2)[0] | VLAN_CFI)
        ofs += 4
    f.dl_type, ofs = _ethertype(frame, ofs)
    f.l3_ofs = ofs
    size = n - ofs

    if f.dl_type == ETH_TYPE_IP:
        if size < 20:
            return f
        ihl = (frame[ofs] & 0x0F) * 4
        tot_len = _U16.unpack_from(frame, ofs + 2)[0]
        if ihl < 20 or size < ihl or tot_len > size or ihl > tot_len:
            return f
        f.nw_src = bytes(frame[ofs + 12:ofs + 16])
        f.nw_dst = bytes(frame[ofs + 16:ofs + 20])
        f.nw_tos, f.nw_ttl, f.nw_proto = (frame[ofs + 1], frame[ofs + 8],
                                          frame[ofs + 9])
        frag = _U16.unpack_from(frame, ofs + 6)[0]
        if frag & 0x3FFF:
            f.nw_frag = FLOW_NW_FRAG_ANY
            if frag & 0x1FFF:
                f.nw_frag |= FLOW_NW_FRAG_LATER
        end = ofs + tot_len
        l4 = ofs + ihl
    elif f.dl_type == ETH_TYPE_IPV6:
        if size < 40:
            return f
        plen = _U16.unpack_from(frame, ofs + 4)[0]
        if plen + 40 > size:
            return f
        f.ipv6_src = bytes(frame[ofs + 8:ofs + 24])
        f.ipv6_dst = bytes(frame[ofs + 24:ofs + 40])
        end = ofs + 40 + plen
        tc_flow = _U32.unpack_from(frame, ofs)[0]
        parsed = _ipv6_ext_hdrs(frame, ofs + 40, end, frame[ofs + 6], f)
        if parsed is None:
            f.nw_frag = 0
            return f
        f.nw_proto, l4 = parsed
        f.nw_tos = (tc_flow >> 20) & 0xFF
        f.nw_ttl = frame[ofs + 7]
        f.ipv6_label = tc_flow & 0xFFFFF
    else:
        if (f.dl_type in (ETH_TYPE_ARP, ETH_TYPE_RARP) and size >= 28
                and frame[ofs:ofs + 6] == b"\x00\x01\x08\x00\x06\x04"):
            f.nw_src = bytes(frame[ofs + 14:ofs + 18])
            f.nw_dst = bytes(frame[ofs + 24:ofs + 28])
            op = _U16.unpack_from(frame, ofs + 6)[0]
            if op <= 0xFF:
                f.nw_proto = op
            f.arp_sha = bytes(frame[ofs + 8:ofs + 14])
            f.arp_tha = bytes(frame[ofs + 18:ofs + 24])
        return f

    f.l4_ofs, f.l4_end = l4, end
    if not f.nw_frag & FLOW_NW_FRAG_LATER:
        _l4(frame, l4, end, f)
    return f


# --- flow_format() ------------------------------------------------------------

_TCP_FLAG_NAMES = {0x001: "fin", 0x002: "syn", 0x004: "rst", 0x008: "psh",
                   0x010: "ack", 0x020: "urg", 0x040: "ece", 0x080: "cwr",
                   0x100: "ns", 0x200: "[200]", 0x400: "[400]",
                   0x800: "[800]"}
_V4_PROTOS = {IPPROTO_ICMP: "icmp", IPPROTO_TCP: "tcp", IPPROTO_UDP: "udp",
              IPPROTO_SCTP: "sctp"}
_V6_PROTOS = {IPPROTO_ICMPV6: "icmp6", IPPROTO_TCP: "tcp6",
              IPPROTO_UDP: "udp6", IPPROTO_SCTP: "sctp6"}
_DL_NAMES = {ETH_TYPE_ARP: "arp", ETH_TYPE_RARP: "rarp",
             ETH_TYPE_MPLS: "mpls", ETH_TYPE_MPLS_MCAST: "mplsm"}
_L4_PROTOS = (IPPROTO_ICMP, IPPROTO_ICMPV6, IPPROTO_TCP, IPPROTO_UDP,
              IPPROTO_SCTP, IPPROTO_IGMP)


def fmt_ip6(ip: bytes) -> str:
    """inet_ntop(), as OVS's ipv6_format_addr()."""
    return socket.inet_ntop(socket.AF_INET6, ip)


def _tcp_flags(bits: int) -> str:
    if not bits:
        return "0"
    names = [_TCP_FLAG_NAMES[1 << i] for i in range(12) if bits >> i & 1]
    return "|".join(names)


def format_flow(f: Flow) -> str:
    """flow_format(flow, NULL) for a flow from extract(): the match
    string OVS prints for a packet, e.g. 'tcp,vlan_tci=0x0000,dl_src=...'."""
    out: list[str] = []
    is_ip = f.dl_type in (ETH_TYPE_IP, ETH_TYPE_IPV6)
    is_arp = f.dl_type in (ETH_TYPE_ARP, ETH_TYPE_RARP)
    skip_proto = False
    if f.dl_type == ETH_TYPE_IP:
        name = _V4_PROTOS.get(f.nw_proto)
        skip_proto = name is not None
        out.append(name or "ip")
    elif f.dl_type == ETH_TYPE_IPV6:
        name = _V6_PROTOS.get(f.nw_proto)
        skip_proto = name is not None
        out.append(name or "ipv6")
    elif f.dl_type in _DL_NAMES:
        out.append(_DL_NAMES[f.dl_type])

    # VLANs: the first header always, a second one if the first exists.
    tcis = list(f.vlan_tcis) + [0] * (FLOW_MAX_VLAN_HEADERS
                                      - len(f.vlan_tcis))
    for i, tci in enumerate(tcis):
        sfx = "" if i == 0 else str(i)
        if tci & VLAN_CFI:
            out.append(f"dl_vlan{sfx}={tci & 0xFFF}")
            out.append(f"dl_vlan_pcp{sfx}={tci >> 13}")
        else:
            out.append(f"vlan_tci{sfx}=0x{tci:04x}")
        if tci == 0:
            break

    out.append(f"dl_src={fmt_mac(f.dl_src)}")
    out.append(f"dl_dst={fmt_mac(f.dl_dst)}")
    if f.dl_type not in (ETH_TYPE_IP, ETH_TYPE_IPV6) and \
            f.dl_type not in _DL_NAMES:
        out.append(f"dl_type=0x{f.dl_type:04x}")
        return ",".join(out)
    if f.dl_type in (ETH_TYPE_MPLS, ETH_TYPE_MPLS_MCAST):
        return ",".join(out)        # MPLS labels are not parsed

    if f.dl_type == ETH_TYPE_IPV6:
        out.append(f"ipv6_src={fmt_ip6(f.ipv6_src)}")
        out.append(f"ipv6_dst={fmt_ip6(f.ipv6_dst)}")
        out.append(f"ipv6_label=0x{f.ipv6_label:05x}")
    elif is_arp:
        out.append(f"arp_spa={fmt_ip4(f.nw_src)}")
        out.append(f"arp_tpa={fmt_ip4(f.nw_dst)}")
    else:
        out.append(f"nw_src={fmt_ip4(f.nw_src)}")
        out.append(f"nw_dst={fmt_ip4(f.nw_dst)}")
    if not skip_proto:
        out.append(f"{'arp_op' if is_arp else 'nw_proto'}={f.nw_proto}")
    if is_arp:
        out.append(f"arp_sha={fmt_mac(f.arp_sha)}")
        out.append(f"arp_tha={fmt_mac(f.arp_tha)}")
        return ",".join(out)

    assert is_ip
    out.append(f"nw_tos={f.nw_tos & 0xFC}")
    out.append(f"nw_ecn={f.nw_tos & 0x03}")
    out.append(f"nw_ttl={f.nw_ttl}")
    if f.nw_frag & FLOW_NW_FRAG_ANY:
        frag = "later" if f.nw_frag & FLOW_NW_FRAG_LATER else "first"
    else:
        frag = "<error>" if f.nw_frag & FLOW_NW_FRAG_LATER else "no"
    out.append(f"nw_frag={frag}")
    if f.nw_frag & FLOW_NW_FRAG_LATER or f.nw_proto not in _L4_PROTOS:
        return ",".join(out)
    icmp = ((f.dl_type == ETH_TYPE_IP and f.nw_proto == IPPROTO_ICMP)
            or (f.dl_type == ETH_TYPE_IPV6 and f.nw_proto == IPPROTO_ICMPV6))
    if icmp:
        out.append(f"icmp_type={f.tp_src}")
        out.append(f"icmp_code={f.tp_dst}")
        if (f.nw_proto == IPPROTO_ICMPV6 and f.tp_dst == 0
                and f.tp_src in (135, 136)):
            out.append(f"nd_target={fmt_ip6(f.nd_target)}")
            out.append(f"nd_sll={fmt_mac(f.arp_sha)}")
            out.append(f"nd_tll={fmt_mac(f.arp_tha)}")
    else:
        out.append(f"tp_src={f.tp_src}")
        out.append(f"tp_dst={f.tp_dst}")
    if f.nw_proto == IPPROTO_TCP:
        out.append(f"tcp_flags={_tcp_flags(f.tcp_flags)}")
    return ",".join(out)
