"""Handler side of the learning opcodes: put_arp (1), put_nd (4),
put_fdb (25), trigger_event (15), bind_vport (17) and
activation_strategy_rarp (26), fed with every recorded 23.03 packet-in of
those opcodes.  None of them sends anything; each hands an entry to the
main thread (SharedState handover tables) and wakes it.
"""

from __future__ import annotations

import struct

import pytest

from pinctrl.actions import controller_event
from pinctrl.handler import dispatch
from pinctrl.openflow.oxm import Metadata
from pinctrl.openflow.packet_in import PacketIn
from pinctrl.shared.records import Learnt, ipv4_mapped
from pinctrl.shared.state import MAC_BINDING_HANDOVER_CAP, SharedState
from testbed.golden import exchange_names, load_exchange, packet_in_from_hex
from tests.helpers import counter_delta


def recorded_packet_ins(opcode: int) -> list[tuple[str, PacketIn]]:
    out = []
    for name in exchange_names():
        for step in load_exchange(name)["steps"]:
            for rec in step.get("openflow_pinctrl", []):
                if rec["msg"] != "NXT_PACKET_IN2":
                    continue
                pin = packet_in_from_hex(rec["hex"])
                if pin.opcode == opcode:
                    out.append((name, pin))
    return out


def run(pin: PacketIn, shared: SharedState | None = None) -> SharedState:
    shared = shared or SharedState()
    env = dispatch.Env(shared=shared)
    assert dispatch.process_packet_in(pin, env, 1000) == []       # sends nothing
    return shared


@pytest.mark.parametrize("opcode", [1, 4, 15, 17, 25, 26])
def test_every_recording_exists(opcode):
    assert recorded_packet_ins(opcode)


def test_put_arp_recordings():
    for name, pin in recorded_packet_ins(1):
        shared = SharedState()
        seq = shared.main_seq.read()
        run(pin, shared)
        md = pin.metadata
        (key, learnt), = shared.put_mac_bindings.take().items()
        assert key == (md.datapath, md.reg(14), ipv4_mapped(md.reg(0)))
        assert learnt.mac == pin.packet[6:12]
        unicast = not pin.packet[0] & 1
        assert (learnt.commit_at == 1000) if unicast else \
            (1001 <= learnt.commit_at <= 1050), name
        assert shared.main_seq.read() != seq, name


def test_put_arp_learns_the_gateway_of_the_golden_exchange():
    pins = recorded_packet_ins(1)
    (pin,) = [p for n, p in pins if n == "arp_resolve_nexthop_put_arp"]
    (key, learnt), = run(pin).put_mac_bindings.take().items()
    assert key == (4, 3, ipv4_mapped(0xac1000fe))    # lr0-public, .254
    assert learnt.mac == bytes.fromhex("00000000fefe")


def test_put_nd_recordings():
    for name, pin in recorded_packet_ins(4):
        (key, learnt), = run(pin).put_mac_bindings.take().items()
        regs = pin.metadata.regs()
        assert key[2] == b"".join(r.to_bytes(4, "big") for r in regs[:4])
        assert key[2][:12] != ipv4_mapped(0)[:12] and any(key[2]), name
        assert learnt.mac == pin.packet[6:12]


def test_relearning_keeps_commit_time_updates_mac():
    shared = SharedState()
    key = (1, 2, ipv4_mapped(1))
    shared.put_mac_bindings.put(key, Learnt(b"a" * 6, 5))
    shared.put_mac_bindings.put(key, Learnt(b"b" * 6, 9))
    assert shared.put_mac_bindings.take() == {key: Learnt(b"b" * 6, 5)}


def test_put_mac_binding_cap_drops_and_counts():
    shared = SharedState()
    assert shared.put_mac_bindings.cap == MAC_BINDING_HANDOVER_CAP
    for i in range(MAC_BINDING_HANDOVER_CAP):
        assert shared.put_mac_bindings.put((1, 1, ipv4_mapped(i)),
                                           Learnt(b"a" * 6, 0))
    _, n = counter_delta("pinctrl_drop_put_mac_binding",
                         lambda: shared.put_mac_bindings.put(
                             (1, 1, ipv4_mapped(99999)), Learnt(b"a" * 6, 0)))
    assert n == 1
    # An existing key is still updated at the cap.
    assert shared.put_mac_bindings.put((1, 1, ipv4_mapped(0)),
                                       Learnt(b"c" * 6, 0))


