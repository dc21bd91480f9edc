"""put_dhcp_opts (opcode 2) as a template: DISCOVER -> OFFER and a
REQUEST for the offered address -> ACK.

Per tail (one logical switch port's DHCP flow): the offer IP and option
TLVs (actions/dhcpv4.parse_args) and the NXT_RESUME tail with result 1.
Per distinct request options (cookie and option bytes: a client repeats
its own): the reply kind, decided and built once by the reference
parse_request() and build_reply() — everything after the BOOTP header
(cookie, option 53, options, trailer), the UDP and IP lengths.  Per
request: the first 278 bytes of the frame (Ethernet, IPv4, UDP, BOOTP
headers) are copied with op, yiaddr, siaddr, UDP length and checksum, IP
destination (broadcast flag), total length and header checksum replaced.

Misses (reference path): VLAN tags, IP options, a client-set siaddr,
anything parse_request() refuses, INFORM, RELEASE, DECLINE, a REQUEST
that gets a NAK, a result destination or userdata the reference rejects.
"""

from __future__ import annotations

import struct
from typing import TYPE_CHECKING, Any, NamedTuple

from pinctrl.actions import dhcpv4 as ref
from pinctrl.actions.replies import NoReply
from pinctrl.handler.templates.common import ResumeShape, fold
from pinctrl.openflow.oxm import OxmError, parse_result_dest
from pinctrl.openflow.packet_in import PacketIn

if TYPE_CHECKING:
    from pinctrl.handler.templates import FastPath

ETH_IP = 14                     # IPv4 header, no VLAN tag
UDP = ETH_IP + 20               # no IP options
BOOTP = UDP + 8
OPTIONS = BOOTP + ref.DHCP_HEADER_LEN + 4       # after the magic cookie
HEADERS = OPTIONS - 4           # what a reply copies from the request
CIADDR = BOOTP + 12
FLAGS = BOOTP + 10              # its high byte: the broadcast flag
SIADDR = BOOTP + 20
MAX_VARIANTS = 1024             # option sets per port (clients repeat theirs)
_BCAST = b"\xff\xff\xff\xff"
_UNKNOWN = object()
_U16 = struct.Struct("!H")
_U16X2 = struct.Struct("!HH")
# The IPv4 header words a reply keeps: version/IHL/TOS, id, flags/offset,
# TTL/protocol, source.
_IP_KEPT = struct.Struct("!H2xHHH2xHH4x")


class Variant(NamedTuple):
    """A reply kind of one tail (the option bytes of the requests that get
    it), with what every reply of the kind shares."""
    rtype: int                  # OFFER or ACK
    check_ciaddr: bool          # a REQUEST without option 50: ciaddr decides
    head: bytes                 # NXT_RESUME header + PACKET property header
    udp_op: bytes               # UDP length, zero checksum, op = BOOTREPLY
    addrs: bytes                # yiaddr + siaddr
    tot_len: bytes
    tot_word: int               # tot_len as a number (the checksum)
    rest: bytes                 # the reply after HEADERS, pad, resume tail


class DhcpData:
    __slots__ = ("offer", "offer_sum", "options", "resume", "variants")

    def __init__(self, offer: bytes, options: bytes,
                 resume: ResumeShape) -> None:
        self.offer = offer
        self.offer_sum = sum(_U16X2.unpack(offer))
        self.options = options
        self.resume = resume
        # cookie + option bytes -> Variant, or None: the reference path
        self.variants: dict[bytes, Variant | None] = {}


