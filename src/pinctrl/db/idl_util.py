"""OVSDB helpers for the main thread: fetch a schema (blocking at start-up,
in the background with SchemaFetch at run time), build a trimmed IDL, its
inactivity probe."""

from __future__ import annotations

import errno
import os
import ssl
from typing import Mapping

import ovs.db.idl
import ovs.jsonrpc
import ovs.poller
import ovs.stream
import ovs.timeval
import ovs.util


class DbError(RuntimeError):
    """A database that cannot be reached or used."""


def split_remotes(remotes: str) -> list[str]:
    return [r.strip() for r in remotes.split(",") if r.strip()]


def fetch_schema(remotes: str, db_name: str, timeout_s: float) -> dict:
    """Ask the first answering remote for 'db_name''s schema (JSON dict).
    Tries each comma-separated remote until 'timeout_s' runs out; raises
    DbError with every remote's reason otherwise."""
    deadline = ovs.timeval.msec() + timeout_s * 1000
    reasons = []
    while True:
        for remote in split_remotes(remotes):
            left = max(1, int(deadline - ovs.timeval.msec()))
            try:
                result = _get_schema(remote, db_name, left)
            except DbError as e:
                reasons.append(f"{remote}: {e}")
                continue
            return result
        if ovs.timeval.msec() >= deadline:
            break
        _sleep_ms(min(500, max(0, deadline - ovs.timeval.msec())))
    uniq = list(dict.fromkeys(reasons))
    raise DbError("; ".join(uniq[-3:]) or f"no remote in {remotes!r}")


def _sleep_ms(ms: float) -> None:
    poller = ovs.poller.Poller()
    poller.timer_wait(int(ms))
    poller.block()


def _schema_request(db_name: str) -> ovs.jsonrpc.Message:
    return ovs.jsonrpc.Message.create_request("get_schema", [db_name])


def _schema_reply(msg: ovs.jsonrpc.Message) -> dict:
    """The schema a reply to _schema_request() carries; DbError if the
    server answered with an error (no such database ...)."""
    if msg.type == ovs.jsonrpc.Message.T_REPLY and isinstance(msg.result,
                                                             dict):
        return msg.result
    raise DbError(f"get_schema failed: {msg.error}")


def _get_schema(remote: str, db_name: str, timeout_ms: int) -> dict:
    if not ovs.stream.Stream.is_valid_name(remote):
        raise DbError("invalid remote (expected unix:, tcp:, ssl: ...)")
    try:
        err, stream = ovs.stream.Stream.open_block(
            ovs.stream.Stream.open(remote), timeout_ms)
    except (ssl.SSLError, OSError) as e:
        # Debian's python-ovs 3.1 lets a failed TLS handshake (a server
        # certificate from an untrusted CA, ...) escape open_block().
        raise DbError(f"{type(e).__name__}: {e}") from None
    if err or stream is None:
        raise DbError(os.strerror(err) if err else "timeout")
    rpc = ovs.jsonrpc.Connection(stream)
    try:
        req = _schema_request(db_name)
        err = rpc.send(req)
        deadline = ovs.timeval.msec() + timeout_ms
        while not err:
            rpc.run()
            err, msg = rpc.recv()
            if msg is not None and msg.id == req.id:
                return _schema_reply(msg)
            if err and err != errno.EAGAIN:
                break
            err = 0
            left = deadline - ovs.timeval.msec()
            if left <= 0:
                raise DbError("timeout waiting for the schema")
            poller = ovs.poller.Poller()
            rpc.wait(poller)
            rpc.recv_wait(poller)
            poller.timer_wait(int(left))
            poller.block()
        raise DbError(os.strerror(err) if err else "closed")
    finally:
        rpc.close()


def make_idl(remotes: str, schema_json: dict, tables: dict[str, list[str]],
             leader_only: bool = False,
             probe_interval_ms: int | None = None) -> ovs.db.idl.Idl:
    """An IDL replicating only 'tables' (name -> columns) of the schema.
    Tables or columns the server's schema lacks are skipped, so an older
    or newer Southbound schema still works."""
    helper = ovs.db.idl.SchemaHelper(schema_json=schema_json)
    have = schema_json.get("tables", {})
    for table, columns in tables.items():
        if table not in have:
            continue
        cols = [c for c in columns if c in have[table].get("columns", {})]
        helper.register_columns(table, cols)
    return ovs.db.idl.Idl(remotes, helper, probe_interval=probe_interval_ms,
                          leader_only=leader_only)


