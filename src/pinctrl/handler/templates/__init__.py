"""Exact-bytes reply templates: the pinctrl_handler thread's fast path.

Most packet-ins of a busy chassis differ from an earlier one of the same
flow and port only in a few bytes of the frame: a DHCP xid, a DNS id, TCP
ports and sequence number.  Everything after the frame — the packet-in's
other properties: table id, cookie, reason, metadata, userdata,
continuation, "the tail" — is the same, and so is every part of the reply
that depends only on it: the action's parsed arguments, the NXT_RESUME
properties with the result bit written, the PACKET_OUT actions.  A
template computes those once per distinct tail, with the reference code
(decode_packet_in2, the actions' own parsers, encode_resume,
reload_metadata), and per packet-in only checks and patches the frame.

The rule: a template answers only packet-ins it answers with the
reference path's exact bytes and side effects (coverage counters, log
lines, handover entries, buffered frames).  Anything else — a VLAN tag,
IP options, a malformed or unusual request, an outcome the template does
not model — is a miss: counted as pinctrl_fast_path_miss_<family>, then
handled by the reference path (handler/dispatch.py), untouched.
tests/unit/test_fast_path_differential.py runs both paths on every golden
exchange and on generated packet-ins.

Keys and caches (all bounded, all handler-private):
  * tail bytes -> Entry (or None: this tail always takes the reference
    path), at most MAX_ENTRIES, flushed whole when full
    (pinctrl_fast_path_flush);
  * for the families whose tail carries the request's own address in
    reg0 (arp: the next hop; put_arp: the sender), the tail with reg0's
    four value bytes zeroed -> Entry, plus the few (tail length, reg0
    offset) shapes seen; two tails equal but for those bytes have the same
    layout, so reg0 is at the same offset in both;
  * per family, what depends on the request (DHCP options, DNS questions:
    handler/templates/dhcpv4.py, dns.py).

Every method runs on the pinctrl_handler thread.
"""

from __future__ import annotations

import struct
from typing import TYPE_CHECKING, Any

from pinctrl.actions import Action
from pinctrl.handler.templates.common import MISS, Entry, Template
from pinctrl.openflow.oxm import OXM_CLASS_PKT_REGS
from pinctrl.openflow.packet_in import (
    OFPR_ACTION,
    PacketIn,
    PacketInError,
    decode_packet_in2,
)
from pinctrl.shared.records import Learnt, MacBindingKey
from pinctrl.support import coverage

if TYPE_CHECKING:
    from pinctrl.handler.dispatch import Env

MAX_ENTRIES = 4096
MAX_SHAPES = 16
_PROP_HDR = struct.Struct("!HH")
_U32 = struct.Struct("!I")
_NXPINT_METADATA = 6
_NXPINT_USERDATA = 7
_ZERO4 = bytes(4)
_ABSENT = object()
# xreg0 as OVS sends it: unmasked, or masked (value then mask).
_XREG0 = _U32.pack((OXM_CLASS_PKT_REGS << 16) | 8)
_XREG0_MASKED = _U32.pack((OXM_CLASS_PKT_REGS << 16) | 0x100 | 16)

__all__ = ["MISS", "FastPath"]


def _templates() -> list[Template]:
    from pinctrl.handler.templates import dhcpv4, dns, learning, neighbor, reset
    return [dhcpv4.DhcpTemplate(), dns.DnsTemplate(), reset.TcpResetTemplate(),
            neighbor.ArpTemplate(), learning.PutArpTemplate()]


def _props(tail: bytes) -> dict[int, tuple[int, int]]:
    """Property type -> (payload offset, payload length) in a tail."""
    out = {}
    ofs, end = 0, len(tail)
    while end - ofs >= 4:
        ptype, plen = _PROP_HDR.unpack_from(tail, ofs)
        if plen < 4 or ofs + plen > end:
            break
        out[ptype] = (ofs + 4, plen - 4)
        ofs += (plen + 7) & ~7
    return out


def _reg0_offset(tail: bytes, props: dict[int, tuple[int, int]]
                 ) -> int | None:
    """Offset in 'tail' of reg0's value (the high half of xreg0, unmasked
    or with a full mask), or None."""
    if _NXPINT_METADATA not in props:
        return None
    ofs, length = props[_NXPINT_METADATA]
    end = ofs + length
    while end - ofs >= 4:
        hdr = tail[ofs:ofs + 4]
        n = tail[ofs + 3]
        if hdr == _XREG0:
            return ofs + 4
        if hdr == _XREG0_MASKED:
            return ofs + 4 if tail[ofs + 12:ofs + 16] == b"\xff" * 4 else None
        ofs += 4 + n
    return None


