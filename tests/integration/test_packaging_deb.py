"""`make deb`'s package, installed: packaging/build-deb.sh builds it
(lintian-checked), `dpkg -i` installs it, the installed
/usr/bin/pinctrl-daemon runs on Debian's python3 and answers a DHCP
DISCOVER in the test sandbox, and `dpkg --purge` removes it again, also
when a test failed.  Root only; refuses to touch a pinctrl-daemon package
that was installed before."""

from __future__ import annotations

import gzip
import os
import re
import shutil
import subprocess
import tomllib
from pathlib import Path

import pytest

from testbed.golden import replay_exchange
from tests.helpers import unavailable

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
VERSION = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"][
    "version"]
EXE = "/usr/bin/pinctrl-daemon"
DOC = Path("/usr/share/doc/pinctrl-daemon")
MAN = Path("/usr/share/man/man8/pinctrl-daemon.8.gz")
# What build-deb.sh and the package's dependencies need (make deps).
TOOLS = ("dpkg-buildpackage", "dh", "pybuild", "lintian", "man")
DEPENDS = ("openvswitch-switch", "python3-openvswitch", "python3-os-ken",
           "python3-prometheus-client")


def run(*cmd: str, timeout: float = 120, check: bool = True,
        cwd: str = "/") -> subprocess.CompletedProcess:
    """cmd with a plain environment: no PYTHONPATH or virtualenv can make
    the installed daemon import anything but the package's files."""
    env = {k: v for k, v in os.environ.items()
           if k not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV")}
    env["DEBIAN_FRONTEND"] = "noninteractive"
    cp = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout,
                        env=env, cwd=cwd, check=False)
    if check:
        assert cp.returncode == 0, f"{cmd}: rc={cp.returncode}\n" \
            + cp.stdout[-3000:] + cp.stderr[-3000:]
    return cp


def installed(package: str) -> bool:
    cp = run("dpkg-query", "-W", "-f=${db:Status-Abbrev}", package,
             check=False)
    return cp.stdout.startswith("ii")


@pytest.fixture(scope="module")
def deb(tmp_path_factory) -> Path:
    """The package, built and installed for the module's tests; purged
    afterwards."""
    if os.geteuid() != 0:
        unavailable("dpkg -i needs root")
    missing = [t for t in TOOLS if shutil.which(t) is None] + \
        [p for p in DEPENDS if not installed(p)]
    if missing:
        unavailable(f"missing {missing}: make deps installs them")
    if installed("pinctrl-daemon") or os.path.exists(EXE):
        unavailable(f"{EXE} or the pinctrl-daemon package is installed "
                    "already; this test installs and purges its own")
    out = tmp_path_factory.mktemp("deb")
    cp = run(str(ROOT / "packaging" / "build-deb.sh"), str(out), timeout=300)
    path = Path(cp.stdout.strip().splitlines()[-1])
    assert path == out / f"pinctrl-daemon_{VERSION}_all.deb", cp.stdout
    try:
        run("dpkg", "-i", str(path))
        yield path
    finally:
        run("dpkg", "--purge", "pinctrl-daemon", check=False)
        assert not installed("pinctrl-daemon")
        assert not os.path.exists(EXE)


def test_version(deb):
    cp = run(EXE, "--version")
    assert cp.stdout.strip() == f"pinctrl-daemon {VERSION}"


def test_runs_on_debian_python(deb):
    """Debian's interpreter, the package's modules, python3-openvswitch
    with its C JSON parser."""
    with open(EXE) as f:
        assert f.readline().strip() == "#!/usr/bin/python3"
    cp = run("/usr/bin/python3", "-c", "import pinctrl, ovs.json; "
             "print(pinctrl.__file__, ovs.json.PARSER)")
    assert cp.stdout.split() == [
        "/usr/lib/python3/dist-packages/pinctrl/__init__.py", "C"]


def test_control_fields(deb):
    fields = run("dpkg-deb", "-f", str(deb), "Version", "Architecture",
                 "Depends").stdout
    assert f"Version: {VERSION}\n" in fields
    assert "Architecture: all\n" in fields
    depends = {d.split()[0] for d in re.search(r"Depends: (.*)", fields)
               .group(1).split(", ")}
    assert set(DEPENDS) <= depends
    # Debian packages only: every dependency is one dpkg knows here.
    for name in depends - {"python3:any"}:
        assert installed(name), name


def test_installed_files(deb):
    unit = Path("/lib/systemd/system/pinctrl-daemon.service")
    assert unit.read_text() == (ROOT / "packaging" /
                                "pinctrl-daemon.service").read_text()
    default = Path("/etc/default/pinctrl-daemon")
    assert default.read_text() == (ROOT / "packaging" /
                                   "pinctrl-daemon.default").read_text()
    conffiles = run("dpkg-query", "-W", "-f=${Conffiles}",
                    "pinctrl-daemon").stdout
    assert str(default) in conffiles
    # Documentation=file:... of the unit: kept uncompressed.
    assert (DOC / "operations.md").is_file()
    examples = DOC / "examples"
    for unit_name in ("ovn-controller", "pinctrl-daemon"):
        dropin = f"split-mode/{unit_name}.service.d/split-mode.conf"
        assert (examples / dropin).read_text() == \
            (ROOT / "packaging" / dropin).read_text()
    assert (examples / "grafana-dashboard.json").is_file()


def test_man_page(deb):
    """Installed, found by man, rendered without groff warnings."""
    assert run("man", "-w", "pinctrl-daemon").stdout.strip() == str(MAN)
    cp = run("man", "--warnings=all", "-l", str(MAN))
    assert cp.stderr == "", cp.stderr
    text = cp.stdout
    for section in ("NAME", "SYNOPSIS", "RUN MODES", "OPTIONS",
                    "RUNTIME MANAGEMENT COMMANDS", "FILES", "EXAMPLES"):
        assert re.search(rf"^{section}$", text, re.M), section
    assert f"pinctrl-daemon {VERSION}" in text


def test_serves_dhcp(deb, sandbox, monkeypatch):
    """The installed binary against the sandbox: connected, a golden
    DISCOVER answered with the golden OFFER, and every command its
    `help` lists documented in the installed man page."""
    monkeypatch.setenv("PINCTRL_DAEMON", EXE)
    for var in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV"):
        sandbox.env.pop(var, None)
    d = sandbox.daemon()
    d.start(timeout=15)
    with open(f"/proc/{d.popen.pid}/cmdline", "rb") as f:
        argv = f.read().split(b"\0")
    assert argv[:2] == [b"/usr/bin/python3", EXE.encode()], argv

    res = replay_exchange(sandbox, "dhcpv4_discover_offer")
    assert res.ok
    assert d.coverage().get("pinctrl_pin_put_dhcp_opts") == 1

    commands = [line.split()[0] for line in d.appctl("help").splitlines()[1:]
                if line.strip()]
    assert "pinctrl/show" in commands
    page = gzip.decompress(MAN.read_bytes()).decode()
    for cmd in commands:
        assert f".TP\n\\fB{cmd.replace('-', chr(92) + '-')}\\fR" in page, cmd
    assert d.stop() == 0
