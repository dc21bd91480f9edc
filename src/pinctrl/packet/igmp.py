"""IGMP and MLD: what multicast snooping reads from a report or a query,
and the general queries the querier sends.  Pure code, any thread (in
practice the pinctrl_handler thread parses, the main thread builds the
queries once per configuration).

parse() follows OVN 23.03's pinctrl_ip_mcast_handle_igmp() / _mld() and
the OVS 3.1 lib/mcast-snooping.c functions they call
(mcast_snooping_add_group4/_leave_group4/_add_report/_add_mld/
_add_mrouter): it turns a frame into a McastMessage, the group joins and
leaves in packet order, whether the sending port leads to a multicast
router (it sent a query), and how 23.03 re-injects the frame (reports to
the multicast routers, queries to the whole L2 domain).  What 23.03 does
on malformed input is kept where it is harmless:

* an IGMPv3 record of unknown type ends the walk (OVS `continue`s without
  advancing, so every later iteration re-reads the same record);
* a record's aux data length is counted in bytes, as OVS does (RFC 3376
  says 32-bit words; hosts send 0);
* an INCLUDE / TO_INCLUDE record without sources is a leave.

Deviations (docs/opcodes.md, IGMP): the IGMP / MLD header and records are
read within the IP payload, not from Ethernet padding; an MLDv1 report or
done too short for its 16-byte group raises McastError("short_mld") where
23.03.1 hands OVS a NULL group and ovn-controller segfaults (a 75-byte
frame from any VM on a snooping switch); a group address that is not
multicast (IPv4 224/4, IPv6 ff00::/8) is left out and counted
(McastMessage.n_bad_groups) where 23.03 learns it and writes it to SB
IGMP_Group.

Query frames: build_igmp_query() / build_mld_query() are
ip_mcast_querier_send_igmp() / _mld(): IGMPv3 general query to 224.0.0.1
(01:00:5e:00:00:01), TTL 1, no IP options; MLDv2 general query to ff02::1
behind a hop-by-hop header carrying the router alert, hop limit 1, sent to
Ethernet 33:33:00:00:00:00 (23.03's query_eth_v6_dst, not ...:00:01).
"""

from __future__ import annotations

import struct
from typing import NamedTuple

from pinctrl.packet.flow import (
    ETH_TYPE_IP,
    ETH_TYPE_IPV6,
    IPPROTO_HOPOPTS,
    IPPROTO_ICMPV6,
    IPPROTO_IGMP,
    extract,
)
from pinctrl.packet.headers import (
    compose_ipv4,
    compose_ipv6,
    csum,
    pseudo_sum_ipv6,
)
from pinctrl.packet.nd_options import icmp6_set_csum
from pinctrl.shared.records import IPV4_MAPPED_PREFIX

# IGMP message types (lib/packets.h).
IGMP_QUERY = 0x11
IGMPV1_REPORT = 0x12
IGMPV2_REPORT = 0x16
IGMP_LEAVE = 0x17
IGMPV3_REPORT = 0x22
# MLD message types (ICMPv6).
MLD_QUERY = 130
MLD_REPORT = 131
MLD_DONE = 132
MLD2_REPORT = 143

IGMP_HEADER_LEN = 8             # also IGMPV3_HEADER_LEN and MLD_HEADER_LEN
MLD_GROUP_OFS = 8               # the MLDv1 group, after the 8-byte header
MLD_V1_LEN = MLD_GROUP_OFS + 16
# IGMPv3 / MLDv2 record types MODE_IS_INCLUDE (1) .. BLOCK_OLD_SOURCES (6).
RECORD_IS_INCLUDE = 1
RECORD_TO_INCLUDE = 3
RECORD_MAX = 6

JOIN = 1
LEAVE = 2
# How 23.03 re-injects the frame after snooping it.
FORWARD_NONE = 0
FORWARD_REPORT = 1              # to the multicast routers (reg15 0x8002)
FORWARD_QUERY = 2               # to the switch's L2 domain (reg15 0x8004)

