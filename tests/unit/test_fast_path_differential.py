"""The fast path (handler/templates) against the reference path
(handler/dispatch.process_packet_in): identical bytes, or a counted miss.

Two identical environments (SharedState with the same DNS snapshot,
BufferedPackets, xid counters) see the same packet-ins: one through the
reference dispatcher, the other as the handler does it (the templates
first, the reference path on a miss).  For every packet-in:

  * the messages to send are byte-identical (xids included: both paths
    number packet-outs from the same counter);
  * the side effects are identical: MAC bindings handed to the main
    thread, buffered frames with their re-injection actions, and every
    coverage counter but the fast path's own hit/miss counters;
  * a template that declines counts pinctrl_fast_path_miss_<family>.

Inputs: every NXT_PACKET_IN2 of the golden recording (each twice: the
second one meets warm caches), then hypothesis-generated packet-ins: the
frames of the templated families' golden packet-ins (and of the bench's
request frames) mutated at their headers, with the golden tails, reg0
rewritten where the family keys on it.  Tests also check that the
templates do answer the common requests (no vacuous "everything missed").
"""

from __future__ import annotations

import itertools
import random
import struct

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bench import frames as bench_frames
from pinctrl.db import dns_cache
from pinctrl.handler import dispatch
from pinctrl.handler.buffered_packets import BufferedPackets
from pinctrl.handler.templates import MISS, FastPath
from pinctrl.openflow.packet_in import decode_packet_in2
from pinctrl.shared.state import SharedState
from pinctrl.support import coverage
from testbed import golden as goldens

NOW = 5000
DNS_RECORDS = {"vm1.ovn.test": "10.0.0.11 2001:db8::11",
               "vm2.ovn.test": "10.0.0.12 2001:db8::12",
               "11.0.0.10.in-addr.arpa": "vm1.ovn.test"}
DNS = dns_cache.build_dns_cache([("golden", DNS_RECORDS, [1])])
_PROP = struct.Struct("!HH")


class Side:
    """One environment: what a handler owns, minus the socket."""

    def __init__(self) -> None:
        self.shared = SharedState()
        self.shared.set_dns_cache(DNS)
        xids = itertools.count(1)
        self.bp = BufferedPackets(xids.__next__, self.shared)
        self.env = dispatch.Env(xids.__next__, self.shared, self.bp)
        self.fast = FastPath(self.env, dispatch.REGISTRY)

    def effects(self) -> tuple:
        """The side effects so far (and reset them)."""
        learnt = sorted(self.shared.put_mac_bindings.take().items())
        buffered = [(k, list(q.frames)) for k, q in self.bp._map.items()]
        return learnt, buffered


def _counters() -> dict[str, int]:
    return coverage.snapshot()


def _delta(before: dict[str, int], after: dict[str, int]) -> dict[str, int]:
    return {k: v - before.get(k, 0) for k, v in after.items()
            if v != before.get(k, 0) and not k.startswith("pinctrl_fast_path_")}


def run_reference(side: Side, msg: bytes) -> list[bytes]:
    return dispatch.process_packet_in(decode_packet_in2(msg), side.env, NOW)


def run_fast(side: Side, msg: bytes) -> tuple[list[bytes], bool]:
    """As handler_thread._batch does it; (messages, answered by a
    template)."""
    fp = side.fast
    out: list[bytes] = []
    fp.out = out
    view = memoryview(bytearray(msg))
    hit = fp.answer(view, 0, len(msg), NOW) != MISS
    if not hit:
        out += dispatch.process_packet_in(decode_packet_in2(msg), side.env,
                                          NOW)
    fp.end_batch()
    return out, hit


class Pair:
    def __init__(self) -> None:
        self.ref = Side()
        self.fast = Side()
        self.hits = 0

    def check(self, msg: bytes) -> bool:
        """Both paths on 'msg'; asserts they agree; returns whether a
        template answered."""
        c0 = _counters()
        random.seed(1)          # a broadcast's commit jitter (put_arp)
        want = run_reference(self.ref, msg)
        c1 = _counters()
        random.seed(1)
        got, hit = run_fast(self.fast, msg)
        c2 = _counters()
        assert [m.hex() for m in got] == [m.hex() for m in want]
        assert self.fast.effects() == self.ref.effects()
        assert _delta(c1, c2) == _delta(c0, c1)
        self.hits += hit
        return hit


GOLDEN = [(name, bytes.fromhex(rec["hex"]))
          for name in goldens.exchange_names()
          for rec in goldens.iter_of_messages(goldens.load_exchange(name),
                                              "NXT_PACKET_IN2", "s2c")]
TEMPLATED = {2: "dhcpv4", 6: "dns", 11: "tcp_reset", 0: "arp", 1: "put_arp"}


def _opcode(msg: bytes) -> int:
    return decode_packet_in2(msg).opcode


def test_every_golden_packet_in_twice():
    pair = Pair()
    for _, msg in GOLDEN:
        pair.check(msg)
    for _, msg in GOLDEN:
        pair.check(msg)
    assert pair.hits > 0


@pytest.mark.parametrize("name", [
    "dhcpv4_discover_offer", "dhcpv4_request_ack", "dns_a_hit",
    "dns_miss_forwarded", "router_tcp_reset_v4",
    "arp_resolve_nexthop_put_arp"])
