"""dns_lookup (opcode 6) as a template: IPv4 queries, answered or not.

Per tail (one port's DNS flow): the datapath key and the NXT_RESUME tails
for result 1 and result 0.  Per (datapath, question bytes) and DNS
snapshot: what actions/dns.process() decides for that question — the
answer section and counts, or "not answered" with its counter (a name
not in the table goes on to its server: result 0).  The question bytes
are everything after the 12-byte DNS header up to the end of the UDP
data, so a client's EDNS record is part of the key, as it is of the
reference's decision.  Per request: the frame up to the end of the
question is copied and patched (QR, counts, UDP and IP lengths, checksums:
UDP 0, IPv4 header over 20 bytes as 23.03).

The answers are cached against the snapshot they were computed from
(SharedState.dns_cache, an immutable mapping swapped whole by the main
thread): a new snapshot clears them.  The reference is read once per
batch.

Misses (reference path): VLAN tags, IP options, IPv6, a response, QDCOUNT
other than 1, anything parse_query() refuses (it logs).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, NamedTuple

from pinctrl.actions import dns as ref
from pinctrl.handler.templates.common import ResumeShape, set_ipv4_csum
from pinctrl.openflow.oxm import OxmError, parse_result_dest
from pinctrl.openflow.packet_in import PacketIn
from pinctrl.shared.records import EMPTY_MAP, DnsCache

if TYPE_CHECKING:
    from pinctrl.handler.templates import FastPath

ETH_IP = 14
UDP = ETH_IP + 20
DNS = UDP + 8
QUESTION = DNS + ref.DNS_HEADER_LEN
MAX_QUESTIONS = 4096
_RES = 20                       # the frame's offset in the NXT_RESUME
_UNKNOWN = object()


class DnsData:
    __slots__ = ("dp", "yes", "no")

    def __init__(self, dp: int, yes: ResumeShape, no: ResumeShape) -> None:
        self.dp = dp
        self.yes = yes
        self.no = no


class Answer(NamedTuple):
    qend: int           # end of the question in the frame
    answers: bytes
    counts: bytes       # ANCOUNT, NSCOUNT, ARCOUNT
    udp: bytes          # UDP length + zero checksum
    tot_len: bytes
    counter: str


class NoAnswer(NamedTuple):
    counter: str


class DnsTemplate:
    opcode = 6
    family = "dns"
    handler = staticmethod(ref.dns_lookup)
    reg0_varies = False

    def __init__(self) -> None:
        self._answers: dict[tuple[int, bytes], Answer | NoAnswer | None] = {}
        self._snapshot: DnsCache | None = None
        self._batch = -1

    def prepare(self, pin: PacketIn, msg: bytes, fp: FastPath
                ) -> DnsData | None:
        try:
            dest, _ = parse_result_dest(pin.args)
        except OxmError:
            return None
        return DnsData(pin.metadata.datapath, ResumeShape(msg, dest, True),
                       ResumeShape(msg, dest, False))

    def _cache(self, fp: FastPath) -> DnsCache:
        """The snapshot for this batch (one mutex take per batch); a new
        one clears the answers."""
        if self._batch != fp.batch or self._snapshot is None:
            self._batch = fp.batch
            shared = fp.env.shared
            snap = shared.get_dns_cache() if shared is not None else EMPTY_MAP
            if snap is not self._snapshot:
                self._answers.clear()
                self._snapshot = snap
        return self._snapshot

    def answer(self, d: DnsData, frame: memoryview, reg0: bytes | None,
               fp: FastPath, now: int) -> bool:
        n = len(frame)
        if (n < QUESTION or frame[12] != 8 or frame[13]
                or frame[ETH_IP] & 0x0F != 5 or frame[ETH_IP + 9] != 17):
            return False
        tot_len = (frame[ETH_IP + 2] << 8) | frame[ETH_IP + 3]
        l4_end = ETH_IP + tot_len
        if (tot_len > n - ETH_IP or l4_end < QUESTION
                or frame[DNS + 2] & ref.QR_BIT
                or frame[DNS + 4] or frame[DNS + 5] != 1):
            return False
        udp_end = UDP + ((frame[UDP + 4] << 8) | frame[UDP + 5])
        key = (d.dp, bytes(frame[QUESTION:min(l4_end, udp_end)]))
        cache = self._cache(fp)
        a: Any = self._answers.get(key, _UNKNOWN)
        if a is _UNKNOWN:
            a = self._decide(d, frame, cache)
            if len(self._answers) >= MAX_QUESTIONS:
                self._answers.clear()
            self._answers[key] = a
        if a is None:
            return False
        if isinstance(a, NoAnswer):
            fp.out.append(d.no.wrap(frame))
            fp.count(a.counter)
            return True
        head, rest = d.yes.frame_parts(a.qend + len(a.answers))
        buf = bytearray(head)
        buf += frame[:a.qend]
        buf += a.answers
        buf += rest
        buf[_RES + DNS + 2] |= ref.QR_BIT
        buf[_RES + DNS + 6:_RES + QUESTION] = a.counts
        buf[_RES + UDP + 4:_RES + UDP + 8] = a.udp
        buf[_RES + ETH_IP + 2:_RES + ETH_IP + 4] = a.tot_len
        buf[_RES + ETH_IP + 10:_RES + ETH_IP + 12] = b"\0\0"
        set_ipv4_csum(buf, _RES + ETH_IP)
        fp.out.append(bytes(buf))
        fp.count(a.counter)
        return True

    @staticmethod
    def _decide(d: DnsData, frame: memoryview, cache: DnsCache
                ) -> Answer | NoAnswer | None:
        """The reference's decision for this question: process() on this
        request, its reply taken apart (nothing of the tail: the decision
        is shared by every port of the datapath)."""
        packet = bytes(frame)
        out = ref.process(packet, d.dp, cache)
        if out.logs or out.counter is None:
            return None             # refused with a warning: reference path
        if out.reply is None:
            return NoAnswer(out.counter)
        qend = ref.parse_query(packet).qname_end + 4
        reply = out.reply
        return Answer(qend, reply[qend:], reply[DNS + 6:QUESTION],
                      reply[UDP + 4:UDP + 8], reply[ETH_IP + 2:ETH_IP + 4],
                      out.counter)
