"""SB Service_Monitor.status: the health-check verdicts of this chassis
(OVN 23.03 controller/pinctrl.c sync_svc_monitors(), its status half).
Main thread only.

The handler's SvcMonitorJob hands over each monitor's status when it
changes (SharedState.svc_status: SvcKey -> "online" / "offline"); the
status is written to the monitor's rows (db/svc_monitor_plan.py says
which) where it differs, retried until it lands.  23.03 rewrites the
status of every monitor on every main-loop iteration; here the last
status of each monitor is kept and written again whenever the rows change
and no longer show it (a row recreated by northd, a status changed by
someone else).  A monitor whose rows are gone is forgotten.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import ovs.db.idl

from pinctrl.db.writers import HandoverWriter, SbContext
from pinctrl.shared.records import SvcKey
from pinctrl.shared.state import SharedState
from pinctrl.support import coverage

TABLE = "Service_Monitor"


def _status(row: Any) -> str | None:
    """The optional status column: python-ovs gives a list."""
    value = row.status
    if isinstance(value, (list, tuple)):
        value = value[0] if value else None
    return None if value is None else str(value)


class SvcStatusWriter(HandoverWriter[SvcKey, str]):
    """svc_status -> SB Service_Monitor.status (main thread)."""
    name = "svc_monitor_status"

    def __init__(self, shared: SharedState) -> None:
        super().__init__(shared.svc_status, "pinctrl_drop_svc_status_retry")
        self.known: dict[SvcKey, str] = {}      # last status of each
        self.rows_of: Mapping[SvcKey, list[Any]] = {}

    def collect(self, now: int) -> None:
        """Main thread: take the statuses the handler handed over."""
        taken = self.handover.take()
        if taken:
            self.known.update(taken)
            self.queue.add(taken)

    def set_rows(self, rows_of: Mapping[SvcKey, list[Any]]) -> None:
        """The rows of each monitor run here (the plan, after any change
        of the table or the ports): a status they lost is written again."""
        self.rows_of = rows_of
        self.known = {k: v for k, v in self.known.items() if k in rows_of}
        stale = {k: v for k, v in self.known.items()
                 if any(_status(r) != v for r in rows_of[k])}
        if stale:
            self.queue.add(stale)

    def write(self, txn: ovs.db.idl.Transaction, ctx: SbContext,
              now: int) -> bool:
        """Main thread: set the statuses that differ."""
        batch = self.queue.start()
        for key, status in batch:
            rows = self.rows_of.get(key)
            if not rows:
                coverage.inc("pinctrl_svc_monitor_status_no_row")
                self.queue.drop(key)
                continue
            for row in rows:
                if _status(row) != status:
                    row.status = status
                    coverage.inc("pinctrl_svc_monitor_status_written")
        return bool(batch)
