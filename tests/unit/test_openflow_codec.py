"""OpenFlow codec against the bytes real OVN 23.03 exchanged with OVS."""

import pytest

from pinctrl.openflow import messages as ofmsg
from pinctrl.openflow.oxm import Metadata, OxmError, parse_result_dest
from pinctrl.openflow.packet_in import PacketInError, decode_packet_in2, from_os_ken
from pinctrl.openflow.resume import encode_resume
from testbed import golden as goldens

HANDSHAKE = {m["msg"]: m for m in goldens.load_exchange(
    "openflow_pinctrl_handshake")["pinctrl_conn_non_packet_messages"]}


def _xid(msg):
    return ofmsg.header(bytes.fromhex(msg["hex"]))[3]


@pytest.mark.parametrize("name,build", [
    ("OFPT_GET_CONFIG_REQUEST", ofmsg.get_config_request),
    ("NXT_SET_PACKET_IN_FORMAT", ofmsg.set_packet_in_format),
])
def test_setup_messages_match_23_03(name, build):
    golden = HANDSHAKE[name]
    assert build(_xid(golden)).hex() == golden["hex"]


def test_hello_matches_23_03():
    golden = next(m for m in goldens.load_exchange(
        "openflow_pinctrl_handshake")["pinctrl_conn_non_packet_messages"]
        if m["msg"] == "OFPT_HELLO" and m["dir"] == "c2s")
    assert ofmsg.hello(_xid(golden)).hex() == golden["hex"]


def test_set_config_answers_get_config_reply():
    reply = bytes.fromhex(HANDSHAKE["OFPT_GET_CONFIG_REPLY"]["hex"])
    flags = int.from_bytes(reply[8:10], "big")
    golden = HANDSHAKE["OFPT_SET_CONFIG"]
    assert ofmsg.set_config(_xid(golden), flags).hex() == golden["hex"]


def test_hello_versions():
    switch_hello = bytes.fromhex("060000080000000a")      # no bitmap
    assert ofmsg.hello_versions(switch_hello) == {1, 2, 3, 4, 5, 6}
    assert ofmsg.hello_versions(ofmsg.hello(1)) == {6}


def test_echo_reply_keeps_xid_and_body():
    req = bytes.fromhex("0602000c0000002a") + b"ping"
    assert ofmsg.echo_reply(req) == bytes.fromhex("0603000c0000002a") + b"ping"


def _paused_exchanges():
    """(exchange, packet-in hex, resume hex) for every recorded resume."""
    out = []
    for name in goldens.exchange_names():
        ex = goldens.load_exchange(name)
        for step in ex.get("steps", []):
            msgs = step["openflow_pinctrl"]
            for i, m in enumerate(msgs):
                if m["msg"] != "NXT_RESUME":
                    continue
                # The resume answers the closest preceding packet-in that
                # carries the same continuation.
                pins = [p for p in msgs[:i] if p["msg"] == "NXT_PACKET_IN2"]
                out.append(pytest.param(pins[-1]["hex"], m["hex"],
                                        id=f"{name}-{i}"))
    return out


@pytest.mark.parametrize("pin_hex,resume_hex", _paused_exchanges())
def test_resume_reencodes_recorded_bytes(pin_hex, resume_hex):
    """Decode the recorded packet-in, apply the recorded result bit and
    packet, and encode: byte-identical to the NXT_RESUME real OVN sent."""
    pin = goldens.packet_in_from_hex(pin_hex)
    # NXT_RESUME has NXT_PACKET_IN2's property layout: decode it as one.
    golden_pin = goldens.packet_in_from_hex(
        resume_hex[:30] + "1e" + resume_hex[32:])
    try:
        dest, _ = parse_result_dest(pin.args)
    except OxmError:
        dest = None         # frag-MTU opcodes carry no result bit
    if dest is not None:
        bit = golden_pin.metadata.reg(dest.reg) >> dest.bit & 1
        pin.metadata.set_reg_bit(dest.reg, dest.bit, bool(bit))
    assert encode_resume(pin, golden_pin.packet).hex() == resume_hex


def test_packet_in_fields():
    ex = goldens.load_exchange("dhcpv4_discover_offer")
    m = next(goldens.iter_of_messages(ex, msg="NXT_PACKET_IN2"))
    pin = goldens.packet_in_from_hex(m["hex"])
    assert pin.opcode == 2
    assert pin.cookie_int == 0x18c69006
    assert pin.reason == 1
    assert pin.packet.hex() == m["packet_hex"]
    regs = pin.metadata.regs()
    assert (regs[0], regs[11], regs[12], regs[13], regs[14]) == (
        0x300, 7, 8, 4, 1)
    assert pin.metadata.datapath == 1 and pin.metadata.in_port == 1
    assert pin.continuation is not None