class DhcpTemplate:
    opcode = 2
    family = "dhcpv4"
    handler = staticmethod(ref.put_dhcp_opts)
    reg0_varies = False

    def prepare(self, pin: PacketIn, msg: bytes, fp: FastPath
                ) -> DhcpData | None:
        try:
            dest, rest = parse_result_dest(pin.args)
            args = ref.parse_args(rest)
        except (OxmError, NoReply):
            return None
        return DhcpData(args.offer_ip, args.options,
                        ResumeShape(msg, dest, True))

    def answer(self, d: DhcpData, frame: memoryview, reg0: bytes | None,
               fp: FastPath, now: int) -> bool:
        n = len(frame)
        if (n < OPTIONS or frame[12] != 8 or frame[13]
                or frame[ETH_IP] & 0x0F != 5 or frame[ETH_IP + 9] != 17
                or frame[BOOTP] != ref.OP_REQUEST):
            return False
        tot_len = (frame[ETH_IP + 2] << 8) | frame[ETH_IP + 3]
        end = ETH_IP + tot_len
        if tot_len > n - ETH_IP or end < OPTIONS:
            return False
        key = bytes(frame[HEADERS:end])
        v: Any = d.variants.get(key, _UNKNOWN)
        if v is _UNKNOWN:
            v = self._variant(d, frame, key)
        if v is None or frame[SIADDR] or frame[SIADDR + 1] or \
                frame[SIADDR + 2] or frame[SIADDR + 3]:
            return False            # siaddr set by the client: rare
        offer = d.offer
        if v.check_ciaddr and frame[CIADDR:CIADDR + 4] != offer:
            return False            # NAK, logged as a warning
        if frame[FLAGS] & 0x80:
            dst, dst_sum = _BCAST, 0x1FFFE
        else:
            dst, dst_sum = offer, d.offer_sum
        w0, w2, w3, w4, w6, w7 = _IP_KEPT.unpack_from(frame, ETH_IP)
        csum = fold(w0 + w2 + w3 + w4 + w6 + w7 + v.tot_word + dst_sum)
        fp.out.append(b"".join((
            v.head, frame[:ETH_IP + 2], v.tot_len, frame[ETH_IP + 4:ETH_IP + 10],
            _U16.pack(csum), frame[ETH_IP + 12:ETH_IP + 16], dst,
            frame[UDP:UDP + 4], v.udp_op, frame[BOOTP + 1:BOOTP + 16], v.addrs,
            frame[BOOTP + 24:HEADERS], v.rest)))
        rtype = v.rtype
        ref.reporter.log_lazily("info", "reply", lambda: ref.reply_log_text(
            rtype, bytes(frame[6:12]), offer))
        return True

    @staticmethod
    def _variant(d: DhcpData, frame: memoryview, key: bytes
                 ) -> Variant | None:
        """The reply kind of requests with these cookie + option bytes
        (and siaddr 0), computed with the reference parse_request() and
        build_reply() on this request; None for the kinds the template
        leaves to the reference path."""
        v = None
        try:
            req = ref.parse_request(bytes(frame))
        except NoReply:
            req = None
        if req is not None and req.msg_type in (ref.DISCOVER, ref.REQUEST):
            _, req_ip, _ = ref.scan_options(key, 4, len(key))
            if req.msg_type == ref.DISCOVER:
                rtype = ref.OFFER
            elif req_ip is None or req_ip == d.offer:
                rtype = ref.ACK
            else:
                rtype = ref.NAK
            if rtype != ref.NAK:
                options, next_server = ref.rewrite_boot_options(
                    d.options, req.ipxe, bytes(4))
                reply = ref.build_reply(bytes(frame), req, rtype, d.offer,
                                        options, next_server)
                head, rest = d.resume.frame_parts(len(reply))
                tot_len = reply[ETH_IP + 2:ETH_IP + 4]
                v = Variant(rtype, rtype == ref.ACK and req_ip is None, head,
                            reply[UDP + 4:BOOTP + 1],
                            reply[BOOTP + 16:BOOTP + 24], tot_len,
                            _U16.unpack(tot_len)[0],
                            reply[HEADERS:] + rest)
        if len(d.variants) >= MAX_VARIANTS:
            d.variants.clear()
        d.variants[key] = v
        return v
