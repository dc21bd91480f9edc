"""SB MAC_Binding: write what put_arp/put_nd learnt, and tell the handler
which neighbours the table now resolves (for its buffered packets).

Main thread only.  Behaviour of 23.03 (controller/pinctrl.c
run_put_mac_binding(), mac_binding_add_to_sb()): the entry's port is looked
up by (datapath key, port key); the row is found by (logical_port, ip) and
inserted if absent (logical_port, ip, datapath); mac - and timestamp, when
the schema has it - are written only if the MAC differs, so re-learning an
unchanged MAC writes nothing.  Unlike 23.03, an entry is not forgotten when
its transaction fails: it is retried until it lands (db/txn.py).
"""

from __future__ import annotations

import socket
import time
from collections.abc import Callable
from typing import Any, Iterable, Protocol

import ovs.db.idl
import ovs.vlog

from pinctrl.db.addresses import parse_mac
from pinctrl.db.garp_plan import MacBindingWrite
from pinctrl.db.local_datapaths import ref
from pinctrl.db.txn import RetryQueue
from pinctrl.db.writers import HandoverWriter, SbContext
from pinctrl.packet.headers import fmt_mac
from pinctrl.shared.records import IPV4_MAPPED_PREFIX, Learnt, MacBindingKey
from pinctrl.shared.state import SharedState
from pinctrl.support import appctl, coverage
from pinctrl.support.log import RateLimit, rl_log

vlog = ovs.vlog.Vlog("mac_binding")
_rl = RateLimit(5, 5)

TABLE = "MAC_Binding"
INDEX = "lport_ip"


def format_ip(ip16: bytes) -> str:
    """IPv4-mapped -> dotted quad, else inet_ntop's IPv6 text (as OVN)."""
    if ip16[:12] == IPV4_MAPPED_PREFIX:
        return socket.inet_ntop(socket.AF_INET, ip16[12:])
    return socket.inet_ntop(socket.AF_INET6, ip16)


def parse_ip(text: str) -> bytes | None:
    """SB 'ip' text -> 16 bytes (IPv4 mapped), None if unparsable."""
    try:
        return IPV4_MAPPED_PREFIX + socket.inet_pton(socket.AF_INET, text)
    except OSError:
        pass
    try:
        return socket.inet_pton(socket.AF_INET6, text)
    except OSError:
        return None


def create_index(idl: ovs.db.idl.Idl) -> None:
    """Before the first idl.run(): the (logical_port, ip) index."""
    if TABLE in idl.tables:
        idl.index_create(TABLE, INDEX).add_columns("logical_port", "ip")


def lookup(idl: ovs.db.idl.Idl, logical_port: str, ip: str) -> Any:
    table = idl.tables[TABLE]
    probe = table.rows.IndexEntry(logical_port=logical_port, ip=ip)
    return next(idl.index_equal(TABLE, INDEX, probe), None)


def describe_key(key: MacBindingKey) -> str:
    """A learnt binding's key, for the log."""
    dp_key, port_key, ip16 = key
    return f"datapath {dp_key} port {port_key} ip {format_ip(ip16)}"


def _due(now: int) -> Callable[[Learnt], bool]:
    return lambda learnt: learnt.commit_at <= now


def upsert(txn: ovs.db.idl.Transaction, idl: ovs.db.idl.Idl,
           logical_port: str, ip: str, mac: str, datapath: Any,
           update_only: bool = False) -> bool:
    """mac_binding_add_to_sb(): find the (logical_port, ip) row, insert it
    if absent (unless 'update_only'), and write mac - and timestamp when
    the schema has it - only if the MAC differs.  True if it wrote."""
    table = idl.tables[TABLE]
    row = lookup(idl, logical_port, ip)
    if row is None:
        if update_only:
            return False
        row = txn.insert(table)
        row.logical_port = logical_port
        row.ip = ip
        row.datapath = datapath
    elif row.mac == mac:
        return False
    row.mac = mac
    if "timestamp" in table.columns:
        row.timestamp = int(time.time() * 1000)
    return True


