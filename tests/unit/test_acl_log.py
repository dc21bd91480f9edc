"""LOG (7): the acl_log line against OVN 23.03's, the OVS flow formatter
(pinctrl.packet.flow) against fixed strings (against ovs-ofctl itself:
tests/integration/test_flow_format_ofctl.py), and the counted but not
implemented opcodes 16/18/19/23 (actions/not_yet.py)."""

from __future__ import annotations

import random
import struct

import pytest
from scapy.layers.inet import IP, TCP, UDP
from scapy.layers.inet6 import (
    ICMPv6ND_NS,
    ICMPv6NDOptSrcLLAddr,
    IPv6,
    IPv6ExtHdrFragment,
)
from scapy.layers.l2 import ARP, Dot1Q, Ether
from scapy.packet import Raw

from pinctrl.actions import REGISTRY, Action, not_yet
from pinctrl.actions import acl_log as m
from pinctrl.handler import dispatch
from pinctrl.openflow.packet_in import PacketIn
from pinctrl.packet import flow
from pinctrl.support import coverage
from testbed import golden as goldens
from tests.helpers import VlogRecorder


@pytest.fixture
def logs(monkeypatch):
    rec = VlogRecorder()
    monkeypatch.setattr(m, "vlog", rec)
    monkeypatch.setattr(m, "_warn_vlog", rec)
    monkeypatch.setattr(m, "rate_limit", m.RateLimit(6000, 1000))
    return rec


def log_pin(args: bytes, frame: bytes, table_id: int = 46) -> PacketIn:
    return PacketIn(frame, table_id=table_id,
                    userdata=struct.pack("!I4x", 7) + args)


TCP_FRAME = bytes(Ether(src="50:54:00:00:00:01", dst="50:54:00:00:00:02")
                  / IP(src="10.0.0.11", dst="10.0.0.12")
                  / TCP(sport=40000, dport=82, flags="S"))


# --- golden exchanges ---------------------------------------------------------

def _golden_log_cases():
    cases = []
    for name in goldens.exchange_names():
        ex = goldens.load_exchange(name)
        for step in ex["steps"]:
            pins = [r for r in step["openflow_pinctrl"]
                    if r["msg"] == "NXT_PACKET_IN2"
                    and r["userdata_hex"].startswith("00000007")]
            if pins:
                cases.append(pytest.param(name, step, pins, id=name))
    return cases


GOLDEN = _golden_log_cases()


def test_every_acl_log_golden_is_covered():
    assert [p.id for p in GOLDEN] == [
        "acl_log_allow", "acl_log_drop", "acl_reject_udp_icmp6_v6",
        "acl_reject_udp_icmp_v4"]


@pytest.mark.parametrize("name,step,pins", GOLDEN)
def test_golden_log_lines(name, step, pins, logs):
    produced, expected = goldens.replay_step(step)
    # The LOG packet-in sends nothing; the rest of the step (REJECT) is
    # byte-identical.
    assert len(produced) == len(expected)
    assert all(goldens.same_message(a, b) for a, b in zip(produced, expected))
    want = [goldens.log_text(line) for line in step["ovn_controller_log"]]
    assert logs.lines == want
    assert all("|acl_log(" in line for line in step["ovn_controller_log"])


def test_golden_log_through_pure_function():
    ex = goldens.load_exchange("acl_log_drop")
    rec = next(goldens.iter_of_messages(ex, "NXT_PACKET_IN2"))
    pin = goldens.packet_in_from_hex(rec["hex"])
    text = goldens.log_text(ex["steps"][0]["ovn_controller_log"][0])[1]
    assert m.log_line(pin.args, pin.table_id, pin.packet) == text


# --- the line ------------------------------------------------------------------

def test_from_lport_below_table_42():
    line = m.log_line(b"\x00\x06acl1", 41, TCP_FRAME)
    assert line.startswith('name="acl1", verdict=allow, severity=info, '
                           'direction=from-lport: tcp,')
    assert "direction=to-lport" in m.log_line(b"\x00\x06", 42, TCP_FRAME)


@pytest.mark.parametrize("verdict,severity,text", [
    (0, 1, "verdict=allow, severity=alert"),
    (1, 4, "verdict=drop, severity=warning"),
    (2, 5, "verdict=reject, severity=notice"),
    (2, 7, "verdict=reject, severity=debug"),
    (3, 0, "verdict=<unknown>, severity=<unknown>"),
    (255, 2, "verdict=<unknown>, severity=<unknown>"),
])
def test_verdicts_and_severities(verdict, severity, text):
    line = m.log_line(bytes((verdict, severity)) + b"n", 50, TCP_FRAME)
    assert f'name="n", {text}, direction=to-lport: ' in line


