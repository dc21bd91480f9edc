"""dns_lookup (opcode 6): answer a DNS query from the Southbound DNS table.

controller/pinctrl.c pinctrl_handle_dns_lookup() and sync_dns_cache();
the flows are northd/northd.c build_lswitch_dns_lookup_and_response().
The logical flow `reg0[4] = dns_lookup(); next;` pauses every UDP packet
to port 53 on a switch that has DNS records; we either turn it into the
answer in place (result 1: the next table swaps the addresses and sends
it back) or resume it unchanged with result 0 (a miss: the query goes on
to its destination).

Three layers:
* the cache (main thread, db/dns_cache.py): parse_ip_addresses,
  build_dns_cache turn SB DNS rows into an immutable snapshot that
  SbSync publishes in SharedState.dns_cache;
* pure functions (any thread, in practice the pinctrl_handler thread):
  parse_query, encode_ptr_rdata, build_answers, build_reply, process;
* dns_lookup(), the registered handler (pinctrl_handler thread): takes the
  snapshot reference under the mutex, then works lock-free, and adds the
  side effects (coverage counters, rate-limited logs).

Byte compatibility with 23.03 for every query 23.03 answers: answer names
are the question's QNAME bytes (original case, no compression), class IN,
TTL 3600, ANY gives the A then the AAAA records, PTR RDATA is 23.03's
encoding of the value, the IPv4 header checksum covers 20 bytes, the IPv4
UDP checksum is 0 and the IPv6 one is computed.  Deviations (docs/compat.md):
queries with additional records (EDNS) are answered as OVN >= 23.03.3 does
(b7fe2c8b1, reverting 4b10571aa): the reply holds the header, the first question and
the answers, nothing else (ARCOUNT = NSCOUNT = 0, the OPT record is not
echoed); QDCOUNT > 1, labels > 63 bytes (compression pointers), names over
255 bytes and IPv6 extension headers are not answered.
"""

from __future__ import annotations

import struct
from typing import NamedTuple

import ovs.vlog

from pinctrl.actions import action
from pinctrl.actions.env import NO_ENV, HandlerEnv
from pinctrl.actions.replies import (
    NoReply,
    Outcome,
    Reporter,
    Resume,
    result_action,
)
from pinctrl.openflow.packet_in import PacketIn
from pinctrl.packet.headers import (
    IP_HEADER_LEN,
    UDP_HEADER_LEN,
    UdpError,
    UdpInfo,
    ipv4_set_csum,
    udp6_set_csum,
    udp_parse,
    udp_set_lengths,
)
from pinctrl.shared.records import EMPTY_MAP, DnsCache, DnsRecord

vlog = ovs.vlog.Vlog("pinctrl")

DNS_HEADER_LEN = 12
_FLAGS_HI, _QDCOUNT, _ANCOUNT, _NSCOUNT, _ARCOUNT = 2, 4, 6, 8, 10
QR_BIT = 0x80                   # in the first flags byte
MAX_LABEL_LEN = 63              # RFC 1035 §2.3.4; 0xC0.. are pointers
MAX_NAME_LEN = 255              # wire length, terminating zero included
TYPE_A, TYPE_PTR, TYPE_AAAA, TYPE_ANY = 1, 12, 28, 255
SUPPORTED_TYPES = frozenset((TYPE_A, TYPE_PTR, TYPE_AAAA, TYPE_ANY))
CLASS_IN = 1
DEFAULT_TTL = 3600
_U16 = struct.Struct("!H")
_RR_FIXED = struct.Struct("!HHIH")      # TYPE, CLASS, TTL, RDLENGTH

COUNTER_PREFIX = "pinctrl_dns_drop_"


# --- query processing (handler thread, pure) --------------------------------

# 23.03's two "truncated dns packet" warnings share one rate limit.
_SITE = "dns_lookup"


def _drop(reason: str, text: str | None = None) -> NoReply:
    return NoReply(COUNTER_PREFIX + reason, text, site=_SITE)


