"""pinctrl.handler.buffered_packets: caps, ring, timeout, gc, release order, the
HandlerJob, and the re-injected packet-outs of the golden exchanges."""

from __future__ import annotations

import itertools

import pytest

from pinctrl.actions import env as action_env
from pinctrl.actions import neighbor
from pinctrl.handler import buffered_packets as m
from pinctrl.handler import dispatch
from pinctrl.openflow import messages as ofmsg
from pinctrl.openflow.ofactions import reload_metadata, resubmit, set_pkt_mark
from pinctrl.openflow.oxm import Metadata
from testbed import golden as goldens
from tests.helpers import counter_delta as delta

GW_MAC = bytes.fromhex("00000000fefe")
K1 = action_env.BufferKey(4, 4, bytes(10) + b"\xff\xff" + bytes([172, 16, 0, 254]))
K2 = action_env.BufferKey(1, 2, bytes(15) + b"\x01")


def frame(n: int) -> bytes:
    """A distinct 20-byte frame, Ethernet destination unresolved."""
    return bytes(6) + bytes.fromhex("00000000ff03") + b"\x08\x00" + \
        n.to_bytes(6, "big")


def payloads(msgs: list[bytes]) -> list[bytes]:
    """The frames carried by our packet-outs (after the actions)."""
    out = []
    for msg in msgs:
        actions_len = int.from_bytes(msg[12:14], "big")
        out.append(msg[16 + 16 + actions_len:])
    return out


class FakeShared:
    """SharedState's side of the job: resolved neighbours handed over."""

    def __init__(self) -> None:
        self.resolved: list = []
        self.n_buffered_packets = 0
        self.buffered_keys: frozenset = frozenset()
        self.takes = 0

    def set_buffered_keys(self, keys: frozenset) -> None:
        self.buffered_keys = keys
        self.n_buffered_packets = len(keys)

    def take_resolved_neighbors(self):
        self.takes += 1
        out, self.resolved = self.resolved, []
        return out


class FakePoller:
    def __init__(self) -> None:
        self.timers: list[float] = []

    def timer_wait_until(self, msec: float) -> None:
        self.timers.append(msec)


def job_env(bp=None):
    env = dispatch.Env(shared=FakeShared())
    env.buffered_packets = bp or m.BufferedPackets(env.next_xid, env.shared)
    return env


# --- golden re-injection ---------------------------------------------------------

def _mapped(ip4: str) -> bytes:
    return bytes(10) + b"\xff\xff" + bytes(int(x) for x in ip4.split("."))


# (exchange, candidate keys for its MAC_Binding row as the main thread
# builds them: the row's port, then its cr- port when it has one).  In the
# first and last, the packet waits on cr-lr0-public (key 4) while the row
# is for lr0-public (key 3): only the fallback finds it.
RELEASES = [
    ("arp_resolve_nexthop_put_arp",
     [action_env.BufferKey(4, 3, _mapped("172.16.0.254")),
      action_env.BufferKey(4, 4, _mapped("172.16.0.254"))]),
    ("arp_resolve_sw0_unknown_host",
     [action_env.BufferKey(4, 1, _mapped("10.0.0.50"))]),
    ("nd_resolve_nexthop_put_nd",
     [action_env.BufferKey(4, 3, bytes.fromhex("20010db800ff000000000000000000fe")),
      action_env.BufferKey(4, 4, bytes.fromhex("20010db800ff000000000000000000fe"))]),
]


@pytest.mark.parametrize("name,keys", RELEASES, ids=[r[0] for r in RELEASES])
def test_golden_reinjected_packet_outs_byte_identical(name, keys):
    ex = goldens.load_exchange(name)
    step0, step1 = ex["steps"][:2]
    env = job_env()
    goldens.replay_step(step0, env)
    mac = bytes.fromhex(ex["mac_binding_after"][0]["mac"].replace(":", ""))
    env.shared.resolved.append((tuple(keys), mac))
    out = env.buffered_packets.run(env, 100)
    expected = [bytes.fromhex(r["hex"]) for r in step1["openflow_pinctrl"]
                if r["dir"] == "c2s"]
    assert len(out) == len(expected) >= 1
    for ours, rec in zip(out, expected):
        assert goldens.same_message(ours, rec), (ours.hex(), rec.hex())
    assert env.buffered_packets.summary() == (0, 0)
    assert env.shared.n_buffered_packets == 0


