"""ovs-appctl commands: an open registry plus the reports that several
commands and the metrics share.

Any module adds a command in one line (its own module, imported before
the daemon starts or later; both work):

    @appctl.command("pinctrl/mac-bindings")
    def _show_mac_bindings(ctx, args: list[str]) -> str: ...

and a memory/show contribution with

    appctl.register_memory(lambda ctx: {"mac-bindings": n})

'ctx' is the running main.Daemon: ctx.shared (SharedState: read it under
ctx.shared.mutex, take references, format outside), ctx.sb (SbSync),
ctx.handler (PinctrlHandler; its handler-private state is not for the main
thread).  Every command runs in the main thread (python-ovs's unixctl
server is part of the main loop) and returns the reply text; an exception
becomes an error reply, counted, never a dead daemon.
"""

from __future__ import annotations

import ipaddress
import threading
from dataclasses import dataclass
from typing import Any, Callable, Mapping

import ovs.unixctl
import ovs.vlog

from pinctrl.support import coverage
from pinctrl.support.log import RateLimit, rl_log

vlog = ovs.vlog.Vlog("appctl")
_rl = RateLimit(5, 5)

CommandFn = Callable[[Any, list[str]], str]
MemoryFn = Callable[[Any], Mapping[str, int]]


@dataclass(frozen=True)
class Command:
    name: str
    fn: CommandFn
    usage: str = ""
    min_args: int = 0
    max_args: int = 0


COMMANDS: dict[str, Command] = {}
MEMORY_REPORTERS: list[MemoryFn] = []
_ctx: Any = None


def register(name: str, fn: CommandFn, usage: str = "", min_args: int = 0,
             max_args: int = 0) -> None:
    """Add (or replace) command 'name'.  Effective at once if the daemon
    already serves (main thread, or at import time)."""
    cmd = Command(name, fn, usage, min_args, max_args)
    COMMANDS[name] = cmd
    if _ctx is not None:
        _install(cmd)


def command(name: str, usage: str = "", min_args: int = 0,
            max_args: int = 0) -> Callable[[CommandFn], CommandFn]:
    """Decorator form of register()."""
    def deco(fn: CommandFn) -> CommandFn:
        register(name, fn, usage, min_args, max_args)
        return fn
    return deco


def register_memory(fn: MemoryFn) -> None:
    """Add counts (name -> int) to memory/show (import time)."""
    MEMORY_REPORTERS.append(fn)


def install(ctx: Any) -> None:
    """Main thread, once the unixctl server exists: serve every command
    registered so far (and later ones) with 'ctx'."""
    global _ctx
    _ctx = ctx
    for cmd in COMMANDS.values():
        _install(cmd)


def _install(cmd: Command) -> None:
    def callback(conn, argv, aux) -> None:
        try:
            text = cmd.fn(_ctx, list(argv))
        except Exception as e:
            coverage.inc("appctl_command_error")
            rl_log(vlog, "err", _rl, f"{cmd.name}: {type(e).__name__}: {e}")
            conn.reply_error(f"{cmd.name} failed: {type(e).__name__}: {e}\n")
            return
        conn.reply(text)
    ovs.unixctl.command_register(cmd.name, cmd.usage, cmd.min_args,
                                 cmd.max_args, callback, None)


# --- reports (pure, given what the main thread hands them) -------------------

def shared_sizes(shared: Any) -> dict[str, int]:
    """Sizes of every sized field of SharedState (caches, queues), by field
    name, and its "n_<what>" counts as "<what>".  Generic on purpose:
    fields other features add show up in pinctrl/show, memory/show and the
    metrics without more code.  Any thread, without the mutex: len() of a
    container and an int read are atomic under the GIL."""
    out = {}
    names = getattr(type(shared), "__slots__", None) or vars(shared).keys()
    for name in names:
        value = getattr(shared, name, None)
        if (name.startswith("n_") and isinstance(value, int)
                and not isinstance(value, bool)):
            out[name[2:]] = value
            continue
        if isinstance(value, (str, bytes)) or not hasattr(value, "__len__"):
            continue
        try:
            out[name] = len(value)
        except TypeError:
            continue
    return out


