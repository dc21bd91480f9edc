"""One line per Ethernet frame, for people (the `make run` demo): ARP and
RARP, DHCPv4, DHCPv6, DNS, ICMP/ICMPv6 (RS/RA/NS/NA, errors), IGMP/MLD,
BFD, TCP flags, anything else as its addresses and length.

    summarize(frame)          "DHCPACK xid=0x11223344 yiaddr=10.0.0.11 ..."
    periodic_kind(frame)      what periodic duty sent it ("gARP",
                              "periodic RA", ...) or None

Pure (struct only, no scapy: the demo starts fast and prints while it
reads); a truncated frame is described as far as it goes, never raises.
Test (demo) process, any thread.
"""

from __future__ import annotations

import ipaddress
import struct

from testbed.golden import classify_background

DHCP_TYPES = {1: "DISCOVER", 2: "OFFER", 3: "REQUEST", 4: "DECLINE", 5: "ACK",
              6: "NAK", 7: "RELEASE", 8: "INFORM"}
DHCP6_TYPES = {1: "SOLICIT", 2: "ADVERTISE", 3: "REQUEST", 4: "CONFIRM",
               5: "RENEW", 6: "REBIND", 7: "REPLY", 8: "RELEASE",
               9: "DECLINE", 11: "INFORMATION-REQUEST"}
ICMP4 = {0: "echo reply", 8: "echo request", 3: "unreachable",
         11: "time exceeded"}
UNREACH4 = {0: "net", 1: "host", 2: "protocol", 3: "port", 4: "frag needed",
            13: "administratively prohibited"}
ICMP6 = {1: "unreachable", 2: "packet too big", 3: "time exceeded",
         128: "echo request", 129: "echo reply", 130: "MLD query",
         131: "MLD report", 132: "MLD done", 133: "RS", 134: "RA", 135: "NS",
         136: "NA", 143: "MLDv2 report"}
IGMP = {0x11: "query", 0x12: "v1 report", 0x16: "v2 report", 0x17: "leave",
        0x22: "v3 report"}
DNS_TYPES = {1: "A", 2: "NS", 5: "CNAME", 12: "PTR", 15: "MX", 28: "AAAA",
             255: "ANY"}
BFD_STATES = ("AdminDown", "Down", "Init", "Up")
# The periodic classes of testbed.golden.classify_background, as shown.
PERIODIC_NAMES = {"garp": "gARP", "bfd_peer_arp": "ARP for the BFD peer",
                  "igmp_query": "IGMP query", "mld_query": "MLD query",
                  "bfd": "BFD", "svc_monitor_probe": "service monitor probe",
                  "periodic_ra": "periodic RA",
                  "prefix_delegation": "DHCPv6-PD"}


def _ip4(b: bytes) -> str:
    return str(ipaddress.IPv4Address(b))


def _ip6(b: bytes) -> str:
    return str(ipaddress.IPv6Address(b))


def _mac(b: bytes) -> str:
    return b.hex(":")


def periodic_kind(frame: bytes) -> str | None:
    """Which periodic duty (pinctrl's or ovn-controller's) sends frames
    like this one, or None for anything else."""
    if frame[12:14] == b"\x80\x35":
        return "RARP"
    kind = classify_background("", frame)
    return PERIODIC_NAMES.get(kind, kind) if kind else None


def summarize(frame: bytes) -> str:
    """One line describing 'frame' (see the module docstring)."""
    if len(frame) < 14:
        return f"runt frame ({len(frame)} bytes)"
    (etype,) = struct.unpack_from("!H", frame, 12)
    l3 = 14
    if etype == 0x8100 and len(frame) >= 18:
        (etype,) = struct.unpack_from("!H", frame, 16)
        l3 = 18
    try:
        if etype in (0x0806, 0x8035) and len(frame) >= l3 + 28:
            return _arp(frame, l3, rarp=etype == 0x8035)
        if etype == 0x0800 and len(frame) >= l3 + 20:
            return _ipv4(frame, l3)
        if etype == 0x86DD and len(frame) >= l3 + 40:
            return _ipv6(frame, l3)
    except (struct.error, IndexError, ValueError):
        pass
    return (f"{_mac(frame[6:12])} > {_mac(frame[0:6])} ethertype "
            f"0x{etype:04x}, {len(frame)} bytes")


