"""handler/dispatch.py: the exception barrier between the pinctrl_handler
thread and the actions.  Driven through process_packet_in() with a
registry of stand-in actions (no real opcode), so each rule is tested on
its own:

  * packet-ins that are not ours (reason, short userdata, unknown opcode)
    are counted and answered with nothing;
  * a paused packet-in is resumed exactly once, whatever the action does
    (raises, returns nothing, returns two Resumes, a reply too big);
  * a reply that cannot be encoded is counted and skipped, and leaves the
    packet-in's metadata as it was for the fallback resume.
"""

from __future__ import annotations

import copy
import struct

import pytest

from pinctrl.actions import Action
from pinctrl.handler import dispatch
from pinctrl.openflow import messages as ofmsg
from pinctrl.openflow.oxm import ResultDest
from pinctrl.openflow.packet_in import OFPR_ACTION, PacketIn, decode_packet_in2
from pinctrl.openflow.resume import encode_resume
from testbed import golden
from tests.helpers import counter_delta

Resume, PacketOut = dispatch.Resume, dispatch.PacketOut
PAUSED, UNPAUSED = 250, 251        # opcodes no real action uses
OFPT_EXPERIMENTER = 4              # NXT_RESUME travels as an experimenter message
OFPT_PACKET_OUT = 13
TOO_BIG = bytes(70000)             # over OpenFlow's 64 KiB message length


def golden_pin(opcode: int, continuation: bool = True) -> PacketIn:
    """A recorded put_dhcp_opts packet-in (real metadata with registers)
    relabelled with 'opcode'."""
    ex = golden.load_exchange("dhcpv4_discover_offer")
    rec = next(golden.iter_of_messages(ex, "NXT_PACKET_IN2"))
    pin = golden.packet_in_from_hex(rec["hex"])
    pin.userdata = struct.pack("!I4x", opcode) + pin.args
    if not continuation:
        pin.continuation = None
    return pin


def run(pin: PacketIn, handler, env=None) -> list[bytes]:
    """Dispatch 'pin' with 'handler' registered as PAUSED (pause) and
    UNPAUSED (no pause)."""
    registry = {
        PAUSED: Action(PAUSED, "test_paused", True, handler,
                       "test_pin_paused"),
        UNPAUSED: Action(UNPAUSED, "test_unpaused", False, handler,
                         "test_pin_unpaused"),
    }
    return dispatch.process_packet_in(pin, env or dispatch.Env(), 0,
                                      registry=registry)


def resumes(msgs: list[bytes]) -> list[bytes]:
    return [m for m in msgs if m[1] == OFPT_EXPERIMENTER]


def counted(name: str, fn):
    """(fn(), whether counter 'name' grew by exactly one)."""
    out, delta = counter_delta(name, fn)
    return out, delta == 1


# --- not ours --------------------------------------------------------------------

def test_reason_other_than_action_is_ignored():
    pin = golden_pin(PAUSED)
    pin.reason = OFPR_ACTION + 1
    calls = []
    out, ok = counted("pinctrl_drop_pin_reason",
                      lambda: run(pin, lambda *a: calls.append(a)))
    assert (out, ok, calls) == ([], True, [])


def test_userdata_without_action_header_is_dropped():
    pin = golden_pin(PAUSED)
    pin.userdata = b"\0\0"
    out, ok = counted("pinctrl_drop_short_userdata",
                      lambda: run(pin, lambda *a: None))
    assert (out, ok) == ([], True)


def test_unknown_opcode_is_dropped_not_resumed():
    """A paused packet-in of an opcode we do not know is not resumed:
    we cannot know that the flow paused it."""
    pin = golden_pin(4242)
    out, ok = counted("pinctrl_drop_unknown_opcode",
                      lambda: run(pin, lambda *a: None))
    assert (out, ok) == ([], True)


def test_each_packet_in_counts_its_action():
    out, ok = counted("test_pin_unpaused",
                      lambda: run(golden_pin(UNPAUSED), lambda *a: None))
    assert (out, ok) == ([], True)


# --- resumed exactly once -----------------------------------------------------------