def test_metadata_roundtrip_and_new_masked_entry():
    # in_port=7, xreg7 masked (reg14 = 2), metadata = 1 (docs/wire-formats.md, Packet-in metadata).
    md_hex = ("8000000400000007"
              "80010f100000000200000000ffffffff00000000"
              "800004080000000000000001")
    md = Metadata.parse(bytes.fromhex(md_hex))
    assert md.serialize().hex() == md_hex
    md.set_reg_bit(0, 3, True)
    out = md.serialize().hex()
    # New xreg0 entry, masked, placed before xreg7 (OVS order).
    assert out == ("8000000400000007"
                   "8001011000000008000000000000000800000000"
                   "80010f100000000200000000ffffffff00000000"
                   "800004080000000000000001")
    assert md.reg(0) == 8 and md.reg(14) == 2


def test_set_bit_full_mask_becomes_unmasked():
    md = Metadata.parse(bytes.fromhex(
        "80010110" "0000000000000005" "00000000ffffffff"))
    md.set_reg_bit(0, 0, False)        # mask now covers bit 0 of reg0 only
    assert md.entries[0][4] is not None
    md2 = Metadata.parse(bytes.fromhex("800100080000000100000002"))
    md2.set_reg_bit(1, 4, True)
    assert md2.serialize().hex() == "800100080000000100000012"


@pytest.mark.parametrize("hexstr,reg,bit", [
    ("0001de1000000063", 0, 3),        # reg0[3] via xxreg0 offset 99
    ("0001de1000000064", 0, 4),
    ("0001de1000000040", 1, 0),        # reg1[0] (tests/ovn.at vector)
    ("0001e01000000000", 7, 0),        # xxreg1 offset 0 -> reg7
    ("8001080800000020", 8, 0),        # reg8[0] via xreg4
    ("0001140400000003", 10, 3),       # flags[3] via NXM_NX_REG10
])
def test_result_dest(hexstr, reg, bit):
    dest, rest = parse_result_dest(bytes.fromhex(hexstr) + b"xy")
    assert (dest.reg, dest.bit, rest) == (reg, bit, b"xy")


@pytest.mark.parametrize("hexstr", [
    "", "0001de10", "0001df2000000063",  # short, masked
    "0001de1000000080",                  # offset past xxreg width
    "8000040800000000",                  # metadata is not a register
    "ffff000800002320",                  # experimenter
])
def test_result_dest_rejects(hexstr):
    with pytest.raises(OxmError):
        parse_result_dest(bytes.fromhex(hexstr))


@pytest.mark.parametrize("hexstr", [
    "800000", "8000000400", "80010f10" + "00" * 8, "80000008" + "00" * 5,
])
def test_metadata_rejects_truncated(hexstr):
    with pytest.raises(OxmError):
        Metadata.parse(bytes.fromhex(hexstr))


def test_packet_in_truncations_never_crash():
    """Every prefix of a real packet-in either decodes or raises the
    module's own error types, never anything else."""
    ex = goldens.load_exchange("dhcpv4_discover_offer")
    raw = bytes.fromhex(next(goldens.iter_of_messages(
        ex, msg="NXT_PACKET_IN2"))["hex"])
    for n in range(16, len(raw)):
        buf = bytearray(raw[:n])
        buf[2:4] = n.to_bytes(2, "big")
        try:
            from_os_ken(ofmsg.decode(bytes(buf)))
        except (ofmsg.OpenFlowError, PacketInError):
            pass


def _all_packet_ins():
    return [pytest.param(m["hex"], id=f"{name}-{i}")
            for name in goldens.exchange_names()
            for i, m in enumerate(goldens.iter_of_messages(
                goldens.load_exchange(name), msg="NXT_PACKET_IN2"))]


def _fields(pin):
    return (pin.packet, pin.table_id, pin.cookie, pin.reason,
            pin.metadata.serialize(), pin.userdata, pin.continuation,
            pin.full_len, pin.buffer_id)


@pytest.mark.parametrize("pin_hex", _all_packet_ins())
def test_fast_decoder_agrees_with_os_ken(pin_hex):
    raw = bytes.fromhex(pin_hex)
    fast = decode_packet_in2(raw)
    ref = from_os_ken(ofmsg.decode(raw))
    assert _fields(fast) == _fields(ref)


def test_fast_decoder_rejects_every_truncation():
    ex = goldens.load_exchange("dhcpv4_discover_offer")
    raw = bytes.fromhex(next(goldens.iter_of_messages(
        ex, msg="NXT_PACKET_IN2"))["hex"])
    full = decode_packet_in2(raw)
    decoded = 0
    for n in range(0, len(raw)):
        buf = bytearray(raw[:n])
        if n >= 4:
            buf[2:4] = n.to_bytes(2, "big")
        try:
            pin = decode_packet_in2(bytes(buf))
        except PacketInError:
            continue
        # Only a cut between whole properties (or in padding) after
        # PACKET can decode, and then the packet is intact.
        decoded += 1
        assert pin.packet == full.packet
    assert decoded < len(raw) // 2
