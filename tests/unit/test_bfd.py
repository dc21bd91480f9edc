"""BFD (handle_bfd_msg, opcode 23): the control packet, the session state
machine against RFC 5880 and OVN 23.03's recording (bfd_session_up), the
handler's BfdJob (transmit schedule, detection timeout, batched status
hand-over, the session lookup and what it refuses), the main thread's
session plan and the SB status writer."""

from __future__ import annotations

import struct
from types import SimpleNamespace

import pytest

from pinctrl.actions import REGISTRY
from pinctrl.actions import bfd as bfd_action
from pinctrl.actions.bfd import BfdSession, check_bfd_msg
from pinctrl.actions.replies import NoReply
from pinctrl.db.bfd_plan import bfd_sessions, tunnel_ofports
from pinctrl.db.garp_plan import Iface
from pinctrl.db.local_datapaths import PortBindings
from pinctrl.db.writers.bfd import BfdStatusWriter
from pinctrl.handler import dispatch
from pinctrl.handler.bfd_job import BFD_UPDATE_TIMEOUT, BfdJob
from pinctrl.handler.garp_job import inport_actions
from pinctrl.openflow import messages as ofmsg
from pinctrl.packet import bfd as pkt
from pinctrl.packet.bfd import ADMIN_DOWN, DOWN, INIT, UP
from pinctrl.shared.handover import Handover
from pinctrl.shared.records import BfdConfig, bfd_key, ipv4_mapped
from pinctrl.shared.state import SharedState
from pinctrl.support import coverage
from testbed import golden
from tests.unit.test_garp import FakePoller

EX = golden.load_exchange("bfd_session_up")
DISC = EX["bfd_local_disc"]                 # 822484385
PEER_DISC = 168496141
SRC_PORT = EX["bfd_src_port"]               # 49152
MAC = bytes.fromhex("00000000ff03")
SRC = ipv4_mapped(0xAC100001)               # 172.16.0.1
DST = ipv4_mapped(0xAC1000FD)               # 172.16.0.253
KEY = bfd_key("172.16.0.253", SRC_PORT)
CFG = BfdConfig("lr0-public", SRC_PORT, MAC, SRC, DST, DISC, 1000, 1000, 5,
                4, 3, False, frozenset({8}))
PHYS_OFPORT = 7                             # the localnet patch port


def step(title_start: str) -> dict:
    return next(s for s in EX["steps"] if s["title"].startswith(title_start))


def recorded_frames(title_start: str) -> list[bytes]:
    """The BFD frames pinctrl sent in that step (its packet-outs; on the
    wire the router has filled in the peer's MAC)."""
    return [bytes.fromhex(r["packet_hex"])
            for r in step(title_start)["openflow_pinctrl"]
            if r["msg"] == "OFPT_PACKET_OUT"]


def injected(title_start: str) -> list[bytes]:
    return [bytes.fromhex(i["hex"]) for i in step(title_start)["inject"]]


def recorded_pins(title_start: str):
    return [golden.packet_in_from_hex(r["hex"])
            for r in step(title_start)["openflow_pinctrl"]
            if r["msg"] == "NXT_PACKET_IN2"]


def msg_of(frame: bytes) -> pkt.BfdMsg:
    return check_bfd_msg(frame)[1]


class Snap:
    def __init__(self, entries=None) -> None:
        self.version, self.entries = 1, dict(entries or {KEY: CFG})

    def set(self, entries) -> None:
        self.version, self.entries = self.version + 1, dict(entries)

    def __call__(self):
        return self.version, self.entries


class Notify:
    def __init__(self) -> None:
        self.n = 0

    def __call__(self) -> None:
        self.n += 1


def new_job(now: int = 0, rand=lambda n: 0, entries=None):
    status = Handover(SharedState().mutex, "test_drop")
    notify = Notify()
    job = BfdJob(Snap(entries), status, notify, rand, now=now)
    return job, status, notify


def frames_out(msgs: list[bytes]) -> list[bytes]:
    """The frames of encoded packet-outs (ours: no match, actions then
    frame)."""
    out = []
    for m in msgs:
        actions_len = struct.unpack_from("!H", m, 12)[0]
        match_len = struct.unpack_from("!H", m, 18)[0]
        out.append(m[16 + ((match_len + 7) & ~7) + actions_len:])
    return out


# --- the control packet ---------------------------------------------------------

def test_frames_equal_the_recorded_down_init_up():
    s = BfdSession(CFG, 0)
    assert s.frame() == recorded_frames("observe BFD control")[0]
    s.state, s.remote_disc = INIT, PEER_DISC
    assert s.frame() == recorded_frames("peer sends BFD state=Down with "
                                        "your_disc=OVN")[0]
    s.state = UP
    assert s.frame() == recorded_frames("peer sends BFD state=Up")[0]