def test_reinject_actions_match_ovn():
    md = Metadata.parse(bytes.fromhex(
        "8000000400000001" "80010008ac1000feac100001"
        "00014204" "0000002a" "800004080000000000000004"))
    assert neighbor.reinject_actions(md) == (reload_metadata(md) + set_pkt_mark(42)
                                      + resubmit(37))
    # pkt_mark is always loaded, 0 when the packet-in had none.
    assert neighbor.reinject_actions(Metadata()).endswith(
        set_pkt_mark(0) + resubmit(37))


# --- caps and ring ------------------------------------------------------------------

def test_key_cap_new_key_dropped_existing_keys_still_accepted():
    bp = m.BufferedPackets()
    for i in range(m.MAX_KEYS):
        assert bp.push(action_env.BufferKey(1, 1, i.to_bytes(16, "big")), frame(i),
                       b"", 0)
    ok, n = delta(m.C_MAP_FULL, lambda: bp.push(K2, frame(0), b"", 0))
    assert not ok and n == 1
    assert bp.summary() == (m.MAX_KEYS, m.MAX_KEYS)
    ok, n = delta(m.C_MAP_FULL, lambda: bp.push(
        action_env.BufferKey(1, 1, (5).to_bytes(16, "big")), frame(1), b"", 0))
    assert ok and n == 0
    assert bp.summary() == (m.MAX_KEYS, m.MAX_KEYS + 1)
    assert bp.release([K2], GW_MAC) == []


def test_ring_keeps_the_three_newest_in_order():
    bp = m.BufferedPackets()
    for i in range(3):
        bp.push(K1, frame(i), b"", i)
    _, n = delta(m.C_OLDEST, lambda: bp.push(K1, frame(3), b"", 3))
    assert n == 1
    assert bp.summary() == (1, 3)
    _, n = delta(m.C_OLDEST, lambda: bp.push(K1, frame(4), b"", 4))
    assert n == 1
    assert payloads(bp.release([K1], GW_MAC)) == [
        GW_MAC + frame(i)[6:] for i in (2, 3, 4)]


# --- release ------------------------------------------------------------------------

def test_release_rewrites_eth_dst_keeps_actions_fifo_and_xids():
    xids = itertools.count(100)
    bp = m.BufferedPackets(xids.__next__)
    bp.push(K1, frame(1), resubmit(37), 0)
    bp.push(K1, frame(2), resubmit(8), 1)
    out = bp.release([K1], GW_MAC)
    assert out == [ofmsg.packet_out(100, resubmit(37), GW_MAC + frame(1)[6:]),
                   ofmsg.packet_out(101, resubmit(8), GW_MAC + frame(2)[6:])]
    assert bp.summary() == (0, 0)
    assert bp.release([K1], GW_MAC) == []          # the key is gone


def test_release_first_candidate_with_a_buffer_wins():
    bp = m.BufferedPackets()
    bp.push(K1, frame(1), b"", 0)
    bp.push(K2, frame(2), b"", 0)
    missing = action_env.BufferKey(7, 7, bytes(16))
    assert payloads(bp.release([missing, K2, K1], GW_MAC)) == [
        GW_MAC + frame(2)[6:]]
    assert bp.summary() == (1, 1)                  # K1 untouched


def test_release_counts_released_frames():
    bp = m.BufferedPackets()
    bp.push(K1, frame(1), b"", 0)
    bp.push(K1, frame(2), b"", 0)
    _, n = delta(m.C_RELEASED, lambda: bp.release([K1], GW_MAC))
    assert n == 2