class MacBindingWriter(HandoverWriter[MacBindingKey, Learnt]):
    """put_mac_bindings -> SB MAC_Binding (main thread); also the bindings
    a new local gARP announcement implies for the peer routers
    (controller/pinctrl.c send_garp_locally(),
    queued by SbSync with add_local())."""
    name = "mac_bindings"

    def __init__(self, shared: SharedState) -> None:
        super().__init__(shared.put_mac_bindings,
                         "pinctrl_drop_put_mac_binding_retry",
                         merge=lambda old, new: new._replace(
                             commit_at=old.commit_at),
                         describe=describe_key)
        self.local: RetryQueue[tuple[str, str], MacBindingWrite] = \
            RetryQueue("pinctrl_drop_garp_mac_binding_retry",
                       name="garp_mac_bindings",
                       describe=lambda k: f"logical port {k[0]} ip {k[1]}")
        self.n_written = 0
        # Recently written (logical_port, ip, mac), for pinctrl/mac-bindings.
        self.recent: list[tuple[str, str, str]] = []

    def add_local(self, writes: Iterable[MacBindingWrite]) -> None:
        """Main thread: queue send_garp_locally()'s MAC_Binding writes."""
        self.local.add({(w.logical_port, w.ip): w for w in writes})

    def has_work(self, now: int) -> bool:
        return bool(self.local.pending) or any(
            v.commit_at <= now for v in self.queue.pending.values())

    def next_due(self) -> int | None:
        pending = self.queue.pending
        return min(v.commit_at for v in pending.values()) if pending else None

    def queues(self) -> tuple[RetryQueue, ...]:
        return (self.queue, self.local)

    def __len__(self) -> int:
        return len(self.queue) + len(self.local)

    def write(self, txn: ovs.db.idl.Transaction, ctx: SbContext,
              now: int) -> bool:
        batch = self.queue.start(_due(now))
        local = self.local.start()
        if not batch and not local:
            return False
        for key, learnt in batch:
            dp_key, port_key, ip16 = key
            pb = ctx.ports.by_key.get((dp_key, port_key))
            if pb is None:
                coverage.inc("pinctrl_drop_mac_binding_unknown_port")
                rl_log(vlog, "warn", _rl,
                       f"couldn't find the logical port with datapath key "
                       f"{dp_key} and port key {port_key}")
                self.queue.drop(key)
                continue
            self._written(upsert(txn, ctx.idl, pb.logical_port,
                                 format_ip(ip16), fmt_mac(learnt.mac),
                                 ref(pb.datapath)),
                          pb.logical_port, format_ip(ip16), learnt.mac)
        for _, w in local:
            self._written(upsert(txn, ctx.idl, w.logical_port, w.ip, w.mac,
                                 w.datapath, w.update_only),
                          w.logical_port, w.ip, w.mac)
        return True

    def _written(self, wrote: bool, lport: str, ip: str,
                 mac: str | bytes) -> None:
        if wrote:
            mac = mac if isinstance(mac, str) else fmt_mac(mac)
            self.recent = (self.recent + [(lport, ip, mac)])[-100:]
            self.n_written += 1


def bound_next_hops(keys: Iterable[tuple[int, int, bytes]],
                    idl: ovs.db.idl.Idl, ctx: SbContext
                    ) -> list[tuple[tuple, bytes]]:
    """For the next hops buffered packets wait for, (dp key, port key,
    ip16), those a MAC_Binding row already resolves: ((key,), MAC).  The
    row is looked up by the key's port, or for a chassis-redirect port by
    the port it redirects (its options:distributed-port).  OVN
    run_buffered_binding(): existence releases, not only a change.  Main
    thread."""
    out = []
    for key in keys:
        pb = ctx.ports.by_key.get(key[:2])
        if pb is None:
            continue
        lport = pb.logical_port
        if pb.type == "chassisredirect":
            lport = pb.options.get("distributed-port") or lport[3:]
        row = lookup(idl, lport, format_ip(key[2]))
        mac = parse_mac(row.mac) if row is not None else None
        if mac is not None:
            out.append(((key,), mac))
    return out


class MacBindingsContext(appctl.CommandContext, Protocol):
    """What pinctrl/mac-bindings reads besides the shared state."""

    @property
    def mac_bindings(self) -> MacBindingWriter: ...


@appctl.command("pinctrl/mac-bindings")
def _cmd_mac_bindings(ctx: MacBindingsContext, args: list[str]) -> str:
    """ovs-appctl pinctrl/mac-bindings (main thread): learnt bindings not
    yet in the SB, and the last ones written."""
    w = ctx.mac_bindings
    lines = [f"handed over by the handler, not yet taken: "
             f"{len(ctx.shared.put_mac_bindings)}",
             f"pending: {len(w.queue.pending) + len(w.local.pending)}, "
             f"in flight: {len(w.queue.in_flight) + len(w.local.in_flight)}"
             f", written since start: {w.n_written}",
             "recently written (logical_port ip mac):"]
    lines += [f"  {lport} {ip} {mac}" for lport, ip, mac in w.recent]
    return "\n".join(lines) + "\n"
