"""Load-balancer service monitors: packet/svc_monitor.py (probes, resets,
replies), actions/svc_monitor.py (handle_svc_check, opcode 18),
handler/svc_monitor_job.py (23.03's state machine), db/svc_monitor_plan.py
and db/writers/svc_monitor.py, with fake clocks and rows.  The golden
exchange svc_monitor_tcp end to end (probe and RST byte-identical but for
the random source port and sequence number, which the recording lists as
varying; here they are the recorded ones)."""

from __future__ import annotations

import ipaddress
import struct
from types import SimpleNamespace

import pytest
from scapy.layers.inet import ICMP, IP, TCP, UDP
from scapy.layers.inet6 import ICMPv6DestUnreach, ICMPv6EchoRequest, IPv6
from scapy.layers.l2 import ARP, Ether

from pinctrl.actions import REGISTRY
from pinctrl.actions import svc_monitor as m
from pinctrl.db.local_datapaths import PortBindings
from pinctrl.db.svc_monitor_plan import (
    SvcMonitorPlan,
    backend_mac,
    svc_monitor,
    svc_monitors,
)
from pinctrl.db.writers import SbContext
from pinctrl.db.writers.svc_monitor import SvcStatusWriter
from pinctrl.handler import dispatch
from pinctrl.handler.svc_monitor_job import SvcMonitorJob
from pinctrl.openflow.inject import local_output_actions
from pinctrl.packet import headers as pkt
from pinctrl.packet import svc_monitor as sm
from pinctrl.shared.records import SvcMonitorConfig
from pinctrl.shared.state import SharedState
from testbed import golden as goldens
from tests.helpers import counter_delta as delta
from tests.unit.test_garp import FakePoller

GOLDEN = goldens.load_exchange("svc_monitor_tcp")
STEP = GOLDEN["steps"][0]
SVC_MAC = "0a:00:00:00:00:fe"
P4_MAC = "50:54:00:00:00:04"
# The recorded probe's random fields.
SEQ, SPORT = 0x627A36DC, 0x350C


def v4(ip: str) -> bytes:
    return ipaddress.IPv6Address(f"::ffff:{ip}").packed


def cfg(**kw) -> SvcMonitorConfig:
    """The recording's monitor: sw1 (2), sw1-p4 (1), 10.0.1.11:80/tcp from
    10.0.1.2, interval 5 s, timeout 2 s, success 1, failure 2."""
    base = dict(dp_key=2, port_key=1, ip=v4("10.0.1.11"), port=80,
                protocol="tcp", mac=bytes.fromhex("505400000004"),
                src_mac=bytes.fromhex("0a00000000fe"),
                src_ip=bytes([10, 0, 1, 2]), interval_ms=5000,
                timeout_ms=2000, success_count=1, failure_count=2)
    return SvcMonitorConfig(**{**base, **kw})


# --- frames ---------------------------------------------------------------------

def test_golden_probe_and_reset_frames():
    c = cfg()
    syn = sm.build_tcp_probe(c.src_mac, c.mac, c.src_ip, c.ip[12:], SPORT,
                             80, sm.TCP_SYN, SEQ, 0)
    assert syn.hex() == STEP["replies"][0]["hex"]
    reply = sm.parse_reply(bytes.fromhex(STEP["inject"][0]["hex"]))
    assert reply == sm.SvcReply("tcp", v4("10.0.1.11"), 80, SPORT,
                                sm.TCP_SYN | sm.TCP_ACK, 0x67932, SEQ + 1)
    rst = sm.build_tcp_probe(c.src_mac, c.mac, c.src_ip, c.ip[12:], SPORT,
                             80, sm.TCP_RST | sm.TCP_ACK, reply.ack + 1,
                             reply.seq + 1)
    assert rst.hex() == STEP["replies"][1]["hex"]