def test_templates_answer_the_common_requests(name):
    """The second sight of each templated golden packet-in is answered by
    its template, with the reference's bytes."""
    pair = Pair()
    msgs = [m for n, m in GOLDEN if n == name and _opcode(m) in TEMPLATED]
    assert msgs
    for msg in msgs:
        pair.check(msg)
        assert pair.check(msg), f"{name}: opcode {_opcode(msg)} missed"


def test_a_new_dns_snapshot_is_seen():
    """The cached answer of a question goes with the DNS snapshot."""
    pair = Pair()
    (msg,) = [m for n, m in GOLDEN if n == "dns_a_hit"]
    assert pair.check(msg) and pair.check(msg)
    other = dns_cache.build_dns_cache([("g", {"vm1.ovn.test": "10.9.9.9"},
                                        [1])])
    for side in (pair.ref, pair.fast):
        side.shared.set_dns_cache(other)
        side.fast.end_batch()           # a new batch reads the snapshot
    assert pair.check(msg)
    for side in (pair.ref, pair.fast):
        side.shared.set_dns_cache(dns_cache.build_dns_cache([]))
        side.fast.end_batch()
    assert pair.check(msg)              # now a miss: result 0


def test_put_arp_batches_one_wake_up():
    """A batch of put_arp packet-ins: one take of the mutex, one wake-up
    of the main thread, as many notifications counted as the reference
    path makes."""
    (msg,) = [m for n, m in GOLDEN if n == "arp_resolve_nexthop_put_arp"
              and _opcode(m) == 1][:1]
    frame, tail = _split(msg)
    ofs = _reg0_offset(tail)
    side = Side()
    seen = side.shared.main_seq.read()
    fp = side.fast
    fp.out = []
    t = bytearray(tail)
    for i in range(5):
        t[ofs:ofs + 4] = bytes((10, 1, 1, i))
        m = build(frame, bytes(t))
        assert fp.answer(memoryview(m), 0, len(m), NOW) == 1
    assert side.shared.main_seq.read() == seen
    n = coverage.get("pinctrl_notify_main_thread")
    fp.end_batch()
    assert side.shared.main_seq.read() == seen + 1
    assert coverage.get("pinctrl_notify_main_thread") == n + 5
    assert len(side.shared.put_mac_bindings) == 5


# --- generated packet-ins ----------------------------------------------------

def _split(msg: bytes) -> tuple[bytes, bytes]:
    """(frame, tail) of a golden packet-in (PACKET is its first property)."""
    ptype, plen = _PROP.unpack_from(msg, 16)
    assert ptype == 0
    return msg[20:16 + plen], msg[16 + (plen + 7) // 8 * 8:]


def build(frame: bytes, tail: bytes) -> bytes:
    pad = -(4 + len(frame)) % 8
    body = _PROP.pack(0, 4 + len(frame)) + frame + bytes(pad) + tail
    hdr = struct.pack("!BBHIII", 6, 4, 16 + len(body), 0, 0x2320, 30)
    return hdr + body


def _reg0_offset(tail: bytes) -> int | None:
    i = tail.find(b"\x80\x01\x00\x08")
    return None if i < 0 else i + 4


SEEDS = [(n, m) for n, m in GOLDEN if _opcode(m) in TEMPLATED]
_BENCH = {2: "dhcp", 6: "dns", 11: "tcp_rst", 0: "arp_resolve",
          1: "put_arp"}


@st.composite
def packet_ins(draw) -> bytes:
    """A templated golden packet-in's tail with its frame (or the bench's
    request frame of that family) mutated: overwritten bytes (header
    fields especially), truncation, extension; reg0 rewritten for arp /
    put_arp."""
    _, msg = draw(st.sampled_from(SEEDS))
    frame, tail = _split(msg)
    op = _opcode(msg)
    if draw(st.booleans()):
        frame = bench_frames.WORKLOADS[_BENCH[op]].frame(
            draw(st.integers(0, 1 << 20)))
    f = bytearray(frame)
    for _ in range(draw(st.integers(0, 4))):
        kind = draw(st.sampled_from(("byte", "hdr", "trunc", "extend")))
        if kind == "extend":
            f += draw(st.binary(min_size=1, max_size=40))
        elif not f:
            continue
        elif kind == "trunc":
            del f[draw(st.integers(0, len(f) - 1)):]
        else:
            hi = min(len(f), 60) if kind == "hdr" else len(f)
            f[draw(st.integers(0, hi - 1))] = draw(st.integers(0, 255))
    t = bytearray(tail)
    ofs = _reg0_offset(tail)
    if op in (0, 1) and ofs is not None and draw(st.booleans()):
        t[ofs:ofs + 4] = draw(st.binary(min_size=4, max_size=4))
    return build(bytes(f), bytes(t))


PAIR = Pair()       # warm caches across examples, as a running handler


@settings(max_examples=300, derandomize=True, deadline=None, database=None,
          suppress_health_check=[HealthCheck.too_slow,
                                 HealthCheck.data_too_large])
@given(packet_ins())
def test_generated_packet_ins_agree(msg):
    PAIR.check(msg)


def test_generated_packet_ins_mostly_hit():
    """The unmutated bench frames on golden tails are template hits."""
    pair = Pair()
    for _, msg in SEEDS:
        frame, tail = _split(msg)
        op = _opcode(msg)
        for ident in range(3):
            f = bench_frames.WORKLOADS[_BENCH[op]].frame(ident)
            pair.check(build(f, tail))
    assert pair.hits >= len(SEEDS)
