"""What the gARP/RARP sender announces (main thread; pure over IDL rows).

OVN 23.03's send_garp_rarp_prepare() (pinctrl.c:5997, reference §12.1),
run on every SB change by the main thread; the handler's GarpJob
(pinctrl.garp) sends what this computes:

* localnet VIFs: every br-int interface with an ofport and an iface-id
  whose Port_Binding is bound here (Port_Binding.chassis) on a local
  datapath that has a localnet port.  Entry "<port>": the first
  Port_Binding.mac entry that parses as "MAC [IP...]", announcing its
  first IPv4 address (gARP) or, with none, the MAC alone (RARP);
* NAT / router addresses: on every local datapath with a localnet port,
  each l3gateway port bound here and each patch port, from its
  nat_addresses column (or, when empty, the legacy options:nat-addresses)
  whose elements read `MAC IP... [is_chassis_resident("port")]`; patch
  ports need the is_chassis_resident clause, and when present it must
  hold here.  Entries "<port>-<IPv4>" per IPv4 address, or "<port>-noip"
  (RARP) for an element without one;
* localports are never announced.

Also here: the address-string parsers of OVN's lib/ovn-util.c that this
and the RA configuration (pinctrl.ipv6_ra) share, reproducing OVS's
ovs_scan() rules (extract_addresses, extract_ip_addresses,
extract_addresses_with_port), and the plan of the MAC_Binding rows 23.03
writes locally for a new IPv4 announcement (send_garp_locally, §11.4).

Interfaces come as Iface(iface_id, ofport, external_ids) where
external_ids are the OVS *Port*'s (ovn-chassis-id, ovn-localnet-port); the
caller leaves out the bridge's own internal port.
"""

from __future__ import annotations

import socket
from collections.abc import Iterable, Mapping
from collections.abc import Set as AbstractSet
from typing import Any, NamedTuple

import ovs.vlog

from pinctrl.db.local_datapaths import (
    LocalDatapath,
    PortBindings,
    chassis_is,
    lport_is_chassis_resident,
    smap_get_bool,
)
from pinctrl.handler.garp_job import GarpEntry
from pinctrl.packet.headers import fmt_ip4, fmt_mac
from pinctrl.support.log import RateLimit, rl_log

vlog = ovs.vlog.Vlog("pinctrl")
_rl_syntax = RateLimit(1, 1)        # VLOG_RATE_LIMIT_INIT(1, 1) in 23.03


# --- OVS ovs_scan() pieces and OVN address parsing ---------------------------

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


class LportAddresses(NamedTuple):
    """OVN's struct lport_addresses, the parts pinctrl uses."""
    mac: bytes | None
    ipv4: tuple[tuple[bytes, int], ...]     # (address, prefix length)
    ipv6: tuple[tuple[bytes, int], ...]


def _parse_addresses(s: str, with_mac: bool
                     ) -> tuple[LportAddresses | None, int]:
    """parse_and_store_addresses(): an optional leading MAC, then IPv4 /
    IPv6 addresses with optional prefixes until something else.  Returns
    (addresses or None if the MAC is missing, offset of the rest)."""
    mac = None
    pos = 0
    if with_mac:
        r = _scan_u8_list(s, 0, 6, ":", 16)
        if r is None:
            return None, 0
        mac, pos = r
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
    return LportAddresses(mac, tuple(v4), tuple(v6)), pos


def extract_ip_addresses(s: str) -> LportAddresses | None:
    """extract_ip_addresses(): "IP1 IP2 ..."; None if no address parses.
    Text after the last address that parses is ignored."""
    la, _ = _parse_addresses(s, False)
    return la if la.ipv4 or la.ipv6 else None


def extract_lsp_addresses(s: str) -> LportAddresses | None:
    """extract_lsp_addresses(): "MAC [IP...]" (trailing text logged)."""
    la, ofs = _parse_addresses(s, True)
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
    la, ofs = _parse_addresses(s, True)
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


# --- the announcement set -----------------------------------------------------

class Iface(NamedTuple):
    """A br-int interface as the main thread reads it from the local OVS
    DB: Interface external_ids:iface-id, Interface ofport (None when the
    column is empty), and its Port's external_ids."""
    iface_id: str | None
    ofport: int | None
    external_ids: Mapping[str, str]


class GarpPlan(NamedTuple):
    """The announcement set: entry name -> GarpEntry, and entry name ->
    the Port_Binding it announces for (for send_garp_locally)."""
    entries: dict[str, GarpEntry]
    sources: dict[str, Any]


def _tunnel_chassis(tunnel_id: str) -> str:
    """The chassis part of a tunnel port's ovn-chassis-id
    ("chassis@remote_ip%local_ip", encaps_tunnel_id_parse)."""
    return tunnel_id.split("@", 1)[0]


def localnet_vifs(pbs: PortBindings, ifaces: Iterable[Iface],
                  chassis_name: str, local_dps: Mapping[int, LocalDatapath]
                  ) -> list[str]:
    """get_localnet_vifs_l3gwports(), first half: the iface-ids of local
    VIFs on local datapaths that have a localnet port."""
    out: dict[str, None] = {}
    for iface in ifaces:
        tunnel_id = iface.external_ids.get("ovn-chassis-id")
        if tunnel_id is not None and _tunnel_chassis(tunnel_id) == \
                chassis_name:
            continue
        if "ovn-localnet-port" in iface.external_ids:
            continue
        if iface.ofport is None or not iface.iface_id:
            continue
        pb = pbs.by_name.get(iface.iface_id)
        if pb is None or not chassis_is(pb.chassis, chassis_name):
            continue
        ld = local_dps.get(pb.datapath.tunnel_key)
        if ld is not None and ld.localnet_port is not None:
            out[iface.iface_id] = None
    return list(out)


