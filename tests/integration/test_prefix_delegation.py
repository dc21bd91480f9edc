"""DHCPv6 prefix delegation (issue 14) against a real switch: the recording
ipv6_prefix_delegation replayed on the wire (with our random IAID put in
the recorded packets: the exchange's fields_that_vary), the periodic RA
after it (periodic_ra_sw1_after_prefix_delegation), and ISC Kea
(Debian kea-dhcp6-server) with a prefix pool as the upstream server on the
localnet: a prefix is delegated, renewed, and kept across a server
restart.
"""

from __future__ import annotations

import json
import os
import shutil
import struct
import time
from pathlib import Path

import pytest

from pinctrl.packet.headers import csum, pseudo_sum_ipv6
from testbed.bfd_peer import add_localnet_host
from testbed.golden import load_exchange
from testbed.ovs_sandbox import PHYS_PORT
from tests.helpers import unavailable

pytestmark = pytest.mark.integration

EX = load_exchange("ipv6_prefix_delegation")
RA_EX = load_exchange("periodic_ra_sw1_after_prefix_delegation")
RECORDED_AID = 42037
KEA = "/usr/sbin/kea-dhcp6"


def with_aid(frame: bytes, aid: int) -> bytes:
    """A recorded DHCPv6 frame (IPv6, no extension headers) with IA_PD
    IAID 'aid' instead of the recorded one, UDP checksum redone."""
    b = bytearray(frame)
    old = RECORDED_AID.to_bytes(4, "big")
    at = b.index(b"\x00\x19", 14 + 40 + 8 + 4)       # IA_PD option
    assert b[at + 4:at + 8] == old
    b[at + 4:at + 8] = aid.to_bytes(4, "big")
    udp = 14 + 40
    b[udp + 6:udp + 8] = b"\0\0"
    length = len(b) - udp
    s = csum(b[udp:], pseudo_sum_ipv6(bytes(b[22:38]), bytes(b[38:54]), 17,
                                      length))
    struct.pack_into("!H", b, udp + 6, s or 0xFFFF)
    return bytes(b)


def pd_frames(sb, mark, msg_type: int, wait: float) -> list[bytes]:
    """Client messages (UDP 546 -> 547) of 'msg_type' on the localnet."""
    deadline = time.monotonic() + wait
    while True:
        got = [p.data for p in sb.packets_since(mark, [PHYS_PORT])
               if p.data[12:14] == b"\x86\xdd" and p.data[20] == 17
               and p.data[54:58] == b"\x02\x22\x02\x23"
               and p.data[62] == msg_type]
        if got or time.monotonic() > deadline:
            return got
        time.sleep(0.02)


def iaid(frame: bytes) -> int:
    at = frame.index(b"\x00\x19", 14 + 40 + 8 + 4)
    return int.from_bytes(frame[at + 4:at + 8], "big")


def pd_list(sb, port: str = "lr0-sw1") -> str | None:
    out = sb.sbctl("--if-exists", "get", "Port_Binding", port,
                   "options:ipv6_ra_pd_list", check=False).strip()
    return out.strip('"') or None


def wait_for(fn, timeout: float, step: float = 0.05):
    deadline = time.monotonic() + timeout
    while True:
        v = fn()
        if v or time.monotonic() > deadline:
            return v
        time.sleep(step)


def test_recorded_delegation_on_the_wire(sandbox, daemon):
    """SOLICIT (IA_PD, multicast) byte-identical but for the IAID; our
    ADVERTISE -> the recorded REQUEST; our REPLY -> SB
    ipv6_ra_pd_list "<iaid>:2001:db8:aaaa:1::/64", and the SOLICITs stop."""
    sb = sandbox
    rec = EX["steps"][0]["replies"]
    solicit_rec = bytes.fromhex(next(r["hex"] for r in rec
                                     if r["port"] == PHYS_PORT))
    request_rec = bytes.fromhex(rec[-1]["hex"])
    adv = bytes.fromhex(EX["steps"][0]["inject"][0]["hex"])
    reply = bytes.fromhex(EX["steps"][1]["inject"][0]["hex"])
    for _ in range(3):      # a new SOLICIT may overtake our ADVERTISE
        m = sb.mark()
        (solicit, *_) = pd_frames(sb, m, 1, 4.0)
        aid = iaid(solicit)
        assert 10000 <= aid < 65536
        assert solicit == with_aid(solicit_rec, aid)
        m = sb.mark()
        sb.inject(PHYS_PORT, with_aid(adv, aid))
        got = pd_frames(sb, m, 3, 1.0)
        if got:
            break
    assert got == [with_aid(request_rec, aid)]
    sb.inject(PHYS_PORT, with_aid(reply, aid))
    want = f"{aid}:2001:db8:aaaa:1::/64"
    assert wait_for(lambda: pd_list(sb) == want, 3.0), pd_list(sb)
    m = sb.mark()
    time.sleep(3.2)
    assert pd_frames(sb, m, 1, 0) == []

    # periodic_ra_sw1_after_prefix_delegation: 23.03's northd copies the
    # list verbatim into ipv6_ra_prefixes; a five-digit IAID does not
    # parse as a prefix, so the RAs carry 2001:db8:1::/64 alone.
    sb.sbctl("set", "Port_Binding", "lr0-sw1",
             f'options:ipv6_ra_prefixes="2001:db8:1::/64 {want}"')
    ra = {bytes.fromhex(r["hex"]) for r in RA_EX["steps"][0]["replies"]}
    assert len(ra) == 1
    m = sb.mark()
    deadline = time.monotonic() + 9.0
    while time.monotonic() < deadline:
        got = [p.data for p in sb.packets_since(m, ["gdvif4"])
               if p.data[12:14] == b"\x86\xdd" and p.data[54] == 134]
        if len(got) >= 2:
            break
        time.sleep(0.1)
    assert len(got) >= 2 and set(got) == ra


