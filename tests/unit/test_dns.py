"""dns_lookup (opcode 6) against OVN 23.03's recorded behaviour, the
documented EDNS deviation, hand-built queries for each rule of OVN
pinctrl.c pinctrl_handle_dns_lookup() and hostile inputs (OVN BZ1740335: a crafted query looped forever)."""

from __future__ import annotations

import random
import struct
import threading

import dns.message as dns_message  # noqa: E402  (dnspython: a test dependency)
import dns.rdatatype  # noqa: E402  (dnspython, test extra)
import pytest

from pinctrl.actions import REGISTRY, load_all
from pinctrl.actions import dns as d
from pinctrl.actions.replies import Resume
from pinctrl.db import dns_cache
from pinctrl.handler import dispatch
from pinctrl.openflow.oxm import Metadata
from pinctrl.openflow.packet_in import PacketIn
from pinctrl.packet import headers as pkt
from pinctrl.shared.state import SharedState
from pinctrl.support import coverage
from testbed import golden as goldens
from tests.helpers import counted, record_logs

# The SB DNS row of tests/golden/ovn-23.03/sb.backup.db (sw0 = dp key 1);
# test_sb_dns_cache.py checks that the real database gives the same cache.
V6_PTR = ("1.1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2"
          ".ip6.arpa")
GOLDEN_RECORDS = {
    V6_PTR: "vm1.ovn.test",
    "11.0.0.10.in-addr.arpa": "vm1.ovn.test",
    "vm1.ovn.test": "10.0.0.11 2001:db8::11",
    "vm2.ovn.test": "10.0.0.12 2001:db8::12",
}
GOLDEN_DNS_ID = "da9b2133-ee34-4ef0-a804-267444864b31"
GOLDEN_CACHE = dns_cache.build_dns_cache([(GOLDEN_DNS_ID, GOLDEN_RECORDS, [1])])

RESULT_HDR = bytes.fromhex("0001de1000000064")     # reg0[4], wire-formats.md
OPCODE_HDR = bytes.fromhex("0000000600000000")
MAC_C = bytes.fromhex("505400000001")
MAC_S = bytes.fromhex("00000000ff01")


# One SharedState per cache (each holds two Seq pipes: do not make one
# per query).
_ENVS: dict[int, tuple[object, dispatch.HandlerEnv]] = {}


def env_with(cache) -> dispatch.HandlerEnv:
    got = _ENVS.get(id(cache))
    if got is None or got[0] is not cache:
        shared = SharedState()
        shared.set_dns_cache(cache)
        got = _ENVS[id(cache)] = (cache, dispatch.Env(shared=shared))
    return got[1]


GOLDEN_ENV = env_with(GOLDEN_CACHE)


# --- builders ---------------------------------------------------------------

def qname(name: str) -> bytes:
    if name in ("", "."):
        return b"\0"
    return b"".join(bytes((len(l),)) + l.encode()
                    for l in name.rstrip(".").split(".")) + b"\0"


def dns_msg(name: str | bytes = "vm1.ovn.test", qtype: int = d.TYPE_A, *,
            flags: int = 0x0100, qd: int = 1, an: int = 0, ns: int = 0,
            ar: int = 0, tail: bytes = b"", ident: int = 0x1001) -> bytes:
    qn = name if isinstance(name, bytes) else qname(name)
    return (struct.pack("!HHHHHH", ident, flags, qd, an, ns, ar) + qn
            + struct.pack("!HH", qtype, 1) + tail)


def frame4(payload: bytes, *, vlan: bytes = b"", pad: bytes = b"",
           udp_len: int | None = None, proto: int = 17) -> bytes:
    ulen = 8 + len(payload) if udp_len is None else udp_len
    udp = struct.pack("!HHHH", 33333, 53, ulen, 0xabcd) + payload
    ip = bytearray(struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(udp), 1,
                               0, 64, proto, 0, bytes([10, 0, 0, 11]),
                               bytes([10, 0, 0, 1])))
    pkt.ipv4_set_csum(ip, 0)
    return MAC_S + MAC_C + vlan + b"\x08\x00" + bytes(ip) + udp + pad


SRC6 = bytes.fromhex("20010db8000000000000000000000011")
DST6 = bytes.fromhex("20010db8000000000000000000000001")


