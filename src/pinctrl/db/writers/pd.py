"""SB Port_Binding options:ipv6_ra_pd_list: the prefixes the handler's
prefix-delegation clients obtained (main thread only).

OVN 23.03 writes "<iaid>:<prefix>/<plen>" into the downstream port's
options in fill_ipv6_prefix_state() (controller/pinctrl.c), replacing
the old value; northd then copies it into the port's IPv6 prefix and its
RA prefixes.  Here a value equal to the one in SB writes nothing, and a
failed transaction is retried (db/txn.py).
"""

from __future__ import annotations

import ovs.db.idl

from pinctrl.db.writers import HandoverWriter, SbContext
from pinctrl.shared.state import SharedState

KEY = "ipv6_ra_pd_list"


class PdPrefixWriter(HandoverWriter[str, str]):
    """pd_prefixes -> Port_Binding options:ipv6_ra_pd_list."""
    name = "pd_prefixes"

    def __init__(self, shared: SharedState) -> None:
        super().__init__(shared.pd_prefixes, "pinctrl_drop_pd_prefix_retry")

    def write(self, txn: ovs.db.idl.Transaction, ctx: SbContext,
              now: int) -> bool:
        batch = self.queue.start()
        for name, value in batch:
            pb = ctx.ports.by_name.get(name)
            if pb is None:
                self.queue.drop(name)
                continue
            if pb.options.get(KEY) != value:
                pb.setkey("options", KEY, value)
        return bool(batch)
