"""(d) pinctrl-daemon in split mode beside a live ovn-controller: the
`split` column of `make bench`.

After the take-over run (b), the daemon starts again with --proxy-rundir
<dir>/split and ovn-controller 23.03 starts again with
OVS_RUNDIR=<dir>/split, so that it programs br-int through the daemon's
proxy while the daemon answers what it owns.  Measured, impl "split":

  * the workloads of (a) and (b): closed-loop capacity and 1k/s latency
    (Bench.capacity, Bench.latency);
  * flow programming: one NB transaction adds an address set of N
    addresses and a drop ACL on sw1 matching it (ovn-controller turns it
    into about N flows) and bumps nb_cfg, then another removes them.
    Timed from northd's Southbound change (the address set appears) until
    NB_Global.hv_cfg reaches that nb_cfg, which is what `ovn-nbctl
    --wait=hv` waits for: ovn-controller reports an nb_cfg once the
    barrier after its flows is answered (also from the NB commit, northd
    included).  Alternately direct (ovn-controller on the real
    br-int.mgmt, recorded under "ovn-controller") and through the proxy
    ("split"), in ABBA order, ovn-controller restarted (`exit
    --restart`) at each switch; split/ovn is the proxy's cost (target
    ≤ 1.2×);
  * DHCP DISCOVER->OFFER p99 at 1k/s while ovn-controller installs the N
    flows: through the proxy, the daemon answering ("split"), and direct
    with the daemon stopped, ovn-controller answering ("ovn-controller").

Flow-install times are noisy on a small shared machine: the figures are
medians (min–max) of the repeats, and the 1-min load average at the
start and end of the flow phase goes into the notes.

Bench process, main thread (one helper thread waits for hv_cfg while the
generator runs, see install_under_load).
"""

from __future__ import annotations

import os
import threading
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

from . import ovsdb, procstat
from .frames import WORKLOADS
from .loadgen import RunResult

if TYPE_CHECKING:
    from testbed.daemon_under_test import Daemon

    from .run import Bench

IMPL = "split"
DIRECT = "ovn-controller"
ADDRESS_SET = "bench_flows"
AS_BASE = (10 << 24) | (200 << 16)      # 10.200.0.0/14: no workload uses it
ACL_MATCH = f'outport == "sw1-p4" && ip4.src == ${ADDRESS_SET}'


@dataclass(frozen=True)
class SplitPlan:
    flows: int          # addresses in the set (about as many flows)
    installs: int       # timed installs per mode (direct, proxy)


FULL = SplitPlan(flows=50000, installs=6)
QUICK = SplitPlan(flows=20000, installs=2)


def abba(n: int) -> list[bool]:
    """Pure.  The order of 'n' measurements per mode, True = through the
    proxy: pairs alternate (proxy, direct), (direct, proxy), ... so that a
    drift in load weighs on both modes alike and ovn-controller restarts
    only when the mode changes.  Starts with the proxy, the mode it is
    in when the flow phase begins."""
    out: list[bool] = []
    for i in range(n):
        out += [True, False] if i % 2 == 0 else [False, True]
    return out


def add_ops(n: int) -> list[dict]:
    """Pure.  NB operations adding the address set of 'n' addresses and
    the drop ACL on sw1 that uses it."""
    return [
        {"op": "insert", "table": "Address_Set",
         "row": {"name": ADDRESS_SET, "addresses": ovsdb.oset(
             [ovsdb.ip_str(AS_BASE + i) for i in range(n)])}},
        {"op": "insert", "table": "ACL", "uuid-name": "acl",
         "row": {"direction": "to-lport", "priority": 1000,
                 "match": ACL_MATCH, "action": "drop"}},
        {"op": "mutate", "table": "Logical_Switch",
         "where": [["name", "==", "sw1"]],
         "mutations": [["acls", "insert", ovsdb.oset([["named-uuid", "acl"]])]]},
    ]


def remove_ops(acls: list[str]) -> list[dict]:
    """Pure.  NB operations removing what add_ops() added, given the
    ACL's row UUIDs (it goes with its last reference)."""
    return [
        {"op": "mutate", "table": "Logical_Switch",
         "where": [["name", "==", "sw1"]],
         "mutations": [["acls", "delete",
                        ovsdb.oset([["uuid", u] for u in acls])]]},
        {"op": "delete", "table": "Address_Set",
         "where": [["name", "==", ADDRESS_SET]]},
    ]


