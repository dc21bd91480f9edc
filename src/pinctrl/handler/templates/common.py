"""What the reply templates share: the per-tail entry, the NXT_RESUME and
PACKET_OUT framing around a patched frame, checksums, lazy log lines.

Pure apart from the caches the callers own; called by the
pinctrl_handler thread.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol

from pinctrl.actions import Action
from pinctrl.openflow import messages as ofmsg
from pinctrl.openflow.oxm import ResultDest
from pinctrl.openflow.packet_in import PacketIn, decode_packet_in2
from pinctrl.openflow.resume import encode_resume

if TYPE_CHECKING:
    from pinctrl.handler.templates import FastPath

_NX_RESUME_HDR = struct.Struct("!BBHIII")
_PROP_HDR = struct.Struct("!HH")
_PACKET_OUT_HDR = struct.Struct("!BBHIIH2x")
_U16 = struct.Struct("!H")
_IP_WORDS = struct.Struct("!10H")
_NX_VENDOR = 0x00002320
_NXT_RESUME = 28
_OFPT_EXPERIMENTER = 4
_OFPT_PACKET_OUT = 13
# encode_resume() with an empty packet: the 16-byte header and an 8-byte
# PACKET property (header + pad) come before the rest of the properties.
_EMPTY_RESUME_PREFIX = 24

MISS = -1


class Template(Protocol):
    """One opcode family's fast path (handler/templates/<family>.py)."""

    opcode: int
    family: str                 # counters: pinctrl_fast_path_{hit,miss}_<family>
    handler: Callable[..., Any]     # the reference action it stands in for
    reg0_varies: bool           # entries keyed with reg0's value masked

    def prepare(self, pin: PacketIn, msg: bytes, fp: FastPath) -> Any:
        """Per-tail data from the decoded packet-in 'pin' (its message
        'msg'), or None: this tail always takes the reference path."""
        ...

    def answer(self, data: Any, frame: memoryview, reg0: bytes | None,
               fp: FastPath, now: int) -> bool:
        """Answer one packet-in whose tail gave 'data' (and whose reg0 is
        'reg0' when reg0_varies): append the replies to fp.out, count into
        fp.counts, return True; or return False (a miss) having changed
        nothing."""
        ...


class Entry:
    """A tail's template: the family and its prepared data, and the action
    whose coverage counter every packet-in of the tail bumps."""

    __slots__ = ("template", "data", "counter", "hit", "miss", "hits")

    def __init__(self, template: Template, data: Any, act: Action) -> None:
        self.template = template
        self.data = data
        self.hits = 0               # answered in the current batch
        self.counter = act.counter
        self.hit = "pinctrl_fast_path_hit_" + template.family
        self.miss = "pinctrl_fast_path_miss_" + template.family


# --- NXT_RESUME -------------------------------------------------------------

class ResumeShape:
    """The NXT_RESUME of a paused packet-in's tail for one result value:
    everything after the PACKET property, computed with the reference
    encoder (dispatch._encode_resume: the result bit written with
    mf_write_subfield semantics into a copy of the metadata), and the
    framing around a frame of any length."""

    __slots__ = ("tail", "_heads")

    def __init__(self, msg: bytes, dest: ResultDest | None,
                 result: bool) -> None:
        pin = decode_packet_in2(msg)
        if dest is not None:
            pin.metadata.set_reg_bit(dest.reg, dest.bit, result)
        self.tail = encode_resume(pin, b"")[_EMPTY_RESUME_PREFIX:]
        self._heads: dict[int, tuple[bytes, bytes]] = {}

    def frame_parts(self, frame_len: int) -> tuple[bytes, bytes]:
        """(header + PACKET property header, pad + the other properties)
        to put around a frame of 'frame_len' bytes."""
        parts = self._heads.get(frame_len)
        if parts is None:
            pad = -(4 + frame_len) % 8
            total = 16 + 4 + frame_len + pad + len(self.tail)
            head = (_NX_RESUME_HDR.pack(6, _OFPT_EXPERIMENTER, total, 0,
                                        _NX_VENDOR, _NXT_RESUME)
                    + _PROP_HDR.pack(0, 4 + frame_len))
            parts = (head, bytes(pad) + self.tail)
            if len(self._heads) < 64:
                self._heads[frame_len] = parts
        return parts

    def wrap(self, frame: bytes | bytearray | memoryview) -> bytes:
        """The NXT_RESUME carrying 'frame'."""
        head, rest = self.frame_parts(len(frame))
        return b"".join((head, frame, rest))


# --- PACKET_OUT -------------------------------------------------------------

class PacketOutShape:
    """OFPT_PACKET_OUT of a frame with fixed 'actions' (messages.packet_out's
    layout: header, the in_port=CONTROLLER match, actions, frame), the xid
    and optionally four bytes of the actions patched per message."""

    __slots__ = ("actions", "_prefix")

    def __init__(self, actions: bytes) -> None:
        self.actions = actions
        self._prefix = ofmsg.MATCH_IN_PORT_CONTROLLER + actions

    def encode(self, xid: int, frame: bytes | bytearray,
               patch_at: int = 0, patch: bytes = b"") -> bytes:
        """The message for 'frame'; 'patch' replaces len(patch) bytes of
        the actions from offset 'patch_at'."""
        prefix = self._prefix
        length = _PACKET_OUT_HDR.size + len(prefix) + len(frame)
        hdr = _PACKET_OUT_HDR.pack(6, _OFPT_PACKET_OUT, length, xid,
                                   0xFFFFFFFF, len(self.actions))
        if not patch:
            return b"".join((hdr, prefix, frame))
        at = len(prefix) - len(self.actions) + patch_at
        return b"".join((hdr, prefix[:at], patch, prefix[at + len(patch):],
                         frame))


# --- checksums -----------------------------------------------------------------

def fold(total: int) -> int:
    """One's-complement fold and complement: the 16-bit checksum value."""
    total = (total & 0xFFFF) + (total >> 16)
    total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def set_ipv4_csum(buf: bytearray, ofs: int) -> None:
    """The checksum of the 20-byte IPv4 header at 'ofs' (its checksum field
    zero on entry), stored in place."""
    _U16.pack_into(buf, ofs + 10, fold(sum(_IP_WORDS.unpack_from(buf, ofs))))
