"""Neighbour resolution and answers: arp (ARP, 0), nd_ns (ND_NS, 9),
nd_na (ND_NA, 3) and nd_na_router (ND_NA_ROUTER, 12).

controller/pinctrl.c pinctrl_handle_arp(), pinctrl_handle_nd_na(),
pinctrl_handle_nd_ns() and, for the buffering,
pinctrl_handle_buffered_packets() and buffered_push_packet().  All four
build a new frame and send it with reload_metadata + the nested actions
of the userdata (actions/nested.py); the nested actions then set the
addresses OVN's flow wants.

* arp: a 42-byte ARP request from the punted IPv4 packet: Ethernet and
  sender addresses = the packet's eth.src/ip4.src, Ethernet destination =
  the packet's eth.dst (all-zero at that stage), target = ip4.dst, the
  first VLAN tag re-pushed.  The packet itself is buffered until the next
  hop resolves (handler/buffered_packets.py).
* nd_ns: an 86-byte Neighbour Solicitation from the punted IPv6 packet:
  IPv6 source = the EUI-64 link-local address of eth.src, destination =
  the solicited-node group of the packet's ip6.dst (the final destination,
  not the next hop: the nested actions set nd.target), Ethernet
  destination = 33:33 + its last 4 bytes, target = ip6.dst, a Source
  Link-Layer Address option; no VLAN re-push.  The packet is buffered.
* nd_na / nd_na_router: an 86-byte Neighbour Advertisement answering an
  NS (or NA): Ethernet addresses swapped, IPv6 source = the ND target,
  destination = the packet's IPv6 source, flags S|O (and R for
  nd_na_router), a Target Link-Layer Address option = the packet's
  eth.dst; no VLAN re-push.

All ND frames have hop limit 255, traffic class and flow label 0.  arp and
nd_ns buffer the frame before checking the nested actions, as 23.03 does.

Deviations (docs/opcodes.md): arp/nd_ns on a frame whose IPv4/IPv6
header fails OVS's sanity checks (truncated, bad lengths) send and buffer
nothing (23.03 sends a request for 0.0.0.0 / ::); nd_na/nd_na_router on an
ND message too short to hold its target send nothing (23.03 answers for
target ::).
"""

from __future__ import annotations

import struct
from collections.abc import Callable

import ovs.vlog

from pinctrl.actions import action
from pinctrl.actions.env import NO_ENV, BufferKey, HandlerEnv
from pinctrl.actions.mac_learning import xxreg0
from pinctrl.actions.nested import l4_span, nested_packet_out
from pinctrl.actions.replies import NoReply, PacketOut, Reporter
from pinctrl.openflow.ofactions import reload_metadata, resubmit, set_pkt_mark
from pinctrl.openflow.oxm import Metadata
from pinctrl.openflow.packet_in import PacketIn
from pinctrl.packet.flow import (
    ETH_TYPE_ARP,
    ETH_TYPE_IP,
    ETH_TYPE_IPV6,
    IPPROTO_ICMPV6,
    Flow,
    extract,
)
from pinctrl.packet.headers import (
    compose_ipv6,
    csum,
    ipv4_parse,
    ipv6_parse,
    pseudo_sum_ipv6,
    vlan_push,
)
from pinctrl.shared.records import ipv4_mapped

vlog = ovs.vlog.Vlog("pinctrl")

OFTABLE_OUTPUT_INIT = 37        # controller/lflow.h: where re-injected frames go
reporter = Reporter(vlog)

ARP_HTYPE_ETH = 1
ARP_OP_REQUEST = 1
ND_NEIGHBOR_SOLICIT = 135
ND_NEIGHBOR_ADVERT = 136
ND_OPT_SOURCE_LINKADDR = 1
ND_OPT_TARGET_LINKADDR = 2
ND_MSG_LEN = 24                 # ICMPv6 header, flags word, target
ND_HOP_LIMIT = 255
ND_RSO_ROUTER = 0x80000000
ND_RSO_SOLICITED = 0x40000000
ND_RSO_OVERRIDE = 0x20000000

