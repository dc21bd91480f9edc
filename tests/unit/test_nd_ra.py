"""put_nd_ra_opts (opcode 8) against OVN 23.03's recorded RS -> RA
exchanges, the shared ND option encoders against the recorded userdata,
and hostile input (pinctrl.c pinctrl_handle_put_nd_ra_opts())."""

from __future__ import annotations

import random
import struct

import pytest
from scapy.layers.inet6 import (
    ICMPv6ND_NS,
    ICMPv6ND_RA,
    ICMPv6ND_RS,
    ICMPv6NDOptSrcLLAddr,
    IPv6,
    IPv6ExtHdrHopByHop,
)
from scapy.layers.l2 import Dot1Q, Ether
from scapy.packet import Raw

from pinctrl.actions import REGISTRY
from pinctrl.actions import nd_ra as m
from pinctrl.actions.replies import Resume
from pinctrl.db import ra_plan
from pinctrl.handler import dispatch
from pinctrl.openflow.packet_in import PacketIn
from pinctrl.packet import nd_options
from testbed import golden as goldens
from tests.helpers import counted, record_logs
from tests.helpers import counter_delta as delta

OPCODE_HDR = bytes.fromhex("0000000800000000")
RESULT_HDR = bytes.fromhex("0001de1000000065")     # reg0[5], wire-formats.md
ROUTER_MAC = bytes.fromhex("00000000ff01")
# put_nd_ra_opts(addr_mode = "slaac", mtu = 1500, router_preference =
# "HIGH", prefix = aef0::/64, slla = ae:01:02:03:04:05), tests/ovn.at.
OVN_AT_RA = bytes.fromhex(
    "86000000ff08ffff0000000000000000" "05010000000005dc"
    "030440c0ffffffffffffffff00000000" "aef00000000000000000000000000000"
    "0101ae0102030405")


@pytest.fixture
def logs(monkeypatch):
    return record_logs(monkeypatch, m)


def rs(*extra, vlan: int | None = None, src="fe80::5254:ff:fe00:1",
       ext=None) -> bytes:
    eth = Ether(src="50:54:00:00:00:01", dst="33:33:00:00:00:02")
    if vlan is not None:
        eth = eth / Dot1Q(vlan=vlan)
    ip = IPv6(src=src, dst="ff02::2", hlim=255)
    if ext is not None:
        ip = ip / ext
    pkt = eth / ip / ICMPv6ND_RS()
    for e in extra:
        pkt = pkt / e
    return bytes(pkt)


def run(frame: bytes, body: bytes = OVN_AT_RA, args: bytes | None = None
        ) -> Resume:
    ud = OPCODE_HDR + (RESULT_HDR + body if args is None else args)
    return m.put_nd_ra_opts(PacketIn(frame, userdata=ud))


def checksum_ok(frame: bytes) -> bool:
    """scapy's own ICMPv6 checksum of the reply equals ours."""
    pkt = Ether(frame)
    icmp = pkt[ICMPv6ND_RA]
    ours = icmp.cksum
    del icmp.cksum
    return Ether(bytes(pkt))[ICMPv6ND_RA].cksum == ours


# --- golden exchanges ---------------------------------------------------------

GOLDEN = [pytest.param(rec, resume, id=name)
          for name, _, rec, resume in goldens.paused_pairs("nd_rs_ra_", 8)]


def test_every_nd_rs_ra_golden_is_covered():
    assert len(GOLDEN) == len(goldens.exchange_names("nd_rs_ra_")) == 3


@pytest.mark.parametrize("pin_rec,resume_rec", GOLDEN)
def test_golden_resume_byte_identical(pin_rec, resume_rec, logs):
    pin = goldens.packet_in_from_hex(pin_rec["hex"])
    res = counted(lambda: m.put_nd_ra_opts(pin), "pinctrl_nd_ra_reply")
    goldens.assert_resume_matches(pin, res, resume_rec, 0, 5)
    assert logs.lines == []


@pytest.mark.parametrize("pin_rec,resume_rec", GOLDEN)
def test_golden_through_dispatcher(pin_rec, resume_rec):
    pin = goldens.packet_in_from_hex(pin_rec["hex"])
    out = dispatch.process_packet_in(pin, dispatch.Env())
    assert [o.hex() for o in out] == [resume_rec["hex"]]


def test_registered_as_pausing_opcode_8():
    act = REGISTRY[8]
    assert (act.name, act.pause, act.handler) == (
        "put_nd_ra_opts", True, m.put_nd_ra_opts)


def _golden_body(name: str) -> bytes:
    ex = goldens.load_exchange(name)
    rec = next(goldens.iter_of_messages(ex, "NXT_PACKET_IN2"))
    return bytes.fromhex(rec["userdata_hex"])[16:]


