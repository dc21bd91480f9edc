"""SB FDB: write what put_fdb learnt (OVN 23.03 controller/pinctrl.c
run_put_fdb()).  Main thread only.

The row is found by (mac, dp_key) and inserted if absent; port_key is set
when it differs.  Entries are retried until their transaction lands.
"""

from __future__ import annotations

from typing import Any

import ovs.db.idl

from pinctrl.db.writers import HandoverWriter, SbContext
from pinctrl.packet.headers import fmt_mac
from pinctrl.shared.records import FdbKey
from pinctrl.shared.state import SharedState

TABLE = "FDB"
INDEX = "mac_dp"


def create_index(idl: ovs.db.idl.Idl) -> None:
    """Before the first idl.run(): the (mac, dp_key) index."""
    if TABLE in idl.tables:
        idl.index_create(TABLE, INDEX).add_columns("mac", "dp_key")


def lookup(idl: ovs.db.idl.Idl, mac: str, dp_key: int) -> Any:
    probe = idl.tables[TABLE].rows.IndexEntry(mac=mac, dp_key=dp_key)
    return next(idl.index_equal(TABLE, INDEX, probe), None)


class FdbWriter(HandoverWriter[FdbKey, int]):
    """put_fdbs -> SB FDB (main thread)."""
    name = "fdb"

    def __init__(self, shared: SharedState) -> None:
        super().__init__(shared.put_fdbs, "pinctrl_drop_put_fdb_retry")

    def write(self, txn: ovs.db.idl.Transaction, ctx: SbContext,
              now: int) -> bool:
        batch = self.queue.start()
        if not batch or TABLE not in ctx.idl.tables:
            return bool(batch)
        for (dp_key, mac_bytes), port_key in batch:
            mac = fmt_mac(mac_bytes)
            row = lookup(ctx.idl, mac, dp_key)
            if row is None:
                row = txn.insert(ctx.idl.tables[TABLE])
                row.mac = mac
                row.dp_key = dp_key
            elif row.port_key == port_key:
                continue
            row.port_key = port_key
        return True
