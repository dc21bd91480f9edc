"""OXM/NXM TLVs as they travel in NXT_PACKET_IN2 / NXT_RESUME metadata.

Pure code, no I/O.  OVS serialises a packet's pipeline state (registers,
datapath, conntrack state, ...) as a flat list of OXM/NXM TLVs; in OpenFlow
1.5 the 32-bit registers travel in pairs as 64-bit OXM_OF_PKT_REGn ("xreg")
entries, masked when only one half is non-zero.  pinctrl must echo every entry
in NXT_RESUME (OVS treats a missing field as zero) and may flip one result
bit; see docs/wire-formats.md (packet-in metadata, NXT_RESUME, result bit).
"""

from __future__ import annotations

import struct

OXM_CLASS_NXM0 = 0x0000
OXM_CLASS_NXM1 = 0x0001
OXM_CLASS_OPENFLOW_BASIC = 0x8000
OXM_CLASS_PKT_REGS = 0x8001
OXM_CLASS_EXPERIMENTER = 0xFFFF

# (class, field) of the entries pinctrl interprets.
F_IN_PORT = (OXM_CLASS_OPENFLOW_BASIC, 0)
F_METADATA = (OXM_CLASS_OPENFLOW_BASIC, 2)
F_PKT_MARK = (OXM_CLASS_NXM1, 33)
NXM_NX_XXREG_FIELD0 = 111           # NXM_NX_XXREG0..3 are class 1, 111..114

# Value widths of the fields pinctrl reads or writes; another width is a
# malformed packet-in (OVS never sends one), refused at parse time so no
# later arithmetic overflows.
_WIDTHS = {F_IN_PORT: 4, F_METADATA: 8, F_PKT_MARK: 4}
_WIDTHS.update({(OXM_CLASS_PKT_REGS, i): 8 for i in range(8)})
_WIDTHS.update({(OXM_CLASS_NXM1, i): 4 for i in range(16)})
_WIDTHS.update({(OXM_CLASS_NXM1, NXM_NX_XXREG_FIELD0 + i): 16
                for i in range(4)})

# Metadata.parse memo: METADATA bytes -> parsed entries (tuples).
_PARSED: dict[bytes, tuple[tuple, ...]] = {}
_PARSED_MAX = 4096

_U64 = struct.Struct("!Q")
_U32 = struct.Struct("!I")
_ALL64 = (1 << 64) - 1


class OxmError(ValueError):
    """Malformed OXM/NXM data (truncated TLV, bad length, bad field)."""


def _header(cls: int, field: int, hasmask: bool, length: int) -> int:
    return (cls << 16) | (field << 9) | (int(hasmask) << 8) | length


def _ovs_rank(cls: int, field: int) -> int:
    """Position of a field in OVS's metadata serialisation order
    (nx_put_raw): in_port, eth_type, tunnel..., xregs, pkt_mark, ct_*,
    metadata.  Used only to place an entry pinctrl adds."""
    if cls == OXM_CLASS_PKT_REGS:
        return 100 + field
    if (cls, field) == F_PKT_MARK:
        return 200
    if (cls, field) == F_METADATA:
        return 400
    if cls == OXM_CLASS_NXM1 and 105 <= field <= 125:   # ct_state.. ct_tp_dst
        return 300
    return 0 if (cls, field) == F_IN_PORT else 50