def test_encoders_rebuild_stateful_userdata():
    """lr0-sw0's RA options (dhcpv6_stateful, HIGH, MTU 1400, RDNSS,
    DNSSL, route info, prefix without A) in northd's argument order."""
    body = (nd_options.ra_header(nd_options.RA_FLAG_MANAGED | nd_options.PRF_HIGH)
            + nd_options.opt_slla(ROUTER_MAC) + nd_options.opt_mtu(1400)
            + nd_options.opt_rdnss(bytes.fromhex("20010db8" + "00" * 11 + "01"))
            + nd_options.opt_dnssl("ovn.test")
            + ra_plan.route_info_options("HIGH-2001:db8:2::/48")
            + nd_options.opt_prefix(64, nd_options.PREFIX_ON_LINK,
                           bytes.fromhex("20010db8" + "00" * 12)))
    assert body == _golden_body("nd_rs_ra_sw0_dhcpv6_stateful")
    assert body == _golden_body("nd_rs_ra_no_sllao")


def test_encoders_rebuild_slaac_userdata():
    body = (nd_options.ra_header(0) + nd_options.opt_slla(bytes.fromhex("00000000ff02"))
            + nd_options.opt_prefix(64, nd_options.PREFIX_ON_LINK | nd_options.PREFIX_AUTONOMOUS,
                           bytes.fromhex("20010db80001" + "00" * 10)))
    assert body == _golden_body("nd_rs_ra_sw1_slaac")


# --- encoders -------------------------------------------------------------------

def test_ovn_at_vector():
    assert OVN_AT_RA == (
        nd_options.ra_header(nd_options.PRF_HIGH) + nd_options.opt_mtu(1500)
        + nd_options.opt_prefix(64, 0xC0, bytes.fromhex("aef0" + "00" * 14))
        + nd_options.opt_slla(bytes.fromhex("ae0102030405")))


@pytest.mark.parametrize("text,expected", [
    # strlen + 2 per domain, rounded up: 8 + 10 -> 24.
    ("ovn.test", "1f030000ffffffff" "036f766e0474657374" "00" + "00" * 6),
    # Empty items and labels skipped, but each domain still counts its
    # strlen + 2: 8 + 5 + 6 = 19 -> 24.
    ("a.b,,c..d", "1f030000ffffffff" "01610162000163016400" + "00" * 6),
    # Spaces are not trimmed.
    (" x", "1f020000ffffffff0220780000000000"),
    # Only separators: no domain at all.
    (",", "1f010000ffffffff"),
])
def test_dnssl(text, expected):
    got = nd_options.opt_dnssl(text)
    assert len(got) % 8 == 0 and got[1] * 8 == len(got)
    assert got.hex() == expected.replace(" ", "")


def test_dnssl_limit_and_long_labels():
    assert nd_options.opt_dnssl("a" * 245) is not None        # 8 + 247 = 255
    assert nd_options.opt_dnssl("a" * 246) is None            # 256 > 255
    assert nd_options.opt_dnssl("x" * 100 + "," + "y" * 150) is None
    # A 300-byte label does not fit either; 23.03 would cut it at 255.
    assert nd_options.opt_dnssl("z" * 300) is None


def test_mtu_negative_and_prf():
    assert nd_options.opt_mtu(-1) == bytes.fromhex("05010000ffffffff")
    assert [nd_options.prf_flags(p) for p in ("HIGH", "LOW", "MEDIUM", "high", "")] \
        == [0x08, 0x18, 0, 0, 0]


def test_route_info_lengths():
    net = bytes(range(1, 17))
    assert nd_options.opt_route_info(0, 0, net).hex() == "18010000ffffffff"
    assert nd_options.opt_route_info(0x18, 64, net)[:4].hex() == "18024018"
    assert len(nd_options.opt_route_info(0, 65, net)) == 24
    assert nd_options.opt_route_info(0, 128, net)[8:] == net


# --- replies to hand-built solicitations ---------------------------------------

def test_reply_layout_and_checksum(logs):
    frame = rs(ICMPv6NDOptSrcLLAddr(lladdr="50:54:00:00:00:01"))
    res = run(frame)
    assert res.result is True and (res.dest.reg, res.dest.bit) == (0, 5)
    out = res.packet
    assert out[:54 - 36] == frame[:18]          # Ethernet, IPv6 vers/plen..
    assert out[14 + 8:54] == frame[14 + 8:54]   # addresses, hop limit kept
    assert struct.unpack_from("!H", out, 18)[0] == len(OVN_AT_RA)
    assert out[54:56] == OVN_AT_RA[:2] and out[58:] == OVN_AT_RA[4:]
    assert checksum_ok(out)
    assert logs.lines == []


