"""Command-line behaviour: bad arguments and an unreachable OVS database end
the daemon quickly with a clear message, never with a Python traceback."""

import os
import subprocess
import tempfile
import time

import pytest

from testbed.daemon_under_test import daemon_executable, daemon_help, daemon_unavailable
from tests.helpers import unavailable

pytestmark = pytest.mark.integration


@pytest.fixture(autouse=True)
def need_daemon():
    reason = daemon_unavailable()
    if reason:
        unavailable(reason)


def run(*args, timeout=30):
    with tempfile.TemporaryDirectory(prefix="pinctrl-cli-") as d:
        env = dict(os.environ, OVS_RUNDIR=d, OVS_LOGDIR=d, OVS_DBDIR=d)
        t0 = time.monotonic()
        cp = subprocess.run([daemon_executable(), *args], capture_output=True, text=True,
                            timeout=timeout, cwd=d, env=env)
        return cp, time.monotonic() - t0


def no_traceback(cp):
    assert "Traceback" not in cp.stderr and "Traceback" not in cp.stdout, cp.stderr


def test_help_and_version():
    rc, out = daemon_help()
    assert rc == 0
    for opt in ("--br-int", "--ovs-rundir", "--ovs-db", "--ovnsb-db", "--unixctl",
                "--log-file", "--pidfile"):
        assert opt in out, opt
    cp, _ = run("--version")
    assert cp.returncode == 0 and "pinctrl-daemon" in cp.stdout + cp.stderr


@pytest.mark.parametrize("args, needle", [
    (["--no-such-option"], "--no-such-option"),
    (["--db-timeout", "abc"], "db-timeout"),
    (["--br-int"], "--br-int"),
    (["extra-positional"], "extra-positional"),
    (["-vnosuchmodule:dbg"], "nosuchmodule"),
])
def test_bad_arguments(args, needle):
    cp, took = run(*args)
    assert cp.returncode != 0
    no_traceback(cp)
    assert needle in cp.stderr, cp.stderr
    assert took < 10


def test_unreachable_ovs_db():
    rc, helptext = daemon_help()
    bounded = "--db-timeout" in helptext
    args = ["--ovs-db", "unix:/nonexistent/db.sock", "-vconsole:off"]
    if bounded:
        args += ["--db-timeout", "2"]
    cp, took = run(*args, timeout=30)
    assert cp.returncode != 0
    no_traceback(cp)
    assert "/nonexistent/db.sock" in cp.stderr, cp.stderr
    assert "OVS database" in cp.stderr or "database" in cp.stderr.lower(), cp.stderr
    assert took < (2 + 8 if bounded else 30), f"took {took:.1f}s"


def test_missing_bridge_socket_dir():
    """--ovs-rundir pointing nowhere: also a clean, bounded failure."""
    cp, took = run("--ovs-rundir", "/nonexistent-rundir", "--db-timeout", "2",
                   "-vconsole:off")
    assert cp.returncode != 0
    no_traceback(cp)
    assert "/nonexistent-rundir" in cp.stderr, cp.stderr
    assert took < 10


def _wait_exit(popen, timeout):
    try:
        return popen.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        return None


def test_exit_command_and_sigterm(sandbox):
    """`ovs-appctl exit` and SIGTERM both end a connected daemon cleanly."""
    import signal

    d = sandbox.daemon().start(timeout=15)
    sandbox.appctl("exit", target=d.ctl, check=False)
    rc = _wait_exit(d.popen, 10)
    assert rc == 0, f"exit command: rc={rc}"

    d2 = sandbox.daemon().start(timeout=15)
    os.kill(d2.popen.pid, signal.SIGTERM)
    rc = _wait_exit(d2.popen, 10)
    assert rc is not None, "daemon ignored SIGTERM for 10 s"
    assert rc in (0, -signal.SIGTERM, 128 + signal.SIGTERM), rc
    err = open(os.path.join(sandbox.dir, "pinctrl-daemon.stderr")).read()
    assert "Traceback" not in err, err[-3000:]
