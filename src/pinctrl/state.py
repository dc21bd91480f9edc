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

from pinctrl.seq import Seq


class SharedState:
    __slots__ = ("mutex", "handler_seq", "main_seq", "br_int_name",
                 "chassis_name")

    def __init__(self) -> None:
        self.mutex = threading.Lock()
        self.handler_seq = Seq()
        self.main_seq = Seq()
        # (mutex) Integration bridge name; written by main, read by handler
        # to build the OpenFlow target.  None: stay disconnected.
        self.br_int_name: str | None = None
        # (mutex) This chassis's name (external_ids:system-id); main writes.
        self.chassis_name: str | None = None

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