def bump_ops() -> list[dict]:
    """Pure.  nb_cfg += 1 and read it back (the last result)."""
    return [{"op": "mutate", "table": "NB_Global", "where": [],
             "mutations": [["nb_cfg", "+=", 1]]},
            {"op": "select", "table": "NB_Global", "where": [],
             "columns": ["nb_cfg"]}]


def wait_op(table: str, where: list, columns: list[str], rows: list[dict],
            timeout: float) -> dict:
    """Pure.  An OVSDB "wait" operation: the server answers once the rows
    'where' selects equal 'rows' (on 'columns'), or fails after
    'timeout' s."""
    return {"op": "wait", "timeout": int(timeout * 1000), "table": table,
            "where": where, "columns": columns, "until": "==", "rows": rows}


class FlowProgramming:
    """The N-flow change and its timing (one NB and one SB connection,
    used by one thread at a time)."""

    def __init__(self, nb: ovsdb.Client, sb: ovsdb.Client, n: int) -> None:
        self.nb, self.sb, self.n = nb, sb, n

    def commit(self, add: bool) -> int:
        """Add (or remove) the flows' NB rows and bump nb_cfg in one
        transaction; the nb_cfg to wait for."""
        if add:
            ops = add_ops(self.n)
        else:
            ops = remove_ops([r["_uuid"][1] for r in self.nb.select(
                "ACL", [["match", "==", ACL_MATCH]], ["_uuid"])])
        return self.nb.transact(*ops, *bump_ops())[-1]["rows"][0]["nb_cfg"]

    def wait_sb(self, present: bool, timeout: float = 120.0) -> None:
        """Until northd's copy of the address set is in (or out of) the
        Southbound DB: what ovn-controller reacts to."""
        rows = [{"name": ADDRESS_SET}] if present else []
        self.sb.transact(wait_op("Address_Set",
                                 [["name", "==", ADDRESS_SET]], ["name"],
                                 rows, timeout))

    def wait_hv(self, cfg: int, timeout: float = 120.0) -> None:
        """Until every chassis reported nb_cfg 'cfg' (`--wait=hv`):
        ovn-controller reports it once the barrier after its flows is
        answered."""
        self.nb.transact(wait_op("NB_Global", [], ["hv_cfg"],
                                 [{"hv_cfg": cfg}], timeout))

    def timed(self, add: bool) -> tuple[float, float]:
        """(s from the NB commit until ovn-controller reported it, s of
        that since the Southbound change).  The SB wait starts after the
        commit returns: northd, which needs longer, has not written yet."""
        t0 = time.monotonic()
        cfg = self.commit(add)
        self.wait_sb(add)
        t_sb = time.monotonic()
        self.wait_hv(cfg)
        t1 = time.monotonic()
        return t1 - t0, t1 - t_sb