def frame6(payload: bytes, *, nxt: int = 17, ext: bytes = b"") -> bytes:
    udp = struct.pack("!HHHH", 33333, 53, 8 + len(payload), 0) + payload
    ip = struct.pack("!IHBB16s16s", 0x60000000, len(ext) + len(udp), nxt,
                     64, SRC6, DST6)
    return MAC_S + MAC_C + b"\x86\xdd" + ip + ext + udp


def run(packet: bytes, cache=GOLDEN_CACHE, dp: int = 1,
        args: bytes = RESULT_HDR) -> Resume:
    md = Metadata()
    md.entries.append([0x8000, 2, bytes.fromhex("80000408"),
                       dp.to_bytes(8, "big"), None])
    pin = PacketIn(packet, userdata=OPCODE_HDR + args, metadata=md)
    return d.dns_lookup(pin, env_with(cache))


def answer(res: Resume, l4: int = 34) -> dns_message.Message:
    return dns_message.from_wire(res.packet[l4 + 8:])


@pytest.fixture
def logs(monkeypatch):
    return record_logs(monkeypatch, d)


# --- golden exchanges ---------------------------------------------------------

def _golden_cases():
    return [pytest.param(rec, resume, step["ovn_controller_log"], id=name)
            for name, step, rec, resume in goldens.paused_pairs("dns_")]


GOLDEN = _golden_cases()


def test_every_dns_golden_is_covered():
    assert len(GOLDEN) == len(goldens.exchange_names("dns_")) == 12


@pytest.mark.parametrize("pin_rec,resume_rec,golden_log", GOLDEN)
def test_golden_exchange(pin_rec, resume_rec, golden_log, logs):
    pin = goldens.packet_in_from_hex(pin_rec["hex"])
    assert pin.opcode == 6 and pin.metadata.datapath == 1
    res = d.dns_lookup(pin, GOLDEN_ENV)

    goldens.assert_resume_matches(pin, res, resume_rec, 0, 4)
    assert logs.lines == [goldens.log_text(l) for l in golden_log]


@pytest.mark.parametrize("pin_rec,resume_rec,golden_log", GOLDEN)
def test_golden_exchange_through_dispatch(pin_rec, resume_rec, golden_log):
    pin = goldens.packet_in_from_hex(pin_rec["hex"])
    msgs = dispatch.process_packet_in(pin, GOLDEN_ENV)
    assert [m.hex() for m in msgs] == [resume_rec["hex"]]


def test_golden_hits_need_the_cache():
    """Without a cache (no SharedState) every golden is a miss."""
    for p in GOLDEN:
        pin = goldens.packet_in_from_hex(p.values[0]["hex"])
        res = d.dns_lookup(pin, dispatch.Env())
        assert (res.packet, res.result) == (pin.packet, False)


def test_registered_as_pausing_opcode_6():
    act = load_all()[6]
    assert act is REGISTRY[6]
    assert (act.name, act.pause) == ("dns_lookup", True)


# --- answers --------------------------------------------------------------------

@pytest.mark.parametrize("qtype,want", [
    (d.TYPE_A, [("A", "10.0.0.11")]),
    (d.TYPE_AAAA, [("AAAA", "2001:db8::11")]),
    (d.TYPE_ANY, [("A", "10.0.0.11"), ("AAAA", "2001:db8::11")]),
])
def test_address_answers(qtype, want):
    res = run(frame4(dns_msg("vm1.ovn.test", qtype)))
    assert res.result
    m = answer(res)
    got = [(dns.rdatatype.to_text(rr.rdtype), rr[0].to_text())
           for rr in m.answer]
    assert sorted(got) == sorted(want)
    assert all(rr.ttl == 3600 for rr in m.answer)
    assert m.flags & 0x8000 and m.id == 0x1001


def test_ptr_answers_v4_and_v6():
    for name in ("11.0.0.10.in-addr.arpa", V6_PTR):
        m = answer(run(frame4(dns_msg(name, d.TYPE_PTR))))
        assert [rr[0].to_text() for rr in m.answer] == ["vm1.ovn.test."]


