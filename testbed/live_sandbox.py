"""The golden topology on a live chassis, in split mode: the Sandbox of
testbed.ovs_sandbox (dummy datapath, gdvif1..6, br-phys/gdphys, the
recording's Southbound) plus the recording's Northbound
(tests/golden/ovn-23.03/nb.backup.db), a real ovn-northd, pinctrl-daemon
with --proxy-rundir <dir>/split, and a real ovn-controller 23.03 started
with OVS_RUNDIR=<dir>/split, so that it programs br-int through the
daemon's proxy.  No recorded flows are loaded: ovn-controller installs
its own.

    sb = LiveSandbox(console=True)      # Daemon options for sb.pinctrl
    sb.start()                          # up, and ovn-controller synced
    sb.nbctl("--wait=hv", "sync")
    sb.stop()                           # every process, by pid

Test (demo) process, main thread.
"""

from __future__ import annotations

import os
import shutil
import signal
import time
from typing import Any

from testbed.golden import GOLDEN
from testbed.ovs_sandbox import (PATCH_INT, PATCH_PHYS, TUNNEL, Sandbox,
                                 ovsdb_server)
from testbed.processes import connectable

OVN_BINARIES = ("ovn-northd", "ovn-controller", "ovn-nbctl", "ovn-appctl")


def missing_ovn() -> str | None:
    """Why ovn-northd / ovn-controller cannot run here, or None."""
    missing = [b for b in OVN_BINARIES if shutil.which(b) is None]
    if missing:
        return "missing binaries: " + " ".join(missing)
    if not (GOLDEN / "nb.backup.db").exists():
        return f"missing {GOLDEN / 'nb.backup.db'}"
    return None


class LiveSandbox(Sandbox):
    """See the module docstring.  'pinctrl' is the daemon in split mode
    (a testbed Daemon; keyword arguments of the constructor go to it)."""

    def __init__(self, keep: bool | None = None, **daemon_kw: Any) -> None:
        super().__init__(install_flows=False, keep=keep)
        self.nb_db = f"unix:{self.dir}/ovnnb_db.sock"
        self.proxy_dir = f"{self.dir}/split"
        self.controller_ctl = ""
        extra = ["--proxy-rundir", self.proxy_dir,
                 *daemon_kw.pop("extra_args", ())]
        self.pinctrl = self.daemon(extra_args=extra, **daemon_kw)

    def nbctl(self, *args: str, timeout: float = 60) -> str:
        return self.run(["ovn-nbctl", f"--db={self.nb_db}",
                         f"--timeout={int(timeout)}", *args],
                        timeout=timeout + 5).stdout

    def start(self) -> LiveSandbox:
        """OVS and the recorded SB (Sandbox.start), the recorded NB,
        northd, the daemon, ovn-controller through it; returns once
        ovn-controller has caught up (`ovn-nbctl --wait=hv sync`)."""
        super().start()
        t0 = time.monotonic()
        d = self.dir
        shutil.copyfile(GOLDEN / "nb.backup.db", f"{d}/ovnnb.db")
        ovsdb_server(self, "ovnnb_db", f"{d}/ovnnb.db", f"{d}/ovnnb_db.sock")
        self._spawn("ovn-northd", [
            "ovn-northd", "--no-chdir", f"--pidfile={d}/ovn-northd.pid",
            f"--log-file={d}/ovn-northd.log", "-vconsole:off",
            f"--unixctl={d}/ovn-northd.ctl", f"--ovnnb-db={self.nb_db}",
            f"--ovnsb-db={self.sb_db}"],
            ready=lambda: connectable(f"{d}/ovn-northd.ctl"),
            pidfile=f"{d}/ovn-northd.pid")
        # The recording's tunnel to hv2 and localnet patch ports were
        # ovn-controller's: this one creates them again (same names), with
        # the external_ids it finds them by.
        self.vsctl("del-port", "br-int", TUNNEL, "--", "del-port", "br-int",
                   PATCH_INT, "--", "del-port", "br-phys", PATCH_PHYS)
        self.pinctrl.start(wait=True, timeout=30)
        self.start_controller()
        self.nbctl("--wait=hv", "sync")
        self.timings["ovn"] = time.monotonic() - t0
        return self

    def start_controller(self) -> None:
        """ovn-controller with OVS_RUNDIR=<proxy dir>: its three OpenFlow
        connections go to the daemon's proxy.  23.03 has no --unixctl:
        its control socket is <OVN_RUNDIR>/ovn-controller.<pid>.ctl."""
        d = self.dir
        env, self.env = self.env, dict(self.env, OVS_RUNDIR=self.proxy_dir)
        try:
            proc = self._spawn("ovn-controller", [
                "ovn-controller", "--no-chdir",
                f"--pidfile={d}/ovn-controller.pid",
                f"--log-file={d}/ovn-controller.log", "-vconsole:off",
                self.db],
                ready=lambda: connectable(self._controller_ctl()),
                pidfile=f"{d}/ovn-controller.pid")
        finally:
            self.env = env
        self.controller_ctl = self._controller_ctl(proc.popen.pid)

    def _controller_ctl(self, pid: int | None = None) -> str:
        if pid is None:
            pid = self._procs["ovn-controller"].popen.pid
        return f"{self.dir}/ovn-controller.{pid}.ctl"

    def controller_counter(self, name: str) -> int:
        """A coverage counter of ovn-controller (its total)."""
        out = self.appctl("coverage/read-counter", name,
                          target=self.controller_ctl)
        return int(out.split()[0])

    def stop(self) -> None:
        """ovn-controller and northd first (they would react to the
        others going away), then what Sandbox.stop() stops; by pid."""
        for name in ("ovn-controller", "ovn-northd"):
            proc = self._procs.pop(name, None)
            if proc is not None:
                proc.kill(signal.SIGTERM, timeout=5)
        super().stop()

    def log_files(self) -> list[str]:
        extra = [f"{self.dir}/{n}.log" for n in ("ovn-controller", "ovn-northd")]
        return super().log_files() + [f for f in extra if os.path.exists(f)]