def local_l3gw_ports(pbs: PortBindings, chassis_name: str,
                     local_dps: Mapping[int, LocalDatapath]) -> list[str]:
    """get_localnet_vifs_l3gwports(), second half: l3gateway ports bound
    here and all patch ports, on local datapaths with a localnet port."""
    out: dict[str, None] = {}
    for ld in local_dps.values():
        if ld.localnet_port is None:
            continue
        for pb in pbs.by_dp.get(ld.key, ()):
            if (pb.type == "l3gateway" and chassis_is(pb.chassis,
                                                      chassis_name)) \
                    or pb.type == "patch":
                out[pb.logical_port] = None
    return list(out)


def nat_addresses(pbs: PortBindings, gw_ports: Iterable[str],
                  chassis_name: str, active_tunnels: AbstractSet[str]
                  ) -> dict[str, list[LportAddresses]]:
    """get_nat_addresses_and_keys(): the usable nat_addresses elements of
    each gateway port, in column order (consider_nat_address)."""
    out: dict[str, list[LportAddresses]] = {}
    for name in gw_ports:
        pb = pbs.by_name.get(name)
        if pb is None:
            continue
        elements = list(pb.nat_addresses or ())
        if not elements and "nat-addresses" in pb.options:
            elements = [pb.options["nat-addresses"]]    # pre-upgrade form
        for element in elements:
            la, lport = extract_addresses_with_port(element)
            if la is None:
                continue
            if lport is None and pb.type == "patch":
                continue
            if lport is not None and not lport_is_chassis_resident(
                    pbs, chassis_name, active_tunnels, lport):
                continue
            out.setdefault(pb.logical_port, []).append(la)
    return out


def garp_announcements(pbs: PortBindings, ifaces: Iterable[Iface],
                       chassis_name: str,
                       local_dps: Mapping[int, LocalDatapath],
                       active_tunnels: AbstractSet[str] = frozenset()
                       ) -> GarpPlan:
    """send_garp_rarp_prepare(): everything this chassis announces.
    'active_tunnels' names the chassis with a BFD session up (for
    chassisredirect residency).  Main thread, on SB or interface
    changes; the result is handed to GarpJob as an immutable snapshot."""
    vifs = localnet_vifs(pbs, ifaces, chassis_name, local_dps)
    gw_ports = local_l3gw_ports(pbs, chassis_name, local_dps)
    nats = nat_addresses(pbs, gw_ports, chassis_name, active_tunnels)
    entries: dict[str, GarpEntry] = {}
    sources: dict[str, Any] = {}

    def add(name: str, pb: Any, mac: bytes, ip: bytes | None) -> None:
        if name not in entries:
            entries[name] = GarpEntry(mac, ip, pb.datapath.tunnel_key,
                                      pb.tunnel_key)
            sources[name] = pb

    for name in vifs + gw_ports:        # send_garp_rarp_update()
        pb = pbs.by_name.get(name)
        if pb is None or pb.type == "localport":
            continue
        if pb.type in ("l3gateway", "patch"):
            # 23.03 pops a port's elements last-added first and keeps the
            # first entry of a name: the last element wins.
            for la in reversed(nats.pop(name, [])):
                for ip, _ in la.ipv4:
                    add(f"{name}-{fmt_ip4(ip)}", pb, la.mac, ip)
                if not la.ipv4:
                    add(f"{name}-noip", pb, la.mac, None)
            continue
        for text in pb.mac or ():
            la = extract_lsp_addresses(text)
            if la is not None:
                add(name, pb, la.mac, la.ipv4[0][0] if la.ipv4 else None)
                break
    return GarpPlan(entries, sources)


class MacBindingWrite(NamedTuple):
    """A MAC_Binding row 23.03 writes for a new local announcement: on the
    router port 'logical_port' of 'datapath', 'ip' -> 'mac'; when
    'update_only' only an existing row is updated."""
    logical_port: str
    datapath: Any
    ip: str
    mac: str
    update_only: bool


def local_mac_bindings(plan: GarpPlan, new_names: Iterable[str],
                       local_dps: Mapping[int, LocalDatapath]
                       ) -> list[MacBindingWrite]:
    """send_garp_locally() (§11.4) for the entries 'new_names' (those not
    announced before): the MAC_Bindings a gARP from that port would make
    the peer routers of its datapath learn.  Only IPv4 entries; the
    announcing port's own link is skipped.  Written by the main thread
    when it has an SB transaction."""
    out = []
    for name in new_names:
        entry = plan.entries.get(name)
        if entry is None or entry.ip is None:
            continue
        src = plan.sources[name]
        ld = local_dps.get(src.datapath.tunnel_key)
        if ld is None:
            continue
        for local, remote in ld.peer_ports:
            if local is src:
                continue
            update_only = not smap_get_bool(
                remote.datapath.external_ids,
                "always_learn_from_arp_request", True)
            out.append(MacBindingWrite(remote.logical_port, remote.datapath,
                                       fmt_ip4(entry.ip), fmt_mac(entry.mac),
                                       update_only))
    return out