def test_reply_layout_ipv4():
    q = dns_msg("Vm1.OVN.test", d.TYPE_ANY, flags=0x0120)
    req = frame4(q)
    out = run(req).packet
    qn = qname("Vm1.OVN.test")
    rr_a = qn + struct.pack("!HHIH", 1, 1, 3600, 4) + bytes([10, 0, 0, 11])
    rr_aaaa = qn + struct.pack("!HHIH", 28, 1, 3600, 16) + bytes.fromhex(
        "20010db8000000000000000000000011")
    hdr = struct.pack("!HHHHHH", 0x1001, 0x8120, 1, 2, 0, 0)
    assert out[42:] == hdr + q[12:] + rr_a + rr_aaaa
    assert out[:14] == req[:14]
    assert struct.unpack_from("!H", out, 38)[0] == len(out) - 34   # UDP len
    assert out[40:42] == b"\0\0"                                   # UDP csum
    assert struct.unpack_from("!H", out, 16)[0] == len(out) - 14
    assert pkt.csum(out[14:34]) == 0
    assert out[34:38] == req[34:38]            # ports kept (flows swap)


def test_reply_ipv6_checksum_and_length():
    out = run(frame6(dns_msg("vm2.ovn.test", d.TYPE_AAAA))).packet
    plen = struct.unpack_from("!H", out, 18)[0]
    assert plen == len(out) - 54 == struct.unpack_from("!H", out, 58)[0]
    pseudo = SRC6 + DST6 + struct.pack("!IxxxB", plen, 17)
    assert pkt.csum(pseudo + out[54:]) == 0
    m = answer(Resume(out), l4=54)
    assert m.answer[0][0].to_text() == "2001:db8::12"


def test_case_insensitive_match_original_case_echoed():
    m = answer(run(frame4(dns_msg("VM2.Ovn.TEST"))))
    assert m.question[0].name.to_text() == "VM2.Ovn.TEST."
    assert m.answer[0].name.to_text() == "VM2.Ovn.TEST."
    assert m.answer[0][0].to_text() == "10.0.0.12"


def test_uppercase_record_key_never_matches():
    cache = dns_cache.build_dns_cache([("id", {"VM9.ovn.test": "10.0.0.9"}, [1])])
    res = counted(lambda: run(frame4(dns_msg("vm9.ovn.test")), cache),
                  "pinctrl_dns_miss")
    assert not res.result


@pytest.mark.parametrize("name,qtype,counter", [
    ("nope.ovn.test", d.TYPE_A, "pinctrl_dns_miss"),
    ("vm1.ovn.test", 15, "pinctrl_dns_unsupported_type"),        # MX
    ("vm1.ovn.test", 16, "pinctrl_dns_unsupported_type"),        # TXT
    ("vm1.ovn.test", d.TYPE_PTR, None),                # PTR answers anything
    ("11.0.0.10.in-addr.arpa", d.TYPE_A, "pinctrl_dns_no_answer"),
])
def test_miss_and_unsupported(name, qtype, counter):
    req = frame4(dns_msg(name, qtype))
    if counter is None:
        assert run(req).result
        return
    res = counted(lambda: run(req), counter)
    assert (res.packet, res.result) == (req, False)


def test_wrong_datapath_misses():
    res = run(frame4(dns_msg()), dp=2)
    assert not res.result


def test_aaaa_without_ipv6_records_is_not_answered():
    cache = dns_cache.build_dns_cache([("id", {"v4.only": "10.1.1.1"}, [1])])
    res = counted(lambda: run(frame4(dns_msg("v4.only", d.TYPE_AAAA)),
                              cache), "pinctrl_dns_no_answer")
    assert not res.result


def test_several_addresses_and_prefixes():
    cache = dns_cache.build_dns_cache([("id", {
        "multi": "10.0.0.1/24 10.0.0.2 fd00::1/64 10.0.0.3"}, [1])])
    res = run(frame4(dns_msg("multi", d.TYPE_ANY)), cache)
    assert struct.unpack_from("!H", res.packet, 42 + 6)[0] == 4
    m = answer(res)
    assert [r.to_text() for rrset in m.answer for r in rrset] == [
        "10.0.0.1", "10.0.0.2", "10.0.0.3", "fd00::1"]


