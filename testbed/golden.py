"""The OVN 23.03 golden recording (tests/golden/ovn-23.03): loading its
exchanges, replaying them offline through the dispatcher, and on the wire
against a Sandbox.

Loading and offline replay (pure, for unit tests):

    GOLDEN, GOLDEN_DIR              the recording / its exchanges directory
    exchange_names(prefix="")       sorted names (file stems) of exchanges
    load_exchange(name)             one exchange file as a dict
    iter_of_messages(ex, msg, dir)  its recorded OpenFlow messages
    decode_of(hexstr)               os-ken message object for one message
    packet_in_from_hex(hexstr)      pinctrl PacketIn from an NXT_PACKET_IN2
    log_text(line)                  (level, text) of an ovn_controller_log line
    replay_step(step, env)          (our messages, recorded messages)
    same_message(ours, recorded)    equal but for the xid
    paused_pairs(prefix, opcode)    (name, step, packet-in, NXT_RESUME) records
    assert_resume_matches(...)      an action's Resume equals the recorded one
    golden_flows(), golden_groups() br-int's recorded flows and groups

On the wire (a started Sandbox, see testbed.ovs_sandbox):

    replay_exchange(sb, exchange)   inject, collect, compare; ReplayResult
    classify_background(port, f)    periodic traffic pinctrl sends unasked

The file format is described in tests/golden/ovn-23.03/README-upstream.md
("Exchange file format").
"""

from __future__ import annotations

import collections
import json
import re
import struct
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterator

from os_ken.ofproto import ofproto_parser, ofproto_protocol

from pinctrl.openflow.packet_in import PacketIn, from_os_ken
from testbed.pcap import Packet

if TYPE_CHECKING:
    from testbed.ovs_sandbox import Sandbox

REPO = Path(__file__).resolve().parents[1]
GOLDEN = REPO / "tests" / "golden" / "ovn-23.03"
GOLDEN_DIR = GOLDEN / "exchanges"


# --- loading -----------------------------------------------------------------

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


def _dump_lines(name: str) -> list[str]:
    lines = [l.strip() for l in (GOLDEN / name).read_text().splitlines()]
    return [l for l in lines if l and not l.startswith(("OFPST", "NXST", "#"))]


def golden_flows(normalize: bool = True) -> list[str]:
    """flows.txt lines; with normalize, in the form they dump after add-flows
    (see Sandbox.install_flows for the one known formatting difference)."""
    lines = _dump_lines("flows.txt")
    if normalize:
        lines = [l.replace("dec_ttl()", "dec_ttl") for l in lines]
    return lines


def golden_groups() -> list[str]:
    """groups.txt lines, as add-groups reads them."""
    return _dump_lines("groups.txt")


# --- offline replay through the dispatcher ------------------------------------

def replay_step(step: dict[str, Any], env=None):
    """Feed every recorded NXT_PACKET_IN2 of 'step' through
    pinctrl.handler.dispatch.process_packet_in, in order.  Returns
    (produced, expected): the messages we send and the recorded
    controller-to-switch messages (hex-decoded), for comparison with
    same_message()."""
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


# --- replay on the wire ---------------------------------------------------------

BACKGROUND_CLASSES = ("periodic_ra", "bfd", "bfd_peer_arp", "garp", "igmp_query", "mld_query",
                      "svc_monitor_probe", "prefix_delegation")


def _l3(frame: bytes) -> tuple[int, int]:
    """(ethertype, offset of L3), skipping VLAN tags."""
    off, et = 12, struct.unpack_from("!H", frame, 12)[0] if len(frame) >= 14 else 0
    while et in (0x8100, 0x88A8) and len(frame) >= off + 6:
        off += 4
        et = struct.unpack_from("!H", frame, off)[0]
    return et, off + 2


def classify_background(port: str, frame: bytes) -> str | None:
    """Class of the periodic traffic pinctrl sends on its own (as the golden
    recording classified it), or None.  Used to ignore such packets when they
    are not part of an exchange's expected replies."""
    try:
        et, o = _l3(frame)
        if et == 0x0806 and len(frame) >= o + 28:
            op = struct.unpack_from("!H", frame, o + 6)[0]
            spa, tpa = frame[o + 14:o + 18], frame[o + 24:o + 28]
            if spa == tpa:
                return "garp"
            if op == 1 and tpa == bytes([172, 16, 0, 253]):
                return "bfd_peer_arp"
            return None
        if et == 0x0800 and len(frame) >= o + 20:
            ihl = (frame[o] & 0x0F) * 4
            proto = frame[o + 9]
            src = frame[o + 12:o + 16]
            l4 = o + ihl
            if proto == 2 and len(frame) > l4 and frame[l4] == 0x11:
                return "igmp_query"
            if proto == 17 and len(frame) >= l4 + 4:
                sport, dport = struct.unpack_from("!HH", frame, l4)
                if dport in (3784, 4784) or sport in (3784,):
                    return "bfd"
            if proto == 6 and src == bytes([10, 0, 1, 2]):
                return "svc_monitor_probe"
            return None
        if et == 0x86DD and len(frame) >= o + 40:
            nh, l4 = frame[o + 6], o + 40
            while nh in (0, 43, 60) and len(frame) >= l4 + 8:   # HBH / routing / dstopts
                nh, l4 = frame[l4], l4 + (frame[l4 + 1] + 1) * 8
            dst = frame[o + 24:o + 40]
            if nh == 58 and len(frame) > l4:
                t = frame[l4]
                if t == 134 and dst == bytes.fromhex("ff020000000000000000000000000001"):
                    return "periodic_ra"
                if t == 130:
                    return "mld_query"
            if nh == 17 and len(frame) >= l4 + 4:
                sport, dport = struct.unpack_from("!HH", frame, l4)
                if dport == 547 and sport == 546:
                    return "prefix_delegation"
                if dport in (3784, 4784):
                    return "bfd"
            return None
    except (struct.error, IndexError):
        return None
    return None


