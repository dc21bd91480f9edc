"""Gratuitous ARP / RARP announcements: the frames, their injection, and
the schedule (a handler job).  OVN 23.03's send_garp_rarp() (controller/
pinctrl.c:4655).

* gARP: 42 bytes, Ethernet broadcast from the MAC, ARP request with
  sha = MAC, spa = tpa = IP, tha = 0;
* RARP (an announcement without IPv4): Ethernet type 0x8035, op 3,
  sha = tha = MAC, spa = tpa = 0.0.0.0;
* injected with metadata = datapath key, reg14 = port key,
  resubmit(CONTROLLER, 8): the frame enters the logical switch's ingress
  pipeline as if the announcing port had sent it;
* each entry is sent 1 s after it first appears, then after 2, 4, 8 and
  16 s more (five frames at about +1, +3, +7, +15, +31 s), then never
  again while it stays in the set.

GarpJob is the pinctrl_handler thread's job (handler/jobs.py): it
reads the main thread's snapshot (name -> GarpEntry, built by
db/garp_plan.py) through a get_snapshot() callable, re-diffs only
when its version changes, keeps its deadlines in a heap and sleeps on a
poll timer until the next one.  DeadlineJob is the part periodic senders
share (handler/ra_job.py uses it too).

Deviation: 23.03 keys its entries by name only, so an entry whose MAC or
IPv4 changes under the same name keeps announcing the old ones; here such
a change restarts the announcements with the new addresses (what OVN
05527bd6c, v25.09, does by keying on MAC and IP).  A datapath or port key
change updates the injection without restarting the schedule, as 23.03.
"""

from __future__ import annotations

import heapq
import itertools
import struct
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

import ovs.poller

from pinctrl.actions.replies import PacketOut
from pinctrl.openflow import messages as ofmsg
from pinctrl.openflow.ofactions import resubmit, set_metadata, set_reg
from pinctrl.packet.headers import fmt_ip4, fmt_mac
from pinctrl.shared.records import GarpEntry
from pinctrl.support import appctl, coverage

if TYPE_CHECKING:
    from pinctrl.handler.dispatch import Env

ETH_BROADCAST = b"\xff" * 6
ETH_TYPE_ARP = 0x0806
ETH_TYPE_RARP = 0x8035
ARP_OP_REQUEST = 1
ARP_OP_RARP = 3
# Ethernet hardware, IPv4 protocol, address lengths 6 and 4.
_ARP_FIXED = struct.pack("!HHBB", 1, 0x0800, 6, 4)
_U16 = struct.Struct("!H")

MFF_LOG_INPORT = 14                 # reg14: the logical input port
OFTABLE_LOG_INGRESS_PIPELINE = 8

FIRST_DELAY_MS = 1000
MAX_BACKOFF = 16                    # seconds; the last gap
PAST_DUE_RECHECK_MS = 1000          # see DeadlineJob.wait



def build_garp(mac: bytes, ip: bytes) -> bytes:
    """Pure.  The gratuitous ARP request for 'mac' / 'ip' (compose_arp)."""
    return (ETH_BROADCAST + mac + _U16.pack(ETH_TYPE_ARP) + _ARP_FIXED
            + _U16.pack(ARP_OP_REQUEST) + mac + ip + bytes(6) + ip)


def build_rarp(mac: bytes) -> bytes:
    """Pure.  The reverse ARP announcing 'mac' (OVS compose_rarp)."""
    return (ETH_BROADCAST + mac + _U16.pack(ETH_TYPE_RARP) + _ARP_FIXED
            + _U16.pack(ARP_OP_RARP) + mac + bytes(4) + mac + bytes(4))


def inport_actions(dp_key: int, port_key: int, extra: bytes = b"") -> bytes:
    """Pure.  metadata = dp_key, reg14 = port_key, then the 'extra'
    actions, then resubmit(CONTROLLER, 8): inject a frame as if logical
    port 'port_key' had sent it."""
    return (set_metadata(dp_key) + set_reg(MFF_LOG_INPORT, port_key) + extra
            + resubmit(OFTABLE_LOG_INGRESS_PIPELINE))


def announcement(entry: GarpEntry) -> PacketOut:
    """Pure.  The packet-out announcing 'entry'."""
    frame = (build_garp(entry.mac, entry.ip) if entry.ip is not None
             else build_rarp(entry.mac))
    return PacketOut(frame, inport_actions(entry.dp_key, entry.port_key))