def idl_connected(idl: ovs.db.idl.Idl) -> bool:
    return bool(idl._session.is_connected())


def idl_remote(idl: ovs.db.idl.Idl) -> str:
    try:
        name: str = idl._session.get_name()
        return name
    except Exception:  # pragma: no cover - python-ovs internals
        return "?"


class SchemaFetch:
    """'db_name''s schema from 'remotes' without blocking (main thread):
    run() once per loop iteration returns None until the schema arrives,
    wait(poller) wakes the loop for the session's traffic and timers.  The
    connection is python-ovs's reconnecting session, as the IDL's: every
    remote in turn, back-off 1 s doubling to 8 s, the inactivity probe of
    'probe_interval_ms'.  A remote that does not serve 'db_name' is left
    for the next one after a back-off.  close() when done."""

    def __init__(self, remotes: str, db_name: str,
                 probe_interval_ms: int | None = None) -> None:
        self.remotes = remotes
        self.db_name = db_name
        self.session = ovs.jsonrpc.Session.open_multiple(
            split_remotes(remotes) or [remotes])
        if probe_interval_ms is not None:
            self.session.reconnect.set_probe_interval(probe_interval_ms)
        self._request_id: object = None
        self._seqno = -1                # session seqno the request went on
        self.last_error: str | None = None

    def run(self) -> dict | None:
        s = self.session
        s.run()
        if not s.is_connected():
            return None
        if s.get_seqno() != self._seqno:        # a new connection
            self._seqno = s.get_seqno()
            req = _schema_request(self.db_name)
            self._request_id = req.id
            s.send(req)
        while True:
            msg = s.recv()
            if msg is None:
                return None
            if msg.id != self._request_id:
                continue
            try:
                return _schema_reply(msg)
            except DbError as e:
                self.last_error = f"{s.get_name()}: {e}"
                s.force_reconnect()
                return None

    def wait(self, poller: ovs.poller.Poller) -> None:
        self.session.wait(poller)
        self.session.recv_wait(poller)

    def close(self) -> None:
        self.session.close()


# ovn-controller's DEFAULT_PROBE_INTERVAL_MSEC.
SB_PROBE_INTERVAL_DEFAULT_MS = 5000


def _c_int(text: str | None) -> int | None:
    """OVS str_to_int(text, 10): strtoll with the whole string consumed,
    within a C int; None otherwise."""
    if text is None:
        return None
    s = text.lstrip(" \t\n\v\f\r")
    digits = s[1:] if s[:1] in "+-" else s
    if not digits or not all("0" <= c <= "9" for c in digits):
        return None
    # int() refuses more than 4300 digits, leading zeros included: an SB
    # option may hold any number of them.
    digits = digits.lstrip("0") or "0"
    if len(digits) > 10:                # beyond a C int anyway
        return None
    value = -int(digits) if s[:1] == "-" else int(digits)
    return value if -2**31 <= value < 2**31 else None


def smap_get_int(smap: Mapping[str, str], key: str, default: int) -> int:
    """OVS smap_get_int() on an OVSDB string map."""
    value = _c_int(smap.get(key))
    return default if value is None else value


def sb_probe_interval(external_ids: Mapping[str, str], chassis: str | None,
                      remotes: str) -> int:
    """Pure.  The Southbound inactivity probe, in ms, as ovn-controller
    23.03 sets it (update_sb_db()): external_ids:ovn-remote-probe-interval
    -<chassis>, else ovn-remote-probe-interval, else 5000 ms, or 0 (off)
    when the remote does not need probes (unix:)."""
    first = (split_remotes(remotes) or [""])[0]
    default = (0 if first and not ovs.stream.stream_or_pstream_needs_probes(
        first) else SB_PROBE_INTERVAL_DEFAULT_MS)
    key = "ovn-remote-probe-interval"
    value = smap_get_int(external_ids, key, default)
    if chassis:
        value = smap_get_int(external_ids, f"{key}-{chassis}", value)
    return value


def set_probe_interval(idl: ovs.db.idl.Idl, interval_ms: int) -> bool:
    """ovsdb_idl_set_probe_interval(): 0 turns probes off, anything else
    is at least 1 s (python-ovs's reconnect FSM).  True if it changed."""
    fsm = idl._session.reconnect
    want = interval_ms and max(1000, interval_ms)
    if fsm.get_probe_interval() == want:
        return False
    fsm.set_probe_interval(interval_ms)
    return True