def test_put_fdb_recordings():
    for name, pin in recorded_packet_ins(25):
        md = pin.metadata
        fdbs = run(pin).put_fdbs.take()
        assert fdbs == {(md.datapath, pin.packet[6:12]): md.reg(14)}, name
    (pin,) = [p for n, p in recorded_packet_ins(25)
              if n == "put_fdb_unknown_port"]
    assert run(pin).put_fdbs.take() == {
        (1, bytes.fromhex("505400000034")): 3}


def test_trigger_event_recording():
    (name, pin), = recorded_packet_ins(15)
    want = load_exchange(name)["controller_event_after"][0]["event_info"]
    events = run(pin).controller_events.take()
    assert events == {(want["vip"], want["protocol"],
                       want["load_balancer"]): "empty_lb_backends"}


def _event_args(*opts: tuple[int, bytes], etype: int = 0) -> bytes:
    return struct.pack("!I", etype) + b"".join(
        struct.pack("!HH", c, len(v)) + v for c, v in opts)


def test_event_reference_vector_parses():
    uuid = b"12345678-abcd-9876-fedc-11119f8e7d6c"
    args = _event_args((1, b"10.0.0.1:80"), (2, b"tcp"), (3, uuid))
    assert controller_event.parse_event(args) == (
        "empty_lb_backends", ("10.0.0.1:80", "tcp", uuid.decode()))
    # An unknown option code is skipped, not fatal.
    assert controller_event.parse_event(
        _event_args((9, b"x"), (1, b"v"), (2, b"udp"), (3, b"u")))[1] == (
        "v", "udp", "u")


@pytest.mark.parametrize("args", [
    b"", b"\x00\x00", _event_args(etype=7),
    _event_args((1, b"v"), (2, b"tcp")),                 # lb missing
    _event_args((1, b"v")) + b"\x00\x02\x00",            # truncated header
    _event_args((1, b"v")) + b"\x00\x02\x00\x09tcp",     # overrun
    _event_args((1, b"\xff\xfe"), (2, b"t"), (3, b"u")),  # not text
])
def test_bad_event_userdata_is_counted(args):
    pin = PacketIn(b"\x00" * 14, userdata=struct.pack("!II", 15, 0) + args)
    shared = SharedState()
    _, n = counter_delta("pinctrl_drop_bad_event", lambda: run(pin, shared))
    assert n == 1 and shared.controller_events.take() == {}


def test_bind_vport_recording():
    (name, pin), = recorded_packet_ins(17)
    # sw0-vip (key 4) claimed with parent sw0-p1 (key 1) on sw0 (dp 1).
    assert run(pin).put_vport_bindings.take() == {(1, 4): 1}


def test_bind_vport_without_key_is_counted():
    pin = PacketIn(b"\x00" * 14, userdata=struct.pack("!II", 17, 0) + b"\0")
    _, n = counter_delta("pinctrl_drop_bad_bind_vport", lambda: run(pin))
    assert n == 1


def test_activation_strategy_rarp_recording():
    (name, pin), = recorded_packet_ins(26)
    assert run(pin).ports_to_activate.take() == {(1, 7): True}   # sw0-p6


@pytest.mark.parametrize("opcode", [1, 4, 25])
def test_short_frame_is_counted(opcode):
    pin = PacketIn(b"\x00" * 5, userdata=struct.pack("!II", opcode, 0),
                   metadata=Metadata())
    name = {1: "put_arp", 4: "put_nd", 25: "put_fdb"}[opcode]
    shared = SharedState()
    _, n = counter_delta(f"pinctrl_drop_{name}_short",
                         lambda: run(pin, shared))
    assert n == 1
    assert not shared.put_mac_bindings.take() and not shared.put_fdbs.take()
