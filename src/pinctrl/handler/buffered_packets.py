"""Packets waiting for a neighbour resolution (OVN 23.03 controller/
pinctrl.c pinctrl_handle_buffered_packets(), run_buffered_binding()).

When a router has no MAC for the next hop, its flows punt the packet with
arp { } (opcode 0) or nd_ns { } (opcode 9): pinctrl sends the ARP request or
Neighbour Solicitation and keeps the original frame here.  When the
Southbound MAC_Binding table learns the neighbour, the frames are
re-injected with the learnt Ethernet destination.

Key: BufferKey(dp key = metadata, logical outport key = reg15, next-hop IP
as 16 bytes: reg0 as IPv4-mapped ::ffff:a.b.c.d for ARP, xxreg0 for ND).
23.03's limits: at most MAX_KEYS keys (a new key beyond is not created: the
frame is not buffered, the ARP/NS is still sent), a ring of 4 slots per key
so at most MAX_FRAMES_PER_KEY frames (pushing into a full ring drops the
oldest), a key dropped TIMEOUT_MS after its last push.  Every dropped frame
is counted.

Each frame is stored with its prepared OpenFlow 1.5 action list
(actions.neighbor.reinject_actions(): the packet-in's registers and datapath, pkt_mark,
resubmit(CONTROLLER, 37)); release() overwrites the Ethernet destination
and turns each frame into an OFPT_PACKET_OUT, oldest first.

Threads: unlike 23.03 (where the map is shared with the main thread under
pinctrl_mutex), a BufferedPackets is private to the pinctrl_handler thread,
which pushes (actions/neighbor.py) and releases (run(), the HandlerJob of
handler/jobs.py); the main thread only publishes the neighbours it
saw in MAC_Binding (SharedState.take_resolved_neighbors) and reads
summary().  So no lock: the handler never waits for the main thread to
queue a packet.

Times are milliseconds passed in by the caller (ovs.timeval.msec()), so
tests drive the clock.
"""

from __future__ import annotations

import itertools
from collections import OrderedDict, deque
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING

import ovs.poller
import ovs.vlog

from pinctrl.actions.env import BufferKey
from pinctrl.openflow import messages as ofmsg
from pinctrl.support import appctl, coverage
from pinctrl.support.log import RateLimit, rl_log

if TYPE_CHECKING:
    from pinctrl.handler.dispatch import Env
    from pinctrl.shared.state import SharedState

vlog = ovs.vlog.Vlog("pinctrl")
_rl_full = RateLimit(1, 5)
_rl_drop = RateLimit(5, 10)

MAX_KEYS = 1000                 # pinctrl.c: hmap_count >= 1000
MAX_FRAMES_PER_KEY = 3          # BUFFER_QUEUE_DEPTH 4, one slot kept free
TIMEOUT_MS = 10000              # BUFFER_MAP_TIMEOUT
GC_INTERVAL_MS = 1000           # how often run() looks for expired keys

C_MAP_FULL = "pinctrl_drop_buffered_packets_map"      # OVN's name
C_OLDEST = "pinctrl_drop_buffered_packets_oldest"
C_EXPIRED = "pinctrl_drop_buffered_packets_expired"
C_RELEASED = "pinctrl_buffered_packets_released"


class _Queue:
    __slots__ = ("frames", "last_push")

    def __init__(self) -> None:
        # (frame, actions) pairs, oldest first.
        self.frames: deque[tuple[bytes, bytes]] = deque()
        self.last_push = 0.0


