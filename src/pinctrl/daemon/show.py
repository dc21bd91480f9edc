"""What the daemon tells operators: the pinctrl/show text, the systemd
STATUS= line, pinctrl/dns-cache, memory/show and coverage/show.

The formatting is pure: the daemon gathers the figures (a ShowReport, a
few strings) and these functions only turn them into text, so the exact
output is pinned by unit tests.  The commands run in the main thread.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from typing import Any, Mapping, Protocol, Sequence

import ovs.db.idl

from pinctrl.daemon.keepalive import ALIVE, ThreadHealth
from pinctrl.handler_thread import THREAD_NAME
from pinctrl.support import appctl, coverage
from pinctrl.support.appctl import CommandContext


@dataclass(frozen=True)
class ShowReport:
    """pinctrl/show's figures, gathered by the daemon (main thread)."""
    chassis: str | None
    chassis_found: bool             # a Chassis row of that name in the SB
    bridge: str | None
    openflow_state: str             # OfConn.state
    openflow_target: str | None
    openflow_connects: int
    openflow_last_error: str
    sb_connected: bool
    sb_remotes: str                 # as configured (comma-separated)
    sb_server: str                  # the remote the IDL talks to now
    sb_server_role: str             # sb_server_info()
    sb_rows: Mapping[str, Any]      # SbSync.summary
    caches: Mapping[str, int]
    health: Sequence[ThreadHealth]
    systemd: str                    # systemd_text()
    metrics_url: str | None
    uptime_s: int
    split_mode: Sequence[str] = ()  # split_mode.SplitMode.show_lines()
    json_parser: str = ""           # support/runtime.json_parser()


class ShowContext(CommandContext, Protocol):
    def show_report(self) -> ShowReport: ...


class MemoryContext(CommandContext, Protocol):
    def databases(self) -> Mapping[str, ovs.db.idl.Idl]:
        """Database name -> its IDL, for the replicated databases."""
        ...


def format_show(r: ShowReport) -> str:
    """Pure.  pinctrl/show's text, one 'Name: value' line each."""
    lines = [
        f"Chassis: {r.chassis or '(unknown)'}"
        + ("" if r.chassis_found else " (no Chassis row in the Southbound DB)"),
        f"Bridge: {r.bridge}",
        f"OpenFlow: {r.openflow_state}"
        + (f" ({r.openflow_target}, OpenFlow 1.5)" if r.openflow_target
           else ""),
        f"OpenFlow connections: {r.openflow_connects}"
        + (f", last error: {r.openflow_last_error}"
           if r.openflow_last_error else ""),
        (f"Southbound: {'connected' if r.sb_connected else 'connecting'}"
         f" ({r.sb_remotes}, leader-only: false)"),
        f"Southbound server: {r.sb_server} ({r.sb_server_role})",
        *([f"OVSDB JSON parser: {r.json_parser}"] if r.json_parser else []),
        (f"Southbound rows: {r.sb_rows.get('datapaths', 0)} datapaths, "
         f"{r.sb_rows.get('port_bindings', 0)} port bindings, "
         f"{r.sb_rows.get('dns_rows', 0)} DNS rows"),
        "Caches: " + ", ".join(f"{k} {v}" for k, v in sorted(
            r.caches.items())),
        f"Handler thread: {health_text(r.health, THREAD_NAME)}",
        "Threads: " + ", ".join(str(t) for t in r.health),
        f"systemd: {r.systemd}",
    ]
    if r.metrics_url is not None:
        lines.append(f"Metrics: {r.metrics_url}")
    lines += r.split_mode
    lines.append(f"Uptime: {r.uptime_s} s")
    return "\n".join(lines) + "\n"


def health_text(health: Sequence[ThreadHealth], name: str) -> str:
    """Pure.  One thread's state without its name, or 'unknown'."""
    for t in health:
        if t.name == name:
            return str(t).split(": ", 1)[1]
    return "unknown"


def systemd_text(enabled: bool, ready: bool,
                 watchdog_s: float | None) -> str:
    """Pure.  pinctrl/show's systemd line."""
    if not enabled:
        return "not under systemd"
    return (("ready" if ready else "starting")
            + (f", watchdog every {watchdog_s:g} s" if watchdog_s
               else ", no watchdog"))