_ARP = struct.Struct("!HHBBH6s4s6s4s")
_ND = struct.Struct("!BBHI16sBB6s")      # + one link-layer address option
_U16 = struct.Struct("!H")
_ZERO_MAC = bytes(6)

C_ARP = "pinctrl_arp_drop_"
C_NS = "pinctrl_nd_ns_drop_"
C_NA = "pinctrl_nd_na_drop_"


# --- pure builders ----------------------------------------------------------------

def in6_lla(mac: bytes) -> bytes:
    """The EUI-64 link-local address of 'mac' (OVS in6_generate_lla):
    fe80::, universal/local bit flipped, ff:fe in the middle."""
    return (b"\xfe\x80" + bytes(6) + bytes((mac[0] ^ 0x02,)) + mac[1:3]
            + b"\xff\xfe" + mac[3:6])


def solicited_node(ip6: bytes) -> bytes:
    """ff02::1:ffXX:XXXX, the solicited-node group of 'ip6' (RFC 4291)."""
    return b"\xff\x02" + bytes(9) + b"\x01\xff" + ip6[13:16]


def ipv6_multicast_mac(ip6: bytes) -> bytes:
    """33:33 + the last 4 bytes of a multicast IPv6 address (RFC 2464)."""
    return b"\x33\x33" + ip6[12:16]


def build_arp_request(frame: bytes, fl: Flow) -> bytes:
    """Pure.  The ARP request 23.03's pinctrl_handle_arp composes for the
    IPv4 packet 'frame' ('fl' = extract(frame)).  Raises NoReply."""
    if fl.dl_type != ETH_TYPE_IP or fl.l3_ofs is None:
        raise NoReply(C_ARP + "not_ip", "ARP action on non-IP packet "
                      f"(Ethertype {fl.dl_type:x})")
    if ipv4_parse(frame, fl.l3_ofs) is None:
        raise NoReply(C_ARP + "bad_ip", "ARP action on malformed IP packet")
    out = (fl.dl_dst + fl.dl_src + _U16.pack(ETH_TYPE_ARP)
           + _ARP.pack(ARP_HTYPE_ETH, ETH_TYPE_IP, 6, 4, ARP_OP_REQUEST,
                       fl.dl_src, fl.nw_src, _ZERO_MAC, fl.nw_dst))
    if fl.vlan_tcis:
        out = vlan_push(out, fl.vlan_tci)
    return out


def _nd_frame(eth_src: bytes, eth_dst: bytes, src: bytes, dst: bytes,
              icmp_type: int, flags: int, target: bytes, opt_type: int
              ) -> bytes:
    """An NS/NA with one link-layer address option carrying 'eth_src', as
    OVS's compose_nd_ns()/compose_nd_na()."""
    icmp = bytearray(_ND.pack(icmp_type, 0, 0, flags, target, opt_type, 1,
                              eth_src))
    _U16.pack_into(icmp, 2, csum(icmp, pseudo_sum_ipv6(
        src, dst, IPPROTO_ICMPV6, len(icmp))))
    return compose_ipv6(eth_src, eth_dst, src, dst, IPPROTO_ICMPV6,
                        ND_HOP_LIMIT, bytes(icmp))


def build_nd_ns(frame: bytes, fl: Flow) -> bytes:
    """Pure.  The Neighbour Solicitation 23.03's pinctrl_handle_nd_ns
    composes for the IPv6 packet 'frame'.  Raises NoReply."""
    if fl.dl_type != ETH_TYPE_IPV6 or fl.l3_ofs is None:
        raise NoReply(C_NS + "not_ipv6", "NS action on non-IPv6 packet")
    if ipv6_parse(frame, fl.l3_ofs) is None:
        raise NoReply(C_NS + "bad_ipv6", "NS action on malformed IPv6 packet")
    group = solicited_node(fl.ipv6_dst)
    return _nd_frame(fl.dl_src, ipv6_multicast_mac(group), in6_lla(fl.dl_src),
                     group, ND_NEIGHBOR_SOLICIT, 0, fl.ipv6_dst,
                     ND_OPT_SOURCE_LINKADDR)


