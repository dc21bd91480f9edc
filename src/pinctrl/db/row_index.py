"""RowIndex: one replicated table's rows by the values of some columns.

python-ovs's custom indexes (Idl.index_create) keep a sorted list whose
comparisons run in Python, and update it on every write of an indexed
column, our own transaction's inserts included: for MAC_Binding that was
~40% of the main thread's time per learnt binding (issue 18: 308 -> 170
µs per binding written with the index replaced by this dict).

A RowIndex is a dict of key -> row uuid fed by the IDL's notify hook
(SbSync._notify calls row_event() for the table's rows during idl.run()).
A reconnection clears the IDL without delete notices and a row's key
columns may change: get() checks the row it finds and forgets a stale
entry.  Main thread only.
"""

from __future__ import annotations

import uuid
from typing import Any

import ovs.db.idl


class RowIndex:
    __slots__ = ("columns", "_uuids")

    def __init__(self, *columns: str) -> None:
        self.columns = columns
        self._uuids: dict[tuple[Any, ...], uuid.UUID] = {}

    def _key(self, row: Any) -> tuple[Any, ...]:
        return tuple(getattr(row, c) for c in self.columns)

    def row_event(self, event: str, row: Any) -> None:
        """The IDL's notice about one of the table's rows."""
        key = self._key(row)
        if event == ovs.db.idl.ROW_DELETE:
            if self._uuids.get(key) == row.uuid:
                del self._uuids[key]
        else:
            self._uuids[key] = row.uuid

    def get(self, table: Any, *key: Any) -> Any:
        """The row of 'table' (the IDL's table) whose columns have the
        values 'key', or None."""
        u = self._uuids.get(key)
        if u is None:
            return None
        row = table.rows.get(u)
        if row is None or self._key(row) != key:
            del self._uuids[key]
            return None
        return row

    def __len__(self) -> int:
        return len(self._uuids)