def test_packet_out_equals_the_recorded_one():
    """metadata = lr0, reg14 = lr0-public, resubmit(CONTROLLER, 8)."""
    rec = next(r for r in step("observe BFD control")["openflow_pinctrl"]
               if r["msg"] == "OFPT_PACKET_OUT")
    ours = ofmsg.packet_out(0, inport_actions(4, 3), BfdSession(CFG, 0).frame())
    assert golden.same_message(ours, bytes.fromhex(rec["hex"]))


def test_ipv6_frame_has_a_valid_udp_checksum():
    from scapy.layers.inet6 import UDP, Ether
    src6 = bytes.fromhex("20010db800ff00000000000000000001")
    dst6 = bytes.fromhex("20010db800ff000000000000000000fe")
    cfg = CFG._replace(ip_src=src6, ip_dst=dst6)
    frame = BfdSession(cfg, 0).frame(final=True)
    p = Ether(frame)
    ours = p[UDP].chksum
    del p[UDP].chksum
    assert Ether(bytes(p))[UDP].chksum == ours != 0
    assert p[UDP].dport == 3784 and p.hlim == 255
    m = msg_of(frame)
    assert m.flags & pkt.FLAG_FINAL and m.state == DOWN and m.length == 24


def test_parse_roundtrip_fields():
    m = pkt.parse_bfd(pkt.bfd_payload(UP, 3, 7, 9, 300, 200, final=True))
    assert m == pkt.BfdMsg(1, 0, UP, pkt.FLAG_FINAL, 3, 24, 7, 9, 300000,
                           200000, 0)
    assert pkt.parse_bfd(bytes(23)) is None


# --- validation (pinctrl_check_bfd_msg) --------------------------------------

def peer_frame(state=DOWN, your=DISC, flags=0, mult=3, length=24, my=PEER_DISC,
               version=1, payload_extra=b"", udp_len_delta=0, dport=3784,
               tx=1_000_000, rx=1_000_000):
    payload = struct.pack("!BBBBIIIII", version << 5, state << 6 | flags,
                          mult, length, my, your, tx, rx, 0) + payload_extra
    udp = struct.pack("!HHHH", 49152, dport, 8 + len(payload) + udp_len_delta,
                      0) + payload
    from pinctrl.packet.headers import compose_ipv4
    return compose_ipv4(bytes.fromhex("00000000fefd"), MAC, DST[12:],
                        SRC[12:], 17, 255, udp)


def test_recorded_peer_packets_pass_the_checks():
    for frame in injected("peer sends BFD state=Up"):
        f, m = check_bfd_msg(frame)
        assert (m.state, m.my_disc, m.your_disc, m.mult) == (
            UP, PEER_DISC, DISC, 3)
        assert bfd_action.source_ip(f) == DST


@pytest.mark.parametrize("kw,reason", [
    (dict(version=0), "version"),
    (dict(flags=pkt.FLAG_AUTH), "auth"),
    (dict(mult=0), "mult"),
    (dict(flags=pkt.FLAG_MULTIPOINT), "multipoint"),
    (dict(my=0), "my_disc"),
    (dict(flags=pkt.FLAG_POLL | pkt.FLAG_FINAL), "flags"),
    (dict(state=INIT, your=0), "your_disc"),
    (dict(state=UP, your=0), "your_disc"),
    (dict(length=23), "length"),
    (dict(length=48), "length"),            # beyond the UDP payload
    (dict(udp_len_delta=-1), "short"),      # UDP says 23 bytes
    (dict(dport=4784), "port"),
])
def test_invalid_packets_are_refused(kw, reason):
    with pytest.raises(NoReply) as e:
        check_bfd_msg(peer_frame(**kw))
    assert e.value.counter == "pinctrl_bfd_drop_" + reason


def test_short_frame_and_non_udp_are_refused():
    frame = peer_frame()
    with pytest.raises(NoReply) as e:   # IPv4 total length beyond it
        check_bfd_msg(frame[:14 + 20 + 8 + 10])
    assert e.value.counter == "pinctrl_bfd_drop_not_udp"
    tcp = bytearray(frame)
    tcp[14 + 9] = 6
    with pytest.raises(NoReply):
        check_bfd_msg(bytes(tcp))
    with pytest.raises(NoReply):
        check_bfd_msg(frame[:13])


