"""What the Python runtime under the daemon costs it: which JSON parser
python-ovs uses for the OVSDB IDLs, and whether eventlet got imported.

python-ovs parses every OVSDB message with ovs.json, which uses the C
extension ovs._json when it is importable (Debian's python3-openvswitch
ships it; PyPI's "ovs" cannot build it without libopenvswitch-dev) and a
pure-Python parser otherwise: ~60x slower, and the main thread holds the
GIL the handler needs while it parses (issue 18: 374 µs against 5.8 µs
for one 352-byte MAC_Binding update).  `make venv` builds the venv on
Debian's /usr/bin/python3 with its site-packages for that reason.

Any thread may call these; they only read module state.
"""

from __future__ import annotations

import sys

import ovs.json
import ovs.vlog

C_PARSER = "C (ovs._json)"
PY_PARSER = "pure Python"


def json_parser() -> str:
    """The parser ovs.json uses: C_PARSER or PY_PARSER."""
    return C_PARSER if ovs.json.PARSER == ovs.json.PARSER_C else PY_PARSER


def eventlet_imported() -> bool:
    """Whether eventlet is loaded in this process (python-ovs's poller
    imports it when it can, to check for monkey-patching)."""
    return sys.modules.get("eventlet") is not None


def keep_eventlet_out() -> bool:
    """Make `import eventlet` fail in this process from now on; False if
    it is already imported.  The daemon's entry point calls it before
    importing python-ovs's poller: os-ken depends on eventlet, so it is
    installed, and ovs.poller imports it (only to ask whether select is
    monkey-patched: we never patch; it then takes its plain path).  Kept
    out: eventlet, greenlet and, through eventlet's greendns, dnspython
    (~25 MB of RSS, an EventletDeprecationWarning and dnspython's DSA
    deprecation warnings at every start).  The os-ken modules the daemon
    uses (OpenFlow messages, packet-in parser) do not import it."""
    if eventlet_imported():
        return False
    sys.modules["eventlet"] = None      # type: ignore[assignment]
    return True


def warn_if_slow(vlog: ovs.vlog.Vlog) -> None:
    """At start-up (main thread): a warning when the IDLs parse JSON in
    pure Python."""
    if json_parser() == PY_PARSER:
        vlog.warn("python-ovs has no C JSON parser (ovs._json): the "
                  "Southbound IDL parses in pure Python, ~60x slower; "
                  "run from a venv made with Debian's /usr/bin/python3 "
                  "-m venv --system-site-packages (python3-openvswitch), "
                  "see `make venv`")
