"""Opcodes whose features this project has not built yet: none of OVN
23.03's at the time of writing (the last ones, igmp and handle_svc_check,
left with issue 20).  The machinery stays for the next one.

Such an opcode does not pause, so the pipeline has already gone on without us
wherever the flow continues; where it does not (a flow that only punts),
the packet ends here.  Each packet-in is counted
(pinctrl_not_implemented_<name>, besides the dispatcher's pinctrl_pin_*),
and the first one of each opcode is logged once at WARN.  See
docs/opcodes.md for the issue that builds each one.
"""

from __future__ import annotations

import threading
from typing import Protocol

import ovs.vlog

from pinctrl.actions import action
from pinctrl.actions.env import NO_ENV, HandlerEnv
from pinctrl.openflow.packet_in import PacketIn
from pinctrl.support import coverage

vlog = ovs.vlog.Vlog("pinctrl")

# opcode → (name used for counters/logs, what is missing)
NOT_IMPLEMENTED: dict[int, tuple[str, str]] = {}

_logged: set[int] = set()
_lock = threading.Lock()


def first_time(opcode: int) -> bool:
    """True the first time 'opcode' is seen in this process."""
    with _lock:
        if opcode in _logged:
            return False
        _logged.add(opcode)
        return True


class _NotYetFn(Protocol):
    def __call__(self, pin: PacketIn, env: HandlerEnv = ...,
                 now: int = ...) -> None: ...


def _make_handler(opcode: int, name: str, feature: str) -> _NotYetFn:
    """The handler of a not-implemented opcode (pinctrl_handler thread)."""
    def handler(pin: PacketIn, env: HandlerEnv = NO_ENV,
                now: int = 0) -> None:
        coverage.inc(f"pinctrl_not_implemented_{name}")
        if first_time(opcode):
            vlog.warn(f"{name} (opcode {opcode}) packet-in ignored: "
                      f"{feature} is not implemented yet (logged once)")
    handler.__name__ = name
    handler.__doc__ = f"Opcode {opcode}: count, log once, send nothing."
    return handler


for _opcode, (_name, _feature) in NOT_IMPLEMENTED.items():
    action(_opcode, _name)(_make_handler(_opcode, _name, _feature))
