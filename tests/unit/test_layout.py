"""The thread contract, as the tree states it (docs/architecture.md).

Reads every module's imports with `ast` (function-level and TYPE_CHECKING
imports included: a type-only import still couples the two sides) and
fails naming each import that crosses a line:

  handler side (handler/, actions/, handler_thread)  never imports  db/, sb_sync
  main side (db/, sb_sync)                            never imports  handler/, actions/, handler_thread
  actions/                                            never imports  handler/ (no upward import)
  proxy/ (split mode's OpenFlow proxy, its own thread) imports no thread side, daemon or main;
                                                      the handler and main sides never import it
  shared/, packet/, openflow/, support/               import no thread-side or daemon module
"""

from __future__ import annotations

import ast
import pathlib

import pytest

SRC = pathlib.Path(__file__).resolve().parents[2] / "src"
PKG = SRC / "pinctrl"

HANDLER_SIDE = ("pinctrl.handler", "pinctrl.actions", "pinctrl.handler_thread")
MAIN_SIDE = ("pinctrl.db", "pinctrl.sb_sync")
PROXY_SIDE = ("pinctrl.proxy",)
NEUTRAL = ("pinctrl.shared", "pinctrl.packet", "pinctrl.openflow",
           "pinctrl.support")
DAEMON = ("pinctrl.daemon", "pinctrl.main")
UPPER = HANDLER_SIDE + MAIN_SIDE + PROXY_SIDE + DAEMON


def _under(module: str, prefixes: tuple[str, ...]) -> bool:
    return any(module == p or module.startswith(p + ".") for p in prefixes)


def _module_name(path: pathlib.Path) -> str:
    parts = list(path.relative_to(SRC).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _imports(path: pathlib.Path) -> list[tuple[int, str]]:
    """(line, imported module) for every import; `from pinctrl.x import y`
    yields pinctrl.x.y too, so importing a submodule by name is seen."""
    tree = ast.parse(path.read_text(), str(path))
    me = _module_name(path)
    package = me if path.name == "__init__.py" else me.rpartition(".")[0]
    out: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out += [(node.lineno, a.name) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                up = package.split(".")[:len(package.split(".")) - node.level + 1]
                base = ".".join(up + ([base] if base else []))
            out.append((node.lineno, base))
            out += [(node.lineno, f"{base}.{a.name}") for a in node.names]
    return [(ln, m) for ln, m in out if m.startswith("pinctrl")]


def _rules(importer: str) -> list[tuple[tuple[str, ...], str]]:
    """The (forbidden prefixes, rule name) that apply to 'importer'."""
    rules = []
    if _under(importer, HANDLER_SIDE):
        rules.append((MAIN_SIDE, "the handler side never imports the main side"))
    if _under(importer, MAIN_SIDE):
        rules.append((HANDLER_SIDE,
                      "the main side never imports the handler side"))
    if _under(importer, HANDLER_SIDE + MAIN_SIDE):
        rules.append((PROXY_SIDE, "the thread sides never import proxy/"))
    if _under(importer, PROXY_SIDE):
        rules.append((HANDLER_SIDE + MAIN_SIDE + DAEMON,
                      "proxy/ imports no thread side, daemon or main "
                      "(the daemon passes in what it owns)"))
    if _under(importer, ("pinctrl.actions",)):
        rules.append((("pinctrl.handler", "pinctrl.handler_thread"),
                      "actions/ never imports upward into handler/"))
    if _under(importer, NEUTRAL):
        rules.append((UPPER, "shared/, packet/, openflow/ and support/ "
                             "import no thread-side module"))
    return rules


def violations(root: pathlib.Path = PKG) -> list[str]:
    found = []
    for path in sorted(root.rglob("*.py")):
        me = _module_name(path)
        for lineno, imported in _imports(path):
            for forbidden, rule in _rules(me):
                if _under(imported, forbidden):
                    found.append(f"{path.relative_to(SRC)}:{lineno}: "
                                 f"imports {imported} ({rule})")
    return sorted(set(found))


def test_thread_sides_meet_only_in_shared():
    bad = violations()
    assert not bad, "imports crossing the thread contract:\n" + "\n".join(bad)


def test_every_module_is_in_a_side_folder():
    """Top-level modules are only the three the design card names."""
    top = {p.name for p in PKG.glob("*.py")}
    assert top == {"__init__.py", "main.py", "handler_thread.py",
                   "sb_sync.py"}


@pytest.mark.parametrize("folder, source, rule", [
    ("actions", "from pinctrl.db.txn import TxnLoop\n",
     "handler side never imports"),
    ("actions", "import pinctrl.handler.dispatch\n",
     "actions/ never imports upward"),
    ("actions", "from pinctrl import sb_sync\n", "handler side never imports"),
    ("proxy", "from pinctrl.actions import REGISTRY\n",
     "proxy/ imports no thread side"),
    ("proxy", "from pinctrl.daemon import cli\n",
     "proxy/ imports no thread side"),
    ("handler", "from pinctrl.proxy.server import OfProxy\n",
     "never import proxy/"),
])
def test_checker_names_the_offending_import(tmp_path, folder, source, rule):
    """The checker itself: a module importing across the line is caught,
    with file, line and rule."""
    pkg = tmp_path / "pinctrl" / folder
    pkg.mkdir(parents=True)
    (pkg / "bad.py").write_text("x = 1\n" + source)
    global SRC
    saved, SRC = SRC, tmp_path
    try:
        bad = violations(tmp_path / "pinctrl")
    finally:
        SRC = saved
    assert any(b.startswith(f"pinctrl/{folder}/bad.py:2: imports ")
               and rule in b for b in bad), bad