def test_unnamed_and_escaped_names():
    assert m.log_line(b"\x01\x06", 50, TCP_FRAME).startswith(
        'name="<unnamed>", ')
    assert m.log_line(b"\x01\x06" + b'a"b\\c\n\x01\xc3\xa9', 50,
                      TCP_FRAME).startswith(
        'name="a\\"b\\\\c\\n\\u0001\u00e9", ')
    # 23.03 duplicates the name as a C string: cut at the first NUL.
    assert m.log_line(b"\x01\x06ab\x00cd", 50, TCP_FRAME).startswith(
        'name="ab", ')
    assert "\ufffd" in m.log_line(b"\x01\x06\xff", 50, TCP_FRAME)


def test_missing_data_warns_and_counts(logs):
    before = coverage.get("pinctrl_acl_log_drop_no_data")
    assert m.log(log_pin(b"\x01", TCP_FRAME)) is None
    assert coverage.get("pinctrl_acl_log_drop_no_data") == before + 1
    assert logs.lines == [("WARN", "log data missing")]


def test_info_disabled_formats_nothing(monkeypatch):
    rec = VlogRecorder(enabled=False)
    monkeypatch.setattr(m, "vlog", rec)
    m.log(log_pin(b"\x00\x06x", TCP_FRAME))
    assert rec.lines == []


def test_rate_limited(logs, monkeypatch):
    monkeypatch.setattr(m, "rate_limit", m.RateLimit(1, 3))
    for _ in range(10):
        m.log(log_pin(b"\x00\x06x", TCP_FRAME))
    assert len(logs.lines) == 3


def test_log_sends_nothing_through_dispatch(logs):
    assert dispatch.process_packet_in(log_pin(b"\x00\x06x", TCP_FRAME),
                                      dispatch.Env()) == []
    assert len(logs.lines) == 1
    assert REGISTRY[7].name == "log" and not REGISTRY[7].pause


def test_hostile_frames_never_raise(logs):
    rnd = random.Random(5)
    for _ in range(500):
        frame = rnd.randbytes(rnd.randrange(80))
        m.log(log_pin(bytes((rnd.randrange(4), rnd.randrange(8))), frame))
    assert len(logs.lines) == 500


# --- flow_format ------------------------------------------------------------------

