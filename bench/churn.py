"""The background Southbound churn writer (a separate process: it must not
share the generator's GIL).

Every TICK seconds, one NB transaction adds and deletes logical switch
ports on sw0 (northd turns them into Port_Binding/Logical_Flow churn on a
datapath local to hv1), one adds and deletes DNS records of sw0's DNS row,
and one SB transaction adds and deletes MAC_Binding rows on lr0-sw1.  Each
kind is a bounded FIFO: once `POOL` rows exist, every add deletes the
oldest, so the databases do not grow.  On stop, everything it added is
deleted.
"""

from __future__ import annotations

import collections
import multiprocessing as mp
import time
from dataclasses import dataclass

from . import ovsdb

TICK = 0.1
POOL = {"lsp": 100, "dns": 400, "mb": 500}
MB_BASE = (10 << 24) | (2 << 16)        # 10.2.0.0/16: no workload uses it


@dataclass(frozen=True)
class ChurnRates:
    """Per second.  lsp: port adds (as many deletes once the pool is full)."""
    lsp: int = 100
    dns: int = 200
    mb: int = 100


def _mb_deletes(uuids) -> list[dict]:
    return [{"op": "delete", "table": "MAC_Binding", "where": [["_uuid", "==", ["uuid", u]]]}
            for u in uuids]


def churn_main(nb_remote: str, sb_remote: str, rates: ChurnRates, stop, counts) -> None:
    """Process entry point (the churn process's only thread): write until
    `stop` (an mp.Event) is set, then delete what was added.  `counts`
    (mp.Array of 3 ints) receives the rows added per kind."""
    nb = ovsdb.Client(nb_remote, "OVN_Northbound")
    sb = ovsdb.Client(sb_remote, "OVN_Southbound")
    sw0 = ovsdb.uuid_of(nb, "Logical_Switch", [["name", "==", "sw0"]])
    lr0_dp = ovsdb.uuid_of(sb, "Datapath_Binding",
                           [["external_ids", "includes", ovsdb.omap([["name", "lr0"]])]])
    lsps, names, mbs = collections.deque(), collections.deque(), collections.deque()
    n = 0
    per_tick = {k: max(1, round(getattr(rates, k) * TICK)) for k in POOL}
    next_t = time.monotonic()
    try:
        while not stop.is_set():
            # Logical switch ports: insert + reference from sw0 (unreferenced rows are GC'd).
            ops, new = [], []
            for i in range(per_tick["lsp"]):
                k = n + i
                mac = f"0a:00:00:{k >> 16 & 255:02x}:{k >> 8 & 255:02x}:{k & 255:02x}"
                ops.append({"op": "insert", "table": "Logical_Switch_Port", "uuid-name": f"p{i}",
                            "row": {"name": f"churn-{k}",
                                    "addresses": ovsdb.oset([f"{mac} 10.0.0.{20 + k % 200}"])}})
                new.append(["named-uuid", f"p{i}"])
            old = [lsps.popleft() for _ in range(max(0, len(lsps) + len(new) - POOL["lsp"]))]
            muts = [["ports", "insert", ovsdb.oset(new)]]
            if old:
                muts.insert(0, ["ports", "delete", ovsdb.oset([["uuid", u] for u in old])])
            ops.append({"op": "mutate", "table": "Logical_Switch",
                        "where": [["_uuid", "==", ["uuid", sw0]]], "mutations": muts})
            res = nb.transact(*ops)
            lsps.extend(r["uuid"][1] for r in res[:len(new)])
            counts[0] += len(new)

            add = {f"churn{n + i}.ovn.test": ovsdb.ip_str(MB_BASE + (n + i) % 60000)
                   for i in range(per_tick["dns"])}
            gone = [names.popleft() for _ in range(max(0, len(names) + len(add) - POOL["dns"]))]
            ovsdb.dns_records(nb, "bench-dns", add=add, remove=gone)
            names.extend(add)
            counts[1] += len(add)

            ops = [ovsdb.mac_binding_row(lr0_dp, "lr0-sw1", MB_BASE + (n + i) % 60000)
                   for i in range(per_tick["mb"])]
            old = [mbs.popleft() for _ in range(max(0, len(mbs) + len(ops) - POOL["mb"]))]
            ops += _mb_deletes(old)
            res = sb.transact(*ops)
            mbs.extend(r["uuid"][1] for r in res[:per_tick["mb"]])
            counts[2] += per_tick["mb"]

            n += max(per_tick.values())
            next_t += TICK
            time.sleep(max(0.0, next_t - time.monotonic()))
    finally:
        if lsps:
            nb.transact({"op": "mutate", "table": "Logical_Switch",
                         "where": [["_uuid", "==", ["uuid", sw0]]],
                         "mutations": [["ports", "delete",
                                        ovsdb.oset([["uuid", u] for u in lsps])]]})
        ovsdb.dns_records(nb, "bench-dns", remove=list(names))
        if mbs:
            sb.transact(*_mb_deletes(mbs))
        nb.close()
        sb.close()


class Churn:
    """Context manager: the churn process runs inside the `with` block."""

    def __init__(self, nb_remote: str, sb_remote: str, rates: ChurnRates = ChurnRates()) -> None:
        ctx = mp.get_context("fork")
        self.stop_ev = ctx.Event()
        self.counts = ctx.Array("q", 3)
        self.proc = ctx.Process(target=churn_main, name="bench-churn", daemon=True,
                                args=(nb_remote, sb_remote, rates, self.stop_ev, self.counts))
        self.t0 = 0.0
        self.elapsed = 0.0

    def __enter__(self) -> Churn:
        self.proc.start()
        self.t0 = time.monotonic()
        return self

    def __exit__(self, *exc) -> None:
        self.elapsed = time.monotonic() - self.t0
        self.stop_ev.set()
        self.proc.join(timeout=30)
        if self.proc.is_alive():          # by pid: our own child
            self.proc.kill()
            self.proc.join(timeout=5)

    def achieved(self) -> dict[str, float]:
        """Rows added per second per kind, over the time it ran."""
        e = self.elapsed or (time.monotonic() - self.t0)
        return {k: round(self.counts[i] / e, 1) for i, k in enumerate(("lsp", "dns", "mb"))}
