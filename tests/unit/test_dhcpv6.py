"""put_dhcpv6_opts (opcode 5) against OVN 23.03's recorded behaviour, the
documented RELEASE deviation, hand-built messages for each rule of
pinctrl.c pinctrl_handle_put_dhcpv6_opts() and hostile inputs."""

from __future__ import annotations

import random
import struct

import pytest

from pinctrl.actions import REGISTRY, load_all
from pinctrl.actions import dhcpv6 as d
from pinctrl.actions.replies import Resume
from pinctrl.handler import dispatch
from pinctrl.openflow.packet_in import PacketIn
from pinctrl.packet import headers as pkt
from testbed import golden as goldens
from tests.helpers import counted, record_logs

RESULT_HDR = bytes.fromhex("0001de1000000063")     # reg0[3], wire-formats.md
OPCODE_HDR = bytes.fromhex("0000000500000000")
MAC = bytes.fromhex("505400000001")
SERVER_MAC = bytes.fromhex("00000000ff01")
ADDR = bytes.fromhex("20010db8000000000000000000000011")
DNS1 = bytes.fromhex("20010db8000000000000000000000001")
LLA = bytes.fromhex("fe800000000000005254" "00fffe000001")
ALL_SERVERS = bytes.fromhex("ff020000000000000000000000010002")
IAID = bytes.fromhex("0a0b0c0d")
XID = bytes.fromhex("010203")


def opt(code: int, value: bytes) -> bytes:
    return struct.pack("!HH", code, len(value)) + value


CLIENT_ID = opt(1, bytes.fromhex("00030001") + MAC)       # DUID-LL
IA_NA = opt(3, IAID + bytes(8))
ELAPSED = opt(8, b"\0\0")
ORO = opt(6, b"\0\x17\0\x18")

# Userdata TLVs as northd encodes them (ia_addr, dns, domain, server_id).
U_IA = opt(5, ADDR)
U_DNS = opt(23, DNS1)
U_DOMAIN = opt(24, b"ovn.test")
U_SERVER = opt(2, SERVER_MAC)
USERDATA = U_IA + U_DNS + U_DOMAIN + U_SERVER


def msg(msg_type: int, opts: bytes = ELAPSED + CLIENT_ID + IA_NA + ORO
        ) -> bytes:
    return bytes((msg_type,)) + XID + opts


def frame(payload: bytes, *, udp_len: int | None = None, nxt: int = 17,
          ext: bytes = b"", pad: bytes = b"", vlan: bytes = b"") -> bytes:
    ulen = 8 + len(payload) if udp_len is None else udp_len
    udp = struct.pack("!HHHH", 546, 547, ulen, 0x1234) + payload
    ip = struct.pack("!IHBB16s16s", 0x60000000, len(ext) + len(udp), nxt,
                     1, LLA, ALL_SERVERS)
    return (bytes.fromhex("333300010002") + MAC + vlan + b"\x86\xdd" + ip
            + ext + udp + pad)


def run(packet: bytes, tlvs: bytes = USERDATA,
        args: bytes | None = None) -> Resume:
    ud = OPCODE_HDR + (RESULT_HDR + tlvs if args is None else args)
    return d.put_dhcpv6_opts(PacketIn(packet, userdata=ud), None)


def reply_opts(res: Resume, l4: int = 54) -> list[tuple[int, bytes]]:
    """The options of a reply as (code, value), in order."""
    data = res.packet[l4 + 8 + 4:]
    out, p = [], 0
    while p < len(data):
        code, n = struct.unpack_from("!HH", data, p)
        out.append((code, data[p + 4:p + 4 + n]))
        p += 4 + n
    assert p == len(data)
    return out


@pytest.fixture
def logs(monkeypatch):
    return record_logs(monkeypatch, d)


# --- golden exchanges ---------------------------------------------------------

# Where we deliberately differ from 23.03 (docs/compat.md).
DEVIATIONS = {"dhcpv6_release_unsupported"}


def _golden_cases():
    return [pytest.param(name, rec, resume, step["ovn_controller_log"],
                         id=name)
            for name, step, rec, resume in goldens.paused_pairs("dhcpv6_")]


GOLDEN = _golden_cases()
GOLDEN_SAME = [p for p in GOLDEN if p.values[0] not in DEVIATIONS]


def test_every_dhcpv6_golden_is_covered():
    assert len(GOLDEN) == len(goldens.exchange_names("dhcpv6_")) == 9
    assert len(GOLDEN_SAME) == 8


@pytest.mark.parametrize("name,pin_rec,resume_rec,golden_log", GOLDEN_SAME)
def test_golden_exchange(name, pin_rec, resume_rec, golden_log, logs):
    pin = goldens.packet_in_from_hex(pin_rec["hex"])
    assert pin.opcode == 5
    res = d.put_dhcpv6_opts(pin, None)

    goldens.assert_resume_matches(pin, res, resume_rec, 0, 3)
    assert logs.lines == [goldens.log_text(l) for l in golden_log]


