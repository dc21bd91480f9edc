"""The DNS cache that dns_lookup answers from (main thread).

OVN's sync_dns_cache(): the SB DNS rows become an immutable snapshot,
datapath tunnel key -> {query name as lower-case bytes -> DnsRecord}, that
SbSync publishes in SharedState.dns_cache for the pinctrl_handler thread
(actions/dns.py).  DnsCacheBuilder keeps the parsed rows between changes, so
a change re-parses only the rows the IDL reported.
"""

from __future__ import annotations

import re
import socket
from collections.abc import Iterable, Mapping
from types import MappingProxyType
from typing import Any

from pinctrl.shared.records import DnsCache, DnsRecord

_IP4 = r"\s*(\d+)\.(\d+)\.(\d+)\.(\d+)"
_IP4_MASKED = re.compile(_IP4 + r"/(\d+)\.(\d+)\.(\d+)\.(\d+)")
_IP4_PREFIX = re.compile(_IP4 + r"/(-?\d+)")
_IP4_PLAIN = re.compile(_IP4)
_IP6 = re.compile(r"\s*([0-9a-fA-F:.]{1,46})")
_IP6_PREFIX = re.compile(r"/(-?\d+)")
_IP6_MASK = re.compile(r"/([0-9a-fA-F:.]{1,46})")


def _in_range(text: str, high: int) -> bool:
    """0 <= int(text) <= high for a decimal string with an optional '-',
    of any length: a Southbound row may hold thousands of digits, which
    int() refuses (more than 4300 raise ValueError in Python 3.11)."""
    if text.startswith("-"):
        return not text[1:].strip("0")         # "-0" is 0
    digits = text.lstrip("0")
    return len(digits) <= len(str(high)) and int(digits or "0") <= high


def _quad(groups: tuple[str, ...]) -> bytes | None:
    if not all(_in_range(g, 255) for g in groups):
        return None
    return bytes(int(g) for g in groups)


def _is_cidr(mask: bytes) -> bool:
    bits = int.from_bytes(mask, "big")
    inv = ~bits & ((1 << (8 * len(mask))) - 1)
    return inv & (inv + 1) == 0


def _scan_ip4(s: str, pos: int) -> tuple[bytes, int] | None:
    """OVS ip_parse_cidr_len() at 'pos': address[/mask|/prefix]."""
    m = _IP4_MASKED.match(s, pos)
    if m:
        addr, mask = _quad(m.groups()[:4]), _quad(m.groups()[4:])
        if addr is None or mask is None or not _is_cidr(mask):
            return None
        return addr, m.end()
    m = _IP4_PREFIX.match(s, pos)
    if m:
        addr = _quad(m.groups()[:4])
        if addr is None or not _in_range(m.group(5), 32):
            return None
        return addr, m.end()
    m = _IP4_PLAIN.match(s, pos)
    if m:
        addr = _quad(m.groups())
        return (addr, m.end()) if addr is not None else None
    return None


def _pton6(text: str) -> bytes | None:
    try:
        return socket.inet_pton(socket.AF_INET6, text)
    except (OSError, ValueError):
        return None


def _scan_ip6(s: str, pos: int) -> tuple[bytes, int] | None:
    """OVS ipv6_parse_cidr_len() at 'pos': address[/prefix|/mask]."""
    m = _IP6.match(s, pos)
    if m is None:
        return None
    addr = _pton6(m.group(1))
    if addr is None:
        return None
    end = m.end()
    p = _IP6_PREFIX.match(s, end)
    if p:
        return (addr, p.end()) if _in_range(p.group(1), 128) else None
    p = _IP6_MASK.match(s, end)
    if p:
        mask = _pton6(p.group(1))
        if mask is None or not _is_cidr(mask):
            return None
        return addr, p.end()
    return addr, end


