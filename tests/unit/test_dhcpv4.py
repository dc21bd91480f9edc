"""put_dhcp_opts (opcode 2) against OVN 23.03's recorded behaviour, plus
hand-built requests for each rule of pinctrl.c pinctrl_handle_put_dhcp_opts() and hostile inputs."""

from __future__ import annotations

import random
import struct

import pytest

from pinctrl.actions import REGISTRY, load_all
from pinctrl.actions import dhcpv4 as d
from pinctrl.actions.replies import Resume
from pinctrl.handler import dispatch
from pinctrl.openflow.packet_in import PacketIn
from pinctrl.packet import headers as pkt
from pinctrl.support import coverage
from testbed import golden as goldens
from tests.helpers import counter_delta, record_logs

MAC = bytes.fromhex("505400000001")
OFFER = bytes([10, 0, 0, 11])
SERVER = bytes([10, 0, 0, 1])
RESULT_HDR = bytes.fromhex("0001de1000000063")     # reg0[3], wire-formats.md
OPCODE_HDR = bytes.fromhex("0000000200000000")


# --- builders ---------------------------------------------------------------

def ip4(s: str) -> bytes:
    return bytes(int(x) for x in s.split("."))


def tlv(code: int, value: bytes) -> bytes:
    return bytes((code, len(value))) + value


def bootp(msg_type: int | None = d.DISCOVER, *, op: int = 1,
          flags: int = 0, ciaddr: bytes = bytes(4),
          siaddr: bytes = bytes(4), opts: bytes = b"",
          cookie: bytes = d.MAGIC_COOKIE, end: bool = True) -> bytes:
    """A BOOTP/DHCP client message (xid 0x11223344)."""
    hdr = struct.pack("!BBBBIHH4s4s4s4s16s64s128s", op, 1, 6, 0,
                      0x11223344, 0, flags, ciaddr, bytes(4), siaddr,
                      bytes(4), MAC, b"", b"")
    body = cookie
    if msg_type is not None:
        body += tlv(d.OPT_MSG_TYPE, bytes((msg_type,)))
    body += opts
    if end:
        body += b"\xff"
    return hdr + body


def frame(payload: bytes, *, src: bytes = bytes(4),
          dst: bytes = b"\xff" * 4, vlan: bytes = b"",
          ip_opts: bytes = b"", proto: int = 17, pad: bytes = b"",
          ethertype: int = 0x0800) -> bytes:
    """Ethernet(+tags)/IPv4(+options)/UDP 68→67 around 'payload'."""
    udp = struct.pack("!HHHH", 68, 67, 8 + len(payload), 0x1234) + payload
    ihl = 5 + len(ip_opts) // 4
    ip = bytearray(struct.pack("!BBHHHBBH4s4s", 0x40 | ihl, 0x10,
                               ihl * 4 + len(udp), 7, 0, 64, proto, 0,
                               src, dst) + ip_opts)
    pkt.ipv4_set_csum(ip, 0, ihl * 4)
    return (b"\xff" * 6 + MAC + vlan + struct.pack("!H", ethertype)
            + bytes(ip) + udp + pad)


def userdata(tlvs: bytes, offer: bytes = OFFER) -> bytes:
    return OPCODE_HDR + RESULT_HDR + offer + tlvs


def run(packet: bytes, tlvs: bytes = tlv(54, SERVER),
        offer: bytes = OFFER, ud: bytes | None = None) -> Resume:
    pin = PacketIn(packet, userdata=userdata(tlvs, offer) if ud is None
                   else ud)
    return d.put_dhcp_opts(pin, None)


