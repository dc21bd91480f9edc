"""State shared by the main thread and the pinctrl_handler thread.

One mutex ('mutex') guards the fields marked "(mutex)".  It is held only to
swap in a snapshot built outside the lock or to hand a queue over; never
across database work, so the handler never waits behind the main thread
(OVN spent 2024-2026 removing long pinctrl_mutex holds, see
docs/architecture.md).

Two Seqs wake the threads (OVN's pinctrl_handler_seq / pinctrl_main_seq):
  handler_seq  main -> handler: "new configuration or data for you"
  main_seq     handler -> main: "something to write to the Southbound DB"
"""

from __future__ import annotations

import threading
from types import MappingProxyType
from typing import Any, Mapping

from pinctrl.seq import Seq

EMPTY_MAP: Mapping[Any, Any] = MappingProxyType({})


class SharedState:
    __slots__ = ("mutex", "handler_seq", "main_seq", "br_int_name",
                 "chassis_name", "dns_cache")

    def __init__(self) -> None:
        self.mutex = threading.Lock()
        self.handler_seq = Seq()
        self.main_seq = Seq()
        # (mutex) Integration bridge name; written by main, read by handler
        # to build the OpenFlow target.  None: stay disconnected.
        self.br_int_name: str | None = None
        # (mutex) This chassis's name (external_ids:system-id); main writes.
        self.chassis_name: str | None = None
        # (mutex) DNS records for dns_lookup: datapath tunnel key ->
        # {query name as lower-case bytes -> DnsRecord} (actions/dns.py,
        # build_dns_cache).  Written only by the main thread (SbSync), which
        # builds a new immutable mapping outside the mutex and swaps the
        # reference in under it; the handler takes the reference under the
        # mutex and reads it after releasing it.  Never mutated in place.
        self.dns_cache: Mapping[int, Mapping[bytes, Any]] = EMPTY_MAP

    def set_bridge(self, br_int_name: str | None,
                   chassis_name: str | None) -> None:
        """Main thread: publish the bridge and chassis; wake the handler if
        they changed."""
        with self.mutex:
            changed = (br_int_name != self.br_int_name
                       or chassis_name != self.chassis_name)
            self.br_int_name = br_int_name
            self.chassis_name = chassis_name
        if changed:
            self.handler_seq.change()

    def set_dns_cache(self, cache: Mapping[int, Mapping[bytes, Any]]) -> None:
        """Main thread: publish a new DNS cache snapshot (built outside the
        mutex, never mutated afterwards) and wake the handler."""
        with self.mutex:
            self.dns_cache = cache
        self.handler_seq.change()

    def get_dns_cache(self) -> Mapping[int, Mapping[bytes, Any]]:
        """Handler thread: the current DNS snapshot.  The mutex is held only
        to read the reference; use the result lock-free."""
        with self.mutex:
            return self.dns_cache