def test_handler_exception_is_contained_and_the_packet_resumed():
    pin = golden_pin(PAUSED)
    want = encode_resume(copy.deepcopy(pin), pin.packet)

    def boom(*_):
        raise RuntimeError("bug in an action")

    (out, exc), fallback = counter_delta(
        "pinctrl_resume_fallback",
        lambda: counter_delta("pinctrl_action_exception",
                              lambda: run(pin, boom)))
    assert (exc, fallback) == (1, 1)
    assert out == [want]            # the original packet, metadata untouched


def test_handler_exception_on_unpaused_sends_nothing():
    def boom(*_):
        raise KeyError("x")

    out, delta = counter_delta("pinctrl_resume_fallback",
                               lambda: run(golden_pin(UNPAUSED), boom))
    assert (out, delta) == ([], 0)


def test_paused_without_answer_is_resumed_unchanged():
    pin = golden_pin(PAUSED)
    out = run(pin, lambda *a: None)
    assert len(resumes(out)) == 1
    assert decode_packet_in2(out[0]).packet == pin.packet


def test_second_resume_is_dropped():
    pin = golden_pin(PAUSED)
    replies = [Resume(b"first"), Resume(b"second")]
    out, ok = counted("pinctrl_drop_bad_resume",
                      lambda: run(pin, lambda *a: replies))
    assert ok and len(out) == 1
    assert decode_packet_in2(out[0]).packet == b"first"


def test_resume_from_an_unpaused_action_is_dropped():
    out, ok = counted("pinctrl_drop_bad_resume",
                      lambda: run(golden_pin(UNPAUSED),
                                  lambda *a: Resume(b"x")))
    assert (out, ok) == ([], True)


def test_resume_without_continuation_is_dropped():
    pin = golden_pin(PAUSED, continuation=False)
    out, ok = counted("pinctrl_drop_bad_resume",
                      lambda: run(pin, lambda *a: Resume(b"x")))
    assert (out, ok) == ([], True)


def test_result_bit_is_written_in_the_resume():
    pin = golden_pin(PAUSED)
    expect_pin = copy.deepcopy(pin)
    expect_pin.metadata.set_reg_bit(0, 3, True)
    out = run(pin, lambda *a: Resume(b"answer", ResultDest(0, 3), True))
    assert out == [encode_resume(expect_pin, b"answer")]


# --- replies that cannot be encoded --------------------------------------------------

def test_oversized_packet_out_is_counted_and_skipped():
    small = PacketOut(b"ok", b"")
    out, ok = counted("pinctrl_drop_bad_reply",
                      lambda: run(golden_pin(UNPAUSED),
                                  lambda *a: [PacketOut(TOO_BIG, b""),
                                              small]))
    assert ok and len(out) == 1
    assert out[0][1] == OFPT_PACKET_OUT and out[0].endswith(b"ok")


def test_oversized_resume_falls_back_with_unchanged_metadata():
    """The result bit is written into a copy: when the answer cannot be
    encoded, the fallback resumes the original packet with the metadata
    as received (result bit not set)."""
    pin = golden_pin(PAUSED)
    want = encode_resume(copy.deepcopy(pin), pin.packet)
    (out, bad), fallback = counter_delta(
        "pinctrl_resume_fallback",
        lambda: counter_delta(
            "pinctrl_drop_bad_reply",
            lambda: run(pin, lambda *a: Resume(TOO_BIG, ResultDest(0, 3),
                                               True))))
    assert (bad, fallback) == (1, 1)
    assert out == [want]


# --- packet-outs ---------------------------------------------------------------------

def test_packet_outs_in_order_with_the_env_xids():
    xids = iter([7, 8])
    env = dispatch.Env(next_xid=lambda: next(xids))
    out = run(golden_pin(UNPAUSED),
              lambda *a: [PacketOut(b"one", b""), PacketOut(b"two", b"")],
              env)
    assert out == [ofmsg.packet_out(7, b"", b"one"),
                   ofmsg.packet_out(8, b"", b"two")]


@pytest.mark.parametrize("reply", [None, [], ()])
def test_nothing_to_send(reply):
    assert run(golden_pin(UNPAUSED), lambda *a: reply) == []


def test_handler_gets_the_batch_time():
    seen = []
    registry = {UNPAUSED: Action(UNPAUSED, "t", False,
                                 lambda pin, env, now: seen.append(now),
                                 "test_pin_unpaused")}
    dispatch.process_packet_in(golden_pin(UNPAUSED), dispatch.Env(), 12345,
                               registry=registry)
    assert seen == [12345]
