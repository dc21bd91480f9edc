"""SB Controller_Event: insert the events trigger_event reported (OVN
23.03 controller/pinctrl.c controller_event_run()).
Main thread only.

An event is inserted unless a row of the same type, for this chassis, with
identical event_info already exists; seq_num is a process-local counter
from 1, as in 23.03.  Writing needs this chassis's Chassis row: until it
exists the events wait (23.03 drops them after 10 s; we keep them, capped).
"""

from __future__ import annotations

import ovs.db.idl

from pinctrl.db.local_datapaths import ref
from pinctrl.db.writers import HandoverWriter, SbContext
from pinctrl.shared.records import EventKey
from pinctrl.shared.state import SharedState

TABLE = "Controller_Event"


class ControllerEventWriter(HandoverWriter[EventKey, str]):
    """controller_events -> SB Controller_Event (main thread)."""
    name = "controller_events"

    def __init__(self, shared: SharedState) -> None:
        super().__init__(shared.controller_events,
                         "pinctrl_drop_controller_event_retry",
                         merge=lambda old, new: old)
        self.seq_num = 1

    def write(self, txn: ovs.db.idl.Transaction, ctx: SbContext,
              now: int) -> bool:
        if ctx.chassis is None or TABLE not in ctx.idl.tables:
            return False
        batch = self.queue.start()
        if not batch:
            return False
        table = ctx.idl.tables[TABLE]
        existing = {(r.event_type, tuple(sorted(r.event_info.items())))
                    for r in table.rows.values()
                    if ref(r.chassis) is ctx.chassis}
        for (vip, protocol, lb), event_type in batch:
            info = {"vip": vip, "protocol": protocol, "load_balancer": lb}
            if (event_type, tuple(sorted(info.items()))) in existing:
                continue
            row = txn.insert(table)
            row.event_type = event_type
            row.event_info = info
            row.chassis = ctx.chassis
            row.seq_num = self.seq_num
            self.seq_num += 1
        return True
