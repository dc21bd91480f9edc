"""The local Open_vSwitch database, read the way ovn-controller reads it:
external_ids:ovn-remote (the Southbound remote) and external_ids:system-id
(this chassis's name).  Main thread only."""

from __future__ import annotations

import ovs.poller

from pinctrl import dbutil

OVS_DB_NAME = "Open_vSwitch"
OVS_TABLES = {"Open_vSwitch": ["external_ids"], "Bridge": ["name"]}


class OvsConfig:
    def __init__(self, remote: str, schema_json: dict) -> None:
        self.remote = remote
        self.idl = dbutil.make_idl(remote, schema_json, OVS_TABLES)

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
    def ovn_remote(self) -> str | None:
        return self._external_ids().get("ovn-remote")

    @property
    def system_id(self) -> str | None:
        return self._external_ids().get("system-id")

    def has_bridge(self, name: str) -> bool:
        return any(b.name == name
                   for b in self.idl.tables["Bridge"].rows.values())
