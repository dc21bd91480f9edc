"""handle_dhcpv6_reply (opcode 19) and the DHCPv6 prefix-delegation client
state machine, as OVN 23.03 does them (controller/pinctrl.c
pinctrl_handle_dhcp6_server(), pinctrl_parse_dhcpv6_advt(),
pinctrl_parse_dhcpv6_reply(), ipv6_prefixd_send(),
ipv6_prefixd_should_inject(), fill_ipv6_prefix_state()).

Two layers:
* pure: PdClient, one downstream port's client (state, IAID, prefix,
  server, timers; time and randomness passed in);
* handle_dhcpv6_reply(), the registered handler (pinctrl_handler thread):
  an ADVERTISE is answered with a REQUEST (packet-out into the router
  port the ADVERTISE came through: metadata, reg15 = its reg14,
  resubmit(CONTROLLER, 37)); a REPLY delegating a prefix completes the
  client, and handler/pd_job.py hands "<iaid>:<prefix>/<plen>" to the main
  thread for Port_Binding options:ipv6_ra_pd_list.  env.prefixd
  (handler/pd_job.py) owns the clients.

The client (states as 23.03): SOLICIT every 0-3 s (multicast, a new
random IAID each time while no prefix is known); ADVERTISE -> REQUEST;
REPLY -> done, the prefix written; after T1 RENEW (unicast to the server,
with its Server Identifier), after T2 REBIND (multicast, no Server
Identifier), after the valid lifetime SOLICIT again, keeping the prefix
as a hint.  A message is matched to a client by destination address, MAC
and IAID.

Differences (docs/compat.md): the ADVERTISE/REPLY must also arrive
through the gateway port (23.03 takes them on any router address); while
waiting for the REPLY the client keeps its IAID (23.03 drew a new one with
every SOLICIT it went on sending, so a REPLY arriving after one was
ignored); IAIDs are drawn from 10000-65535 (23.03: 0-65535), because
23.03's northd copies "<iaid>:<prefix>" verbatim into ipv6_ra_prefixes,
where an IAID of at most four digits parses as a bogus IPv6 prefix that
periodic RAs then announce (README of the recording); the prefix is
written as soon as the REPLY is read (23.03 waits for the main thread
and meanwhile sends one more SOLICIT).
"""

from __future__ import annotations

from collections.abc import Callable

import ovs.vlog

from pinctrl.actions import action
from pinctrl.actions.env import NO_ENV, HandlerEnv
from pinctrl.actions.replies import NoReply, PacketOut, Reporter
from pinctrl.openflow.ofactions import resubmit, set_metadata, set_reg
from pinctrl.openflow.packet_in import PacketIn
from pinctrl.packet import dhcpv6_pd as pd
from pinctrl.packet.flow import ETH_TYPE_IPV6, IPPROTO_UDP, Flow, extract, fmt_ip6
from pinctrl.packet.headers import vlan_push
from pinctrl.shared.records import PdConfig

vlog = ovs.vlog.Vlog("pinctrl")
reporter = Reporter(vlog, 20, 40, default_site="prefixd")

SOLICIT, REQUEST, DONE, RENEW, REBIND = "solicit", "request", "done", \
    "renew", "rebind"
PREFIXD_TIMEOUT = 3000          # ms: IPV6_PREFIXD_TIMEOUT
AID_MIN, AID_MAX = 10000, 65536
MFF_LOG_OUTPORT = 15
OFTABLE_OUTPUT_INIT = 37
C_DROP = "pinctrl_prefixd_drop_"


def pd_key_text(aid: int, prefix: bytes, plen: int) -> str:
    """options:ipv6_ra_pd_list as 23.03 writes it ("%d:%s/%d")."""
    return f"{aid}:{fmt_ip6(prefix)}/{plen}"