def log(msg: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", flush=True)


class SplitRun:
    """Phase (d) of a bench run (see the module docstring)."""

    def __init__(self, bench: Bench, plan: SplitPlan) -> None:
        self.bench, self.sb, self.res = bench, bench.sb, bench.res
        self.plan = plan
        self.proxy_dir = f"{self.sb.dir}/split"
        self.flows = FlowProgramming(bench.nbc, bench.sbc, plan.flows)
        self.dmn: Daemon | None = None

    def controller(self, via_proxy: bool) -> None:
        """(Re)start ovn-controller, on the proxy or on br-int.mgmt; back
        once it caught up and went quiet."""
        if self.sb.controller_pid():
            self.sb.controller_exit_restart()
        saved = self.sb.env
        if via_proxy:
            self.sb.env = dict(saved, OVS_RUNDIR=self.proxy_dir)
        try:
            self.sb.start_controller()
        finally:
            self.sb.env = saved
        self.sb.nbctl("sync", wait="hv", timeout=60)
        self.bench._settle(self.sb.controller_pid(), 20.0)

    def run(self) -> None:
        self.dmn = self.sb.daemon(
            file_level="info", extra_args=["--proxy-rundir", self.proxy_dir])
        self.dmn.start(wait=True, timeout=30)
        self.controller(via_proxy=True)
        log("split: pinctrl-daemon --proxy-rundir up, ovn-controller "
            "programs br-int through it")
        pid = self.dmn.popen.pid
        self.bench.warm_up()
        cpu0 = procstat.sample(pid).cpu_s
        self.bench.capacity(IMPL, pid)
        self.bench.latency(IMPL)
        self.bench.process_figs(IMPL, pid, cpu0)
        self.flow_phase()

    def flow_phase(self) -> None:
        """Flow programming timed in both modes, then under DHCP load:
        through the proxy (the daemon answers), then direct with the
        daemon stopped (ovn-controller answers, as in (a))."""
        p, res = self.plan, self.res
        load0 = os.getloadavg()[0]
        before = self.flow_count()
        added = None
        current = True
        for via_proxy in abba(p.installs):
            if via_proxy != current:
                self.controller(via_proxy)
                current = via_proxy
            impl = IMPL if via_proxy else DIRECT
            t_nb, t_add = self.flows.timed(add=True)
            if added is None:
                added = self.flow_count() - before
            t_del = self.flows.timed(add=False)[1]
            n = f"{p.flows:,}"
            res.add("flow_install", f"ovn-controller installs {n} flows "
                    "(an ACL on an address set): SB change -> hv_cfg", "s",
                    impl, t_add)
            res.add("flow_install_nb", f"ovn-controller installs {n} flows: "
                    "NB commit -> hv_cfg (northd included)", "s", impl, t_nb)
            res.add("flow_remove", f"ovn-controller removes the {n} flows: "
                    "SB change -> hv_cfg", "s", impl, t_del)
            log(f"{impl}: {n}-flow install {t_add:.2f} s ({t_nb:.2f} s from "
                f"the NB commit), removal {t_del:.2f} s")
        loaded = max(1, p.installs // 2)
        for via_proxy in (True, False):
            if via_proxy != current:
                self.controller(via_proxy)
                current = via_proxy
            if not via_proxy and self.dmn is not None:
                self.dmn.stop()         # ovn-controller alone answers
            for _ in range(loaded):
                self.install_under_load(IMPL if via_proxy else DIRECT)
        load1 = os.getloadavg()[0]
        res.notes.append(
            f"split: flow programming timed {p.installs}× per mode in ABBA "
            f"order (ovn-controller restarted at each switch between "
            f"br-int.mgmt and the proxy), {loaded}× per mode under DHCP "
            f"load (direct: pinctrl-daemon stopped, ovn-controller answers); "
            f"{p.flows:,} addresses gave {added} flows; 1-min load average "
            f"{load0:.2f} at the start of the flow phase, {load1:.2f} at its "
            f"end.  On 2 shared CPUs the ratio moves with whatever else "
            f"runs: read the min–max.")

    def install_under_load(self, impl: str) -> None:
        """DHCP at 1k/s while ovn-controller installs the flows: this
        thread runs the generator, a helper thread waits for hv_cfg."""
        w = WORKLOADS["dhcp"]
        self.bench.warm_up(("dhcp",))
        cfg = self.flows.commit(add=True)
        t0 = time.monotonic()
        done: dict[str, float] = {}

        def wait() -> None:
            """Helper thread: blocks on the NB wait operation."""
            self.flows.wait_hv(cfg)
            done["t"] = time.monotonic() - t0

        th = threading.Thread(target=wait, name="bench-hv-wait", daemon=True)
        th.start()
        pooled = RunResult(w.name, "open", 1000, 0.0)
        while th.is_alive():
            r = self.bench.gen.open_loop(w, 1000, 0.2)
            pooled.sent += r.sent
            pooled.answered += r.answered
            pooled.duration += r.duration
            pooled.rtts_us.extend(r.rtts_us)
        th.join()
        self.flows.timed(add=False)
        if "t" not in done:
            raise RuntimeError("hv_cfg never reached the install's nb_cfg")
        n = f"{self.plan.flows:,}"
        self.res.add("flow_install_loaded", f"ovn-controller installs {n} "
                     "flows while DHCP runs at 1k/s", "s", impl, done["t"])
        self.res.add("dhcp.p99_install", f"{w.title}: p99 at 1k/s while "
                     f"ovn-controller installs {n} flows", "µs", impl,
                     pooled.percentile(99))
        self.res.add("dhcp.loss_install", f"{w.title}: loss at 1k/s while "
                     f"ovn-controller installs {n} flows", "%", impl,
                     pooled.loss)
        log(f"{impl}: DHCP p99 {pooled.percentile(99) or 0:.0f} µs while "
            f"{n} flows went in ({done['t']:.2f} s, {pooled.answered} "
            "answers)")

    def flow_count(self) -> int:
        out = self.sb.ofctl("dump-aggregate", "br-int")
        return int(out.rsplit("flow_count=", 1)[1].split()[0])


def measure_split(bench: Bench, quick: bool) -> None:
    """Phase (d): called by run.run() after the take-over daemon stopped
    (ovn-controller is not running then)."""
    SplitRun(bench, QUICK if quick else FULL).run()