def test_udp_probe_frames():
    """8 zero bytes; no UDP checksum over IPv4, a valid one over IPv6."""
    p4 = sm.build_udp_probe(bytes(6), bytes(6), bytes([10, 0, 1, 2]),
                            bytes([10, 0, 1, 11]), 4000, 53)
    assert p4[34:] == struct.pack("!HHHH", 4000, 53, 16, 0) + bytes(8)
    assert p4[22] == sm.PROBE_TTL
    src, dst = (ipaddress.IPv6Address(a).packed
                for a in ("2001:db8:1::2", "2001:db8:1::11"))
    p6 = sm.build_udp_probe(bytes(6), bytes(6), src, dst, 4000, 53)
    seg = p6[54:]
    assert len(seg) == 16 and seg[6:8] != b"\0\0"
    assert pkt.csum(seg, pkt.pseudo_sum_ipv6(src, dst, 17, 16)) == 0


def _probe4() -> bytes:
    return sm.build_udp_probe(bytes.fromhex("0a00000000fe"),
                              bytes.fromhex("505400000004"),
                              bytes([10, 0, 1, 2]), bytes([10, 0, 1, 11]),
                              4000, 53)


@pytest.mark.parametrize("frame, reply", [
    (bytes(Ether() / IP(src="10.0.1.11") / ICMP(type=3, code=3)
           / _probe4()[14:]),
     sm.SvcReply("udp", v4("10.0.1.11"), 53, 4000)),
    (bytes(Ether() / IPv6(src="2001:db8:1::11") / ICMPv6DestUnreach(code=4)
           / IPv6(src="2001:db8:1::2", dst="2001:db8:1::11")
           / UDP(sport=4000, dport=53) / bytes(8)),
     sm.SvcReply("udp", ipaddress.IPv6Address("2001:db8:1::11").packed, 53,
                 4000)),
    (bytes(Ether() / IPv6(src="2001:db8:1::11") / TCP(sport=80, dport=999,
                                                         flags="R", ack=7)),
     sm.SvcReply("tcp", ipaddress.IPv6Address("2001:db8:1::11").packed, 80,
                 999, sm.TCP_RST, 0, 7)),
])
def test_replies(frame, reply):
    assert sm.parse_reply(frame) == reply


@pytest.mark.parametrize("frame, reason", [
    (bytes(Ether() / ARP()), "not_ip"),
    (bytes(Ether() / IP() / UDP()), "unsupported_proto"),
    (bytes(Ether() / IP() / ICMP(type=0)), "not_unreach"),
    (bytes(Ether() / IPv6() / ICMPv6EchoRequest()), "not_unreach"),
    (bytes(Ether() / IP() / ICMP(type=3, code=3)), "no_quote"),
    # The quoted datagram is not a probe's 36 bytes (23.03's check).
    (bytes(Ether() / IP() / ICMP(type=3, code=3) / IP() / UDP()
           / bytes(20)), "bad_quote"),
    (bytes(Ether() / IP() / ICMP(type=3, code=3)
           / _probe4()[14:14 + 22]), "bad_quote"),
    (bytes(Ether() / IP(proto=6) / bytes(10)), "bad_tcp"),
])
def test_unusable_replies(frame, reason):
    with pytest.raises(sm.SvcReplyError) as e:
        sm.parse_reply(frame)
    assert e.value.reason == reason


# --- the job ----------------------------------------------------------------------

class Harness:
    def __init__(self, *cfgs: SvcMonitorConfig, seqs=(SEQ,), ports=(SPORT,)):
        self.shared = SharedState()
        self.shared.set_svc_monitors({c.key: c for c in cfgs})
        self.woken = 0
        seqs, ports = list(seqs), list(ports)
        self.job = SvcMonitorJob(self.shared.get_svc_monitors,
                                 self.shared.svc_status, self.wake,
                                 seq=lambda: seqs.pop(0) if len(seqs) > 1
                                 else seqs[0],
                                 port=lambda: ports.pop(0) if len(ports) > 1
                                 else ports[0])
        self.env = dispatch.Env()
        self.env.svc_monitors = self.job

    def wake(self) -> None:
        self.woken += 1

    def run(self, now: int) -> list[bytes]:
        return self.job.run(self.env, now)

    def reply(self, now: int, c: SvcMonitorConfig = cfg(), **kw):
        r = sm.SvcReply(**{**dict(protocol=c.protocol, ip=c.ip, port=c.port,
                                  probe_port=SPORT), **kw})
        return self.job.on_reply(c.dp_key, c.port_key, r, now)

    def statuses(self) -> dict:
        return self.shared.svc_status.take()


