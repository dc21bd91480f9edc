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

from pinctrl.openflow.oxm import OxmError, ResultDest, parse_result_dest
from pinctrl.support import coverage
from pinctrl.support.log import RateLimit, rl_log


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
    counter: str        # coverage counter of its packet-ins


REGISTRY: dict[int, Action] = {}


def action(opcode: int, name: str, pause: bool = False) -> Callable:
    """Decorator: register 'fn' as the handler of 'opcode'."""
    def register(fn: Callable) -> Callable:
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


def result_action(pin, process: Callable[[bytes], bytes | None],
                  counter_prefix: str, vlog, rl: RateLimit) -> Resume:
    """The common shape of the "R = action(...)" handlers (§5.3): parse
    the result destination from the userdata, call process(rest) with the
    userdata after it, and resume with the reply it returns and result 1,
    or with the original packet and result 0 when it returns None.  An
    unusable destination is counted as counter_prefix + "bad_result",
    warned about like 23.03, and the packet resumed with its metadata
    unchanged.  Called by the pinctrl_handler thread."""
    try:
        dest, rest = parse_result_dest(pin.args)
    except OxmError as e:
        coverage.inc(counter_prefix + "bad_result")
        rl_log(vlog, "warn", rl, f"bad result OXM ({e})")
        return Resume(pin.packet, None)
    reply = process(rest)
    if reply is None:
        return Resume(pin.packet, dest, False)
    return Resume(reply, dest, True)
