"""Plain immutable records that cross between the threads.

The main thread builds them (db/) and publishes them through SharedState;
the pinctrl_handler thread reads them (handler/, actions/).  They hold
bytes and ints only, never IDL rows, so a snapshot can be read without a
lock once its reference has been taken.  The handover records go the other
way: built by the handler, written to the Southbound DB by the main thread.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Any, NamedTuple

EMPTY_MAP: Mapping[Any, Any] = MappingProxyType({})


class DnsRecord(NamedTuple):
    """One SB DNS `records` value, pre-parsed by the main thread."""
    value: bytes                # UTF-8, as stored (PTR answers use it)
    ipv4: tuple[bytes, ...]     # 4-byte addresses, in value order
    ipv6: tuple[bytes, ...]     # 16-byte addresses, in value order
DnsCache = Mapping[int, Mapping[bytes, DnsRecord]]
IPV4_MAPPED_PREFIX = bytes(10) + b"\xff\xff"


class Learnt(NamedTuple):
    """A learnt neighbour waiting to be written to SB MAC_Binding."""
    mac: bytes
    commit_at: int      # msec; the main thread writes it from then on


# Keys of the handover tables (SharedState.put_*), handler -> main.
MacBindingKey = tuple[int, int, bytes]  # (dp key, port key, IP as 16 bytes)
FdbKey = tuple[int, bytes]              # (dp key, MAC bytes)
EventKey = tuple[str, str, str]         # (vip, protocol, load_balancer)
PortKey = tuple[int, int]               # (dp key, port key)


def ipv4_mapped(ip4: int) -> bytes:
    return IPV4_MAPPED_PREFIX + ip4.to_bytes(4, "big")


class GarpEntry(NamedTuple):
    """One announcement: 'ip' None means RARP.  Built by the main thread
    (db/garp_plan.py), immutable."""
    mac: bytes
    ip: bytes | None
    dp_key: int
    port_key: int


class RaEntry(NamedTuple):
    """One router port's periodic RA, built by the main thread."""
    min_interval: int       # seconds
    max_interval: int
    frame: bytes
    dp_key: int             # the peer (switch) datapath
    port_key: int           # the peer (switch) port


class BfdConfig(NamedTuple):
    """One BFD session this chassis runs: an SB BFD row whose logical port
    is resident here, pre-parsed by the main thread (db/bfd_plan.py) for
    the handler's BfdJob.  Addresses are 16 bytes (IPv4-mapped for IPv4);
    intervals are the SB columns, in milliseconds."""
    logical_port: str
    src_port: int           # UDP source port (SB src_port)
    src_mac: bytes          # the router port's MAC
    ip_src: bytes           # the router port's address
    ip_dst: bytes           # the peer (SB dst_ip)
    disc: int               # our discriminator (SB disc)
    min_tx: int
    min_rx: int
    mult: int               # SB detect_mult
    dp_key: int             # the router datapath
    port_key: int           # the router port (logical inport of the rx)
    admin_down: bool        # SB status is "admin_down"
    tunnel_ofports: frozenset[int]  # br-int tunnels: BFD from there is refused


def bfd_key(dst_ip: str, src_port: int) -> str:
    """How both threads name a BFD session: 23.03 matches an SB row to its
    session by (dst_ip, src_port)."""
    return f"{dst_ip} {src_port}"


class McastConfig(NamedTuple):
    """One local datapath's IP_Multicast row (23.03's struct
    ip_mcast_snoop_cfg), built by the main thread (db/mcast_plan.py) for
    the handler's McastJob: the snooping table's limits as configured (the
    job clamps them like OVS), the querier's two frames built once."""
    enabled: bool
    table_size: int             # groups (mcast_table_size)
    idle_time_s: int            # group aging (mcast_idle_timeout)
    query_interval_s: int
    seq_no: int                 # a change flushes the learnt groups
    igmp_query: bytes | None    # IGMPv3 general query; None: no v4 querier
    mld_query: bytes | None     # MLDv2 general query; None: no v6 querier


class McastGroups(NamedTuple):
    """A datapath's snooping table as the handler hands it to the main
    thread for SB IGMP_Group (immutable): group (16 bytes, IPv4-mapped
    for IGMP) -> port keys, and the ports that lead to a multicast
    router."""
    groups: Mapping[bytes, frozenset[int]]
    mrouters: frozenset[int]


class PdConfig(NamedTuple):
    """One downstream router port (options:ipv6_prefix=true) for which
    this chassis asks a prefix over a gateway port with
    options:ipv6_prefix_delegation=true (23.03 prepare_ipv6_prefixd()),
    built by the main thread (db/pd_plan.py) for the handler's PdJob."""
    ipv6_addr: bytes        # the gateway port's address (16 bytes)
    ea: bytes               # the gateway port's MAC
    cmac: bytes             # the downstream port's MAC (the client DUID)
    dp_key: int             # inject into: the gateway port's peer datapath
    port_key: int           # ... as its peer port
    up_dp_key: int          # where ADVERTISE/REPLY arrive: the router
    up_port_key: int        # ... through the gateway port
    aid: int                # from options:ipv6_ra_pd_list, else 0
    prefix: bytes | None    # from options:ipv6_ra_pd_list
    plen: int


# (dp key, port key, backend IP as 16 bytes, service port, "tcp" / "udp"):
# how both threads name a service monitor (23.03's svc_monitor hash key).
SvcKey = tuple[int, int, bytes, int, str]


class SvcMonitorConfig(NamedTuple):
    """One Service_Monitor row whose logical port is bound to this
    chassis, pre-parsed by the main thread (db/svc_monitor_plan.py) for
    the handler's SvcMonitorJob, which owns the probing state."""
    dp_key: int
    port_key: int           # the backend's logical port
    ip: bytes               # the backend, 16 bytes (IPv4-mapped)
    port: int               # the service port
    protocol: str           # "tcp" or "udp"
    mac: bytes              # the backend's MAC (its Port_Binding's)
    src_mac: bytes          # svc_monitor_mac
    src_ip: bytes           # 4 bytes (IPv4 backend) or 16
    interval_ms: int
    timeout_ms: int
    success_count: int
    failure_count: int

    @property
    def key(self) -> SvcKey:
        return (self.dp_key, self.port_key, self.ip, self.port,
                self.protocol)