_TRUNCATED = "truncated dns packet"


class DnsQuery(NamedTuple):
    udp: UdpInfo
    dns_ofs: int
    qname_ofs: int
    qname_end: int      # after the terminating zero label
    name: bytes         # labels joined with '.', original case
    qtype: int


def parse_query(frame: bytes) -> DnsQuery:
    """Pure.  Validate a DNS query in 23.03's order
    (pinctrl_handle_dns_lookup()) with bounds: UDP payload >= 12 bytes,
    QR clear, QDCOUNT 1, first QNAME made of labels <= 63 bytes (so no
    compression pointer is followed) within 255 bytes and within the UDP
    data, QTYPE/QCLASS present.  ARCOUNT is not looked at (deviation, see
    module doc).  Raises NoReply."""
    try:
        u = udp_parse(frame)
    except UdpError as e:
        # 23.03 warns about a datagram too short for a UDP header as about
        # one too short for the DNS header.
        raise _drop(e.reason, _TRUNCATED if e.reason == "short_udp"
                    else None) from None
    dns = u.l4_ofs + UDP_HEADER_LEN
    # 23.03 checks the L4 size (padding excluded), not the UDP length.
    if dns + DNS_HEADER_LEN > u.l4_end:
        raise _drop("truncated", _TRUNCATED)
    if frame[dns + _FLAGS_HI] & QR_BIT:
        raise NoReply("pinctrl_dns_not_query")
    qdcount = _U16.unpack_from(frame, dns + _QDCOUNT)[0]
    if qdcount == 0:
        raise _drop("no_question")
    if qdcount > 1:
        raise _drop("multi_question")

    end = u.data_end
    start = p = dns + DNS_HEADER_LEN
    labels: list[bytes] = []
    while p < end and frame[p]:
        n = frame[p]
        if n > MAX_LABEL_LEN:
            raise _drop("bad_label")
        if p + 1 + n > end:
            raise _drop("truncated")
        labels.append(bytes(frame[p + 1:p + 1 + n]))
        p += 1 + n
        if p + 1 - start > MAX_NAME_LEN:
            raise _drop("name_too_long")
    qname_end = p + 1
    if qname_end + 4 > end:
        raise _drop("truncated")
    qtype = _U16.unpack_from(frame, qname_end)[0]
    return DnsQuery(u, dns, start, qname_end, b".".join(labels), qtype)


def encode_ptr_rdata(value: bytes) -> bytes:
    """Pure.  23.03's dns_build_ptr_answer() encoding of a PTR value:
    len(value) + 2 bytes, the value split into labels on '.', a trailing
    '.' giving an extra zero byte.  Replayed literally (8-bit label index
    and label lengths included), so odd values give 23.03's bytes too."""
    out = bytearray(len(value) + 2)
    label_idx = 0
    label_len = 0
    ptr = 1
    for ch in value:
        if ch == 0x2E:                              # '.'
            out[label_idx] = label_len & 0xFF
            label_idx = (label_idx + label_len + 1) & 0xFF
            label_len = 0
        else:
            out[ptr] = ch
            label_len += 1
        ptr += 1
    if label_len:
        out[label_idx] = label_len & 0xFF
    return bytes(out)


def _rr(qname: bytes, rtype: int, rdata: bytes) -> bytes:
    return qname + _RR_FIXED.pack(rtype, CLASS_IN, DEFAULT_TTL,
                                  len(rdata) & 0xFFFF) + rdata


def build_answers(qname: bytes, qtype: int, rec: DnsRecord
                  ) -> tuple[int, bytes]:
    """Pure.  (ANCOUNT, answer section) for 'rec', as 23.03: PTR gives
    one PTR RR; A/AAAA one RR per address of that family; ANY all A RRs
    then all AAAA RRs.  (0, b"") when nothing applies."""
    if qtype == TYPE_PTR:
        return 1, _rr(qname, TYPE_PTR, encode_ptr_rdata(rec.value))
    rrs: list[bytes] = []
    if qtype in (TYPE_A, TYPE_ANY):
        rrs += [_rr(qname, TYPE_A, a) for a in rec.ipv4]
    if qtype in (TYPE_AAAA, TYPE_ANY):
        rrs += [_rr(qname, TYPE_AAAA, a) for a in rec.ipv6]
    return len(rrs), b"".join(rrs)


