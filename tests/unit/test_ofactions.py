"""pinctrl.openflow.ofactions: OF1.5 action encoders against the reference's
examples and the actions of every golden nested-action PACKET_OUT."""

from __future__ import annotations

import struct

import pytest

from pinctrl.openflow import ofactions as A
from pinctrl.openflow.oxm import Metadata
from testbed import golden as goldens

NESTED_OPCODES = {0, 3, 9, 10, 11, 12, 14, 20, 22, 24}


def _nested_packet_outs():
    """(name, packet-in record, PACKET_OUT record) for every recorded
    packet-out answering a nested-action packet-in."""
    cases = []
    for name in goldens.exchange_names():
        ex = goldens.load_exchange(name)
        for step in ex["steps"]:
            last_pin = None
            for rec in step["openflow_pinctrl"]:
                if rec["msg"] == "NXT_PACKET_IN2":
                    last_pin = rec
                elif rec["msg"] == "OFPT_PACKET_OUT" and last_pin:
                    op = int(last_pin["userdata_hex"][:8], 16)
                    if op in NESTED_OPCODES:
                        cases.append(pytest.param(last_pin, rec,
                                                  id=f"{name}-{rec['xid']}"))
    return cases


NESTED = _nested_packet_outs()


def _actions(po_hex: str) -> bytes:
    po = bytes.fromhex(po_hex)
    actions_len = struct.unpack_from("!H", po, 12)[0]
    assert po[16:32] == bytes.fromhex("0001000c80000004fffffffd00000000")
    return po[32:32 + actions_len]


def test_every_family_packet_out_is_covered():
    names = {p.id.rsplit("-", 1)[0] for p in NESTED}
    family = (goldens.exchange_names("acl_reject_")
              + goldens.exchange_names("router_")
              + goldens.exchange_names("lb_empty_backends_reject"))
    assert len(family) == 20
    assert set(family) <= names


@pytest.mark.parametrize("pin_rec,po_rec", NESTED)
def test_golden_actions_are_reload_metadata_plus_userdata(pin_rec, po_rec):
    pin = goldens.packet_in_from_hex(pin_rec["hex"])
    acts = _actions(po_rec["hex"])
    reload = A.reload_metadata(pin.metadata)
    assert acts == reload + pin.args
    # The reload part is only set_field actions of 16 bytes.
    assert len(reload) % 16 == 0 and reload
    assert all(reload[i:i + 4] == b"\x00\x19\x00\x10"
               for i in range(0, len(reload), 16))


@pytest.mark.parametrize("pin_rec,po_rec", NESTED[:3])
def test_golden_reload_matches_decoded_set_fields(pin_rec, po_rec):
    """Cross-check with ovs-ofctl's decoding of the recorded packet-out."""
    pin = goldens.packet_in_from_hex(pin_rec["hex"])
    regs, dp = A.metadata_loads(pin.metadata)
    text = po_rec["decoded"]
    for r, v in regs:
        assert f"set_field:{v:#x}->reg{r}," in text
    assert f"set_field:{dp:#x}->metadata" in text


# --- encoders from bytes (docs/wire-formats.md) ---------------------------

def test_set_reg_example():
    assert A.set_reg(14, 5).hex() == "00190010" "00011c04" "00000005" "00000000"


def test_set_metadata_example():
    assert A.set_metadata(7).hex() == "00190010" "80000408" "0000000000000007"


def test_set_pkt_mark():
    assert A.set_pkt_mark(0x10).hex() == "00190010" "00014204" "00000010" \
        "00000000"


def test_masked_reg_bit():
    # reg10[4] = 1 (periodic RA local_only flag): masked NXM_NX_REG10.
    assert A.set_reg_bit(10, 4).hex() == \
        "00190010" "00011508" "00000010" "00000010"
    assert A.set_reg_bit(10, 16, False).hex() == \
        "00190010" "00011508" "00000000" "00010000"


def test_full_mask_is_encoded_unmasked():
    assert A.set_reg(3, 9, 0xFFFFFFFF) == A.set_reg(3, 9)
    assert A.set_metadata(1, (1 << 64) - 1) == A.set_metadata(1)


