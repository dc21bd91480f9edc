"""OVN controller actions, one module per opcode family, registered by
opcode number (include/ovn/actions.h, reference §6).

An action handler is a pure function called by the pinctrl_handler thread:

    handler(pin: PacketIn, env: HandlerEnv) -> Reply | list[Reply] | None

It parses pin.args (the userdata after the 8-byte header), builds reply
packets and returns what to send; it never does I/O.  The dispatcher
(pinctrl.dispatch) encodes the replies, and guarantees that a paused
packet-in is resumed exactly once even if the handler raises.
"""

from __future__ import annotations

import importlib
import pkgutil
from dataclasses import dataclass
from typing import Callable

from pinctrl.oxm import ResultDest


@dataclass(slots=True)
class Resume:
    """Answer a paused packet-in with NXT_RESUME.  If 'dest' is set, the
    result bit 'dest' is written with 'result' (§5.3); if 'dest' is None the
    metadata is echoed unchanged (the result header itself was unusable)."""
    packet: bytes
    dest: ResultDest | None = None
    result: bool = False


@dataclass(slots=True)
class PacketOut:
    """An OFPT_PACKET_OUT: 'actions' are OpenFlow 1.5 action bytes."""
    packet: bytes
    actions: bytes


Reply = Resume | PacketOut


@dataclass(slots=True, frozen=True)
class Action:
    opcode: int
    name: str           # OVN's name (ovnact_op_to_string), for logs
    pause: bool         # flows use controller(pause): must NXT_RESUME
    handler: Callable


REGISTRY: dict[int, Action] = {}


def action(opcode: int, name: str, pause: bool = False) -> Callable:
    """Decorator: register 'fn' as the handler of 'opcode'."""
    def register(fn: Callable) -> Callable:
        if opcode in REGISTRY:
            raise ValueError(f"opcode {opcode} registered twice")
        REGISTRY[opcode] = Action(opcode, name, pause, fn)
        return fn
    return register


def load_all() -> dict[int, Action]:
    """Import every module of this package; each registers its opcodes."""
    for mod in pkgutil.iter_modules(__path__):
        importlib.import_module(f"{__name__}.{mod.name}")
    return REGISTRY