@pytest.mark.parametrize("value,v4,v6", [
    ("10.0.0.11 2001:db8::11", ["10.0.0.11"], ["2001:db8::11"]),
    ("  10.0.0.1\t10.0.0.2  ", ["10.0.0.1", "10.0.0.2"], []),
    ("10.0.0.1 junk 10.0.0.2", ["10.0.0.1"], []),     # stops at junk
    ("junk 10.0.0.1", [], []),
    ("10.0.0.1/33 10.0.0.2", [], []),                 # bad prefix stops
    ("10.0.0.1/255.255.0.0 ::1/128", ["10.0.0.1"], ["::1"]),
    ("10.0.0.1/255.0.255.0", [], []),                 # not CIDR
    ("300.0.0.1", [], []),
    ("::ffff:1.2.3.4", [], ["::ffff:102:304"]),
    ("vm1.ovn.test", [], []),
    ("", [], []),
])
def test_parse_ip_addresses(value, v4, v6):
    import ipaddress
    got4, got6 = dns_cache.parse_ip_addresses(value)
    assert [str(ipaddress.IPv4Address(a)) for a in got4] == v4
    assert [str(ipaddress.IPv6Address(a)) for a in got6] == v6


@pytest.mark.parametrize("value,want", [
    (b"vm1tst.ovn.org", bytes.fromhex("06766d31747374036f766e036f726700")),
    (b"a.b.", b"\x01a\x01b\x00\x00"),        # trailing dot: extra zero
    (b"host", b"\x04host\x00"),
    (b".a", b"\x00\x01a\x00"),               # 23.03's literal result
    (b"", b"\x00\x00"),
])
def test_encode_ptr_rdata(value, want):
    assert d.encode_ptr_rdata(value) == want
    assert len(want) == len(value) + 2


def test_build_dns_cache_shape_and_immutability():
    cache = dns_cache.build_dns_cache([
        ("b", {"x.test": "10.0.0.2", "y.test": "10.0.0.3"}, [1, 2]),
        ("a", {"x.test": "10.0.0.1"}, [1]),
        (None, {"z.test": "10.0.0.4"}, [1]),          # no dns_id: ignored
    ])
    assert set(cache) == {1, 2}
    assert cache[1][b"x.test"].ipv4 == (bytes([10, 0, 0, 1]),)   # id "a"
    assert cache[2][b"x.test"].ipv4 == (bytes([10, 0, 0, 2]),)
    assert b"z.test" not in cache[1]
    with pytest.raises(TypeError):
        cache[1] = {}
    with pytest.raises(TypeError):
        cache[1][b"x.test"] = None


def test_handler_does_not_hold_the_mutex_while_answering(monkeypatch):
    """The handler takes the reference under the mutex and then works
    without it: the main thread may publish a new cache meanwhile."""
    shared = SharedState()
    shared.set_dns_cache(GOLDEN_CACHE)
    env = dispatch.Env(shared=shared)
    seen = []
    orig = d.process

    def spy(frame, dp, cache):
        seen.append(shared.mutex.locked())
        t = threading.Thread(target=shared.set_dns_cache, args=({},))
        t.start()
        t.join(2)
        assert not t.is_alive()
        return orig(frame, dp, cache)

    monkeypatch.setattr(d, "process", spy)
    pin = PacketIn(frame4(dns_msg()), userdata=OPCODE_HDR + RESULT_HDR)
    pin.metadata.entries.append([0x8000, 2, bytes.fromhex("80000408"),
                                 (1).to_bytes(8, "big"), None])
    assert d.dns_lookup(pin, env).result      # old snapshot still used
    assert seen == [False]
    assert shared.get_dns_cache() == {}


def test_set_dns_cache_wakes_the_handler():
    shared = SharedState()
    seq = shared.handler_seq.read()
    shared.set_dns_cache(GOLDEN_CACHE)
    assert shared.handler_seq.read() != seq


# --- EDNS / additional records: documented deviation (docs/compat.md) ------