class PdClient:
    """One downstream port's prefix-delegation client (23.03's struct
    ipv6_prefixd_state).  Pure; owned by the pinctrl_handler thread."""

    __slots__ = ("cfg", "state", "aid", "prefix", "plen", "server_addr",
                 "server_mac", "server_id", "t1", "t2", "vlife",
                 "last_complete", "next_announce")

    def __init__(self, cfg: PdConfig, now: int,
                 rand: Callable[[int], int]) -> None:
        self.cfg = cfg
        self.state = SOLICIT
        # A prefix already in SB is the hint of the first SOLICIT.
        self.aid, self.prefix, self.plen = cfg.aid, cfg.prefix, cfg.plen
        self.server_addr = pd.ALL_SERVERS
        self.server_mac = pd.ALL_SERVERS_MAC
        self.server_id: bytes | None = None
        self.t1 = self.t2 = self.vlife = 0     # ms
        self.last_complete = 0
        self.next_announce = now + rand(PREFIXD_TIMEOUT)

    def tick(self, now: int) -> None:
        """ipv6_prefixd_should_inject()'s transitions: DONE -> RENEW after
        T1, RENEW -> REBIND after T2 (the server forgotten), REBIND ->
        SOLICIT after the valid lifetime."""
        since = now - self.last_complete
        if self.state == DONE and since > self.t1:
            self.state = RENEW
        elif self.state == RENEW and since > self.t2:
            self.state = REBIND
            self.server_id = None
            self.server_addr, self.server_mac = pd.ALL_SERVERS, \
                pd.ALL_SERVERS_MAC
        elif self.state == REBIND and since > self.vlife:
            self.state = SOLICIT

    def due(self, now: int, rand: Callable[[int], int]) -> bytes | None:
        """ipv6_prefixd_send(): the frame to send now, if any; the next
        one is 0-3 s later (a done client sends nothing)."""
        self.tick(now)
        if now < self.next_announce:
            return None
        self.next_announce = now + rand(PREFIXD_TIMEOUT)
        if self.state == DONE:
            return None
        if self.state == SOLICIT and self.prefix is None:
            self.aid = AID_MIN + rand(AID_MAX - AID_MIN)
        msg = {RENEW: pd.RENEW, REBIND: pd.REBIND}.get(self.state, pd.SOLICIT)
        c = self.cfg
        payload = pd.client_message(msg, c.cmac, self.server_id, self.aid,
                                    self.prefix, self.plen)
        return pd.udp6_frame(c.ea, self.server_mac, c.ipv6_addr,
                             self.server_addr, payload)

    def matches(self, f: Flow, aid: int) -> bool:
        """pinctrl_find_prefixd_state(): addressed to us, this IAID."""
        return (f.ipv6_dst == self.cfg.ipv6_addr and f.dl_dst == self.cfg.ea
                and aid == self.aid)

    def advertised(self) -> None:
        """An ADVERTISE for our IAID was answered with a REQUEST."""
        self.state = REQUEST

    def replied(self, lease: pd.Lease, server_addr: bytes,
                server_mac: bytes, now: int) -> str:
        """A REPLY delegated 'lease': done, renewing after T1; returns the
        ipv6_ra_pd_list value to write."""
        self.state = DONE
        self.server_addr, self.server_mac = server_addr, server_mac
        self.server_id = lease.server_id or None
        self.prefix, self.plen = lease.prefix, lease.plen
        self.t1, self.t2 = lease.t1 * 1000, lease.t2 * 1000
        self.vlife = lease.vlife * 1000
        self.last_complete = now
        self.next_announce = now + self.t1
        return pd_key_text(self.aid, lease.prefix, lease.plen)


def request_actions(dp_key: int, port_key: int) -> bytes:
    """Pure.  metadata = dp_key, reg15 = port_key,
    resubmit(CONTROLLER, 37): out of the router port the ADVERTISE came
    in through."""
    return (set_metadata(dp_key) + set_reg(MFF_LOG_OUTPORT, port_key)
            + resubmit(OFTABLE_OUTPUT_INIT))


def udp_payload(pin: PacketIn) -> tuple[Flow, bytes]:
    """The flow and UDP payload of a DHCPv6 server message, or NoReply."""
    f = extract(pin.packet)
    if f.dl_type != ETH_TYPE_IPV6 or f.nw_proto != IPPROTO_UDP \
            or not f.l4_ok or f.l4_ofs is None:
        raise NoReply(C_DROP + "not_udp6")
    udp_len = int.from_bytes(pin.packet[f.l4_ofs + 4:f.l4_ofs + 6], "big")
    end = min(f.l4_ofs + udp_len, f.l4_end)
    data = pin.packet[f.l4_ofs + 8:end]
    if len(data) < 4:
        raise NoReply(C_DROP + "short")
    return f, data


@action(19, "handle_dhcpv6_reply")
def handle_dhcpv6_reply(pin: PacketIn, env: HandlerEnv = NO_ENV,
                        now: int = 0) -> PacketOut | None:
    """pinctrl_handle_dhcp6_server() (pinctrl_handler thread)."""
    try:
        f, data = udp_payload(pin)
        clients = env.prefixd
        md = pin.metadata
        if data[0] == pd.ADVERTISE:
            parsed = pd.request_from_advertise(data)
            if parsed is None:
                raise NoReply(C_DROP + "bad_advertise")
            aid, request = parsed
            if clients is None or not clients.advertise(
                    md.datapath, md.reg(14), f, aid):
                raise NoReply(C_DROP + "no_client")
            frame = pd.udp6_frame(f.dl_dst, f.dl_src, f.ipv6_dst,
                                  f.ipv6_src, request)
            if f.vlan_tcis:
                frame = vlan_push(frame, f.vlan_tci)
            reporter.count("pinctrl_prefixd_request_sent")
            return PacketOut(frame, request_actions(md.datapath, md.reg(14)))
        if data[0] == pd.REPLY:
            lease = pd.parse_reply(data)
            if lease is None:
                raise NoReply(C_DROP + "bad_reply")
            if clients is None or not clients.reply(
                    md.datapath, md.reg(14), f, lease, now):
                raise NoReply(C_DROP + "no_client")
            reporter.count("pinctrl_prefixd_reply")
            return None
        raise NoReply(C_DROP + "msg_type")
    except NoReply as e:
        reporter.report(e)
        return None