def parse_ip_addresses(value: str) -> tuple[tuple[bytes, ...],
                                             tuple[bytes, ...]]:
    """Pure.  OVN's extract_ip_addresses(): whitespace-separated IPv4 and
    IPv6 addresses, each with an optional prefix or CIDR mask; scanning
    stops at the first thing that is neither, keeping what came before.
    Returns (ipv4 addresses, ipv6 addresses)."""
    v4: list[bytes] = []
    v6: list[bytes] = []
    pos = 0
    while pos < len(value):
        got = _scan_ip4(value, pos)
        if got is not None:
            v4.append(got[0])
        else:
            got = _scan_ip6(value, pos)
            if got is None:
                break
            v6.append(got[0])
        pos = got[1]
    return tuple(v4), tuple(v6)


def make_record(value: str) -> DnsRecord:
    v4, v6 = parse_ip_addresses(value)
    return DnsRecord(value.encode("utf-8", "surrogateescape"), v4, v6)


class DnsCacheBuilder:
    """The DNS cache kept per SB DNS row (main thread), so that a change
    re-reads only the rows that changed: parsing a 10k-record row from
    scratch takes ~75 ms of Python, all of it holding the GIL the handler
    thread needs to answer packet-ins.  Parsed address strings are shared
    across rows and rebuilds.

    Semantics of 23.03's cache: rows without dns_id are ignored; names are
    the `records` keys as stored (northd lower-cases them; the handler
    looks up the lower-cased query name, so an upper-case key never
    matches, as in 23.03); when two rows on one datapath hold the same
    name, the row with the smaller dns_id wins (23.03: hash order)."""

    def __init__(self) -> None:
        # row key -> (dns_id, {name bytes: DnsRecord}, datapath keys)
        self._rows: dict[Any, tuple[str, dict[bytes, DnsRecord],
                                    tuple[int, ...]]] = {}
        self._parsed: dict[str, DnsRecord] = {}     # value -> record

    def set_row(self, key: Any, dns_id: str | None,
                records: Mapping[str, str], dp_keys: Iterable[int]) -> None:
        """Add or replace one SB row's records."""
        if dns_id is None:
            self._rows.pop(key, None)
            return
        parsed = self._parsed
        names: dict[bytes, DnsRecord] = {}
        for name, value in records.items():
            rec = parsed.get(value)
            if rec is None:
                rec = parsed[value] = make_record(value)
            names[name.encode("utf-8", "surrogateescape")] = rec
        self._rows[key] = (dns_id, names, tuple(sorted(set(dp_keys))))

    def remove_row(self, key: Any) -> None:
        self._rows.pop(key, None)

    def clear(self) -> None:
        self._rows.clear()
        self._parsed.clear()

    def keys(self) -> set:
        return set(self._rows)

    def build(self) -> DnsCache:
        """The immutable cache: datapath key -> {name bytes: DnsRecord}."""
        per_dp: dict[int, dict[bytes, DnsRecord]] = {}
        n_names = 0
        for _, names, dp_keys in sorted(self._rows.values(),
                                        key=lambda r: r[0]):
            n_names += len(names)
            for dp in dp_keys:
                have = per_dp.get(dp)
                if have is None:
                    per_dp[dp] = dict(names)
                else:                       # smaller dns_id already won
                    for name, rec in names.items():
                        have.setdefault(name, rec)
        if len(self._parsed) > 2 * n_names + 1024:
            self._parsed = {rec.value.decode("utf-8", "surrogateescape"): rec
                            for _, names, _ in self._rows.values()
                            for rec in names.values()}
        return MappingProxyType({dp: MappingProxyType(names)
                                 for dp, names in per_dp.items()})


def build_dns_cache(rows: Iterable[tuple[str | None, Mapping[str, str],
                                         Iterable[int]]]) -> DnsCache:
    """Pure (main thread).  The cache for SB DNS 'rows' given as
    (external_ids:dns_id, records, datapath tunnel keys); see
    DnsCacheBuilder for the semantics.  Immutable."""
    builder = DnsCacheBuilder()
    for i, (dns_id, records, dp_keys) in enumerate(rows):
        builder.set_row(i, dns_id, records, dp_keys)
    return builder.build()
