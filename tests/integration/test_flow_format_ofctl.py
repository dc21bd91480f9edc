"""Differential test of the OVS flow formatter (pinctrl.packet.flow)
against OVS itself: `ovs-ofctl parse-pcap` prints OVS's own
flow_format(flow_extract()) of each frame (runs a binary, hence here)."""

from __future__ import annotations

import random
import shutil
import subprocess

import pytest
from scapy.layers.inet import ICMP, IP, TCP, UDP
from scapy.layers.inet6 import (
    ICMPv6ND_NA,
    ICMPv6NDOptDstLLAddr,
    IPv6,
    IPv6ExtHdrDestOpt,
    IPv6ExtHdrHopByHop,
    IPv6ExtHdrRouting,
)
from scapy.layers.l2 import LLC, SNAP, Dot1AD, Dot1Q, Ether
from scapy.layers.sctp import SCTP
from scapy.packet import Raw
from scapy.utils import PcapWriter

from pinctrl.packet import flow
from tests.helpers import unavailable
from tests.unit.test_acl_log import FIXED

pytestmark = pytest.mark.integration


def test_flow_format_matches_ovs_ofctl_on_fuzzed_frames(tmp_path):
    """The fixed frames, other encapsulations, and 60 random mutations
    (cut, flipped bytes, trailing junk) of each."""
    if shutil.which("ovs-ofctl") is None:
        unavailable("ovs-ofctl not installed")
    rnd = random.Random(1)
    base = [p for p, _ in FIXED] + [
        Ether() / Dot1AD(vlan=7) / Dot1Q(vlan=9) / Dot1Q(vlan=11) / IP()
        / UDP(),
        Ether() / IPv6() / ICMPv6ND_NA(tgt="fe80::2")
        / ICMPv6NDOptDstLLAddr(lladdr="00:11:22:33:44:55"),
        Ether() / LLC(dsap=0xAA, ssap=0xAA, ctrl=3) / SNAP(code=0x0800)
        / IP() / UDP(),
        Ether() / IP(flags="MF") / SCTP() / Raw(b"x" * 10),
        Ether() / IP() / ICMP(type=3, code=3) / Raw(b"x" * 30),
        Ether() / IPv6() / IPv6ExtHdrHopByHop() / IPv6ExtHdrRouting()
        / IPv6ExtHdrDestOpt() / UDP(),
        Ether() / IPv6(nh=51) / Raw(bytes([6, 1, 0, 0]) + bytes(8)) / TCP(),
    ]
    frames = []
    for p in base:
        b = bytes(p)
        frames.append(b)
        for _ in range(60):
            x = bytearray(b)
            r = rnd.random()
            if r < 0.3:
                x = x[:rnd.randrange(1, len(x) + 1)]
            elif r < 0.8:
                for _ in range(rnd.randint(1, 3)):
                    x[rnd.randrange(len(x))] = rnd.randrange(256)
            else:
                x += rnd.randbytes(rnd.randrange(20))
            frames.append(bytes(x))
    path = tmp_path / "f.pcap"
    with PcapWriter(str(path), linktype=1, sync=True) as w:
        for b in frames:
            w.write(Raw(b))
    out = subprocess.run(["ovs-ofctl", "parse-pcap", str(path)],
                         capture_output=True, text=True, timeout=60,
                         check=True).stdout.splitlines()
    assert len(out) == len(frames)
    for b, line in zip(frames, out):
        theirs = ",".join(t for t in line.split(",") if t != "in_port=ANY")
        assert flow.format_flow(flow.extract(b)) == theirs, b.hex()