class Reply:
    """Field access in a reply frame whose IPv4 header starts at 'l3'
    (14: untagged); IP options are taken into account."""

    def __init__(self, data: bytes, l3: int = 14) -> None:
        self.data = data
        self.l3 = l3
        ihl = (data[l3] & 0xF) * 4
        self.l4 = l3 + ihl
        self.dhcp = self.l4 + 8

    def ip_dst(self) -> bytes:
        return self.data[self.l3 + 16:self.l3 + 20]

    def field(self, ofs: int, n: int = 4) -> bytes:
        return self.data[self.dhcp + ofs:self.dhcp + ofs + n]

    def options(self) -> bytes:
        """Options area after the cookie, trailer included."""
        return self.data[self.dhcp + 240:]


@pytest.fixture
def logs(monkeypatch):
    return record_logs(monkeypatch, d)


# --- golden exchanges ---------------------------------------------------------

def _golden_cases():
    multi = {n for n in goldens.exchange_names("dhcpv4_")
             if len(goldens.load_exchange(n)["steps"]) > 1}
    return [pytest.param(rec, resume, step["ovn_controller_log"],
                         id=f"{name}:{step['title']}" if name in multi
                         else name)
            for name, step, rec, resume in goldens.paused_pairs("dhcpv4_", 2)]


GOLDEN = _golden_cases()


def test_every_dhcpv4_golden_with_opcode_2_is_covered():
    assert len(GOLDEN) == 11


@pytest.mark.parametrize("pin_rec,resume_rec,golden_log", GOLDEN)
def test_golden_exchange(pin_rec, resume_rec, golden_log, logs):
    pin = goldens.packet_in_from_hex(pin_rec["hex"])
    assert pin.opcode == 2
    res = d.put_dhcp_opts(pin, None)

    # Release, decline: nothing sent, request resumed with result 0.
    goldens.assert_resume_matches(pin, res, resume_rec, 0, 3)

    expected = [goldens.log_text(line) for line in golden_log]
    assert logs.lines == expected
    # The pure layer says the same thing.
    rest = pin.args[8:]
    out = d.process(rest, goldens.packet_in_from_hex(pin_rec["hex"]).packet)
    assert [(l.level.upper(), l.text) for l in out.logs] == expected


@pytest.mark.parametrize("pin_rec,resume_rec,golden_log", GOLDEN)
def test_golden_exchange_through_dispatch(pin_rec, resume_rec, golden_log):
    pin = goldens.packet_in_from_hex(pin_rec["hex"])
    msgs = dispatch.process_packet_in(pin, dispatch.Env())
    assert [m.hex() for m in msgs] == [resume_rec["hex"]]


def test_registered_as_pausing_opcode_2():
    act = load_all()[2]
    assert act is REGISTRY[2]
    assert (act.name, act.pause) == ("put_dhcp_opts", True)
    assert act.handler is d.put_dhcp_opts


def test_reply_log_text():
    assert d.reply_log_text(d.NAK, MAC, OFFER) == \
        "DHCPNAK 50:54:00:00:00:01 10.0.0.11"


# --- reply construction from bytes ------------------------------------------

OPTION_TYPES = {
    "ipv4_set": tlv(6, ip4("10.0.0.1") + ip4("8.8.8.8")),
    "uint8": tlv(23, b"\x40"),
    "bool": tlv(19, b"\x01"),
    "uint16": tlv(26, b"\x05\x78"),
    "uint32": tlv(51, struct.pack("!I", 3600)),
    "str": tlv(15, b"ovn.test"),
    "host_id_str": tlv(66, b"tftp.ovn.test"),
    "host_id_ip": tlv(66, ip4("10.0.0.3")),
    "static_routes": tlv(121, bytes([32, 169, 254, 169, 254])
                         + ip4("10.0.0.2") + bytes([0]) + ip4("10.0.0.1")),
    "ms_static_routes": tlv(249, bytes([16, 192, 168]) + ip4("10.0.0.1")),
    "domains": tlv(119, b"\x03ovn\x04test\x00\x07example\xc0\x04"),
    "empty_str": tlv(252, b""),
}