def status_line(ready: bool, sb_state: str, of_state: str,
                health: Sequence[ThreadHealth]) -> str:
    """Pure.  One line for systemd's STATUS= (changes only with the
    state, so it is sent only on state changes)."""
    bad = [f"thread {h.name} {h.state}" for h in health if h.state != ALIVE]
    head = "; ".join(bad) + "; " if bad else ""
    return (f"{head}{'ready' if ready else 'starting'}: "
            f"Southbound {sb_state}, OpenFlow {of_state}")


def sb_server_info(idl: Any, db_name: str) -> str:
    """How the Southbound server we talk to describes itself in its _Server
    database: 'standalone', 'clustered, leader', 'clustered, follower',
    'relay', or 'unknown' before the IDL has read it."""
    tables = getattr(idl, "server_tables", None) or {}
    table = tables.get("Database")
    if table is None:
        return "unknown"
    for row in list(table.rows.values()):
        if getattr(row, "name", None) != db_name:
            continue
        model = getattr(row, "model", "?")
        if model != "clustered":
            return str(model)
        role = "leader" if getattr(row, "leader", False) else "follower"
        if not getattr(row, "connected", True):
            role += ", disconnected from the cluster"
        return f"clustered, {role}"
    return "unknown"


# --- DNS cache ---------------------------------------------------------------

def dns_name_count(dns_cache: Mapping[int, Mapping[bytes, Any]]) -> int:
    return sum(len(names) for names in dns_cache.values())


def _addresses(rec: Any) -> str:
    """A DnsRecord's addresses, or its value when it has none (PTR)."""
    addrs = [str(ipaddress.IPv4Address(a)) for a in rec.ipv4]
    addrs += [str(ipaddress.IPv6Address(a)) for a in rec.ipv6]
    if addrs:
        return " ".join(addrs)
    return str(rec.value.decode("utf-8", "replace"))


def format_dns_cache(dns_cache: Mapping[int, Mapping[bytes, Any]]) -> str:
    """Pure.  pinctrl/dns-cache: per datapath tunnel key, name -> addresses."""
    if not dns_cache:
        return "DNS cache is empty\n"
    lines = []
    for dp_key in sorted(dns_cache):
        names = dns_cache[dp_key]
        lines.append(f"datapath {dp_key} ({len(names)} names):")
        for name in sorted(names):
            lines.append(f"  {name.decode('utf-8', 'replace')} -> "
                         f"{_addresses(names[name])}")
    return "\n".join(lines) + "\n"


# --- memory/show -------------------------------------------------------------

def memory_counts(ctx: MemoryContext) -> dict[str, int]:
    """memory/show's counts (main thread)."""
    counts = {f"idl-cells-{name}": appctl.idl_cells(idl)
              for name, idl in ctx.databases().items()}
    shared = ctx.shared
    with shared.mutex:
        dns = shared.dns_cache
    for name, n in appctl.shared_sizes(shared).items():
        counts[name.replace("_", "-")] = n
    counts["dns-cache-names"] = dns_name_count(dns)
    for fn in appctl.MEMORY_REPORTERS:
        counts.update(fn(ctx))
    for key, field in (("rss-kB", "VmRSS"), ("peak-rss-kB", "VmHWM")):
        kb = appctl.proc_status_kb(field)
        if kb is not None:
            counts[key] = kb
    return counts


# --- the commands --------------------------------------------------------------

@appctl.command("pinctrl/show")
def _cmd_show(ctx: ShowContext, args: list[str]) -> str:
    """Connections, threads, caches (main thread)."""
    return format_show(ctx.show_report())


@appctl.command("coverage/show")
def _cmd_coverage(ctx: CommandContext, args: list[str]) -> str:
    return coverage.format_show()


@appctl.command("memory/show")
def _cmd_memory(ctx: MemoryContext, args: list[str]) -> str:
    return appctl.format_memory(memory_counts(ctx))


@appctl.command("pinctrl/dns-cache")
def _cmd_dns_cache(ctx: CommandContext, args: list[str]) -> str:
    with ctx.shared.mutex:
        cache = ctx.shared.dns_cache
    return format_dns_cache(cache)
