"""OVN's address-string parsers (lib/ovn-util.c), reproducing OVS's
ovs_scan() rules: extract_lsp_addresses, extract_ip_addresses,
extract_addresses_with_port, and the MAC / IPv6 scanners they use.  Pure;
used by the main thread's gARP and RA plans and the MAC_Binding writer."""

from __future__ import annotations

import socket
from typing import NamedTuple

import ovs.vlog

from pinctrl.support.log import RateLimit, rl_log

vlog = ovs.vlog.Vlog("pinctrl")
_rl_syntax = RateLimit(1, 1)        # VLOG_RATE_LIMIT_INIT(1, 1) in 23.03
_C_SPACE = " \t\n\v\f\r"
_IPV6_CHARS = frozenset("0123456789abcdefABCDEF:.")
_HEXITS = {c: int(c, 16) for c in "0123456789abcdefABCDEF"}
IPV6_SCAN_LEN = 46


def _skip_spaces(s: str, i: int) -> int:
    while i < len(s) and s[i] in _C_SPACE:
        i += 1
    return i


def _scan_int(s: str, i: int, base: int) -> tuple[int, int] | None:
    """ovs_scan's scan_int() after the spaces: sign, "0x" for base 16,
    then any number of digits.  (value, index after it) or None."""
    neg = s.startswith("-", i)
    if i < len(s) and s[i] in "+-":
        i += 1
    if base == 16 and s.startswith(("0x", "0X"), i):
        i += 2
    start, value = i, 0
    while i < len(s):
        digit = _HEXITS.get(s[i], 16)
        if digit >= base:
            break
        value = value * base + digit
        i += 1
    if i == start:
        return None
    return (-value if neg else value), i


def _scan_u8_list(s: str, i: int, n: int, sep: str, base: int
                  ) -> tuple[bytes, int] | None:
    """'n' "%hh" conversions separated by the literal 'sep', each keeping
    its low 8 bits like ovs_scan() (ETH_ADDR_SCAN_FMT, IP_SCAN_FMT)."""
    out = bytearray()
    for k in range(n):
        if k:
            if not s.startswith(sep, i):
                return None
            i += 1
        r = _scan_int(s, _skip_spaces(s, i), base)
        if r is None:
            return None
        out.append(r[0] & 0xFF)
        i = r[1]
    return bytes(out), i


def _scan_prefix_len(s: str, i: int) -> tuple[int, int] | None:
    """"/%d" at i: (C int value, index after) or None."""
    if not s.startswith("/", i):
        return None
    r = _scan_int(s, _skip_spaces(s, i + 1), 10)
    if r is None:
        return None
    v = r[0] & 0xFFFFFFFF
    return (v - (1 << 32) if v & 0x80000000 else v), r[1]


def _scan_ipv6_text(s: str, i: int) -> tuple[str, int] | None:
    """"%46[0-9a-fA-F:.]" at i (no space skipping)."""
    j = i
    while j < len(s) and j - i < IPV6_SCAN_LEN and s[j] in _IPV6_CHARS:
        j += 1
    return (s[i:j], j) if j > i else None


def inet_pton6(text: str) -> bytes | None:
    """inet_pton(AF_INET6) (OVS ipv6_parse): 16 bytes or None."""
    try:
        return socket.inet_pton(socket.AF_INET6, text)
    except (OSError, ValueError):
        return None


def parse_mac(s: str) -> bytes | None:
    """eth_addr_from_string(): a whole string "xx:xx:xx:xx:xx:xx"."""
    r = _scan_u8_list(s, 0, 6, ":", 16)
    return r[0] if r is not None and r[1] == len(s) else None


def _cidr_len(mask: int, bits: int) -> int | None:
    """Prefix length of a CIDR mask, None if the mask is not CIDR."""
    inv = ~mask & ((1 << bits) - 1)
    if inv & (inv + 1):
        return None
    return bits - inv.bit_length()


