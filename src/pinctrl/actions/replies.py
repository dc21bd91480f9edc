"""The reply vocabulary shared by every action family.

What a handler returns: Resume (NXT_RESUME of a paused packet-in) and
PacketOut (OFPT_PACKET_OUT of a new frame), together Reply.

What it counts and logs when it sends nothing, or besides what it sends:
  LogLine   one vlog line, with the rate-limit site it belongs to;
  NoReply   raised by pure builders: no packet; a coverage counter and an
            optional LogLine;
  Outcome   returned by the pure process() of the result_action families:
            the reply frame or None, a counter, the lines to log;
  Reporter  the side effects of both for one module: bumps the counter and
            writes the lines through OVS-style rate limits, one per site
            (23.03's `static struct vlog_rate_limit rl` per call site).

result_action() is the common shape of the "R = action(...)" opcodes
(put_dhcp_opts, put_dhcpv6_opts, dns_lookup, put_nd_ra_opts): parse the
result destination, answer, resume with the result bit.

Everything here is pure data or per-call plumbing; handlers call it on the
pinctrl_handler thread.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import NamedTuple

import ovs.vlog

from pinctrl.openflow.oxm import OxmError, ResultDest, parse_result_dest
from pinctrl.openflow.packet_in import PacketIn
from pinctrl.support import coverage
from pinctrl.support.log import RateLimit, rl_log, rl_log_lazy


@dataclass(slots=True)
class Resume:
    """Answer a paused packet-in with NXT_RESUME.  If 'dest' is set, the
    result bit 'dest' is written with 'result' (the 1-bit field that
    lib/actions.c encode_DNS_LOOKUP() and its siblings put in the userdata
    with nx_put_header()); if 'dest' is None the metadata is echoed
    unchanged (the result header itself was unusable)."""
    packet: bytes
    dest: ResultDest | None = None
    result: bool = False


@dataclass(slots=True)
class PacketOut:
    """An OFPT_PACKET_OUT: 'actions' are OpenFlow 1.5 action bytes."""
    packet: bytes
    actions: bytes


Reply = Resume | PacketOut


class LogLine(NamedTuple):
    """A line to write: 'level' is a vlog method ("info", "warn", "dbg");
    'site' names its rate limit (None: the Reporter's default site, or
    else the counter it comes with)."""
    level: str
    text: str
    site: str | None = None


class Outcome(NamedTuple):
    """What a pure process() decided: the reply frame (None: send nothing,
    resume the request unchanged with result 0), the coverage counter to
    bump (None: none) and the lines to log, in order."""
    reply: bytes | None
    counter: str | None = None
    logs: tuple[LogLine, ...] = ()


class NoReply(Exception):
    """Nothing is sent.  'counter' is the full coverage counter name; 'log'
    the line to write (None when 'text' is None: count only)."""

    def __init__(self, counter: str, text: str | None = None,
                 level: str = "warn", site: str | None = None) -> None:
        super().__init__(text or counter)
        self.counter = counter
        self.log = None if text is None else LogLine(level, text, site)

    def outcome(self) -> Outcome:
        """The same decision as an Outcome without a reply."""
        return Outcome(None, self.counter,
                       () if self.log is None else (self.log,))


class Reporter:
    """Counts and logs for one module.  A line's rate limit is chosen by
    its site: LogLine.site, else 'default_site' (one limit for the whole
    function, as 23.03's put_dhcpv6_opts), else the counter (one limit per
    reason, as 23.03's per-call-site limits).  Limits are (rate, burst)
    per minute, VLOG_RATE_LIMIT_INIT(1, 5) unless 'site_limits' says
    otherwise; a site mapped to None is logged without a limit.

    'rate_limits' is written only by the thread that reports, the
    pinctrl_handler thread (tests replace it)."""

    def __init__(self, vlog: ovs.vlog.Vlog, rate: int = 1, burst: int = 5,
                 *, default_site: str | None = None,
                 site_limits: Mapping[str, tuple[int, int] | None]
                 | None = None) -> None:
        self.vlog = vlog
        self.default_site = default_site
        self._rate, self._burst = rate, burst
        self._site_limits = dict(site_limits or {})
        self.rate_limits: dict[str, RateLimit | None] = {}

    def _limit(self, site: str) -> RateLimit | None:
        try:
            return self.rate_limits[site]
        except KeyError:
            pass
        limit = self._site_limits.get(site, (self._rate, self._burst))
        rl = None if limit is None else RateLimit(*limit)
        self.rate_limits[site] = rl
        return rl

    def log(self, line: LogLine, counter: str | None = None) -> None:
        """Write 'line' if its site's rate limit allows."""
        site = line.site or self.default_site or counter or line.text
        rl = self._limit(site)
        if rl is None:
            getattr(self.vlog, line.level)(line.text)
        else:
            rl_log(self.vlog, line.level, rl, line.text)

    def log_lazily(self, level: str, site: str,
                   text: Callable[[], str]) -> None:
        """log() of the line text() at 'site', formatted only if the
        site's rate limit lets it through (the handler's fast path: most
        per-packet lines are dropped by the limit)."""
        rl = self._limit(site)
        if rl is None:
            getattr(self.vlog, level)(text())
        else:
            rl_log_lazy(self.vlog, level, rl, text)

    def count(self, counter: str | None,
              logs: Iterable[LogLine] = ()) -> None:
        """Bump 'counter' (if any), then write 'logs'."""
        if counter:
            coverage.inc(counter)
        for line in logs:
            self.log(line, counter)

    def report(self, e: NoReply) -> None:
        """The side effects of a NoReply."""
        self.count(e.counter, () if e.log is None else (e.log,))

    def outcome(self, out: Outcome) -> bytes | None:
        """The side effects of an Outcome; returns its reply."""
        self.count(out.counter, out.logs)
        return out.reply


def result_action(pin: PacketIn, process: Callable[[bytes], bytes | None],
                  reporter: Reporter, counter_prefix: str) -> Resume:
    """The common shape of the "R = action(...)" handlers (the start of
    controller/pinctrl.c pinctrl_handle_put_dhcp_opts(),
    pinctrl_handle_put_dhcpv6_opts(), pinctrl_handle_dns_lookup(),
    pinctrl_handle_put_nd_ra_opts(): nx_pull_header() and mf_check_dst()):
    parse the result destination from the userdata, call process(rest)
    with the userdata after it, and resume with the reply it returns and
    result 1, or with the original packet and result 0 when it returns
    None.  An unusable destination is counted as counter_prefix +
    "bad_result", warned about like 23.03, and the packet resumed with its
    metadata unchanged.  Called by the pinctrl_handler thread."""
    try:
        dest, rest = parse_result_dest(pin.args)
    except OxmError as e:
        reporter.report(NoReply(counter_prefix + "bad_result",
                                f"bad result OXM ({e})"))
        return Resume(pin.packet, None)
    reply = process(rest)
    if reply is None:
        return Resume(pin.packet, dest, False)
    return Resume(reply, dest, True)