class BufferedPackets:
    """The buffered frames of the pinctrl_handler thread; also its
    HandlerJob that releases them and expires old ones.  Every method but
    summary() is called only by the pinctrl_handler thread."""

    def __init__(self, next_xid: Callable[[], int] | None = None,
                 shared: SharedState | None = None) -> None:
        """'next_xid' numbers the packet-outs (the handler passes
        env.next_xid); 'shared' (SharedState or None) gets the number of
        keys in shared.n_buffered_packets after every change, so the main
        thread can skip publishing resolutions nobody waits for."""
        self._next_xid = next_xid or itertools.count(1).__next__
        self._shared = shared
        # Ordered by last push (a push moves its key to the end), so gc()
        # stops at the first key that has not expired.
        self._map: OrderedDict[BufferKey, _Queue] = OrderedDict()
        self._n_frames = 0
        self._next_gc = 0.0

    # --- buffering (actions/neighbor.py) -------------------------------------
    def push(self, key: BufferKey, frame: bytes, actions: bytes,
             now: float) -> bool:
        """Queue 'frame' (the packet-in's frame, Ethernet destination still
        unresolved) under 'key' with its re-injection 'actions'.  Returns
        False when the map is full and the key is new (frame dropped)."""
        q = self._map.get(key)
        if q is None:
            if len(self._map) >= MAX_KEYS:
                coverage.inc(C_MAP_FULL)
                rl_log(vlog, "warn", _rl_full,
                       f"buffered packets: {MAX_KEYS} next hops already "
                       "awaiting resolution, packet not buffered")
                return False
            q = self._map[key] = _Queue()
            self._publish_count()
        else:
            self._map.move_to_end(key)
        if len(q.frames) >= MAX_FRAMES_PER_KEY:
            q.frames.popleft()
            self._n_frames -= 1
            coverage.inc(C_OLDEST)
            rl_log(vlog, "dbg", _rl_drop, "buffered packets: "
                   f"{MAX_FRAMES_PER_KEY} already queued for a next hop, "
                   "oldest dropped")
        q.frames.append((bytes(frame), actions))
        q.last_push = now
        self._n_frames += 1
        return True

    # --- release and expiry ------------------------------------------------------
    def release(self, candidate_keys: Iterable[BufferKey], mac: bytes
                ) -> list[bytes]:
        """The neighbour of 'candidate_keys' (tried in order, the first key
        with a buffer wins: 23.03 tries the MAC_Binding's port, then its
        cr- port) is at 'mac' (6 bytes): the OFPT_PACKET_OUTs of its
        frames, oldest first, each with its Ethernet destination set to
        'mac'.  The key is removed."""
        for key in candidate_keys:
            q = self._map.pop(key, None)
            if q is None:
                continue
            self._n_frames -= len(q.frames)
            self._publish_count()
            coverage.inc(C_RELEASED, len(q.frames))
            return [ofmsg.packet_out(self._next_xid(), actions,
                                        mac + frame[6:])
                    for frame, actions in q.frames]
        return []

    def gc(self, now: float) -> int:
        """Drop the keys whose last push is more than TIMEOUT_MS before
        'now' (23.03: now > timestamp + 10000).  Returns the number of
        frames dropped."""
        dropped = 0
        while self._map:
            key, q = next(iter(self._map.items()))
            if now - q.last_push <= TIMEOUT_MS:
                break
            del self._map[key]
            dropped += len(q.frames)
        if dropped:
            self._n_frames -= dropped
            self._publish_count()
            coverage.inc(C_EXPIRED, dropped)
            rl_log(vlog, "dbg", _rl_drop, f"buffered packets: {dropped} "
                   "packet(s) expired without a neighbour resolution")
        return dropped

    def summary(self) -> tuple[int, int]:
        """(keys, frames) for display.  Any thread: two int reads."""
        return len(self._map), self._n_frames

    def _publish_count(self) -> None:
        """After every change of the key set (not of a key's frames): the
        main thread looks the keys up in MAC_Binding."""
        if self._shared is not None:
            self._shared.set_buffered_keys(frozenset(self._map))

    # --- HandlerJob (handler/jobs.py) ----------------------------------------
    def run(self, env: Env | None, now: int) -> list[bytes]:
        """Release the buffers of the neighbours the main thread saw
        resolved (env.shared.take_resolved_neighbors(): a list of
        (candidate keys, MAC)), and expire old keys at most every
        GC_INTERVAL_MS."""
        out: list[bytes] = []
        shared = env.shared if env is not None else None
        if shared is not None:
            for keys, mac in shared.take_resolved_neighbors():
                out += self.release(keys, mac)
        if now >= self._next_gc:
            self.gc(now)
            self._next_gc = now + GC_INTERVAL_MS
        return out

    def wait(self, poller: ovs.poller.Poller, now: int) -> None:
        """Wake for the next expiry check while anything is buffered.  A
        check already due (run() is not called while disconnected) is
        postponed by GC_INTERVAL_MS rather than armed in the past, which
        would make the handler spin."""
        if not self._map:
            return
        due = self._next_gc if self._next_gc > now else now + GC_INTERVAL_MS
        poller.timer_wait_until(due)


@appctl.command("pinctrl/buffered-packets")
def _cmd_buffered_packets(ctx: appctl.CommandContext, args: list[str]
                          ) -> str:
    """ovs-appctl pinctrl/buffered-packets (main thread): how many frames
    wait for a neighbour resolution (the map itself is handler-private;
    summary() reads two ints)."""
    keys, frames = ctx.buffered_packets_summary()
    return (f"next hops awaited: {keys}, frames buffered: {frames} "
            f"(caps: {MAX_KEYS} next hops x {MAX_FRAMES_PER_KEY} frames, "
            f"{TIMEOUT_MS // 1000} s)\n")
