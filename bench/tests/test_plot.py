"""bench/plot.py and the JSON lines it reads (bench/report.py): a run's
capacity and latency CDFs come back from its lines, the last run by
default, and draw() writes a PNG of them."""

from __future__ import annotations

import json

import pytest

from bench import plot
from bench.report import CDF_P, Results, json_lines, quantiles


def fake_run(run_id: str, scale: float = 1.0) -> list[str]:
    """The JSON lines of a run with two workloads, three implementations."""
    res = Results()
    res.meta.update({"quick": True, "git": "abc1234", "cpus": 2,
                     "time": "2026-12-07T02:00:00+0000", "loadavg_start": 0.4})
    for name, title in (("dhcp", "DHCPv4 DISCOVER->OFFER"),
                        ("dns", "DNS A query")):
        for impl, rate, rtt in (("ovn-controller", 30000, 300),
                                ("pinctrl-daemon", 15000, 900),
                                ("ceiling", 140000, 100)):
            for k in (0.9, 1.1):
                res.add(f"{name}.closed", f"{title}: answered/s (closed loop)",
                        "/s", impl, rate * k * scale)
            res.add(f"{name}.p99", f"{title}: p99 at 1k/s", "µs", impl, rtt)
            res.add_rtts(name, f"{title}: round trip at 1k/s", impl,
                         [rtt * (1 + i / 100) for i in range(200)])
        res.add_rtts(f"{name}_churn", f"{title}: round trip under churn",
                     "pinctrl-daemon", [5000.0])
    return json_lines(res, run_id)


def parsed(*runs: list[str]) -> list[dict]:
    return [json.loads(s) for lines in runs for s in lines]


def test_quantiles_nearest_rank():
    values = [5, 1, 4, 2, 3]
    assert quantiles(values, [0.0, 0.2, 0.5, 0.99, 1.0]) == [1, 2, 3, 5, 5]


def test_cdf_lines_in_the_results():
    cdfs = [d for d in parsed(fake_run("r1")) if d["kind"] == "cdf"]
    assert len(cdfs) == 2 * 3 + 2                 # + the churn runs
    dhcp = next(d for d in cdfs if d["metric"] == "dhcp"
                and d["impl"] == "pinctrl-daemon")
    assert dhcp["n"] == 200 and dhcp["p"] == CDF_P
    assert dhcp["us"][0] == 900 and dhcp["us"][-1] == pytest.approx(900 * 2.99)
    assert dhcp["us"] == sorted(dhcp["us"])


def test_load_run_last_by_default():
    lines = parsed(fake_run("old", scale=0.5), fake_run("new"))
    data = plot.load_run(lines)
    assert data.run == "new" and data.meta["git"] == "abc1234"
    assert list(data.capacity) == ["dhcp", "dns"]
    title, by_impl = data.capacity["dhcp"]
    assert title == "DHCPv4 DISCOVER->OFFER"
    assert by_impl["ovn-controller"] == pytest.approx((30000, 27000, 33000))
    assert set(data.cdfs) == {"dhcp", "dns"}        # churn runs left out
    ps, us = data.cdfs["dns"][1]["ceiling"]
    assert ps == CDF_P and us[0] == 100
    old = plot.load_run(lines, "old")
    assert old.capacity["dhcp"][1]["ceiling"][0] == pytest.approx(70000)


def test_load_run_unknown():
    with pytest.raises(LookupError):
        plot.load_run(parsed(fake_run("a")), "b")
    with pytest.raises(LookupError):
        plot.load_run([])


def test_subtitle():
    data = plot.load_run(parsed(fake_run("r1")))
    assert plot.subtitle(data) == ("run r1, git abc1234, 2026-12-07 02:00, "
                                   "BENCH_QUICK, 2 CPUs, load 0.40")


def test_draw_writes_a_png(tmp_path):
    pytest.importorskip("matplotlib")
    from matplotlib.image import imread
    out = plot.draw(plot.load_run(parsed(fake_run("r1"))),
                    tmp_path / "sub" / "run.png")
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    height, width = imread(out).shape[:2]
    assert width > 400 and height > 400


def test_write_png_without_matplotlib(tmp_path, monkeypatch):
    def no_matplotlib(data, path):
        raise ImportError("No module named 'matplotlib'")
    monkeypatch.setattr(plot, "draw", no_matplotlib)
    msg = plot.write_png(fake_run("r1"), tmp_path / "x.png")
    assert msg.startswith("plot skipped: matplotlib is not installed")
    assert not (tmp_path / "x.png").exists()


def test_main_draws_the_last_run(tmp_path):
    pytest.importorskip("matplotlib")
    results = tmp_path / "results.jsonl"
    results.write_text("\n".join(fake_run("a") + fake_run("b")) + "\n")
    out = tmp_path / "p.png"
    assert plot.main(["--results", str(results), "--output", str(out)]) == 0
    assert out.stat().st_size > 10000
