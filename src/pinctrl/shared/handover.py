"""Keyed tables the pinctrl_handler thread fills and the main thread takes.

This is how learnt data (MAC bindings, FDB entries, controller events,
virtual-port claims, RARP activations) crosses from the handler to the
main thread, which writes it to the Southbound DB.  As in OVN each table
is capped (1000 entries) and guarded by the one shared mutex
(SharedState.mutex); unlike OVN the main thread never works on the table
under the lock: take() swaps the whole dict out, so the handler waits at
most for a pointer swap, never behind database work.
"""

from __future__ import annotations

import threading
from typing import Callable, Generic, Hashable, TypeVar

from pinctrl.support import coverage

MAX_ENTRIES = 1000      # OVN's cap for each of these tables

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class Handover(Generic[K, V]):
    """One handler -> main table of K -> V.

    'merge(old, new)' decides what a put of an existing key keeps (default:
    the new value).  Written by the handler (put), emptied by the main
    thread (take); both under 'mutex'."""

    __slots__ = ("mutex", "cap", "drop_counter", "merge", "_entries")

    def __init__(self, mutex: threading.Lock, drop_counter: str,
                 cap: int = MAX_ENTRIES,
                 merge: Callable[[V, V], V] | None = None) -> None:
        self.mutex = mutex
        self.cap = cap
        self.drop_counter = drop_counter
        self.merge = merge
        # (mutex) key -> value; replaced, never mutated, by take().
        self._entries: dict[K, V] = {}

    def put(self, key: K, value: V) -> bool:
        """Handler thread: add or update 'key'.  A new key beyond the cap
        is dropped and counted; returns whether the entry was stored."""
        with self.mutex:
            entries = self._entries
            old = entries.get(key)
            if old is not None:
                entries[key] = self.merge(old, value) if self.merge else value
                return True
            if len(entries) >= self.cap:
                stored = False
            else:
                entries[key] = value
                stored = True
        if not stored:
            coverage.inc(self.drop_counter)
        return stored

    def put_many(self, items: list[tuple[K, V]]) -> int:
        """Handler thread: put() each (key, value) in order under one take
        of the mutex (a batch of packet-ins); returns how many were
        stored, the others are dropped and counted."""
        stored = 0
        with self.mutex:
            entries, merge, cap = self._entries, self.merge, self.cap
            for key, value in items:
                old = entries.get(key)
                if old is not None:
                    entries[key] = merge(old, value) if merge else value
                elif len(entries) < cap:
                    entries[key] = value
                else:
                    continue
                stored += 1
        if stored < len(items):
            coverage.inc(self.drop_counter, len(items) - stored)
        return stored

    def take(self) -> dict[K, V]:
        """Main thread: everything put since the last take()."""
        with self.mutex:
            if not self._entries:
                return {}
            entries, self._entries = self._entries, {}
        return entries

    def __len__(self) -> int:
        return len(self._entries)