class Metadata:
    """The METADATA property of a packet-in: an ordered list of TLVs.

    Entries are kept as [cls, field, header_bytes, value, mask|None] so that
    serialize() reproduces the received bytes exactly unless a bit was set.
    """

    __slots__ = ("entries", "raw")

    def __init__(self, entries: list[list] | None = None,
                 raw: bytes | None = None) -> None:
        self.entries = entries if entries is not None else []
        # The bytes parsed, while the entries are unchanged (a cache key
        # for what is derived from the metadata, e.g. reload_metadata).
        self.raw = raw

    @classmethod
    def parse(cls, buf: bytes) -> "Metadata":
        """Parse a METADATA property.  The same bytes come back for every
        packet of a flow and port, so parsed entries are memoized (per
        process, bounded); each Metadata gets its own copies, which
        set_reg_bit may edit."""
        buf = bytes(buf)
        cached = _PARSED.get(buf)
        if cached is None:
            cached = cls._parse(buf)
            if len(_PARSED) >= _PARSED_MAX:
                _PARSED.clear()
            _PARSED[buf] = cached
        return cls([list(e) for e in cached], buf)

    @staticmethod
    def _parse(buf: bytes) -> tuple[tuple, ...]:
        entries = []
        ofs, end = 0, len(buf)
        while ofs < end:
            if end - ofs < 4:
                raise OxmError("truncated OXM header")
            hdr = _U32.unpack_from(buf, ofs)[0]
            ocls, field = hdr >> 16, (hdr >> 9) & 0x7F
            hasmask, length = (hdr >> 8) & 1, hdr & 0xFF
            hlen = 8 if ocls == OXM_CLASS_EXPERIMENTER else 4
            plen = length - (hlen - 4)
            if plen <= 0 or ofs + 4 + length > end:
                raise OxmError("bad OXM length")
            if hasmask and plen % 2:
                raise OxmError("odd masked OXM length")
            body = buf[ofs + hlen:ofs + 4 + length]
            if hasmask:
                half = plen // 2
                value, mask = bytes(body[:half]), bytes(body[half:])
            else:
                value, mask = bytes(body), None
            width = _WIDTHS.get((ocls, field))
            if width is not None and len(value) != width:
                raise OxmError(f"OXM {ocls:#x}:{field} is {len(value)} "
                               f"bytes, not {width}")
            entries.append((ocls, field, bytes(buf[ofs:ofs + hlen]),
                            value, mask))
            ofs += 4 + length
        return tuple(entries)

    def serialize(self) -> bytes:
        out = bytearray()
        for ocls, field, hdr, value, mask in self.entries:
            out += hdr
            out += value
            if mask is not None:
                out += mask
        return bytes(out)

    # --- lookups -----------------------------------------------------------
    def _find(self, key: tuple[int, int]) -> list | None:
        for e in self.entries:
            if e[0] == key[0] and e[1] == key[1]:
                return e
        return None

    def _int(self, key: tuple[int, int]) -> int:
        e = self._find(key)
        if e is None:
            return 0
        v = int.from_bytes(e[3], "big")
        if e[4] is not None:
            v &= int.from_bytes(e[4], "big")
        return v

    @property
    def in_port(self) -> int:
        return self._int(F_IN_PORT)

    @property
    def datapath(self) -> int:
        """OXM_OF_METADATA: the logical datapath's tunnel key."""
        return self._int(F_METADATA)

    @property
    def pkt_mark(self) -> int:
        return self._int(F_PKT_MARK)

    def regs(self) -> list[int]:
        """The 16 32-bit registers (0 where absent)."""
        regs = [0] * 16
        for ocls, field, hdr, value, mask in self.entries:
            v = int.from_bytes(value, "big")
            if mask is not None:
                v &= int.from_bytes(mask, "big")
            if ocls == OXM_CLASS_PKT_REGS and field < 8:
                regs[2 * field] = v >> 32
                regs[2 * field + 1] = v & 0xFFFFFFFF
            elif ocls == OXM_CLASS_NXM1 and field < 16:
                regs[field] = v
            elif (ocls == OXM_CLASS_NXM1
                  and NXM_NX_XXREG_FIELD0 <= field < NXM_NX_XXREG_FIELD0 + 4):
                k = field - NXM_NX_XXREG_FIELD0
                for i in range(4):
                    regs[4 * k + i] = (v >> (32 * (3 - i))) & 0xFFFFFFFF
        return regs

    def reg(self, n: int) -> int:
        return self.regs()[n]

    # --- the one edit pinctrl makes ------------------------------------------
    def set_reg_bit(self, reg: int, bit: int, value: bool) -> None:
        """Write one register bit with OVS mf_write_subfield semantics:
        set the value bit and the mask bit of the register's xreg entry,
        adding a masked entry (in OVS order) when the pair was absent."""
        k = reg // 2
        shift = bit + (32 if reg % 2 == 0 else 0)
        e = self._find((OXM_CLASS_PKT_REGS, k))
        if e is None:
            cur_v, cur_m = 0, 0
        else:
            cur_v = int.from_bytes(e[3], "big")
            cur_m = _ALL64 if e[4] is None else int.from_bytes(e[4], "big")
        new_v = (cur_v & ~(1 << shift)) | (int(value) << shift)
        new_m = cur_m | (1 << shift)
        if new_m == _ALL64:
            entry = [OXM_CLASS_PKT_REGS, k,
                     _U32.pack(_header(OXM_CLASS_PKT_REGS, k, False, 8)),
                     _U64.pack(new_v), None]
        else:
            entry = [OXM_CLASS_PKT_REGS, k,
                     _U32.pack(_header(OXM_CLASS_PKT_REGS, k, True, 16)),
                     _U64.pack(new_v & new_m), _U64.pack(new_m)]
        self.raw = None
        if e is not None:
            e[:] = entry
            return
        rank = _ovs_rank(OXM_CLASS_PKT_REGS, k)
        for i, other in enumerate(self.entries):
            if _ovs_rank(other[0], other[1]) > rank:
                self.entries.insert(i, entry)
                return
        self.entries.append(entry)


