"""OVN controller actions, one module per opcode family, registered by
opcode number (include/ovn/actions.h enum action_opcode).

An action handler is a pure function called by the pinctrl_handler thread:

    handler(pin: PacketIn, env: HandlerEnv = NO_ENV, now: int = 0)
        -> Resume | PacketOut | None            (an ActionFn)

It parses pin.args (the userdata after the 8-byte header), builds reply
packets and returns what to send (actions.replies); it never does I/O.
The dispatcher (handler.dispatch) encodes the replies, and guarantees that
a paused packet-in is resumed exactly once even if the handler raises.
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol, TypeVar

from pinctrl.actions.env import HandlerEnv
from pinctrl.actions.replies import Reply
from pinctrl.openflow.packet_in import PacketIn

class ActionFn(Protocol):
    """What @action registers: (pin, env, now) -> the reply to send, or
    None.  'env' and 'now' have defaults (NO_ENV, 0) so that an action can
    be called with its packet-in alone (tests, harnesses)."""

    def __call__(self, pin: PacketIn, env: HandlerEnv = ...,
                 now: int = ...) -> Reply | None: ...


@dataclass(slots=True, frozen=True)
class Action:
    opcode: int
    name: str           # OVN's name (ovnact_op_to_string), for logs
    pause: bool         # flows use controller(pause): must NXT_RESUME
    handler: ActionFn
    counter: str        # coverage counter of its packet-ins


REGISTRY: dict[int, Action] = {}
_F = TypeVar("_F", bound=ActionFn)


def action(opcode: int, name: str,
           pause: bool = False) -> Callable[[_F], _F]:
    """Decorator: register 'fn' as the handler of 'opcode' (and keep its
    own, more precise, type)."""
    def register(fn: _F) -> _F:
        if opcode in REGISTRY:
            raise ValueError(f"opcode {opcode} registered twice")
        REGISTRY[opcode] = Action(opcode, name, pause, fn,
                                  f"pinctrl_pin_{name}")
        return fn
    return register


def load_all() -> dict[int, Action]:
    """Import every module of this package; each registers its opcodes."""
    for mod in pkgutil.iter_modules(__path__):
        importlib.import_module(f"{__name__}.{mod.name}")
    return REGISTRY
