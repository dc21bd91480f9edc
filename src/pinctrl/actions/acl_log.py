"""ACL logging: log (LOG, 7), lib/acl-log.c handle_acl_log().

The userdata after the action header is u8 verdict, u8 severity and the
ACL name (no terminator).  23.03 prints one INFO line in vlog module
'acl_log', whatever the severity:

    name="<name>", verdict=<v>, severity=<s>, direction=<d>: <flow>

with the name JSON-escaped ("<unnamed>" if empty), <d> "from-lport" when
the packet-in's table id is below 42 (OFTABLE_LOG_EGRESS_PIPELINE) and
<flow> OVS's flow_format() of the packet headers (packet.flow).  Nothing
is sent back; the pipeline already went on.

Deviations (docs/opcodes.md): the line is rate-limited (23.03 relies only
on the ACL's meter); the name is cut at a NUL byte as 23.03 does, and bytes
that are not UTF-8 are shown as U+FFFD.
"""

from __future__ import annotations

import ovs.vlog

from pinctrl.actions import action
from pinctrl.actions.env import NO_ENV, HandlerEnv
from pinctrl.openflow.packet_in import PacketIn
from pinctrl.packet.flow import extract, format_flow
from pinctrl.support import coverage
from pinctrl.support.log import RateLimit, rl_log

vlog = ovs.vlog.Vlog("acl_log")
_warn_vlog = ovs.vlog.Vlog("pinctrl")

OFTABLE_LOG_EGRESS_PIPELINE = 42
VERDICTS = {0: "allow", 1: "drop", 2: "reject"}
SEVERITIES = {1: "alert", 4: "warning", 5: "notice", 6: "info", 7: "debug"}

# A guard against log floods when an ACL has no meter: 6000 lines/min
# (100/s) sustained, bursts of 1000.
rate_limit = RateLimit(6000, 1000)
_rl_missing = RateLimit(1, 5)

_ESCAPES = {ord('"'): '\\"', ord("\\"): "\\\\", 8: "\\b", 9: "\\t",
            10: "\\n", 12: "\\f", 13: "\\r"}


def json_string(s: str) -> str:
    """OVS's json_string_escape(): quotes, backslash and control
    characters escaped, everything else verbatim."""
    out = ['"']
    for ch in s:
        c = ord(ch)
        if c in _ESCAPES:
            out.append(_ESCAPES[c])
        elif c < 0x20:
            out.append(f"\\u{c:04x}")
        else:
            out.append(ch)
    out.append('"')
    return "".join(out)


def log_line(args: bytes, table_id: int, frame: bytes) -> str | None:
    """Pure.  The acl_log line for a LOG packet-in ('args' = userdata after
    the action header), or None if the verdict/severity bytes are
    missing."""
    if len(args) < 2:
        return None
    verdict, severity = args[0], args[1]
    name = args[2:].split(b"\0", 1)[0].decode("utf-8", "replace")
    direction = ("from-lport" if table_id < OFTABLE_LOG_EGRESS_PIPELINE
                 else "to-lport")
    return (f"name={json_string(name or '<unnamed>')}, "
            f"verdict={VERDICTS.get(verdict, '<unknown>')}, "
            f"severity={SEVERITIES.get(severity, '<unknown>')}, "
            f"direction={direction}: {format_flow(extract(frame))}")


@action(7, "log")
def log(pin: PacketIn, env: HandlerEnv = NO_ENV,
        now: int = 0) -> None:
    """Handler for opcode 7 (pinctrl_handler thread): one INFO line."""
    if not vlog.info_is_enabled():
        # As 23.03: no flow formatting when nobody would see the line.
        coverage.inc("pinctrl_acl_log_disabled")
        return
    line = log_line(pin.args, pin.table_id, pin.packet)
    if line is None:
        coverage.inc("pinctrl_acl_log_drop_no_data")
        rl_log(_warn_vlog, "warn", _rl_missing, "log data missing")
        return
    coverage.inc("pinctrl_acl_log_lines")
    rl_log(vlog, "info", rate_limit, line)
    return