def _arp(f: bytes, o: int, rarp: bool) -> str:
    op = struct.unpack_from("!H", f, o + 6)[0]
    sha, spa = _mac(f[o + 8:o + 14]), _ip4(f[o + 14:o + 18])
    tha, tpa = _mac(f[o + 18:o + 24]), _ip4(f[o + 24:o + 28])
    if rarp:
        return f"RARP {'request' if op == 3 else 'reply'} who-is {tha} " \
               f"(from {sha})"
    if spa == tpa:
        return f"gARP {spa} is-at {sha}"
    if op == 1:
        return f"ARP who-has {tpa} tell {spa} ({sha})"
    return f"ARP {spa} is-at {sha} (to {tpa})"


def _ipv4(f: bytes, o: int) -> str:
    ihl = (f[o] & 0x0F) * 4
    proto, l4 = f[o + 9], o + ihl
    src, dst = _ip4(f[o + 12:o + 16]), _ip4(f[o + 16:o + 20])
    if proto == 17 and len(f) >= l4 + 8:
        return _udp(f, l4, src, dst)
    if proto == 6 and len(f) >= l4 + 14:
        return _tcp(f, l4, src, dst)
    if proto == 1 and len(f) >= l4 + 2:
        t, code = f[l4], f[l4 + 1]
        what = ICMP4.get(t, f"type {t}")
        if t == 3:
            what += f" ({UNREACH4.get(code, code)})"
            if code == 4 and len(f) >= l4 + 8:
                what += f" mtu {struct.unpack_from('!H', f, l4 + 6)[0]}"
        return f"ICMP {what} {src} > {dst}"
    if proto == 2 and len(f) >= l4 + 8:
        group = _ip4(f[l4 + 4:l4 + 8])
        return f"IGMP {IGMP.get(f[l4], hex(f[l4]))} group {group} " \
               f"({src} > {dst})"
    return f"IPv4 {src} > {dst} proto {proto}, {len(f)} bytes"


def _ipv6(f: bytes, o: int) -> str:
    nh, l4 = f[o + 6], o + 40
    src, dst = _ip6(f[o + 8:o + 24]), _ip6(f[o + 24:o + 40])
    while nh in (0, 43, 60) and len(f) >= l4 + 8:   # HBH, routing, dstopts
        nh, l4 = f[l4], l4 + (f[l4 + 1] + 1) * 8
    if nh == 58 and len(f) >= l4 + 4:
        return _icmp6(f, l4, src, dst)
    if nh == 17 and len(f) >= l4 + 8:
        return _udp(f, l4, src, dst)
    if nh == 6 and len(f) >= l4 + 14:
        return _tcp(f, l4, src, dst)
    return f"IPv6 {src} > {dst} next header {nh}, {len(f)} bytes"


def _icmp6(f: bytes, l4: int, src: str, dst: str) -> str:
    t = f[l4]
    what = ICMP6.get(t, f"type {t}")
    if t in (135, 136) and len(f) >= l4 + 24:
        what += f" target {_ip6(f[l4 + 8:l4 + 24])}"
    elif t == 134 and len(f) >= l4 + 16:
        flags = f[l4 + 5]
        what += f" M={flags >> 7} O={flags >> 6 & 1}" + _ra_options(f, l4 + 16)
    elif t == 2 and len(f) >= l4 + 8:
        what += f" mtu {struct.unpack_from('!I', f, l4 + 4)[0]}"
    return f"ICMPv6 {what} {src} > {dst}"


def _ra_options(f: bytes, i: int) -> str:
    out = []
    while i + 2 <= len(f) and f[i + 1]:
        typ, ln = f[i], f[i + 1] * 8
        if typ == 3 and i + 32 <= len(f):
            out.append(f"prefix {_ip6(f[i + 16:i + 32])}/{f[i + 2]}")
        elif typ == 5 and i + 8 <= len(f):
            out.append(f"mtu {struct.unpack_from('!I', f, i + 4)[0]}")
        i += ln
    return "".join(" " + o for o in out)


