"""What an action handler may use besides its packet-in: HandlerEnv.

An action is called by the pinctrl_handler thread as

    handler(pin: PacketIn, env: HandlerEnv, now: int) -> reply(s) or None

with 'now' the ovs.timeval.msec() of the batch being dispatched.  These
Protocols are the whole of the handler's state an action can reach; the
concrete objects live in handler/ (dispatch.Env, buffered_packets) and
shared/ (SharedState), which actions never import.
"""

from __future__ import annotations

from typing import NamedTuple, Protocol, TypeVar

from pinctrl.packet.igmp import McastMessage
from pinctrl.actions.replies import PacketOut
from pinctrl.packet.bfd import BfdMsg
from pinctrl.packet.dhcpv6_pd import Lease
from pinctrl.packet.flow import Flow
from pinctrl.packet.svc_monitor import SvcReply
from pinctrl.shared.records import (
    DnsCache,
    EventKey,
    FdbKey,
    Learnt,
    MacBindingKey,
    PortKey,
)

K = TypeVar("K", contravariant=True)
V = TypeVar("V", contravariant=True)


class BufferKey(NamedTuple):
    """What a buffered frame waits for.  A plain (dp, port, ip) tuple
    compares and hashes the same, so the main thread may build keys as
    tuples (SharedState.resolved_neighbors)."""
    dp: int             # logical datapath tunnel key (metadata)
    port: int           # logical outport tunnel key (reg15)
    ip: bytes           # next hop, 16 bytes (IPv4-mapped for ARP)


class HandoverPut(Protocol[K, V]):
    """The handler's end of a shared.handover.Handover of K -> V."""

    def put(self, key: K, value: V) -> bool: ...


class SharedView(Protocol):
    """The part of shared.state.SharedState actions use: snapshots to read
    and handover tables to fill for the main thread."""
    # Read-only properties, not attributes: a protocol attribute would
    # have to match Handover's type exactly (mutable members are
    # invariant).

    @property
    def put_mac_bindings(self) -> HandoverPut[MacBindingKey, Learnt]: ...

    @property
    def put_fdbs(self) -> HandoverPut[FdbKey, int]: ...     # -> port key

    @property
    def controller_events(self) -> HandoverPut[EventKey, str]: ...

    @property
    def put_vport_bindings(self) -> HandoverPut[PortKey, int]: ...

    @property
    def ports_to_activate(self) -> HandoverPut[PortKey, bool]: ...

    def get_dns_cache(self) -> DnsCache: ...

    def notify_main(self) -> None: ...


class PacketBuffer(Protocol):
    """handler.buffered_packets.BufferedPackets, as arp / nd_ns see it."""

    def push(self, key: BufferKey, frame: bytes, actions: bytes,
             now: float) -> bool: ...


class McastSnooping(Protocol):
    """handler.mcast_job.McastJob, as the igmp action sees it: the
    per-datapath snooping tables."""

    def snooping(self, dp_key: int) -> bool: ...

    def learn(self, dp_key: int, port_key: int, msg: McastMessage,
              now: int) -> bool: ...


class BfdSessions(Protocol):
    """handler.bfd_job.BfdJob, as handle_bfd_msg sees it: find the session
    a received control packet belongs to (by Your Discriminator, checked
    against the datapath, logical inport, physical in_port and source
    address it came with) and run it.  Returns the Final to send (a Poll
    was received) and, when no session took it, why (a coverage reason)."""

    def receive(self, dp_key: int, port_key: int, in_port: int,
                ip_src: bytes, msg: BfdMsg, now: int
                ) -> tuple[PacketOut | None, str | None]: ...


class PrefixDelegation(Protocol):
    """handler.pd_job.PdJob, as handle_dhcpv6_reply sees it: the client
    an ADVERTISE or REPLY (arrived on router datapath 'dp_key' through
    port 'port_key') belongs to takes it; False if none does."""

    def advertise(self, dp_key: int, port_key: int, f: Flow,
                  aid: int) -> bool: ...

    def reply(self, dp_key: int, port_key: int, f: Flow, lease: Lease,
              now: int) -> bool: ...


class SvcMonitors(Protocol):
    """handler.svc_monitor_job.SvcMonitorJob, as handle_svc_check sees it:
    the monitor of (datapath, backend port, reply) takes the reply.
    Returns the RST to send (a SYN-ACK came) and, when no monitor took
    it, why (a coverage reason)."""

    def on_reply(self, dp_key: int, port_key: int, reply: SvcReply,
                 now: int) -> tuple[PacketOut | None, str | None]: ...


class HandlerEnv(Protocol):
    """Owned by the pinctrl_handler thread.  'shared' is None and
    'buffered_packets' None when an action runs without them (unit tests,
    the differential and fuzz harnesses): actions then skip the side
    effect and still answer."""

    @property
    def shared(self) -> SharedView | None: ...

    @property
    def buffered_packets(self) -> PacketBuffer | None: ...

    @property
    def mcast(self) -> McastSnooping | None: ...

    def next_xid(self) -> int: ...

    @property
    def bfd(self) -> BfdSessions | None: ...

    @property
    def prefixd(self) -> PrefixDelegation | None: ...

    @property
    def svc_monitors(self) -> SvcMonitors | None: ...


class _NoEnv:
    """The HandlerEnv of an action called on its own (tests)."""
    shared: SharedView | None = None
    buffered_packets: PacketBuffer | None = None
    mcast: McastSnooping | None = None
    bfd: BfdSessions | None = None
    prefixd: PrefixDelegation | None = None
    svc_monitors: SvcMonitors | None = None

    def next_xid(self) -> int:
        return 0


NO_ENV: HandlerEnv = _NoEnv()