# --- ISC Kea as the upstream server -------------------------------------------------

def kea_config(d: Path) -> dict:
    return {"Dhcp6": {
        "interfaces-config": {"interfaces": ["eth0"]},
        "lease-database": {"type": "memfile", "persist": True,
                           "name": str(d / "leases6.csv"), "lfc-interval": 0},
        "server-id": {"type": "LL", "htype": 1, "identifier": "00000000fefe",
                      "persist": False},
        "renew-timer": 3, "rebind-timer": 30,
        "preferred-lifetime": 60, "valid-lifetime": 120,
        "subnet6": [{"id": 1, "subnet": "2001:db8:ff::/64",
                     "interface": "eth0",
                     "pd-pools": [{"prefix": "2001:db8:aaaa::",
                                   "prefix-len": 48, "delegated-len": 64}]}],
        "loggers": [{"name": "kea-dhcp6", "severity": "DEBUG",
                     "debuglevel": 40,
                     "output_options": [{"output": str(d / "kea.log")}]}],
    }}


class Kea:
    """kea-dhcp6 in the localnet host's namespace, leases persisted in
    the sandbox directory; stopped by pid."""

    def __init__(self, sb, ns: str) -> None:
        self.sb, self.ns = sb, ns
        self.dir = Path(sb.dir) / "kea"
        self.dir.mkdir(exist_ok=True)
        (self.dir / "kea-dhcp6.conf").write_text(json.dumps(kea_config(
            self.dir), indent=1))
        self.n = 0
        self.name: str | None = None

    def start(self) -> None:
        self.n += 1
        self.name = f"kea-{self.n}"
        d = str(self.dir)
        self.sb.netns_spawn(self.name, "env", f"KEA_PIDFILE_DIR={d}",
                            f"KEA_LOCKFILE_DIR={d}", KEA, "-c",
                            f"{d}/kea-dhcp6.conf", ns=self.ns)

    def stop(self) -> None:
        if self.name is not None:
            self.sb.netns_stop(self.name)
            self.name = None

    def log(self) -> str:
        p = self.dir / "kea.log"
        return p.read_text()[-3000:] if p.exists() else ""


@pytest.fixture
def kea(netdev_sandbox, netdev_daemon):
    if shutil.which(KEA) is None and not os.path.exists(KEA):
        unavailable(f"{KEA} missing (Debian package kea-dhcp6-server)")
    sb = netdev_sandbox
    add_localnet_host(sb, "dhcp6server", "00:00:00:00:fe:fe")
    sb.netns_enable_ipv6("2001:db8:ff::fe/64", ns="dhcp6server")
    server = Kea(sb, "dhcp6server")
    try:
        yield sb, netdev_daemon, server
    finally:
        server.stop()


def test_kea_delegates_renews_and_survives_a_restart(kea):
    sb, daemon, server = kea
    server.start()
    value = wait_for(lambda: pd_list(sb), 15.0)
    assert value and value.endswith(":2001:db8:aaaa::/64"), (
        value, server.log())
    replies = lambda: daemon.coverage().get("pinctrl_prefixd_reply", 0)
    n0 = replies()
    # T1 is 3 s: a RENEW, answered with the same prefix.
    assert wait_for(lambda: replies() > n0, 10.0), server.log()
    assert pd_list(sb) == value
    assert daemon.coverage().get("pinctrl_prefixd_renew_sent", 0) >= 1
    server.stop()
    time.sleep(1.0)
    server.start()
    n1 = replies()
    assert wait_for(lambda: replies() > n1, 15.0), server.log()
    assert pd_list(sb) == value