def frame_of(msg: bytes) -> bytes:
    """The frame of an OpenFlow 1.5 OFPT_PACKET_OUT."""
    actions_len = struct.unpack_from("!H", msg, 12)[0]
    match_len = struct.unpack_from("!H", msg, 18)[0]
    return msg[16 + ((match_len + 7) & ~7) + actions_len:]


def test_golden_exchange_end_to_end():
    """Probe at once; the recorded SYN-ACK through the dispatcher (at
    time 0) is answered with the recorded RST; the status goes online and
    is handed over once; the next probe comes an interval later."""
    h = Harness(cfg())
    probe, = h.run(0)
    recorded = [bytes.fromhex(r["hex"]) for r in
                goldens.iter_of_messages(GOLDEN, "OFPT_PACKET_OUT", "c2s")]
    assert goldens.same_message(probe, recorded[0])
    produced, expected = goldens.replay_step(STEP, h.env)
    assert len(produced) == 1 and goldens.same_message(produced[0],
                                                       recorded[1])
    assert h.run(100) == []
    assert h.statuses() == {cfg().key: "online"} and h.woken == 1
    assert h.run(4999) == [] and len(h.run(5000)) == 1     # interval


def test_tcp_timeouts_then_offline_after_failure_count():
    h = Harness(cfg())
    h.run(0)
    assert h.run(2000) == []        # 23.03: strictly after the timeout
    assert h.run(2001) == [] and h.statuses() == {}
    probe, = h.run(7001)            # one failure: next probe after 5 s
    assert h.run(9002) == []
    assert h.statuses() == {cfg().key: "offline"}


def test_rst_and_wrong_replies():
    h = Harness(cfg(failure_count=1))
    assert h.reply(0, flags=sm.TCP_RST, ack=SEQ + 1) == (None, "no_monitor")
    h.run(0)                        # the probe
    assert h.reply(10, flags=sm.TCP_SYN | sm.TCP_ACK, ack=SEQ) == \
        (None, "unexpected")
    assert h.reply(10, flags=sm.TCP_SYN | sm.TCP_ACK, ack=SEQ + 1,
                   probe_port=SPORT + 1) == (None, "unexpected")
    assert h.reply(10, flags=sm.TCP_ACK, ack=SEQ + 1) == (None, "unexpected")
    assert h.reply(10, port=81) == (None, "no_monitor")
    assert h.reply(10, flags=sm.TCP_RST | sm.TCP_ACK, ack=SEQ + 1) == \
        (None, None)
    h.run(20)
    assert h.statuses() == {cfg().key: "offline"}


def test_syn_ack_answered_with_reset():
    h = Harness(cfg())
    h.run(0)
    out, why = h.reply(5, flags=sm.TCP_SYN | sm.TCP_ACK, seq=100,
                       ack=SEQ + 1)
    assert why is None and out.actions == local_output_actions(2, 1)
    tcp = out.packet[34:]
    assert struct.unpack_from("!HHIIH", tcp) == (
        SPORT, 80, SEQ + 2, 101, (5 << 12) | sm.TCP_RST | sm.TCP_ACK)


def test_udp_silence_is_success_unreachable_failure():
    c = cfg(protocol="udp", port=53, failure_count=1)
    h = Harness(c, ports=(4000,))
    probe, = h.run(0)
    assert frame_of(probe)[34:38] == struct.pack("!HH", 4000, 53)
    h.run(2001)                     # silence: a success, online at once
    assert h.statuses() == {c.key: "online"}
    assert h.reply(7010, c, probe_port=4001) == (None, "unexpected")
    assert h.reply(7010, c, probe_port=4000) == (None, None)
    h.run(7010)
    assert h.statuses() == {c.key: "offline"}
    probe, = h.run(12010)           # the same source port again
    assert frame_of(probe)[34:36] == struct.pack("!H", 4000)


def test_success_count():
    h = Harness(cfg(success_count=2), seqs=(SEQ,))
    for t in (0, 5010):
        h.run(t)
        h.reply(t + 5, flags=sm.TCP_SYN | sm.TCP_ACK, ack=SEQ + 1)
        h.run(t + 10)
        assert h.statuses() == ({} if t == 0 else {cfg().key: "online"})


