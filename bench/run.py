"""`python -m bench`: one run, side by side.

  1. sandbox: OVS (netdev) + NB/SB + northd + ovn-controller programming br-int
  2. (a) ovn-controller answers: closed-loop capacity, 1k/s latency,
     put_arp at 5k/10k/s, DHCP/DNS latency under SB churn, CPU, RSS, then
     RSS with a big SB (10k DNS records, 100k MAC_Binding rows)
  3. `ovn-appctl exit --restart`; (c) the ceiling: the same loads reflected
     by one flow with no controller; the generator's own ceiling
  4. (b) pinctrl-daemon on the same br-int and SB: everything of (a)
  5. (d) split mode: the daemon with --proxy-rundir, ovn-controller again
     through it; capacity, latency, flow programming (split.py)
  6. the table (stdout, Markdown) and JSON lines (bench-results.jsonl)

BENCH_QUICK=1 (or --quick) shortens every step (< 4 minutes); --profile
runs only the daemon under py-spy (see profile.py).  Everything started is
stopped by pid, the netns deleted, also on Ctrl-C / SIGTERM.
"""

from __future__ import annotations

import argparse
import os
import platform
import resource
import signal
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

from . import ovsdb, plot, procstat
from .churn import Churn, ChurnRates
from .frames import WORKLOADS
from .loadgen import Generator, RunResult, match_cost_us
from .rawsock import open_in_netns
from .report import Results, json_lines, table
from .split import measure_split
from .topology import BenchSandbox, missing_prerequisites

REPO = Path(__file__).resolve().parents[1]
CAPACITY = ("dhcp", "dns", "tcp_rst", "arp_resolve")
LATENCY = ("dhcp", "dns", "tcp_rst", "arp_resolve")
CHURNED = ("dhcp", "dns")
PUT_ARP_RATES = (5000, 10000)
LR0_SW1 = "lr0-sw1"


@dataclass(frozen=True)
class Plan:
    repeats: int
    capacity_s: float
    latency_s: float
    put_arp_s: float
    churn_s: float
    big_dns: int
    big_mb: int
    settle_max_s: float


FULL = Plan(repeats=3, capacity_s=3.0, latency_s=4.0, put_arp_s=2.0, churn_s=5.0,
            big_dns=10000, big_mb=100000, settle_max_s=120.0)
QUICK = Plan(repeats=2, capacity_s=1.0, latency_s=1.5, put_arp_s=1.0, churn_s=2.0,
             big_dns=1000, big_mb=10000, settle_max_s=20.0)


