"""Tiny incremental pcap reader (no scapy) for the tx_pcap files OVS writes,
and Packet, a frame captured on a named port.

netdev-dummy appends one record per transmitted packet and flushes after each,
but a reader may still see a half-written record: only complete records are
consumed, the rest is left for the next read.  A file that shrinks (recreated)
is read again from the start.
"""

from __future__ import annotations

import os
import struct
from dataclasses import dataclass

_MAGICS = {
    b"\xd4\xc3\xb2\xa1": ("<", 1e-6),
    b"\xa1\xb2\xc3\xd4": (">", 1e-6),
    b"\x4d\x3c\xb2\xa1": ("<", 1e-9),
    b"\xa1\xb2\x3c\x4d": (">", 1e-9),
}
GLOBAL_HEADER_LEN = 24
RECORD_HEADER_LEN = 16


class PcapError(ValueError):
    pass


@dataclass(frozen=True)
class Packet:
    """A frame transmitted on sandbox port 'port' at pcap time 'ts'."""
    port: str
    ts: float
    data: bytes

    @property
    def hex(self) -> str:
        return self.data.hex()


@dataclass(frozen=True)
class Record:
    ts: float          # pcap timestamp (seconds since the epoch)
    data: bytes        # captured bytes (OVS captures whole frames)
    orig_len: int


def parse_global_header(buf: bytes) -> tuple[str, float]:
    """(struct byte order, timestamp resolution) of a pcap global header."""
    if len(buf) < GLOBAL_HEADER_LEN:
        raise PcapError("short pcap global header")
    try:
        return _MAGICS[buf[:4]]
    except KeyError:
        raise PcapError(f"not a pcap file (magic {buf[:4].hex()})") from None


def parse_records(buf: bytes, order: str, res: float) -> tuple[list[Record], int]:
    """Complete records in buf (which starts at a record boundary) and the
    number of bytes they use."""
    out: list[Record] = []
    pos = 0
    hdr = struct.Struct(order + "IIII")
    while pos + RECORD_HEADER_LEN <= len(buf):
        sec, frac, incl, orig = hdr.unpack_from(buf, pos)
        if incl > 0x4000000:
            raise PcapError(f"corrupt pcap record length {incl} at {pos}")
        end = pos + RECORD_HEADER_LEN + incl
        if end > len(buf):
            break
        out.append(Record(sec + frac * res, bytes(buf[pos + RECORD_HEADER_LEN:end]), orig))
        pos = end
    return out, pos


def read_all(path: str) -> list[Record]:
    with open(path, "rb") as f:
        buf = f.read()
    if not buf:
        return []
    order, res = parse_global_header(buf)
    recs, _ = parse_records(buf[GLOBAL_HEADER_LEN:], order, res)
    return recs


class PcapTail:
    """Follows a pcap file that another process appends to.

    offset() is the byte offset just after the last complete record read so
    far; read_new() returns the records written since then."""

    def __init__(self, path: str, start_at_end: bool = False) -> None:
        self.path = path
        self._fmt: tuple[str, float] | None = None
        self._pos = 0              # absolute offset of the next record
        if start_at_end:
            self.read_new()

    def offset(self) -> int:
        return self._pos

    def seek(self, pos: int) -> None:
        self._pos = pos

    def read_new(self) -> list[Record]:
        try:
            with open(self.path, "rb") as f:
                size = os.fstat(f.fileno()).st_size
                if size < self._pos:            # truncated / recreated
                    self._pos = 0
                    self._fmt = None
                if self._fmt is None:
                    head = f.read(GLOBAL_HEADER_LEN)
                    if len(head) < GLOBAL_HEADER_LEN:
                        return []
                    self._fmt = parse_global_header(head)
                    self._pos = max(self._pos, GLOBAL_HEADER_LEN)
                f.seek(self._pos)
                buf = f.read()
        except FileNotFoundError:
            return []
        recs, used = parse_records(buf, *self._fmt)
        self._pos += used
        return recs
