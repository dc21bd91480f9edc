"""BFD (issue 14) against a real switch: the recording bfd_session_up
replayed on the wire, BFD refused from a workload, and FRR's bfdd as the
peer of lr0's static route with BFD.

The sandbox serves the recorded SB, so the session (lr0-public ->
172.16.0.253, disc 822484385, UDP source port 49152) is the recorded one
and the daemon's frames must equal the recorded frames byte for byte; only
the peer's packet count per step and the write delay vary (the
exchange's fields_that_vary: timing, jitter).
"""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import pytest

from testbed.bfd_peer import (
    PEER_MAC,
    add_localnet_host,
    forget_bfd_peer,
    resolve_bfd_peer,
)
from testbed.golden import load_exchange
from testbed.ovs_sandbox import PHYS_PORT
from tests.helpers import unavailable

pytestmark = pytest.mark.integration

EX = load_exchange("bfd_session_up")
BFDD = "/usr/lib/frr/bfdd"
DETECT_S = 3.0          # the peer's multiplier 3 x our min_rx 1000 ms
BATCH_S = 5.0           # 23.03 writes batched status changes within 5 s


def step(title_start: str) -> dict:
    return next(s for s in EX["steps"] if s["title"].startswith(title_start))


def reply(title_start: str, i: int = 0) -> bytes:
    return bytes.fromhex(step(title_start)["replies"][i]["hex"])


def injects(title_start: str) -> list[str]:
    return [i["hex"] for i in step(title_start)["inject"]]


def status(sb) -> str:
    return sb.sbctl("--bare", "--columns=status", "list", "BFD").strip()


def wait_status(sb, want: str, timeout: float) -> float | None:
    """Seconds until SB BFD.status is 'want', or None."""
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        if status(sb) == want:
            return time.monotonic() - t0
        time.sleep(0.05)
    return None


def bfd_frames(sb, mark, wait: float, count: int = 1) -> list[bytes]:
    """BFD frames (UDP to 3784) on the localnet since 'mark'."""
    deadline = time.monotonic() + wait
    while True:
        got = [p.data for p in sb.packets_since(mark, [PHYS_PORT])
               if len(p.data) > 37 and p.data[12:14] == b"\x08\x00"
               and p.data[23] == 17 and p.data[36:38] == b"\x0e\xc8"]
        if len(got) >= count or time.monotonic() > deadline:
            return got
        time.sleep(0.02)


def test_recorded_session_on_the_wire(sandbox, daemon):
    """bfd_session_up: BFD punted to `arp` while the peer is unknown, the
    buffered Down packets released by its ARP reply; the peer's Down with
    your_disc=0 ignored; Down with our disc -> Init; Up -> Up and SB "up"
    within the batching delay; silence -> SB "down" at the detection time.
    Every frame byte-identical to the recording."""
    sb = sandbox
    forget_bfd_peer(sb)
    arp0 = daemon.coverage().get("pinctrl_pin_arp", 0)
    time.sleep(3.5)                      # a few BFD packets get buffered
    assert daemon.coverage().get("pinctrl_pin_arp", 0) >= arp0 + 2

    m = sb.mark()
    sb.inject(PHYS_PORT, injects("ARP reply from BFD peer")[0])
    down = reply("ARP reply from BFD peer")
    got = bfd_frames(sb, m, 2.0, 2)
    assert len(got) >= 2 and set(got) == {down}, [g.hex() for g in got]
    resolve_bfd_peer(sb)                 # as ovn-controller would, from the row

    m = sb.mark()
    sb.inject(PHYS_PORT, injects("peer sends BFD state=Down with your_disc=0")[0])
    assert bfd_frames(sb, m, 2.0) == [down]

    m = sb.mark()
    sb.inject(PHYS_PORT,
              injects("peer sends BFD state=Down with your_disc=OVN")[0])
    assert bfd_frames(sb, m, 2.0)[:1] == [
        reply("peer sends BFD state=Down with your_disc=OVN")]

    up_pkts = injects("peer sends BFD state=Up")
    m = sb.mark()
    t_up = None
    for hexstr in up_pkts:
        sb.inject(PHYS_PORT, hexstr)
        if t_up is None and status(sb) == "up":
            t_up = time.monotonic()
        time.sleep(0.5)
    frames = bfd_frames(sb, m, 0.1)
    assert frames and set(frames) == {reply("peer sends BFD state=Up")}
    t_last = time.monotonic()
    assert t_up is not None or status(sb) == "up"

    waited = wait_status(sb, "down", DETECT_S + 2.0)
    assert waited is not None, status(sb)
    # Written at once when the detection time expires (up to one BFD
    # interval of slack for the loop that notices it).
    assert time.monotonic() - t_last <= DETECT_S + 1.5
    m = sb.mark()
    assert bfd_frames(sb, m, 2.0)[:1] == [
        reply("peer goes silent", -1)]
    assert daemon.alive()


