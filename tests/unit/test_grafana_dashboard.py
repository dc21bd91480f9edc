"""packaging/grafana-dashboard.json queries only what the daemon exports.

The exported side is a real scrape's text: daemon/metrics.Collector
reading daemon/context.MetricsView over the daemon's real parts (its
Supervisor's gauges with every Southbound writer's backlog, SharedState's
queues, the handler's histogram).  The
dashboard side is every PromQL expression of its panels and template
variables: each metric must be exported, with the labels it is grouped or
matched by, and a label value it names (queue="...", counter=~"...") must
be one the daemon can report.  And every exported family is on a panel."""

from __future__ import annotations

import ast
import importlib
import inspect
import json
import pkgutil
import re
from pathlib import Path
from types import SimpleNamespace

import pytest
from prometheus_client import CollectorRegistry, generate_latest

import pinctrl.db.writers
from pinctrl.actions import REGISTRY, load_all
from pinctrl.daemon import metrics
from pinctrl.daemon.context import MetricsView
from pinctrl.daemon.keepalive import KeepAlive
from pinctrl.daemon.sd_notify import Notifier
from pinctrl.daemon.supervisor import OF_CONNECTED, SB_SYNCED, Supervisor
from pinctrl.handler.latency import UNKNOWN, DispatchLatency
from pinctrl.shared.state import SharedState
from pinctrl.support import coverage
from tests.unit.test_latency import golden_dhcp_packet_in

ROOT = Path(__file__).resolve().parents[2]
DASHBOARD = ROOT / "packaging" / "grafana-dashboard.json"
SRC = ROOT / "src" / "pinctrl"

# Labels Prometheus adds to every series at scrape time.
TARGET_LABELS = {"instance", "job"}


# --- the daemon's side -------------------------------------------------------

def writer_names() -> set[str]:
    """The Southbound writers' names (db/writers/: TxnLoop.backlog()'s
    keys)."""
    out = set()
    for mod in pkgutil.iter_modules(pinctrl.db.writers.__path__):
        m = importlib.import_module(f"pinctrl.db.writers.{mod.name}")
        for cls in vars(m).values():
            if inspect.isclass(cls) and cls.__module__ == m.__name__ and \
                    hasattr(cls, "collect") and \
                    isinstance(getattr(cls, "name", None), str):
                out.add(cls.name)
    out.discard("?")
    assert out
    return out


def daemon_parts() -> SimpleNamespace:
    """What MetricsView reads of a ready daemon whose handler dispatched
    one packet-in and whose every Southbound writer has a backlog."""
    keepalive = KeepAlive(5.0, clock=lambda: 0.0)
    keepalive.register("main")
    sup = Supervisor(keepalive, Notifier(env={}), started=0.0)
    sup.run(1.0, SB_SYNCED, OF_CONNECTED,
            backlog={name: (1, 0.5) for name in writer_names()})
    latency = DispatchLatency()
    latency.observe(golden_dhcp_packet_in(), 4e-5)
    handler = SimpleNamespace(openflow_tx_bytes=lambda: 0,
                              buffered_packets_summary=lambda: (0, 0))
    return SimpleNamespace(sup=sup, latency=latency, shared=SharedState(),
                           handler=handler)


def scrape_text() -> str:
    """The exposition text of a scrape of daemon_parts()."""
    coverage.inc("pinctrl_total_pin_pkts", 0)   # the family has a sample
    reg = CollectorRegistry(auto_describe=False)
    reg.register(metrics.Collector(MetricsView(daemon_parts())))
    return generate_latest(reg).decode()


_SAMPLE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? ")
_LABEL = re.compile(r'([a-zA-Z_]\w*)="((?:[^"\\]|\\.)*)"')


def exported() -> tuple[dict[str, set[str]], dict[str, set[str]]]:
    """({sample name: its label names}, {family: its sample names})."""
    samples: dict[str, set[str]] = {}
    families: dict[str, set[str]] = {}
    family = None
    for line in scrape_text().splitlines():
        if line.startswith("# TYPE "):
            family = line.split()[2]
            families[family] = set()
            continue
        m = _SAMPLE.match(line)
        if m:
            labels = {k for k, _ in _LABEL.findall(m.group(2) or "")}
            samples.setdefault(m.group(1), set()).update(labels)
            assert family is not None
            families[family].add(m.group(1))
    return samples, families


def coverage_names() -> set[str]:
    """Every name a coverage counter can have: the identifier-like string
    constants of src/pinctrl and the constant heads of its f-strings
    (f"pinctrl_not_implemented_{name}" gives "pinctrl_not_implemented_")."""
    out = set()
    for path in SRC.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.JoinedStr) and node.values and \
                    isinstance(node.values[0], ast.Constant):
                node = node.values[0]
            if isinstance(node, ast.Constant) and isinstance(node.value, str) \
                    and re.fullmatch(r"[a-z][a-z0-9_]*", node.value):
                out.add(node.value)
    return out


def label_values() -> dict[str, set[str]]:
    """The values the daemon can report, per label a query may name."""
    load_all()
    return {
        "queue": set(MetricsView(daemon_parts()).queue_depths()),
        "counter": coverage_names(),
        "opcode": {a.name for a in REGISTRY.values()} | {UNKNOWN},
    }


