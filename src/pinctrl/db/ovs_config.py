"""The local Open_vSwitch database, read the way ovn-controller reads it:
external_ids:ovn-remote (the Southbound remote) and external_ids:system-id
(this chassis's name).  Main thread only."""

from __future__ import annotations

from typing import NamedTuple

import ovs.poller

from pinctrl.db import idl_util
from pinctrl.db.garp_plan import Iface
from pinctrl.db.local_datapaths import bridge_mapping_networks

OVS_DB_NAME = "Open_vSwitch"
OVS_TABLES = {"Open_vSwitch": ["external_ids"],
              "Bridge": ["name", "ports"],
              # br-int's interfaces, for gARP (garp_plan.localnet_vifs)
              "Port": ["name", "interfaces", "external_ids"],
              "Interface": ["name", "ofport", "external_ids"]}


class ChassisInputs(NamedTuple):
    """What the Southbound side needs from the local OVS DB besides the
    chassis name: br-int's interfaces and the networks ovn-bridge-mappings
    plug on this chassis.  Comparable, so SbSync can tell a change."""
    ifaces: tuple[Iface, ...]
    networks: frozenset[str]


class OvsConfig:
    def __init__(self, remote: str, schema_json: dict) -> None:
        self.remote = remote
        self.idl = idl_util.make_idl(remote, schema_json, OVS_TABLES)
        # chassis_inputs()'s last result, keyed by (IDL seqno, bridge).
        self._inputs: tuple[tuple[int, str], ChassisInputs] | None = None

    def run(self) -> None:
        self.idl.run()

    def wait(self, poller: ovs.poller.Poller) -> None:
        self.idl.wait(poller)

    def close(self) -> None:
        self.idl.close()

    def ready(self) -> bool:
        """True once the Open_vSwitch row has been replicated."""
        return bool(self.idl.tables["Open_vSwitch"].rows)

    def _external_ids(self) -> dict[str, str]:
        for row in self.idl.tables["Open_vSwitch"].rows.values():
            return dict(row.external_ids)
        return {}

    @property
    def external_ids(self) -> dict[str, str]:
        """The Open_vSwitch row's external_ids (a copy; empty before it is
        replicated)."""
        return self._external_ids()

    @property
    def ovn_remote(self) -> str | None:
        return self._external_ids().get("ovn-remote")

    @property
    def system_id(self) -> str | None:
        return self._external_ids().get("system-id")

    def chassis_inputs(self, br_int: str) -> ChassisInputs:
        """br-int's interfaces (all but the bridge's own port) and the
        bridge-mapped networks; recomputed only when the IDL changed."""
        seqno = self.idl.change_seqno
        cached = self._inputs
        if cached is not None and cached[0] == (seqno, br_int):
            return cached[1]
        tables = self.idl.tables
        ifaces = []
        for br in tables["Bridge"].rows.values():
            if br.name != br_int:
                continue
            for port in br.ports:
                if port.name == br_int:
                    continue
                ext = dict(port.external_ids)
                for iface in port.interfaces:
                    ofport = iface.ofport[0] if iface.ofport else None
                    ifaces.append(Iface(iface.external_ids.get("iface-id"),
                                        ofport, ext))
        bridges = {b.name for b in tables["Bridge"].rows.values()}
        inputs = ChassisInputs(
            tuple(sorted(ifaces, key=lambda i: (i.iface_id or "",
                                                i.ofport or 0))),
            bridge_mapping_networks(self._external_ids(), self.system_id,
                                    bridges))
        self._inputs = ((seqno, br_int), inputs)
        return inputs

    def has_bridge(self, name: str) -> bool:
        return any(b.name == name
                   for b in self.idl.tables["Bridge"].rows.values())
