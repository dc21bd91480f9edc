"""DHCPv6 prefix delegation, the client's messages (RFC 8415, IA_PD), as
OVN 23.03's pinctrl builds and reads them (controller/pinctrl.c
compose_prefixd_packet(), pinctrl_parse_dhcpv6_advt(),
pinctrl_parse_dhcpv6_reply()).

Pure code; any thread (in practice the pinctrl_handler thread).

* SOLICIT / RENEW / REBIND: transaction id 0; Client Identifier a DUID-LL
  of the downstream router port's MAC; the server's Server Identifier
  once a REPLY named one (then unicast to the server); IA_PD with T1 = T2
  = infinity, holding the delegated prefix (lifetimes infinity) once
  there is one.
* REQUEST, answering an ADVERTISE: the ADVERTISE's Client and Server
  Identifiers and IA_PD (only its IA Prefix options kept, the IA_PD
  length recomputed), in the ADVERTISE's order, transaction id 0.
* UDP 546 -> 547, IPv6 hop limit 255, UDP checksum.

Differences from 23.03 (docs/compat.md): options are walked strictly - an
option or sub-option running past the UDP payload rejects the message
(23.03 compares lengths against the bytes it copied so far, and reads an
IA_PD or IA Prefix shorter than its fixed fields).
"""

from __future__ import annotations

import struct
from typing import NamedTuple

from pinctrl.packet.headers import IPPROTO_UDP, compose_ipv6, csum, pseudo_sum_ipv6

CLIENT_PORT, SERVER_PORT = 546, 547
SOLICIT, ADVERTISE, REQUEST, RENEW, REBIND, REPLY = 1, 2, 3, 5, 6, 7
OPT_CLIENT_ID, OPT_SERVER_ID, OPT_STATUS_CODE = 1, 2, 13
OPT_IA_PD, OPT_IA_PREFIX = 25, 26
DUID_LL, HW_TYPE_ETHERNET = 3, 1
INFINITY = 0xFFFFFFFF
MAX_DUID_LEN = 130          # RFC 8415 §11: type + up to 128 bytes
HOP_LIMIT = 255
ALL_SERVERS = bytes.fromhex("ff020000000000000000000000010002")
ALL_SERVERS_MAC = bytes.fromhex("333300010002")

_OPT = struct.Struct("!HH")
_IA = struct.Struct("!III")             # IAID, T1, T2
_PREFIX = struct.Struct("!IIB16s")      # preferred, valid, length, prefix


def option(code: int, body: bytes) -> bytes:
    return _OPT.pack(code, len(body)) + body


def options(data: bytes) -> list[tuple[int, bytes]] | None:
    """(code, body) of each option of 'data', None if one runs past it."""
    out, ofs = [], 0
    while ofs < len(data):
        if len(data) - ofs < 4:
            return None
        code, length = _OPT.unpack_from(data, ofs)
        end = ofs + 4 + length
        if end > len(data):
            return None
        out.append((code, data[ofs + 4:end]))
        ofs = end
    return out


def client_id(mac: bytes) -> bytes:
    """Client Identifier: DUID-LL of 'mac'."""
    return option(OPT_CLIENT_ID, struct.pack("!HH", DUID_LL,
                                             HW_TYPE_ETHERNET) + mac)


def ia_pd(aid: int, prefix: bytes | None, plen: int) -> bytes:
    """IA_PD with T1 = T2 = infinity, and the prefix if any."""
    body = _IA.pack(aid, INFINITY, INFINITY)
    if prefix is not None:
        body += option(OPT_IA_PREFIX, _PREFIX.pack(INFINITY, INFINITY,
                                                   plen & 0xFF, prefix))
    return option(OPT_IA_PD, body)


def client_message(msg_type: int, cmac: bytes, server_id: bytes | None,
                   aid: int, prefix: bytes | None, plen: int) -> bytes:
    """SOLICIT, RENEW or REBIND (compose_prefixd_packet)."""
    out = bytes((msg_type, 0, 0, 0)) + client_id(cmac)
    if server_id is not None:
        out += option(OPT_SERVER_ID, server_id)
    return out + ia_pd(aid, prefix, plen)


