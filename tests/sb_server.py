"""A real Southbound ovsdb-server holding the golden SB backup, for tests
of the main thread's Southbound side (SbSync, writers).

Needs ovsdb-server, ovsdb-tool, ovsdb-client and ovn-sbctl (skipped outside
CI otherwise).  Everything started here is stopped by pid, also on failure.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

import ovs.poller
import ovs.timeval
import pytest

from pinctrl.sb_sync import SbSync
from pinctrl.shared.state import SharedState
from tests.helpers import unavailable

SCHEMA = Path("/usr/share/ovn/ovn-sb.ovsschema")
BACKUP = Path(__file__).resolve().parent / "golden" / "ovn-23.03" / \
    "sb.backup.db"
TOOLS = ("ovsdb-server", "ovsdb-tool", "ovsdb-client", "ovn-sbctl")


class SbServer:
    def __init__(self, tmp: Path) -> None:
        self.dir = tmp
        self.sock = str(tmp / "sb.sock")
        self.remote = f"unix:{self.sock}"
        self.pidfile = tmp / "sb.pid"
        self.pid: int | None = None

    def run(self, *args: str, input: bytes | None = None) -> str:
        r = subprocess.run(list(args), input=input, capture_output=True,
                           timeout=20, check=False)
        if r.returncode:
            raise RuntimeError(f"{args}: {r.stderr.decode()}")
        return r.stdout.decode().strip()

    def sbctl(self, *args: str) -> str:
        return self.run("ovn-sbctl", f"--db={self.remote}", *args)

    def start(self) -> None:
        self.run("ovsdb-tool", "create", self.db, str(SCHEMA))
        self.launch()
        # ovsdb-client restore wants a seekable stdin.
        with open(BACKUP, "rb") as f:
            r = subprocess.run(["ovsdb-client", "restore", self.remote],
                               stdin=f, capture_output=True, timeout=20,
                               check=False)
        if r.returncode:
            raise RuntimeError(f"restore: {r.stderr.decode()}")
        # restore may give new row UUIDs: look the rows up.
        self.dns_row = self.sbctl("--bare", "--columns=_uuid", "list", "DNS")
        self.sw0 = self.dp_uuid(1)
        self.sw1 = self.dp_uuid(2)

    @property
    def db(self) -> str:
        return str(self.dir / "sb.db")

    def launch(self) -> None:
        """Start ovsdb-server on the existing database file."""
        self.run("ovsdb-server", "--detach", f"--pidfile={self.pidfile}",
                 f"--remote=punix:{self.sock}", "--no-chdir",
                 f"--log-file={self.dir / 'sb.log'}",
                 f"--unixctl={self.dir / 'sb.ctl'}", self.db)
        self.pid = int(self.pidfile.read_text().strip())

    def dp_uuid(self, key: int) -> str:
        return self.sbctl("--bare", "--columns=_uuid", "find",
                          "Datapath_Binding", f"tunnel_key={key}")

    def stop(self) -> None:
        if self.pid is None and self.pidfile.exists():
            self.pid = int(self.pidfile.read_text().strip())
        if self.pid is None:
            return
        try:
            os.kill(self.pid, signal.SIGTERM)
            for _ in range(50):
                os.kill(self.pid, 0)
                time.sleep(0.05)
            os.kill(self.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.pid = None


@pytest.fixture
def sb_server(tmp_path):
    missing = [t for t in TOOLS if shutil.which(t) is None]
    if missing or not SCHEMA.exists():
        unavailable(f"needs {missing or SCHEMA}")
    srv = SbServer(tmp_path)
    try:
        srv.start()
        yield srv
    finally:
        srv.stop()


@pytest.fixture
def sync(sb_server):
    shared = SharedState()
    s = SbSync(shared, sb_server.remote, json.loads(SCHEMA.read_text()))
    try:
        step_until_change(s)                # initial contents
        yield s
    finally:
        s.close()
        shared.handler_seq.close()
        shared.main_seq.close()


def step_until_change(s: SbSync, timeout: float = 10.0,
                      chassis: str | None = None) -> None:
    """Run the main-loop step until one SbSync.run() call has seen an IDL
    change (and so, in the same call, rebuilt what it derives)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        before = s.idl.change_seqno
        now = ovs.timeval.msec()
        s.run(now, chassis)
        if s.idl.change_seqno != before:
            return
        poller = ovs.poller.Poller()
        s.wait(poller, now)
        poller.timer_wait(100)
        poller.block()
    raise AssertionError("no IDL change seen")