class ResultDest:
    """Where an "R = action(...)" opcode writes its 1-bit result
    (docs/wire-formats.md, result destination)."""

    __slots__ = ("reg", "bit")

    def __init__(self, reg: int, bit: int) -> None:
        self.reg = reg
        self.bit = bit

    def __repr__(self) -> str:
        return f"ResultDest(reg{self.reg}[{self.bit}])"


def parse_result_dest(args: bytes) -> tuple[ResultDest, bytes]:
    """Parse the OXM header + be32 bit offset that start the userdata
    arguments of put_dhcp_opts, put_dhcpv6_opts, dns_lookup and
    put_nd_ra_opts.  Returns the destination and the remaining bytes;
    raises OxmError if the destination is not a writable register bit."""
    if len(args) < 8:
        raise OxmError("result destination truncated")
    hdr = _U32.unpack_from(args, 0)[0]
    ocls, field = hdr >> 16, (hdr >> 9) & 0x7F
    hasmask, length = (hdr >> 8) & 1, hdr & 0xFF
    if ocls == OXM_CLASS_EXPERIMENTER:
        raise OxmError("experimenter result destination not supported")
    if hasmask:
        raise OxmError("masked result destination")
    ofs = _U32.unpack_from(args, 4)[0]
    if (ocls == OXM_CLASS_NXM1 and length == 16
            and NXM_NX_XXREG_FIELD0 <= field < NXM_NX_XXREG_FIELD0 + 4):
        if ofs >= 128:
            raise OxmError("result offset out of range")
        k = field - NXM_NX_XXREG_FIELD0
        dest = ResultDest(4 * k + 3 - ofs // 32, ofs % 32)
    elif ocls == OXM_CLASS_PKT_REGS and length == 8 and field < 8:
        if ofs >= 64:
            raise OxmError("result offset out of range")
        dest = ResultDest(2 * field + 1 - ofs // 32, ofs % 32)
    elif ocls == OXM_CLASS_NXM1 and length == 4 and field < 16:
        if ofs >= 32:
            raise OxmError("result offset out of range")
        dest = ResultDest(field, ofs)
    else:
        raise OxmError(f"result destination {hdr:#010x} is not a register")
    return dest, args[8:]