def test_down_with_your_disc_zero_is_valid_but_selects_nothing():
    """RFC-valid, accepted by the checks; 23.03 then looks the session up
    by Your Discriminator, finds none and ignores it (README finding)."""
    job, _, _ = new_job()
    job.run(dispatch.Env(), 0)
    out, why = job.receive(4, 3, PHYS_OFPORT, DST, msg_of(peer_frame(your=0)),
                           10)
    assert (out, why) == (None, "no_session")
    assert job.sessions[KEY].state == DOWN


# --- the state machine (RFC 5880 §6.8.6) -----------------------------------------

@pytest.mark.parametrize("local,peer,after", [
    (DOWN, DOWN, INIT), (DOWN, INIT, UP), (DOWN, UP, DOWN),
    (DOWN, ADMIN_DOWN, DOWN),
    (INIT, DOWN, INIT), (INIT, INIT, UP), (INIT, UP, UP),
    (INIT, ADMIN_DOWN, DOWN),
    (UP, DOWN, DOWN), (UP, INIT, UP), (UP, UP, UP), (UP, ADMIN_DOWN, DOWN),
    (ADMIN_DOWN, DOWN, ADMIN_DOWN), (ADMIN_DOWN, INIT, ADMIN_DOWN),
    (ADMIN_DOWN, UP, ADMIN_DOWN),
])
def test_transitions(local, peer, after):
    s = BfdSession(CFG, 0)
    s.state = local
    rx = s.receive(msg_of(peer_frame(state=peer)), 5)
    assert s.state == after
    assert rx.changed == (local != after)
    assert s.remote_disc == PEER_DISC


def test_detection_time_is_remote_mult_times_slower_interval():
    s = BfdSession(CFG._replace(min_rx=300), 0)
    s.receive(msg_of(peer_frame(state=DOWN, mult=3, tx=200_000)), 100)
    assert s.state == INIT and s.detection_ms == 3 * 300
    s.receive(msg_of(peer_frame(state=UP, mult=3, tx=2_000_000)), 200)
    assert s.state == UP and s.detection_ms == 3 * 2000
    assert not s.check_timeout(200 + 5999)
    assert s.check_timeout(200 + 6000)
    assert (s.state, s.remote_disc) == (DOWN, 0)
    assert not s.check_timeout(10**9)      # Down never times out


def test_transmit_interval_and_jitter():
    s = BfdSession(CFG, 0)
    assert s.tx_interval(lambda n: 0) == 1000
    assert s.tx_interval(lambda n: n - 1) == 1000 - 249        # 75 %
    s.remote_min_rx_us = 2_000_500                             # µs, rounded up
    assert s.tx_interval(lambda n: 0) == 2001
    one = BfdSession(CFG._replace(mult=1), 0)
    assert one.tx_interval(lambda n: 0) == 900                 # <= 90 %
    assert one.tx_interval(lambda n: n - 1) == 750


def test_no_periodic_packets_when_unwanted():
    s = BfdSession(CFG, 0)
    assert s.may_send()
    s.remote_min_rx_us = 0              # the peer asks for none
    assert not s.may_send()
    s.remote_min_rx_us = 1
    s.state = ADMIN_DOWN
    assert not s.may_send()
    s.state, s.remote_state, s.remote_demand = UP, UP, True
    assert not s.may_send()             # demand mode
    s.remote_demand = False
    assert s.may_send()


def test_admin_down_configuration():
    s = BfdSession(CFG._replace(admin_down=True), 0)
    assert s.state == ADMIN_DOWN and not s.may_send()
    s.state, s.remote_disc = ADMIN_DOWN, 5
    assert s.configure(CFG) and s.state == DOWN and s.remote_disc == 0
    s.state = UP
    assert s.configure(CFG._replace(admin_down=True))
    assert s.state == ADMIN_DOWN
    assert not s.configure(CFG._replace(admin_down=True, min_tx=300))
    assert s.cfg.min_tx == 300


# --- the recorded session, offline -----------------------------------------------

