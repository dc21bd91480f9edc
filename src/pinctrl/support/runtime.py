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

import gc
import sys
import time

import ovs.json
import ovs.vlog

from pinctrl.support import coverage

vlog = ovs.vlog.Vlog("runtime")

C_PARSER = "C (ovs._json)"
PY_PARSER = "pure Python"


def json_parser() -> str:
    """The parser ovs.json uses: C_PARSER or PY_PARSER."""
    return C_PARSER if ovs.json.PARSER == ovs.json.PARSER_C else PY_PARSER


def eventlet_imported() -> bool:
    """Whether eventlet is loaded in this process (python-ovs's poller
    imports it when it can, to check for monkey-patching)."""
    return sys.modules.get("eventlet") is not None


# How long the thread holding the GIL keeps it once another thread waits
# for it (sys.setswitchinterval; CPython's default is 5 ms).  The handler
# waits for the GIL after every wake-up while the main thread is busy in
# pure Python (an IDL update under Southbound churn): at 5 ms a DHCP round
# trip in-process went from 0.13 ms to 5.7 ms (p50) and 12.5 ms (p99) with a
# busy main thread; at 0.2 ms to 0.5 / 1.2 ms (bench/inproc.py --latency
# --busy-main).  A switch costs a few µs, and only while both threads want
# to run.
GIL_SWITCH_INTERVAL_S = 0.0002


def bound_gil_wait() -> None:
    """Main thread, at start-up: set GIL_SWITCH_INTERVAL_S."""
    sys.setswitchinterval(GIL_SWITCH_INTERVAL_S)


# Garbage collection.  A full collection scans every tracked object; with
# the IDL's rows (hundreds of thousands of objects) one took up to 160-210
# ms, holding the GIL the handler needs (20000 MAC_Binding rows written:
# 12 full collections, 1.6 s of 3.9 s of the main thread).  Objects that
# survived a generation-1 collection are frozen (gc.freeze(): never
# scanned again), so the automatic collections stay young and short (at
# most ~10 ms); everything is collected once every GC_FULL_INTERVAL_S from
# the main loop (gc_maintenance()), so cyclic garbage among frozen objects
# (python-ovs leaves ~2 per row written) is reclaimed: one bounded pause
# per interval instead of one per few seconds under load.
GC_FULL_INTERVAL_S = 300.0
_gc_next_full = 0.0


def _freeze_survivors(phase: str, info: dict[str, int]) -> None:
    if phase == "stop" and info["generation"] >= 1:
        gc.freeze()


def tune_gc() -> None:
    """Main thread, at start-up: freeze what survives young collections;
    the first full collection is due GC_FULL_INTERVAL_S later."""
    global _gc_next_full
    if _freeze_survivors not in gc.callbacks:
        gc.callbacks.append(_freeze_survivors)
    _gc_next_full = time.monotonic() + GC_FULL_INTERVAL_S


def gc_maintenance(now: float) -> float | None:
    """Main thread, every loop: the periodic full collection when due;
    returns how long it took (seconds), None when not due or not tuned."""
    global _gc_next_full
    if not _gc_next_full or now < _gc_next_full:
        return None
    _gc_next_full = now + GC_FULL_INTERVAL_S
    t0 = time.perf_counter()
    gc.unfreeze()
    n = gc.collect()
    gc.freeze()
    took = time.perf_counter() - t0
    coverage.inc("pinctrl_gc_full")
    vlog.dbg(f"full garbage collection: {n} objects freed in "
             f"{took * 1e3:.0f} ms")
    return took


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
