"""proxy/classify.py and proxy/ownership.py: the fields split mode decides
on, checked against every OpenFlow message real ovn-controller 23.03
exchanged with OVS 3.1 in the golden recordings."""

from __future__ import annotations

import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pinctrl.actions import REGISTRY, load_all
from pinctrl.daemon.split_mode import default_passed
from pinctrl.openflow.packet_in import decode_packet_in2
from pinctrl.proxy import classify
from pinctrl.proxy.ownership import OwnershipError, resolve
from testbed.golden import exchange_names, iter_of_messages, load_exchange


def _recorded(msg: str, dir: str) -> list[tuple[str, bytes]]:
    out = []
    for name in exchange_names():
        for rec in iter_of_messages(load_exchange(name), msg, dir):
            out.append((name, bytes.fromhex(rec["hex"])))
    return out


PACKET_INS = _recorded("NXT_PACKET_IN2", "s2c")
PACKET_OUTS = _recorded("OFPT_PACKET_OUT", "c2s")


# --- packet-ins -------------------------------------------------------------
def test_every_recorded_packet_in_gives_the_daemons_opcode():
    """The proxy's property walk and the handler's decoder agree on the
    opcode of each of the recorded packet-ins (every 23.03 opcode)."""
    assert len(PACKET_INS) > 100
    seen = set()
    for name, msg in PACKET_INS:
        assert classify.is_packet_in(msg, 0, len(msg)), name
        op = classify.packet_in_opcode(msg, 0, len(msg))
        assert op == decode_packet_in2(msg).opcode, name
        seen.add(op)
    assert seen == set(range(27))


def test_packet_in_inside_a_buffer_is_read_in_place():
    _, msg = PACKET_INS[0]
    buf = bytearray(b"\x06\x02\x00\x08\x00\x00\x00\x01" + msg + b"junk")
    assert (classify.packet_in_opcode(buf, 8, 8 + len(msg))
            == decode_packet_in2(msg).opcode)


def _set_reason(msg: bytes, reason: int) -> bytes:
    """'msg' with its NXPINT_REASON property's value replaced."""
    out = bytearray(msg)
    p = 16
    while p < len(out):
        ptype, plen = struct.unpack_from("!HH", out, p)
        if ptype == classify.NXPINT_REASON:
            out[p + 4] = reason
            return bytes(out)
        p += (plen + 7) & ~7
    raise AssertionError("no reason property")


def test_packet_in_of_another_reason_has_no_opcode():
    """Only controller() actions carry OVN userdata; anything else is
    ovn-controller's to judge."""
    _, msg = PACKET_INS[0]
    assert classify.packet_in_opcode(_set_reason(msg, 0), 0, len(msg)) is None


@pytest.mark.parametrize("cut", [16, 20, 31])
def test_truncated_packet_in_has_no_opcode(cut):
    _, msg = PACKET_INS[0]
    short = bytearray(msg[:cut])
    short[2:4] = cut.to_bytes(2, "big")
    assert classify.packet_in_opcode(short, 0, cut) is None


def test_other_messages_are_not_packet_ins():
    resume = next(bytes.fromhex(r["hex"]) for n in exchange_names("dhcpv4")
                  for r in iter_of_messages(load_exchange(n), "NXT_RESUME"))
    for msg in (resume, bytes.fromhex("060000080000000a")):
        assert not classify.is_packet_in(msg, 0, len(msg))
        assert classify.packet_in_opcode(msg, 0, len(msg)) is None


# --- packet-outs ------------------------------------------------------------
def test_recorded_packet_outs_duties():
    """Of everything 23.03's pinctrl sent as OFPT_PACKET_OUT, exactly the
    periodic gARPs and RAs are duties; the arp action's requests, IGMP
    re-floods, BFD, service-monitor probes, prefix delegation and ACL
    rejects are not."""
    duty = {}
    for name, msg in PACKET_OUTS:
        duty.setdefault(name, set()).add(
            classify.packet_out_duty(msg, 0, len(msg)))
    assert duty.pop("garp_after_controller_restart") == {classify.DUTY_GARP}
    assert duty.pop("periodic_ra_sw1") == {classify.DUTY_RA}
    assert duty.pop("periodic_ra_sw1_after_prefix_delegation") == {
        classify.DUTY_RA}
    for name in ("arp_resolve_nexthop_put_arp", "bfd_session_up",
                 "igmp_join_sw1", "igmp_mld_queries_sw1",
                 "ipv6_prefix_delegation", "svc_monitor_tcp"):
        assert name in duty
    assert all(d == {None} for d in duty.values()), duty


def _arp_frame(op: int, spa: bytes, tpa: bytes, vlan: bool = False) -> bytes:
    eth = b"\xff" * 6 + bytes.fromhex("000000000001")
    if vlan:
        eth += b"\x81\x00\x00\x05"
    return (eth + b"\x08\x06" + bytes.fromhex("000108000604") +
            op.to_bytes(2, "big") + bytes(6) + spa + bytes(6) + tpa)


