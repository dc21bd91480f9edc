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
from collections import deque
from collections.abc import Callable
from typing import Any, Iterable, Protocol

import ovs.db.data
import ovs.db.idl
import ovs.vlog

from pinctrl.db.addresses import parse_mac
from pinctrl.db.garp_plan import MacBindingWrite
from pinctrl.db.local_datapaths import ref
from pinctrl.db.row_index import RowIndex
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


def lookup(idl: ovs.db.idl.Idl, index: RowIndex, logical_port: str,
           ip: str) -> Any:
    return index.get(idl.tables[TABLE], logical_port, ip)


def describe_key(key: MacBindingKey) -> str:
    """A learnt binding's key, for the log."""
    dp_key, port_key, ip16 = key
    return f"datapath {dp_key} port {port_key} ip {format_ip(ip16)}"


def _due(now: int) -> Callable[[Learnt], bool]:
    return lambda learnt: learnt.commit_at <= now


def upsert(txn: ovs.db.idl.Transaction, ctx: SbContext,
           logical_port: str, ip: str, mac: str, datapath: Any,
           update_only: bool = False,
           inserted: dict[tuple[str, str], Any] | None = None) -> bool:
    """mac_binding_add_to_sb(): find the (logical_port, ip) row, insert it
    if absent (unless 'update_only'), and write mac - and timestamp when
    the schema has it - only if the MAC differs.  True if it wrote.
    'inserted' holds the rows this transaction inserted (not in the
    index until the server echoes them)."""
    table = ctx.idl.tables[TABLE]
    key = (logical_port, ip)
    row = lookup(ctx.idl, ctx.mac_binding_index, logical_port, ip)
    if row is None and inserted is not None:
        row = inserted.get(key)
    if row is None:
        if update_only:
            return False
        row = txn.insert(table)
        _set(txn, row, "logical_port", logical_port)
        _set(txn, row, "ip", ip)
        _set(txn, row, "datapath", datapath)
        if inserted is not None:
            inserted[key] = row
    elif row.mac == mac:
        return False
    _set(txn, row, "mac", mac)
    if "timestamp" in table.columns:
        _set(txn, row, "timestamp", int(time.time() * 1000))
    return True


def _set(txn: ovs.db.idl.Transaction, row: Any, column: str,
         value: Any) -> None:
    """row.<column> = value, as Row.__setattr__ less its upkeep of
    python-ovs's indexes: MAC_Binding has none (RowIndex instead), and the
    hasattr() that upkeep starts with builds the column's default value for
    every new row (a third of the main thread's time per binding).  Falls
    back to the attribute write on a python-ovs without Transaction._write
    (and for rows that are not python-ovs's: the unit tests' fakes)."""
    if _TXN_WRITE is None or not isinstance(row, ovs.db.idl.Row):
        setattr(row, column, value)
        return
    col = row._table.columns[column]
    _TXN_WRITE(txn, row, col, ovs.db.data.Datum.from_python(
        col.type, value, _ROW_TO_UUID))


# python-ovs 3.1 and 4.0 internals used by _set().
_TXN_WRITE = getattr(ovs.db.idl.Transaction, "_write", None)
_ROW_TO_UUID = getattr(ovs.db.idl, "_row_to_uuid", None)
if _ROW_TO_UUID is None:
    _TXN_WRITE = None


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
        self.recent: deque[tuple[str, str, str]] = deque(maxlen=100)
        # (dp key, port key) -> (logical_port, datapath ref) for the port
        # lookups of the current ctx.ports (IDL row reads are slow).
        self._ports: dict[tuple[int, int], tuple[str, Any] | None] = {}
        self._ports_of: Any = None

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
        if self._ports_of is not ctx.ports:
            self._ports_of = ctx.ports
            self._ports.clear()
        inserted: dict[tuple[str, str], Any] = {}
        for key, learnt in batch:
            dp_key, port_key, ip16 = key
            port = self._port(ctx, dp_key, port_key)
            if port is None:
                coverage.inc("pinctrl_drop_mac_binding_unknown_port")
                rl_log(vlog, "warn", _rl,
                       f"couldn't find the logical port with datapath key "
                       f"{dp_key} and port key {port_key}")
                self.queue.drop(key)
                continue
            lport, dp_ref = port
            ip, mac = format_ip(ip16), fmt_mac(learnt.mac)
            self._written(upsert(txn, ctx, lport, ip, mac, dp_ref,
                                 inserted=inserted), lport, ip, mac)
        for _, w in local:
            self._written(upsert(txn, ctx, w.logical_port, w.ip, w.mac,
                                 w.datapath, w.update_only, inserted),
                          w.logical_port, w.ip, w.mac)
        return True

    def _port(self, ctx: SbContext, dp_key: int, port_key: int
              ) -> tuple[str, Any] | None:
        """(logical_port, datapath ref) of a port, read from its
        Port_Binding row once per ctx.ports."""
        k = (dp_key, port_key)
        try:
            return self._ports[k]
        except KeyError:
            pass
        pb = ctx.ports.by_key.get(k)
        port = None if pb is None else (pb.logical_port, ref(pb.datapath))
        self._ports[k] = port
        return port

    def _written(self, wrote: bool, lport: str, ip: str, mac: str) -> None:
        if wrote:
            self.recent.append((lport, ip, mac))
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
        row = lookup(idl, ctx.mac_binding_index, lport, format_ip(key[2]))
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