class FastPath:
    """The templates of one handler.  'out' is the list the current batch's
    replies go to; 'counts' the coverage counters of the batch, added to
    coverage by end_batch()."""

    def __init__(self, env: Env, registry: dict[int, Action]) -> None:
        self.env = env
        self.registry = registry
        # Only the opcodes whose registered action is the reference one a
        # template stands for (split mode may register a counting stub).
        self.templates = {t.opcode: t for t in _templates()
                          if (a := registry.get(t.opcode)) is not None
                          and a.handler is t.handler}
        self._exact: dict[bytes, Entry | None] = {}
        self._shaped: dict[bytes, Entry] = {}
        self._shapes: list[tuple[int, int]] = []
        self.out: list[bytes] = []
        self.counts: dict[str, int] = {}
        # MAC bindings learnt by the batch, put by end_batch().
        self.learnt: list[tuple[MacBindingKey, Learnt]] = []
        self._touched: list[Entry] = []     # entries with hits this batch
        self.batch = 0

    def answer(self, view: memoryview, start: int, end: int, now: int
               ) -> int:
        """The packet-in view[start:end] (a whole NXT_PACKET_IN2): its
        replies appended to 'out' and its opcode returned, or MISS with
        nothing changed but a miss counter."""
        if view[start + 16] or view[start + 17]:
            return MISS                     # PACKET is not the first property
        plen = (view[start + 18] << 8) | view[start + 19]
        tail_start = start + 16 + ((plen + 7) & ~7)
        if plen < 4 or tail_start > end:
            return MISS
        tail = bytes(view[tail_start:end])
        reg0 = None
        entry: Any = self._exact.get(tail, _ABSENT)
        if entry is _ABSENT:
            entry, reg0 = self._shaped_entry(tail)
            if entry is _ABSENT:
                entry, reg0 = self._new_entry(view[start:end], tail)
        if entry is None:
            return MISS
        if entry.template.answer(entry.data, view[start + 20:start + 16 + plen],
                                 reg0, self, now):
            # Counted per entry, turned into counters by end_batch().
            if not entry.hits:
                self._touched.append(entry)
            entry.hits += 1
            opcode: int = entry.template.opcode
            return opcode
        self.count(entry.miss)
        return MISS

    def count(self, name: str, n: int = 1) -> None:
        """A coverage counter for the batch (templates' own counters)."""
        self.counts[name] = self.counts.get(name, 0) + n

    def end_batch(self) -> dict[int, int]:
        """Hand the batch's learnt bindings to the main thread (one mutex
        take, one wake-up) and add its counters to coverage.  Returns the
        packet-ins answered, per opcode."""
        self.batch += 1
        answered: dict[int, int] = {}
        shared = self.env.shared
        if self.learnt and shared is not None:
            stored = shared.put_mac_bindings.put_many(self.learnt)
            self.learnt.clear()
            if stored:
                # As many as the reference path's notify_main() calls.
                self.count("pinctrl_notify_main_thread", stored)
                shared.main_seq.change()
        counts = self.counts
        for e in self._touched:
            for name in ("pinctrl_total_pin_pkts", e.counter, e.hit):
                counts[name] = counts.get(name, 0) + e.hits
            op = e.template.opcode
            answered[op] = answered.get(op, 0) + e.hits
            e.hits = 0
        self._touched.clear()
        if counts:
            for name, n in counts.items():
                coverage.inc(name, n)
            counts.clear()
        return answered

    def sizes(self) -> dict[str, int]:
        """Cache sizes (tests, display)."""
        return {"exact": len(self._exact), "shaped": len(self._shaped)}

    # --- entries --------------------------------------------------------------
    def _shaped_entry(self, tail: bytes) -> tuple[Any, bytes | None]:
        n = len(tail)
        for length, ofs in self._shapes:
            if length == n:
                e = self._shaped.get(tail[:ofs] + _ZERO4 + tail[ofs + 4:])
                if e is not None:
                    return e, tail[ofs:ofs + 4]
        return _ABSENT, None

    def _new_entry(self, msg_view: memoryview, tail: bytes
                   ) -> tuple[Entry | None, bytes | None]:
        props = _props(tail)
        ud = props.get(_NXPINT_USERDATA)
        if ud is None or ud[1] < 8:
            return None, None
        t = self.templates.get(_U32.unpack_from(tail, ud[0])[0])
        if t is None:
            return None, None       # no template: not cached, nothing decoded
        msg = bytes(msg_view)
        entry = None
        try:
            pin = decode_packet_in2(msg)
        except PacketInError:
            pin = None
        if pin is not None and pin.reason == OFPR_ACTION:
            entry = self._prepare(t, pin, msg)
        if len(self._exact) >= MAX_ENTRIES or len(self._shaped) >= MAX_ENTRIES:
            self._exact.clear()
            self._shaped.clear()
            self.count("pinctrl_fast_path_flush")
        if not t.reg0_varies or entry is None:
            self._exact[tail] = entry
            return entry, None
        ofs = _reg0_offset(tail, props)
        if ofs is None:
            self._exact[tail] = None
            return None, None
        shape = (len(tail), ofs)
        if shape not in self._shapes:
            if len(self._shapes) >= MAX_SHAPES:
                self._shapes.clear()
                self._shaped.clear()
            self._shapes.append(shape)
        self._shaped[tail[:ofs] + _ZERO4 + tail[ofs + 4:]] = entry
        return entry, tail[ofs:ofs + 4]

    def _prepare(self, t: Template, pin: PacketIn, msg: bytes) -> Entry | None:
        data = t.prepare(pin, msg, self)
        if data is None:
            return None
        return Entry(t, data, self.registry[t.opcode])