def udp6_frame(eth_src: bytes, eth_dst: bytes, ip_src: bytes, ip_dst: bytes,
               payload: bytes) -> bytes:
    """Client to server over UDP 546 -> 547, with its checksum."""
    length = 8 + len(payload)
    udp = bytearray(struct.pack("!HHHH", CLIENT_PORT, SERVER_PORT, length, 0)
                    + payload)
    struct.pack_into("!H", udp, 6, csum(udp, pseudo_sum_ipv6(
        ip_src, ip_dst, IPPROTO_UDP, length)) or 0xFFFF)
    return compose_ipv6(eth_src, eth_dst, ip_src, ip_dst, IPPROTO_UDP,
                        HOP_LIMIT, bytes(udp))


def request_from_advertise(data: bytes) -> tuple[int, bytes] | None:
    """The IAID of an ADVERTISE's IA_PD and the REQUEST answering it
    (pinctrl_parse_dhcpv6_advt); None when the ADVERTISE is malformed,
    has T1 > T2 > 0, a prefix whose preferred lifetime exceeds its valid
    one, or a non-zero status in its IA_PD.  'data' is the UDP payload."""
    opts = options(data[4:]) if len(data) >= 4 else None
    if opts is None:
        return None
    aid, out = 0, bytearray((REQUEST, 0, 0, 0))
    for code, body in opts:
        if code in (OPT_CLIENT_ID, OPT_SERVER_ID):
            out += option(code, body)
        elif code == OPT_IA_PD:
            if len(body) < _IA.size:
                return None
            aid, t1, t2 = _IA.unpack_from(body)
            if t1 > t2 > 0:
                return None
            subs = options(body[_IA.size:])
            if subs is None:
                return None
            kept = bytearray()
            for scode, sbody in subs:
                if scode == OPT_IA_PREFIX:
                    if len(sbody) < _PREFIX.size:
                        return None
                    plife, vlife, _, _ = _PREFIX.unpack_from(sbody)
                    if plife > vlife:
                        return None
                    kept += option(scode, sbody)
                elif scode == OPT_STATUS_CODE and len(sbody) >= 2 and \
                        sbody[:2] != b"\0\0":
                    return None
            out += option(OPT_IA_PD, body[:_IA.size] + bytes(kept))
    return aid, bytes(out)


class Lease(NamedTuple):
    """What a REPLY delegates (pinctrl_parse_dhcpv6_reply)."""
    aid: int
    t1: int                 # seconds
    t2: int
    plife: int
    vlife: int
    plen: int
    prefix: bytes
    server_id: bytes        # DUID, at most 130 bytes


def parse_reply(data: bytes) -> Lease | None:
    """The delegated prefix of a REPLY's IA_PD, or None: no IA Prefix,
    T1 > T2 > 0, preferred > valid lifetime, a non-zero status code, or
    malformed options.  The last IA_PD and IA Prefix win, as in 23.03."""
    opts = options(data[4:]) if len(data) >= 4 else None
    if opts is None:
        return None
    lease: Lease | None = None
    server_id = b""
    for code, body in opts:
        if code == OPT_SERVER_ID:
            server_id = body[:MAX_DUID_LEN]
        elif code == OPT_IA_PD:
            if len(body) < _IA.size:
                return None
            aid, t1, t2 = _IA.unpack_from(body)
            if t1 > t2 > 0:
                continue
            subs = options(body[_IA.size:])
            if subs is None:
                return None
            for scode, sbody in subs:
                if scode == OPT_IA_PREFIX:
                    if len(sbody) < _PREFIX.size:
                        return None
                    plife, vlife, plen, prefix = _PREFIX.unpack_from(sbody)
                    if plife > vlife:
                        break
                    lease = Lease(aid, t1, t2, plife, vlife, plen, prefix,
                                  b"")
                elif scode == OPT_STATUS_CODE and len(sbody) >= 2 and \
                        sbody[:2] != b"\0\0":
                    lease = None
    return lease._replace(server_id=server_id) if lease else None