def test_recorded_session_up_and_timeout():
    """bfd_session_up: Down packets; the peer's Down with your_disc=0 is
    ignored; Down with our disc -> Init; Up -> Up; SB "up" handed over,
    the main thread woken within the 5 s batching window; silence ->
    Down after 3 x 1000 ms, handed over and woken at once."""
    job, status, notify = new_job(now=0)
    env = dispatch.Env()
    out = job.run(env, 1000)
    assert frames_out(out) == recorded_frames("observe BFD control")[:1]

    def rx(title, t):
        replies = []
        for pin in recorded_pins(title):
            replies += dispatch.process_packet_in(pin, _env_with(job), t)
        return replies

    assert rx("peer sends BFD state=Down with your_disc=0", 1100) == []
    assert job.sessions[KEY].state == DOWN and not len(status)
    assert rx("peer sends BFD state=Down with your_disc=OVN", 1200) == []
    assert job.sessions[KEY].state == INIT
    assert frames_out(job.run(env, 2000)) == recorded_frames(
        "peer sends BFD state=Down with your_disc=OVN")
    assert rx("peer sends BFD state=Up", 2100) == []
    assert job.sessions[KEY].state == UP
    assert status.take() == {KEY: "up"} and notify.n == 0
    assert frames_out(job.run(env, 3000)) == recorded_frames(
        "peer sends BFD state=Up")[:1]
    job.run(env, BFD_UPDATE_TIMEOUT + 1)
    assert notify.n == 1                # the batch of two changes
    # Silence: the last packet at 2100, detection 3 x max(1000, 1000).
    job.run(env, 5099)
    assert job.sessions[KEY].state == UP
    job.run(env, 5100)
    assert job.sessions[KEY].state == DOWN and notify.n == 2
    assert status.take() == {KEY: "down"}
    (frame,) = frames_out(job.run(env, 6001))
    assert frame == recorded_frames("observe BFD control")[0]


def _env_with(job) -> dispatch.Env:
    env = dispatch.Env()
    env.bfd = job
    return env


def test_poll_is_answered_with_final_at_once():
    job, _, _ = new_job()
    job.run(dispatch.Env(), 0)
    pin = recorded_pins("peer sends BFD state=Up")[0]
    pin.packet = peer_frame(state=DOWN, flags=pkt.FLAG_POLL)
    msgs = dispatch.process_packet_in(pin, _env_with(job), 10)
    assert len(msgs) == 1
    m = msg_of(frames_out(msgs)[0])
    assert m.flags & pkt.FLAG_FINAL and m.state == INIT
    assert m.your_disc == PEER_DISC


@pytest.mark.parametrize("dp,port,in_port,src,reason", [
    (4, 1, PHYS_OFPORT, DST, "wrong_port"),       # via lr0-sw0: a workload
    (5, 3, PHYS_OFPORT, DST, "wrong_port"),
    (4, 3, 8, DST, "tunnel"),                     # through the tunnel
    (4, 3, PHYS_OFPORT, ipv4_mapped(0xAC100032), "wrong_source"),
])
def test_packets_from_elsewhere_are_refused(dp, port, in_port, src, reason):
    job, status, _ = new_job()
    job.run(dispatch.Env(), 0)
    out, why = job.receive(dp, port, in_port, src, msg_of(peer_frame()), 10)
    assert (out, why) == (None, reason)
    assert job.sessions[KEY].state == DOWN and not len(status)


def test_refusals_are_counted_through_the_action():
    job, _, _ = new_job()
    job.run(dispatch.Env(), 0)
    pin = recorded_pins("peer sends BFD state=Up")[0]
    pin.metadata.set_reg_bit(14, 2, True)         # reg14 3 -> 7
    before = coverage.get("pinctrl_bfd_drop_wrong_port")
    dispatch.process_packet_in(pin, _env_with(job), 10)
    assert coverage.get("pinctrl_bfd_drop_wrong_port") == before + 1


def test_batched_notification_after_ten_changes():
    job, status, notify = new_job(now=0)
    job.run(dispatch.Env(), 0)
    for i in range(5):          # Down -> Init -> Down, five times
        for peer in (DOWN, ADMIN_DOWN):
            job.receive(4, 3, PHYS_OFPORT, DST,
                        msg_of(peer_frame(state=peer)), 10 + i)
    assert notify.n == 0 and status.take() == {KEY: "down"}
    job.run(dispatch.Env(), 100)
    assert notify.n == 1
    job.run(dispatch.Env(), 200)
    assert notify.n == 1


def test_nothing_scanned_before_the_next_deadline():
    job, _, _ = new_job(now=0, rand=lambda n: 0)
    env = dispatch.Env()
    assert len(job.run(env, 0)) == 1
    job.sessions = None                 # a scan would fail
    assert job.run(env, 999) == []


def test_snapshot_changes():
    job, _, _ = new_job()
    env = dispatch.Env()
    job.run(env, 0)
    s = job.sessions[KEY]
    s.state = UP
    job._get_snapshot.set({KEY: CFG._replace(min_tx=300)})
    job.run(env, 10)
    assert job.sessions[KEY] is s and s.cfg.min_tx == 300 and s.state == UP
    job._get_snapshot.set({KEY: CFG._replace(disc=42)})
    job.run(env, 20)
    assert job.sessions[KEY] is not s and job.sessions[KEY].state == DOWN
    job._get_snapshot.set({})
    job.run(env, 30)
    assert job.sessions == {}


