"""Southbound connectivity beyond unix sockets, with real ovsdb-servers on
loopback:

  * ssl: — certificates made here with openssl (a CA, a server and a client
    certificate), an SB ovsdb-server with --remote=pssl:0:127.0.0.1, the
    daemon with --private-key/--certificate/--ca-cert;
  * a 3-server clustered SB (ovsdb-tool create-cluster/join-cluster, raft
    between the servers, clients on ptcp:0:127.0.0.1): the daemon is given
    all three remotes, the server it is connected to is killed by pid, and
    it reconnects to another member and keeps serving.

Every server is started here and stopped by pid in a finally block."""

from __future__ import annotations

import re
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest

from testbed.golden import GOLDEN
from testbed.processes import Proc, tail
from tests.helpers import unavailable

pytestmark = pytest.mark.integration

SB_CONTENTS = GOLDEN / "sb.backup.db"       # 5 datapaths, 17 port bindings


@pytest.fixture(autouse=True)
def need_tools():
    for tool in ("openssl", "ovsdb-tool", "ovsdb-client", "ovsdb-server"):
        if shutil.which(tool) is None:
            unavailable(f"{tool} not installed")


class Servers:
    """ovsdb-servers started by one test (children, stopped by pid)."""

    def __init__(self, base: str) -> None:
        self.dir = base
        self.procs: dict[str, Proc] = {}

    def start(self, name: str, db: str, *remotes: str,
              extra: tuple[str, ...] = ()) -> int:
        """Start 'name' serving 'db' with punix:<name>.sock and 'remotes'
        (ptcp:0:... or pssl:0:...); returns the TCP port it listens on."""
        d = self.dir
        log = f"{d}/{name}.log"
        args = ["ovsdb-server", "--no-chdir", f"--pidfile={d}/{name}.pid",
                f"--log-file={log}", "-vconsole:off", "-vfile:info",
                f"--unixctl={d}/{name}.ctl", f"--remote=punix:{d}/{name}.sock",
                *[f"--remote={r}" for r in remotes], *extra, db]
        popen = subprocess.Popen(args, stdin=subprocess.DEVNULL,
                                 stdout=subprocess.DEVNULL,
                                 stderr=subprocess.DEVNULL, cwd=d,
                                 start_new_session=True)
        self.procs[name] = Proc(name, popen, f"{d}/{name}.pid")
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if popen.poll() is not None:
                raise AssertionError(f"{name} exited: {tail(log)}")
            m = re.search(r"listening on port (\d+)", _read(log))
            if m:
                return int(m.group(1))
            time.sleep(0.02)
        raise AssertionError(f"{name}: no listening port\n{tail(log)}")

    def kill(self, name: str) -> None:
        self.procs[name].kill(signal.SIGKILL, timeout=5)

    def stop_all(self) -> None:
        for proc in self.procs.values():
            proc.kill(signal.SIGTERM, timeout=5)


def _read(path: str) -> str:
    try:
        return Path(path).read_text()
    except OSError:
        return ""


@pytest.fixture
def servers(sandbox):
    s = Servers(sandbox.dir)
    try:
        yield s
    finally:
        s.stop_all()


def run(*args: str, cwd: str) -> str:
    cp = subprocess.run(args, capture_output=True, text=True, cwd=cwd,
                        timeout=30, check=False)
    assert cp.returncode == 0, f"{args}: {cp.stderr}"
    return cp.stdout


def make_pki(d: str) -> dict[str, str]:
    """A CA and two EC certificates it signed (server, client), PEM."""
    def key(name):
        run("openssl", "ecparam", "-name", "prime256v1", "-genkey", "-noout",
            "-out", f"{name}-key.pem", cwd=d)

    key("ca")
    run("openssl", "req", "-x509", "-new", "-key", "ca-key.pem", "-days", "2",
        "-subj", "/CN=pinctrl-test-ca", "-out", "ca-cert.pem", cwd=d)
    for name in ("server", "client"):
        key(name)
        run("openssl", "req", "-new", "-key", f"{name}-key.pem",
            "-subj", f"/CN=pinctrl-test-{name}", "-out", f"{name}.csr", cwd=d)
        run("openssl", "x509", "-req", "-in", f"{name}.csr", "-CA",
            "ca-cert.pem", "-CAkey", "ca-key.pem", "-CAcreateserial",
            "-days", "2", "-out", f"{name}-cert.pem", cwd=d)
    return {n: f"{d}/{n}.pem" for n in
            ("ca-cert", "server-key", "server-cert", "client-key",
             "client-cert")}