def test_bfd_from_a_workload_is_refused(sandbox, daemon):
    """A VM on sw0 spoofing the peer's address and echoing our
    discriminator reaches lr0 through lr0-sw0, not lr0-public: no session
    moves, the packet is counted."""
    sb = sandbox
    frame = bytearray(bytes.fromhex(
        injects("peer sends BFD state=Down with your_disc=OVN")[0]))
    frame[0:12] = bytes.fromhex("00000000ff01505400000001")  # to lr0-sw0
    before = daemon.coverage()
    sb.inject("gdvif1", bytes(frame))
    deadline = time.monotonic() + 2.0
    while time.monotonic() < deadline:
        cov = daemon.coverage()
        if cov.get("pinctrl_bfd_drop_wrong_port", 0) > \
                before.get("pinctrl_bfd_drop_wrong_port", 0):
            break
        time.sleep(0.05)
    else:
        pytest.fail(f"not refused: {daemon.coverage()}")
    assert cov.get("pinctrl_bfd_rx", 0) == before.get("pinctrl_bfd_rx", 0)
    m = sb.mark()
    got = bfd_frames(sb, m, 2.0)
    assert got and all(g == reply("ARP reply from BFD peer") for g in got)


# --- FRR's bfdd as the peer ---------------------------------------------------------

class Bfdd:
    """FRR's bfdd in the localnet host's namespace, peer 172.16.0.1, 300 ms
    intervals, multiplier 3.  Runs as FRR's user (its vty group is
    frrvty); stopped by pid."""

    def __init__(self, sb, ns: str) -> None:
        self.sb, self.ns = sb, ns
        self.dir = Path(sb.dir) / "bfdd"
        self.dir.mkdir(exist_ok=True)
        os.chmod(self.dir, 0o777)
        (self.dir / "bfdd.conf").write_text(
            "bfd\n peer 172.16.0.1 local-address 172.16.0.253\n"
            "  receive-interval 300\n  transmit-interval 300\n"
            "  detect-multiplier 3\n !\n!\n")
        self.n = 0
        self.name: str | None = None

    def start(self) -> None:
        self.n += 1
        self.name = f"bfdd-{self.n}"
        d = self.dir
        self.sb.netns_spawn(
            self.name, BFDD, "-u", "frr", "-g", "frr", "-f", f"{d}/bfdd.conf",
            "-i", f"{d}/bfdd-{self.n}.pid", "--vty_socket", str(d),
            "--bfdctl", f"{d}/bfdd-{self.n}.ctl", "-A", "127.0.0.1", "-P", "0",
            "-z", f"{d}/zserv.api", "--log", f"file:{d}/bfdd.log",
            ns=self.ns)

    def kill(self) -> None:
        """SIGKILL: the peer vanishes without a word (link or host loss)."""
        proc = self.sb._procs.get(self.name)
        if proc is not None:
            os.kill(proc.popen.pid, signal.SIGKILL)
            proc.popen.wait(timeout=5)
        self.sb.netns_stop(self.name)


@pytest.fixture
def frr_peer(netdev_sandbox, netdev_daemon):
    if not os.path.exists(BFDD):
        unavailable(f"{BFDD} missing (Debian package frr)")
    sb = netdev_sandbox
    add_localnet_host(sb, "bfdpeer", PEER_MAC)
    sb.netns_exec("ip", "addr", "add", "172.16.0.253/24", "dev", "eth0",
                  ns="bfdpeer")
    bfdd = Bfdd(sb, "bfdpeer")
    try:
        yield sb, bfdd
    finally:
        if bfdd.name is not None:
            bfdd.sb.netns_stop(bfdd.name)


def test_frr_bfdd_peer_up_down_up(frr_peer):
    """The session comes up with bfdd; bfdd killed -> SB "down" within the
    detection time; bfdd again -> "up" again."""
    sb, bfdd = frr_peer
    assert status(sb) == "down"
    bfdd.start()
    assert wait_status(sb, "up", 10 + BATCH_S) is not None, (
        status(sb), (bfdd.dir / "bfdd.log").read_text()[-2000:])
    time.sleep(1.0)
    bfdd.kill()
    took = wait_status(sb, "down", DETECT_S + 3.0)
    assert took is not None and took <= DETECT_S + 1.5, took
    bfdd.start()
    assert wait_status(sb, "up", 10 + BATCH_S) is not None, status(sb)
