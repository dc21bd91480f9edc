"""tests/soak/figures.py: the soak table comes from what happened (issue
15: bindings_lost and crashes were hard-coded or computed after the
test had already asserted the daemon alive, so they were always 0)."""

from __future__ import annotations

from tests.soak.figures import Run, table

FAULTS_OUT = "..F.\n=== 1 failed, 3 passed in 40.1s ===\n"


def figures(records, runs) -> dict:
    return dict(table(records, runs))


def test_figures_come_from_the_records_and_the_runs():
    runs = {"faults": Run("faults", False, FAULTS_OUT, 40.1),
            "fuzz": Run("fuzz", True, "- 20 passing, 0 failing\n"
                        "- 30 passing examples, 0 failing\n1 passed in 1s",
                        1.0)}
    records = [
        {"test": "sb_restart", "faults": 5, "bindings": 50,
         "bindings_lost": 2, "crashes": 0, "finished": False},
        {"test": "switch", "faults": 1, "bindings": 20, "bindings_lost": 0,
         "crashes": 1, "finished": True},
        {"test": "tls", "faults": 1, "crashes": 0, "finished": True},
    ]
    f = figures(records, runs)
    assert f["bindings lost"] == 2
    assert f["crashes"] == 1
    # Neither the unfinished test nor the crashed one survived its faults.
    assert f["faults survived"] == 1
    assert f["inputs tried"] == 50 and f["  of which fuzzed"] == 50
    assert f["tests failed"] == 1
    assert f["tests without a record"] == 1         # 4 tests, 3 lines


def test_bindings_not_counted_are_not_reported_as_none_lost():
    runs = {"faults": Run("faults", False, FAULTS_OUT, 1.0)}
    records = [{"test": "sb_restart", "faults": 1, "bindings": 10,
                "bindings_lost": None, "crashes": 0, "finished": False}]
    lost = figures(records, runs)["bindings lost"]
    assert isinstance(lost, str) and "unknown" in lost and \
        "sb_restart" in lost


def test_a_run_that_died_without_a_summary_is_a_failure():
    r = Run("faults", False, "Segmentation fault\n", 1.0)
    assert r.failed == 1 and r.tests == 0
