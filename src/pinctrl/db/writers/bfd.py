"""SB BFD.status: write the session states the handler's BfdJob reports
(main thread only).

OVN 23.03 writes the status in bfd_monitor_run() (controller/pinctrl.c)
for a session whose state changed, unless the row's status is
"admin_down" (then the session is AdminDown and nothing is written).  The
row is the one of the session's (dst_ip, src_port).  pinctrl never writes
BFD.disc (northd chooses it).  Unlike 23.03 a status whose transaction
failed is retried until it lands (db/txn.py); a newer status for the same
session replaces an older one still waiting.
"""

from __future__ import annotations

import ovs.db.idl

from pinctrl.db.writers import HandoverWriter, SbContext
from pinctrl.shared.records import bfd_key
from pinctrl.shared.state import SharedState
from pinctrl.support import coverage

TABLE = "BFD"


class BfdStatusWriter(HandoverWriter[str, str]):
    """bfd_status -> SB BFD.status."""
    name = "bfd_status"

    def __init__(self, shared: SharedState) -> None:
        super().__init__(shared.bfd_status, "pinctrl_drop_bfd_status_retry")

    def write(self, txn: ovs.db.idl.Transaction, ctx: SbContext,
              now: int) -> bool:
        table = ctx.idl.tables.get(TABLE)
        if table is None:
            return False
        batch = self.queue.start()
        rows = {bfd_key(r.dst_ip, r.src_port): r for r in table.rows.values()}
        for key, status in batch:
            row = rows.get(key)
            if row is None:
                coverage.inc("pinctrl_bfd_status_no_row")
                self.queue.drop(key)
                continue
            if row.status in ("admin_down", status):
                continue
            row.status = status
        return bool(batch)