@pytest.mark.parametrize("name,pin_rec,resume_rec,golden_log", GOLDEN_SAME)
def test_golden_exchange_through_dispatch(name, pin_rec, resume_rec,
                                          golden_log):
    pin = goldens.packet_in_from_hex(pin_rec["hex"])
    msgs = dispatch.process_packet_in(pin, dispatch.Env())
    assert [m.hex() for m in msgs] == [resume_rec["hex"]]


def test_golden_release_is_answered_like_later_ovn(logs):
    """Deviation (docs/compat.md): 23.03 ignores RELEASE (the golden
    resumes it unchanged with result 0).  OVN >= 24.03 (96088d496) answers
    it with a REPLY carrying the client's Client ID, the Server ID and a
    Status Code option "Success"; so do we."""
    _, pin_rec, resume_rec, golden_log = next(
        p.values for p in GOLDEN if p.values[0] in DEVIATIONS)
    pin = goldens.packet_in_from_hex(pin_rec["hex"])
    assert pin.packet[54 + 8] == d.RELEASE
    assert resume_rec["packet_hex"] == pin.packet.hex()   # what 23.03 did
    res = d.put_dhcpv6_opts(pin, None)
    assert res.result is True
    req_opts = reply_opts(Resume(pin.packet))
    client_id = next(v for c, v in req_opts if c == d.OPT_CLIENT_ID)
    assert res.packet[54 + 8:54 + 12] == bytes((d.REPLY,)) + \
        pin.packet[54 + 9:54 + 12]
    assert reply_opts(res) == [
        (d.OPT_CLIENT_ID, client_id),
        (d.OPT_SERVER_ID, bytes.fromhex("00030001") + SERVER_MAC),
        (d.OPT_STATUS_CODE, b"\0\0")]
    _check_lengths_and_csum(res.packet)
    assert logs.lines == golden_log == []


def test_registered_as_pausing_opcode_5():
    act = load_all()[5]
    assert act is REGISTRY[5]
    assert (act.name, act.pause) == ("put_dhcpv6_opts", True)


# --- replies from bytes ---------------------------------------------------------

def _check_lengths_and_csum(out: bytes, l3: int = 14) -> None:
    l4 = l3 + 40
    plen = struct.unpack_from("!H", out, l3 + 4)[0]
    assert plen == len(out) - l4 == struct.unpack_from("!H", out, l4 + 4)[0]
    pseudo = out[l3 + 8:l3 + 40] + struct.pack("!IxxxB", plen, 17)
    assert pkt.csum(pseudo + out[l4:]) == 0


IA_NA_REPLY = (IAID + b"\xff" * 8 + opt(5, ADDR + b"\xff" * 8))


@pytest.mark.parametrize("mt,reply_type", [
    (d.SOLICIT, d.ADVERTISE), (d.REQUEST, d.REPLY), (d.CONFIRM, d.REPLY),
    (d.DECLINE, d.REPLY)])
def test_stateful_replies(mt, reply_type):
    req = frame(msg(mt))
    res = run(req)
    assert res.result
    out = res.packet
    # L2, IPv6 (but the payload length) and ports copied.
    assert out[:18] == req[:18] and out[20:58] == req[20:58]
    assert out[62] == reply_type and out[63:66] == XID
    assert reply_opts(res) == [
        (1, CLIENT_ID[4:]), (3, IA_NA_REPLY), (23, DNS1),
        (24, b"\x08ovn.test\x00"),
        (2, bytes.fromhex("00030001") + SERVER_MAC)]
    _check_lengths_and_csum(out)


def test_option_order_follows_userdata():
    res = run(frame(msg(d.SOLICIT)), U_SERVER + U_DOMAIN + U_IA)
    assert [c for c, _ in reply_opts(res)] == [1, 2, 24, 3]


def test_information_request_stateless():
    req = frame(msg(d.INFORMATION_REQUEST, ELAPSED + CLIENT_ID + ORO))
    res = run(req, U_DNS + U_DOMAIN + U_SERVER)
    assert res.result and res.packet[62] == d.REPLY
    assert [c for c, _ in reply_opts(res)] == [1, 23, 24, 2]


def test_information_request_skips_ia_addr():
    res = run(frame(msg(d.INFORMATION_REQUEST, CLIENT_ID)))
    assert [c for c, _ in reply_opts(res)] == [1, 23, 24, 2]


