"""Periodic IPv6 RAs (pinctrl.ipv6_ra): configuration rules of reference
pinctrl.c ipv6_ra_send(), frames and packet-outs against OVN 23.03's recordings, and the
schedule driven by 'now' with an injected random source."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import pytest
from scapy.layers.inet6 import (
    ICMPv6ND_RA,
    ICMPv6NDOptDNSSL,
    ICMPv6NDOptMTU,
    ICMPv6NDOptPrefixInfo,
    ICMPv6NDOptRDNSS,
    ICMPv6NDOptRouteInfo,
    ICMPv6NDOptSrcLLAddr,
    IPv6,
)
from scapy.layers.l2 import Ether

from pinctrl.db.local_datapaths import PortBindings
from pinctrl.db.ra_plan import (
    build_ra_frame,
    nd_ra_min_interval_default,
    parse_ra_config,
    prepare_ras,
    route_info_options,
)
from pinctrl.handler.ra_job import RaJob, ra_actions
from pinctrl.openflow import messages as ofmsg
from pinctrl.shared.records import RaEntry
from testbed import golden as goldens
from tests.helpers import VlogRecorder, counted
from tests.unit.test_garp import Env, FakePoller, Snap

SB_BACKUP = Path(goldens.GOLDEN_DIR).parent / "sb.backup.db"


def golden_pb_options(name: str) -> dict[str, str]:
    """options of Port_Binding 'name' in the golden SB backup (an OVSDB
    file: schema record, then the data record)."""
    lines = SB_BACKUP.read_text().split("\n")
    data = json.loads(lines[3])
    for row in data["Port_Binding"].values():
        if row.get("logical_port") == name:
            return dict(row["options"][1])
    raise KeyError(name)


LR0_SW1 = golden_pb_options("lr0-sw1")
# lr0-sw0's NB ipv6_ra_configs, as northd would copy them to the SB.
LR0_SW0 = {
    "ipv6_ra_address_mode": "dhcpv6_stateful", "ipv6_ra_prf": "HIGH",
    "ipv6_ra_mtu": "1400", "ipv6_ra_rdnss": "2001:db8::1",
    "ipv6_ra_dnssl": "ovn.test", "ipv6_ra_route_info": "HIGH-2001:db8:2::/48",
    "ipv6_ra_prefixes": "2001:db8::/64", "ipv6_ra_src_eth": "00:00:00:00:ff:01",
    "ipv6_ra_src_addr": "fe80::200:ff:fe00:ff01",
}


def golden_packet_outs(name: str) -> list[tuple[float, bytes]]:
    ex = goldens.load_exchange(name)
    return [(r["t_rel"], bytes.fromhex(r["hex"]))
            for r in goldens.iter_of_messages(ex, "OFPT_PACKET_OUT", "c2s")]


def cfg(opts):
    c, reason = parse_ra_config(opts)
    assert reason is None, reason
    return c


def scapy_ok(frame: bytes):
    """Parse with scapy and check our ICMPv6 checksum equals its own."""
    pkt = Ether(frame)
    ours = pkt[ICMPv6ND_RA].cksum
    del pkt[ICMPv6ND_RA].cksum
    assert Ether(bytes(pkt))[ICMPv6ND_RA].cksum == ours
    assert pkt[IPv6].plen == len(frame) - 54
    return pkt


# --- golden frames and packet-outs ---------------------------------------------

@pytest.mark.parametrize("name", ["periodic_ra_sw1",
                                  "periodic_ra_sw1_after_prefix_delegation"])
def test_packet_outs_byte_identical(name):
    """Every recorded periodic RA packet-out (lr0-sw1 -> peer sw1-lr0, dp 2
    port 2) equals ours, xid aside.  After prefix delegation the SB
    prefixes gained '42037:2001:db8:aaaa:1::/64', which does not parse:
    23.03 drops it and so do we."""
    opts = dict(LR0_SW1)
    if name.endswith("delegation"):
        ex = goldens.load_exchange(name)
        opts["ipv6_ra_prefixes"] = ex["sb_ipv6_ra_prefixes"][0]
    frame = build_ra_frame(cfg(opts))
    ours = ofmsg.packet_out(0, ra_actions(2, 2), frame)
    outs = golden_packet_outs(name)
    assert len(outs) >= 2
    for _, msg in outs:
        assert goldens.same_message(ours, msg)


def test_golden_frame_content():
    pkt = scapy_ok(build_ra_frame(cfg(LR0_SW1)))
    assert (pkt.dst, pkt.src) == ("33:33:00:00:00:01", "00:00:00:00:ff:02")
    assert (pkt[IPv6].src, pkt[IPv6].dst, pkt[IPv6].hlim) == (
        "fe80::200:ff:fe00:ff02", "ff02::1", 255)
    ra = pkt[ICMPv6ND_RA]
    assert (ra.chlim, ra.M, ra.O, ra.prf, ra.routerlifetime) == (
        255, 0, 0, 0, 65535)
    pi = pkt[ICMPv6NDOptPrefixInfo]
    assert (pi.prefix, pi.prefixlen, pi.L, pi.A) == ("2001:db8:1::", 64, 1, 1)
    assert ICMPv6NDOptMTU not in pkt


def test_bogus_delegated_prefix_with_short_iaid_is_advertised():
    """README finding: with a <= 4-digit IAID the token parses as IPv6."""
    opts = dict(LR0_SW1, ipv6_ra_prefixes="2001:db8:1::/64 "
                "3672:2001:db8:aaaa:1::/64")
    pkt = scapy_ok(build_ra_frame(cfg(opts)))
    prefixes = [o.prefix for o in pkt[ICMPv6ND_RA].iterpayloads()
                if isinstance(o, ICMPv6NDOptPrefixInfo)]
    assert prefixes == ["2001:db8:1::", "3672:2001:db8:aaaa:1::"]


def test_all_options_in_order():
    pkt = scapy_ok(build_ra_frame(cfg(LR0_SW0)))
    ra = pkt[ICMPv6ND_RA]
    assert (ra.M, ra.O, ra.prf) == (1, 0, 1)            # HIGH
    kinds = [type(o) for o in ra.iterpayloads()][1:]
    assert kinds == [ICMPv6NDOptSrcLLAddr, ICMPv6NDOptMTU,
                     ICMPv6NDOptPrefixInfo, ICMPv6NDOptRDNSS,
                     ICMPv6NDOptDNSSL, ICMPv6NDOptRouteInfo]
    assert pkt[ICMPv6NDOptMTU].mtu == 1400
    assert pkt[ICMPv6NDOptPrefixInfo].A == 0            # stateful: L only
    assert pkt[ICMPv6NDOptRDNSS].dns == ["2001:db8::1"]
    assert pkt[ICMPv6NDOptDNSSL].searchlist == ["ovn.test."]
    ri = pkt[ICMPv6NDOptRouteInfo]
    assert (ri.plen, ri.prf, ri.prefix) == (48, 1, "2001:db8:2::")


def test_actions_bytes():
    outs = golden_packet_outs("periodic_ra_sw1")
    msg = outs[0][1]
    actions_len = int.from_bytes(msg[12:14], "big")
    assert msg[32:32 + actions_len] == ra_actions(2, 2)


# --- configuration rules ------------------------------------------------------------

BASE = {"ipv6_ra_address_mode": "slaac", "ipv6_ra_prf": "MEDIUM",
        "ipv6_ra_src_eth": "00:00:00:00:ff:02",
        "ipv6_ra_src_addr": "fe80::1"}


@pytest.mark.parametrize("change,reason", [
    ({"ipv6_ra_address_mode": None}, "No address mode specified"),
    ({"ipv6_ra_address_mode": "SLAAC"}, "Invalid address mode SLAAC"),
    ({"ipv6_ra_prefixes": ""}, "Invalid IPv6 prefixes: "),
    ({"ipv6_ra_prefixes": "nonsense"}, "Invalid IPv6 prefixes: nonsense"),
    ({"ipv6_ra_src_eth": None}, "Invalid ethernet source (null)"),
    ({"ipv6_ra_src_eth": "00:00:00:00:ff:02 "},
     "Invalid ethernet source 00:00:00:00:ff:02 "),
    ({"ipv6_ra_src_addr": None}, "Invalid IP source (null)"),
    ({"ipv6_ra_src_addr": "fe80::1/64"}, "Invalid IP source fe80::1/64"),
    ({"ipv6_ra_rdnss": "2001:db8::1 2001:db8::2"},
     "Invalid RDNSS source 2001:db8::1 2001:db8::2"),
    # Deviations: intervals 23.03 cannot use.
    ({"ipv6_ra_min_interval": "0"}, "Invalid RA interval: min 0 s, max 600 s"),
    ({"ipv6_ra_min_interval": "9", "ipv6_ra_max_interval": "8"},
     "Invalid RA interval: min 9 s, max 8 s"),
])
def test_invalid_configurations(change, reason):
    opts = dict(BASE)
    for k, v in change.items():
        if v is None:
            opts.pop(k, None)
        else:
            opts[k] = v
    assert parse_ra_config(opts) == (None, reason)


@pytest.mark.parametrize("mode,mo,la", [
    ("slaac", 0x00, 0xC0), ("dhcpv6_stateless", 0x40, 0xC0),
    ("dhcpv6_stateful", 0x80, 0x80)])
def test_address_modes(mode, mo, la):
    c = cfg(dict(BASE, ipv6_ra_address_mode=mode))
    assert (c.mo_flags, c.la_flags) == (mo, la)


@pytest.mark.parametrize("prf,bits", [("HIGH", 0x08), ("LOW", 0x18),
                                      ("MEDIUM", 0), ("high", 0), (None, 0)])
def test_router_preference(prf, bits):
    opts = dict(BASE)
    if prf is None:
        del opts["ipv6_ra_prf"]         # 23.03 would crash; medium here
    else:
        opts["ipv6_ra_prf"] = prf
    assert cfg(opts).mo_flags == bits


@pytest.mark.parametrize("maxi,mini,expected", [
    (None, None, (200, 600)), ("8", None, (6, 8)), ("9", None, (3, 9)),
    ("4", "3", (3, 4)), (" 30", "+10", (10, 30)),
    ("30 ", None, (200, 600)),         # trailing text: default
    ("0x10", None, (200, 600)), ("99999999999", None, (200, 600)),
    ("5", "5", (5, 5)),                # fixed interval (23.03: SIGFPE)
])
def test_intervals(maxi, mini, expected):
    opts = dict(BASE)
    if maxi is not None:
        opts["ipv6_ra_max_interval"] = maxi
    if mini is not None:
        opts["ipv6_ra_min_interval"] = mini
    c = cfg(opts)
    assert (c.min_interval, c.max_interval) == expected


def test_min_interval_default_truncates_like_c():
    assert [nd_ra_min_interval_default(m) for m in (600, 10, 7, -9, -5)] == \
        [200, 3, 5, -6, -3]


def test_mtu_and_rdnss_and_ipv4_prefixes():
    c = cfg(dict(BASE, ipv6_ra_mtu="1280", ipv6_ra_rdnss="2001:db8::53",
                 ipv6_ra_prefixes="10.0.0.0/24 2001:db8::/64"))
    assert c.mtu == 1280 and c.rdnss is not None
    assert [p[1] for p in c.prefixes] == [64]       # IPv4 ones ignored
    assert cfg(dict(BASE, ipv6_ra_mtu="x")).mtu == 0


@pytest.mark.parametrize("text,hexes", [
    ("HIGH-2001:db8:2::/48", ["18023008ffffffff20010db800020000"]),
    # Later parts of an item reuse its PRF.
    ("LOW-2001:db8:3::/64-2001:db8:4::1/56",
     ["18024018ffffffff20010db800030000", "18023818ffffffff20010db800040000"]),
    ("x-::/0,MEDIUM-2001:db8::/128",
     ["18010000ffffffff",
      "18038000ffffffff20010db8000000000000000000000000"]),
    ("2001:db8::/64", []),                  # no PRF part: nothing
    ("HIGH-2001:db8:2::/48,HIGH-10.0.0.0/8", []),   # stops, all dropped
    ("HIGH-junk", []),
])
def test_route_info(text, hexes):
    assert route_info_options(text).hex() == "".join(hexes)


def test_dnssl_too_long_is_omitted():
    c = cfg(dict(BASE, ipv6_ra_dnssl="d" * 300))
    pkt = scapy_ok(build_ra_frame(c))
    assert ICMPv6NDOptDNSSL not in pkt


# --- prepare_ras (main thread) ------------------------------------------------------

def _pb(name, dp, key, options, type_="patch"):
    return SimpleNamespace(logical_port=name, type=type_, tunnel_key=key,
                           datapath=SimpleNamespace(tunnel_key=dp),
                           options=options, chassis=[], mac=[],
                           nat_addresses=[])


def test_prepare_ras(monkeypatch):
    from pinctrl.db import ra_plan as ipv6_ra
    logs = VlogRecorder()
    monkeypatch.setattr(ipv6_ra, "vlog", logs)
    monkeypatch.setattr(ipv6_ra, "_rl", ipv6_ra.RateLimit(100, 100))
    rows = [
        _pb("lr0-sw1", 4, 2, LR0_SW1), _pb("sw1-lr0", 2, 2,
                                           {"peer": "lr0-sw1"}),
        _pb("lr-a", 4, 3, dict(BASE, ipv6_ra_send_periodic="TRUE",
                               peer="ls-a")),
        _pb("ls-a", 7, 9, {"peer": "lr-a"}),
        _pb("lr-nopeer", 4, 4, dict(BASE, ipv6_ra_send_periodic="true",
                                    peer="gone")),
        _pb("lr-off", 4, 5, dict(BASE, ipv6_ra_send_periodic="false",
                                 peer="ls-a")),
        _pb("lr-bad", 4, 6, {"ipv6_ra_send_periodic": "true", "peer": "ls-a"}),
    ]
    ras = counted(lambda: prepare_ras(PortBindings(rows)),
                  "pinctrl_ra_drop_bad_config")
    assert set(ras) == {"lr0-sw1", "lr-a"}
    assert (ras["lr0-sw1"].dp_key, ras["lr0-sw1"].port_key) == (2, 2)
    assert (ras["lr-a"].dp_key, ras["lr-a"].port_key) == (7, 9)
    assert ras["lr0-sw1"].frame == build_ra_frame(cfg(LR0_SW1))
    assert logs.lines == [("WARN", "lr-bad: No address mode specified")]


# --- schedule --------------------------------------------------------------------

def _entry(mini=3, maxi=4, frame=b"ra", dp=2, port=2) -> RaEntry:
    return RaEntry(mini, maxi, frame, dp, port)


def test_schedule_reproduces_golden_intervals():
    """With the random offsets the recorded intervals imply, the RAs go out
    at the recorded gaps (pcap timestamps)."""
    ex = goldens.load_exchange("periodic_ra_sw1")
    ts = [r["pcap_ts"] for r in ex["steps"][0]["replies"]]
    gaps = [b - a for a, b in zip(ts, ts[1:])]
    assert gaps == pytest.approx(ex["ra_intervals_s"], abs=0.002)
    assert all(3 <= g < 4 for g in gaps)
    offsets = iter([500] + [round(g * 1000) - 3000 for g in gaps] + [0])
    asked = []

    def rand(n):
        asked.append(n)
        return next(offsets)

    frame = build_ra_frame(cfg(LR0_SW1))
    job = RaJob(Snap({"lr0-sw1": _entry(frame=frame)}), rand)
    env = Env()
    assert job.run(env, 0) == []                # no immediate RA
    sent = []
    for _ in range(4):
        now = job.next_wakeup()
        sent += [(now, m) for m in job.run(env, now)]
    assert sent[0][0] == 3500
    ours = [(b[0] - a[0]) / 1000 for a, b in zip(sent, sent[1:])]
    assert ours == pytest.approx(gaps, abs=0.002)
    assert set(asked) == {1000}
    golden = golden_packet_outs("periodic_ra_sw1")
    assert all(goldens.same_message(m, golden[0][1]) for _, m in sent)


def test_random_interval_stays_within_bounds():
    job = RaJob(Snap({"a": _entry(3, 4)}))       # the real random source
    env = Env()
    job.run(env, 0)
    times = [0]
    for _ in range(200):
        now = job.next_wakeup()
        assert len(job.run(env, now)) == 1
        times.append(now)
    gaps = [b - a for a, b in zip(times[1:], times[2:])]
    assert all(3000 <= g < 4000 for g in gaps) and len(set(gaps)) > 10


def test_interval_change_reschedules_other_changes_do_not():
    snap = Snap({"a": _entry(3, 4)})
    job = RaJob(snap, lambda n: 0)
    env = Env()
    job.run(env, 0)
    assert job.next_wakeup() == 3000
    snap.set({"a": _entry(3, 4, frame=b"new", dp=5)})
    job.run(env, 1000)
    assert job.next_wakeup() == 3000            # kept
    [msg] = job.run(env, 3000)
    assert msg.endswith(b"new") and msg[8:] == ofmsg.packet_out(
        0, ra_actions(5, 2), b"new")[8:]
    snap.set({"a": _entry(10, 20, frame=b"new", dp=5)})
    job.run(env, 4000)
    assert job.next_wakeup() == 14000           # rescheduled from now


def test_removed_port_stops_and_timer_disarms():
    snap = Snap({"a": _entry(), "b": _entry(5, 6)})
    job = RaJob(snap, lambda n: 0)
    env, p = Env(), FakePoller()
    job.run(env, 0)
    snap.set({"b": _entry(5, 6)})
    job.run(env, 1)
    job.wait(p, 1)
    assert p.until == [5000]
    snap.set({})
    assert job.run(env, 6000) == []
    p2 = FakePoller()
    job.wait(p2, 6000)
    assert p2.until == [] and job.next_wakeup() is None


def test_many_ports_one_run_sends_each_due_once():
    snap = Snap({f"p{i}": _entry(frame=bytes([i])) for i in range(50)})
    job = RaJob(snap, lambda n: 0)
    env = Env()
    job.run(env, 0)
    out = job.run(env, 3000)
    assert sorted(m[-1] for m in out) == list(range(50))
    assert job.run(env, 3001) == []