# --- the dashboard's side ------------------------------------------------------

def dashboard() -> dict:
    return json.loads(DASHBOARD.read_text())


def panels(d: dict) -> list[dict]:
    """Every panel, those inside rows included."""
    out = []
    for p in d["panels"]:
        out.append(p)
        out += p.get("panels", [])
    return out


def expressions(d: dict) -> list[str]:
    exprs = [t["expr"] for p in panels(d) for t in p.get("targets", [])]
    for var in d.get("templating", {}).get("list", []):
        q = var.get("query")
        if var.get("type") == "query":
            exprs.append(q["query"] if isinstance(q, dict) else q)
    return exprs


_STRING = r'"(?:[^"\\]|\\.)*"'
_MATCHER = re.compile(r"([a-zA-Z_]\w*)\s*(=~|!~|!=|=)\s*(" + _STRING + ")")
_GROUPING = re.compile(
    r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\(([^)]*)\)")
_IDENT = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*")
_KEYWORDS = {"by", "without", "on", "ignoring", "group_left", "group_right",
             "and", "or", "unless", "offset", "bool", "inf", "nan"}


@pytest.mark.parametrize("expr, want", [
    ('sum by (opcode, le) (rate(a_bucket{instance=~"$i"}[$__rate_interval]))',
     ({"a_bucket"}, [("instance", "=~", "$i")], {"opcode", "le"})),
    ('a{q="x", c=~"y|z"} / on(q) b', ({"a", "b"},
                                      [("q", "=", "x"), ("c", "=~", "y|z")],
                                      {"q"})),
    ("histogram_quantile(0.99, x)", ({"x"}, [], set())),
    ("label_values(m, instance)", ({"m", "instance"}, [], set())),
])
def test_parse_promql(expr, want):
    assert parse_promql(expr) == want


def parse_promql(expr: str) -> tuple[set[str], list[tuple[str, str, str]],
                                      set[str]]:
    """(metric names, label matchers, grouping labels) of a PromQL
    expression: enough of PromQL for a dashboard's queries."""
    matchers = [(k, op, json.loads(v)) for k, op, v in _MATCHER.findall(expr)]
    grouping = {label.strip() for g in _GROUPING.findall(expr)
                for label in g.split(",") if label.strip()}
    rest = re.sub(r"\{[^}]*\}|\[[^\]]*\]|" + _STRING, " ", expr)
    rest = _GROUPING.sub(" ", rest)
    names = set()
    for m in _IDENT.finditer(rest):
        after = rest[m.end():].lstrip()
        if m.group() not in _KEYWORDS and not after.startswith("("):
            names.add(m.group())
    return names, matchers, grouping


# --- the test -------------------------------------------------------------------

def test_dashboard_queries_only_exported_metrics():
    samples, _ = exported()
    values = label_values()
    exprs = expressions(dashboard())
    assert exprs
    for expr in exprs:
        names, matchers, grouping = parse_promql(expr)
        if expr.startswith("label_values("):
            names -= TARGET_LABELS
        assert names, f"no metric in {expr!r}"
        labels = set().union(*(samples.get(n, set()) for n in names))
        for name in names:
            assert name in samples, f"{expr!r}: {name} is not exported " \
                f"(the daemon exports {sorted(samples)})"
        for label in grouping | {k for k, _, _ in matchers}:
            assert label in labels | TARGET_LABELS, \
                f"{expr!r}: no label {label} on {sorted(names)}"
        for label, op, value in matchers:
            if label in TARGET_LABELS:
                continue
            assert label in values, f"{expr!r}: test knows no {label} values"
            known = values[label]
            if op in ("=", "!="):
                assert value in known, f"{expr!r}: {label}={value!r} is " \
                    "never reported"
            elif re.fullmatch(r"[\w|]+", value):    # a list of names
                for alt in value.split("|"):
                    assert alt in known, f"{expr!r}: {label} {alt!r} is " \
                        "never reported"
            else:
                assert any(re.fullmatch(value, v) for v in known), \
                    f"{expr!r}: {label}=~{value!r} matches nothing reported"


def test_every_exported_family_is_on_the_dashboard():
    _, families = exported()
    used = set().union(*(parse_promql(e)[0] for e in expressions(dashboard())))
    for family, names in families.items():
        assert names & used, f"{family} ({sorted(names)}) is on no panel"


def test_dashboard_shape():
    """Importable: unique panel ids, a grid position each, every query on
    the dashboard's Prometheus data source variable."""
    d = dashboard()
    assert d["uid"] == "pinctrl-daemon" and d["schemaVersion"] >= 36
    ids = [p["id"] for p in panels(d)]
    assert len(ids) == len(set(ids))
    variables = {v["name"]: v for v in d["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource"
    assert variables["datasource"]["query"] == "prometheus"
    for p in panels(d):
        assert set(p["gridPos"]) == {"x", "y", "w", "h"}, p["title"]
        assert p["gridPos"]["x"] + p["gridPos"]["w"] <= 24, p["title"]
        if p["type"] == "row":
            continue
        assert p["targets"], p["title"]
        for t in p["targets"]:
            assert t["datasource"]["uid"] == "${datasource}", p["title"]
            assert 'instance=~"$instance"' in t["expr"], p["title"]
