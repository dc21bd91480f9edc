"""OpenFlow 1.5 action encoders for the packet-outs pinctrl sends.

Pure functions returning raw action bytes (docs/wire-formats.md), to be put
in PacketOut.actions (the dispatcher adds the header and the
in_port=CONTROLLER match).  Encodings are OVS 3.1's for OF1.5:

* set_field (OFPAT_SET_FIELD, type 25): the OXM/NXM TLV of the field, value
  then mask when masked, zero-padded to 8 bytes.  A mask covering the whole
  field is encoded unmasked, as OVS does.
* resubmit(port, table) (NXAST_RESUBMIT_TABLE): in_port as a 16-bit OF1.0
  port, CONTROLLER = 0xfffd, IN_PORT = 0xfff8.

reload_metadata(md) is 23.03's reload_metadata() (pinctrl.c:6084): the
pipeline state a nested-action packet-out starts from.

Usage:
    actions = reload_metadata(pin.metadata) + nested_actions
    actions = (set_metadata(dp_key) + set_reg(14, port_key)
               + resubmit(table=8))
"""

from __future__ import annotations

import struct

from pinctrl.openflow.oxm import (
    F_METADATA,
    NXM_NX_XXREG_FIELD0,
    OXM_CLASS_NXM1,
    OXM_CLASS_PKT_REGS,
    Metadata,
)

OFPAT_SET_FIELD = 25
OFPAT_EXPERIMENTER = 0xFFFF
NX_VENDOR_ID = 0x00002320
NXAST_RESUBMIT_TABLE = 14

# 16-bit (OF1.0) port numbers, as NXAST_RESUBMIT_TABLE carries them.
OFPP_IN_PORT = 0xFFF8
OFPP_CONTROLLER = 0xFFFD

# Header bytes (class, field, width in bytes) of the fields pinctrl loads.
OXM_METADATA = (0x8000, 2, 8)           # OXM_OF_METADATA, 80.00.04.08
NXM_PKT_MARK = (0x0001, 33, 4)          # NXM_NX_PKT_MARK, 00.01.42.04
N_REGS = 16

_U16 = struct.Struct("!H")
_RESUBMIT = struct.Struct("!HHIHHB3x")


def nxm_reg(n: int) -> tuple[int, int, int]:
    """(class, field, width) of NXM_NX_REGn (00.01.(2n).04)."""
    if not 0 <= n < N_REGS:
        raise ValueError(f"no register reg{n}")
    return (OXM_CLASS_NXM1, n, 4)


def _oxm(field: tuple[int, int, int], value: int, mask: int | None) -> bytes:
    cls, fid, width = field
    full = (1 << (8 * width)) - 1
    if not 0 <= value <= full or (mask is not None and not 0 <= mask <= full):
        raise ValueError("set_field value or mask wider than the field")
    if mask == full:
        mask = None
    length = width if mask is None else 2 * width
    hdr = struct.pack("!I", (cls << 16) | (fid << 9)
                      | (int(mask is not None) << 8) | length)
    if mask is None:
        return hdr + value.to_bytes(width, "big")
    # OVS stores value & mask (a load never touches bits outside it).
    return (hdr + (value & mask).to_bytes(width, "big")
            + mask.to_bytes(width, "big"))


def set_field(field: tuple[int, int, int], value: int,
              mask: int | None = None) -> bytes:
    """OFPAT_SET_FIELD of 'field' ((class, field, width) triple) to
    'value', masked by 'mask' unless it is None or all-ones."""
    tlv = _oxm(field, value, mask)
    length = (4 + len(tlv) + 7) // 8 * 8
    return (_U16.pack(OFPAT_SET_FIELD) + _U16.pack(length) + tlv
            + bytes(length - 4 - len(tlv)))


def set_reg(n: int, value: int, mask: int | None = None) -> bytes:
    """regN = value (32 bits), or only the bits in 'mask'."""
    return set_field(nxm_reg(n), value, mask)


def set_reg_bit(n: int, bit: int, value: bool = True) -> bytes:
    """regN[bit] = value: a masked load of one bit."""
    if not 0 <= bit < 32:
        raise ValueError(f"reg{n} has no bit {bit}")
    return set_reg(n, int(value) << bit, 1 << bit)


def set_metadata(value: int, mask: int | None = None) -> bytes:
    """OXM_OF_METADATA (the logical datapath key) = value."""
    return set_field(OXM_METADATA, value, mask)


