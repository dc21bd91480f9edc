"""IGMP/MLD snooping tables and the querier (pinctrl_handler thread).

OVN 23.03 controller/pinctrl.c keeps one OVS mcast_snooping table per
local datapath with IP_Multicast enabled=true (ip_mcast_snoop_run(),
ip_mcast_snoop_configure()), fills it from the igmp action and sends the
querier's general queries (ip_mcast_querier_run()).  McastJob is that:

* configuration: the main thread's snapshot (db/mcast_plan.py, dp key ->
  records.McastConfig); a table is created when snooping is enabled,
  dropped when it is disabled or the datapath is no longer local, flushed
  when IP_Multicast.seq_no changes (ovn-sbctl ... flush); size and idle
  time are clamped like OVS (10..1000000 groups, 15..3600 s);
* learning (learn(), called by actions/igmp.py through env.mcast): OVS
  3.1 lib/mcast-snooping.c semantics: a join adds or refreshes (group,
  port) for idle_time; a new group beyond the table size evicts the least
  recently joined group (counted: pinctrl_mcast_table_full); a leave
  removes the port at once; a query makes the port a multicast-router
  port for 180 s, and a router port's joins are ignored;
* aging: a (group, port) not refreshed within idle_time goes, and with
  its last port the group; router ports after 180 s;
* hand-over: whenever a table's groups, their ports or its router ports
  change, its McastGroups (None once snooping stopped there) is put into
  SharedState.mcast_groups and the main thread woken; IgmpGroupWriter
  (db/writers/igmp_group.py) makes SB IGMP_Group follow;
* querier: each datapath whose configuration carries query frames sends
  them (IGMPv3 first, then MLDv2) at once when configured, then every
  query_interval; the packet-out is 23.03's local output to the flood
  group (openflow/inject.local_output_actions, reg15 0x8000).

All state is private to the pinctrl_handler thread: the main thread only
publishes configurations and takes the hand-over.  Times are msec
(ovs.timeval.msec()) passed in, so tests drive the clock.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING

import ovs.poller
import ovs.vlog

from pinctrl.actions.env import HandoverPut
from pinctrl.openflow import messages as ofmsg
from pinctrl.openflow.inject import (
    OVN_MCAST_FLOOD_TUNNEL_KEY,
    local_output_actions,
)
from pinctrl.packet.igmp import JOIN, McastMessage
from pinctrl.shared.records import McastConfig, McastGroups
from pinctrl.support import coverage
from pinctrl.support.log import RateLimit, rl_log

if TYPE_CHECKING:
    from pinctrl.handler.dispatch import Env

vlog = ovs.vlog.Vlog("pinctrl")
_rl_full = RateLimit(1, 5)

MROUTER_IDLE_MS = 180 * 1000        # MCAST_MROUTER_PORT_IDLE_TIME
MIN_ENTRIES, MAX_ENTRIES = 10, 1000 * 1000
MIN_IDLE_S, MAX_IDLE_S = 15, 3600
# A deadline already past when wait() runs means run() was not called
# (OpenFlow down): look again later rather than spin (garp_job.py).
PAST_DUE_RECHECK_MS = 1000
NEVER = 1 << 62


def _clamp(value: int, low: int, high: int) -> int:
    return max(low, min(value, high))


class SnoopTable:
    """One datapath's groups and router ports (OVS struct mcast_snooping
    for the one VLAN OVN uses).  pinctrl_handler thread only.

    'groups' is ordered least recently joined first; each group's ports
    are ordered by expiry (every refresh moves a port to the end with the
    same idle time)."""

    __slots__ = ("groups", "mrouters", "max_entries", "idle_ms", "_next")

    def __init__(self, table_size: int, idle_time_s: int) -> None:
        self.groups: dict[bytes, dict[int, int]] = {}   # -> port -> expiry
        self.mrouters: dict[int, int] = {}              # port -> expiry
        self.max_entries = _clamp(table_size, MIN_ENTRIES, MAX_ENTRIES)
        self.idle_ms = 1000 * _clamp(idle_time_s, MIN_IDLE_S, MAX_IDLE_S)
        self._next: int | None = None       # cached next_expiry()

    def set_idle(self, idle_time_s: int) -> None:
        """mcast_snooping_set_idle_time(): every entry's expiry moves by
        the difference."""
        idle_ms = 1000 * _clamp(idle_time_s, MIN_IDLE_S, MAX_IDLE_S)
        delta, self.idle_ms = idle_ms - self.idle_ms, idle_ms
        if delta:
            for ports in self.groups.values():
                for port in ports:
                    ports[port] += delta
            self._next = None

    def set_max(self, table_size: int) -> None:
        """mcast_snooping_set_max_entries(); a smaller table is trimmed by
        the next expire()."""
        self.max_entries = _clamp(table_size, MIN_ENTRIES, MAX_ENTRIES)
        self._next = None

    def join(self, group: bytes, port: int, now: int) -> bool:
        """mcast_snooping_add_group(): True if the group or the port is
        new here."""
        if port in self.mrouters:
            return False        # OVS: "avoid duplicate packets"
        ports = self.groups.pop(group, None)
        new = ports is None
        if ports is None:
            if len(self.groups) >= self.max_entries:
                self._evict_lru()
            ports = {}
        self.groups[group] = ports          # most recently joined
        new = ports.pop(port, None) is None or new
        ports[port] = now + self.idle_ms
        if self._next is not None:
            self._next = min(self._next, ports[port])
        return new

    def leave(self, group: bytes, port: int) -> bool:
        """mcast_snooping_leave_group(): True if the port was a member.
        A group left without ports goes at the next expire()."""
        ports = self.groups.get(group)
        if ports is None or port not in ports:
            return False
        del ports[port]
        if not ports:
            self._next = None
        return True

    def add_mrouter(self, port: int, now: int) -> bool:
        """mcast_snooping_add_mrouter(): True if the port is new."""
        new = self.mrouters.pop(port, None) is None
        self.mrouters[port] = now + MROUTER_IDLE_MS
        if self._next is not None:
            self._next = min(self._next, now + MROUTER_IDLE_MS)
        return new

    def _evict_lru(self) -> None:
        del self.groups[next(iter(self.groups))]
        coverage.inc("pinctrl_mcast_table_full")
        rl_log(vlog, "warn", _rl_full, "multicast snooping table full "
               f"({self.max_entries} groups): least recently joined group "
               "dropped")

    def expire(self, now: int) -> bool:
        """mcast_snooping_run(): trim to the table size, drop expired
        ports, empty groups and expired router ports.  True if anything
        went."""
        changed = False
        while len(self.groups) > self.max_entries:
            self._evict_lru()
            changed = True
        for group in list(self.groups):
            ports = self.groups[group]
            for port in [p for p, until in ports.items() if until <= now]:
                del ports[port]
                changed = True
            if not ports:
                del self.groups[group]
                changed = True
        for port in [p for p, until in self.mrouters.items() if until <= now]:
            del self.mrouters[port]
            changed = True
        if changed:
            coverage.inc("pinctrl_mcast_expired")
        self._next = None
        return changed

    def next_expiry(self) -> int:
        """When expire() next has something to do (NEVER: nothing); an
        empty group is due at once."""
        if self._next is None:
            firsts = [next(iter(p.values()), 0) for p in self.groups.values()]
            firsts += self.mrouters.values()
            self._next = min(firsts, default=NEVER)
            if len(self.groups) > self.max_entries:
                self._next = 0
        return self._next

    def flush(self) -> None:
        """mcast_snooping_flush()."""
        self.groups.clear()
        self.mrouters.clear()
        self._next = None

    def snapshot(self) -> McastGroups:
        return McastGroups({g: frozenset(p) for g, p in self.groups.items()
                            if p}, frozenset(self.mrouters))


class _Datapath:
    """McastJob's per-datapath state."""
    __slots__ = ("cfg", "table", "query_due")

    def __init__(self) -> None:
        # 23.03 starts from a zeroed configuration and query time 0: the
        # first queries go out as soon as a querier is configured.
        self.cfg = McastConfig(False, 0, 0, 0, 0, None, None)
        self.table: SnoopTable | None = None
        self.query_due = 0