FIXED = [
    (Ether(src="50:54:00:00:00:01", dst="50:54:00:00:00:02")
     / Dot1Q(vlan=5, prio=3) / IP(src="1.2.3.4", dst="5.6.7.8", tos=0x2B)
     / TCP(sport=1, dport=2, flags="SAF"),
     "tcp,dl_vlan=5,dl_vlan_pcp=3,vlan_tci1=0x0000,"
     "dl_src=50:54:00:00:00:01,dl_dst=50:54:00:00:00:02,nw_src=1.2.3.4,"
     "nw_dst=5.6.7.8,nw_tos=40,nw_ecn=3,nw_ttl=64,nw_frag=no,tp_src=1,"
     "tp_dst=2,tcp_flags=fin|syn|ack"),
    (Ether(src="02:fc:00:00:00:01", dst="33:33:ff:00:00:01")
     / IPv6(src="fe80::1", dst="ff02::1:ff00:1")
     / ICMPv6ND_NS(tgt="fe80::2")
     / ICMPv6NDOptSrcLLAddr(lladdr="00:11:22:33:44:55"),
     "icmp6,vlan_tci=0x0000,dl_src=02:fc:00:00:00:01,"
     "dl_dst=33:33:ff:00:00:01,ipv6_src=fe80::1,ipv6_dst=ff02::1:ff00:1,"
     "ipv6_label=0x00000,nw_tos=0,nw_ecn=0,nw_ttl=255,nw_frag=no,"
     "icmp_type=135,icmp_code=0,nd_target=fe80::2,"
     "nd_sll=00:11:22:33:44:55,nd_tll=00:00:00:00:00:00"),
    (Ether(src="02:fc:00:00:00:01", dst="02:fc:00:00:00:05")
     / ARP(op=2, hwsrc="02:fc:00:00:00:01", psrc="1.1.1.1",
           hwdst="00:00:00:00:00:00", pdst="2.2.2.2"),
     "arp,vlan_tci=0x0000,dl_src=02:fc:00:00:00:01,"
     "dl_dst=02:fc:00:00:00:05,arp_spa=1.1.1.1,arp_tpa=2.2.2.2,arp_op=2,"
     "arp_sha=02:fc:00:00:00:01,arp_tha=00:00:00:00:00:00"),
    (Ether(src="00:00:00:00:00:00", dst="ff:ff:ff:ff:ff:ff", type=0x88CC)
     / Raw(b"x" * 40),
     "vlan_tci=0x0000,dl_src=00:00:00:00:00:00,dl_dst=ff:ff:ff:ff:ff:ff,"
     "dl_type=0x88cc"),
    (Ether(src="00:00:00:00:00:00", dst="ff:ff:ff:ff:ff:ff")
     / IP(src="127.0.0.1", dst="127.0.0.1", frag=5) / UDP()
     / Raw(b"x" * 10),
     "udp,vlan_tci=0x0000,dl_src=00:00:00:00:00:00,"
     "dl_dst=ff:ff:ff:ff:ff:ff,nw_src=127.0.0.1,nw_dst=127.0.0.1,nw_tos=0,"
     "nw_ecn=0,nw_ttl=64,nw_frag=later"),
    (Ether(src="00:00:00:00:00:00", dst="ff:ff:ff:ff:ff:ff")
     / IPv6(src="::1", dst="::1") / IPv6ExtHdrFragment(offset=3) / UDP(),
     "ipv6,vlan_tci=0x0000,dl_src=00:00:00:00:00:00,"
     "dl_dst=ff:ff:ff:ff:ff:ff,ipv6_src=::1,ipv6_dst=::1,"
     "ipv6_label=0x00000,nw_proto=44,nw_tos=0,nw_ecn=0,nw_ttl=64,"
     "nw_frag=later"),
    (Ether(src="00:00:00:00:00:00", dst="ff:ff:ff:ff:ff:ff")
     / IP(src="127.0.0.1", dst="127.0.0.1", proto=47) / Raw(b"abc"),
     "ip,vlan_tci=0x0000,dl_src=00:00:00:00:00:00,dl_dst=ff:ff:ff:ff:ff:ff,"
     "nw_src=127.0.0.1,nw_dst=127.0.0.1,nw_proto=47,nw_tos=0,nw_ecn=0,"
     "nw_ttl=64,nw_frag=no"),
]


@pytest.mark.parametrize("pkt,text", FIXED)
def test_flow_format_fixed(pkt, text):
    assert flow.format_flow(flow.extract(bytes(pkt))) == text


def test_flow_format_short_frame():
    assert flow.format_flow(flow.extract(b"\x01\x02")) == \
        "vlan_tci=0x0000,dl_src=00:00:00:00:00:00," \
        "dl_dst=00:00:00:00:00:00,dl_type=0x0000"


# --- counted, not implemented -------------------------------------------------------

def test_not_implemented_handler_counts_and_logs_once(monkeypatch):
    """The handler not_yet.py registers for an opcode it lists (none of
    23.03's today): counted per packet-in, logged once, nothing sent."""
    rec = VlogRecorder()
    monkeypatch.setattr(not_yet, "vlog", rec)
    monkeypatch.setattr(not_yet, "_logged", set())
    opcode, name = 99, "future_feature"
    registry = {opcode: Action(opcode, name, False,
                               not_yet._make_handler(opcode, name, "it"),
                               f"pinctrl_pin_{name}")}
    counter = f"pinctrl_not_implemented_{name}"
    before = coverage.get(counter)
    pin = PacketIn(TCP_FRAME, userdata=struct.pack("!I4x", opcode),
                   continuation=b"\0" * 8)
    for _ in range(3):
        assert dispatch.process_packet_in(pin, dispatch.Env(),
                                          registry=registry) == []
    assert coverage.get(counter) == before + 3
    assert len(rec.lines) == 1 and rec.lines[0][0] == "WARN"
    assert f"opcode {opcode}" in rec.lines[0][1]


def test_every_2303_family_has_its_own_handler():
    """The families once only counted here (igmp 16, handle_svc_check 18,
    handle_dhcpv6_reply 19, handle_bfd_msg 23) are implemented."""
    assert not_yet.NOT_IMPLEMENTED == {}
    for opcode in (16, 18, 19, 23):
        assert REGISTRY[opcode].handler.__module__ != not_yet.__name__