def test_monitor_removed_and_changed():
    h = Harness(cfg())
    h.run(0)
    h.shared.set_svc_monitors({cfg().key: cfg(interval_ms=1000)})
    h.run(2001)                     # failure; next after the new interval
    assert len(h.run(3001)) == 1
    h.shared.set_svc_monitors({})
    assert h.run(10_000) == [] and not h.job.monitors
    poller = FakePoller()
    h.job.wait(poller, 10_000)
    assert poller.until == []


def test_wait_and_full_hand_over():
    h = Harness(cfg(failure_count=1))
    h.shared.svc_status.cap = 0
    h.run(0)
    poller = FakePoller()
    h.job.wait(poller, 0)
    assert poller.until == [2001]
    _, n = delta("pinctrl_drop_svc_status", lambda: h.run(2001))
    assert n == 1 and h.woken == 0
    poller = FakePoller()
    h.job.wait(poller, 2001)
    assert min(poller.until) == 3001          # retried a second later
    h.shared.svc_status.cap = 1000
    h.run(3001)
    assert h.statuses() == {cfg().key: "offline"}


def test_action_counts_what_is_not_a_reply():
    """The recorded SYN-ACK acknowledging another probe, a UDP frame, a
    monitor-less environment: counted, nothing sent."""
    h = Harness(cfg(), seqs=(12345,))
    h.run(0)
    pin = goldens.packet_in_from_hex(next(goldens.iter_of_messages(
        GOLDEN, "NXT_PACKET_IN2"))["hex"])
    out, n = delta("pinctrl_svc_check_drop_unexpected",
                   lambda: m.handle_svc_check(pin, h.env, 0))
    assert out is None and n == 1
    _, n = delta("pinctrl_svc_check_drop_no_monitor",
                 lambda: m.handle_svc_check(pin, dispatch.Env(), 0))
    assert n == 1
    pin.packet = bytes(Ether() / IP() / UDP())
    _, n = delta("pinctrl_svc_check_drop_unsupported_proto",
                 lambda: m.handle_svc_check(pin, h.env, 0))
    assert n == 1
    assert REGISTRY[18].handler is m.handle_svc_check


# --- the plan and the writer --------------------------------------------------------

HV1 = SimpleNamespace(name="hv1")
SW1 = SimpleNamespace(tunnel_key=2)


def pb(name="sw1-p4", key=1, chassis=HV1,
       mac=("50:54:00:00:00:04 10.0.1.11 2001:db8:1::11",)):
    return SimpleNamespace(logical_port=name, tunnel_key=key, datapath=SW1,
                           chassis=[chassis] if chassis else [], mac=list(mac),
                           options={}, type="")


def row(**kw):
    base = dict(ip="10.0.1.11", protocol=["tcp"], port=80,
                logical_port="sw1-p4", src_mac=SVC_MAC, src_ip="10.0.1.2",
                status=[], options={"failure_count": "2", "interval": "5",
                                    "success_count": "1", "timeout": "2"})
    return SimpleNamespace(**{**base, **kw})


def test_plan_from_the_golden_row():
    got, why = svc_monitor(row(), pb())
    assert why is None and got == cfg()


def test_plan_defaults_and_variants():
    got, _ = svc_monitor(row(options={}, protocol=[]), pb())
    assert (got.interval_ms, got.timeout_ms, got.success_count,
            got.failure_count, got.protocol) == (5000, 3000, 1, 1, "tcp")
    got, _ = svc_monitor(row(protocol=["udp"], options={"interval": "0"}),
                         pb())
    assert got.protocol == "udp" and got.interval_ms == 1000  # deviation
    got, _ = svc_monitor(row(ip="2001:db8:1::11", src_ip="2001:db8:1::2"),
                         pb())
    assert got.ip == ipaddress.IPv6Address("2001:db8:1::11").packed
    assert got.src_ip == ipaddress.IPv6Address("2001:db8:1::2").packed
    assert svc_monitor(row(ip="junk"), pb()) == (None, None)
    _, why = svc_monitor(row(src_ip="2001:db8:1::2"), pb())
    assert "unusable" in why
    _, why = svc_monitor(row(src_mac="zz"), pb())
    assert "unusable" in why