def test_last_ia_na_and_client_id_win():
    other = opt(1, b"\0\x03\0\x01" + bytes(6))
    ia2 = opt(3, b"\x11\x22\x33\x44" + bytes(8) + opt(5, bytes(24)))
    res = run(frame(msg(d.SOLICIT, CLIENT_ID + IA_NA + other + ia2)))
    o = dict(reply_opts(res))
    assert o[1] == other[4:]
    assert o[3][:4] == b"\x11\x22\x33\x44"


def test_iaid_zero_counts_as_present():
    """23.03 uses IAID 0 as "no IA_NA" and would not answer; we do
    (docs/compat.md)."""
    res = run(frame(msg(d.SOLICIT, CLIENT_ID + opt(3, bytes(12)))))
    assert res.result
    assert dict(reply_opts(res))[3][:4] == bytes(4)


def test_rapid_commit_still_advertise():
    res = run(frame(msg(d.SOLICIT, CLIENT_ID + IA_NA + opt(14, b""))))
    assert res.packet[62] == d.ADVERTISE


def test_domain_search_raw_encoding_like_2303():
    res = run(frame(msg(d.SOLICIT)), opt(24, b"a.example.org") + U_SERVER)
    assert dict(reply_opts(res))[24] == b"\x0da.example.org\x00"


def test_vlan_tagged_request():
    req = frame(msg(d.SOLICIT), vlan=b"\x81\x00\x00\x05")
    res = run(req)
    assert res.result and res.packet[:18] == req[:18]
    _check_lengths_and_csum(res.packet, l3=18)


def test_padding_and_bytes_after_udp_length_ignored():
    payload = msg(d.SOLICIT)
    req = frame(payload + b"\xee" * 6, udp_len=8 + len(payload))
    res = run(req)
    assert res.result and b"\xee" * 6 not in res.packet
    assert run(frame(payload, pad=b"\0" * 10)).packet == run(
        frame(payload)).packet


def test_reply_decodes_with_scapy():
    import scapy.all as scapy  # a test dependency (pyproject)
    from scapy.layers import dhcp6
    p = scapy.Ether(run(frame(msg(d.SOLICIT))).packet)
    adv = p[dhcp6.DHCP6_Advertise]
    assert adv.trid == 0x010203
    assert p[dhcp6.DHCP6OptIAAddress].addr == "2001:db8::11"
    assert p[dhcp6.DHCP6OptIA_NA].iaid == 0x0a0b0c0d
    assert p[dhcp6.DHCP6OptDNSServers].dnsservers == ["2001:db8::1"]
    assert p[dhcp6.DHCP6OptServerId].duid.lladdr == "00:00:00:00:ff:01"


# --- not answered -------------------------------------------------------------

def _rejected(packet: bytes, reason: str, **kw) -> Resume:
    name = reason if reason.startswith("pinctrl_") else \
        d.COUNTER_PREFIX + reason
    res = counted(lambda: run(packet, **kw), name)
    assert res.packet == packet and res.result is False
    return res


@pytest.mark.parametrize("mt", [d.RENEW, d.REBIND, d.ADVERTISE, d.REPLY,
                                10, 12, 13, 0, 255])
def test_unanswered_message_types(mt, logs):
    """RENEW and REBIND are not answered by any OVN release (checked up to
    ovn-org/ovn main, 2026): kept, documented in docs/compat.md."""
    _rejected(frame(msg(mt)), "unsupported_msg_type")
    assert logs.lines == []


def test_no_client_id(logs):
    _rejected(frame(msg(d.SOLICIT, ELAPSED + IA_NA)), "no_client_id")
    assert logs.lines == [("WARN", "DHCPv6 option - Client id not present "
                                   "in the DHCPv6 packet")]


@pytest.mark.parametrize("mt", [d.SOLICIT, d.REQUEST, d.RELEASE])
def test_no_ia_na(mt, logs):
    _rejected(frame(msg(mt, CLIENT_ID)), "no_ia_na")
    assert logs.lines == [("WARN", "DHCPv6 option - IA NA not present in "
                                   "the DHCPv6 packet")]


@pytest.mark.parametrize("tlvs,mt", [
    (b"", d.SOLICIT),
    (U_IA[:-1], d.SOLICIT),                 # TLV past the end
    (U_IA + b"\x00", d.SOLICIT),            # trailing byte
    (opt(5, ADDR[:8]) + U_SERVER, d.INFORMATION_REQUEST),  # bad ia_addr
    (opt(2, SERVER_MAC[:4]), d.SOLICIT),    # short MAC: 23.03 over-reads
    (opt(59, b"http://x/boot") + U_SERVER, d.SOLICIT),     # unknown code
    (opt(2, SERVER_MAC[:4]), d.RELEASE),
])
def test_bad_userdata(tlvs, mt, logs):
    _rejected(frame(msg(mt, CLIENT_ID + IA_NA)), "bad_userdata", tlvs=tlvs)
    want = ("DHCPv6 options not present in the userdata" if not tlvs
            else "Invalid userdata")
    assert logs.lines == [("WARN", want)]