@pytest.mark.parametrize("opt", OPTION_TYPES.values(), ids=OPTION_TYPES)
def test_option_types_pass_through(opt):
    tlvs = tlv(1, ip4("255.255.255.0")) + opt + tlv(54, SERVER)
    res = run(frame(bootp()), tlvs)
    assert res.result
    r = Reply(res.packet)
    assert r.options() == tlv(53, bytes((d.OFFER,))) + tlvs + d._TRAILER
    assert r.field(d._YIADDR) == OFFER
    assert r.field(d._OP, 1) == b"\x02"
    assert r.ip_dst() == OFFER


def test_reply_lengths_checksums_and_copied_fields():
    req = frame(bootp(flags=0x0000, ciaddr=bytes(4)), src=bytes(4))
    tlvs = tlv(54, SERVER) + tlv(51, b"\0\0\x0e\x10")
    r = Reply(run(req, tlvs).packet)
    L = len(tlvs)
    assert len(r.data) == 14 + 20 + 8 + 236 + 16 + L
    assert struct.unpack_from("!H", r.data, r.l4 + 4)[0] == 8 + 236 + 16 + L
    assert r.data[r.l4 + 6:r.l4 + 8] == b"\0\0"              # no UDP csum
    assert struct.unpack_from("!H", r.data, 16)[0] == 20 + 8 + 236 + 16 + L
    assert pkt.csum(r.data[14:34]) == 0
    # L2 header, TOS, ID, TTL, src, ports, xid, chaddr: the request's.
    assert r.data[:14] == req[:14]
    assert r.data[14:16] == req[14:16] and r.data[18:24] == req[18:24]
    assert r.data[26:30] == req[26:30]
    assert r.data[r.l4:r.l4 + 4] == req[r.l4:r.l4 + 4]
    assert r.data[r.dhcp + 1:r.dhcp + 16] == req[r.dhcp + 1:r.dhcp + 16]
    assert r.data[r.dhcp + 24:r.dhcp + 236] == req[r.dhcp + 24:r.dhcp + 236]


def test_reply_decodes_with_scapy():
    import scapy.all as scapy  # a test dependency (pyproject)
    res = run(frame(bootp()), tlv(1, ip4("255.255.255.0"))
              + tlv(51, struct.pack("!I", 3600)) + tlv(54, SERVER))
    p = scapy.Ether(res.packet)
    assert p[scapy.BOOTP].yiaddr == "10.0.0.11"
    opts = dict(o for o in p[scapy.DHCP].options if isinstance(o, tuple))
    assert opts["message-type"] == 2
    assert opts["lease_time"] == 3600
    assert opts["server_id"] == "10.0.0.1"


def test_next_server_sets_siaddr_and_stays():
    tlvs = tlv(253, ip4("10.0.0.9")) + tlv(54, SERVER)
    res = run(frame(bootp(siaddr=ip4("1.2.3.4"))), tlvs)
    r = Reply(res.packet)
    assert r.field(d._SIADDR) == ip4("10.0.0.9")
    assert r.options()[3:3 + len(tlvs)] == tlvs


def test_siaddr_defaults_to_request_siaddr():
    r = Reply(run(frame(bootp(siaddr=ip4("1.2.3.4")))).packet)
    assert r.field(d._SIADDR) == ip4("1.2.3.4")


BOOT = tlv(67, b"pxelinux.0")
BOOT_ALT = tlv(254, b"http://10.0.0.9/boot.ipxe")
REST = tlv(253, ip4("10.0.0.9")) + tlv(54, SERVER)
IPXE = tlv(d.OPT_ETHERBOOT, b"\x01\x01\x01")


def _reply_tlvs(res: Resume) -> bytes:
    return Reply(res.packet).options()[3:-len(d._TRAILER)]


def test_bootfile_alt_for_non_ipxe_client():
    res = run(frame(bootp()), BOOT + BOOT_ALT + REST)
    assert _reply_tlvs(res) == tlv(67, BOOT_ALT[2:]) + REST
    assert Reply(res.packet).field(d._SIADDR) == ip4("10.0.0.9")