def test_backend_mac_lookup_like_23_03():
    ip = bytes([10, 0, 1, 11])
    p = pb(mac=("00:00:00:00:00:01 10.0.1.99", "00:00:00:00:00:02 10.0.1.11"))
    assert backend_mac(p, ip) == bytes.fromhex("000000000002")
    p = pb(mac=("00:00:00:00:00:03", "00:00:00:00:00:02 10.0.1.11"))
    assert backend_mac(p, ip) == bytes.fromhex("000000000003")
    assert backend_mac(pb(mac=("00:00:00:00:00:01 10.0.1.99",)), ip) is None


def test_only_ports_bound_here():
    pbs = PortBindings([pb(), pb("far", 2, SimpleNamespace(name="hv2")),
                        pb("unbound", 3, None)])
    rows = [row(), row(logical_port="far"), row(logical_port="unbound"),
            row(logical_port="missing"), row()]
    configs, rows_of = svc_monitors(rows, pbs, "hv1")
    assert list(configs) == [cfg().key]
    assert rows_of[cfg().key] == [rows[0], rows[4]]


class Status(SimpleNamespace):
    pass


def test_writer_writes_and_rewrites_a_lost_status():
    shared = SharedState()
    w = SvcStatusWriter(shared)
    r1, r2 = row(status=[]), row(status=["online"])
    w.set_rows({cfg().key: [r1, r2]})
    assert not w.has_work(0)
    shared.svc_status.put(cfg().key, "online")
    w.collect(0)
    assert w.write(None, None, 0) and r1.status == "online"
    assert r2.status == ["online"]          # already right: untouched
    w.committed()
    r1.status = []                          # the row was recreated
    w.set_rows({cfg().key: [r1]})
    assert w.has_work(0) and w.write(None, None, 0)
    assert r1.status == "online"
    w.committed()
    w.set_rows({})                          # the monitor went
    assert w.known == {}


def test_writer_inert_without_statuses():
    """Split mode with handle_svc_check passed: nothing reported, nothing
    written, whatever the rows say."""
    w = SvcStatusWriter(SharedState())
    w.set_rows({cfg().key: [row(status=["offline"])]})
    w.collect(0)
    assert not w.has_work(0)


def test_plan_runs_on_changes_only():
    shared = SharedState()
    plan = SvcMonitorPlan(shared)
    idl = SimpleNamespace(tables={"Service_Monitor": SimpleNamespace(
        rows={1: row()})})
    ctx = SbContext(idl, "hv1", HV1, PortBindings([pb()]))
    plan.run(idl, ctx, set())
    version, snap = shared.get_svc_monitors()
    assert snap == {cfg().key: cfg()}
    plan.run(idl, ctx, {"MAC_Binding"})
    idl.tables["Service_Monitor"].rows[2] = row(port=81)
    plan.run(idl, ctx, set())
    assert shared.get_svc_monitors()[0] == version
    plan.run(idl, ctx, {"Service_Monitor"})
    assert len(shared.get_svc_monitors()[1]) == 2


# --- who runs the jobs ----------------------------------------------------------

@pytest.mark.parametrize("own, jobs", [
    ((), set()),                                # split mode's default
    (("igmp", "handle_svc_check"), {"mcast", "svc_monitors"}),
    (None, {"mcast", "svc_monitors"}),          # take-over: every action
])
def test_jobs_only_for_owned_opcodes(own, jobs):
    """In split mode igmp and handle_svc_check are passed to
    ovn-controller by default: no snooping table, querier or probe runs
    here, and nothing reaches the IGMP_Group / Service_Monitor writers."""
    from pinctrl.daemon.split_mode import default_passed, handler_registry
    from pinctrl.handler.buffered_packets import BufferedPackets
    from pinctrl.handler.jobs import make_jobs
    from pinctrl.proxy.ownership import resolve
    registry = None
    if own is not None:
        names = {op: a.name for op, a in REGISTRY.items()}
        registry = handler_registry(resolve(names, default_passed(),
                                            list(own)))
    shared = SharedState()
    env = dispatch.Env(shared=shared)
    made = make_jobs(shared, BufferedPackets(env.next_xid, shared), env,
                     registry)
    assert {a for a in ("mcast", "svc_monitors")
            if getattr(env, a) is not None} == jobs
    assert sum(type(j).__name__ in ("McastJob", "SvcMonitorJob")
               for j in made) == len(jobs)