def _ip4_cidr(s: str, i: int) -> tuple[tuple[bytes, int] | None, int]:
    """ip_parse_cidr_len() at i: ((address, plen) or None on error, the
    scan position, which 23.03 keeps even after some errors)."""
    r = _scan_u8_list(s, i, 4, ".", 10)
    if r is None:
        return None, i
    ip, j = r
    if s.startswith("/", j):
        m = _scan_u8_list(s, j + 1, 4, ".", 10)
        if m is not None:
            plen = _cidr_len(int.from_bytes(m[0], "big"), 32)
            return ((ip, plen) if plen is not None else None), m[1]
        p = _scan_prefix_len(s, j)
        if p is not None:
            return ((ip, p[0]) if 0 <= p[0] <= 32 else None), p[1]
    return (ip, 32), j


def _ip6_cidr(s: str, i: int) -> tuple[tuple[bytes, int] | None, int]:
    """ipv6_parse_cidr_len() at i, like _ip4_cidr."""
    r = _scan_ipv6_text(s, _skip_spaces(s, i))
    if r is None:
        return None, i
    text, j = r
    ip = inet_pton6(text)
    if ip is None:
        return None, j
    p = _scan_prefix_len(s, j)
    if p is not None:
        return ((ip, p[0]) if 0 <= p[0] <= 128 else None), p[1]
    if s.startswith("/", j):
        m = _scan_ipv6_text(s, j + 1)
        if m is not None:
            mask = inet_pton6(m[0])
            plen = (_cidr_len(int.from_bytes(mask, "big"), 128)
                    if mask is not None else None)
            return ((ip, plen) if plen is not None else None), m[1]
    return (ip, 128), j


class IpAddresses(NamedTuple):
    """The address lists of OVN's struct lport_addresses
    (extract_ip_addresses)."""
    ipv4: tuple[tuple[bytes, int], ...]     # (address, prefix length)
    ipv6: tuple[tuple[bytes, int], ...]


class LportAddresses(NamedTuple):
    """OVN's struct lport_addresses with its MAC, the parts pinctrl uses."""
    mac: bytes
    ipv4: tuple[tuple[bytes, int], ...]     # (address, prefix length)
    ipv6: tuple[tuple[bytes, int], ...]


def _scan_ips(s: str, pos: int) -> tuple[IpAddresses, int]:
    """parse_and_store_addresses() from 'pos': IPv4 / IPv6 addresses with
    optional prefixes until something else.  Returns (addresses, offset of
    the rest)."""
    v4: list[tuple[bytes, int]] = []
    v6: list[tuple[bytes, int]] = []
    while pos < len(s):
        a4, n = _ip4_cidr(s, pos)
        if a4 is not None:
            v4.append(a4)
            pos = n
            continue
        # 23.03 retries as IPv6 from where the IPv4 scan stopped.
        a6, n = _ip6_cidr(s, n)
        if a6 is None:
            break
        v6.append(a6)
        pos = n
    return IpAddresses(tuple(v4), tuple(v6)), pos


def _parse_addresses(s: str) -> tuple[LportAddresses | None, int]:
    """parse_and_store_addresses() of a string that starts with a MAC.
    Returns (addresses or None if the MAC is missing, offset of the
    rest)."""
    r = _scan_u8_list(s, 0, 6, ":", 16)
    if r is None:
        return None, 0
    mac, pos = r
    ips, pos = _scan_ips(s, pos)
    return LportAddresses(mac, ips.ipv4, ips.ipv6), pos


def extract_ip_addresses(s: str) -> IpAddresses | None:
    """extract_ip_addresses(): "IP1 IP2 ..."; None if no address parses.
    Text after the last address that parses is ignored."""
    ips, _ = _scan_ips(s, 0)
    return ips if ips.ipv4 or ips.ipv6 else None