def build_nd_na(frame: bytes, fl: Flow, router: bool) -> bytes:
    """Pure.  The Neighbour Advertisement 23.03's pinctrl_handle_nd_na
    composes answering the ND message 'frame'.  Raises NoReply."""
    span = l4_span(fl)
    if not (fl.dl_type == ETH_TYPE_IPV6 and fl.nw_proto == IPPROTO_ICMPV6
            and span is not None and fl.tp_dst == 0
            and fl.tp_src in (ND_NEIGHBOR_SOLICIT, ND_NEIGHBOR_ADVERT)):
        raise NoReply(C_NA + "not_nd", "NA action on non-ND packet")
    if span.end - span.l4 < ND_MSG_LEN:
        raise NoReply(C_NA + "short_nd", "NA action on truncated ND packet")
    flags = ND_RSO_SOLICITED | ND_RSO_OVERRIDE
    if router:
        flags |= ND_RSO_ROUTER
    return _nd_frame(fl.dl_dst, fl.dl_src, fl.nd_target, fl.ipv6_src,
                     ND_NEIGHBOR_ADVERT, flags, fl.nd_target,
                     ND_OPT_TARGET_LINKADDR)


def buffer_key(pin: PacketIn, ipv6: bool) -> BufferKey:
    """The next hop the punted packet waits for: (metadata, reg15, reg0
    IPv4-mapped or xxreg0), as pinctrl_handle_buffered_packets."""
    md = pin.metadata
    ip = xxreg0(pin) if ipv6 else ipv4_mapped(md.reg(0))
    return BufferKey(md.datapath, md.reg(15), ip)


# --- handlers (pinctrl_handler thread) -----------------------------------------

def reinject_actions(md: Metadata) -> bytes:
    """Pure.  The actions 23.03 stores with a buffered frame
    (buffered_push_packet): reload_metadata, pkt_mark (always, 0 when the
    packet-in had none), resubmit(CONTROLLER, OFTABLE_OUTPUT_INIT)."""
    return (reload_metadata(md) + set_pkt_mark(md.pkt_mark)
            + resubmit(OFTABLE_OUTPUT_INIT))


def _resolve(pin: PacketIn, env: HandlerEnv, now: int,
             build: Callable[[bytes, Flow], bytes],
             ipv6: bool) -> PacketOut | None:
    """arp / nd_ns: build the request, buffer the packet, wrap the
    request with the nested actions."""
    frame = pin.packet
    try:
        request = build(frame, extract(frame))
        bp = env.buffered_packets
        if bp is not None:
            bp.push(buffer_key(pin, ipv6), frame,
                    reinject_actions(pin.metadata), now)
        return nested_packet_out(pin, request)
    except NoReply as e:
        reporter.report(e)
        return None


def _advertise(pin: PacketIn, router: bool) -> PacketOut | None:
    frame = pin.packet
    try:
        return nested_packet_out(pin, build_nd_na(frame, extract(frame),
                                                  router))
    except NoReply as e:
        reporter.report(e)
        return None


@action(0, "arp")
def arp(pin: PacketIn, env: HandlerEnv = NO_ENV,
        now: int = 0) -> PacketOut | None:
    """arp { ... }: ARP request for the next hop; the packet is buffered."""
    return _resolve(pin, env, now, build_arp_request, ipv6=False)


@action(9, "nd_ns")
def nd_ns(pin: PacketIn, env: HandlerEnv = NO_ENV,
          now: int = 0) -> PacketOut | None:
    """nd_ns { ... }: Neighbour Solicitation; the packet is buffered."""
    return _resolve(pin, env, now, build_nd_ns, ipv6=True)


@action(3, "nd_na")
def nd_na(pin: PacketIn, env: HandlerEnv = NO_ENV,
          now: int = 0) -> PacketOut | None:
    """nd_na { ... }: Neighbour Advertisement (S|O)."""
    return _advertise(pin, router=False)


@action(12, "nd_na_router")
def nd_na_router(pin: PacketIn, env: HandlerEnv = NO_ENV,
                 now: int = 0) -> PacketOut | None:
    """nd_na_router { ... }: Neighbour Advertisement (R|S|O)."""
    return _advertise(pin, router=True)