def test_bootfile_for_ipxe_client():
    res = run(frame(bootp(opts=IPXE)), BOOT + BOOT_ALT + REST)
    assert _reply_tlvs(res) == BOOT + REST
    assert Reply(res.packet).field(d._SIADDR) == ip4("10.0.0.9")


def test_only_bootfile_alt_is_renamed():
    for opts in (b"", IPXE):
        res = run(frame(bootp(opts=opts)), BOOT_ALT + REST)
        assert _reply_tlvs(res) == tlv(67, BOOT_ALT[2:]) + REST


def test_only_bootfile_is_kept():
    res = run(frame(bootp()), BOOT + REST)
    assert _reply_tlvs(res) == BOOT + REST


def test_ipxe_option_must_fit_to_count():
    # 175 announced with a length past the end of the packet: not iPXE.
    req = frame(bootp(opts=b"\xaf\x40", end=False))
    res = run(req, BOOT + BOOT_ALT + REST)
    assert _reply_tlvs(res) == tlv(67, BOOT_ALT[2:]) + REST


def test_ipxe_long_bootfile_quirk():
    """23.03 replays: for an iPXE client whose bootfile_name is longer
    than bootfile_name_alt, the walk resumes inside the moved 67 value
    ('...kpxe' → code 0x70 'p', length 0x78 'x') and never reaches 253,
    so siaddr stays the request's.  Derived by hand from the C code."""
    boot = tlv(67, b"undionly.kpxe.0123")          # 20 bytes
    alt = tlv(254, b"a.ipxe")                      # 8 bytes
    out, nxt = d.rewrite_boot_options(boot + alt + REST, True, bytes(4))
    assert out == boot + REST
    assert nxt == bytes(4)


def test_rewrite_boot_options_never_raises_on_garbage():
    rng = random.Random(1)
    for _ in range(2000):
        n = rng.randrange(0, 24)
        buf = bytes(rng.choice((67, 253, 254, rng.randrange(256)))
                    for _ in range(n))
        out, nxt = d.rewrite_boot_options(buf, rng.random() < 0.5,
                                          bytes(4))
        assert len(out) <= len(buf) and len(nxt) == 4


def test_inform_strips_address_and_lease_options(logs):
    keep = tlv(3, SERVER) + tlv(54, SERVER) + tlv(253, ip4("10.0.0.9"))
    tlvs = (tlv(1, ip4("255.255.255.0")) + tlv(51, b"\0\0\x0e\x10")
            + keep[:6] + tlv(58, b"\0\0\x07\x08") + tlv(59, b"\0\0\x0c\x4e")
            + keep[6:])
    req = frame(bootp(d.INFORM, ciaddr=OFFER, siaddr=ip4("1.2.3.4")),
                src=OFFER, dst=SERVER)
    res = run(req, tlvs)
    r = Reply(res.packet)
    assert res.result
    assert r.options()[:3] == bytes((53, 1, d.ACK))
    assert _reply_tlvs(res) == keep
    assert r.field(d._YIADDR) == bytes(4)
    assert r.field(d._SIADDR) == ip4("1.2.3.4")       # 253 ignored
    assert r.field(d._CIADDR) == OFFER
    assert r.ip_dst() == OFFER
    assert logs.lines == [
        ("INFO", "DHCPINFORM from 50:54:00:00:00:01 10.0.0.11"),
        ("INFO", "DHCPACK 50:54:00:00:00:01 10.0.0.11")]


def test_strip_inform_options_truncated_tlv():
    assert d.strip_inform_options(tlv(3, SERVER) + b"\x0c\x09ab") == \
        tlv(3, SERVER) + b"\x0c\x09ab"
    assert d.strip_inform_options(b"\x01\x04\x00") == b""


