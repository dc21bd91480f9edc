"""support/appctl.py: the open command registry, its generic reports, and
the contract between the commands and the daemon: every command declares
the context it reads, and the daemon's view (daemon/context.py) offers
every member those declarations name."""

import inspect
import types
import typing

import ovs.unixctl
import pytest

import pinctrl.daemon.daemon  # noqa: F401  (imports every command module)
from pinctrl.daemon import test_hooks
from pinctrl.daemon.context import AppctlView
from pinctrl.shared.state import SharedState
from pinctrl.support import appctl
from tests.helpers import counted


def test_shared_sizes_reports_every_sized_field_only():
    shared = SharedState()
    shared.br_int_name = "br-int"           # a str: not a container
    sizes = appctl.shared_sizes(shared)
    assert sizes["dns_cache"] == 0
    assert "br_int_name" not in sizes and "mutex" not in sizes
    assert "handler_seq" not in sizes


def test_shared_sizes_reads_n_counts_and_plain_objects():
    obj = types.SimpleNamespace(n_waiting=3, n_flag=True, queue=[1, 2],
                                name="x", number=7)
    assert appctl.shared_sizes(obj) == {"waiting": 3, "queue": 2}


def test_format_memory_is_ovs_style():
    assert appctl.format_memory({"b": 2, "a-x": 1}) == "a-x:1 b:2\n"


def test_proc_status_kb(tmp_path):
    f = tmp_path / "status"
    f.write_text("Name:\tx\nVmHWM:\t  2048 kB\nVmRSS:\t  1024 kB\n")
    assert appctl.proc_status_kb("VmRSS", str(f)) == 1024
    assert appctl.proc_status_kb("VmSwap", str(f)) is None
    assert appctl.proc_status_kb("VmRSS", str(tmp_path / "none")) is None
    assert appctl.proc_status_kb("VmRSS") > 0          # this process


class Conn:
    def __init__(self):
        self.replies, self.errors = [], []

    def reply(self, text):
        self.replies.append(text)

    def reply_error(self, text):
        self.errors.append(text)


@pytest.fixture
def registry(monkeypatch):
    """An empty registry and unixctl command table, restored afterwards."""
    monkeypatch.setattr(appctl, "COMMANDS", {})
    monkeypatch.setattr(appctl, "_ctx", None)
    monkeypatch.setattr(ovs.unixctl, "commands", {})


def call(name, *args):
    conn = Conn()
    ovs.unixctl.commands[name].callback(conn, list(args), None)
    return conn


def test_registered_command_runs_with_ctx_and_errors_are_replies(registry):
    @appctl.command("test/echo", "[ARG]", 0, 1)
    def echo(ctx, args):
        return f"{ctx}:{' '.join(args)}\n"

    appctl.install("CTX")
    # Registered after install: served at once.
    appctl.register("test/fail", lambda ctx, args: 1 / 0)
    assert call("test/echo", "a").replies == ["CTX:a\n"]
    conn = counted(lambda: call("test/fail"), "appctl_command_error")
    assert conn.errors and "ZeroDivisionError" in conn.errors[0]


def test_stall_hook_hands_a_job_over_and_unstall_releases_it(registry):
    jobs = []
    test_hooks.register_test_hooks(jobs.append)
    appctl.install(None)
    assert call("pinctrl/test-stall-handler", "600").replies == [
        "handler thread stalls for up to 60 s\n"]       # capped
    (job,) = jobs
    assert job.run(None, 0) == [] and not job.release.is_set()
    assert call("pinctrl/test-unstall").replies == ["released 1 stalls\n"]
    assert job.release.is_set()
    job.wait(None, 0)                   # released: returns at once
    assert job.used
    assert test_hooks.release_test_stalls() == 0


def test_test_hooks_only_with_the_environment_variable():
    assert test_hooks.enabled({"PINCTRL_TEST_HOOKS": "1"})
    assert not test_hooks.enabled({"PINCTRL_TEST_HOOKS": "yes"})
    assert not test_hooks.enabled({})


# --- the commands' contexts ---------------------------------------------------

def _members(protocol: type) -> set[str]:
    """The names a Protocol (and the Protocols it extends) declares."""
    names = set()
    for base in protocol.__mro__:
        if base in (object, typing.Protocol, typing.Generic):
            continue
        names |= {n for n in (*vars(base), *getattr(base, "__annotations__", {}))
                  if not n.startswith("_")}
    return names


def _ctx_type(fn) -> type:
    first = next(iter(inspect.signature(fn).parameters))
    return typing.get_type_hints(fn)[first]


def test_every_command_declares_a_context_the_daemon_view_offers():
    assert {"pinctrl/show", "pinctrl/dns-cache", "memory/show",
            "coverage/show", "pinctrl/garp", "pinctrl/ipv6-ra",
            "pinctrl/buffered-packets", "pinctrl/mac-bindings"} <= set(
                appctl.COMMANDS)
    view = set(dir(AppctlView))
    for name, cmd in appctl.COMMANDS.items():
        ctx = _ctx_type(cmd.fn)
        assert appctl.CommandContext in ctx.__mro__, name
        missing = _members(ctx) - view
        assert not missing, f"{name}: the daemon's view lacks {missing}"


def test_the_view_is_narrow():
    """Only the members the commands name: no way back to the daemon."""
    declared = set()
    for cmd in appctl.COMMANDS.values():
        declared |= _members(_ctx_type(cmd.fn))
    public = {n for n in dir(AppctlView) if not n.startswith("_")}
    assert public == declared