def _tcp(f: bytes, l4: int, src: str, dst: str) -> str:
    sport, dport = struct.unpack_from("!HH", f, l4)
    flags = f[l4 + 13]
    names = "".join(c for bit, c in ((0x02, "S"), (0x01, "F"), (0x04, "R"),
                                     (0x08, "P"), (0x10, "."))
                    if flags & bit)
    return f"TCP {src}:{sport} > {dst}:{dport} [{names}]"


def _udp(f: bytes, l4: int, src: str, dst: str) -> str:
    sport, dport = struct.unpack_from("!HH", f, l4)
    body = l4 + 8
    ports = {sport, dport}
    if ports == {67, 68}:
        line = _dhcp4(f, body)
        if line:
            return f"{line} ({src} > {dst})"
    if ports == {546, 547} and len(f) > body:
        t = f[body]
        return f"DHCPv6 {DHCP6_TYPES.get(t, t)} xid=0x" \
               f"{f[body + 1:body + 4].hex()} ({src} > {dst})"
    if 53 in ports and len(f) >= body + 12:
        return f"DNS {_dns(f, body)} ({src} > {dst})"
    if dport in (3784, 4784) and len(f) >= body + 2:
        state = BFD_STATES[f[body + 1] >> 6]
        return f"BFD {state} {src} > {dst}"
    return f"UDP {src}:{sport} > {dst}:{dport}, {len(f)} bytes"


def _dhcp4(f: bytes, b: int) -> str | None:
    if len(f) < b + 240 or f[b + 236:b + 240] != b"\x63\x82\x53\x63":
        return None
    (xid,) = struct.unpack_from("!I", f, b + 4)
    opts: dict[int, bytes] = {}
    i = b + 240
    while i < len(f) and f[i] != 255:
        if f[i] == 0:
            i += 1
            continue
        if i + 1 >= len(f):
            break
        opts.setdefault(f[i], f[i + 2:i + 2 + f[i + 1]])
        i += 2 + f[i + 1]
    mt = opts.get(53, b"")
    name = DHCP_TYPES.get(mt[0], f"type {mt[0]}") if mt else "(no type)"
    parts = [f"DHCP{name} xid=0x{xid:08x}"]
    if f[b] == 2:
        parts.append(f"yiaddr={_ip4(f[b + 16:b + 20])}")
    for code, label in ((50, "requested"), (54, "server-id"), (1, "mask"),
                        (3, "router")):
        if len(opts.get(code, b"")) >= 4:
            parts.append(f"{label}={_ip4(opts[code][:4])}")
    if len(opts.get(51, b"")) == 4:
        parts.append(f"lease={struct.unpack('!I', opts[51])[0]}s")
    return " ".join(parts)


def _dns_name(f: bytes, i: int) -> tuple[str, int]:
    """(name, offset after it); follows one compression pointer."""
    labels, end = [], None
    for _ in range(64):
        n = f[i]
        if n == 0:
            i += 1
            break
        if n & 0xC0 == 0xC0:
            end = end or i + 2
            i = struct.unpack_from("!H", f, i)[0] & 0x3FFF
            continue
        labels.append(f[i + 1:i + 1 + n].decode("ascii", "replace"))
        i += 1 + n
    return ".".join(labels) + ".", end or i


def _dns(f: bytes, b: int) -> str:
    ident, flags, qd, an = struct.unpack_from("!HHHH", f, b)
    qname, i = _dns_name(f, b + 12) if qd else ("?", b + 12)
    qtype = struct.unpack_from("!H", f, i)[0] if qd else 0
    tname = DNS_TYPES.get(qtype, str(qtype))
    if not flags & 0x8000:
        return f"query id=0x{ident:04x} {tname} {qname}"
    i += 4
    answers = []
    for _ in range(an):
        _, i = _dns_name(f, i)
        rtype, _, _, rdlen = struct.unpack_from("!HHIH", f, i)
        rdata = f[i + 10:i + 10 + rdlen]
        if rtype == 1 and rdlen == 4:
            answers.append(_ip4(rdata))
        elif rtype == 28 and rdlen == 16:
            answers.append(_ip6(rdata))
        elif rtype == 12:
            answers.append(_dns_name(f, i + 10)[0])
        i += 10 + rdlen
    rcode = flags & 0xF
    result = ", ".join(answers) if answers else f"rcode {rcode}, no answer"
    return f"answer id=0x{ident:04x} {tname} {qname} -> {result}"
