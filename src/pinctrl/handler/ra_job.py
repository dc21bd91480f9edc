"""Periodic IPv6 Router Advertisements: the sending schedule (pinctrl_handler
thread).  OVN 23.03's ipv6_ra_send() and the RA part of
send_ipv6_ras().

The main thread plans what to send (db/ra_plan.py: one RaEntry with the
frame built once per router port) and publishes it in SharedState; RaJob
sends each RA into the peer switch port (metadata = peer datapath key,
reg14 = peer port key, reg10 bit 4 = MLF_LOCAL_ONLY, resubmit(CONTROLLER,
8)) every min + random(max - min) seconds; the first one after such an
interval (no immediate RA); an interval change reschedules.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Mapping

import ovs.vlog

from pinctrl.actions.replies import PacketOut
from pinctrl.handler.garp_job import DeadlineJob, inport_actions
from pinctrl.openflow.ofactions import set_reg_bit
from pinctrl.shared.records import RaEntry
from pinctrl.support import appctl, coverage
from pinctrl.support.log import RateLimit

vlog = ovs.vlog.Vlog("pinctrl")
_rl = RateLimit(1, 5)

MFF_LOG_FLAGS = 10
MLF_LOCAL_ONLY_BIT = 4



def ra_actions(dp_key: int, port_key: int) -> bytes:
    """Pure.  metadata = dp_key, reg14 = port_key, reg10[4] = 1
    (local only), resubmit(CONTROLLER, 8)."""
    return inport_actions(dp_key, port_key,
                          set_reg_bit(MFF_LOG_FLAGS, MLF_LOCAL_ONLY_BIT))




def random_range(n: int) -> int:
    """OVS random_range(n): uniform in [0, n)."""
    return random.randrange(n) if n > 0 else 0


class _Ra:
    """RaJob's per-entry state."""
    __slots__ = ("due", "entry")

    def __init__(self, entry: RaEntry) -> None:
        self.entry = entry
        self.due: int | None = None


class RaJob(DeadlineJob):
    """Sends the periodic RAs of the main thread's snapshot (pinctrl_handler
    thread only).  'get_snapshot' returns (version, {name: RaEntry});
    'rand(n)' returns an integer in [0, n) (injectable for tests)."""

    def __init__(self, get_snapshot: Callable[[], tuple[int, Mapping]],
                 rand: Callable[[int], int] = random_range) -> None:
        super().__init__(get_snapshot)
        self._rand = rand

    def _next(self, entry: RaEntry, now: int) -> int:
        """ipv6_ra_calc_next_announce() (pinctrl_handler thread)."""
        return (now + entry.min_interval * 1000
                + self._rand((entry.max_interval - entry.min_interval)
                             * 1000))

    def update(self, snapshot: Mapping[str, RaEntry], now: int) -> None:
        """New RA ports are first sent one interval from now; a changed
        min/max interval reschedules; other changes apply to the next RA.
        pinctrl_handler thread, only when the snapshot's version changed."""
        for name in [n for n in self.states if n not in snapshot]:
            del self.states[name]
        for name, entry in snapshot.items():
            st = self.states.get(name)
            if st is None:
                st = self.states[name] = _Ra(entry)
                self.schedule(name, st, self._next(entry, now))
                continue
            old, st.entry = st.entry, entry
            if (old.min_interval, old.max_interval) != \
                    (entry.min_interval, entry.max_interval):
                self.schedule(name, st, self._next(entry, now))

    def fire(self, name: str, state: _Ra, now: int) -> PacketOut:
        """Send one RA and draw the next interval (pinctrl_handler
        thread)."""
        coverage.inc("pinctrl_ra_sent")
        e = state.entry
        self.schedule(name, state, self._next(e, now))
        return PacketOut(e.frame, ra_actions(e.dp_key, e.port_key))



@appctl.command("pinctrl/ipv6-ra")
def _cmd_ipv6_ra(ctx: appctl.CommandContext, args: list[str]) -> str:
    """ovs-appctl pinctrl/ipv6-ra (main thread): the router ports sending
    periodic RAs, their intervals and where the RA is injected."""
    version, entries = ctx.shared.get_ras()
    lines = [f"periodic RAs (snapshot {version}): {len(entries)}"]
    for name, e in sorted(entries.items()):
        lines.append(f"  {name}: every {e.min_interval}-{e.max_interval} s, "
                     f"{len(e.frame)}-byte frame into datapath {e.dp_key} "
                     f"port {e.port_key}")
    return "\n".join(lines) + "\n"