def build_reply(frame: bytes, q: DnsQuery, ancount: int, answers: bytes
                ) -> bytes | None:
    """Pure.  The response frame: L2/L3/UDP headers copied from the query,
    the DNS header with QR set, ANCOUNT = 'ancount', NSCOUNT = ARCOUNT = 0
    (ID, opcode, RD, RCODE and QDCOUNT kept), the question verbatim, the
    answers.  Anything after the question (additional records, frame
    padding) is dropped.  None if the reply would exceed 64 KiB."""
    u = q.udp
    qend = q.qname_end + 4
    l4_len = qend - u.l4_ofs + len(answers)
    if u.l4_ofs - u.l3_ofs + l4_len > 0xFFFF:
        return None
    out = bytearray(frame[:qend])
    out += answers
    dns = q.dns_ofs
    out[dns + _FLAGS_HI] |= QR_BIT
    _U16.pack_into(out, dns + _ANCOUNT, ancount)
    _U16.pack_into(out, dns + _NSCOUNT, 0)
    _U16.pack_into(out, dns + _ARCOUNT, 0)
    udp_set_lengths(out, u, l4_len)
    if u.ipv6:
        udp6_set_csum(out, u.l3_ofs, u.l4_ofs)
    else:
        _U16.pack_into(out, u.l4_ofs + 6, 0)        # no UDP checksum
        # 23.03 sums sizeof(struct ip_header) = 20 bytes.
        ipv4_set_csum(out, u.l3_ofs, IP_HEADER_LEN)
    return bytes(out)


def process(frame: bytes, dp_key: int, cache: DnsCache) -> Outcome:
    """Pure.  The whole of dns_lookup after the result destination, for
    the query 'frame' on datapath 'dp_key'.  Never raises on malformed
    input."""
    try:
        q = parse_query(frame)
    except NoReply as e:
        return e.outcome()
    if q.qtype not in SUPPORTED_TYPES:
        return Outcome(None, "pinctrl_dns_unsupported_type")
    rec = cache.get(dp_key, EMPTY_MAP).get(q.name.lower())
    if rec is None:
        return Outcome(None, "pinctrl_dns_miss")
    qname = bytes(frame[q.qname_ofs:q.qname_end])
    ancount, answers = build_answers(qname, q.qtype, rec)
    if not ancount:
        return Outcome(None, "pinctrl_dns_no_answer")
    reply = build_reply(frame, q, ancount, answers)
    if reply is None:
        return Outcome(None, COUNTER_PREFIX + "reply_too_big")
    return Outcome(reply, "pinctrl_dns_answered")


# VLOG_RATE_LIMIT_INIT(1, 5): one for the query warnings (_SITE), one for
# the result destination (its counter).
reporter = Reporter(vlog)


def _cache(env: HandlerEnv) -> DnsCache:
    shared = env.shared
    return shared.get_dns_cache() if shared is not None else EMPTY_MAP


@action(6, "dns_lookup", pause=True)
def dns_lookup(pin: PacketIn, env: HandlerEnv = NO_ENV,
               now: int = 0) -> Resume:
    """Handler for opcode 6 (pinctrl_handler thread).  Returns the answer
    with result 1, or the query with result 0; if the result destination
    is unusable, the query with the metadata echoed unchanged."""
    cache = _cache(env)

    def answer(rest: bytes) -> bytes | None:
        # Userdata after the result destination is ignored, like 23.03.
        return reporter.outcome(process(pin.packet, pin.metadata.datapath,
                                        cache))

    return result_action(pin, answer, reporter, COUNTER_PREFIX)
