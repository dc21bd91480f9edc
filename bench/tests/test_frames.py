"""Pure tests of the bench's frames, answer matching, report and profile
parsing (no sandbox).  Run: .venv/bin/pytest -q bench/tests"""

from __future__ import annotations

import struct

import pytest

from bench import frames
from bench.frames import WORKLOADS
from bench.profile import parse_collapsed
from bench.report import Results, table
from pinctrl.packet import headers as pkt
from testbed.golden import load_exchange


def _golden(name: str, kind: str, i: int = 0) -> bytes:
    step = load_exchange(name)["steps"][0]
    return bytes.fromhex(step[kind][i]["hex"])


def _l4_ok(f: bytes) -> bool:
    proto, l4 = f[23], frames.L4
    if proto == 17 and f[l4 + 6:l4 + 8] == b"\0\0":
        return True
    return pkt.csum(f[l4:], pkt.pseudo_sum_ipv4(f[26:30], f[30:34], proto, len(f) - l4)) == 0


@pytest.mark.parametrize("name", ["dhcp", "dns", "tcp_rst", "arp_resolve"])
@pytest.mark.parametrize("ident", [0, 1, 0xFFFF, 0x10000, 123456789, 0xFFFFFFFF])
def test_patched_ip_frames_have_valid_checksums(name, ident):
    w = WORKLOADS[name]
    f = w.frame(ident)
    assert pkt.csum(f[14:34]) == 0, "IPv4 header checksum"
    assert _l4_ok(f), "L4 checksum after the incremental update"
    assert w.echo_id(f) == ident % w.id_space


def test_put_arp_frame_patches_sender():
    f = WORKLOADS["put_arp"].frame(300)
    assert frames.put_arp_id(f) == 300
    assert frames.put_arp_ip(300) == "10.1.2.44"
    assert f[6:12] == f[22:28] and f[28:32] == bytes([10, 1, 2, 44])
    assert f[0:6] == frames.LR0_SW1_MAC and f[38:42] == frames.LR0_SW1_IP


def test_answers_recorded_from_ovn_23_03():
    assert WORKLOADS["dhcp"].answer_id(_golden("dhcpv4_discover_offer", "replies")) == 0x11223344
    assert WORKLOADS["dhcp"].echo_id(_golden("dhcpv4_discover_offer", "inject")) == 0x11223344
    dns = _golden("dns_a_hit", "replies")
    assert WORKLOADS["dns"].answer_id(dns) == ((0x8235 - 1024) << 16) | 0x1001
    assert WORKLOADS["dns"].echo_id(dns) is None
    assert WORKLOADS["tcp_rst"].answer_id(_golden("router_tcp_reset_v4", "replies")) == 0x3E8
    assert WORKLOADS["tcp_rst"].answer_id(_golden("router_tcp_reset_v4", "inject")) is None


def test_arp_request_matches_its_target():
    req = _golden("arp_resolve_sw0_unknown_host", "replies")
    ours = req[:38] + struct.pack("!I", frames.ARP_TARGET_BASE + 77)
    assert frames.arp_request_id(ours) == 77
    assert frames.arp_request_id(WORKLOADS["put_arp"].frame(5)) is None   # a reply, op 2


@pytest.mark.parametrize("junk", [b"", b"\xff" * 13, b"\x00" * 60, bytes(range(256))])
def test_matchers_never_raise(junk):
    for w in WORKLOADS.values():
        assert w.answer_id(junk) is None or isinstance(w.answer_id(junk), int)
        assert w.echo_id(junk) is None or isinstance(w.echo_id(junk), int)


def test_csum_adjust_is_rfc1624():
    data = bytearray(b"\x12\x34\x00\x00\x00\x00\xab\xcd")
    c0 = pkt.csum(data)
    data[2:6] = b"\xde\xad\xbe\xef"
    assert frames.csum_adjust(c0, 0xDEAD + 0xBEEF) == pkt.csum(data)


def test_parse_collapsed_counts_inclusive_and_self():
    text = ("run (pinctrl/handler_thread.py:10);decode (pinctrl/packet_in.py:5) 30\n"
            "run (pinctrl/handler_thread.py:11);encode (pinctrl/nx_resume.py:7) 10\n")
    total, incl, self_ = parse_collapsed(text)
    assert total == 40
    assert incl["run (pinctrl/handler_thread.py)"] == 40
    assert self_["decode (pinctrl/packet_in.py)"] == 30


def test_table_ratios():
    res = Results()
    for v in (100, 120, 110):
        res.add("x", "DHCP answered/s", "/s", "ovn-controller", v)
    for v in (220, 200, 210):
        res.add("x", "DHCP answered/s", "/s", "pinctrl-daemon", v)
    res.add("x", "DHCP answered/s", "/s", "ceiling", 420)
    row = table(res).splitlines()[2]
    assert "110 (100–120)" in row and "210 (200–220)" in row
    assert "1.91×" in row and "0.50×" in row