def log(msg: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", flush=True)


def _self_cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


class Bench:
    """One run (the bench process's main thread; churn is another process)."""

    def __init__(self, plan: Plan, sb: BenchSandbox, res: Results) -> None:
        self.plan, self.sb, self.res = plan, sb, res
        self.gen: Generator | None = None
        self.sbc: ovsdb.Client | None = None
        self.nbc: ovsdb.Client | None = None

    def setup(self) -> None:
        self.gen = Generator({k: open_in_netns(self.sb.netns, v)
                              for k, v in self.sb.ifnames.items()})
        self.sbc = ovsdb.Client(self.sb.sb_db, "OVN_Southbound")
        self.nbc = ovsdb.Client(self.sb.nb_db, "OVN_Northbound")

    def close(self) -> None:
        for s in (self.gen.socks.values() if self.gen else ()):
            s.close()
        for c in (self.sbc, self.nbc):
            if c is not None:
                c.close()

    # ---------------------------------------------------------------- steps
    def warm_up(self, names=CAPACITY) -> None:
        """Every workload answered at least once (SB caches loaded)."""
        for name in names:
            deadline = time.monotonic() + 15
            while True:
                r = self.gen.closed_loop(WORKLOADS[name], 0.3, window=8)
                if r.answered or time.monotonic() > deadline:
                    break
            if not r.answered:
                raise RuntimeError(f"{name}: no answer during warm-up")

    def capacity(self, impl: str, pid: int | None, echo: bool = False) -> None:
        vsw = self.sb.vswitchd_pid()
        for name in CAPACITY:
            w = WORKLOADS[name]
            for _ in range(self.plan.repeats):
                before, vbefore, g0 = (procstat.sample(pid) if pid else None,
                                       procstat.sample(vsw), _self_cpu())
                r = self.gen.closed_loop(w, self.plan.capacity_s, window=64, echo=echo)
                self.record_closed(impl, name, w.title, r)
                cpu = procstat.cpu_delta(pid, before)
                if cpu is not None and r.answered:
                    self.res.add(f"{name}.cpu_per_answer", f"{w.title}: pinctrl CPU/answer",
                                 "µs", impl, cpu / r.answered * 1e6)
                vcpu = procstat.cpu_delta(vsw, vbefore)
                if vcpu is not None and r.answered:
                    self.res.add(f"{name}.vswitchd_cpu", f"{w.title}: ovs-vswitchd CPU/answer",
                                 "µs", impl, vcpu / r.answered * 1e6)
                if r.sent:
                    self.res.add(f"{name}.gen_cpu", f"{w.title}: generator CPU/request", "µs",
                                 impl, (_self_cpu() - g0) / r.sent * 1e6)
            log(f"{impl}: {name} closed loop {self._last(name + '.closed', impl):,.0f}/s")

    def record_closed(self, impl: str, name: str, title: str, r: RunResult) -> None:
        self.res.add(f"{name}.closed", f"{title}: answered/s (closed loop, ≤64 out)",
                     "/s", impl, r.rate)
        self.res.add(f"{name}.closed_loss", f"{title}: loss (closed loop)", "%", impl, r.loss)
        if r.rx_drops:
            self.res.notes.append(f"{impl} {name}: generator socket dropped {r.rx_drops}")

    def _last(self, key: str, impl: str) -> float:
        return self.res.figures[key].values[impl][-1]

    def latency(self, impl: str, names=LATENCY, tag: str = "", echo: bool = False) -> None:
        for name in names:
            w = WORKLOADS[name]
            for _ in range(self.plan.repeats):
                r = self.gen.open_loop(w, 1000, self.plan.latency_s if not tag
                                       else self.plan.churn_s, echo=echo)
                sfx = " under SB churn" if tag else ""
                self.res.add(f"{name}.p50{tag}", f"{w.title}: p50 at 1k/s{sfx}", "µs", impl,
                             r.percentile(50))
                self.res.add(f"{name}.p99{tag}", f"{w.title}: p99 at 1k/s{sfx}", "µs", impl,
                             r.percentile(99))
                self.res.add(f"{name}.loss1k{tag}", f"{w.title}: loss at 1k/s{sfx}", "%", impl,
                             r.loss)
                self.res.add_rtts(f"{name}{tag}", f"{w.title}: round trip at 1k/s{sfx}",
                                  impl, r.rtts_us)
            log(f"{impl}: {name} 1k/s{sfx} p50 {self._last(f'{name}.p50{tag}', impl):.0f} µs "
                f"p99 {self._last(f'{name}.p99{tag}', impl):.0f} µs")

    def put_arp(self, impl: str) -> None:
        w = WORKLOADS["put_arp"]
        for rate in PUT_ARP_RATES:
            for _ in range(self.plan.repeats):
                self._clear_mac_bindings()
                t0 = time.monotonic()
                r = self.gen.open_loop(w, rate, self.plan.put_arp_s, expect_answers=False)
                rows, t_last = self._wait_rows_stable(t0)
                loss = 1.0 - rows / r.sent if r.sent else None
                self.res.add(f"put_arp.{rate}.rate", f"put_arp at {rate // 1000}k/s offered: "
                             "bindings/s reaching SB", "/s", impl, rows / max(t_last - t0, 1e-3))
                self.res.add(f"put_arp.{rate}.loss", f"put_arp at {rate // 1000}k/s offered: "
                             "bindings lost", "%", impl, loss)
            log(f"{impl}: put_arp {rate}/s offered: loss "
                f"{self._last(f'put_arp.{rate}.loss', impl) * 100:.1f}%")
        self._clear_mac_bindings()

    def _clear_mac_bindings(self) -> None:
        ovsdb.delete_mac_bindings(self.sbc, LR0_SW1)

    def _wait_rows_stable(self, t0: float, quiet: float = 1.5, limit: float = 20.0
                          ) -> tuple[int, float]:
        """(MAC_Binding rows on lr0-sw1, when the count last changed)."""
        rows, t_last = -1, time.monotonic()
        while True:
            n = ovsdb.count_mac_bindings(self.sbc, LR0_SW1)
            now = time.monotonic()
            if n != rows:
                rows, t_last = n, now
            elif now - t_last >= quiet or now - t0 > limit:
                return rows, t_last
            time.sleep(0.1)

    def churn(self, impl: str) -> None:
        with Churn(self.sb.nb_db, self.sb.sb_db, ChurnRates()) as ch:
            time.sleep(1.0)         # let northd and the SB clients reach steady churn
            self.latency(impl, CHURNED, tag="_churn")
        got = ch.achieved()
        self.res.notes.append(f"{impl}: SB churn achieved (adds/s, deletes keep pools "
                              f"bounded): LSP {got['lsp']}, DNS {got['dns']}, "
                              f"MAC_Binding {got['mb']}")
        for name in CHURNED:
            for q in ("p50", "p99"):
                f = self.res.figures[f"{name}.{q}_churn"]
                base = self.res.figures[f"{name}.{q}"].median(impl)
                if base:
                    self.res.add(f"{name}.{q}_churn_ratio",
                                 f"{WORKLOADS[name].title}: {q} churn / no churn", "×", impl,
                                 f.median(impl) / base)

    def big_sb(self, impl: str, pid: int) -> None:
        """RSS once the SB holds big_dns DNS records and big_mb MAC_Bindings."""
        p = self.plan
        names = [f"big{i}.ovn.test" for i in range(p.big_dns)]
        dp = ovsdb.uuid_of(self.sbc, "Datapath_Binding",
                           [["external_ids", "includes", ovsdb.omap([["name", "lr0"]])]])
        t0 = time.monotonic()
        ovsdb.bulk_dns_records(self.nbc, "bench-dns", names)
        ovsdb.insert_mac_bindings(self.sbc, dp, LR0_SW1, (10 << 24) | (8 << 16), p.big_mb)
        settled = self._settle(pid, p.settle_max_s)
        s = procstat.sample(pid)
        key = f"{p.big_dns // 1000}k DNS records + {p.big_mb // 1000}k MAC_Binding"
        self.res.add("rss_big_sb", f"RSS with {key}", "MB", impl, s.rss_kb / 1024 if s else None)
        self.res.add("big_sb_settle", f"time to absorb {key}", "s", impl,
                     time.monotonic() - t0 if settled else None)
        log(f"{impl}: RSS with big SB {s.rss_kb / 1024 if s else 0:.0f} MB "
            f"({'settled' if settled else 'still busy'} after {time.monotonic() - t0:.0f} s)")
        self._clear_mac_bindings()
        ovsdb.bulk_dns_records(self.nbc, "bench-dns", names, remove=True)
        self._settle(pid, p.settle_max_s)

    @staticmethod
    def _settle(pid: int, limit: float) -> bool:
        """Until `pid` uses < 5% of a CPU over 1 s (or `limit` s pass)."""
        deadline = time.monotonic() + limit
        time.sleep(0.5)
        while time.monotonic() < deadline:
            a = procstat.sample(pid)
            time.sleep(1.0)
            b = procstat.sample(pid)
            if a is None or b is None or b.cpu_s - a.cpu_s < 0.05:
                return True
        return False

    def process_figs(self, impl: str, pid: int, cpu0: float) -> None:
        s = procstat.sample(pid)
        if s is None:
            return
        self.res.add("cpu_total", "pinctrl process CPU during the load steps", "s", impl,
                     s.cpu_s - cpu0)
        self.res.add("peak_rss", "pinctrl process peak RSS (VmHWM) after the load steps",
                     "MB", impl, s.hwm_kb / 1024)

    # ---------------------------------------------------------------- phases
    def measure(self, impl: str, pid: int) -> None:
        self.warm_up()
        cpu0 = procstat.sample(pid).cpu_s
        self.capacity(impl, pid)
        self.latency(impl)
        self.put_arp(impl)
        self.churn(impl)
        self.process_figs(impl, pid, cpu0)
        self.big_sb(impl, pid)

    def ceiling(self) -> None:
        for which in ("p1", "p4"):
            self.sb.add_reflect_flow(which)
        try:
            self.capacity("ceiling", None, echo=True)
            self.latency("ceiling", echo=True)
            w = WORKLOADS["dhcp"]
            send = self.gen.send_ceiling(w, 1.0)
            self.res.meta["generator_send_ceiling_per_s"] = round(send)
            self.res.meta["generator_match_us"] = round(match_cost_us(w), 3)
            log(f"generator: sends {send:,.0f} frames/s alone; recognising an answer costs "
                f"{match_cost_us(w):.2f} µs")
        finally:
            for which in ("p1", "p4"):
                self.sb.del_reflect_flow(which)


def _git_head() -> str:
    cp = subprocess.run(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"],
                        capture_output=True, text=True, check=False)
    return cp.stdout.strip()


def _on_sigterm(signum, frame) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def run(plan: Plan, quick: bool, results_path: Path, profile: bool,
        plot_path: Path = plot.DEFAULT_PNG) -> int:
    why = missing_prerequisites()
    if why:
        print(f"bench: cannot run: {why}", file=sys.stderr)
        return 2
    signal.signal(signal.SIGTERM, _on_sigterm)
    res = Results()
    res.meta.update({"quick": quick, "git": _git_head(), "host": platform.node(),
                     "cpus": os.cpu_count(), "python": platform.python_version(),
                     "time": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "plan": plan.__dict__,
                     "loadavg_start": os.getloadavg()[0]})
    sb = BenchSandbox()
    bench = Bench(plan, sb, res)
    t_start = time.monotonic()
    try:
        log(f"sandbox in {sb.dir}")
        sb.start()
        bench.setup()
        log(f"OVN up in {sb.timings['start']:.1f} s")
        if profile:
            from .profile import profile_daemon
            sb.controller_exit_restart()
            return profile_daemon(sb, bench)
        pid = sb.controller_pid()
        bench.measure("ovn-controller", pid)
        sb.controller_exit_restart()
        log("ovn-controller exited with --restart; its flows stay in br-int")
        bench.ceiling()
        dmn = sb.daemon(file_level="info").start(wait=True, timeout=30)
        log(f"pinctrl-daemon connected in {dmn.connect_time:.1f} s")
        bench.measure("pinctrl-daemon", dmn.popen.pid)
        dmn.stop()
        measure_split(bench, quick)
    except KeyboardInterrupt:
        log("interrupted: stopping everything")
        return 130
    except Exception:
        print(sb.log_tails(15), file=sys.stderr)
        raise
    finally:
        bench.close()
        sb.stop()
    res.meta["seconds"] = round(time.monotonic() - t_start)
    res.meta["loadavg_end"] = os.getloadavg()[0]
    run_id = uuid.uuid4().hex[:12]
    print()
    print(f"## pinctrl-daemon vs ovn-controller 23.03 (run {run_id}, git {res.meta['git']}, "
          f"{'QUICK, ' if quick else ''}{plan.repeats} runs each: median (min–max))")
    print()
    print(table(res))
    print()
    for n in _honesty(res) + res.notes:
        print(f"* {n}")
    lines = json_lines(res, run_id)
    with open(results_path, "a") as f:
        f.writelines(line + "\n" for line in lines)
    log(f"appended to {results_path}; {res.meta['seconds']} s in all")
    log(plot.write_png(lines, plot_path))
    return 0


def _honesty(res: Results) -> list[str]:
    m = res.meta
    out = [f"{m['cpus']} CPUs shared by ovs-vswitchd, the pinctrl process, northd, the NB/SB "
           "ovsdb-servers and this generator: all figures are this machine's, compare ratios. "
           f"1-min load average {m['loadavg_start']:.2f} at the start, "
           f"{m.get('loadavg_end', 0):.2f} at the end (anything above ~1 means other work "
           "shared the CPUs: rerun on a quiet machine)."]
    if "generator_send_ceiling_per_s" in m:
        out.append(f"generator alone: {m['generator_send_ceiling_per_s']:,} frames/s sent "
                   f"(sendmmsg, 64/batch), {m['generator_match_us']} µs to recognise an answer;"
                   " the ceiling rows are the whole harness (generator + ovs-vswitchd) with a "
                   "reflecting flow instead of a controller")
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true",
                    default=os.environ.get("BENCH_QUICK") == "1",
                    help="shortened run (also BENCH_QUICK=1)")
    ap.add_argument("--profile", action="store_true",
                    help="only profile pinctrl-daemon's hot path under load with py-spy")
    ap.add_argument("--results", default=str(REPO / "bench-results.jsonl"))
    ap.add_argument("--plot", default=str(plot.DEFAULT_PNG),
                    help="PNG of the run: capacity and latency CDFs (bench/plot.py)")
    a = ap.parse_args(argv)
    return run(QUICK if a.quick else FULL, a.quick, Path(a.results), a.profile,
               Path(a.plot))