def test_empty_userdata_checked_before_the_packet(logs):
    _rejected(b"", "bad_userdata", tlvs=b"")


def test_bad_userdata_is_silent_for_renew(logs):
    """23.03 looks at the options only once the message qualifies."""
    _rejected(frame(msg(d.RENEW)), "unsupported_msg_type", tlvs=b"\x00")
    assert logs.lines == []


@pytest.mark.parametrize("args,has_dest", [
    (b"", False),
    (RESULT_HDR[:6], False),
    (bytes.fromhex("0001de1000000080"), False),        # ofs >= 128
])
def test_bad_result_header(args, has_dest):
    res = _rejected(frame(msg(d.SOLICIT)), "bad_result", args=args)
    assert (res.dest is not None) is has_dest


# --- hostile input -------------------------------------------------------------

@pytest.mark.parametrize("opts", [
    CLIENT_ID + IA_NA + b"\x00",                       # 1 stray byte
    CLIENT_ID + IA_NA + b"\x00\x08\x00",               # 3 stray bytes
    CLIENT_ID + IA_NA + b"\x00\x08\x00\x05\x00",       # length overruns
    CLIENT_ID[:-1],                                    # client id cut
    CLIENT_ID + opt(3, IAID + bytes(7)),               # IA_NA < 12 bytes
    CLIENT_ID + opt(3, b""),
    b"\x00\x01\xff\xff" + bytes(20),                   # huge client id
])
def test_malformed_options(opts):
    _rejected(frame(msg(d.SOLICIT, opts)), "bad_option")


def test_unaligned_options_are_fine():
    """Options at odd offsets (after a 1-byte-value option) are parsed
    (OVN 9b5cf1b7a fixed unaligned access; Python has none)."""
    opts = opt(39, b"\x01") + CLIENT_ID + opt(16, b"abc") + IA_NA
    res = run(frame(msg(d.SOLICIT, opts)))
    assert res.result and dict(reply_opts(res))[3][:4] == IAID


def test_consistent_truncation_at_every_length():
    """Every cut is refused except those at an option boundary after the
    IA_NA (ELAPSED, CLIENT_ID, IA_NA, ORO: 4 + 6 + 14 + 16 = 40)."""
    payload = msg(d.SOLICIT)
    for n in range(len(payload) + 1):
        req = frame(payload[:n])
        res = run(req)
        if n in (40, len(payload)):
            assert res.result, n
        else:
            assert (res.packet, res.result) == (req, False), n


def test_udp_length_bounds_the_options():
    payload = msg(d.SOLICIT)
    _rejected(frame(payload, udp_len=8 + len(payload) - 2), "bad_option")
    _rejected(frame(payload, udp_len=8 + 3), "short_msg")


def test_raw_prefixes_never_raise():
    full = frame(msg(d.SOLICIT))
    for n in range(len(full)):
        res = run(full[:n])
        assert (res.packet, res.result) == (full[:n], False)


@pytest.mark.parametrize("packet,reason", [
    (frame(msg(d.SOLICIT), nxt=0, ext=b"\x11\0" + bytes(6)),
     "ipv6_ext_hdr"),
    (frame(msg(d.SOLICIT), nxt=6), "not_udp"),
    (b"\0" * 14 + b"\x45" + bytes(40), "not_ip"),
])
def test_not_ipv6_udp(packet, reason):
    _rejected(packet, reason)


def test_ipv4_udp_is_refused():
    ip = bytearray(struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + 8 + 20, 0, 0,
                               64, 17, 0, bytes(4), bytes(4)))
    pkt.ipv4_set_csum(ip, 0)
    f = bytes(12) + b"\x08\x00" + bytes(ip) + struct.pack(
        "!HHHH", 546, 547, 28, 0) + msg(d.SOLICIT, CLIENT_ID + IA_NA)[:20]
    _rejected(f, "not_ipv6")


def test_random_mutations_never_raise():
    rng = random.Random(9)
    base = frame(msg(d.REQUEST))
    for _ in range(4000):
        buf = bytearray(base)
        for _ in range(rng.randrange(1, 6)):
            i = rng.randrange(54, len(buf)) if rng.random() < 0.8 \
                else rng.randrange(len(buf))
            buf[i] = rng.choice((0, 1, 3, 0xff, rng.randrange(256)))
        if rng.random() < 0.3:
            buf = buf[:rng.randrange(len(buf) + 1)]
        tlvs = bytearray(USERDATA)
        if rng.random() < 0.2:
            tlvs[rng.randrange(len(tlvs))] = rng.randrange(256)
        res = run(bytes(buf), bytes(tlvs))
        assert isinstance(res, Resume)
        assert res.result or res.packet == bytes(buf)
