"""Smoke test of `make bench`'s machinery (bench/): the OVN sandbox with real
northd + ovn-controller, the raw-socket generator, take-over by
pinctrl-daemon, the table.  A second of DHCP load per implementation."""

from __future__ import annotations

import pytest

from bench.frames import WORKLOADS
from bench.report import Results, table
from bench.run import QUICK, Bench
from bench.topology import BenchSandbox, missing_prerequisites
from testbed.daemon_under_test import daemon_unavailable
from tests.helpers import unavailable

pytestmark = pytest.mark.integration


def test_bench_counts_answers_of_both_implementations():
    why = missing_prerequisites() or daemon_unavailable()
    if why:
        unavailable(why)
    sb = BenchSandbox()
    res = Results()
    bench = Bench(QUICK, sb, res)
    w = WORKLOADS["dhcp"]
    try:
        sb.start()
        bench.setup()
        for impl in ("ovn-controller", "pinctrl-daemon"):
            if impl == "pinctrl-daemon":
                sb.controller_exit_restart()
                assert sb.controller_pid() is None
                sb.daemon(file_level="info").start(wait=True, timeout=20)
            bench.warm_up(("dhcp",))
            r = bench.gen.closed_loop(w, 1.0, window=16)
            bench.record_closed(impl, "dhcp", w.title, r)
            assert r.sent >= r.answered > 100, (impl, r.sent, r.answered)
            assert len(r.rtts_us) == r.answered and r.percentile(99) > 0
        row = next(l for l in table(res).splitlines() if "answered/s" in l)
        assert row.count("×") == 1, row          # daemon/ovn ratio, no ceiling measured
    finally:
        bench.close()
        sb.stop()
    assert sb.netns is None
