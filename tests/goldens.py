"""Access to the OVN 23.03 golden exchanges (tests/golden/ovn-23.03).

Small, stable API for unit tests:

    GOLDEN_DIR                      the exchanges directory
    exchange_names(prefix="")       sorted names (file stems) of exchanges
    load_exchange(name)             one exchange file as a dict
    iter_of_messages(ex, msg, dir)  its recorded OpenFlow messages
    decode_of(hexstr)               os-ken message object for one message
    packet_in_from_hex(hexstr)      pinctrl PacketIn from an NXT_PACKET_IN2
    log_text(line)                  (level, text) of an ovn_controller_log line
    paused_pairs(prefix, opcode)    (name, step, packet-in, NXT_RESUME) records
    assert_resume_matches(...)      an action's Resume equals the recorded one

The file format is described in tests/golden/ovn-23.03/README-upstream.md
("Exchange file format").
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any, Iterator

from os_ken.ofproto import ofproto_parser, ofproto_protocol

from pinctrl.openflow.packet_in import PacketIn, from_os_ken

GOLDEN_DIR = Path(__file__).resolve().parent / "golden" / "ovn-23.03" / \
    "exchanges"


def exchange_names(prefix: str = "") -> list[str]:
    """Names (without .json) of the exchanges starting with 'prefix'."""
    return sorted(p.stem for p in GOLDEN_DIR.glob(f"{prefix}*.json"))


def load_exchange(name: str) -> dict[str, Any]:
    """The exchange 'name' (file stem, e.g. "dhcpv4_discover_offer")."""
    with open(GOLDEN_DIR / f"{name}.json", encoding="utf-8") as f:
        return json.load(f)


def iter_of_messages(exchange: dict[str, Any], msg: str | None = None,
                     dir: str | None = None) -> Iterator[dict[str, Any]]:
    """The 'openflow_pinctrl' records of every step, in order, optionally
    only those whose "msg" (e.g. "NXT_PACKET_IN2") and "dir" ("s2c" switch
    to controller, "c2s" controller to switch) match."""
    for step in exchange.get("steps", []):
        for rec in step.get("openflow_pinctrl", []):
            if msg is not None and rec["msg"] != msg:
                continue
            if dir is not None and rec["dir"] != dir:
                continue
            yield rec


def decode_of(hexstr: str):
    """Parse one whole OpenFlow message (hex) with os-ken.  Messages os-ken
    does not know (e.g. NXT_RESUME) come back as a generic object."""
    buf = bytes.fromhex(hexstr)
    version, msg_type, msg_len, xid = ofproto_parser.header(buf)
    return ofproto_parser.msg(ofproto_protocol.ProtocolDesc(version),
                              version, msg_type, msg_len, xid, buf)


def packet_in_from_hex(hexstr: str) -> PacketIn:
    """A recorded NXT_PACKET_IN2 (hex of the whole message) as PacketIn."""
    return from_os_ken(decode_of(hexstr))


def log_text(line: str) -> tuple[str, str]:
    """Split an ovn-controller log line "ts|seq|module(thread)|LEVEL|text"
    into (level, text), e.g. ("INFO", "DHCPOFFER 50:54:00:00:00:01 ...")."""
    parts = line.split("|", 4)
    return parts[3], parts[4]


def replay_step(step: dict[str, Any], env=None):
    """Feed every recorded NXT_PACKET_IN2 of 'step' through
    pinctrl.dispatch.process_packet_in, in order.  Returns (produced,
    expected): the messages we send and the recorded controller-to-switch
    messages (hex-decoded), for comparison with same_message()."""
    from pinctrl.handler import dispatch
    env = env or dispatch.Env()
    produced: list[bytes] = []
    for rec in step.get("openflow_pinctrl", []):
        if rec["msg"] == "NXT_PACKET_IN2" and rec["dir"] == "s2c":
            produced += dispatch.process_packet_in(
                packet_in_from_hex(rec["hex"]), env)
    expected = [bytes.fromhex(rec["hex"])
                for rec in step.get("openflow_pinctrl", [])
                if rec["dir"] == "c2s"]
    return produced, expected


def same_message(ours: bytes, recorded: bytes) -> bool:
    """Byte equality of two OpenFlow messages except the xid (real
    ovn-controller's xids vary): header bytes 0-3 and everything from
    byte 8 on."""
    return ours[:4] == recorded[:4] and ours[8:] == recorded[8:]


def paused_pairs(prefix: str = "", opcode: int | None = None
                 ) -> Iterator[tuple[str, dict[str, Any], dict[str, Any],
                                     dict[str, Any]]]:
    """For every recorded NXT_PACKET_IN2 of the exchanges starting with
    'prefix' (optionally only those whose userdata opcode is 'opcode'):
    (exchange name, step, packet-in record, the next NXT_RESUME record of
    the same step)."""
    for name in exchange_names(prefix):
        for step in load_exchange(name).get("steps", []):
            recs = step["openflow_pinctrl"]
            for i, rec in enumerate(recs):
                if rec["msg"] != "NXT_PACKET_IN2":
                    continue
                if (opcode is not None and int(
                        rec.get("userdata_hex", "")[:8] or "0", 16) != opcode):
                    continue
                resume = next((r for r in recs[i + 1:]
                               if r["msg"] == "NXT_RESUME"), None)
                if resume is not None:
                    yield name, step, rec, resume


def assert_resume_matches(pin: PacketIn, res, resume_rec: dict[str, Any],
                          reg: int, bit: int) -> None:
    """Assert an action's Resume for 'pin' reproduces the recorded
    NXT_RESUME: packet, result register bit reg<reg>[<bit>] (read from the
    recorded message's decoding), the original packet when the result is
    0, and the whole message as the dispatcher encodes it."""
    from pinctrl.openflow.resume import encode_resume
    assert res.packet.hex() == resume_rec["packet_hex"]
    assert (res.dest.reg, res.dest.bit) == (reg, bit)
    value = int(re.search(rf"\breg{reg}=(0x[0-9a-f]+)",
                          resume_rec["decoded"]).group(1), 16)
    assert res.result is bool(value >> bit & 1)
    if not res.result:
        assert res.packet == pin.packet
    pin.metadata.set_reg_bit(reg, bit, res.result)
    assert encode_resume(pin, res.packet).hex() == resume_rec["hex"]