def test_nak_shape(logs):
    req = frame(bootp(d.REQUEST, siaddr=ip4("1.2.3.4"),
                      opts=tlv(50, ip4("10.0.0.99"))))
    res = run(req, BOOT + REST)
    r = Reply(res.packet)
    assert res.result
    assert r.options() == bytes((53, 1, d.NAK)) + d._TRAILER
    assert r.field(d._YIADDR) == bytes(4)
    assert r.field(d._SIADDR) == bytes(4)
    assert struct.unpack_from("!H", r.data, r.l4 + 4)[0] == 8 + 236 + 16
    assert r.ip_dst() == OFFER
    assert logs.lines == [
        ("WARN", "DHCPREQUEST requested IP 10.0.0.99 does not match offer "
                 "10.0.0.11"),
        ("INFO", "DHCPNAK 50:54:00:00:00:01 10.0.0.11")]


@pytest.mark.parametrize("ciaddr,opts,ack", [
    (OFFER, b"", True),                         # renewing: ciaddr
    (bytes(4), tlv(50, OFFER), True),           # selecting: option 50
    (ip4("10.0.0.99"), tlv(50, OFFER), True),   # option 50 wins
    (bytes(4), b"", False),                     # neither: NAK
    (bytes(4), tlv(50, OFFER[:3]), False),      # option 50 len != 4 ignored
])
def test_request_ip_selection(ciaddr, opts, ack):
    res = run(frame(bootp(d.REQUEST, ciaddr=ciaddr, opts=opts)))
    assert res.result
    want = d.ACK if ack else d.NAK
    assert Reply(res.packet).options()[:3] == bytes((53, 1, want))


@pytest.mark.parametrize("mt", [d.DISCOVER, d.REQUEST, d.INFORM])
def test_broadcast_flag_sends_to_broadcast(mt):
    req = frame(bootp(mt, flags=0x8000, ciaddr=OFFER), src=OFFER)
    res = run(req)
    r = Reply(res.packet)
    assert r.ip_dst() == b"\xff" * 4
    assert r.field(d._FLAGS, 2) == b"\x80\x00"
    assert pkt.csum(r.data[14:34]) == 0


SERVER_MAC = bytes.fromhex("0a0000000001")


@pytest.mark.parametrize("flags,ip_dst", [(0, OFFER), (0x8000, b"\xff" * 4)],
                         ids=["to_offer", "broadcast_flag"])
def test_unicast_discover_gets_the_offer_of_a_broadcast_one(flags, ip_dst,
                                                            logs):
    """RFC 2131 §4.4.4: a client that knows its server may send the
    DISCOVER to it.  23.03's renewal flow (ip4.src == OFFER && ip4.dst ==
    {SERVER, 255.255.255.255}) punts such a DISCOVER from a client that
    kept its address, and 23.03 answers it with the OFFER a broadcast one
    gets: the IP destination is the offer (or broadcast, per the flag),
    never the request's; only the copied Ethernet destination differs."""
    tlvs = (tlv(1, ip4("255.255.255.0")) + tlv(51, struct.pack("!I", 3600))
            + tlv(54, SERVER))
    payload = bootp(d.DISCOVER, flags=flags)
    bcast = run(frame(payload, src=OFFER), tlvs)
    ucast = run(SERVER_MAC + frame(payload, src=OFFER, dst=SERVER)[6:], tlvs)
    assert ucast.result and bcast.result
    r = Reply(ucast.packet)
    assert r.options()[:3] == bytes((53, 1, d.OFFER))
    assert (r.field(d._YIADDR), r.ip_dst()) == (OFFER, ip_dst)
    assert ucast.packet[:6] == SERVER_MAC
    assert ucast.packet[6:] == bcast.packet[6:]
    assert logs.lines == [("INFO", "DHCPOFFER 50:54:00:00:00:01 10.0.0.11")] * 2


