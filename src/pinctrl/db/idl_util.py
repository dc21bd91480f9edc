"""OVSDB helpers for the main thread: fetch a schema, build a trimmed IDL."""

from __future__ import annotations

import errno
import os

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


def _get_schema(remote: str, db_name: str, timeout_ms: int) -> dict:
    if not ovs.stream.Stream.is_valid_name(remote):
        raise DbError("invalid remote (expected unix:, tcp:, ssl: ...)")
    err, stream = ovs.stream.Stream.open_block(
        ovs.stream.Stream.open(remote), timeout_ms)
    if err or stream is None:
        raise DbError(os.strerror(err) if err else "timeout")
    rpc = ovs.jsonrpc.Connection(stream)
    try:
        req = ovs.jsonrpc.Message.create_request("get_schema", [db_name])
        err = rpc.send(req)
        deadline = ovs.timeval.msec() + timeout_ms
        while not err:
            rpc.run()
            err, msg = rpc.recv()
            if msg is not None and msg.id == req.id:
                if msg.type == ovs.jsonrpc.Message.T_REPLY:
                    schema: dict = msg.result
                    return schema
                raise DbError(f"get_schema failed: {msg.error}")
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
