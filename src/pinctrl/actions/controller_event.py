"""trigger_event (EVENT, opcode 15): a load balancer without backends.

Called by the pinctrl_handler thread.  Userdata (lib/actions.c
encode_TRIGGER_EVENT(), read by controller/pinctrl.c
pinctrl_handle_event()): be32 event type,
then options (be16 code, be16 length, bytes; no padding).  23.03 knows one
event, empty_lb_backends, with options vip (1), protocol (2) and
load_balancer (3), all required.  The event is handed to the main thread
(SharedState.controller_events, de-duplicated by its options), which
inserts an SB Controller_Event row (db/writers/controller_event.py).
Nothing is sent: the packet was not paused.
"""

from __future__ import annotations

import struct

import ovs.vlog

from pinctrl.actions import action
from pinctrl.actions.env import NO_ENV, HandlerEnv
from pinctrl.actions.replies import NoReply, Reporter
from pinctrl.openflow.packet_in import PacketIn

vlog = ovs.vlog.Vlog("pinctrl")
reporter = Reporter(vlog, 5, 5, default_site="trigger_event")

EVENT_EMPTY_LB_BACKENDS = 0
EVENT_NAMES = {EVENT_EMPTY_LB_BACKENDS: "empty_lb_backends"}
# Option code -> Controller_Event.event_info key, per event type.
EVENT_OPTIONS = {EVENT_EMPTY_LB_BACKENDS: {1: "vip", 2: "protocol",
                                           3: "load_balancer"}}
_U32 = struct.Struct("!I")
_OPT = struct.Struct("!HH")
MAX_OPTION_LEN = 1024       # an NB UUID or an address; more is hostile


def parse_event(args: bytes) -> tuple[str, tuple[str, str, str]] | str:
    """Parse the userdata after the header: (event type name, (vip,
    protocol, load_balancer)), or a reason string when unusable.
    Unknown option codes are skipped (23.03 aborts the process on them)."""
    if len(args) < 4:
        return "truncated event type"
    etype = _U32.unpack_from(args)[0]
    names = EVENT_OPTIONS.get(etype)
    if names is None:
        return f"unknown event type {etype}"
    found: dict[str, str] = {}
    ofs = 4
    while ofs < len(args):
        if len(args) - ofs < _OPT.size:
            return "truncated option header"
        code, length = _OPT.unpack_from(args, ofs)
        ofs += _OPT.size
        if length > len(args) - ofs or length > MAX_OPTION_LEN:
            return f"option {code} overruns the userdata"
        key = names.get(code)
        if key is not None:
            try:
                found[key] = args[ofs:ofs + length].decode("utf-8")
            except UnicodeDecodeError:
                return f"option {code} is not text"
        ofs += length
    if len(found) != len(names):
        return "missing vip, protocol or load_balancer"
    return EVENT_NAMES[etype], (found["vip"], found["protocol"],
                                found["load_balancer"])


@action(15, "trigger_event")
def trigger_event(pin: PacketIn, env: HandlerEnv = NO_ENV,
                  now: int = 0) -> None:
    """Opcode 15: hand an empty_lb_backends event to the main thread."""
    parsed = parse_event(pin.args)
    if isinstance(parsed, str):
        reporter.report(NoReply("pinctrl_drop_bad_event",
                                f"trigger_event: {parsed}"))
        return
    if env.shared is None:
        return
    event_type, info = parsed
    if env.shared.controller_events.put(info, event_type):
        env.shared.notify_main()