def test_vlan_tagged_request():
    vlan = b"\x81\x00\x20\x64"
    req = frame(bootp(), vlan=vlan)
    res = run(req)
    assert res.result
    r = Reply(res.packet, l3=18)
    assert r.data[:18] == req[:18]
    assert r.ip_dst() == OFFER
    assert r.field(d._YIADDR) == OFFER
    assert pkt.csum(r.data[18:38]) == 0
    assert struct.unpack_from("!H", r.data, 20)[0] == len(r.data) - 18


def test_ip_options_copied_checksum_over_whole_header():
    ip_opts = b"\x94\x04\x00\x00"                  # Router Alert
    req = frame(bootp(), ip_opts=ip_opts)
    r = Reply(run(req).packet)
    assert r.l4 == 14 + 24
    assert r.data[34:38] == ip_opts
    assert struct.unpack_from("!H", r.data, 16)[0] == len(r.data) - 14
    # Deliberate deviation from 23.03 (docs/compat.md): the checksum
    # covers the whole IHL, options included, so the reply is valid.
    assert pkt.csum(r.data[14:38]) == 0


def test_ethernet_padding_is_not_options():
    # Options after the IP total length are ignored and not copied.
    req = frame(bootp(None, end=False), pad=tlv(53, b"\x01") + b"\xff")
    _rejected(req, "no_msg_type")
    req = frame(bootp(), pad=b"\0" * 20)
    r = Reply(run(req).packet)
    assert len(r.data) == 14 + 20 + 8 + 236 + 16 + 6


def test_pad_options_are_skipped():
    res = run(frame(bootp(None, opts=b"\0\0\0" + tlv(53, b"\x01"))))
    assert res.result


def test_release_logs_ciaddr_and_resumes_request(logs):
    req = frame(bootp(d.RELEASE, ciaddr=OFFER), src=OFFER, dst=SERVER)
    res, n = counter_delta("pinctrl_dhcpv4_release", lambda: run(req))
    assert (res.packet, res.result, n) == (req, False, 1)
    assert logs.lines == [("INFO", "DHCPRELEASE 50:54:00:00:00:01 10.0.0.11")]


@pytest.mark.parametrize("requested,logged", [(OFFER, True),
                                              (ip4("10.0.0.99"), False)])
def test_decline(logs, requested, logged):
    req = frame(bootp(d.DECLINE, opts=tlv(50, requested)))
    res, n = counter_delta("pinctrl_dhcpv4_decline", lambda: run(req))
    assert (res.packet, res.result, n) == (req, False, 1)
    want = [("INFO", "DHCPDECLINE from 50:54:00:00:00:01, 10.0.0.11 "
                     "duplicated")]
    assert logs.lines == (want if logged else [])


# --- hostile input -------------------------------------------------------------

def _rejected(packet: bytes, reason: str, **kw) -> Resume:
    name = d.COUNTER_PREFIX + reason
    res, n = counter_delta(name, lambda: run(packet, **kw))
    assert n == 1, name
    assert res.packet == packet and res.result is False
    return res


def test_raw_prefixes_of_a_discover():
    good = frame(bootp(opts=tlv(55, b"\x01\x03\x06")))
    assert run(good).result
    for n in range(len(good)):
        reason = "not_ipv4"             # IP total length beyond the frame
        res = _rejected(good[:n], reason)
        assert res.dest is not None


def test_consistent_prefixes_of_a_discover():
    """Truncate the UDP payload but keep the IP length consistent, so each
    check of put_dhcp_opts's request validation is reached; the 53 option ends at byte 243."""
    payload = bootp(opts=tlv(55, b"\x01\x03\x06"))
    for n in range(len(payload) + 1):
        req = frame(payload[:n])
        before = coverage.snapshot()
        res = run(req)
        after = coverage.snapshot()
        bumped = {k for k in after if after[k] != before.get(k, 0)}
        if n >= 243:
            assert res.result and not bumped, n
        else:
            assert not res.result and res.packet == req, n
            reason = ("short_bootp" if n < 236 else
                      "bad_cookie" if n < 240 else "no_msg_type")
            assert bumped == {d.COUNTER_PREFIX + reason}, n