def _mask_allowed(exchange: dict) -> bool:
    ftv = [str(f).strip().lower() for f in exchange.get("fields_that_vary") or []]
    return bool(ftv) and not all(f.startswith("none expected") for f in ftv)


@dataclass
class StepResult:
    title: str
    expected: list[tuple[str, str]]
    got: list[Packet]
    missing: list[tuple[str, str]] = field(default_factory=list)
    unexpected: list[Packet] = field(default_factory=list)
    ignored: list[tuple[str, Packet]] = field(default_factory=list)   # (class, packet)
    elapsed: float = 0.0

    @property
    def ok(self) -> bool:
        return not self.missing and not self.unexpected


@dataclass
class ReplayResult:
    name: str
    steps: list[StepResult]

    @property
    def ok(self) -> bool:
        return all(s.ok for s in self.steps)

    def report(self) -> str:
        lines = [f"exchange {self.name}:"]
        for s in self.steps:
            lines.append(f"  step {s.title!r}: expected {len(s.expected)}, got {len(s.got)} "
                         f"({len(s.ignored)} background ignored) -> {'OK' if s.ok else 'MISMATCH'}")
            for port, hx in s.missing:
                lines.append(f"    missing    {port}: {hx}")
            for p in s.unexpected:
                lines.append(f"    unexpected {p.port}: {p.hex}")
            if s.missing and s.unexpected:
                for port, hx in s.missing:
                    for p in s.unexpected:
                        if p.port == port and len(p.data) * 2 == len(hx):
                            diff = [i for i in range(len(p.data))
                                    if p.data[i] != bytes.fromhex(hx)[i]]
                            lines.append(f"    {port}: same length, differing byte offsets {diff[:40]}")
        return "\n".join(lines)


def replay_exchange(sb: Sandbox, exchange: dict | str,
                    mask: Callable[[str, bytes], bytes] | None = None,
                    timeout: float = 2.0, settle: float = 0.3, quiet: float = 1.0,
                    check: bool = True) -> ReplayResult:
    """Replay a golden exchange step by step: inject every `inject[]` packet on
    its port (keeping the recorded relative timing, capped at 1 s), collect
    what every port transmits, and compare with `replies[]` as multisets of
    (port, bytes).  Packets that the golden run classified as periodic
    background traffic (gARP, periodic RA, BFD, ...) are ignored unless they
    are expected replies.

    Waits until all expected replies have arrived, then `settle` s more for
    extras; a step expecting nothing is watched for `quiet` s.

    `mask(port, frame) -> frame` may blank fields, but only for exchanges whose
    golden `fields_that_vary` admits varying fields.  With check (default) a
    mismatch raises AssertionError with a hex report."""
    if isinstance(exchange, str):
        exchange = load_exchange(exchange)
    if mask is not None and not _mask_allowed(exchange):
        raise ValueError(f"{exchange['name']}: golden fields_that_vary "
                         f"{exchange.get('fields_that_vary')!r} admits no mask")
    norm = mask or (lambda port, data: data)
    results = []
    for step in exchange["steps"]:
        expected = [(r["port"], r["hex"]) for r in step["replies"]]
        exp_norm = collections.Counter((p, norm(p, bytes.fromhex(h))) for p, h in expected)
        need = sum(exp_norm.values())

        def split(pkts: list[Packet]):
            remaining = exp_norm.copy()
            matched, unexpected, ignored = 0, [], []
            for pk in pkts:
                key = (pk.port, norm(pk.port, pk.data))
                if remaining[key] > 0:
                    remaining[key] -= 1
                    matched += 1
                    continue
                cls = classify_background(pk.port, pk.data)
                if cls is not None:
                    ignored.append((cls, pk))
                else:
                    unexpected.append(pk)
            return matched, remaining, unexpected, ignored

        m = sb.mark()
        t0 = time.monotonic()
        t_prev = None
        for inj in step["inject"]:
            t_rel = float(inj.get("t_rel") or 0.0)
            if t_prev is not None and t_rel > t_prev:
                time.sleep(min(t_rel - t_prev, 1.0))
            t_prev = t_rel
            sb.inject(inj["port"], inj["hex"])
        if need:
            pkts = sb.collect(since=m, timeout=timeout, settle=settle,
                              until=lambda pk: split(pk)[0] >= need)
        else:
            pkts = sb.collect(since=m, timeout=quiet)
        matched, remaining, unexpected, ignored = split(pkts)
        missing = []
        for p, h in expected:
            key = (p, norm(p, bytes.fromhex(h)))
            if remaining[key] > 0:
                remaining[key] -= 1
                missing.append((p, h))
        results.append(StepResult(step.get("title", ""), expected, pkts, missing, unexpected,
                                  ignored, time.monotonic() - t0))
    res = ReplayResult(exchange["name"], results)
    if check and not res.ok:
        raise AssertionError(res.report())
    return res