@pytest.mark.parametrize("frame, duty", [
    (_arp_frame(1, b"\x0a\x00\x00\x01", b"\x0a\x00\x00\x01"), "garp"),
    (_arp_frame(1, b"\x0a\x00\x00\x01", b"\x0a\x00\x00\x01", vlan=True),
     "garp"),
    (_arp_frame(1, b"\x0a\x00\x00\x01", b"\x0a\x00\x00\x02"), None),
    (_arp_frame(2, b"\x0a\x00\x00\x01", b"\x0a\x00\x00\x01"), None),
    (b"\xff" * 6 + bytes(6) + b"\x80\x35" + bytes(28), "garp"),     # RARP
    (b"\xff" * 6 + bytes(6) + b"\x86\xdd" + bytes(6) + b"\x3a" + bytes(33)
     + b"\x86", "ra"),
    (b"\xff" * 6 + bytes(6) + b"\x86\xdd" + bytes(6) + b"\x3a" + bytes(33)
     + b"\x87", None),                                              # NS
    (b"\xff" * 6 + bytes(6) + b"\x08\x06" + bytes(10), None),      # short
    (b"\xff" * 6, None),
])
def test_frame_duty(frame, duty):
    assert classify.frame_duty(frame, 0, len(frame)) == duty


def test_packet_out_of_another_version_is_not_read():
    _, msg = next((n, m) for n, m in PACKET_OUTS
                  if n == "garp_after_controller_restart")
    old = b"\x04" + msg[1:]
    assert classify.packet_out_duty(old, 0, len(old)) is None


# --- roles ------------------------------------------------------------------
def _nx(subtype: int, body: bytes = b"") -> bytes:
    return struct.pack("!BBHIII", 6, 4, 16 + len(body), 7,
                       classify.NX_VENDOR_ID, subtype) + body


@pytest.mark.parametrize("hexmsg, role", [
    # pinctrl_setup() as recorded (openflow_pinctrl_handshake)
    ("0604001400000007000023200000001000000002", "pinctrl"),
    ("0609000c000000080000ffff", "pinctrl"),
    ("0609000c0000000800000000", None),          # miss_send_len 0
    ("0607000800000006", None),                   # GET_CONFIG_REQUEST
    ("06000010000000040001000800000040", None),   # HELLO
    (_nx(classify.NXT_TLV_TABLE_REQUEST).hex(), "ofctrl"),
    ("060e000800000001", "ofctrl"),               # FLOW_MOD (header only)
    ("0622000800000001", "ofctrl"),               # BUNDLE_ADD_MESSAGE
    ("0612001000000009000b000000000000", "features"),   # METER_FEATURES
    ("06120010000000090001000000000000", None),   # another multipart
])
def test_role_hint(hexmsg, role):
    msg = bytes.fromhex(hexmsg)
    assert classify.role_hint(msg, 0, len(msg)) == role


@settings(max_examples=300, deadline=None)
@given(st.binary(min_size=8, max_size=200))
def test_classifiers_never_raise(body):
    """Whatever a peer sends (framed by its own length), the classifiers
    answer; the proxy forwards what they do not recognise."""
    for msg_type in (4, 9, 10, 13, 18):
        msg = bytearray(body)
        msg[0], msg[1] = 6, msg_type
        msg[2:4] = len(msg).to_bytes(2, "big")
        end = len(msg)
        classify.is_packet_in(msg, 0, end)
        classify.packet_in_opcode(msg, 0, end)
        classify.packet_out_duty(msg, 0, end)
        classify.role_hint(msg, 0, end)


# --- ownership --------------------------------------------------------------
# A registry as the daemon would pass it: names of some 23.03 opcodes, and
# those it does not implement (pure: independent of actions/not_yet.py).
NAMES = {0: "arp", 2: "put_dhcp_opts", 6: "dns_lookup", 11: "tcp_reset",
         16: "igmp", 18: "handle_svc_check", 23: "handle_bfd_msg"}
MISSING = (16, 18)


def test_default_ownership_passes_exactly_the_unimplemented():
    own = resolve(NAMES, MISSING)
    assert own.passed() == [16, 18]
    assert own.owns(2) and not own.owns(16) and own.owns(23)
    assert not own.owns(4000)          # unknown to this build: passed
    lines = own.describe()
    assert lines == [
        "answered by pinctrl-daemon: arp(0), put_dhcp_opts(2), "
        "dns_lookup(6), tcp_reset(11), handle_bfd_msg(23)",
        "passed to ovn-controller: igmp(16), handle_svc_check(18)",
        "periodic duties of pinctrl-daemon (ovn-controller's packet-outs "
        "dropped): gARP/RARP announcements, periodic IPv6 RA"]


def test_override_by_name_or_number():
    own = resolve(NAMES, MISSING, own=["igmp"],
                  pass_=["put_dhcp_opts,6", " 11 "])
    assert own.owns(16)
    assert own.passed() == [2, 6, 11, 18]


@pytest.mark.parametrize("own, pass_, text", [
    (["dhcp"], [], "unknown opcode 'dhcp'"),
    ([], ["99"], "unknown opcode '99'"),
    (["igmp"], ["16"], "both --own-opcodes and --pass-opcodes: igmp(16)"),
])
def test_bad_override_is_an_error(own, pass_, text):
    with pytest.raises(OwnershipError, match=text.replace("(", r"\(")
                       .replace(")", r"\)")):
        resolve(NAMES, MISSING, own=own, pass_=pass_)