def test_edns_query_answered_opt_dropped():
    """23.03 does not answer a query with ARCOUNT != 0 (dig's default
    EDNS OPT); OVN >= 23.03.3 (b7fe2c8b1) answers it with the header, the
    first question and the answers only: ARCOUNT 0, OPT not echoed."""
    q = dns_message.make_query("vm1.ovn.test", "A", use_edns=0,
                               payload=1232)
    q.id = 0x4242
    wire = q.to_wire()
    assert struct.unpack_from("!H", wire, 10)[0] == 1
    res = counted(lambda: run(frame4(wire)), "pinctrl_dns_answered")
    assert res.result
    m = answer(res)
    assert m.edns == -1 and not m.additional          # no OPT echoed
    assert [rr[0].to_text() for rr in m.answer] == ["10.0.0.11"]
    qlen = len(qname("vm1.ovn.test")) + 4
    assert res.packet[42 + 12:42 + 12 + qlen] == wire[12:12 + qlen]
    assert struct.unpack_from("!HHHH", res.packet, 42 + 4) == (1, 1, 0, 0)


def test_edns_client_subnet_like_ovn_test():
    """OVN's own test "dns lookup : EDNS" (b7fe2c8b1): an OPT with an
    ECS option; the expected reply is DNS(qr=1, qd, an) only."""
    import scapy.all as scapy  # a test dependency (pyproject)
    from scapy.layers.dns import DNS, DNSQR, DNSRR, DNSRROPT
    try:
        from scapy.layers.dns import EDNS0ClientSubnet
        opt = DNSRROPT(rclass=4096, rdata=[EDNS0ClientSubnet(
            source_plen=24, address="10.0.0.1")])
    except ImportError:                               # older scapy
        opt = DNSRROPT(rclass=4096)
    req = bytes(DNS(rd=1, qd=DNSQR(qname="vm1.ovn.test"), ar=[opt]))
    res = run(frame4(req))
    want = bytes(DNS(id=0, qr=1, rd=1, qd=DNSQR(qname="vm1.ovn.test"),
                     an=DNSRR(rrname="vm1.ovn.test", type="A", ttl=3600,
                              rdata="10.0.0.11")))
    assert res.packet[42:] == want
    assert scapy is not None


def test_trailing_bytes_and_authority_dropped():
    q = dns_msg(ns=1, tail=b"\xc0\x0c\x00\x02\x00\x01" + b"\0" * 10)
    out = run(frame4(q)).packet
    assert struct.unpack_from("!HHHH", out, 46) == (1, 1, 0, 0)
    assert len(out) == 42 + len(q) - 16 + 28       # one 28-byte A RR


def test_ethernet_padding_not_copied():
    req = frame4(dns_msg(), pad=b"\xee" * 8)
    out = run(req).packet
    assert b"\xee" not in out[42:]
    assert struct.unpack_from("!H", out, 16)[0] == len(out) - 14


# --- hostile input --------------------------------------------------------------

def _rejected(packet: bytes, counter: str, **kw) -> Resume:
    res = counted(lambda: run(packet, **kw), counter)
    assert res.packet == packet and res.result is False
    return res


def test_response_is_not_answered():
    _rejected(frame4(dns_msg(flags=0x8100)), "pinctrl_dns_not_query")


def test_qdcount_zero_and_two():
    _rejected(frame4(dns_msg(qd=0)), "pinctrl_dns_drop_no_question")
    two = dns_msg(qd=2, tail=qname("vm2.ovn.test") + b"\0\x01\0\x01")
    _rejected(frame4(two), "pinctrl_dns_drop_multi_question")


@pytest.mark.parametrize("qn", [
    b"\xc0\x0c",                               # pointer to the header
    b"\x03vm1\xc0\x0c",                        # pointer after a label
    b"\xc0\x0e",                               # pointer to itself (loop)
    b"\x40" + b"a" * 64 + b"\0",               # label 64
    b"\x80ab\0",                               # reserved label type
])
def test_bad_labels(qn):
    _rejected(frame4(dns_msg(qn)), "pinctrl_dns_drop_bad_label")


def test_label_63_ok_and_name_255_limit():
    lab = b"\x3f" + b"a" * 63
    ok = lab * 3 + b"\x3d" + b"a" * 61 + b"\0"           # 255 bytes
    assert len(ok) == 255
    res = run(frame4(dns_msg(ok)))
    assert not res.result                                 # just a miss
    long = lab * 4 + b"\0"                                # 257 bytes
    _rejected(frame4(dns_msg(long)), "pinctrl_dns_drop_name_too_long")