class McastJob:
    """The handler job of IGMP/MLD snooping (module docstring), and what
    the igmp action reaches as env.mcast (actions.env.McastSnooping).
    pinctrl_handler thread only.

    'get_config' returns (version, {dp key: McastConfig}); 'groups' is the
    handover to the main thread; 'notify_main' wakes it."""

    def __init__(self, get_config: Callable[[], tuple[int, Mapping]],
                 groups: HandoverPut[int, McastGroups | None],
                 notify_main: Callable[[], None]) -> None:
        self._get_config = get_config
        self._handover = groups
        self._notify_main = notify_main
        self._version: int | None = None
        self.datapaths: dict[int, _Datapath] = {}
        self._unpublished: set[int] = set()
        self._next_query = NEVER
        self._next_expiry = NEVER

    # --- the igmp action (actions.env.McastSnooping) -------------------------
    def snooping(self, dp_key: int) -> bool:
        """Whether datapath 'dp_key' snoops (pinctrl_handler thread)."""
        dp = self.datapaths.get(dp_key)
        return dp is not None and dp.table is not None

    def learn(self, dp_key: int, port_key: int, msg: McastMessage,
              now: int) -> bool:
        """Apply what one report / query taught; True if the table's
        membership changed (it is then handed over at the next run()).
        pinctrl_handler thread, from the igmp action."""
        dp = self.datapaths.get(dp_key)
        table = dp.table if dp is not None else None
        if table is None:
            return False
        changed = False
        for op, group in msg.ops:
            if op == JOIN:
                changed |= table.join(group, port_key, now)
            else:
                changed |= table.leave(group, port_key)
        if msg.mrouter:
            changed |= table.add_mrouter(port_key, now)
        if changed:
            coverage.inc("pinctrl_mcast_table_changed")
            self._unpublished.add(dp_key)
        self._next_expiry = min(self._next_expiry, table.next_expiry())
        return changed

    # --- HandlerJob ----------------------------------------------------------
    def run(self, env: Env, now: int) -> list[bytes]:
        """New configuration, aging, due queries, hand-over
        (pinctrl_handler thread, while the OpenFlow connection is up)."""
        version, cfgs = self._get_config()
        if version != self._version:
            self._version = version
            self._configure(cfgs, now)
        if now >= self._next_expiry:
            self._expire(now)
        msgs = self._queries(env, now) if now >= self._next_query else []
        if self._unpublished:
            self._publish()
        return msgs

    def wait(self, poller: ovs.poller.Poller, now: int) -> None:
        """Wake for the next query or expiry (pinctrl_handler thread)."""
        when = min(self._next_query, self._next_expiry)
        if self._unpublished:       # the hand-over was full: try again
            when = min(when, now + PAST_DUE_RECHECK_MS)
        if when < NEVER:
            poller.timer_wait_until(when if when > now
                                    else now + PAST_DUE_RECHECK_MS)

    # --- internals -----------------------------------------------------------
    def _configure(self, cfgs: Mapping[int, McastConfig], now: int) -> None:
        """ip_mcast_snoop_run()'s configuration half."""
        for dp_key in [k for k in self.datapaths if k not in cfgs]:
            if self.datapaths.pop(dp_key).table is not None:
                self._unpublished.add(dp_key)
        for dp_key, cfg in cfgs.items():
            dp = self.datapaths.setdefault(dp_key, _Datapath())
            if dp.cfg != cfg:
                self._apply(dp_key, dp, cfg, now)
        self._next_query = min((dp.query_due for dp in self.datapaths.values()
                                if self._queries_of(dp)), default=NEVER)
        self._next_expiry = min((dp.table.next_expiry()
                                 for dp in self.datapaths.values()
                                 if dp.table is not None), default=NEVER)

    def _apply(self, dp_key: int, dp: _Datapath, cfg: McastConfig,
               now: int) -> None:
        """ip_mcast_snoop_configure()."""
        old, dp.cfg = dp.cfg, cfg
        if not cfg.enabled:
            if dp.table is not None:
                dp.table = None
                self._unpublished.add(dp_key)
            return
        if dp.table is None:
            dp.table = SnoopTable(cfg.table_size, cfg.idle_time_s)
            self._unpublished.add(dp_key)
        elif old.seq_no != cfg.seq_no:
            dp.table.flush()
            self._unpublished.add(dp_key)
        if cfg.table_size != old.table_size:
            dp.table.set_max(cfg.table_size)
        if cfg.idle_time_s != old.idle_time_s:
            dp.table.set_idle(cfg.idle_time_s)
        if (cfg.query_interval_s != old.query_interval_s
                and dp.query_due > now + 1000 * cfg.query_interval_s):
            dp.query_due = now

    @staticmethod
    def _queries_of(dp: _Datapath) -> list[bytes]:
        if dp.table is None:
            return []
        return [q for q in (dp.cfg.igmp_query, dp.cfg.mld_query)
                if q is not None]

    def _queries(self, env: Env, now: int) -> list[bytes]:
        """ip_mcast_querier_run(): every due querier sends its queries,
        next ones query_interval later."""
        msgs = []
        self._next_query = NEVER
        for dp_key, dp in self.datapaths.items():
            frames = self._queries_of(dp)
            if not frames:
                continue
            if now >= dp.query_due:
                actions = local_output_actions(dp_key,
                                               OVN_MCAST_FLOOD_TUNNEL_KEY)
                for frame in frames:
                    msgs.append(ofmsg.packet_out(env.next_xid(), actions,
                                                 frame))
                coverage.inc("pinctrl_mcast_query_sent", len(frames))
                dp.query_due = now + 1000 * dp.cfg.query_interval_s
            self._next_query = min(self._next_query, dp.query_due)
        return msgs

    def _expire(self, now: int) -> None:
        self._next_expiry = NEVER
        for dp_key, dp in self.datapaths.items():
            if dp.table is None:
                continue
            if now >= dp.table.next_expiry() and dp.table.expire(now):
                self._unpublished.add(dp_key)
            self._next_expiry = min(self._next_expiry,
                                    dp.table.next_expiry())

    def _publish(self) -> None:
        """Hand the changed tables over; what does not fit waits for the
        next run()."""
        stored = False
        for dp_key in sorted(self._unpublished):
            dp = self.datapaths.get(dp_key)
            table = dp.table if dp is not None else None
            if self._handover.put(dp_key, table.snapshot()
                                  if table is not None else None):
                self._unpublished.discard(dp_key)
                stored = True
        if stored:
            self._notify_main()