def set_pkt_mark(value: int, mask: int | None = None) -> bytes:
    """pkt_mark = value."""
    return set_field(NXM_PKT_MARK, value, mask)


def resubmit(table: int, in_port: int = OFPP_CONTROLLER) -> bytes:
    """resubmit(in_port, table); in_port defaults to CONTROLLER, as every
    pinctrl-originated injection uses."""
    if not 0 <= table <= 0xFF or not 0 <= in_port <= 0xFFFF:
        raise ValueError("resubmit table or port out of range")
    return _RESUBMIT.pack(OFPAT_EXPERIMENTER, _RESUBMIT.size, NX_VENDOR_ID,
                          NXAST_RESUBMIT_TABLE, in_port, table)


def metadata_loads(md: Metadata) -> tuple[list[tuple[int, int]], int | None]:
    """The fields reload_metadata() restores from packet-in metadata:
    ([(reg, value)] for every register whose mask is not all-zero, in
    register order; metadata value or None).  Registers may arrive as
    OXM_OF_PKT_REGn pairs (what OVS sends in OF1.5), NXM_NX_REGn or
    NXM_NX_XXREGn; a half of a masked pair with a zero mask is absent."""
    values = [0] * N_REGS
    present = [False] * N_REGS
    datapath = None

    def put(reg: int, v: int, m: int) -> None:
        if m:
            present[reg] = True
            values[reg] = v & m

    for cls, field, _hdr, value, mask in md.entries:
        v = int.from_bytes(value, "big")
        m = ((1 << (8 * len(value))) - 1 if mask is None
             else int.from_bytes(mask, "big"))
        if cls == OXM_CLASS_PKT_REGS and field < 8 and len(value) == 8:
            put(2 * field, v >> 32, m >> 32)
            put(2 * field + 1, v & 0xFFFFFFFF, m & 0xFFFFFFFF)
        elif cls == OXM_CLASS_NXM1 and field < 16 and len(value) == 4:
            put(field, v, m)
        elif (cls == OXM_CLASS_NXM1 and len(value) == 16
              and NXM_NX_XXREG_FIELD0 <= field < NXM_NX_XXREG_FIELD0 + 4):
            k = field - NXM_NX_XXREG_FIELD0
            for i in range(4):
                sh = 32 * (3 - i)
                put(4 * k + i, (v >> sh) & 0xFFFFFFFF, (m >> sh) & 0xFFFFFFFF)
        elif (cls, field) == F_METADATA and len(value) == 8 and m:
            datapath = v & m
    return [(r, values[r]) for r in range(N_REGS) if present[r]], datapath


def reload_metadata(md: Metadata) -> bytes:
    """23.03's reload_metadata(): an unmasked set_field for each of
    reg0..reg15 present in the packet-in metadata, then for metadata.
    Memoized by the metadata's bytes while they are unedited (the same for
    every packet of a flow and port)."""
    if md.raw is None:
        return _reload_metadata(md)
    out = _RELOADS.get(md.raw)
    if out is None:
        out = _reload_metadata(md)
        if len(_RELOADS) >= _RELOADS_MAX:
            _RELOADS.clear()
        _RELOADS[md.raw] = out
    return out


_RELOADS: dict[bytes, bytes] = {}
_RELOADS_MAX = 4096


def _reload_metadata(md: Metadata) -> bytes:
    regs, datapath = metadata_loads(md)
    out = b"".join(set_reg(r, v) for r, v in regs)
    if datapath is not None:
        out += set_metadata(datapath)
    return out


def actions_well_formed(buf: bytes) -> bool:
    """Structural check of an OpenFlow 1.5 action list (e.g. the nested
    actions in controller-action userdata): every action has a length that
    is a multiple of 8, at least 8 (16 for an experimenter action) and
    within the buffer.  23.03 fully decodes the list and drops the
    packet-out with "failed to parse actions from userdata" on error;
    OVS still validates the actions of the packet-out we send."""
    ofs, end = 0, len(buf)
    while ofs < end:
        if end - ofs < 8:
            return False
        atype, alen = struct.unpack_from("!HH", buf, ofs)
        if (alen < (16 if atype == OFPAT_EXPERIMENTER else 8) or alen % 8
                or alen > end - ofs):
            return False
        ofs += alen
    return True