class DeadlineJob:
    """A handler job over a main-thread snapshot whose entries each have
    a next send time.  Subclasses implement update() (diff a new
    snapshot in) and fire() (build what to send for one due entry and set
    its next deadline).  Used only by the pinctrl_handler thread.

    Deadlines live in a heap of (due, seq, name, state); an item is stale
    unless 'state' is still the entry's and its 'due' unchanged, so
    rescheduling and removal cost O(log n) and nothing is scanned while
    nothing is due."""

    def __init__(self, get_snapshot: Callable[[], tuple[int, Mapping]]
                 ) -> None:
        self._get_snapshot = get_snapshot
        self._version: int | None = None
        self.states: dict[str, Any] = {}
        self._heap: list[tuple[int, int, str, Any]] = []
        self._seq = itertools.count()

    # --- HandlerJob protocol -----------------------------------------------
    def run(self, env: Env, now: int) -> list[bytes]:
        """Pick up a new snapshot, then return the packet-outs due at
        'now' (pinctrl_handler thread, while connected)."""
        version, snapshot = self._get_snapshot()
        if version != self._version:
            self._version = version
            self.update(snapshot, now)
        return [ofmsg.packet_out(env.next_xid(), po.actions, po.packet)
                for po in self.due(now)]

    def wait(self, poller: ovs.poller.Poller, now: int) -> None:
        """Arm a poll timer for the next deadline (pinctrl_handler
        thread)."""
        when = self.next_wakeup()
        if when is not None:
            # A deadline already past means run() was not called: the
            # OpenFlow connection is down.  Look again later instead of
            # arming a timer in the past, which would spin the thread
            # (and hold the GIL) for the whole outage.
            poller.timer_wait_until(when if when > now
                                    else now + PAST_DUE_RECHECK_MS)

    # --- schedule ------------------------------------------------------------
    def schedule(self, name: str, state: Any, due: int | None) -> None:
        """Set 'state' (the entry 'name') to fire at 'due' (None: never).
        pinctrl_handler thread."""
        state.due = due
        if due is not None:
            heapq.heappush(self._heap, (due, next(self._seq), name, state))
            if len(self._heap) > 2 * len(self.states) + 64:
                self._compact()

    def _valid(self, item: tuple[int, int, str, Any]) -> bool:
        due, _, name, state = item
        current = self.states.get(name)
        return current is not None and current is state and \
            current.due == due

    def _compact(self) -> None:
        self._heap = [i for i in self._heap if self._valid(i)]
        heapq.heapify(self._heap)

    def next_wakeup(self) -> int | None:
        """The earliest deadline, or None if nothing is scheduled
        (pinctrl_handler thread; O(1) unless stale items are on top)."""
        while self._heap and not self._valid(self._heap[0]):
            heapq.heappop(self._heap)
        return self._heap[0][0] if self._heap else None

    def due(self, now: int) -> list[PacketOut]:
        """What is due at 'now', in deadline order; each entry fired is
        rescheduled by fire() (pinctrl_handler thread)."""
        out: list[PacketOut] = []
        while True:
            when = self.next_wakeup()
            if when is None or when > now:
                return out
            _, _, name, state = heapq.heappop(self._heap)
            state.due = None
            out.append(self.fire(name, state, now))

    def update(self, snapshot: Mapping, now: int) -> None:
        raise NotImplementedError

    def fire(self, name: str, state: Any, now: int) -> PacketOut:
        raise NotImplementedError


class _Garp:
    """GarpJob's per-entry state."""
    __slots__ = ("backoff", "due", "entry")

    def __init__(self, entry: GarpEntry) -> None:
        self.entry = entry
        self.backoff = 1
        self.due: int | None = None


class GarpJob(DeadlineJob):
    """Sends the gARP/RARP announcements of the main thread's snapshot on
    23.03's schedule (pinctrl_handler thread only).

    'get_snapshot' returns (version, {name: GarpEntry}); the mapping must
    not change while its version is current."""

    def update(self, snapshot: Mapping[str, GarpEntry], now: int) -> None:
        """Diff in a new announcement set: new entries (or entries whose
        MAC/IP changed) are first sent at now + 1 s, removed ones dropped,
        others keep their schedule (keys refreshed).  pinctrl_handler
        thread, only when the snapshot's version changed."""
        for name in [n for n in self.states if n not in snapshot]:
            del self.states[name]
        for name, entry in snapshot.items():
            st = self.states.get(name)
            if st is not None and (st.entry.mac, st.entry.ip) == \
                    (entry.mac, entry.ip):
                st.entry = entry
                continue
            st = self.states[name] = _Garp(entry)
            self.schedule(name, st, now + FIRST_DELAY_MS)

    def fire(self, name: str, state: _Garp, now: int) -> PacketOut:
        """Send one announcement; the next one comes after the doubled
        backoff, none after the 16 s gap (pinctrl_handler thread)."""
        coverage.inc("pinctrl_garp_sent" if state.entry.ip is not None
                     else "pinctrl_rarp_sent")
        if state.backoff < MAX_BACKOFF:
            state.backoff *= 2
            self.schedule(name, state, now + state.backoff * 1000)
        return announcement(state.entry)


@appctl.command("pinctrl/garp")
def _cmd_garp(ctx: appctl.CommandContext, args: list[str]) -> str:
    """ovs-appctl pinctrl/garp (main thread): the announcement set the
    handler works from (name: MAC, IPv4 or RARP, datapath/port keys)."""
    version, entries = ctx.shared.get_garp()
    lines = [f"announcements (snapshot {version}): {len(entries)}"]
    for name, e in sorted(entries.items()):
        what = f"gARP {fmt_ip4(e.ip)}" if e.ip is not None else "RARP"
        lines.append(f"  {name}: {fmt_mac(e.mac)} {what} "
                     f"(datapath {e.dp_key}, port {e.port_key})")
    return "\n".join(lines) + "\n"