def test_short_udp_header():
    req = bytearray(frame(b""))
    struct.pack_into("!H", req, 16, 20 + 4)        # IP ends inside UDP hdr
    _rejected(bytes(req[:38]), "short_udp")


def test_bad_magic_cookie():
    _rejected(frame(bootp(cookie=b"\x63\x82\x53\x64")), "bad_cookie")


def test_bootreply_op():
    _rejected(frame(bootp(op=2)), "not_request")


def test_options_without_end_running_off_the_end():
    # Message type found, then an option cut short: still answered.
    assert run(frame(bootp(opts=b"\x0c\x20abc", end=False))).result
    # No message type before running off: rejected.
    _rejected(frame(bootp(None, opts=b"\x0c\x20abc", end=False)),
              "no_msg_type")


def test_option_length_past_the_end():
    _rejected(frame(bootp(None, opts=b"\x35\x05\x01", end=False)),
              "no_msg_type")
    _rejected(frame(bootp(None, opts=b"\x35", end=False)), "no_msg_type")


@pytest.mark.parametrize("value", [b"", b"\x01\x01"])
def test_msg_type_bad_length(value):
    _rejected(frame(bootp(None, opts=tlv(53, value))), "no_msg_type")


def test_options_after_end_are_ignored():
    _rejected(frame(bootp(None, opts=b"\xff" + tlv(53, b"\x01"))),
              "no_msg_type")


@pytest.mark.parametrize("mt", [0, 2, 5, 6, 9, 255])
def test_invalid_msg_type(mt, logs):
    _rejected(frame(bootp(mt)), "bad_msg_type")
    assert logs.lines == [("WARN", f"Invalid DHCP message type: {mt}")]


def test_not_ipv4():
    _rejected(frame(bootp(), ethertype=0x86DD), "not_ipv4")
    _rejected(frame(bootp(), ethertype=0x0806), "not_ipv4")
    _rejected(b"", "not_ipv4")


def test_not_udp():
    _rejected(frame(bootp(), proto=6), "not_udp")


@pytest.mark.parametrize("args,reason,has_dest", [
    (b"", "bad_result", False),
    (RESULT_HDR[:6], "bad_result", False),
    (bytes.fromhex("0001df1000000063"), "bad_result", False),   # masked
    (bytes.fromhex("0001de1000000080"), "bad_result", False),   # ofs >= 128
    (RESULT_HDR, "bad_userdata", True),
    (RESULT_HDR + OFFER[:3], "bad_userdata", True),
    (RESULT_HDR + OFFER, "bad_userdata", True),                 # no options
])
def test_bad_userdata(args, reason, has_dest):
    req = frame(bootp())
    res = _rejected(req, reason, ud=OPCODE_HDR + args)
    assert (res.dest is not None) is has_dest


def test_random_mutations_never_raise():
    rng = random.Random(2303)
    base = frame(bootp(d.REQUEST, opts=tlv(50, OFFER) + IPXE))
    tlvs = BOOT + BOOT_ALT + REST
    for _ in range(3000):
        buf = bytearray(base)
        for _ in range(rng.randrange(1, 6)):
            buf[rng.randrange(len(buf))] = rng.randrange(256)
        buf = buf[:rng.randrange(len(buf) + 1)] if rng.random() < 0.3 \
            else buf
        ud = bytearray(userdata(tlvs))
        if rng.random() < 0.3:
            ud[rng.randrange(8, len(ud))] = rng.randrange(256)
        if rng.random() < 0.2:
            ud = ud[:rng.randrange(8, len(ud) + 1)]
        res = run(bytes(buf), ud=bytes(ud))
        assert isinstance(res, Resume)
        assert res.result or res.packet == bytes(buf)