def show_fields(d) -> dict[str, str]:
    return dict(l.split(": ", 1) for l in d.show().splitlines() if ": " in l)


def wait_show(d, pred, timeout: float, what: str) -> dict[str, str]:
    deadline = time.monotonic() + timeout
    while True:
        f = show_fields(d)
        if pred(f):
            return f
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} within {timeout} s:\n{d.show()}"
                                 f"\n{d.log_tail(30)}")
        time.sleep(0.1)


def sb_serving(f: dict[str, str]) -> bool:
    return (f.get("Southbound", "").startswith("connected")
            and f.get("Southbound rows", "").startswith("5 datapaths")
            and f.get("OpenFlow", "").startswith("connected"))


def test_ssl_remote(sandbox, servers):
    pki = make_pki(sandbox.dir)
    db = f"{sandbox.dir}/sb-ssl.db"
    shutil.copy(SB_CONTENTS, db)
    port = servers.start(
        "sb-ssl", db, "pssl:0:127.0.0.1",
        extra=(f"--private-key={pki['server-key']}",
               f"--certificate={pki['server-cert']}",
               f"--ca-cert={pki['ca-cert']}"))
    remote = f"ssl:127.0.0.1:{port}"
    d = sandbox.daemon(extra_args=[
        "--ovnsb-db", remote, "--private-key", pki["client-key"],
        "--certificate", pki["client-cert"], "--ca-cert", pki["ca-cert"]])
    d.start(timeout=15)
    f = wait_show(d, sb_serving, 10, "SB over SSL")
    assert f["Southbound"] == f"connected ({remote}, leader-only: false)"
    assert f["Southbound server"] == f"{remote} (standalone)"


def test_ssl_remote_without_certificates_is_a_clean_error(sandbox):
    d = sandbox.daemon(extra_args=["--ovnsb-db", "ssl:127.0.0.1:1",
                                   "--db-timeout", "2"])
    d.start(wait=False)
    assert d.popen.wait(timeout=15) == 1
    err = _read(f"{sandbox.dir}/pinctrl-daemon.stderr")
    assert "ssl: remotes need --private-key, --certificate, --ca-cert" in err
    assert "Traceback" not in err


def make_cluster(d: str, servers: Servers) -> list[str]:
    """Three SB servers in one raft cluster (raft over unix sockets in 'd',
    clients on ptcp:0:127.0.0.1); returns their tcp: remotes by name."""
    names = ["sb1", "sb2", "sb3"]
    run("ovsdb-tool", "create-cluster", f"{d}/sb1.db", str(SB_CONTENTS),
        f"unix:{d}/sb1.raft", cwd=d)
    for n in names[1:]:
        run("ovsdb-tool", "join-cluster", f"{d}/{n}.db", "OVN_Southbound",
            f"unix:{d}/{n}.raft", f"unix:{d}/sb1.raft", cwd=d)
    remotes = {}
    for n in names:
        port = servers.start(n, f"{d}/{n}.db", "ptcp:0:127.0.0.1")
        remotes[n] = f"tcp:127.0.0.1:{port}"
    for n in names:
        run("ovsdb-client", "--timeout=15", "wait", f"unix:{d}/{n}.sock",
            "OVN_Southbound", "connected", cwd=d)
    return remotes


def test_clustered_sb_survives_losing_its_server(sandbox, servers):
    t0 = time.monotonic()
    remotes = make_cluster(sandbox.dir, servers)
    d = sandbox.daemon(extra_args=["--ovnsb-db", ",".join(remotes.values())])
    d.start(timeout=15)
    f = wait_show(d, sb_serving, 10, "clustered SB")
    server, role = re.fullmatch(r"(\S+) \((clustered, \w+)\)",
                                f["Southbound server"]).groups()
    assert server in remotes.values() and role in (
        "clustered, leader", "clustered, follower"), f

    victim = next(n for n, r in remotes.items() if r == server)
    servers.kill(victim)
    f = wait_show(d, lambda f: sb_serving(f) and not f["Southbound server"]
                  .startswith(server + " "), 15, "reconnect to another member")
    new = f["Southbound server"].split()[0]
    assert new in remotes.values() and new != server
    assert d.alive()
    assert time.monotonic() - t0 < 20