def test_wait_arms_the_next_packet_or_batch():
    job, _, _ = new_job(now=0)
    job.run(dispatch.Env(), 0)
    p = FakePoller()
    job.wait(p, 0)
    assert p.until == [1000]
    job.receive(4, 3, PHYS_OFPORT, DST, msg_of(peer_frame(state=DOWN)), 10)
    p = FakePoller()
    job.wait(p, 10)
    assert p.until == [min(1000, 10 + 3000, BFD_UPDATE_TIMEOUT + 1)]


def test_registered_not_paused():
    act = REGISTRY[23]
    assert (act.name, act.pause) == ("handle_bfd_msg", False)


# --- the plan and the writer -----------------------------------------------------

def ns(**kw):
    return SimpleNamespace(**kw)


def golden_ports(chassis="hv1", pb_type="patch"):
    hv1 = ns(name="hv1")
    dp = ns(tunnel_key=4, external_ids={})
    dp3 = ns(tunnel_key=3, external_ids={})
    lrp = ns(logical_port="lr0-public", type=pb_type, tunnel_key=3,
             datapath=dp, options={"peer": "public-lr0"}, chassis=[hv1],
             mac=["00:00:00:00:ff:03 172.16.0.1/24 2001:db8:ff::1/64"])
    peer = ns(logical_port="public-lr0", type="patch", tunnel_key=3,
              datapath=dp3, options={"peer": "lr0-public"}, chassis=[],
              mac=["router"])
    group = ns(ha_chassis=[ns(chassis=[ns(name=chassis)], priority=1)],
               ref_chassis=[])
    cr = ns(logical_port="cr-lr0-public", type="chassisredirect",
            tunnel_key=4, datapath=dp, options={}, chassis=[ns(name=chassis)],
            ha_chassis_group=[group], mac=lrp.mac)
    return PortBindings([lrp, peer, cr])


def bfd_row(**kw):
    row = dict(logical_port="lr0-public", dst_ip="172.16.0.253",
               src_port=SRC_PORT, disc=DISC, min_tx=1000, min_rx=1000,
               detect_mult=5, status="down")
    row.update(kw)
    return ns(**row)


IFACES = [Iface("sw0-p1", 1, {}), Iface(None, 7, {"ovn-localnet-port": "x"}),
          Iface(None, 8, {"ovn-chassis-id": "hv2@127.0.0.2"})]


def test_plan_of_the_recorded_row():
    got = bfd_sessions(golden_ports(), [bfd_row()], "hv1", IFACES)
    assert got == {KEY: CFG}
    assert tunnel_ofports(IFACES) == {8}


def test_plan_ipv6_and_skips():
    got = bfd_sessions(golden_ports(), [bfd_row(dst_ip="2001:db8:ff::fe")],
                       "hv1")
    (cfg,) = got.values()
    assert cfg.ip_src == bytes.fromhex("20010db800ff00000000000000000001")
    assert not bfd_sessions(golden_ports(chassis="hv2"), [bfd_row()], "hv1")
    assert not bfd_sessions(golden_ports(), [bfd_row(logical_port="nope")],
                            "hv1")
    assert not bfd_sessions(golden_ports(), [bfd_row(dst_ip="junk")], "hv1")
    l3gw = bfd_sessions(golden_ports(chassis="hv2", pb_type="l3gateway"),
                        [bfd_row()], "hv1")
    assert list(l3gw) == [KEY]
    admin = bfd_sessions(golden_ports(), [bfd_row(status="admin_down")], "hv1")
    assert admin[KEY].admin_down


class FakeTxnCtx:
    def __init__(self, rows) -> None:
        self.idl = ns(tables={"BFD": ns(rows={i: r for i, r in
                                              enumerate(rows)})})


def test_writer_sets_status_except_admin_down():
    shared = SharedState()
    w = BfdStatusWriter(shared)
    up, admin = bfd_row(), bfd_row(dst_ip="10.0.0.9", status="admin_down")
    shared.bfd_status.put(KEY, "up")
    shared.bfd_status.put(bfd_key("10.0.0.9", SRC_PORT), "up")
    shared.bfd_status.put(bfd_key("10.9.9.9", 1), "up")
    w.collect(0)
    assert w.write(None, FakeTxnCtx([up, admin]), 0)
    assert (up.status, admin.status) == ("up", "admin_down")
    w.committed()
    assert len(w) == 0
    shared.handler_seq.close()
    shared.main_seq.close()
