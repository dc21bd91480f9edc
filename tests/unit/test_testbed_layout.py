"""Who may import what outside src/, read with `ast` (imports inside
functions included):

  testbed/, bench/          never import tests (the test bed is shared,
                            tests are not); testbed/ never imports bench
  tests/unit/, bench/tests/ stay pure: none of the test bed's process
                            machinery (processes, netns, ovs_sandbox,
                            daemon_under_test, demo), no subprocess, no
                            integration test module; testbed.golden and
                            testbed.pcap are pure and allowed
  src/                      never imports testbed, tests or bench
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
PROCESS_MODULES = ("testbed.processes", "testbed.netns", "testbed.ovs_sandbox",
                   "testbed.daemon_under_test", "testbed.demo",
                   "testbed.live_sandbox", "subprocess",
                   "tests.integration")

RULES = [
    # (files, forbidden module prefixes)
    ("testbed", ("tests", "bench")),
    ("bench", ("tests",)),
    ("tests/unit", PROCESS_MODULES),
    ("bench/tests", PROCESS_MODULES),
    ("src", ("testbed", "tests", "bench")),
]


def absolute_imports(path: Path) -> set[str]:
    """Every module an absolute import in 'path' names, and for `from m
    import n` also m.n (n may be a submodule)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0:
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
    return found


def crossings(folder: str, forbidden: tuple[str, ...],
              root: Path = REPO) -> list[str]:
    out = []
    for path in sorted((root / folder).rglob("*.py")):
        for mod in sorted(absolute_imports(path)):
            if any(mod == f or mod.startswith(f + ".") for f in forbidden):
                out.append(f"{path.relative_to(root)} imports {mod}")
    return out


@pytest.mark.parametrize("folder,forbidden", RULES,
                         ids=[r[0] for r in RULES])
def test_imports_stay_on_their_side(folder, forbidden):
    assert crossings(folder, forbidden) == []


def test_the_rules_see_a_crossing(tmp_path):
    """The checker itself: a forbidden import, also as `from x import y`
    and inside a function, is reported."""
    (tmp_path / "unit").mkdir()
    (tmp_path / "unit" / "test_x.py").write_text(
        "import os\n"
        "from testbed import ovs_sandbox\n"
        "def f():\n"
        "    import subprocess\n")
    got = crossings("unit", PROCESS_MODULES, tmp_path)
    assert got == ["unit/test_x.py imports subprocess",
                   "unit/test_x.py imports testbed.ovs_sandbox"]