def test_reply_keeps_vlan_and_drops_padding():
    frame = rs(vlan=7) + b"\0" * 10            # Ethernet padding
    out = run(frame).packet
    pkt = Ether(out)
    assert pkt[Dot1Q].vlan == 7 and len(out) == 18 + 40 + len(OVN_AT_RA)
    assert checksum_ok(out)


def test_reply_to_unspecified_source():
    out = run(rs(src="::")).packet
    assert Ether(out)[IPv6].src == "::" and checksum_ok(out)


def test_extension_header_counted_in_payload_length():
    """Deviation: the payload length covers the hop-by-hop header and the
    checksum is the ICMPv6 one (23.03 would set plen = RA length)."""
    frame = rs(ext=IPv6ExtHdrHopByHop())
    out = run(frame).packet
    pkt = Ether(out)
    assert pkt[IPv6].plen == 8 + len(OVN_AT_RA)
    assert checksum_ok(out)


# --- hostile input --------------------------------------------------------------

@pytest.mark.parametrize("frame", [
    pytest.param(bytes(Ether() / IPv6() / ICMPv6ND_NS(tgt="fe80::1")),
                 id="ns"),
    pytest.param(bytes(Ether() / IPv6(nh=17) / Raw(b"\x85\0\0\0" * 3)),
                 id="udp"),
    pytest.param(bytes(Ether(type=0x0800) / Raw(b"\x45" + b"\0" * 40)),
                 id="ipv4"),
    pytest.param(bytes(Ether() / IPv6(nh=58, plen=4) / Raw(b"\x85\0\0\0")),
                 id="icmp6_too_short"),
    pytest.param(bytes(Ether() / IPv6() / ICMPv6ND_RS(code=1)), id="code1"),
    pytest.param(rs()[:60], id="truncated"),
    pytest.param(b"", id="empty"),
    pytest.param(b"\xff" * 13, id="runt"),
])
def test_not_a_solicitation(frame, logs):
    res = counted(lambda: run(frame), "pinctrl_nd_ra_drop_not_rs")
    assert res.result is False and res.packet == frame
    assert logs.lines == [
        ("WARN", "put_nd_ra action on invalid or unsupported packet")]


def test_no_ra_in_userdata(logs):
    res = counted(lambda: run(rs(), b""), "pinctrl_nd_ra_drop_no_options")
    assert res.result is False and res.dest is not None
    assert logs.lines == [
        ("WARN", "IPv6 ND RA options not present in the userdata")]


def test_ra_shorter_than_its_header(logs):
    res = counted(lambda: run(rs(), OVN_AT_RA[:15]),
                  "pinctrl_nd_ra_drop_short_ra")
    assert res.result is False and len(logs.lines) == 1


def test_reply_too_big():
    body = OVN_AT_RA + b"\0" * (0x10000 - len(OVN_AT_RA))
    res = counted(lambda: run(rs(), body), "pinctrl_nd_ra_drop_too_big")
    assert res.result is False


@pytest.mark.parametrize("args", [
    b"", RESULT_HDR[:6],
    bytes.fromhex("0001de1000000080"),          # offset past xxreg0
    bytes.fromhex("0001df2000000065"),          # masked
    bytes.fromhex("8000040800000001"),          # metadata: not a register
])
def test_bad_result_destination(args, logs):
    res = counted(lambda: run(rs(), args=args + OVN_AT_RA),
                  "pinctrl_nd_ra_drop_bad_result")
    assert res.dest is None and res.result is False
    assert logs.lines[0][0] == "WARN"
    assert logs.lines[0][1].startswith("bad result OXM")


def test_fuzzed_frames_never_raise():
    rng = random.Random(8)
    base = rs(ICMPv6NDOptSrcLLAddr(lladdr="50:54:00:00:00:01"), vlan=3)
    n_reply = 0
    for _ in range(3000):
        frame = bytearray(base[:rng.randrange(len(base) + 1)])
        for _ in range(rng.randrange(4)):
            if frame:
                frame[rng.randrange(len(frame))] = rng.randrange(256)
        body = bytes(rng.randrange(256) for _ in range(rng.randrange(40)))
        res, _ = delta("pinctrl_nd_ra_reply", lambda: run(bytes(frame), body))
        assert isinstance(res, Resume)
        if res.result:
            n_reply += 1
            tail = res.packet[len(res.packet) - len(body):]
            assert tail[:2] + tail[4:] == body[:2] + body[4:]
        else:
            assert res.packet == bytes(frame)
    assert n_reply > 0