def test_plain_tuples_are_keys_too():
    bp = m.BufferedPackets()
    bp.push(K1, frame(1), b"", 0)
    assert len(bp.release([(K1.dp, K1.port, K1.ip)], GW_MAC)) == 1


# --- timeout and gc -------------------------------------------------------------

def test_gc_drops_keys_idle_more_than_10s():
    bp = m.BufferedPackets()
    bp.push(K1, frame(1), b"", 0)
    bp.push(K1, frame(2), b"", 0)
    assert bp.gc(10000) == 0                       # 23.03: now > ts + 10000
    dropped, n = delta(m.C_EXPIRED, lambda: bp.gc(10001))
    assert dropped == 2 and n == 2
    assert bp.summary() == (0, 0)


def test_each_push_refreshes_its_key():
    bp = m.BufferedPackets()
    bp.push(K1, frame(1), b"", 0)
    bp.push(K2, frame(2), b"", 100)
    bp.push(K1, frame(3), b"", 200)                # K1 refreshed after K2
    assert bp.gc(10150) == 1                       # K2 expired, K1 kept
    assert bp.summary() == (1, 2)
    assert bp.release([K2], GW_MAC) == []
    assert bp.gc(10200) == 0
    assert bp.gc(10201) == 2


def test_shared_keys_follow_every_change():
    shared = FakeShared()
    bp = m.BufferedPackets(shared=shared)
    bp.push(K1, frame(1), b"", 0)
    bp.push(K2, frame(2), b"", 0)
    assert shared.buffered_keys == {K1, K2}
    bp.push(K2, frame(3), b"", 0)               # same key: same set
    assert shared.buffered_keys == {K1, K2}
    bp.release([K1], GW_MAC)
    assert shared.buffered_keys == {K2}
    bp.gc(20000)
    assert shared.buffered_keys == frozenset()
    assert shared.n_buffered_packets == 0


# --- the HandlerJob -----------------------------------------------------------------

def test_run_releases_resolved_neighbours():
    env = job_env()
    bp = env.buffered_packets
    bp.push(K1, frame(1), b"", 0)
    env.shared.resolved = [((K2,), GW_MAC), ((K1,), GW_MAC)]
    out = bp.run(env, 0)
    assert payloads(out) == [GW_MAC + frame(1)[6:]]
    assert env.shared.resolved == [] and bp.summary() == (0, 0)


def test_run_gc_is_timed_not_per_iteration():
    env = job_env()
    bp = env.buffered_packets
    bp.push(K1, frame(1), b"", 0)
    bp.run(env, 9999)                              # gc: nothing expired
    assert bp.summary() == (1, 1)
    assert bp.run(env, 10500) == []                # not due until 10999
    assert bp.summary() == (1, 1)
    _, n = delta(m.C_EXPIRED, lambda: bp.run(env, 10999))
    assert n == 1 and bp.summary() == (0, 0)


def test_run_without_shared_only_collects_garbage():
    env = dispatch.Env()
    bp = m.BufferedPackets()
    bp.push(K1, frame(1), b"", 0)
    assert bp.run(env, 20000) == []
    assert bp.summary() == (0, 0)


def test_wait_arms_the_next_gc_only_while_buffering():
    env = job_env()
    bp = env.buffered_packets
    poller = FakePoller()
    bp.wait(poller, 0)
    assert poller.timers == []                     # nothing buffered
    bp.run(env, 500)                               # next gc at 1500
    bp.push(K1, frame(1), b"", 500)
    bp.wait(poller, 600)
    assert poller.timers == [1500]
    # Overdue (run() is not called while disconnected): never in the past.
    bp.wait(poller, 5000)
    assert poller.timers[-1] == 5000 + m.GC_INTERVAL_MS


def test_summary_counts_keys_and_frames():
    bp = m.BufferedPackets()
    assert bp.summary() == (0, 0)
    bp.push(K1, frame(1), b"", 0)
    bp.push(K1, frame(2), b"", 0)
    bp.push(K2, frame(3), b"", 0)
    assert bp.summary() == (2, 3)