def extract_lsp_addresses(s: str) -> LportAddresses | None:
    """extract_lsp_addresses(): "MAC [IP...]" (trailing text logged)."""
    la, ofs = _parse_addresses(s)
    if la is not None and ofs < len(s):
        rl_log(vlog, "info", _rl_syntax, f"invalid syntax '{s}' in address")
    return la


# The OVN expression lexer, just enough for is_chassis_resident("port").
_ID1 = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ_.")
_IDN = _ID1 | frozenset("0123456789")
_JSON_ESCAPES = {'"': '"', "\\": "\\", "/": "/", "b": "\b", "f": "\f",
                 "n": "\n", "r": "\r", "t": "\t"}


def _json_unescape(raw: str) -> str | None:
    out, i = [], 0
    while i < len(raw):
        c = raw[i]
        if c != "\\":
            out.append(c)
            i += 1
            continue
        e = raw[i + 1:i + 2]
        if e in _JSON_ESCAPES:
            out.append(_JSON_ESCAPES[e])
            i += 2
        elif e == "u":
            code = raw[i + 2:i + 6]
            if len(code) != 4 or any(h not in _HEXITS for h in code):
                return None
            out.append(chr(int(code, 16)))
            i += 6
        else:
            return None
    return "".join(out)


def _token(s: str, i: int) -> tuple[str, str, int]:
    """The next lexer token at i: (kind, text, index after).  Kinds: end,
    id, string, (, ), error, other."""
    while True:
        while i < len(s) and s[i] in _C_SPACE:
            i += 1
        if s.startswith("//", i):
            nl = s.find("\n", i)
            i = len(s) if nl < 0 else nl
            continue
        if s.startswith("/*", i):
            end = s.find("*/", i + 2)
            nl = s.find("\n", i + 2)
            if end < 0 or 0 <= nl < end:
                return "error", "", len(s)
            i = end + 2
            continue
        break
    if i >= len(s):
        return "end", "", i
    c = s[i]
    if c in _ID1:
        j = i + 1
        while j < len(s) and s[j] in _IDN:
            j += 1
        return "id", s[i:j], j
    if c == '"':
        j = i + 1
        while j < len(s) and s[j] != '"':
            j += 2 if s[j] == "\\" else 1
        if j >= len(s):
            return "error", "", len(s)
        text = _json_unescape(s[i + 1:j])
        return ("string", text, j + 1) if text is not None else \
            ("error", "", j + 1)
    if c in "()":
        return c, c, i + 1
    return "other", c, i + 1


def extract_addresses_with_port(s: str
                                ) -> tuple[LportAddresses | None, str | None]:
    """extract_addresses_with_port() (pinctrl.c): "MAC [IP...]
    [is_chassis_resident("port")]".  Returns (addresses, port name or
    None); addresses None when the element is unusable.  Text that is not
    is_chassis_resident(...) is logged and ignored, as in 23.03."""
    la, ofs = _parse_addresses(s)
    if la is None or ofs >= len(s):
        return la, None
    kind, text, i = _token(s, ofs)
    if kind != "id" or text != "is_chassis_resident":
        rl_log(vlog, "info", _rl_syntax, f"invalid syntax '{s}' in address")
        return la, None
    kind, _, i = _token(s, i)
    if kind != "(":
        rl_log(vlog, "info", _rl_syntax, "Syntax error: expecting '(' after "
               f"'is_chassis_resident' in address '{s}'")
        return None, None
    kind, port, i = _token(s, i)
    if kind != "string":
        rl_log(vlog, "info", _rl_syntax, "Syntax error: expecting quoted "
               f"string after 'is_chassis_resident' in address '{s}'")
        return None, None
    kind, _, i = _token(s, i)
    if kind != ")":
        rl_log(vlog, "info", _rl_syntax, "Syntax error: expecting ')' after "
               "quoted string in 'is_chassis_resident()' in address "
               f"'{s}'")
        return None, None
    return la, port
