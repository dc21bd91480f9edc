"""ovs-appctl commands: an open registry, the context every command reads,
and generic report helpers.

Any module adds a command in one line (its own module, imported before
the daemon starts or later; both work):

    @appctl.command("pinctrl/garp")
    def _cmd_garp(ctx: appctl.CommandContext, args: list[str]) -> str: ...

and a memory/show contribution with

    appctl.register_memory(lambda ctx: {"mac-bindings": n})

'ctx' is never the daemon: it is the narrow view the daemon installs
(daemon/context.py).  A command states what it reads by the type of its
'ctx': CommandContext below, or a Protocol of its own module that extends
it with the one figure it needs (e.g. daemon/show.py's ShowContext); a unit
test checks that the daemon's view offers every member they name.  Read
ctx.shared (SharedState) under ctx.shared.mutex, take references, format
outside.  Every command runs in the main thread (python-ovs's unixctl
server is part of the main loop) and returns the reply text; an exception
becomes an error reply, counted, never a dead daemon.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Mapping, Protocol, Sized, TypeVar

import ovs.db.idl
import ovs.unixctl
import ovs.unixctl.server
import ovs.vlog

from pinctrl.shared.state import SharedState
from pinctrl.support import coverage
from pinctrl.support.log import RateLimit, rl_log

vlog = ovs.vlog.Vlog("appctl")
_rl = RateLimit(5, 5)


class CommandContext(Protocol):
    """What every command may read (main thread)."""

    @property
    def shared(self) -> SharedState: ...

    def buffered_packets_summary(self) -> tuple[int, int]:
        """(next hops awaited, frames buffered) of the handler thread."""
        ...


Ctx = TypeVar("Ctx", bound=CommandContext)
# Stored untyped: each command's own 'ctx' type is checked where it is
# registered (register/command below) and against the daemon's view by
# the unit tests.
CommandFn = Callable[[Any, list[str]], str]
MemoryFn = Callable[[CommandContext], Mapping[str, int]]


@dataclass(frozen=True)
class Command:
    name: str
    fn: CommandFn
    usage: str = ""
    min_args: int = 0
    max_args: int = 0


# Main thread (or import time) writes both; the unixctl callbacks read them.
COMMANDS: dict[str, Command] = {}
MEMORY_REPORTERS: list[MemoryFn] = []
_ctx: CommandContext | None = None


def register(name: str, fn: Callable[[Ctx, list[str]], str], usage: str = "",
             min_args: int = 0, max_args: int = 0) -> None:
    """Add (or replace) command 'name'.  Effective at once if the daemon
    already serves (main thread, or at import time)."""
    cmd = Command(name, fn, usage, min_args, max_args)
    COMMANDS[name] = cmd
    if _ctx is not None:
        _install(cmd)


def command(name: str, usage: str = "", min_args: int = 0,
            max_args: int = 0
            ) -> Callable[[Callable[[Ctx, list[str]], str]],
                          Callable[[Ctx, list[str]], str]]:
    """Decorator form of register()."""
    def deco(fn: Callable[[Ctx, list[str]], str]
             ) -> Callable[[Ctx, list[str]], str]:
        register(name, fn, usage, min_args, max_args)
        return fn
    return deco


def register_memory(fn: MemoryFn) -> None:
    """Add counts (name -> int) to memory/show (import time)."""
    MEMORY_REPORTERS.append(fn)


def install(ctx: CommandContext) -> None:
    """Main thread, once the unixctl server exists: serve every command
    registered so far (and later ones) with 'ctx'."""
    global _ctx
    _ctx = ctx
    for cmd in COMMANDS.values():
        _install(cmd)


def _install(cmd: Command) -> None:
    def callback(conn: ovs.unixctl.server.UnixctlConnection,
                 argv: list[str], aux: object) -> None:
        """Main thread (unixctl server run)."""
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


# --- generic reports (pure, given what the main thread hands them) ----------

def shared_sizes(shared: object) -> dict[str, int]:
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
        if isinstance(value, (str, bytes)) or not isinstance(value, Sized):
            continue
        try:
            out[name] = len(value)
        except TypeError:           # __len__ that refuses (a proxy, ...)
            continue
    return out


def idl_cells(idl: ovs.db.idl.Idl) -> int:
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