def dns_name_count(dns_cache: Mapping[int, Mapping[bytes, Any]]) -> int:
    return sum(len(names) for names in dns_cache.values())


def _addresses(rec: Any) -> str:
    """A DnsRecord's addresses, or its value when it has none (PTR)."""
    addrs = [str(ipaddress.IPv4Address(a)) for a in rec.ipv4]
    addrs += [str(ipaddress.IPv6Address(a)) for a in rec.ipv6]
    if addrs:
        return " ".join(addrs)
    return rec.value.decode("utf-8", "replace")


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


def idl_cells(idl: Any) -> int:
    """Replicated cells (rows x columns) of an IDL, as OVS's
    idl-cells-<db> in memory/show."""
    return sum(len(t.rows) * len(t.columns) for t in idl.tables.values())


def proc_status_kb(field: str, path: str = "/proc/self/status") -> int | None:
    """A '... kB' field of /proc/self/status (VmRSS, VmHWM), or None."""
    try:
        with open(path) as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        pass
    return None


def format_memory(counts: Mapping[str, int]) -> str:
    """Pure.  OVS's memory/show format: 'name:value' pairs on one line,
    sorted by name."""
    return " ".join(f"{k}:{v}" for k, v in sorted(counts.items())) + "\n"


def memory_counts(ctx: Any) -> dict[str, int]:
    """memory/show's counts (main thread)."""
    counts: dict[str, int] = {}
    for db in (getattr(ctx, "sb", None), getattr(ctx, "ovs_cfg", None)):
        idl = getattr(db, "idl", None)
        if idl is not None:
            counts[f"idl-cells-{idl._db.name}"] = idl_cells(idl)
    shared = ctx.shared
    with shared.mutex:
        dns = getattr(shared, "dns_cache", {})
    for name, n in shared_sizes(shared).items():
        counts[name.replace("_", "-")] = n
    counts["dns-cache-names"] = dns_name_count(dns)
    for fn in MEMORY_REPORTERS:
        counts.update(fn(ctx))
    for key, field in (("rss-kB", "VmRSS"), ("peak-rss-kB", "VmHWM")):
        kb = proc_status_kb(field)
        if kb is not None:
            counts[key] = kb
    return counts


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


# --- test hooks (only with PINCTRL_TEST_HOOKS=1; see main.TEST_HOOKS_ENV) ----

class _StallJob:
    """A handler job that blocks the pinctrl_handler thread once, in its
    wait() call, for up to 'seconds' or until released: the thread really
    stops going round its loop, so the keep-alive monitor sees what it
    would see if a lock or a bug held it.  Nothing in the production path
    sleeps; this object exists only when a test asks for it."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.release = threading.Event()
        self.used = False

    def run(self, env, now: int) -> list[bytes]:
        return []

    def wait(self, poller, now: int) -> None:
        """pinctrl_handler thread."""
        if not self.used:
            self.used = True
            self.release.wait(self.seconds)


_STALLS: list[_StallJob] = []
MAX_STALL_S = 60.0


def _cmd_stall_handler(ctx: Any, argv: list[str]) -> str:
    seconds = min(float(argv[0]), MAX_STALL_S)
    job = _StallJob(seconds)
    _STALLS.append(job)
    h = ctx.handler
    # A new list, swapped in by one assignment: the handler reads
    # 'jobs' once per loop and never sees a list being changed.
    h.jobs = [*h.jobs, job]
    h.shared.handler_seq.change()
    return f"handler thread stalls for up to {seconds:g} s\n"


def _cmd_unstall(ctx: Any, argv: list[str]) -> str:
    return f"released {release_test_stalls()} stalls\n"


def release_test_stalls() -> int:
    """Let every stalled handler go (main thread; also at exit)."""
    n = 0
    while _STALLS:
        _STALLS.pop().release.set()
        n += 1
    return n


def register_test_hooks() -> None:
    """Main thread, at start-up, only when the environment asks for it."""
    vlog.warn("test hooks enabled (pinctrl/test-stall-handler)")
    register("pinctrl/test-stall-handler", _cmd_stall_handler, "SECS", 1, 1)
    register("pinctrl/test-unstall", _cmd_unstall)