def test_masked_metadata_is_padded_to_8():
    b = A.set_metadata(0x12, 0xFF)
    assert len(b) == 24 and b[:8].hex() == "0019001880000510"
    assert b[8:24] == (0x12).to_bytes(8, "big") + (0xFF).to_bytes(8, "big")


def test_masked_value_outside_mask_is_dropped():
    assert A.set_reg(0, 0xFF, 0x0F)[8:12] == b"\x00\x00\x00\x0f"


def test_resubmit_example():
    assert A.resubmit(37).hex() == "ffff001000002320000efffd25000000"
    assert A.resubmit(64, A.OFPP_IN_PORT).hex() == \
        "ffff001000002320000efff840000000"


@pytest.mark.parametrize("call", [
    lambda: A.set_reg(16, 0), lambda: A.set_reg(-1, 0),
    lambda: A.set_reg(0, 1 << 32), lambda: A.set_reg(0, -1),
    lambda: A.set_reg_bit(0, 32), lambda: A.resubmit(256),
    lambda: A.set_metadata(1 << 64), lambda: A.set_reg(0, 1, 1 << 32)])
def test_out_of_range_raises_value_error(call):
    with pytest.raises(ValueError):
        call()


# --- reload_metadata ----------------------------------------------------------

def _md(*tlvs: bytes) -> Metadata:
    return Metadata.parse(b"".join(tlvs))


IN_PORT = bytes.fromhex("8000000400000007")
DP = bytes.fromhex("800004080000000000000003")


def test_reload_masked_pairs_only_present_halves():
    md = _md(IN_PORT,
             # xreg0 masked: only reg1 (low half) present.
             bytes.fromhex("80010110" "00000000000000aa" "00000000ffffffff"),
             # xreg7 unmasked: reg14 and reg15.
             bytes.fromhex("80010e08" "0000000100000002"),
             DP)
    assert A.metadata_loads(md) == ([(1, 0xAA), (14, 1), (15, 2)], 3)
    assert A.reload_metadata(md) == (A.set_reg(1, 0xAA) + A.set_reg(14, 1)
                                     + A.set_reg(15, 2) + A.set_metadata(3))


def test_reload_unmasked_zero_half_is_present():
    """An unmasked pair means both registers are known, even a zero one
    (mf_is_all_wild is false): 23.03 reloads it."""
    md = _md(bytes.fromhex("80010208" "0000000000000005"))
    assert A.metadata_loads(md) == ([(2, 0), (3, 5)], None)


def test_reload_nxm_and_xxreg_registers():
    md = _md(bytes.fromhex("00010a04" "00000009"),        # NXM_NX_REG5
             bytes.fromhex("0001e010" + "00000001000000020000000300000004"))
    regs, dp = A.metadata_loads(md)
    # The later XXREG1 entry wins for reg5, as in OVS's decoding.
    assert regs == [(4, 1), (5, 2), (6, 3), (7, 4)]
    assert dp is None


def test_reload_empty_and_other_fields_ignored():
    md = _md(IN_PORT, bytes.fromhex("00014204" "00000001"),   # pkt_mark
             bytes.fromhex("0001d204" "00000021"))            # ct_state
    assert A.reload_metadata(md) == b""
    assert A.reload_metadata(Metadata()) == b""


def test_reload_metadata_zero_mask_not_present():
    md = _md(bytes.fromhex("80000510" "0000000000000003" "0000000000000000"))
    assert A.metadata_loads(md) == ([], None)


# --- action list check ---------------------------------------------------------

@pytest.mark.parametrize("buf,ok", [
    (b"", True),
    (A.set_reg(1, 2) + A.resubmit(8), True),
    (A.set_reg(1, 2)[:12], False),                       # truncated
    (bytes.fromhex("00190007") + bytes(4), False),       # length 7
    (bytes.fromhex("00190000") + bytes(4), False),       # length 0: loop
    (bytes.fromhex("00190018") + bytes(12), False),      # past the end
    (bytes.fromhex("ffff0008") + bytes(4), False),       # short experimenter
    (bytes.fromhex("0000000c") + bytes(12), False),      # not a multiple of 8
])
def test_actions_well_formed(buf, ok):
    assert A.actions_well_formed(buf) is ok