IGMP_ALL_HOSTS = bytes([224, 0, 0, 1])
IGMP_ALL_HOSTS_MAC = bytes.fromhex("01005e000001")
MLD_ALL_HOSTS = bytes.fromhex("ff020000000000000000000000000001")
MLD_QUERY_MAC = bytes.fromhex("333300000000")
# Hop-by-hop header in front of the MLD query: next header ICMPv6, length
# 0, the router alert option (type 5, value 0 = MLD) and two Pad1 bytes
# (packet_set_ipv6_ext_header() with mld_router_alert).
MLD_HOP_BY_HOP = bytes((IPPROTO_ICMPV6, 0, 5, 2, 0, 0, 0, 0))
QUERY_TTL = 1

_U16 = struct.Struct("!H")
_RECORD = struct.Struct("!BBH")         # type, aux data length, n sources
_IGMPV3_QUERY = struct.Struct("!BBH4sBBH")
_MLD2_QUERY = struct.Struct("!BBHHH16sBBH")


class McastError(ValueError):
    """A frame snooping cannot use; 'reason' names the check that failed
    (not_ip, not_igmp, not_mld, bad_csum, short_mld)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class McastMessage(NamedTuple):
    """What one IGMP / MLD frame tells the snooping table."""
    ops: tuple[tuple[int, bytes], ...]  # (JOIN or LEAVE, group as 16
                                        # bytes, IPv4-mapped for IGMP)
    mrouter: bool           # a query: the sending port leads to a router
    forward: int            # FORWARD_NONE / _REPORT / _QUERY
    n_bad_groups: int = 0   # non-multicast groups left out


def is_multicast(group16: bytes) -> bool:
    """IPv4-mapped 224.0.0.0/4 or IPv6 ff00::/8."""
    if group16.startswith(IPV4_MAPPED_PREFIX):
        return group16[12] & 0xF0 == 0xE0
    return group16[0] == 0xFF


def _op(record_type: int, n_sources: int) -> int:
    """An INCLUDE / TO_INCLUDE record with no sources means "leave"."""
    if n_sources == 0 and record_type in (RECORD_IS_INCLUDE,
                                          RECORD_TO_INCLUDE):
        return LEAVE
    return JOIN


def _records(l4: bytes, addr_len: int) -> list[tuple[int, bytes]]:
    """The group records of an IGMPv3 (addr_len 4) or MLDv2 (16) report,
    as mcast_snooping_add_report() / _add_mld() walk them: at most the
    header's count, each record within the payload, its sources and aux
    data stepped over."""
    ops = []
    rec_len = 4 + addr_len
    ofs = IGMP_HEADER_LEN
    for _ in range(_U16.unpack_from(l4, 6)[0]):
        if ofs + rec_len > len(l4):
            break
        rtype, aux_len, nsrcs = _RECORD.unpack_from(l4, ofs)
        if RECORD_IS_INCLUDE <= rtype <= RECORD_MAX:
            group = bytes(l4[ofs + 4:ofs + rec_len])
            ops.append((_op(rtype, nsrcs), group if addr_len == 16
                        else IPV4_MAPPED_PREFIX + group))
        elif addr_len == 4:
            # IGMPv3: OVS `continue`s without stepping over an unknown
            # record, so every later iteration reads it again.
            break
        ofs += rec_len + addr_len * nsrcs + aux_len
    return ops


def _igmp(l4: bytes) -> McastMessage:
    if len(l4) < IGMP_HEADER_LEN or csum(l4) != 0:
        raise McastError("bad_csum")
    mtype = l4[0]
    group = IPV4_MAPPED_PREFIX + bytes(l4[4:8])
    ops: list[tuple[int, bytes]] = []
    if mtype in (IGMPV1_REPORT, IGMPV2_REPORT):
        ops = [(JOIN, group)]
    elif mtype == IGMP_LEAVE:
        ops = [(LEAVE, group)]
    elif mtype == IGMPV3_REPORT:
        ops = _records(l4, 4)
    forward = (FORWARD_REPORT if mtype in (IGMPV1_REPORT, IGMPV2_REPORT,
                                           IGMPV3_REPORT, IGMP_LEAVE)
               else FORWARD_QUERY if mtype == IGMP_QUERY else FORWARD_NONE)
    return _message(ops, mtype == IGMP_QUERY, forward)


def _mld(l4: bytes, src: bytes, dst: bytes) -> McastMessage:
    if len(l4) < IGMP_HEADER_LEN or csum(l4, pseudo_sum_ipv6(
            src, dst, IPPROTO_ICMPV6, len(l4))) != 0:
        raise McastError("bad_csum")
    mtype = l4[0]
    ops: list[tuple[int, bytes]] = []
    if mtype in (MLD_REPORT, MLD_DONE):
        if len(l4) < MLD_V1_LEN:
            # 23.03.1 passes a NULL group to OVS here and crashes.
            raise McastError("short_mld")
        ops = [(JOIN if mtype == MLD_REPORT else LEAVE,
                bytes(l4[MLD_GROUP_OFS:MLD_V1_LEN]))]
    elif mtype == MLD2_REPORT:
        ops = _records(l4, 16)
    elif mtype != MLD_QUERY:
        raise McastError("not_mld")
    forward = FORWARD_QUERY if mtype == MLD_QUERY else FORWARD_REPORT
    # A query from :: (a snooping switch) does not make a router port.
    return _message(ops, mtype == MLD_QUERY and src != bytes(16), forward)


def _message(ops: list[tuple[int, bytes]], mrouter: bool,
             forward: int) -> McastMessage:
    good = tuple(op for op in ops if is_multicast(op[1]))
    return McastMessage(good, mrouter, forward, len(ops) - len(good))


def parse(frame: bytes) -> McastMessage:
    """The snooping content of an IGMP (IPv4) or MLD (ICMPv6) frame, as
    OVS's flow_extract() locates its headers (VLAN tags, IPv4 options,
    IPv6 extension headers).  The message checksum must be right.  Raises
    McastError; never anything else."""
    f = extract(frame)
    if f.dl_type not in (ETH_TYPE_IP, ETH_TYPE_IPV6):
        raise McastError("not_ip")
    if f.l4_ofs is None or not f.l4_ok:
        raise McastError("not_igmp" if f.dl_type == ETH_TYPE_IP
                         else "not_mld")
    l4 = bytes(frame[f.l4_ofs:f.l4_end])
    if f.dl_type == ETH_TYPE_IP:
        if f.nw_proto != IPPROTO_IGMP:
            raise McastError("not_igmp")
        return _igmp(l4)
    if f.nw_proto != IPPROTO_ICMPV6:
        raise McastError("not_mld")
    return _mld(l4, f.ipv6_src, f.ipv6_dst)


# --- the querier's general queries -------------------------------------------

def build_igmp_query(eth_src: bytes, ip_src: bytes,
                     max_resp_s: int) -> bytes:
    """Pure.  IGMPv3 general query from 'eth_src' / 'ip_src' (4 bytes):
    max response code and QQIC both max_resp_s * 10 truncated to 8 bits,
    as 23.03's uint8_t, S flag and QRV 0, no sources."""
    code = (max_resp_s * 10) & 0xFF
    l4 = bytearray(_IGMPV3_QUERY.pack(IGMP_QUERY, code, 0, bytes(4), 0,
                                      code, 0))
    _U16.pack_into(l4, 2, csum(l4))
    return compose_ipv4(eth_src, IGMP_ALL_HOSTS_MAC, ip_src, IGMP_ALL_HOSTS,
                        IPPROTO_IGMP, QUERY_TTL, bytes(l4))


def build_mld_query(eth_src: bytes, ip6_src: bytes,
                    max_resp_s: int) -> bytes:
    """Pure.  MLDv2 general query from 'eth_src' / 'ip6_src' (16 bytes):
    maximum response code max_resp_s * 1000 ms truncated to 16 bits, QQIC
    max_resp_s truncated to 8 bits (23.03's types), no sources."""
    mld = bytearray(_MLD2_QUERY.pack(MLD_QUERY, 0, 0,
                                     (max_resp_s * 1000) & 0xFFFF, 0,
                                     bytes(16), 0, max_resp_s & 0xFF, 0))
    icmp6_set_csum(mld, 0, ip6_src, MLD_ALL_HOSTS)
    return compose_ipv6(eth_src, MLD_QUERY_MAC, ip6_src, MLD_ALL_HOSTS,
                        IPPROTO_HOPOPTS, QUERY_TTL,
                        MLD_HOP_BY_HOP + bytes(mld))