def test_huge_name_with_many_short_labels():
    _rejected(frame4(dns_msg(b"\x01a" * 2000 + b"\0")),
              "pinctrl_dns_drop_name_too_long")


def test_label_overrunning_the_packet():
    _rejected(frame4(dns_msg(b"\x3fabc", tail=b"")[:12 + 4]),
              "pinctrl_dns_drop_truncated")


def test_consistent_truncation_at_every_length():
    """Cut the DNS payload at every length (UDP/IP lengths consistent):
    short of a whole question, nothing is answered, and every cut is
    counted exactly once."""
    full = dns_msg("vm1.ovn.test", d.TYPE_ANY)
    for n in range(len(full)):
        req = frame4(full[:n])
        before = coverage.snapshot()
        res = run(req)
        after = coverage.snapshot()
        bumped = {k for k in after if after[k] != before.get(k, 0)}
        assert (res.packet, res.result) == (req, False), n
        want = "pinctrl_dns_drop_truncated"
        assert bumped == {want}, (n, bumped)
    assert run(frame4(full)).result


def test_raw_prefixes_never_raise():
    full = frame4(dns_msg("vm1.ovn.test", d.TYPE_ANY))
    for n in range(len(full)):
        res = run(full[:n])
        assert (res.packet, res.result) == (full[:n], False)


def test_udp_length_shorter_than_datagram_bounds_the_name(logs):
    q = dns_msg()
    res = run(frame4(q, udp_len=8 + 12 + 5))
    assert not res.result


def test_truncated_header_warns_like_2303(logs):
    _rejected(frame4(b"\x10\x01\x01\x00"), "pinctrl_dns_drop_truncated")
    assert logs.lines == [("WARN", "truncated dns packet")]


@pytest.mark.parametrize("packet,counter", [
    (frame4(dns_msg(), proto=6), "pinctrl_dns_drop_not_udp"),
    (frame6(dns_msg(), nxt=0, ext=b"\x11\0" + b"\0" * 6),
     "pinctrl_dns_drop_ipv6_ext_hdr"),
    (b"", "pinctrl_dns_drop_not_ip"),
    (MAC_S + MAC_C + b"\x08\x06" + b"\0" * 28, "pinctrl_dns_drop_not_ip"),
])
def test_not_udp_or_not_ip(packet, counter):
    _rejected(packet, counter)


def test_vlan_tagged_query():
    req = frame4(dns_msg(), vlan=b"\x81\x00\x00\x64")
    res = run(req)
    assert res.result
    assert res.packet[:18] == req[:18]
    assert pkt.csum(res.packet[18:38]) == 0


@pytest.mark.parametrize("args,has_dest", [
    (b"", False),
    (RESULT_HDR[:6], False),
    (bytes.fromhex("0001df1000000064"), False),        # masked
    (RESULT_HDR + b"extra", True),                      # ignored, like 23.03
])
def test_bad_userdata(args, has_dest):
    res = run(frame4(dns_msg()), args=args)
    assert (res.dest is not None) is has_dest
    if not has_dest:
        assert not res.result


def test_reply_too_big_is_not_sent():
    addrs = " ".join(f"10.{i // 250}.{i % 250}.1" for i in range(300))
    name = ".".join(["a" * 60] * 4)
    cache = dns_cache.build_dns_cache([("id", {name: addrs}, [1])])
    _rejected(frame4(dns_msg(name)), "pinctrl_dns_drop_reply_too_big",
              cache=cache)


def test_random_mutations_never_raise():
    rng = random.Random(1740335)
    base = frame4(dns_msg("vm1.ovn.test", d.TYPE_ANY))
    for _ in range(4000):
        buf = bytearray(base)
        for _ in range(rng.randrange(1, 6)):
            i = rng.randrange(42, len(buf)) if rng.random() < 0.8 \
                else rng.randrange(len(buf))
            buf[i] = rng.choice((0, 0x3f, 0x40, 0xc0, 0xff,
                                 rng.randrange(256)))
        if rng.random() < 0.3:
            buf = buf[:rng.randrange(len(buf) + 1)]
        res = run(bytes(buf))
        assert isinstance(res, Resume)
        assert res.result or res.packet == bytes(buf)
