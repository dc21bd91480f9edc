"""The golden service-monitor exchange on the wire (issue 20), against the
recorded SB and flows (dummy datapath): svc_monitor_tcp.  The daemon's
SYN probe to sw1-p4 (10.0.1.11:80 from 10.0.1.2 / svc_monitor_mac) is the
recorded one but for the TCP source port and sequence number (random per
probe: the recording's fields_that_vary) and the checksum over them; the
recorded SYN-ACK, addressed to this probe, is injected; the daemon's
RST|ACK is then exactly what 23.03 computes from the two, and SB
Service_Monitor goes "online" as recorded.

Real TCP and UDP servers behind the monitors: test_svc_monitor_peers.py.
"""

from __future__ import annotations

import struct
import time

import pytest

from pinctrl.packet.headers import csum, pseudo_sum_ipv4
from testbed.golden import load_exchange
from tests.integration.test_neighbor_golden import sb_rows

pytestmark = pytest.mark.integration

P4_PORT = "gdvif4"
MONITOR = "76f58b40-47c5-46f1-81e7-471f8fbd4185"   # the recording's row
L3, L4 = 14, 34                                   # IPv4 frames, no options


def tcp(frame: bytes) -> tuple[int, int, int, int, int]:
    """(source port, destination port, seq, ack, flags) of a frame."""
    sport, dport, seq, ack, off = struct.unpack_from("!HHIIH", frame, L4)
    return sport, dport, seq, ack, off & 0x0FFF


def wait_tcp(sb, mark, flags: int, timeout: float) -> list[bytes]:
    """The IPv4 TCP frames with 'flags' sent on sw1-p4 since 'mark' (it
    also gets sw1's periodic RAs), once there is one."""
    deadline = time.monotonic() + timeout
    while True:
        found = [p.data for p in sb.packets_since(mark, [P4_PORT])
                 if p.data[12:14] == b"\x08\x00" and p.data[L3 + 9] == 6
                 and tcp(p.data)[4] == flags]
        if found or time.monotonic() > deadline:
            return found
        time.sleep(0.02)


def with_tcp(frame: bytes, sport: int, dport: int, seq: int,
             ack: int) -> bytes:
    """'frame' with new TCP ports and numbers, the checksum recomputed."""
    b = bytearray(frame)
    struct.pack_into("!HHII", b, L4, sport, dport, seq, ack)
    struct.pack_into("!H", b, L4 + 16, 0)
    seg = b[L4:L3 + struct.unpack_from("!H", b, L3 + 2)[0]]
    struct.pack_into("!H", b, L4 + 16, csum(seg, pseudo_sum_ipv4(
        bytes(b[L3 + 12:L3 + 16]), bytes(b[L3 + 16:L3 + 20]), 6,
        len(seg))))
    return bytes(b)


def status(sb) -> list:
    row, = [r for r in sb_rows(sb, "Service_Monitor", "_uuid,status")
            if r["_uuid"] == MONITOR]
    return row["status"]


def test_golden_svc_monitor_tcp(shared_sandbox, shared_daemon):
    sb = shared_sandbox
    ex = load_exchange("svc_monitor_tcp")
    step, = ex["steps"]
    rec_probe, rec_rst = (bytes.fromhex(r["hex"]) for r in step["replies"])
    rec_synack = bytes.fromhex(step["inject"][0]["hex"])
    # Probes every second instead of 5 (not in the frames) to keep it short.
    sb.sbctl("set", "Service_Monitor", MONITOR, "options:interval=1")
    mark = sb.mark()
    probes = wait_tcp(sb, mark, 0x02, timeout=5.0)
    assert probes, "no probe on sw1-p4"
    probe = probes[0]
    sport, _, seq, _, _ = tcp(probe)
    assert sport >= 1024
    # The recorded probe, with this probe's random port and sequence number.
    r_sport, r_dport, _, r_ack, _ = tcp(rec_probe)
    assert probe == with_tcp(rec_probe, sport, r_dport, seq, r_ack)

    # The recorded SYN-ACK, answering this probe.
    b_sport, _, b_seq, _, _ = tcp(rec_synack)
    mark = sb.mark()
    sb.inject(P4_PORT, with_tcp(rec_synack, b_sport, sport, b_seq, seq + 1))
    rst = wait_tcp(sb, mark, 0x14, timeout=3.0)
    # 23.03: seq = the SYN-ACK's ack + 1, ack = its seq + 1.
    assert rst == [with_tcp(rec_rst, sport, r_dport, seq + 2, b_seq + 1)]

    want = ex["service_monitor_after"][0]["status"]
    deadline = time.monotonic() + 3
    while status(sb) != want and time.monotonic() < deadline:
        time.sleep(0.05)
    assert status(sb) == want == "online"
    assert shared_daemon.coverage().get("pinctrl_svc_monitor_rst_sent") == 1
