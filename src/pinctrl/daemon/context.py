"""The appctl commands' view of the running daemon.

Commands never get the Daemon: they get an AppctlView, which offers the
members of appctl.CommandContext and of the commands' own Protocols
(show.ShowContext, show.MemoryContext, mac_binding.MacBindingsContext) and
nothing else.  Each member looks the daemon's parts up when called: the
Southbound connection and the handler thread may have been replaced since
the view was made.  Main thread only.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import ovs.db.idl

from pinctrl.daemon.show import ShowReport
from pinctrl.db.ovs_config import OVS_DB_NAME
from pinctrl.db.writers.mac_binding import MacBindingWriter
from pinctrl.sb_sync import SB_DB_NAME
from pinctrl.shared.state import SharedState

if TYPE_CHECKING:
    from pinctrl.daemon.daemon import Daemon


class AppctlView:
    __slots__ = ("_daemon",)

    def __init__(self, daemon: Daemon) -> None:
        self._daemon = daemon

    @property
    def shared(self) -> SharedState:
        return self._daemon.shared

    def buffered_packets_summary(self) -> tuple[int, int]:
        h = self._daemon.handler
        return h.buffered_packets_summary() if h is not None else (0, 0)

    def databases(self) -> dict[str, ovs.db.idl.Idl]:
        d = self._daemon
        dbs = {}
        if d.sb is not None:
            dbs[SB_DB_NAME] = d.sb.idl
        if d.ovs_cfg is not None:
            dbs[OVS_DB_NAME] = d.ovs_cfg.idl
        return dbs

    def show_report(self) -> ShowReport:
        return self._daemon.report()

    @property
    def mac_bindings(self) -> MacBindingWriter:
        sb = self._daemon.sb
        assert sb is not None       # the view is installed after start-up
        return sb.mac_bindings
